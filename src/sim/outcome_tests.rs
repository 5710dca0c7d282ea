//! Tests of recovery outcomes: on synthetic tasks (shares, timing, compensation, the contract)
//! and on the tasks the real detection finds in simulated traffic.

use super::*;
use crate::codec::Decoder;
use crate::config::Config;
use crate::domain::time::MINUTE_MS;
use crate::domain::{Action, ActionKind, RecoveryOutcome, Relationship, Severity};
use crate::sim::{SimConfig, Simulator};
use std::collections::{HashMap, HashSet};

fn t0() -> EventTime {
    EventTime(crate::domain::time::days_from_civil(2026, 11, 21) * DAY_MS)
}

fn action(step: u32, kind: ActionKind, compensation: Option<Compensation>) -> Action {
    Action {
        step,
        kind,
        description: format!("step {step}"),
        compensation,
        due_at: None,
    }
}

/// Revision `revision` of synthetic task `i`: detected `i` minutes after the start, due 4 h
/// later, offering a refund of 10 + i % 7 EUR (an apology only when `i % 9 == 0`).
fn task(i: usize, revision: u32, status: TaskStatus) -> RecoveryTask {
    let detected = t0().plus(Millis(i as i64 * MINUTE_MS));
    let offer = if i % 9 == 0 {
        ("apology", 0.0)
    } else {
        ("refund", 10.0 + (i % 7) as f64)
    };
    RecoveryTask {
        task_id: format!("t-{:032x}", i * 7919),
        revision,
        status,
        customer_id: format!("c-{:06}", i % 400 + 1),
        incident: format!("order-{i:06}"),
        rule: "breaking_point".into(),
        detected_at: detected.to_string(),
        emitted_at: detected
            .plus(Millis(i64::from(revision - 1) * HOUR_MS))
            .to_string(),
        severity: Severity::Major,
        failure_count: 1,
        cause: "internal".into(),
        relationship: Relationship::Established,
        priority: "p2".into(),
        due_at: detected.plus(Millis::from_hours(4)).to_string(),
        owner_queue: "shipping-recovery".into(),
        actions: vec![
            action(1, ActionKind::Acknowledge, None),
            action(2, ActionKind::Fix, None),
            action(
                4,
                ActionKind::Compensate,
                Some(Compensation {
                    kind: offer.0.into(),
                    amount: offer.1 * f64::from(revision),
                    currency: "EUR".into(),
                }),
            ),
            action(5, ActionKind::FollowUp, None),
        ],
        value_at_risk: 180.0,
        currency: "EUR".into(),
        evidence: Vec::new(),
        explanation: "synthetic".into(),
        channel: "shipping".into(),
        touchpoint: "delivery".into(),
        segment: Some("consumer".into()),
        reason: None,
        fired_by: None,
    }
}

/// 1,000 open tasks (every tenth escalated an hour later, with twice the offer) and 100 that
/// amends closed itself (60 resolved, 40 cancelled in their second revision).
fn synthetic() -> Vec<RecoveryTask> {
    let mut tasks = Vec::new();
    for i in 0..1_100 {
        tasks.push(task(i, 1, TaskStatus::Open));
        if i >= 1_000 {
            let end = if i < 1_060 {
                TaskStatus::Resolved
            } else {
                TaskStatus::Cancelled
            };
            tasks.push(task(i, 2, end));
        } else if i % 10 == 0 {
            tasks.push(task(i, 2, TaskStatus::Escalated));
        }
    }
    tasks
}

fn by_id(tasks: &[RecoveryTask]) -> HashMap<&str, Vec<&RecoveryTask>> {
    let mut m: HashMap<&str, Vec<&RecoveryTask>> = HashMap::new();
    for t in tasks {
        m.entry(&t.task_id).or_default().push(t);
    }
    m
}

fn time(s: &str) -> EventTime {
    EventTime::parse(s).unwrap()
}

#[test]
fn outcomes_are_deterministic_per_seed_and_task() {
    let tasks = synthetic();
    let cfg = OutcomeConfig::default();
    let a = outcomes_for(&tasks, &cfg, 42);
    assert_eq!(a, outcomes_for(&tasks, &cfg, 42));
    // Order of the input and the other tasks in it do not matter: each task has its own stream.
    let reversed: Vec<RecoveryTask> = tasks.iter().rev().cloned().collect();
    assert_eq!(a, outcomes_for(&reversed, &cfg, 42));
    // Every other task, with all its revisions.
    let half_ids: HashSet<&str> = by_id(&tasks)
        .into_keys()
        .filter(|id| id.bytes().map(u32::from).sum::<u32>() % 2 == 0)
        .collect();
    let half: Vec<RecoveryTask> = tasks
        .iter()
        .filter(|t| half_ids.contains(t.task_id.as_str()))
        .cloned()
        .collect();
    assert!(half.len() > 400 && half.len() < 700, "{}", half.len());
    let from_half = outcomes_for(&half, &cfg, 42);
    let expected: Vec<&SimOutcome> = a
        .iter()
        .filter(|o| half_ids.contains(o.task_id.as_str()))
        .collect();
    assert_eq!(from_half.iter().collect::<Vec<_>>(), expected);
    let other = outcomes_for(&tasks, &cfg, 43);
    assert_ne!(a, other, "another seed must give other outcomes");
    let mut bytes = (Vec::new(), Vec::new());
    write_outcomes_jsonl(&a, &mut bytes.0).unwrap();
    write_outcomes_jsonl(&outcomes_for(&tasks, &cfg, 42), &mut bytes.1).unwrap();
    assert!(bytes.0 == bytes.1);
}

#[test]
fn the_status_mix_follows_the_configured_shares() {
    let tasks = synthetic();
    let outcomes = outcomes_for(&tasks, &OutcomeConfig::default(), 7);
    let s = OutcomeSummary::of(&tasks, &outcomes);
    assert_eq!((s.tasks, s.closed_by_amends), (1_100, 100));
    assert_eq!(s.written(), outcomes.len());
    assert_eq!(s.written() + s.without_outcome, 1_000);
    let share = |n: usize| n as f64 / 1_000.0;
    assert!((share(s.resolved) - 0.70).abs() < 0.05, "{s:?}");
    assert!((share(s.unresolved) - 0.15).abs() < 0.04, "{s:?}");
    assert!((share(s.no_response) - 0.05).abs() < 0.025, "{s:?}");
    assert!((share(s.without_outcome) - 0.10).abs() < 0.035, "{s:?}");
    let line = s.to_string();
    assert!(
        line.contains("1100 tasks seen (100 closed by amends itself)")
            && line.contains(&format!("resolved {}", s.resolved)),
        "{line}"
    );
    // The shares are configuration.
    let all = OutcomeConfig {
        resolved: 1.0,
        unresolved: 0.0,
        no_response: 0.0,
        ..OutcomeConfig::default()
    };
    let s = OutcomeSummary::of(&tasks, &outcomes_for(&tasks, &all, 7));
    assert_eq!((s.resolved, s.without_outcome), (1_000, 0));
}

#[test]
fn outcomes_answer_open_tasks_after_detection_with_what_was_offered() {
    let tasks = synthetic();
    let revisions = by_id(&tasks);
    let outcomes = outcomes_for(&tasks, &OutcomeConfig::default(), 11);
    assert!(outcomes
        .windows(2)
        .all(|w| (w[0].occurred_at, &w[0].task_id) < (w[1].occurred_at, &w[1].task_id)));
    let (mut late, mut partial, mut unscored) = (0, 0, 0);
    for o in &outcomes {
        let revs = &revisions[o.task_id.as_str()];
        let first = revs.iter().find(|t| t.revision == 1).unwrap();
        assert_eq!(o.customer_id, first.customer_id);
        assert!(
            revs.iter().all(|t| !closed(t.status)),
            "{} was closed by amends and got an outcome",
            o.task_id
        );
        let delay = o.occurred_at.0 - time(&first.detected_at).0;
        assert!((HOUR_MS..=5 * DAY_MS).contains(&delay), "{delay} ms");
        if o.occurred_at > time(&first.due_at) {
            late += 1;
        }
        let offered = revs
            .iter()
            .filter(|t| time(&t.emitted_at) <= o.occurred_at)
            .max_by_key(|t| t.revision)
            .and_then(|t| t.actions[2].compensation.as_ref())
            .unwrap();
        match (o.status, &o.compensation) {
            (RecoveryStatus::NoResponse, c) => assert_eq!(*c, None),
            (RecoveryStatus::Resolved, None) => panic!("{o:?}: resolved without compensation"),
            (_, None) => {}
            (_, Some(c)) => {
                assert_eq!((&c.kind, &c.currency), (&offered.kind, &offered.currency));
                assert!(c.amount <= offered.amount && c.amount >= offered.amount * 0.5 - 0.01);
                if c.amount < offered.amount {
                    partial += 1;
                }
            }
        }
        match (o.status, o.score) {
            (_, None) => unscored += 1,
            (RecoveryStatus::Resolved, Some(s)) => assert!((1..=5).contains(&s)),
            (_, Some(s)) => assert!((1..=2).contains(&s), "{o:?}"),
        }
    }
    let n = outcomes.len();
    assert!(late * 2 > n && late < n, "{late} of {n} after due_at");
    assert!(
        partial > n / 20 && partial < n / 3,
        "{partial} of {n} partial"
    );
    assert!(
        unscored > n / 5 && unscored < n * 2 / 5,
        "{unscored} of {n}"
    );
    let resolved_scores: Vec<u8> = outcomes
        .iter()
        .filter(|o| o.status == RecoveryStatus::Resolved)
        .filter_map(|o| o.score)
        .collect();
    let high = resolved_scores.iter().filter(|s| **s >= 3).count();
    assert!(high * 10 > resolved_scores.len() * 9, "{resolved_scores:?}");
}

#[test]
fn the_offer_is_that_of_the_revision_in_force() {
    // Task 3 offers 13 EUR; its second revision, an hour later, 26 EUR.
    let tasks = vec![
        task(3, 1, TaskStatus::Open),
        task(3, 2, TaskStatus::Escalated),
    ];
    let at = |delay: Millis| {
        let cfg = OutcomeConfig {
            resolved: 1.0,
            delay_min: delay,
            delay_max: delay,
            partial_compensation: 0.0,
            ..OutcomeConfig::default()
        };
        let o = outcomes_for(&tasks, &cfg, 1);
        assert_eq!(o.len(), 1);
        o[0].compensation.as_ref().map(|c| c.amount)
    };
    assert_eq!(at(Millis(30 * MINUTE_MS)), Some(13.0));
    assert_eq!(at(Millis(HOUR_MS - 1)), Some(13.0));
    assert_eq!(at(Millis(HOUR_MS)), Some(26.0));
    assert_eq!(at(Millis::from_days(2)), Some(26.0));
}

#[test]
fn outcome_lines_decode_with_the_amends_decoder() {
    let tasks = synthetic();
    let outcomes = outcomes_for(&tasks, &OutcomeConfig::default(), 5);
    let mut bytes = Vec::new();
    assert_eq!(
        write_outcomes_jsonl(&outcomes, &mut bytes).unwrap(),
        outcomes.len()
    );
    let decoder = Decoder::new(&Config::defaults());
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), outcomes.len());
    let mut apologies = 0;
    for (line, o) in lines.iter().zip(&outcomes) {
        let d: RecoveryOutcome = decoder
            .outcome(line)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
        assert_eq!(*line, o.to_json().as_slice());
        let r = o.record();
        assert_eq!((r.key.as_slice(), r.payload.as_slice()), (o.key(), *line));
        assert_eq!(o.key(), d.customer_id.as_bytes());
        assert_eq!(
            (&*d.task_id, &*d.customer_id, d.occurred_at, d.status),
            (
                o.task_id.as_str(),
                o.customer_id.as_str(),
                o.occurred_at,
                o.status
            )
        );
        let c = o.compensation.as_ref();
        assert_eq!(d.compensation_type.as_deref(), c.map(|c| c.kind.as_str()));
        assert_eq!(d.compensation_amount, c.map(|c| c.amount));
        assert_eq!(d.currency.as_deref(), c.map(|c| c.currency.as_str()));
        assert_eq!(d.score, o.score.map(f64::from));
        apologies += usize::from(c.is_some_and(|c| c.kind == "apology" && c.amount == 0.0));
    }
    assert!(apologies > 0, "apology-only offers are reported too");
    let first = std::str::from_utf8(lines[0]).unwrap();
    assert!(
        first.starts_with("{\"task_id\":\"t-") && first.contains("\"status\":\""),
        "{first}"
    );
}

#[test]
fn outcomes_answer_the_tasks_the_detection_finds_in_simulated_traffic() {
    // Four days, so that promises come due and some missed ones are retracted.
    let sim = Simulator::new(SimConfig {
        customers: 150,
        duration: Millis::from_days(4),
        poison_every: 700,
        ..SimConfig::default()
    });
    let mut events = Vec::new();
    sim.write_jsonl(&mut events).unwrap();
    let tasks = crate::app::simulate::detect_tasks(&Config::defaults(), events.as_slice()).unwrap();
    let revisions = by_id(&tasks);
    let outcomes = outcomes_for(&tasks, &OutcomeConfig::default(), 42);
    let s = OutcomeSummary::of(&tasks, &outcomes);
    println!("{s}");
    assert!(s.tasks > 100, "{s}");
    assert!(
        s.closed_by_amends > 0,
        "some tasks are resolved or cancelled by amends: {s}"
    );
    assert_eq!(
        s.tasks,
        s.closed_by_amends + s.written() + s.without_outcome
    );
    for o in &outcomes {
        let revs = &revisions[o.task_id.as_str()];
        let last = revs.iter().max_by_key(|t| t.revision).unwrap();
        assert!(!closed(last.status), "{o:?}");
        assert!(revs.iter().all(|t| t.customer_id == o.customer_id));
        let first = revs.iter().min_by_key(|t| t.revision).unwrap();
        assert!(o.occurred_at > time(&first.detected_at));
    }
    let closed_ids: Vec<&str> = revisions
        .iter()
        .filter(|(_, r)| {
            r.iter()
                .max_by_key(|t| t.revision)
                .is_some_and(|t| closed(t.status))
        })
        .map(|(id, _)| *id)
        .collect();
    assert!(closed_ids
        .iter()
        .all(|id| outcomes.iter().all(|o| o.task_id != *id)));
    let decoder = Decoder::new(&Config::defaults());
    assert!(outcomes
        .iter()
        .all(|o| decoder.outcome(&o.to_json()).is_ok()));
}

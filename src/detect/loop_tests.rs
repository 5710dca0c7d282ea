//! The closed loop in the engine: outcomes, overdue escalation, double deviation, paradox,
//! and their state across a snapshot. Values are derived by hand in the comments.

use super::tests::tasks;
use super::*;
use crate::codec::Decoder;
use crate::domain::{RecoveryStatus, Severity};

const T0: &str = "2026-11-22T10:00:00Z";

fn t(s: &str) -> EventTime {
    EventTime::parse(s).unwrap()
}

/// An event of an established customer (since 2024-01-01, 1200/yr: value at risk 180,
/// segment `smb`) unless `profile` is false.
#[allow(clippy::too_many_arguments)]
fn event(
    id: &str,
    at: &str,
    customer: &str,
    channel: &str,
    touchpoint: &str,
    ty: &str,
    outcome: &str,
    extra: &str,
) -> TouchpointEvent {
    let json = format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","customer_id":"{customer}","channel":"{channel}","touchpoint":"{touchpoint}",
        "type":"{ty}","outcome":"{outcome}","customer":{{"since":"2024-01-01","segment":"smb","annual_value":1200.0}}{extra}}}"#
    );
    Decoder::new(&Config::defaults())
        .touchpoint(json.as_bytes())
        .unwrap()
}

/// A failed delivery (major; established: p2, due 8 h later; internal, 120 EUR).
fn delivery_failed(id: &str, at: &str, customer: &str, reference: &str) -> TouchpointEvent {
    event(
        id,
        at,
        customer,
        "shipping",
        "delivery",
        "delivery_failed",
        "failure",
        &format!(
            r#","reference":"{reference}","cause":"internal","amount":120.0,"currency":"EUR""#
        ),
    )
}

/// An order placed (a success that promises shipping within 48 h).
fn order_placed(id: &str, at: &str, customer: &str, reference: &str) -> TouchpointEvent {
    event(
        id,
        at,
        customer,
        "sales",
        "checkout",
        "order_placed",
        "success",
        &format!(r#","reference":"{reference}""#),
    )
}

fn payment_declined(id: &str, at: &str, customer: &str, reference: &str) -> TouchpointEvent {
    event(
        id,
        at,
        customer,
        "billing",
        "payment",
        "payment_declined",
        "failure",
        &format!(r#","reference":"{reference}","cause":"internal","amount":40.0,"currency":"EUR""#),
    )
}

fn survey(id: &str, at: &str, customer: &str, score: f64) -> TouchpointEvent {
    event(
        id,
        at,
        customer,
        "service",
        "survey",
        "survey_answered",
        "neutral",
        &format!(r#","score":{score}"#),
    )
}

fn outcome(
    task_id: &str,
    customer: &str,
    at: &str,
    status: RecoveryStatus,
    score: Option<f64>,
) -> RecoveryOutcome {
    RecoveryOutcome {
        task_id: task_id.into(),
        customer_id: customer.into(),
        occurred_at: t(at),
        status,
        compensation_type: None,
        compensation_amount: None,
        currency: None,
        score,
    }
}

/// Drives an engine the way the pipeline does: inputs in event-time order, the timers due
/// before each input fire first (a timer due at `d` fires after the inputs at `d`), event
/// clock.
struct Run {
    eng: Engine,
    out: Vec<Output>,
    offset: i64,
}

impl Run {
    fn new() -> Run {
        Run::with(&Config::defaults())
    }

    fn with(config: &Config) -> Run {
        Run {
            eng: Engine::new(config),
            out: Vec::new(),
            offset: 0,
        }
    }

    fn advance(&mut self, to: EventTime) {
        while self.eng.next_timer().is_some_and(|d| d < to) {
            self.eng
                .fire_next(Clock::Event, FiredBy::EventTime, &mut self.out);
        }
        self.eng.set_watermark(to);
    }

    fn advance_to(&mut self, to: &str) {
        self.advance(t(to));
    }

    fn event(&mut self, e: &TouchpointEvent) {
        self.advance(e.occurred_at);
        let src = SourcePos {
            topic: Arc::from("touchpoints"),
            partition: 0,
            offset: self.offset,
        };
        self.offset += 1;
        assert_eq!(
            self.eng
                .on_event(e, &src, Clock::Event, false, &mut self.out),
            Verdict::Applied
        );
    }

    fn outcome(&mut self, o: &RecoveryOutcome) -> OutcomeVerdict {
        self.advance(o.occurred_at);
        self.eng.on_outcome(o, Clock::Event, &mut self.out)
    }

    /// Takes what came out since the last call.
    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
}

fn measures(out: &[Output]) -> Vec<&LoopMeasure> {
    out.iter()
        .filter_map(|o| match o {
            Output::Loop(m) => Some(m),
            Output::Task(_) => None,
        })
        .collect()
}

fn outcome_kinds(out: &[Output]) -> Vec<LoopKind> {
    measures(out)
        .into_iter()
        .filter(|m| matches!(m.kind, LoopKind::Outcome { .. }))
        .map(|m| m.kind.clone())
        .collect()
}

fn double_deviations(out: &[Output]) -> Vec<&LoopMeasure> {
    measures(out)
        .into_iter()
        .filter(|m| m.kind == LoopKind::DoubleDeviation)
        .collect()
}

/// Opens a delivery task for `customer` at `at` and returns its id.
fn open_task(run: &mut Run, id: &str, at: &str, customer: &str) -> String {
    run.event(&delivery_failed(id, at, customer, "o-1"));
    let out = run.take();
    let t = tasks(&out);
    assert_eq!((t.len(), t[0].revision), (1, 1), "{t:?}");
    t[0].task_id.clone()
}

#[test]
fn a_resolved_outcome_is_measured_with_its_time_to_recovery() {
    let mut run = Run::new();
    run.event(&delivery_failed("e-1", T0, "c-1", "o-1"));
    let out = run.take();
    let task = tasks(&out)[0].clone();
    // The task opened, and so did its measure, with the task's dimensions.
    assert_eq!(
        measures(&out),
        [&LoopMeasure {
            at: t(T0),
            channel: Arc::from("shipping"),
            touchpoint: "delivery".into(),
            segment: Some("smb".into()),
            failure_type: Some("delivery_failed".into()),
            kind: LoopKind::TaskOpened {
                rule: "breaking_point".into(),
                severity: Severity::Major,
                value_at_risk: 180.0,
            },
        }]
    );
    assert!(
        matches!(out[1], Output::Loop(_)),
        "the measure follows its task"
    );

    // Before the due time (18:00), so nothing else happens in between.
    let v = run.outcome(&outcome(
        &task.task_id,
        "c-1",
        "2026-11-22T16:30:00Z",
        RecoveryStatus::Resolved,
        None,
    ));
    assert_eq!(v, OutcomeVerdict::Applied);
    let out = run.take();
    assert!(tasks(&out).is_empty(), "an outcome is no task revision");
    assert_eq!(
        measures(&out),
        [&LoopMeasure {
            at: t("2026-11-22T16:30:00Z"),
            channel: Arc::from("shipping"),
            touchpoint: "delivery".into(),
            segment: Some("smb".into()),
            failure_type: Some("delivery_failed".into()),
            kind: LoopKind::Outcome {
                status: RecoveryStatus::Resolved,
                double_deviation: false,
                paradox: None,
                // 10:00 -> 16:30 = 6 h 30 min.
                time_to_recovery: Some(Millis(6 * 3_600_000 + 30 * 60_000)),
            },
        }]
    );
    assert_eq!(run.eng.stats().outcomes, 1);
}

#[test]
fn a_failed_recovery_is_a_double_deviation_with_no_time_to_recovery() {
    for status in [RecoveryStatus::Unresolved, RecoveryStatus::NoResponse] {
        let mut run = Run::new();
        let id = open_task(&mut run, "e-1", T0, "c-1");
        run.outcome(&outcome(
            &id,
            "c-1",
            "2026-11-22T12:00:00Z",
            status,
            Some(2.0),
        ));
        assert_eq!(
            outcome_kinds(&run.take()),
            [LoopKind::Outcome {
                status,
                double_deviation: true,
                paradox: None,
                time_to_recovery: None,
            }],
            "{status:?}"
        );
    }
}

#[test]
fn the_paradox_compares_with_the_last_survey_before_the_failure() {
    let mut run = Run::new();
    // (customer, surveys (time, score), outcome score, expected paradox)
    type Case<'a> = (&'a str, &'a [(&'a str, f64)], Option<f64>, Option<bool>);
    let cases: [Case<'_>; 7] = [
        // 3 before, 4 after: at or above.
        (
            "c-up",
            &[("2026-11-22T09:00:00Z", 3.0)],
            Some(4.0),
            Some(true),
        ),
        // 4 before, 3 after: below.
        (
            "c-down",
            &[("2026-11-22T09:00:00Z", 4.0)],
            Some(3.0),
            Some(false),
        ),
        // Equal counts as "at or above".
        (
            "c-same",
            &[("2026-11-22T09:00:00Z", 4.0)],
            Some(4.0),
            Some(true),
        ),
        // No survey at all.
        ("c-none", &[], Some(4.0), None),
        // The survey after the failure (5) is not "before": still 3 -> 4 is true (5 would
        // make it false).
        (
            "c-after",
            &[("2026-11-22T09:00:00Z", 3.0), ("2026-11-22T11:00:00Z", 5.0)],
            Some(4.0),
            Some(true),
        ),
        // Only a survey after the failure, or one at the very time of the failure: none
        // before it.
        (
            "c-only-after",
            &[("2026-11-22T11:00:00Z", 5.0)],
            Some(1.0),
            None,
        ),
        // A survey before, but no score after.
        ("c-no-score", &[("2026-11-22T09:00:00Z", 3.0)], None, None),
    ];
    for (i, (customer, surveys, after, want)) in cases.iter().enumerate() {
        let mut id = None;
        // Surveys and the failure in event-time order.
        let failure_at = T0;
        let mut inputs: Vec<(String, TouchpointEvent)> = surveys
            .iter()
            .enumerate()
            .map(|(n, (at, s))| {
                (
                    at.to_string(),
                    survey(&format!("s-{i}-{n}"), at, customer, *s),
                )
            })
            .collect();
        inputs.push((
            failure_at.into(),
            delivery_failed(&format!("e-{i}"), failure_at, customer, "o-1"),
        ));
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, e) in &inputs {
            run.event(e);
            if let Some(t) = tasks(&run.take()).first() {
                id = Some(t.task_id.clone());
            }
        }
        let id = id.expect("the failure opened a task");
        run.outcome(&outcome(
            &id,
            customer,
            "2026-11-22T12:00:00Z",
            RecoveryStatus::Resolved,
            *after,
        ));
        match &outcome_kinds(&run.take())[..] {
            [LoopKind::Outcome { paradox, .. }] => assert_eq!(paradox, want, "{customer}"),
            other => panic!("{customer}: {other:?}"),
        }
    }
    // A survey at the very time of the failure is not strictly before it.
    let mut run = Run::new();
    run.event(&survey("s-1", T0, "c-tie", 4.0));
    let id = open_task(&mut run, "e-1", T0, "c-tie");
    run.outcome(&outcome(
        &id,
        "c-tie",
        "2026-11-22T12:00:00Z",
        RecoveryStatus::Resolved,
        Some(3.0),
    ));
    assert!(matches!(
        &outcome_kinds(&run.take())[..],
        [LoopKind::Outcome { paradox: None, .. }]
    ));
}

#[test]
fn a_new_failure_after_a_resolved_recovery_is_one_double_deviation() {
    let mut run = Run::new();
    let id = open_task(&mut run, "e-1", T0, "c-1");
    run.outcome(&outcome(
        &id,
        "c-1",
        "2026-11-23T10:00:00Z",
        RecoveryStatus::Resolved,
        Some(5.0),
    ));
    run.take();
    // 3 days later, another failure in another channel, on another reference.
    run.event(&payment_declined(
        "e-2",
        "2026-11-26T10:00:00Z",
        "c-1",
        "inv-9",
    ));
    let out = run.take();
    assert!(!tasks(&out).is_empty(), "the failure is handled as ever");
    assert_eq!(
        double_deviations(&out),
        [&LoopMeasure {
            at: t("2026-11-26T10:00:00Z"),
            // The recovered task's dimensions, not the new failure's.
            channel: Arc::from("shipping"),
            touchpoint: "delivery".into(),
            segment: Some("smb".into()),
            failure_type: Some("delivery_failed".into()),
            kind: LoopKind::DoubleDeviation,
        }]
    );
    // Once per recovered task: a second new failure is no second double deviation.
    run.event(&payment_declined(
        "e-3",
        "2026-11-27T10:00:00Z",
        "c-1",
        "inv-10",
    ));
    assert!(double_deviations(&run.take()).is_empty());
    // A second `resolved` for the same task does not allow another one either.
    run.outcome(&outcome(
        &id,
        "c-1",
        "2026-11-27T11:00:00Z",
        RecoveryStatus::Resolved,
        None,
    ));
    run.event(&payment_declined(
        "e-4",
        "2026-11-28T10:00:00Z",
        "c-1",
        "inv-11",
    ));
    assert!(double_deviations(&run.take()).is_empty());
}

#[test]
fn a_failure_only_counts_within_the_follow_up_period() {
    // Resolved 23 Nov 10:00; follow_up_period 14 d: up to 7 Dec 10:00, inclusive. By then the
    // incident itself is forgotten (14 d after its failure on 22 Nov): the measure still
    // carries its dimensions.
    for (customer, at, want) in [
        ("c-edge", "2026-12-07T10:00:00Z", 1),
        ("c-after", "2026-12-07T10:00:00.001Z", 0),
        ("c-same-time", "2026-11-23T10:00:00Z", 0),
    ] {
        let mut run = Run::new();
        let id = open_task(&mut run, "e-1", T0, customer);
        run.outcome(&outcome(
            &id,
            customer,
            "2026-11-23T10:00:00Z",
            RecoveryStatus::Resolved,
            None,
        ));
        run.event(&payment_declined("e-2", at, customer, "inv-9"));
        let out = run.take();
        let dd = double_deviations(&out);
        assert_eq!(dd.len(), want, "{customer}: {dd:?}");
        if let Some(m) = dd.first() {
            assert_eq!(
                (&*m.channel, m.failure_type.as_deref()),
                ("shipping", Some("delivery_failed"))
            );
        }
    }
}

#[test]
fn a_missed_promise_after_a_resolved_recovery_is_a_double_deviation() {
    let mut run = Run::new();
    let id = open_task(&mut run, "e-1", T0, "c-1");
    run.outcome(&outcome(
        &id,
        "c-1",
        "2026-11-22T12:00:00Z",
        RecoveryStatus::Resolved,
        None,
    ));
    // An order on 23 Nov 09:00 that must ship within 48 h, and never does.
    run.event(&order_placed("e-2", "2026-11-23T09:00:00Z", "c-1", "o-2"));
    run.advance_to("2026-11-26T00:00:00Z");
    let out = run.take();
    let dd = double_deviations(&out);
    assert_eq!(dd.len(), 1, "{out:?}");
    assert_eq!(
        dd[0].at,
        t("2026-11-25T09:00:00Z"),
        "at the missed deadline"
    );
}

/// `detect.escalate_overdue = false` (no case tool reports back): no overdue timer, no
/// overdue revision, however long the task waits.
#[test]
fn overdue_escalation_can_be_switched_off() {
    let mut config = Config::defaults();
    config.detect.escalate_overdue = false;
    let mut run = Run::with(&config);
    run.event(&delivery_failed("e-1", T0, "c-1", "o-1"));
    let first = tasks(&run.take())[0].clone();
    assert_eq!(first.due_at, "2026-11-22T18:00:00.000Z");
    assert_eq!(run.eng.next_timer(), None, "no timer watches the due time");
    run.advance_to("2026-11-30T00:00:00Z");
    // A later failure on another reference fires nothing overdue either.
    run.event(&delivery_failed(
        "e-2",
        "2026-11-30T00:00:00Z",
        "c-1",
        "o-2",
    ));
    run.advance_to("2026-12-05T00:00:00Z");
    let later = run.take();
    assert!(
        tasks(&later).iter().all(|t| t
            .reason
            .as_deref()
            .is_none_or(|r| !r.starts_with("overdue"))),
        "{later:?}"
    );
    assert_eq!(run.eng.stats().tasks_overdue, 0);
}

#[test]
fn a_task_past_its_due_time_with_no_outcome_is_escalated_once() {
    let mut run = Run::new();
    run.event(&delivery_failed("e-1", T0, "c-1", "o-1"));
    let first = tasks(&run.take())[0].clone();
    // Major, established: p2 within 8 h.
    assert_eq!(
        (first.priority.as_str(), first.due_at.as_str()),
        ("p2", "2026-11-22T18:00:00.000Z")
    );
    // The due time itself is still in time.
    run.advance_to("2026-11-22T18:00:00Z");
    assert!(run.take().is_empty());
    run.advance_to("2026-11-22T18:00:00.001Z");
    let out = run.take();
    let t2 = tasks(&out);
    assert_eq!(t2.len(), 1, "{out:?}");
    let t2 = t2[0];
    assert_eq!(t2.task_id, first.task_id);
    assert_eq!((t2.revision, t2.status), (2, TaskStatus::Escalated));
    assert_eq!(
        t2.reason.as_deref(),
        Some("overdue: no recovery outcome by the due time 2026-11-22T18:00:00.000Z")
    );
    assert_eq!(t2.priority, "p1", "one step up");
    assert_eq!(t2.due_at, first.due_at, "the due time it missed stays");
    assert_eq!(
        t2.emitted_at, "2026-11-22T18:00:00.000Z",
        "caused at the due time"
    );
    assert_eq!(t2.fired_by.as_deref(), Some("event_time"));
    assert_eq!(t2.rule, "breaking_point");
    assert_eq!(t2.evidence, first.evidence);
    assert!(
        t2.explanation
            .starts_with("Overdue: no recovery outcome by the due time"),
        "{}",
        t2.explanation
    );
    assert!(measures(&out).is_empty(), "an escalation is no new task");
    assert_eq!(run.eng.stats().tasks_overdue, 1);

    // Exactly once: neither waiting longer nor a new due time escalates it again.
    run.advance_to("2026-11-30T00:00:00Z");
    assert!(run.take().is_empty());
    run.event(&delivery_failed(
        "e-2",
        "2026-11-23T09:00:00Z",
        "c-1",
        "o-1",
    ));
    let t3 = tasks(&run.take())[0].clone();
    assert_eq!((t3.revision, t3.priority.as_str()), (3, "p1"));
    assert_eq!(
        (t3.reason.as_deref(), t3.fired_by.as_deref()),
        (Some("failure 2 on the same incident"), None),
        "the overdue clock is the overdue revision's only"
    );
    assert_eq!(t3.due_at, "2026-11-23T17:00:00.000Z", "a fresh due time");
    run.advance_to("2026-12-01T00:00:00Z");
    assert!(tasks(&run.take()).is_empty());
    assert_eq!(run.eng.stats().tasks_overdue, 1);

    // An outcome after the overdue escalation is still recorded.
    assert_eq!(
        run.outcome(&outcome(
            &first.task_id,
            "c-1",
            "2026-12-01T00:00:00Z",
            RecoveryStatus::Resolved,
            None,
        )),
        OutcomeVerdict::Applied
    );
    assert_eq!(outcome_kinds(&run.take()).len(), 1);
}

#[test]
fn an_outcome_by_the_due_time_cancels_the_overdue_escalation() {
    // Before the due time, and at it exactly (an input at `d` comes before the timer at `d`).
    for at in ["2026-11-22T17:59:00Z", "2026-11-22T18:00:00Z"] {
        let mut run = Run::new();
        let id = open_task(&mut run, "e-1", T0, "c-1");
        run.outcome(&outcome(&id, "c-1", at, RecoveryStatus::Unresolved, None));
        run.advance_to("2026-12-01T00:00:00Z");
        let out = run.take();
        assert!(tasks(&out).is_empty(), "{at}: {out:?}");
        assert_eq!(run.eng.stats().tasks_overdue, 0);
    }
}

#[test]
fn a_settled_task_is_not_escalated_as_overdue() {
    let mut run = Run::new();
    // An order that must ship within 48 h (by 22 Nov 09:00) ships an hour late: the task
    // opens at the deadline (major, established: due 17:00) and is resolved at 10:00.
    run.event(&order_placed("e-1", "2026-11-20T09:00:00Z", "c-1", "o-2"));
    run.advance_to("2026-11-22T09:30:00Z");
    let out = run.take();
    let opened = tasks(&out);
    assert_eq!(
        (
            opened.len(),
            opened[0].rule.as_str(),
            opened[0].due_at.as_str()
        ),
        (1, "missed_expectation", "2026-11-22T17:00:00.000Z")
    );
    // Every task opened is measured, whichever rule opened it.
    match &measures(&out)[..] {
        [m] => {
            assert_eq!(
                (&*m.channel, m.failure_type.as_deref(), m.at),
                (
                    "sales",
                    Some("missed_order_placed"),
                    t("2026-11-22T09:00:00Z")
                )
            );
            assert!(
                matches!(&m.kind, LoopKind::TaskOpened { rule, .. } if rule == "missed_expectation")
            );
        }
        other => panic!("{other:?}"),
    }
    run.event(&event(
        "e-2",
        "2026-11-22T10:00:00Z",
        "c-1",
        "shipping",
        "dispatch",
        "order_shipped",
        "success",
        r#","reference":"o-2""#,
    ));
    assert_eq!(tasks(&run.take())[0].status, TaskStatus::Resolved);
    run.advance_to("2026-11-30T00:00:00Z");
    assert!(run.take().is_empty(), "a resolved task is not overdue");
    assert_eq!(run.eng.stats().tasks_overdue, 0);
}

#[test]
fn unknown_tasks_and_repeated_outcomes() {
    let mut run = Run::new();
    let id = open_task(&mut run, "e-1", T0, "c-1");
    let o = outcome(
        &id,
        "c-1",
        "2026-11-22T12:00:00Z",
        RecoveryStatus::Unresolved,
        Some(2.0),
    );
    assert_eq!(run.outcome(&o), OutcomeVerdict::Applied);
    assert_eq!(run.outcome(&o), OutcomeVerdict::Duplicate);
    assert_eq!(outcome_kinds(&run.take()).len(), 1, "measured once");
    // Another status for the same task is news.
    let later = outcome(
        &id,
        "c-1",
        "2026-11-22T12:00:00Z",
        RecoveryStatus::Resolved,
        None,
    );
    assert_eq!(run.outcome(&later), OutcomeVerdict::Applied);
    // No such task for this customer; no such customer; another customer's task.
    for (task, customer) in [
        ("t-nope", "c-1"),
        (id.as_str(), "c-2"),
        (id.as_str(), "c-9"),
    ] {
        let o = outcome(
            task,
            customer,
            "2026-11-22T13:00:00Z",
            RecoveryStatus::Resolved,
            None,
        );
        assert_eq!(
            run.outcome(&o),
            OutcomeVerdict::UnknownTask,
            "{task} {customer}"
        );
    }
    run.event(&delivery_failed(
        "e-2",
        "2026-11-22T13:30:00Z",
        "c-2",
        "o-5",
    ));
    let o = outcome(
        &id,
        "c-2",
        "2026-11-22T14:00:00Z",
        RecoveryStatus::Resolved,
        None,
    );
    assert_eq!(run.outcome(&o), OutcomeVerdict::UnknownTask);
    let s = run.eng.stats();
    assert_eq!(
        (s.outcomes, s.outcomes_unknown, s.outcomes_duplicate),
        (7, 4, 1)
    );
    assert_eq!(
        run.eng.customers(),
        2,
        "an outcome creates no customer state"
    );
    // A task is forgotten incident_window (14 d) after its last failure: then it is unknown.
    let o = outcome(
        &id,
        "c-1",
        "2026-12-06T10:00:00.001Z",
        RecoveryStatus::Resolved,
        None,
    );
    assert_eq!(run.outcome(&o), OutcomeVerdict::UnknownTask);
}

/// The closed loop's state survives a snapshot: pending overdue timers (neither lost nor
/// fired twice), outcomes already recorded, the satisfaction before a failure, and resolved
/// recoveries in their follow-up period.
#[test]
fn a_snapshot_keeps_overdue_timers_outcomes_and_satisfaction() {
    let mut run = Run::new();
    // c-a: a survey of 3, then a task waiting for an outcome (due 18:00).
    run.event(&survey("s-1", "2026-11-22T09:00:00Z", "c-a", 3.0));
    let task_a = open_task(&mut run, "e-1", T0, "c-a");
    // c-b: a task resolved at 12:00 (so no overdue), in its follow-up period.
    let task_b = open_task(&mut run, "e-2", "2026-11-22T10:30:00Z", "c-b");
    let resolved_b = outcome(
        &task_b,
        "c-b",
        "2026-11-22T12:00:00Z",
        RecoveryStatus::Resolved,
        None,
    );
    assert_eq!(run.outcome(&resolved_b), OutcomeVerdict::Applied);
    run.take();

    let config = Config::defaults();
    let bytes = run.eng.snapshot();
    let mut restored = Run {
        eng: Engine::restore(&config, &bytes).unwrap(),
        out: Vec::new(),
        offset: run.offset,
    };
    assert_eq!(
        restored.eng.snapshot(),
        bytes,
        "snapshot -> restore -> snapshot"
    );
    assert_eq!(restored.eng.stats(), run.eng.stats());
    assert_eq!(
        restored.eng.next_timer(),
        Some(t("2026-11-22T18:00:00Z")),
        "c-a's overdue timer (c-b's task has an outcome)"
    );

    // Both engines go on with the same inputs and must agree on everything.
    let script = |r: &mut Run| -> Vec<Output> {
        r.advance_to("2026-11-23T00:00:00Z");
        assert_eq!(r.outcome(&resolved_b), OutcomeVerdict::Duplicate);
        r.outcome(&outcome(
            &task_a,
            "c-a",
            "2026-11-23T09:00:00Z",
            RecoveryStatus::Resolved,
            Some(4.0),
        ));
        r.event(&payment_declined(
            "e-3",
            "2026-11-24T10:00:00Z",
            "c-b",
            "inv-9",
        ));
        r.take()
    };
    let a = script(&mut run);
    let b = script(&mut restored);
    assert_eq!(a, b);
    let overdue: Vec<_> = tasks(&b)
        .into_iter()
        .filter(|t| {
            t.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("overdue"))
        })
        .map(|t| (t.task_id.clone(), t.revision))
        .collect();
    assert_eq!(
        overdue,
        [(task_a.clone(), 2)],
        "c-a's timer fired once, c-b had none"
    );
    assert!(outcome_kinds(&b).contains(&LoopKind::Outcome {
        status: RecoveryStatus::Resolved,
        double_deviation: false,
        // 3 before the failure, 4 after the recovery.
        paradox: Some(true),
        // 22 Nov 10:00 -> 23 Nov 09:00.
        time_to_recovery: Some(Millis(23 * 3_600_000)),
    }));
    assert_eq!(
        double_deviations(&b).len(),
        1,
        "c-b's recovery did not hold"
    );

    // After the overdue escalation, a second snapshot holds no timer for it: nothing fires
    // twice.
    let again = Engine::restore(&config, &restored.eng.snapshot()).unwrap();
    let mut again = Run {
        eng: again,
        out: Vec::new(),
        offset: 0,
    };
    again.advance_to("2027-01-01T00:00:00Z");
    assert!(
        tasks(&again.take()).iter().all(|t| !t
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("overdue")),
        "no second overdue escalation"
    );
    assert_eq!(again.eng.stats().tasks_overdue, 1);
}

#[test]
fn a_customer_without_surveys_or_outcomes_keeps_no_loop_state() {
    let mut run = Run::new();
    open_task(&mut run, "e-1", T0, "c-1");
    let c = run.eng.customers.get("c-1").unwrap();
    assert!(c.closed_loop().is_none());
    run.event(&survey("s-1", "2026-11-22T11:00:00Z", "c-1", 4.0));
    let c = run.eng.customers.get("c-1").unwrap();
    assert_eq!(
        c.closed_loop().and_then(|l| l.survey).map(|s| s.score),
        Some(4.0)
    );
    // A late survey does not replace a newer answer.
    run.eng.on_event(
        &survey("s-0", "2026-11-22T08:00:00Z", "c-1", 1.0),
        &SourcePos {
            topic: Arc::from("touchpoints"),
            partition: 0,
            offset: 99,
        },
        Clock::Event,
        true,
        &mut Vec::new(),
    );
    let c = run.eng.customers.get("c-1").unwrap();
    assert_eq!(
        c.closed_loop().and_then(|l| l.survey).map(|s| s.score),
        Some(4.0)
    );
}

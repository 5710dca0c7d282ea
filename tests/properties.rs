//! Property tests of detection over generated histories: a few customers, a few references,
//! failures, promises and their fulfilments, contacts and surveys spread over four days.
//!
//! - Any reordering of the input within `detect.out_of_orderness` gives the same task
//!   revisions, so the same final tasks (the highest revision of each task).
//! - Every task revision lists evidence, and every piece of evidence is an input event.
//! - A task id belongs to one incident: its customer and incident never change across
//!   revisions, revisions count up from 1 without gaps, and an incident's revisions never
//!   come under two ids at once.

use amends::config::Config;
use amends::domain::{EventTime, Millis, RecoveryTask};
use amends::pipeline::{InboundRecord, OutboundKind, Processor};
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const START: &str = "2026-11-20T08:00:00Z";

/// (type, outcome, channel, touchpoint)
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("delivery_failed", "failure", "shipping", "delivery"),
    ("payment_declined", "failure", "billing", "payment"),
    ("order_placed", "success", "sales", "checkout"),
    ("order_shipped", "success", "shipping", "dispatch"),
    ("delivery_scheduled", "success", "shipping", "delivery"),
    ("delivered", "success", "shipping", "delivery"),
    ("ticket_opened", "neutral", "service", "ticket"),
    ("agent_replied", "success", "service", "ticket"),
    ("call_received", "neutral", "service", "phone"),
    ("survey_answered", "neutral", "service", "survey"),
    ("ticket_withdrawn", "success", "service", "ticket"),
    ("invoice_disputed", "failure", "billing", "invoice"),
];

#[derive(Debug, Clone)]
struct Gen {
    customer: u8,
    reference: u8,
    kind: usize,
    /// Minutes after START.
    minute: u32,
    /// Hours after the event that a `delivery_scheduled` promises delivery by.
    promise_h: u32,
    score: u8,
    amount: u32,
    internal: bool,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        0u8..3,
        0u8..3,
        0usize..KINDS.len(),
        0u32..(4 * 24 * 60),
        1u32..72,
        1u8..6,
        0u32..4000,
        any::<bool>(),
    )
        .prop_map(
            |(customer, reference, kind, minute, promise_h, score, amount, internal)| Gen {
                customer,
                reference,
                kind,
                minute,
                promise_h,
                score,
                amount,
                internal,
            },
        )
}

fn start() -> EventTime {
    EventTime::parse(START).unwrap()
}

/// Input events (JSON) sorted by event time, ids unique.
fn events(gens: &[Gen]) -> Vec<(EventTime, Vec<u8>)> {
    let mut out: Vec<(EventTime, Vec<u8>)> = gens
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (ty, outcome, channel, touchpoint) = KINDS[g.kind];
            let at = start().plus(Millis::from_secs(i64::from(g.minute) * 60 + i as i64 % 7));
            let mut e = json!({
                "event_id": format!("e-{i:04}"),
                "occurred_at": at.to_string(),
                "customer_id": format!("c-{}", g.customer),
                "channel": channel,
                "touchpoint": touchpoint,
                "type": ty,
                "outcome": outcome,
                "reference": format!("ref-{}-{}", g.customer, g.reference),
                "cause": if g.internal { "internal" } else { "external" },
                "amount": f64::from(g.amount) / 4.0,
                "currency": "EUR",
                "customer": {"since": "2024-05-01", "segment": "smb", "annual_value": 2500.0},
            });
            if ty == "delivery_scheduled" {
                e["expected_by"] = json!(at
                    .plus(Millis::from_hours(i64::from(g.promise_h)))
                    .to_string());
            }
            if ty == "survey_answered" {
                e["score"] = json!(f64::from(g.score));
            }
            (at, serde_json::to_vec(&e).unwrap())
        })
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Every task revision the pipeline emits for the events in the given arrival order, with
/// the end of input flushing the reorder buffer and firing what is due.
fn run(config: &Config, arrivals: &[&(EventTime, Vec<u8>)]) -> Vec<RecoveryTask> {
    let mut p = Processor::new(config).with_event_clock();
    let mut out = Vec::new();
    for (offset, (_, payload)) in arrivals.iter().enumerate() {
        let rec = InboundRecord {
            topic: Arc::from("touchpoints"),
            partition: 0,
            offset: offset as i64,
            key: None,
            payload: Some(payload.clone()),
            timestamp_ms: None,
        };
        p.process(&rec, EventTime(0), &mut out);
    }
    p.flush(EventTime(0), &mut out);
    out.iter()
        .map(|o| {
            assert_eq!(o.kind, OutboundKind::Task, "no input here is bad or late");
            serde_json::from_slice(&o.payload).unwrap()
        })
        .collect()
}

/// Tasks keyed by (task_id, revision), with the evidence positions (which depend on the
/// arrival order) left out.
fn by_revision(tasks: &[RecoveryTask]) -> BTreeMap<(String, u32), serde_json::Value> {
    tasks
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap();
            for e in v["evidence"].as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("offset");
            }
            ((t.task_id.clone(), t.revision), v)
        })
        .collect()
}

fn finals(tasks: &[RecoveryTask]) -> BTreeMap<String, serde_json::Value> {
    let mut last = BTreeMap::new();
    for ((id, _), v) in by_revision(tasks) {
        last.insert(id, v);
    }
    last
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn reordering_within_the_out_of_orderness_changes_no_task(
        gens in proptest::collection::vec(gen(), 1..60),
        jitter in proptest::collection::vec(0i64..120_000, 60),
    ) {
        let config = Config::defaults();
        let ooo = config.detect.out_of_orderness.millis().0;
        prop_assume!(jitter.iter().all(|j| *j < ooo));
        let input = events(&gens);
        let in_order: Vec<&(EventTime, Vec<u8>)> = input.iter().collect();
        // Each event arrives up to `ooo` after its event time: a later event never arrives
        // more than the out-of-orderness ahead of an earlier one.
        let mut shuffled: Vec<(i64, usize)> = input
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (t.0 + jitter[i % jitter.len()], i))
            .collect();
        shuffled.sort();
        let reordered: Vec<&(EventTime, Vec<u8>)> =
            shuffled.iter().map(|(_, i)| &input[*i]).collect();

        let a = run(&config, &in_order);
        let b = run(&config, &reordered);
        prop_assert_eq!(finals(&a), finals(&b), "final tasks differ");
        prop_assert_eq!(by_revision(&a), by_revision(&b), "revisions differ");
    }

    #[test]
    fn every_task_rests_on_input_events_and_ids_belong_to_one_incident(
        gens in proptest::collection::vec(gen(), 1..80),
    ) {
        let config = Config::defaults();
        let input = events(&gens);
        let ids: BTreeSet<String> = input
            .iter()
            .map(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string())
            .collect();
        let tasks = run(&config, &input.iter().collect::<Vec<_>>());
        let mut incident_of: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        let mut revisions: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for t in &tasks {
            prop_assert!(!t.evidence.is_empty(), "task without evidence: {:?}", t);
            for e in &t.evidence {
                prop_assert!(ids.contains(&e.event_id), "evidence {} is no input event", e.event_id);
            }
            let who = (t.customer_id.as_str(), t.incident.as_str());
            let first = *incident_of.entry(&t.task_id).or_insert(who);
            prop_assert_eq!(first, who, "task {} changed incident", &t.task_id);
            revisions.entry(&t.task_id).or_default().push(t.revision);
        }
        for (id, revs) in &revisions {
            let want: Vec<u32> = (1..=revs.len() as u32).collect();
            prop_assert_eq!(revs, &want, "revisions of {} are not 1..n in order", id);
        }
        // One open task per (customer, incident) at any time: two ids for one incident
        // would mean a second task for the same problem.
        let mut open: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for t in &tasks {
            let key = (t.customer_id.as_str(), t.incident.as_str());
            match t.status {
                amends::domain::TaskStatus::Resolved | amends::domain::TaskStatus::Cancelled => {
                    if open.get(&key) == Some(&t.task_id.as_str()) {
                        open.remove(&key);
                    }
                }
                _ => {
                    if let Some(other) = open.get(&key) {
                        prop_assert_eq!(*other, t.task_id.as_str(), "two open tasks for {:?}", key);
                    }
                    open.insert(key, &t.task_id);
                }
            }
        }
    }
}

use super::*;
use crate::detect::LoopKind;
use crate::pipeline::dead_letter::DeadLetterLine;

fn rec(offset: i64, payload: &[u8]) -> InboundRecord {
    InboundRecord {
        topic: Arc::from("touchpoints"),
        partition: 2,
        offset,
        key: Some(b"c-1".to_vec()),
        payload: Some(payload.to_vec()),
        timestamp_ms: Some(1_700_000_000_000),
    }
}

const FAIL: &str = r#"{"event_id":"e-1","occurred_at":"2026-11-22T10:00:00Z","customer_id":"c-1","channel":"billing","touchpoint":"payment","type":"payment_declined","outcome":"failure","reference":"inv-1","cause":"internal","amount":80,"currency":"EUR"}"#;

#[test]
fn a_failure_becomes_a_task_record_keyed_by_customer() {
    let mut p = Processor::new(&Config::defaults());
    let mut out = Vec::new();
    let r = p.process(&rec(7, FAIL.as_bytes()), EventTime(0), &mut out);
    assert!(out.is_empty(), "held until the watermark passes it");
    let mut released = Vec::new();
    p.take_released(&mut released);
    assert!(released.is_empty());
    assert_eq!(p.buffered_offsets(), [7]);
    p.flush(EventTime(0), &mut out);
    p.take_released(&mut released);
    assert_eq!(released, [(Arc::from("touchpoints"), 7)]);
    assert!(matches!(
        r,
        Processed::Event {
            outcome: Outcome::Failure,
            ..
        }
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutboundKind::Task);
    assert_eq!(&*out[0].topic, "amends.recovery-tasks");
    assert_eq!(out[0].key.as_deref(), Some(&b"c-1"[..]));
    let task: RecoveryTask = serde_json::from_slice(&out[0].payload).unwrap();
    assert_eq!(task.incident, "inv-1");
    assert_eq!(task.evidence[0].offset, 7);
    assert_eq!(
        header(&out[0], "amends.task_id"),
        Some(task.task_id.as_str())
    );
    assert_eq!(header(&out[0], "amends.rule"), Some("breaking_point"));
}

#[test]
fn poison_goes_to_the_dead_letter_topic_with_original_bytes_and_reason() {
    let mut p = Processor::new(&Config::defaults());
    let mut out = Vec::new();
    let poison = b"{\"event_id\": \xff";
    let r = p.process(&rec(9, poison), EventTime(5), &mut out);
    assert!(matches!(r, Processed::DeadLettered(_)));
    assert_eq!(out[0].kind, OutboundKind::DeadLetter);
    assert_eq!(&*out[0].topic, "amends.dead-letter");
    assert_eq!(out[0].payload, poison.to_vec(), "original bytes untouched");
    let line = DeadLetterLine::from_record(&out[0].headers, &out[0].payload);
    assert_eq!(line.reason, "decode");
    assert_eq!(
        (line.topic.as_str(), line.partition, line.offset),
        ("touchpoints", 2, 9)
    );
    assert!(line.detail.contains("UTF-8"), "{}", line.detail);
    assert_eq!(line.timestamp.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    // and the next good record still flows
    out.clear();
    p.process(&rec(10, FAIL.as_bytes()), EventTime(5), &mut out);
    p.flush(EventTime(5), &mut out);
    assert_eq!(out[0].kind, OutboundKind::Task);
}

#[test]
fn tombstones_and_bad_outcomes_are_dead_lettered() {
    let mut p = Processor::new(&Config::defaults());
    let mut out = Vec::new();
    let mut r = rec(1, b"");
    r.payload = None;
    p.process(&r, EventTime(0), &mut out);
    let mut o = rec(2, br#"{"task_id":"t","customer_id":"c","occurred_at":"2026-11-22T10:00:00Z","status":"maybe"}"#);
    o.topic = Arc::from("recovery-outcomes");
    p.process(&o, EventTime(0), &mut out);
    let reasons: Vec<_> = out
        .iter()
        .map(|o| header(o, "amends.reason").unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["decode", "validation"]);
    assert_eq!(header(&out[1], "amends.field"), Some("status"));
}

fn rec_at(offset: i64, json: &str) -> InboundRecord {
    rec(offset, json.as_bytes())
}

fn tasks(out: &[OutboundRecord]) -> Vec<(String, u32, String, String)> {
    out.iter()
        .filter(|o| o.kind == OutboundKind::Task)
        .map(|o| {
            let t: RecoveryTask = serde_json::from_slice(&o.payload).unwrap();
            (t.task_id, t.revision, t.rule, format!("{:?}", t.status))
        })
        .collect()
}

/// Rebuilding a partition's state (`kafka::restore`) replays its records before the
/// committed offset and discards the outputs. Timers due before the last replayed event must
/// fire during the replay, in event-time order, exactly as they did for the previous owner:
/// otherwise an event after a missed deadline meets a promise that is still pending, and
/// the rebuilt state (and every task after it) differs from the live one.
#[test]
fn a_rebuilt_partition_has_fired_the_timers_its_history_passed() {
    let order = r#"{"event_id":"e-1","occurred_at":"2026-11-01T10:00:00Z","customer_id":"c-1","channel":"sales","touchpoint":"checkout","type":"order_placed","outcome":"success","reference":"o-1"}"#;
    let fail = |id: &str, at: &str| {
        format!(
            r#"{{"event_id":"{id}","occurred_at":"{at}","customer_id":"c-1","channel":"billing","touchpoint":"payment","type":"payment_declined","outcome":"failure","reference":"o-1","cause":"internal"}}"#
        )
    };
    let records = [
        rec_at(0, order),
        // 50 h later: the 48 h shipping promise was missed 2 h before.
        rec_at(1, &fail("e-2", "2026-11-03T12:00:00Z")),
        rec_at(2, &fail("e-3", "2026-11-03T13:00:00Z")),
    ];
    let config = Config::defaults();

    let mut live = Processor::new(&config).with_event_clock();
    let mut out = Vec::new();
    for r in &records[..2] {
        live.process(r, EventTime(0), &mut out);
    }
    live.flush(EventTime(0), &mut out);
    let before = tasks(&out);
    assert_eq!(
        before.iter().map(|t| t.2.as_str()).collect::<Vec<_>>(),
        ["missed_expectation", "missed_expectation"],
        "the missed promise opens the task, the failure after it escalates it: {before:?}"
    );
    out.clear();
    live.process(&records[2], EventTime(0), &mut out);
    live.flush(EventTime(0), &mut out);
    let want = tasks(&out);
    assert_eq!(want.len(), 1, "{want:?}");
    assert_eq!(want[0].0, before[0].0, "the same task escalates again");

    // The new owner rebuilds from the first two records, the way `kafka::restore` does.
    let mut rebuilt = Processor::new(&config).with_event_clock();
    let mut discarded = Vec::new();
    for r in &records[..2] {
        rebuilt.process(r, EventTime(0), &mut discarded);
    }
    rebuilt.flush(EventTime(0), &mut discarded);
    let mut out = Vec::new();
    rebuilt.process(&records[2], EventTime(0), &mut out);
    rebuilt.flush(EventTime(0), &mut out);
    assert_eq!(tasks(&out), want);
}

fn outcome_rec(offset: i64, json: &str) -> InboundRecord {
    InboundRecord {
        topic: Arc::from("recovery-outcomes"),
        ..rec(offset, json.as_bytes())
    }
}

fn delivery_failed(id: &str, at: &str, customer: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","customer_id":"{customer}","channel":"shipping","touchpoint":"delivery","type":"delivery_failed","outcome":"failure","reference":"o-1","cause":"internal","amount":120.0,"currency":"EUR","customer":{{"since":"2024-01-01","segment":"smb","annual_value":1200.0}}}}"#
    )
}

fn outcome_json(task_id: &str, customer: &str, at: &str, status: &str) -> String {
    format!(
        r#"{{"task_id":"{task_id}","customer_id":"{customer}","occurred_at":"{at}","status":"{status}","score":4}}"#
    )
}

/// An outcome goes through the reorder buffer with the events, by `occurred_at`: one that
/// arrives before the failure it reports on (within the out-of-orderness) still finds its
/// task, and one that comes by the task's due time keeps the task from going overdue, while
/// another customer's task without an outcome is escalated once.
#[test]
fn outcomes_are_applied_in_event_time_order_with_the_events() {
    let config = Config::defaults();
    let mut p = Processor::new(&config).with_event_clock();
    let task_1 = crate::detect::ids::stable_id("t", &["c-1", "o-1", "e-1"]);
    let mut out = Vec::new();
    // Arrival: the outcome (10:01) first, then the failure (10:00) it is about.
    let outcome = outcome_rec(
        100,
        &outcome_json(&task_1, "c-1", "2026-11-22T10:01:00Z", "resolved"),
    );
    let r = p.process(&outcome, EventTime(0), &mut out);
    assert_eq!(r, Processed::RecoveryOutcome);
    p.process(
        &rec_at(0, &delivery_failed("e-1", "2026-11-22T10:00:00Z", "c-1")),
        EventTime(0),
        &mut out,
    );
    p.process(
        &rec_at(1, &delivery_failed("e-2", "2026-11-22T10:01:30Z", "c-2")),
        EventTime(0),
        &mut out,
    );
    assert!(
        out.is_empty(),
        "all held by the reorder buffer: {:?}",
        tasks(&out)
    );
    assert_eq!(p.buffered_offsets(), [0, 1, 100]);
    // The same outcome delivered again.
    p.process(
        &outcome_rec(
            101,
            &outcome_json(&task_1, "c-1", "2026-11-22T10:01:00Z", "resolved"),
        ),
        EventTime(0),
        &mut out,
    );
    // A day later: the watermark passes everything and both due times (18:00, 18:01:30).
    p.process(
        &rec_at(2, r#"{"event_id":"e-3","occurred_at":"2026-11-23T10:00:00Z","customer_id":"c-3","channel":"sales","touchpoint":"checkout","type":"order_shipped","outcome":"success"}"#),
        EventTime(0),
        &mut out,
    );
    let got = tasks(&out);
    let task_2 = crate::detect::ids::stable_id("t", &["c-2", "o-1", "e-2"]);
    assert_eq!(
        got,
        [
            (
                task_1.clone(),
                1,
                "breaking_point".to_string(),
                "Open".to_string()
            ),
            (
                task_2.clone(),
                1,
                "breaking_point".to_string(),
                "Open".to_string()
            ),
            (
                task_2.clone(),
                2,
                "breaking_point".to_string(),
                "Escalated".to_string()
            ),
        ],
        "only c-2's task, with no outcome, is escalated at its due time"
    );
    let overdue: RecoveryTask = serde_json::from_slice(&out[2].payload).unwrap();
    assert_eq!(
        (overdue.reason.as_deref(), overdue.emitted_at.as_str()),
        (
            Some("overdue: no recovery outcome by the due time 2026-11-22T18:01:30.000Z"),
            "2026-11-22T18:01:30.000Z"
        )
    );
    let mut released = Vec::new();
    p.take_released(&mut released);
    let (tp, rc): (Arc<str>, Arc<str>) = (Arc::from("touchpoints"), Arc::from("recovery-outcomes"));
    assert_eq!(
        released,
        [(tp.clone(), 0), (rc.clone(), 100), (rc, 101), (tp, 1)],
        "in the order applied, each with its topic"
    );

    let mut measures = Vec::new();
    p.take_loop_measures(&mut measures);
    let kinds: Vec<String> = measures
        .iter()
        .map(|m| match &m.kind {
            LoopKind::TaskOpened { rule, .. } => format!("opened {rule} at {}", m.at),
            LoopKind::Outcome {
                status,
                time_to_recovery,
                paradox,
                double_deviation,
            } => format!(
                "{} at {}: {time_to_recovery:?} {paradox:?} {double_deviation}",
                status.as_str(),
                m.at
            ),
            LoopKind::DoubleDeviation => format!("double deviation at {}", m.at),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "opened breaking_point at 2026-11-22T10:00:00.000Z",
            // 10:00 -> 10:01; no survey before, so no paradox.
            "resolved at 2026-11-22T10:01:00.000Z: Some(Millis(60000)) None false",
            "opened breaking_point at 2026-11-22T10:01:30.000Z",
        ]
    );
    assert_eq!(
        (
            &*measures[1].channel,
            measures[1].touchpoint.as_str(),
            measures[1].segment.as_deref(),
            measures[1].failure_type.as_deref()
        ),
        ("shipping", "delivery", Some("smb"), Some("delivery_failed"))
    );
    p.take_loop_measures(&mut measures);
    assert_eq!(measures.len(), 3, "taken once");
    let s = p.engine().stats();
    assert_eq!(
        (
            s.outcomes,
            s.outcomes_duplicate,
            s.outcomes_unknown,
            s.tasks_overdue
        ),
        (2, 1, 0, 1)
    );
    assert_eq!(p.loop_measures_dropped(), 0);
}

#[test]
fn an_outcome_for_an_unknown_task_is_dead_lettered() {
    let mut p = Processor::new(&Config::defaults()).with_event_clock();
    let mut out = Vec::new();
    p.process(
        &rec_at(0, &delivery_failed("e-1", "2026-11-22T10:00:00Z", "c-1")),
        EventTime(0),
        &mut out,
    );
    // Still in the reorder buffer: accepted now, dead-lettered when it is applied.
    let payload = outcome_json("t-nope", "c-1", "2026-11-22T10:05:00Z", "resolved");
    let r = p.process(&outcome_rec(7, &payload), EventTime(0), &mut out);
    assert_eq!(r, Processed::RecoveryOutcome);
    p.flush(EventTime(0), &mut out);
    let dead: Vec<&OutboundRecord> = out
        .iter()
        .filter(|o| o.kind == OutboundKind::DeadLetter)
        .collect();
    assert_eq!(dead.len(), 1, "{out:?}");
    assert_eq!(dead[0].payload, payload.as_bytes(), "original bytes");
    assert_eq!(dead[0].key.as_deref(), Some(&b"c-1"[..]));
    let line = DeadLetterLine::from_record(&dead[0].headers, &dead[0].payload);
    assert_eq!(
        (
            line.reason.as_str(),
            line.field.as_deref(),
            line.topic.as_str(),
            line.offset
        ),
        ("validation", Some("task_id"), "recovery-outcomes", 7)
    );
    assert!(
        line.detail
            .contains("no task t-nope for this customer in this partition's state"),
        "{}",
        line.detail
    );
    assert_eq!(line.dead_lettered_at, "2026-11-22T10:05:00.000Z");
    let mut released = Vec::new();
    p.take_released(&mut released);
    assert!(
        released.contains(&(Arc::from("recovery-outcomes"), 7)),
        "done with: {released:?}"
    );

    // Behind the watermark it is applied, and dead-lettered, at once.
    out.clear();
    let payload = outcome_json("t-nope-2", "c-9", "2026-11-22T09:00:00Z", "no_response");
    match p.process(&outcome_rec(8, &payload), EventTime(0), &mut out) {
        Processed::DeadLettered(err) => {
            assert_eq!(
                (err.reason, err.field.as_deref()),
                (Reason::Validation, Some("task_id"))
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (out.len(), out[0].kind, header(&out[0], "amends.field")),
        (1, OutboundKind::DeadLetter, Some("task_id"))
    );
    assert_eq!(p.engine().stats().outcomes_unknown, 2);
    let mut measures = Vec::new();
    p.take_loop_measures(&mut measures);
    assert!(
        measures
            .iter()
            .all(|m| matches!(m.kind, LoopKind::TaskOpened { .. })),
        "an unknown task is not measured: {measures:?}"
    );
}

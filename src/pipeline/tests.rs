use super::*;
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
    assert_eq!(released, [7]);
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

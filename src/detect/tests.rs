use super::*;
use crate::codec::Decoder;
use std::sync::Arc;

fn event(json: &str) -> TouchpointEvent {
    Decoder::new(&Config::defaults())
        .touchpoint(json.as_bytes())
        .unwrap()
}

fn ev(
    id: &str,
    at: &str,
    customer: &str,
    ty: &str,
    outcome: &str,
    reference: &str,
) -> TouchpointEvent {
    event(&format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","customer_id":"{customer}","channel":"shipping","touchpoint":"delivery",
        "type":"{ty}","outcome":"{outcome}","reference":"{reference}","cause":"internal","amount":120.0,"currency":"EUR",
        "customer":{{"since":"2026-09-01","segment":"consumer","annual_value":1200.0}}}}"#
    ))
}

fn pos(offset: i64) -> SourcePos {
    SourcePos {
        topic: Arc::from("touchpoints"),
        partition: 3,
        offset,
    }
}

/// Applies an event at offset `offset`, stamping outputs with the wall-clock time `now`.
fn feed(eng: &mut Engine, e: &TouchpointEvent, offset: i64, now: EventTime, out: &mut Vec<Output>) {
    eng.on_event(e, &pos(offset), Clock::Wall(now), false, out);
}

/// The task revisions among `out` (the engine's tests and the closed loop's).
pub(super) fn tasks(out: &[Output]) -> Vec<&RecoveryTask> {
    out.iter()
        .filter_map(|o| match o {
            Output::Task(t) => Some(t),
            Output::Loop(_) => None,
        })
        .collect()
}

#[test]
fn single_failure_opens_one_task_with_full_content() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    let now = EventTime::parse("2026-11-22T10:00:05Z").unwrap();
    feed(
        &mut eng,
        &ev(
            "e-1",
            "2026-11-22T10:00:00Z",
            "c-1",
            "order_placed",
            "success",
            "o-1",
        ),
        0,
        now,
        &mut out,
    );
    assert!(out.is_empty(), "a success is not a failure");
    feed(
        &mut eng,
        &ev(
            "e-2",
            "2026-11-22T10:00:01Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        1,
        now,
        &mut out,
    );
    let t = tasks(&out);
    assert_eq!(t.len(), 1);
    let t = t[0];
    assert_eq!(t.rule, "breaking_point");
    assert_eq!((t.revision, t.status), (1, TaskStatus::Open));
    assert_eq!(t.incident, "o-1");
    assert_eq!(t.severity, crate::domain::Severity::Major);
    assert_eq!(t.relationship, crate::domain::Relationship::New);
    // major -> p2 in 8h; new customer -> p1 in 4h, counted from the failure.
    assert_eq!(
        (t.priority.as_str(), t.due_at.as_str()),
        ("p1", "2026-11-22T14:00:01.000Z")
    );
    assert_eq!(t.owner_queue, "shipping-recovery");
    // 15% of 120 + 10 = 28 EUR refund, under the 250 cap for new customers.
    let comp = t.actions[3].compensation.as_ref().unwrap();
    assert_eq!(
        (comp.kind.as_str(), comp.amount, comp.currency.as_str()),
        ("refund", 28.0, "EUR")
    );
    assert_eq!(t.value_at_risk, 180.0);
    assert_eq!(t.evidence.len(), 1);
    assert_eq!(
        (
            t.evidence[0].event_id.as_str(),
            t.evidence[0].partition,
            t.evidence[0].offset
        ),
        ("e-2", 3, 1)
    );
    assert_eq!(
        t.explanation,
        "1st failure in 30 days (delivery failed, cause internal, 120.00 EUR at stake, major severity) for a new customer of 2 months: refund 28.00 EUR and call within 4 h."
    );
    assert_eq!(t.emitted_at, "2026-11-22T10:00:05.000Z");
}

#[test]
fn later_failures_on_the_incident_escalate_the_same_task() {
    // Without the suppression period, which would merge the second reference into the task.
    let mut config = Config::defaults();
    config.detect.suppression_period = crate::config::Dur::secs(0);
    let mut eng = Engine::new(&config);
    let mut out = Vec::new();
    let now = EventTime(0);
    feed(
        &mut eng,
        &ev(
            "e-1",
            "2026-11-22T10:00:00Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        0,
        now,
        &mut out,
    );
    feed(
        &mut eng,
        &ev(
            "e-2",
            "2026-11-23T10:00:00Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        1,
        now,
        &mut out,
    );
    feed(
        &mut eng,
        &ev(
            "e-3",
            "2026-11-23T11:00:00Z",
            "c-1",
            "payment_declined",
            "failure",
            "inv-9",
        ),
        2,
        now,
        &mut out,
    );
    let t = tasks(&out);
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].task_id, t[1].task_id);
    assert_eq!((t[1].revision, t[1].status), (2, TaskStatus::Escalated));
    assert_eq!(
        t[1].evidence
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        ["e-1", "e-2"]
    );
    assert!(
        t[1].explanation
            .starts_with("2nd failure on o-1 (1st incident in 30 days; delivery failed"),
        "{}",
        t[1].explanation
    );
    // The first deadline (4 h after 22 Nov 10:00) had passed when the second failure came, so
    // the escalation gets a fresh one rather than an overdue one.
    assert_eq!(t[1].due_at, "2026-11-23T14:00:00.000Z");
    assert_ne!(
        t[2].task_id, t[0].task_id,
        "another reference is another incident"
    );
    assert_eq!(
        t[2].failure_count, 2,
        "second distinct incident in the repeat window"
    );
    assert_eq!(t[0].rule, "breaking_point");
    assert_eq!(t[2].rule, "repeat_failure");
    // payment_declined is minor by type; a repeat is one step more severe.
    assert_eq!(t[2].severity, crate::domain::Severity::Major);
    assert!(
        t[2].explanation.starts_with("2nd failure in 30 days"),
        "{}",
        t[2].explanation
    );
}

#[test]
fn incident_window_closes_the_incident() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    feed(
        &mut eng,
        &ev(
            "e-1",
            "2026-11-01T10:00:00Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        0,
        EventTime(0),
        &mut out,
    );
    feed(
        &mut eng,
        &ev(
            "e-2",
            "2026-11-20T10:00:00Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        1,
        EventTime(0),
        &mut out,
    );
    let t = tasks(&out);
    assert_ne!(
        t[0].task_id, t[1].task_id,
        "19 days later is outside the 14-day incident window"
    );
    assert_eq!(t[1].revision, 1);
}

#[test]
fn duplicate_event_ids_are_ignored() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    let e = ev(
        "e-1",
        "2026-11-22T10:00:00Z",
        "c-1",
        "delivery_failed",
        "failure",
        "o-1",
    );
    feed(&mut eng, &e, 0, EventTime(0), &mut out);
    feed(&mut eng, &e, 1, EventTime(0), &mut out);
    assert_eq!(tasks(&out).len(), 1);
    assert_eq!(eng.stats().duplicates, 1);
}

#[test]
fn task_ids_are_deterministic_across_engines() {
    let run = || {
        let mut eng = Engine::new(&Config::defaults());
        let mut out = Vec::new();
        feed(
            &mut eng,
            &ev(
                "e-1",
                "2026-11-22T10:00:00Z",
                "c-1",
                "delivery_failed",
                "failure",
                "o-1",
            ),
            0,
            EventTime(0),
            &mut out,
        );
        tasks(&out)[0].task_id.clone()
    };
    assert_eq!(run(), run());
}

#[test]
fn failure_types_and_detractor_scores_classify() {
    let eng = Engine::new(&Config::defaults());
    assert_eq!(
        eng.classify(&ev(
            "e",
            "2026-11-22T10:00:00Z",
            "c",
            "payment_declined",
            "neutral",
            "r"
        )),
        Some(FailureSignal::FailureType)
    );
    let survey = |score: f64| {
        event(&format!(
            r#"{{"event_id":"s","occurred_at":"2026-11-22T10:00:00Z","customer_id":"c","channel":"service","touchpoint":"survey","type":"survey_answered","outcome":"neutral","score":{score}}}"#
        ))
    };
    assert_eq!(eng.classify(&survey(2.0)), Some(FailureSignal::Detractor));
    assert_eq!(eng.classify(&survey(4.0)), None);
}

#[test]
fn state_expires_after_ttl_and_is_capped() {
    let mut cfg = Config::defaults();
    cfg.detect.max_customers = 10;
    let mut eng = Engine::new(&cfg);
    let mut out = Vec::new();
    for i in 0..25 {
        let at = EventTime::parse("2026-11-01T00:00:00Z")
            .unwrap()
            .plus(Millis(i * 1000));
        let e = ev(
            &format!("e-{i}"),
            &at.to_string(),
            &format!("c-{i}"),
            "order_placed",
            "success",
            "o",
        );
        feed(&mut eng, &e, i, EventTime(0), &mut out);
    }
    assert!(eng.customers() <= 10);
    assert!(eng.stats().evicted >= 15);
    eng.set_watermark(EventTime::parse("2027-06-01T00:00:00Z").unwrap());
    assert_eq!(eng.customers(), 0);
    assert!(eng.stats().expired > 0);
}

#[test]
fn eviction_among_equally_idle_customers_is_deterministic() {
    // Customers with the same last activity: which ones go must not depend on HashMap order.
    let kept = || {
        let mut cfg = Config::defaults();
        cfg.detect.max_customers = 4;
        let mut eng = Engine::new(&cfg);
        let mut out = Vec::new();
        for i in 0..12 {
            let e = ev(
                &format!("e-{i}"),
                "2026-11-01T00:00:00Z",
                &format!("c-{i:02}"),
                "order_placed",
                "success",
                "o",
            );
            feed(&mut eng, &e, i, EventTime(0), &mut out);
        }
        let mut ids: Vec<String> = eng.customers.keys().map(|k| k.to_string()).collect();
        ids.sort();
        ids
    };
    let first = kept();
    for _ in 0..20 {
        assert_eq!(kept(), first);
    }
    assert!(
        first.len() <= 4 && first.last().map(String::as_str) == Some("c-11"),
        "{first:?}"
    );
}

#[test]
fn a_low_survey_score_is_a_detractor_task() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    let survey = event(
        r#"{"event_id":"s-1","occurred_at":"2026-11-22T10:00:00Z","customer_id":"c-9","channel":"service","touchpoint":"survey","type":"survey_answered","outcome":"neutral","reference":"order-5","score":1}"#,
    );
    feed(&mut eng, &survey, 0, EventTime(0), &mut out);
    let t = tasks(&out);
    assert_eq!(
        (t.len(), t[0].rule.as_str(), t[0].incident.as_str()),
        (1, "detractor", "order-5")
    );
}

fn contact(
    id: &str,
    at: &str,
    channel: &str,
    touchpoint: &str,
    ty: &str,
    reference: &str,
) -> TouchpointEvent {
    event(&format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","customer_id":"c-1","channel":"{channel}","touchpoint":"{touchpoint}","type":"{ty}","outcome":"neutral","reference":"{reference}"}}"#
    ))
}

#[test]
fn a_contact_in_another_channel_after_a_failure_is_a_cascade() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    feed(
        &mut eng,
        &ev(
            "e-1",
            "2026-11-22T10:00:00Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        0,
        EventTime(0),
        &mut out,
    );
    feed(
        &mut eng,
        &contact(
            "k-1",
            "2026-11-22T11:00:00Z",
            "service",
            "phone",
            "call_received",
            "o-1",
        ),
        1,
        EventTime(0),
        &mut out,
    );
    // A second contact in the same other channel is not another cascade.
    feed(
        &mut eng,
        &contact(
            "k-2",
            "2026-11-22T12:00:00Z",
            "service",
            "ticket",
            "ticket_opened",
            "o-1",
        ),
        2,
        EventTime(0),
        &mut out,
    );
    let t = tasks(&out);
    assert_eq!(
        t.len(),
        2,
        "the failure opens, the first contact escalates: {t:#?}"
    );
    assert_eq!(
        (
            t[1].task_id == t[0].task_id,
            t[1].revision,
            t[1].rule.as_str()
        ),
        (true, 2, "cascade")
    );
    // major, new customer: p1 already; the boost saturates at p1.
    assert_eq!(t[1].priority, "p1");
    assert_eq!(
        t[1].reason.as_deref(),
        Some("cascade: the customer turned to service (phone) after the delivery failed on o-1")
    );
    assert!(
        t[1].explanation
            .starts_with("Cascade: the customer turned to service"),
        "{}",
        t[1].explanation
    );
    assert_eq!(
        t[1].evidence
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        ["e-1", "k-1"]
    );
    // A later failure escalates again; that revision is the failure's, so the rule that
    // opened the incident is back.
    feed(
        &mut eng,
        &ev(
            "e-5",
            "2026-11-22T13:00:00Z",
            "c-1",
            "delivery_failed",
            "failure",
            "o-1",
        ),
        5,
        EventTime(0),
        &mut out,
    );
    let t = tasks(&out);
    assert_eq!(
        (t[2].revision, t[2].rule.as_str(), t[2].reason.as_deref()),
        (3, "breaking_point", Some("failure 2 on the same incident"))
    );
}

#[test]
fn repeated_contacts_about_one_reference_are_customer_effort() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    // No failure event at all: three contacts about one order within 72 h open a task.
    for (i, at) in [
        "2026-11-22T09:00:00Z",
        "2026-11-23T09:00:00Z",
        "2026-11-24T08:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        feed(
            &mut eng,
            &contact(
                &format!("k-{i}"),
                at,
                "service",
                "ticket",
                "ticket_opened",
                "o-7",
            ),
            i as i64,
            EventTime(0),
            &mut out,
        );
    }
    let t = tasks(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].rule.as_str(), t[0].revision, t[0].incident.as_str()),
        ("customer_effort", 1, "o-7")
    );
    assert_eq!(
        t[0].reason.as_deref(),
        Some("customer effort: 3 contacts about o-7 within 3 days")
    );
    // minor by default, unknown customer: p3 -> p2, effort: -> p1.
    assert_eq!(t[0].priority, "p1");
    assert_eq!(t[0].evidence.len(), 3);
    // A fourth contact does not open or escalate again.
    feed(
        &mut eng,
        &contact(
            "k-9",
            "2026-11-24T09:00:00Z",
            "service",
            "ticket",
            "ticket_opened",
            "o-7",
        ),
        9,
        EventTime(0),
        &mut out,
    );
    assert_eq!(tasks(&out).len(), 1);
}

#[test]
fn the_same_problem_in_two_channels_is_customer_effort() {
    let mut eng = Engine::new(&Config::defaults());
    let mut out = Vec::new();
    feed(
        &mut eng,
        &contact(
            "k-1",
            "2026-11-22T09:00:00Z",
            "service",
            "phone",
            "call_received",
            "inv-3",
        ),
        0,
        EventTime(0),
        &mut out,
    );
    feed(
        &mut eng,
        &contact(
            "k-2",
            "2026-11-22T10:00:00Z",
            "billing",
            "invoice",
            "email_received",
            "inv-3",
        ),
        1,
        EventTime(0),
        &mut out,
    );
    let t = tasks(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].rule, "customer_effort");
    assert_eq!(
        t[0].reason.as_deref(),
        Some("customer effort: inv-3 raised in 2 channels (billing, service)")
    );
}

//! Trend snapshots and alerts through `amends replay`'s processing (one source, partials
//! merged back through the same processor, as the service does over Kafka): an injected
//! spike, window edges, and the closed-loop figures on hand-computed inputs.

use amends::app::replay::{read_outcomes, replay_with_outcomes, ReplaySummary, Writers};
use amends::config::{Config, Dur};
use amends::domain::{EventTime, Millis};
use amends::sim::{SimConfig, Simulator, Spike};
use serde_json::Value;

struct Out {
    summary: ReplaySummary,
    tasks: Vec<Value>,
    dead: Vec<Value>,
    snapshots: Vec<Value>,
    alerts: Vec<Value>,
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect()
}

fn replay(config: &Config, events: &[u8], outcomes: &[u8]) -> Out {
    let (mut t, mut d, mut s, mut a) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut w = Writers {
        tasks: &mut t,
        dead: &mut d,
        snapshots: &mut s,
        alerts: &mut a,
    };
    let outcomes = read_outcomes(outcomes).expect("outcomes");
    let summary = replay_with_outcomes(config, events, outcomes, &mut w).expect("replay");
    Out {
        summary,
        tasks: lines(&t),
        dead: lines(&d),
        snapshots: lines(&s),
        alerts: lines(&a),
    }
}

fn simulated(spike: Option<Spike>) -> Vec<u8> {
    let sim = Simulator::new(SimConfig {
        customers: 1_500,
        duration: Millis::from_days(3),
        spike,
        ..SimConfig::default()
    });
    let mut bytes = Vec::new();
    sim.write_jsonl(&mut bytes).expect("simulate");
    bytes
}

fn t(s: &str) -> i64 {
    EventTime::parse(s).expect("time").0
}

/// Three simulated days with a daily rhythm (deliveries fail by day, never by night): no
/// alert. The same days with billing failing six times as often for two hours on day 3: the
/// billing channel fires exactly one alert per window width's episode, which resolves after
/// the spike; nothing outside billing fires.
#[test]
fn a_spike_fires_one_alert_that_resolves_and_the_same_traffic_without_it_fires_none() {
    let config = Config::defaults();
    let calm = replay(&config, &simulated(None), b"");
    assert!(calm.snapshots.len() > 1_000, "{}", calm.snapshots.len());
    assert_eq!(calm.alerts, Vec::<Value>::new(), "no spike, no alert");

    let spike = Spike::parse("2026-11-23T12:00:00Z,2h,billing,6").expect("spike");
    let (from, to) = (t("2026-11-23T12:00:00Z"), t("2026-11-23T14:00:00Z"));
    let hot = replay(&config, &simulated(Some(spike)), b"");
    assert!(!hot.alerts.is_empty(), "the spike fires");
    for a in &hot.alerts {
        let dim = a["dimension"].as_str().unwrap_or_default();
        for other in ["sales", "shipping", "service"] {
            assert!(
                !dim.contains(&format!("={other}")),
                "only billing breaks away: {a}"
            );
        }
    }
    let billing: Vec<&Value> = hot
        .alerts
        .iter()
        .filter(|a| a["dimension"] == "channel=billing" && a["window_seconds"] == 3600)
        .collect();
    assert_eq!(
        billing
            .iter()
            .map(|a| a["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["firing", "resolved"],
        "{billing:?}"
    );
    assert_eq!(billing[0]["alert_id"], billing[1]["alert_id"]);
    let fired_in = t(billing[0]["window_start"].as_str().unwrap());
    assert!(fired_in >= from && fired_in < to, "fires during the spike");
    let resolved_in = t(billing[1]["window_start"].as_str().unwrap());
    assert!(resolved_in >= to, "resolves after the spike");
    assert!(
        billing[0]["observed_rate"].as_f64().unwrap()
            > 3.0 * billing[0]["baseline_rate"].as_f64().unwrap()
    );
    assert_eq!(billing[0]["baseline_kind"], "daily");
    // One alert per episode, not one per window: every alert id fires once and resolves once.
    for a in hot.alerts.iter().filter(|a| a["status"] == "firing") {
        let id = &a["alert_id"];
        let statuses: Vec<&Value> = hot
            .alerts
            .iter()
            .filter(|b| &b["alert_id"] == id)
            .map(|b| &b["status"])
            .collect();
        assert_eq!(
            statuses,
            [&Value::from("firing"), &Value::from("resolved")],
            "{id}"
        );
    }
}

fn event(
    id: &str,
    at: &str,
    customer: &str,
    channel: &str,
    ty: &str,
    outcome: &str,
    extra: &str,
) -> String {
    let touchpoint = if channel == "service" {
        "survey"
    } else {
        "payment"
    };
    format!(
        r#"{{"event_id":"{id}","occurred_at":"{at}","customer_id":"{customer}","channel":"{channel}","touchpoint":"{touchpoint}","type":"{ty}","outcome":"{outcome}","reference":"r-{customer}"{extra}}}"#
    )
}

fn snapshot<'a>(out: &'a Out, id: &str) -> Option<&'a Value> {
    out.snapshots.iter().rfind(|s| s["snapshot_id"] == id)
}

/// An event exactly at a boundary opens the next window; a late event counts in no window
/// (it is dead-lettered as late); an empty window produces no snapshot and does not stop the
/// windows after it.
#[test]
fn window_edges_boundary_late_and_empty() {
    let mut config = Config::defaults();
    config.trend.windows = vec![Dur::mins(5)];
    let ev = |id: &str, at: &str| {
        event(
            id,
            at,
            &format!("c-{id}"),
            "billing",
            "payment_taken",
            "success",
            "",
        )
    };
    let events = [
        ev("a", "2026-11-22T10:00:00Z"),
        ev("b", "2026-11-22T10:04:59.999Z"),
        ev("c", "2026-11-22T10:05:00Z"),
        // 10:10 to 10:20: nothing.
        ev("d", "2026-11-22T10:21:00Z"),
        ev("e", "2026-11-22T12:30:00Z"),
        // 2 h 29 min behind the newest event: later than the allowed lateness (1 h).
        ev("late", "2026-11-22T10:01:00Z"),
    ]
    .join("\n");
    let out = replay(&config, events.as_bytes(), b"");
    let count = |start: &str| {
        let id = format!("channel=billing@300000@{}", t(start));
        snapshot(&out, &id).map(|s| s["events"].as_u64().unwrap())
    };
    assert_eq!(
        count("2026-11-22T10:00:00Z"),
        Some(2),
        "a and b; the late one is not counted"
    );
    assert_eq!(
        count("2026-11-22T10:05:00Z"),
        Some(1),
        "c, exactly at the boundary"
    );
    assert_eq!(count("2026-11-22T10:10:00Z"), None, "empty: no snapshot");
    assert_eq!(count("2026-11-22T10:15:00Z"), None, "empty: no snapshot");
    assert_eq!(
        count("2026-11-22T10:20:00Z"),
        Some(1),
        "d, after the empty windows"
    );
    assert_eq!(
        count("2026-11-22T12:30:00Z"),
        Some(1),
        "the last window closes at end of input"
    );
    let late: Vec<&Value> = out.dead.iter().filter(|d| d["reason"] == "late").collect();
    assert_eq!(late.len(), 1, "{:?}", out.dead);
    assert_eq!(late[0]["offset"], 5);
    let s = snapshot(
        &out,
        &format!("channel=billing@300000@{}", t("2026-11-22T10:00:00Z")),
    )
    .unwrap();
    assert_eq!(
        (s["complete"].as_bool(), s["customers"].as_u64()),
        (Some(true), Some(2))
    );
}

/// Three recoveries, computed by hand:
/// - c1 rated 3 before its failure, the recovery resolved 2 h after detection with a score
///   of 4 (paradox: at or above), then c1 failed again a day later (double deviation: the
///   recovery did not hold);
/// - c2 rated 4 before, resolved after 3 h with a score of 3 (no paradox);
/// - c3's recovery was `unresolved` (double deviation: the recovery itself failed).
#[test]
fn closed_loop_figures_match_hand_computed_values() {
    let config = Config::defaults();
    let fail = |id: &str, at: &str, c: &str| {
        event(
            id,
            at,
            c,
            "billing",
            "payment_declined",
            "failure",
            r#","cause":"internal""#,
        )
    };
    let survey = |id: &str, at: &str, c: &str, score: u32| {
        event(
            id,
            at,
            c,
            "service",
            "survey_answered",
            "neutral",
            &format!(r#","score":{score}"#),
        )
    };
    let events = [
        survey("s1", "2026-11-22T09:00:00Z", "c1", 3),
        survey("s2", "2026-11-22T09:00:00Z", "c2", 4),
        fail("f1", "2026-11-22T10:00:00Z", "c1"),
        fail("f2", "2026-11-22T10:00:00Z", "c2"),
        fail("f3", "2026-11-22T10:00:00Z", "c3"),
        fail("f4", "2026-11-23T10:30:00Z", "c1"),
        event(
            "z",
            "2026-11-23T12:00:00Z",
            "c9",
            "billing",
            "payment_taken",
            "success",
            "",
        ),
    ]
    .join("\n");
    let first = replay(&config, events.as_bytes(), b"");
    let task_of = |c: &str| {
        first
            .tasks
            .iter()
            .find(|t| t["customer_id"] == c && t["revision"] == 1)
            .map(|t| t["task_id"].as_str().unwrap().to_string())
            .expect("a task")
    };
    let outcome = |c: &str, at: &str, status: &str, score: &str| {
        format!(
            r#"{{"task_id":"{}","customer_id":"{c}","occurred_at":"{at}","status":"{status}"{score}}}"#,
            task_of(c)
        )
    };
    let outcomes = [
        outcome("c1", "2026-11-22T12:00:00Z", "resolved", r#","score":4"#),
        outcome("c3", "2026-11-22T12:30:00Z", "unresolved", ""),
        outcome("c2", "2026-11-22T13:00:00Z", "resolved", r#","score":3"#),
    ]
    .join("\n");
    let out = replay(&config, events.as_bytes(), outcomes.as_bytes());
    assert_eq!(out.summary.outcomes, 3);
    assert!(out.dead.is_empty(), "{:?}", out.dead);
    let hour = |at: &str| {
        snapshot(&out, &format!("channel=billing@3600000@{}", t(at)))
            .unwrap_or_else(|| panic!("snapshot for {at}"))
    };
    let noon = hour("2026-11-22T12:00:00Z");
    assert_eq!(noon["outcomes"]["received"], 2);
    assert_eq!(noon["outcomes"]["resolved"], 1);
    assert_eq!(noon["outcomes"]["unresolved"], 1);
    assert_eq!(noon["recovery_success_rate"], 0.5);
    assert_eq!(noon["double_deviations"], 1, "c3's failed recovery");
    assert_eq!(noon["double_deviation_rate"], 0.5);
    assert_eq!(
        noon["paradox_rate"], 1.0,
        "c1: 4 after, 3 before; c3 gave no score"
    );
    let ttr = noon["median_time_to_recovery_seconds"].as_f64().unwrap();
    assert!((ttr / 7_200.0 - 1.0).abs() < 0.1, "about 2 h: {ttr}");
    let one = hour("2026-11-22T13:00:00Z");
    assert_eq!(one["outcomes"]["resolved"], 1);
    assert_eq!(one["paradox_rate"], 0.0, "c2: 3 after, 4 before");
    let ttr = one["median_time_to_recovery_seconds"].as_f64().unwrap();
    assert!((ttr / 10_800.0 - 1.0).abs() < 0.1, "about 3 h: {ttr}");
    let next_day = hour("2026-11-23T10:00:00Z");
    assert_eq!(
        next_day["double_deviations"], 1,
        "c1 failed again within the follow-up period"
    );
    assert_eq!(
        next_day["double_deviation_rate"],
        Value::Null,
        "no outcome in that window"
    );
    // The failure windows themselves: three failures at 10:00, tasks opened by rule.
    let ten = hour("2026-11-22T10:00:00Z");
    assert_eq!(
        (ten["failures"].as_u64(), ten["tasks_opened"].as_u64()),
        (Some(3), Some(3))
    );
}

/// `amends replay` merges its own partials directly (`Processor::with_local_merge`); the
/// snapshots and alerts are exactly those of the service's path, where the partials go out
/// as partials-topic records and come back through a merging processor.
#[test]
fn the_local_merge_gives_what_the_partials_topic_gives() {
    use amends::pipeline::{InboundRecord, OutboundKind, Processor, Watermarking};
    let config = Config::defaults();
    let events = simulated(Some(
        Spike::parse("2026-11-23T12:00:00Z,2h,billing,6").expect("spike"),
    ));
    let via_replay = replay(&config, &events, b"");
    // The service's path, one source: the partials as records into a second processor.
    let mut source = Processor::new(&config)
        .with_event_clock()
        .with_watermarking(Watermarking::External);
    source.set_trend_source("touchpoints/0".into());
    let mut merge = Processor::new(&config);
    let mut outs = Vec::new();
    let mut merged = Vec::new();
    let mut now = EventTime::MIN;
    let mut feed = |outs: &mut Vec<amends::pipeline::OutboundRecord>, merged: &mut Vec<_>| {
        for (i, o) in outs.drain(..).enumerate() {
            if matches!(
                o.kind,
                OutboundKind::TrendPartial | OutboundKind::TrendClosed
            ) {
                merge.process(&o.read_back(0, i as i64), EventTime(0), merged);
            }
        }
    };
    for (i, line) in events
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let rec = InboundRecord {
            topic: "touchpoints".into(),
            partition: 0,
            offset: i as i64,
            key: None,
            payload: Some(line.to_vec()),
            timestamp_ms: None,
        };
        if let amends::pipeline::Processed::Event { event_time, .. } =
            source.process(&rec, now, &mut outs)
        {
            now = now.max(event_time);
        }
        let wm = now.plus(Millis(-config.detect.out_of_orderness.millis().0));
        source.advance(wm, now, amends::detect::FiredBy::EventTime, &mut outs);
        feed(&mut outs, &mut merged);
    }
    source.flush(now, &mut outs);
    source.close_trend_windows(&mut outs);
    feed(&mut outs, &mut merged);
    let of = |kind: OutboundKind| -> Vec<Value> {
        merged
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| serde_json::from_slice(&o.payload).expect("json"))
            .collect()
    };
    let (snapshots, alerts) = (
        of(OutboundKind::TrendSnapshot),
        of(OutboundKind::TrendAlert),
    );
    assert!(snapshots.len() > 1000, "{}", snapshots.len());
    assert!(!alerts.is_empty(), "the spike fires");
    assert_eq!(snapshots, via_replay.snapshots);
    assert_eq!(alerts, via_replay.alerts);
}

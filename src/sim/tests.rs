//! Tests of the simulator's output as amends sees it: decoded with the default configuration.

use super::*;
use crate::codec::Decoder;
use crate::config::Config;
use crate::domain::{Outcome, TouchpointEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

/// One default day (2,000 customers), generated once and shared by the tests.
fn day() -> &'static (Simulator, Vec<SimRecord>) {
    static DAY: OnceLock<(Simulator, Vec<SimRecord>)> = OnceLock::new();
    DAY.get_or_init(|| {
        let sim = Simulator::new(SimConfig::default());
        let records = sim.records();
        (sim, records)
    })
}

fn decoded() -> &'static Vec<TouchpointEvent> {
    static EVENTS: OnceLock<Vec<TouchpointEvent>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let decoder = Decoder::new(&Config::defaults());
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for r in &day().1 {
            match decoder.touchpoint(&r.payload) {
                Ok(e) => {
                    if seen.insert(e.event_id.clone()) {
                        out.push(e);
                    }
                }
                Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&r.payload)),
            }
        }
        out
    })
}

fn small(seed: u64, poison_every: usize) -> SimConfig {
    SimConfig {
        seed,
        customers: 150,
        poison_every,
        duplicate_rate: 0.02,
        ..SimConfig::default()
    }
}

#[test]
fn same_config_same_bytes() {
    let mut a = Vec::new();
    let mut b = Vec::new();
    let na = Simulator::new(small(7, 40)).write_jsonl(&mut a).unwrap();
    let nb = Simulator::new(small(7, 40)).write_jsonl(&mut b).unwrap();
    assert_eq!((na, a.len()), (nb, b.len()));
    assert!(a == b, "same config must give byte-identical output");
    let mut c = Vec::new();
    Simulator::new(small(8, 40)).write_jsonl(&mut c).unwrap();
    assert!(a != c, "another seed must give other traffic");
    // The iterator and the writer agree record for record.
    let sim = Simulator::new(small(7, 40));
    let lines: Vec<&[u8]> = a.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let records = sim.records();
    assert_eq!(lines.len(), records.len());
    assert_eq!(records.len(), sim.len());
    assert_eq!(sim.iter().len(), sim.len());
    assert!(lines
        .iter()
        .zip(&records)
        .all(|(l, r)| *l == r.payload.as_slice()));
}

#[test]
fn every_event_decodes_and_is_well_formed() {
    let (sim, records) = day();
    let events = decoded();
    assert_eq!(events.len(), sim.stats().events);
    assert_eq!(records.len(), sim.stats().records);
    let start = sim.config().start;
    let end = start.plus(sim.config().duration);
    for (r, e) in records.iter().zip(0..) {
        let text = std::str::from_utf8(&r.payload).unwrap();
        assert!(!r.payload.contains(&b'\n'));
        assert!(
            (200..700).contains(&r.payload.len()),
            "record {e} is {} bytes: {text}",
            r.payload.len()
        );
        assert!(r.occurred_at >= start && r.occurred_at < end);
        assert!(
            text.contains(&format!("\"occurred_at\":\"{}\"", r.occurred_at)),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\"customer_id\":\"{}\"",
                String::from_utf8_lossy(&r.key)
            )),
            "{text}"
        );
    }
    let ids: HashSet<&str> = events.iter().map(|e| &*e.event_id).collect();
    assert_eq!(ids.len(), events.len());
    assert!(ids.contains("e-00000001"));
    let with_profile = events.iter().filter(|e| e.customer.is_some()).count();
    assert!(
        with_profile * 10 > events.len() * 9,
        "{with_profile} of {}",
        events.len()
    );
    let segments: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.customer.as_ref()?.segment.as_deref())
        .collect();
    assert_eq!(segments, BTreeSet::from(["consumer", "enterprise", "smb"]));
    let mean_size = records.iter().map(|r| r.payload.len()).sum::<usize>() / records.len();
    assert!(
        (300..=450).contains(&mean_size),
        "mean payload {mean_size} bytes"
    );
}

#[test]
fn volume_matches_the_documented_rate() {
    let (sim, _) = day();
    let per_customer = sim.stats().events as f64 / sim.config().customers as f64;
    assert!(
        (per_customer / EVENTS_PER_CUSTOMER_DAY - 1.0).abs() < 0.1,
        "{per_customer} events per customer-day"
    );
    let cfg = SimConfig::for_events(1_000_000);
    assert!(
        (cfg.expected_events() as f64 / 1e6 - 1.0).abs() < 0.01,
        "{cfg:?}"
    );
}

#[test]
fn failures_are_a_few_percent_and_have_causes() {
    let events = decoded();
    let failures: Vec<&TouchpointEvent> = events
        .iter()
        .filter(|e| e.outcome == Outcome::Failure)
        .collect();
    let detractors = events
        .iter()
        .filter(|e| e.score.is_some_and(|s| s <= 2.0))
        .count();
    let share = failures.len() as f64 / events.len() as f64;
    let with_detractors = (failures.len() + detractors) as f64 / events.len() as f64;
    assert!((0.02..=0.08).contains(&share), "failure share {share}");
    assert!(
        (0.02..=0.08).contains(&with_detractors),
        "failure share with detractors {with_detractors}"
    );
    let mut causes: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &failures {
        *causes
            .entry(f.cause.map(|c| c.as_str()).unwrap_or("none"))
            .or_default() += 1;
    }
    let internal = causes.get("internal").copied().unwrap_or(0) as f64 / failures.len() as f64;
    assert!(!causes.contains_key("none"), "{causes:?}");
    assert!((0.45..0.75).contains(&internal), "{causes:?}");
    assert!(
        causes.get("unknown").copied().unwrap_or(0) > 0
            && causes.get("external").copied().unwrap_or(0) > 0
    );
    // Failures are followed by contacts about the same reference.
    let mut by_ref: HashMap<(&str, &str), Vec<&TouchpointEvent>> = HashMap::new();
    for e in events {
        if let Some(r) = e.reference.as_deref() {
            by_ref.entry((&*e.customer_id, r)).or_default().push(e);
        }
    }
    let followed = by_ref
        .values()
        .filter(|evs| {
            let is_contact = |e: &&&TouchpointEvent| {
                e.channel.as_str() == "service" && &*e.event_type != "survey_answered"
            };
            let operational_failure = |e: &&&TouchpointEvent| {
                e.outcome == Outcome::Failure && e.channel.as_str() != "service"
            };
            let first = evs
                .iter()
                .filter(operational_failure)
                .map(|e| e.occurred_at)
                .min();
            first.is_some_and(|t| evs.iter().filter(is_contact).any(|e| e.occurred_at > t))
        })
        .count();
    assert!(
        followed > 50,
        "{followed} failure incidents followed by a contact"
    );
    let cross = by_ref
        .values()
        .filter(|evs| {
            let kinds: HashSet<&str> = evs
                .iter()
                .filter(|e| e.channel.as_str() == "service")
                .map(|e| &*e.touchpoint)
                .collect();
            kinds.contains("ticket") && kinds.contains("phone")
        })
        .count();
    assert!(cross > 5, "{cross} incidents with both tickets and calls");
}

#[test]
fn all_channels_and_types_appear() {
    let seen: BTreeSet<(String, String, String)> = decoded()
        .iter()
        .map(|e| {
            (
                e.channel.as_str().to_string(),
                e.touchpoint.to_string(),
                e.event_type.to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = event::Kind::ALL
        .iter()
        .map(|k| k.names())
        .map(|(c, t, n)| (c.into(), t.into(), n.into()))
        .collect();
    assert_eq!(seen, want);
    let failure_types = Config::defaults().detect.failure_types;
    for e in decoded() {
        let listed = failure_types.iter().any(|t| *t == *e.event_type);
        assert_eq!(listed, e.outcome == Outcome::Failure, "{}", e.event_type);
        match &*e.event_type {
            "survey_answered" => assert!(
                e.score.is_some_and(|s| (1.0..=5.0).contains(&s)) && e.outcome == Outcome::Neutral
            ),
            "order_placed" => {
                assert!(e
                    .reference
                    .as_deref()
                    .is_some_and(|r| r.starts_with("order-")));
                assert!(e.amount.is_some() && e.currency.as_deref() == Some("EUR"));
                assert!(e.expected_by.is_some_and(|t| t > e.occurred_at));
            }
            "delivery_scheduled" => assert!(e.expected_by.is_some_and(|t| t > e.occurred_at)),
            "order_shipped" | "delivered" | "delivery_failed" => {
                assert!(e.attributes.iter().any(|(k, _)| &**k == "carrier"))
            }
            "payment_authorized" | "payment_declined" => {
                assert!(e.attributes.iter().any(|(k, _)| &**k == "payment_method"))
            }
            _ => {}
        }
    }
}

#[test]
fn traffic_follows_the_day() {
    let mut by_hour = [0usize; 24];
    for e in decoded() {
        by_hour[(e.occurred_at.0.rem_euclid(DAY_MS) / 3_600_000) as usize] += 1;
    }
    let night: usize = by_hour[1..6].iter().sum();
    let day: usize = by_hour[10..15].iter().sum();
    assert!(day > 4 * night, "{by_hour:?}");
}

#[test]
fn some_records_are_late_and_some_twice() {
    let (sim, records) = day();
    let mut latest = EventTime::MIN;
    let mut late = 0;
    let mut late_by_minutes = 0;
    for r in records {
        if r.occurred_at < latest {
            late += 1;
            if latest.0 - r.occurred_at.0 > 2 * MINUTE_MS {
                late_by_minutes += 1;
            }
        }
        latest = latest.max(r.occurred_at);
    }
    assert_eq!(late, sim.stats().out_of_order);
    let share = late as f64 / records.len() as f64;
    assert!(
        (0.005..0.03).contains(&share),
        "{late} late of {}",
        records.len()
    );
    assert!(
        late_by_minutes > 0 && late_by_minutes * 4 < late,
        "{late_by_minutes} of {late}"
    );
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for r in records {
        *counts.entry(&r.payload).or_default() += 1;
    }
    let twice = counts.values().filter(|n| **n == 2).count();
    assert!(counts.values().all(|n| *n <= 2));
    assert_eq!(twice, sim.stats().duplicates);
    assert!(twice > 20 && twice < records.len() / 50, "{twice}");
}

#[test]
fn poison_kinds_dead_letter_with_their_reason() {
    let decoder = Decoder::new(&Config::defaults());
    for kind in PoisonKind::ALL {
        for seq in [1, 99] {
            let p = poison_payload(kind, seq);
            assert!(!p.contains(&b'\n'), "{}", kind.name());
            assert_eq!(p, poison_payload(kind, seq));
            let err = decoder.touchpoint(&p).expect_err(kind.name());
            assert_eq!(
                err.reason.as_str(),
                kind.expected_reason(),
                "{}: {err}",
                kind.name()
            );
        }
    }
    let text = |k| String::from_utf8_lossy(&poison_payload(k, 3)).into_owned();
    assert_eq!(poison_payload(PoisonKind::Oversize, 3).len(), 1_048_577);
    assert!(poison_payload(PoisonKind::InvalidUtf8, 3).contains(&0xFF));
    assert!(!text(PoisonKind::MissingField).contains("customer_id"));
    assert!(text(PoisonKind::WrongType).contains("\"amount\":\"lots\""));
    assert!(text(PoisonKind::UnknownEnum).contains("\"outcome\":\"sideways\""));
    assert!(text(PoisonKind::BadTimestamp).contains("\"occurred_at\":\"22/11/2026 10:15\""));
    let names: HashSet<&str> = PoisonKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), 7);
}

#[test]
fn poison_is_interleaved_every_n_records() {
    let sim = Simulator::new(SimConfig {
        poison_every: 10,
        ..small(3, 0)
    });
    let records = sim.records();
    let poison: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.poison.is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(poison.len(), sim.stats().poison);
    assert!(poison.len() > 14);
    assert!(
        poison.iter().enumerate().all(|(k, i)| *i == 11 * k + 10),
        "{poison:?}"
    );
    let kinds: HashSet<PoisonKind> = records.iter().filter_map(|r| r.poison).collect();
    assert_eq!(kinds.len(), 7);
    let decoder = Decoder::new(&Config::defaults());
    for r in &records {
        assert_eq!(decoder.touchpoint(&r.payload).is_err(), r.poison.is_some());
        assert!(r.key.starts_with(b"c-"));
    }
}

#[test]
fn edge_configs_do_not_panic() {
    for cfg in [
        SimConfig {
            customers: 0,
            ..SimConfig::default()
        },
        SimConfig {
            duration: Millis(0),
            customers: 10,
            poison_every: 1,
            ..SimConfig::default()
        },
        SimConfig {
            customers: 3,
            failure_rate: 1.0,
            out_of_order_rate: f64::NAN,
            duplicate_rate: 1.0,
            ..SimConfig::default()
        },
        SimConfig {
            customers: 3,
            poison_every: 1,
            ..SimConfig::default()
        },
        SimConfig {
            customers: 20,
            spike: spike("2026-11-21T00:00:00Z,24h,service,1000"),
            ..SimConfig::default()
        },
        SimConfig {
            customers: 20,
            failure_rate: 1.0,
            spike: spike("2026-11-20T00:00:00Z,72h,shipping,0"),
            ..SimConfig::default()
        },
        SimConfig {
            customers: 3,
            duration: Millis::from_days(30),
            ..SimConfig::default()
        },
    ] {
        let sim = Simulator::new(cfg);
        let mut out = Vec::new();
        assert_eq!(sim.write_jsonl(&mut out).unwrap(), sim.len());
    }
}

/// Release timing: `cargo test --release --lib sim::tests::million_events -- --ignored --nocapture`.
#[test]
#[ignore]
fn million_events() {
    let t0 = std::time::Instant::now();
    let sim = Simulator::new(SimConfig::for_events(1_000_000));
    let generated = t0.elapsed();
    let mut sink = io::sink();
    let n = sim.write_jsonl(&mut sink).unwrap();
    println!(
        "{:?}; {n} records; generate {generated:?}, total {:?}",
        sim.stats(),
        t0.elapsed()
    );
}

#[test]
#[ignore]
fn summary() {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for e in decoded() {
        *by_type.entry(&e.event_type).or_default() += 1;
    }
    let n = decoded().len();
    for (k, v) in &by_type {
        println!("{k:24} {v:7} {:.4}", *v as f64 / n as f64);
    }
    println!("{:?}", day().0.stats());
    let sizes: usize = day().1.iter().map(|r| r.payload.len()).sum();
    println!("mean size {}", sizes / day().1.len());
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    for e in decoded().iter().filter(|e| e.outcome == Outcome::Failure) {
        *causes.entry(format!("{:?}", e.cause)).or_default() += 1;
    }
    println!("causes {causes:?}");
    let failed = decoded()
        .iter()
        .find(|e| &*e.event_type == "delivery_failed" && e.occurred_at.0 % DAY_MS < 36_000_000);
    if let Some(f) = failed {
        for e in decoded().iter().filter(|e| e.customer_id == f.customer_id) {
            println!(
                "{} {:10} {:20} {:?} {:?}",
                e.occurred_at,
                e.channel.as_str(),
                e.event_type,
                e.reference,
                e.cause
            );
        }
    }
}

/// FNV-1a, 64 bits, over a whole output: a stable fingerprint of the generator's bytes.
fn fingerprint(bytes: &[u8]) -> (u64, usize) {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h, bytes.len())
}

fn jsonl(cfg: SimConfig) -> Vec<u8> {
    let mut out = Vec::new();
    Simulator::new(cfg).write_jsonl(&mut out).unwrap();
    out
}

/// Three days at five times the default failure rate: every failure branch is taken often.
fn failure_heavy() -> SimConfig {
    SimConfig {
        customers: 300,
        duration: Millis::from_days(3),
        failure_rate: 0.2,
        ..SimConfig::default()
    }
}

fn spike(s: &str) -> Option<Spike> {
    Some(Spike::parse(s).unwrap())
}

#[test]
fn without_a_spike_the_bytes_are_those_of_the_generator_before_spikes() {
    // Fingerprints of the generator's output before spikes existed (commit 232d3f5). They change
    // only when the generator changes on purpose; then update them here.
    assert_eq!(
        fingerprint(&jsonl(small(7, 40))),
        (0x8da0_d4aa_26d0_66c5, 5_781_366)
    );
    let plain = jsonl(failure_heavy());
    assert_eq!(fingerprint(&plain), (0x3ca6_90ec_7e79_d7ab, 3_943_586));
    // A spike that turns no step into a failure changes no byte: a window a month later (and
    // so after every journey), a factor of 1 (p x 1 = p exactly), a window before every
    // journey's start.
    for s in [
        "2026-12-21T00:00:00Z,24h,billing,6",
        "2026-11-21T00:00:00Z,72h,shipping,1",
        "2026-11-01T00:00:00Z,24h,service,6",
    ] {
        let spiked = jsonl(SimConfig {
            spike: spike(s),
            ..failure_heavy()
        });
        assert!(spiked == plain, "spike {s} changed the output");
    }
}

#[test]
fn the_spike_multiplies_step_probabilities_in_its_window_and_channel_only() {
    let s = Spike::parse("2026-11-21T14:00:00Z,30m,billing,6").unwrap();
    let cfg = SimConfig::default();
    let mut rng = Rng::new(1);
    let cust = Customer::generate(0, cfg.start.0, &mut rng);
    let (mut out, mut journeys) = (Vec::new(), Vec::new());
    let mut g = Gen {
        rng,
        window: Window {
            start: cfg.start.0,
            end: cfg.start.plus(cfg.duration).0,
            failure_rate: 0.04,
            spike: spike::SpikeWindow::new(&s),
        },
        index: 0,
        cust: &cust,
        out: &mut out,
        journeys: &mut journeys,
    };
    let (t, end) = (s.start.0, s.end().0);
    use event::Kind::*;
    assert_eq!(g.p_fail(PaymentDeclined, 1.25, t), 0.04 * 1.25 * 6.0);
    assert_eq!(g.p_fail(RefundFailed, 1.5, end - 1), 0.04 * 1.5 * 6.0);
    assert_eq!(g.p_fail(InvoiceDisputed, 0.6, t + 1), 0.04 * 0.6 * 6.0);
    assert_eq!(g.p_fail(PaymentDeclined, 1.25, t - 1), 0.04 * 1.25);
    assert_eq!(g.p_fail(PaymentDeclined, 1.25, end), 0.04 * 1.25);
    for (kind, factor) in [
        (DeliveryFailed, 1.75),
        (Delivered, 0.4),
        (OrderCancelled, 0.4),
        (CallAbandoned, 3.0),
    ] {
        assert_eq!(g.p_fail(kind, factor, t), 0.04 * factor, "{kind:?}");
    }
    // Capped at certainty.
    g.window.spike = spike::SpikeWindow::new(&Spike { factor: 100.0, ..s });
    assert_eq!(g.p_fail(PaymentDeclined, 1.25, t), 1.0);
    assert!((0..100).all(|_| g.fails(PaymentDeclined, 1.25, t)));
}

/// Decoded distinct events of `cfg`'s records.
fn decode_all(sim: &Simulator) -> Vec<TouchpointEvent> {
    let decoder = Decoder::new(&Config::defaults());
    let mut seen = HashSet::new();
    sim.iter()
        .filter_map(|r| decoder.touchpoint(&r.payload).ok())
        .filter(|e| seen.insert(e.event_id.clone()))
        .collect()
}

/// (failures, events) of `channel`, inside and outside `[from, to)`.
fn channel_counts(
    events: &[TouchpointEvent],
    channel: &str,
    from: EventTime,
    to: EventTime,
) -> [(usize, usize); 2] {
    let mut c = [(0, 0); 2];
    for e in events.iter().filter(|e| e.channel.as_str() == channel) {
        let slot = &mut c[usize::from(!(e.occurred_at >= from && e.occurred_at < to))];
        slot.1 += 1;
        if e.outcome == Outcome::Failure {
            slot.0 += 1;
        }
    }
    c
}

fn rate((failures, events): (usize, usize)) -> f64 {
    failures as f64 / events.max(1) as f64
}

#[test]
fn a_spike_raises_its_channels_failure_rate_in_its_window_only() {
    let s = Spike::parse("2026-11-21T12:00:00Z,2h,billing,6").unwrap();
    let cfg = SimConfig {
        spike: Some(s.clone()),
        ..SimConfig::default()
    };
    let sim = Simulator::new(cfg.clone());
    let spiked = decode_all(&sim);
    let plain = decoded();
    let counts =
        |events: &[TouchpointEvent], channel| channel_counts(events, channel, s.start, s.end());
    let [inside, outside] = counts(&spiked, "billing");
    let [plain_inside, plain_outside] = counts(plain, "billing");
    assert_eq!(sim.stats().spike_failures, inside.0);
    assert_eq!(day().0.stats().spike_failures, 0);
    assert!(inside.0 > 80, "{inside:?}");
    // Six times the probability per step; somewhat less in the counts, since some billing
    // failures surface after the window (disputes of invoices issued in it) and some steps
    // in the window (retries, refunds of cancelled orders) are there because of earlier ones.
    assert!(
        rate(inside) > 4.0 * rate(outside) && rate(inside) > 4.0 * rate(plain_inside),
        "billing in the window {inside:?}, outside {outside:?}, without a spike {plain_inside:?}"
    );
    let ratio = rate(outside) / rate(plain_outside);
    assert!(
        (0.85..1.2).contains(&ratio),
        "{outside:?} vs {plain_outside:?}"
    );
    // Other channels keep their rates, in the window and outside it.
    for channel in ["shipping", "service"] {
        for (spiked, plain) in counts(&spiked, channel)
            .into_iter()
            .zip(counts(plain, channel))
        {
            let ratio = rate(spiked) / rate(plain);
            assert!(
                (0.75..1.33).contains(&ratio),
                "{channel}: {spiked:?} vs {plain:?}"
            );
        }
    }
    // Sales has more failures, but only as a consequence: orders whose payment was declined
    // for good are cancelled (reason payment_failed). Its own failures are unchanged.
    let own_sales_failures = |events: &[TouchpointEvent]| {
        events
            .iter()
            .filter(|e| e.channel.as_str() == "sales" && e.outcome == Outcome::Failure)
            .filter(|e| {
                !e.attributes
                    .iter()
                    .any(|(k, v)| &**k == "reason" && &**v == "payment_failed")
            })
            .count() as f64
    };
    let ratio = own_sales_failures(&spiked) / own_sales_failures(plain);
    assert!((0.85..1.2).contains(&ratio), "{ratio}");
    // Deterministic, and the factor matters.
    let bytes = jsonl(cfg.clone());
    assert!(bytes == jsonl(cfg.clone()));
    let mut other = cfg;
    other.spike = spike("2026-11-21T12:00:00Z,2h,billing,3");
    assert!(bytes != jsonl(other));
}

//! A small deterministic generator of touch-point events following the JSON input contract
//! (design.md, "Contracts"). It is independent of `amends::sim` on purpose, so the end-to-end
//! ring checks the contract rather than the simulator's idea of it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seeded: the same seed, customer count and start time give the same records. Each event
/// has a unique `event_id` and an `occurred_at` `step_ms` after the previous one.
pub struct EventGen {
    rng: u64,
    seq: u64,
    seed: u64,
    customers: u32,
    /// Event time of the next event, ms since the epoch. Strictly increasing.
    next_ms: i64,
    step_ms: i64,
}

/// One generated input record.
#[derive(Clone, Debug)]
pub struct GenRecord {
    pub key: String,
    pub payload: Vec<u8>,
    /// `Some(reason)` when the record is deliberately invalid.
    pub poison: Option<&'static str>,
}

/// Per channel: (touchpoint, type, is a failure type). Failure types come with outcome
/// `failure`; the others mostly succeed.
type Point = (&'static str, &'static str, bool);
const CHANNELS: [(&str, &[Point]); 4] = [
    (
        "sales",
        &[
            ("checkout", "order_placed", false),
            ("checkout", "order_cancelled", true),
            ("web", "quote_requested", false),
        ],
    ),
    (
        "billing",
        &[
            ("payment", "payment_captured", false),
            ("payment", "payment_declined", true),
            ("invoice", "invoice_sent", false),
            ("invoice", "invoice_disputed", true),
            ("refund", "refund_failed", true),
        ],
    ),
    (
        "shipping",
        &[
            ("dispatch", "shipped", false),
            ("delivery", "delivered", false),
            ("delivery", "delivery_failed", true),
        ],
    ),
    (
        "service",
        &[
            ("phone", "call_answered", false),
            ("phone", "call_abandoned", true),
            ("ticket", "ticket_closed", false),
            ("ticket", "ticket_reopened", true),
            ("survey", "survey_answered", false),
        ],
    ),
];
const SEGMENTS: [&str; 3] = ["consumer", "smb", "enterprise"];

impl EventGen {
    /// `start_ms` is the event time of the first event; events are `step_ms` apart.
    pub fn new(seed: u64, customers: u32, start_ms: i64, step_ms: i64) -> EventGen {
        EventGen {
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            seq: 0,
            seed,
            customers,
            next_ms: start_ms,
            step_ms,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn customer_id(c: u32) -> String {
        format!("c-{c:06}")
    }

    /// The next valid event.
    pub fn event(&mut self) -> GenRecord {
        self.seq += 1;
        let c = self.below(self.customers as u64) as u32;
        let customer = EventGen::customer_id(c);
        let (channel, points) = CHANNELS[self.below(4) as usize];
        // About one event in six is a failure: a failure type, or a normal one that failed.
        let want_failure = self.below(6) == 0;
        let candidates: Vec<&Point> = points.iter().filter(|p| p.2 == want_failure).collect();
        let &(touchpoint, event_type, failure_type) =
            candidates[self.below(candidates.len() as u64) as usize];
        let outcome = if failure_type {
            "failure"
        } else {
            match self.below(100) {
                0..=3 => "failure",
                4..=9 => "neutral",
                _ => "success",
            }
        };
        // Few references per customer, so repeated failures escalate one incident.
        let reference = format!("ref-{c}-{}", self.below(3));
        let cause = ["internal", "external", "unknown"][self.below(3) as usize];
        let amount = (self.below(50_000) as f64) / 100.0;
        let segment = SEGMENTS[(c % 3) as usize];
        let since_year = 2010 + (c % 15);
        let annual = 100.0 * f64::from(c % 97 + 1);
        let occurred_ms = self.next_ms;
        self.next_ms += self.step_ms;
        let score = if event_type == "survey_answered" {
            Some(1 + self.below(5))
        } else {
            None
        };
        let mut v = serde_json::json!({
            "event_id": format!("e-{:x}-{:08}", self.seed, self.seq),
            "occurred_at": rfc3339_ms(occurred_ms),
            "customer_id": customer,
            "channel": channel,
            "touchpoint": touchpoint,
            "type": event_type,
            "outcome": outcome,
            "reference": reference,
            "cause": cause,
            "amount": amount,
            "currency": "EUR",
            "customer": {"since": format!("{since_year}-03-01"), "segment": segment, "annual_value": annual},
            "attributes": {"gen": "tests-support"}
        });
        if let Some(s) = score {
            v["score"] = serde_json::json!(s);
        }
        GenRecord {
            key: customer,
            payload: serde_json::to_vec(&v).expect("json"),
            poison: None,
        }
    }

    /// A deliberately invalid record of kind `n % 4`: not JSON, a missing required field, an
    /// unknown channel, a bad timestamp. Keyed like a real customer.
    pub fn poison(&mut self, n: usize) -> GenRecord {
        self.seq += 1;
        let c = self.below(self.customers as u64) as u32;
        let key = EventGen::customer_id(c);
        let id = format!("e-{:x}-{:08}-poison", self.seed, self.seq);
        let (payload, why) = match n % 4 {
            0 => (format!("{{not json at all {id}").into_bytes(), "not_json"),
            1 => (serde_json::to_vec(&serde_json::json!({"event_id": id, "customer_id": key, "channel": "billing"})).expect("json"), "missing_fields"),
            2 => (
                serde_json::to_vec(&serde_json::json!({
                    "event_id": id, "occurred_at": rfc3339_ms(self.next_ms), "customer_id": key, "channel": "carrier-pigeon",
                    "touchpoint": "coop", "type": "delivery_failed", "outcome": "failure"
                }))
                .expect("json"),
                "unknown_channel",
            ),
            _ => (
                serde_json::to_vec(&serde_json::json!({
                    "event_id": id, "occurred_at": "yesterday-ish", "customer_id": key, "channel": "billing",
                    "touchpoint": "payment", "type": "payment_declined", "outcome": "failure"
                }))
                .expect("json"),
                "bad_timestamp",
            ),
        };
        GenRecord {
            key,
            payload,
            poison: Some(why),
        }
    }

    /// `n` valid events with `poison` invalid records spread evenly among them.
    pub fn batch(&mut self, n: usize, poison: usize) -> Vec<GenRecord> {
        let mut out = Vec::with_capacity(n + poison);
        let every = n.checked_div(poison).map_or(usize::MAX, |e| e.max(1));
        let mut p = 0;
        for i in 0..n {
            out.push(self.event());
            if p < poison && (i + 1) % every == 0 {
                out.push(self.poison(p));
                p += 1;
            }
        }
        while p < poison {
            out.push(self.poison(p));
            p += 1;
        }
        out
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds (the library's format).
pub fn rfc3339_ms(ms: i64) -> String {
    amends::domain::EventTime(ms).to_string()
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

//! The seeded traffic generator behind `amends simulate` and `amends demo`.
//!
//! A [`Simulator`] draws a population of customers (segment, tenure, annual value), runs their
//! journeys through the four default channels (orders from checkout to delivery and invoice,
//! account invoices, service tickets and calls, surveys), injects failures at a configurable
//! rate with the service contacts that follow them, and lays the events out in a delivery
//! order with the faults a real topic has: some events arrive late, a few twice, and poison
//! records can be interleaved. Output is byte-identical for the same [`SimConfig`].
//!
//! A [`Spike`] raises one channel's failure rate for a while, for trend detection to find.
//! [`outcomes_for`] closes the loop: given the tasks amends emitted for the traffic, it draws
//! what the case tools report back ([`SimOutcome`], the recovery-outcome contract).
//!
//! Volume: about [`EVENTS_PER_CUSTOMER_DAY`] events per simulated customer per day (the
//! population is the customers active around the simulated period), about 3-4 % of them
//! failures. [`SimConfig::for_events`] picks the population for a target count.
//!
//! Layout: `customer.rs` (profiles), `journey.rs` and `contact.rs` (what happens),
//! `event.rs` (the compact event and its JSON), `spike.rs`, `outcome.rs` (recovery outcomes),
//! `poison.rs`, `rng.rs`. Nothing in here reads the wall clock, the environment or global
//! state, and nothing here knows about Kafka.

mod contact;
mod customer;
mod event;
mod journey;
mod outcome;
mod poison;
mod rng;
mod spike;
#[cfg(test)]
mod tests;

pub use outcome::{outcomes_for, write_outcomes_jsonl, OutcomeConfig, OutcomeSummary, SimOutcome};
pub use poison::{poison_payload, PoisonKind};
pub use spike::{Spike, SIM_CHANNELS};

use crate::domain::time::{days_from_civil, DAY_MS, MINUTE_MS, SECOND_MS};
use crate::domain::{EventTime, Millis};
use customer::Customer;
use event::{Ev, RefKind, Scratch, NO_JOURNEY};
use journey::{Gen, Window};
use rng::Rng;
use spike::SpikeWindow;
use std::io::{self, Write};

/// Distinct events per simulated customer per simulated day, at the default failure rate
/// (measured over 100,000 customer-days; individual customers vary a lot, from none to dozens).
pub const EVENTS_PER_CUSTOMER_DAY: f64 = 9.6;

/// Random streams: one per customer, one for the delivery order, one per task's outcome.
const STREAM_CUSTOMERS: u64 = 1;
const STREAM_DELIVERY: u64 = 2;
const STREAM_OUTCOMES: u64 = 3;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Same seed, same bytes. Default 42.
    pub seed: u64,
    /// Customers active in the period. Default 2,000 (about 20,000 events a day).
    pub customers: usize,
    /// Start of the simulated window. Default 2026-11-21T00:00:00Z.
    pub start: EventTime,
    /// Length of the window. Default 24 h.
    pub duration: Millis,
    /// Share of operational steps that fail (scaled per step type). Default 0.04.
    pub failure_rate: f64,
    /// Share of events delivered later than events that occurred after them (most by up to
    /// 2 minutes, some by up to an hour). Default 0.02.
    pub out_of_order_rate: f64,
    /// Share of events delivered twice, with the same bytes. Default 0.005.
    pub duplicate_rate: f64,
    /// Insert one poison record after every N records; 0 = none. Default 0.
    pub poison_every: usize,
    /// A window in which one channel fails more often. Default none.
    pub spike: Option<Spike>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            customers: 2_000,
            start: EventTime(days_from_civil(2026, 11, 21) * DAY_MS),
            duration: Millis::from_hours(24),
            failure_rate: 0.04,
            out_of_order_rate: 0.02,
            duplicate_rate: 0.005,
            poison_every: 0,
            spike: None,
        }
    }
}

impl SimConfig {
    /// Defaults (one day) with the population chosen to give about `events` distinct events;
    /// duplicates and poison records come on top.
    pub fn for_events(events: usize) -> SimConfig {
        let cfg = SimConfig::default();
        let per_customer = EVENTS_PER_CUSTOMER_DAY * cfg.duration.0 as f64 / DAY_MS as f64;
        SimConfig {
            customers: ((events as f64 / per_customer).round() as usize).max(1),
            ..cfg
        }
    }

    /// Roughly how many distinct events this configuration generates.
    pub fn expected_events(&self) -> usize {
        let days = self.duration.0.max(0) as f64 / DAY_MS as f64;
        (self.customers as f64 * EVENTS_PER_CUSTOMER_DAY * days).round() as usize
    }
}

/// One record to produce: keyed by customer, as the input contract asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRecord {
    /// The customer id's bytes (for poison records, the customer of the record before).
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// The event's time (for poison records, the time of the record before).
    pub occurred_at: EventTime,
    pub poison: Option<PoisonKind>,
}

/// What a simulation contains, for summaries and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub customers: usize,
    /// Distinct events (distinct `event_id`s).
    pub events: usize,
    /// Records in delivery order: events, their duplicates and poison.
    pub records: usize,
    /// Events with `outcome: failure`.
    pub failures: usize,
    /// Survey answers scoring 2 or less (failures by the default detractor rule).
    pub detractors: usize,
    /// Events given a late delivery slot.
    pub displaced: usize,
    /// Records delivered after a record that occurred later.
    pub out_of_order: usize,
    /// Second deliveries of an event.
    pub duplicates: usize,
    pub poison: usize,
    /// Failures (`outcome: failure`) on the spike's channel that occurred inside its window;
    /// 0 without a spike.
    pub spike_failures: usize,
}

#[derive(Clone, Copy, Debug)]
struct Delivery {
    event: u32,
}

/// A generated simulation, held compactly; payloads are made as records are read.
pub struct Simulator {
    cfg: SimConfig,
    customers: Vec<Customer>,
    /// Sorted by occurred_at; `event_id` is the index + 1.
    events: Vec<Ev>,
    /// Per journey: what it is and its number (0 = never seen in the window).
    journeys: Vec<(RefKind, u32)>,
    /// Event indices in delivery order, duplicates included.
    deliveries: Vec<Delivery>,
    stats: SimStats,
}

fn rate(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

impl Simulator {
    pub fn new(cfg: SimConfig) -> Simulator {
        let window = Window {
            start: cfg.start.0,
            end: cfg.start.0.saturating_add(cfg.duration.0.max(0)),
            failure_rate: rate(cfg.failure_rate),
            spike: cfg.spike.as_ref().and_then(SpikeWindow::new),
        };
        let mut customers = Vec::with_capacity(cfg.customers);
        let mut events = Vec::with_capacity(cfg.expected_events() + cfg.expected_events() / 8);
        let mut kinds = Vec::new();
        for i in 0..cfg.customers {
            let mut rng = Rng::stream(cfg.seed, STREAM_CUSTOMERS, i as u64);
            let cust = Customer::generate(i, window.start, &mut rng);
            Gen {
                rng,
                window,
                index: i as u32,
                cust: &cust,
                out: &mut events,
                journeys: &mut kinds,
            }
            .run();
            customers.push(cust);
        }
        // Stable: ties keep generation order, which is itself deterministic.
        events.sort_by_key(|e: &Ev| (e.t, e.customer));

        // Reference numbers in order of first appearance.
        let mut journeys: Vec<(RefKind, u32)> = kinds.into_iter().map(|k| (k, 0)).collect();
        let mut next = [0u32; 3];
        for e in &events {
            if let Some(j) = journeys.get_mut(e.journey as usize) {
                if j.1 == 0 {
                    let slot = &mut next[j.0 as usize];
                    *slot += 1;
                    j.1 = *slot;
                }
            }
        }

        let mut stats = SimStats {
            customers: cfg.customers,
            events: events.len(),
            ..SimStats::default()
        };
        let deliveries = delivery_order(&cfg, &events, &mut stats);
        stats.failures = events.iter().filter(|e| e.kind.is_failure()).count();
        if let Some(s) = window.spike {
            stats.spike_failures = events.iter().filter(|e| s.counts(e.kind, e.t)).count();
        }
        stats.detractors = events
            .iter()
            .filter(|e| e.score > 0 && e.score <= 2)
            .count();
        let mut latest = i64::MIN;
        for d in &deliveries {
            let t = events[d.event as usize].t;
            if t < latest {
                stats.out_of_order += 1;
            }
            latest = latest.max(t);
        }
        stats.poison = deliveries.len().checked_div(cfg.poison_every).unwrap_or(0);
        stats.records = deliveries.len() + stats.poison;
        Simulator {
            cfg,
            customers,
            events,
            journeys,
            deliveries,
            stats,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Records in delivery order, poison included.
    pub fn len(&self) -> usize {
        self.stats.records
    }

    pub fn is_empty(&self) -> bool {
        self.stats.records == 0
    }

    /// All records in delivery order (mostly by occurred_at, with the configured displacement
    /// and duplicates, and poison interleaved). Holds every payload in memory (about 450 bytes
    /// a record); prefer [`Simulator::iter`] for large runs.
    pub fn records(&self) -> Vec<SimRecord> {
        self.iter().collect()
    }

    /// The same records as [`Simulator::records`], made one at a time.
    pub fn iter(&self) -> Records<'_> {
        Records {
            sim: self,
            slots: self.slots(),
            scratch: Scratch::default(),
        }
    }

    /// Writes one payload per line and returns the number of records written. Buffers
    /// internally, so an unbuffered file is fine.
    pub fn write_jsonl(&self, w: &mut impl Write) -> io::Result<usize> {
        let mut out = io::BufWriter::with_capacity(1 << 16, w);
        let mut scratch = Scratch::default();
        let mut buf = Vec::with_capacity(1024);
        let mut written = 0;
        for slot in self.slots() {
            buf.clear();
            match slot {
                Slot::Event(i) => self
                    .payload(i, &mut scratch, &mut buf)
                    .map_err(io::Error::other)?,
                Slot::Poison { kind, seq, .. } => buf = poison_payload(kind, seq),
            }
            buf.push(b'\n');
            out.write_all(&buf)?;
            written += 1;
        }
        out.flush()?;
        Ok(written)
    }

    fn slots(&self) -> Slots<'_> {
        Slots {
            deliveries: &self.deliveries,
            pos: 0,
            since_poison: 0,
            seq: 0,
            every: self.cfg.poison_every,
            last: None,
        }
    }

    /// The JSON of event `i` (no newline).
    fn payload(&self, i: u32, scratch: &mut Scratch, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let ev = &self.events[i as usize];
        let reference = self
            .journeys
            .get(ev.journey as usize)
            .filter(|_| ev.journey != NO_JOURNEY)
            .copied();
        event::write_json(
            ev,
            u64::from(i) + 1,
            reference,
            &self.customers[ev.customer as usize],
            scratch,
            out,
        )
    }
}

/// Delivery slots for the events (late ones moved back, duplicates added), in order.
fn delivery_order(cfg: &SimConfig, events: &[Ev], stats: &mut SimStats) -> Vec<Delivery> {
    let mut rng = Rng::stream(cfg.seed, STREAM_DELIVERY, 0);
    let (late, dup) = (rate(cfg.out_of_order_rate), rate(cfg.duplicate_rate));
    let mut plan: Vec<(i64, u32, bool)> = Vec::with_capacity(events.len() + events.len() / 64);
    for (i, e) in events.iter().enumerate() {
        let mut at = e.t;
        if rng.chance(late) {
            stats.displaced += 1;
            // Most stragglers are seconds to two minutes late (retries, slow producers); a few
            // sat in a buffer for up to an hour.
            at += if rng.chance(0.85) {
                rng.between(2 * SECOND_MS, 2 * MINUTE_MS)
            } else {
                rng.between(2 * MINUTE_MS, 60 * MINUTE_MS)
            };
        }
        plan.push((at, i as u32, false));
        if rng.chance(dup) {
            stats.duplicates += 1;
            // A producer retry lands right behind the original; a replay after a rebalance,
            // minutes later.
            let again = if rng.chance(0.7) {
                rng.between(0, 2 * SECOND_MS)
            } else {
                rng.between(MINUTE_MS, 10 * MINUTE_MS)
            };
            plan.push((at + again, i as u32, true));
        }
    }
    plan.sort_unstable();
    plan.into_iter()
        .map(|(_, event, _)| Delivery { event })
        .collect()
}

enum Slot {
    Event(u32),
    Poison {
        kind: PoisonKind,
        seq: u64,
        after: Option<u32>,
    },
}

/// Walks the delivery order, inserting a poison record after every `every` events.
struct Slots<'a> {
    deliveries: &'a [Delivery],
    pos: usize,
    since_poison: usize,
    seq: u64,
    every: usize,
    last: Option<u32>,
}

impl Iterator for Slots<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        if self.every > 0 && self.since_poison == self.every {
            self.since_poison = 0;
            self.seq += 1;
            let kind = PoisonKind::ALL[((self.seq - 1) % PoisonKind::ALL.len() as u64) as usize];
            return Some(Slot::Poison {
                kind,
                seq: self.seq,
                after: self.last,
            });
        }
        let d = self.deliveries.get(self.pos)?;
        self.pos += 1;
        self.since_poison += 1;
        self.last = Some(d.event);
        Some(Slot::Event(d.event))
    }
}

/// Iterator over a simulation's records; see [`Simulator::iter`].
pub struct Records<'a> {
    sim: &'a Simulator,
    slots: Slots<'a>,
    scratch: Scratch,
}

impl Iterator for Records<'_> {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        let sim = self.sim;
        let slot = self.slots.next()?;
        let (event, payload, poison) = match slot {
            Slot::Event(i) => {
                let mut payload = Vec::with_capacity(512);
                // Serializing these plain structs into a Vec cannot fail (no I/O, no non-string
                // map keys); should it ever, the record carries what was written and decoding
                // will dead-letter it rather than the generator panicking.
                let result = sim.payload(i, &mut self.scratch, &mut payload);
                debug_assert!(result.is_ok(), "{result:?}");
                (Some(i), payload, None)
            }
            Slot::Poison { kind, seq, after } => (after, poison_payload(kind, seq), Some(kind)),
        };
        let ev = event.and_then(|i| sim.events.get(i as usize));
        Some(SimRecord {
            key: ev
                .map(|e| sim.customers[e.customer as usize].id.as_bytes().to_vec())
                .unwrap_or_else(|| b"c-000000".to_vec()),
            payload,
            occurred_at: ev.map(|e| EventTime(e.t)).unwrap_or(sim.cfg.start),
            poison,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let s = &self.slots;
        let events_left = s.deliveries.len() - s.pos;
        let poison_left = (s.since_poison + events_left)
            .checked_div(s.every)
            .unwrap_or(0);
        (events_left + poison_left, Some(events_left + poison_left))
    }
}

impl ExactSizeIterator for Records<'_> {}

//! Recovery outcomes: what the case tools report back for the tasks amends emitted (the closed
//! loop, design.md "Input: recovery outcome").
//!
//! Outcomes answer tasks, and tasks come from the engine, so [`outcomes_for`] takes the task
//! revisions as input rather than the simulated events. Each task's draws come from its own
//! random stream, seeded by the simulation seed and the `task_id`: the same task gets the same
//! outcome whatever else is in the input and in whatever order. The JSON is written through the
//! codec's own [`WireOutcome`], so the simulator cannot drift from what amends accepts.
//!
//! Nothing here reads the clock or knows about Kafka.

use super::rng::Rng;
use super::{SimRecord, STREAM_OUTCOMES};
use crate::codec::json::{WireCompensation, WireOutcome};
use crate::domain::time::{DAY_MS, HOUR_MS};
use crate::domain::{Compensation, EventTime, Millis, RecoveryStatus, RecoveryTask, TaskStatus};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};

/// How case tools answer tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeConfig {
    /// Share of tasks reported `resolved`. Default 0.70.
    pub resolved: f64,
    /// Share reported `unresolved`. Default 0.15.
    pub unresolved: f64,
    /// Share reported `no_response` (the customer could not be reached). Default 0.05. The rest
    /// of the tasks (default 10 %) get no outcome at all, so they pass their due time.
    pub no_response: f64,
    /// Time from `detected_at` to the outcome: log-normal with this median... Default 20 h.
    pub delay_median: Millis,
    /// ...and this shape (the standard deviation of its logarithm)... Default 0.8.
    pub delay_sigma: f64,
    /// ...clamped to [`delay_min`, `delay_max`]. Defaults 1 h and 5 days. Many outcomes come
    /// after the task's `due_at` (2 h to 24 h after detection by default): recoveries run late.
    pub delay_min: Millis,
    pub delay_max: Millis,
    /// Share of compensated outcomes where less than the offer was given (50-90 % of it).
    /// Default 0.2.
    pub partial_compensation: f64,
    /// Share of `unresolved` outcomes that still report the compensation given (offered, and
    /// not enough). Default 0.5. `resolved` ones always report it; `no_response` ones never.
    pub unresolved_compensated: f64,
    /// Share of outcomes without a satisfaction score (no survey answer). Default 0.3.
    pub no_score: f64,
}

impl Default for OutcomeConfig {
    fn default() -> Self {
        OutcomeConfig {
            resolved: 0.70,
            unresolved: 0.15,
            no_response: 0.05,
            delay_median: Millis::from_hours(20),
            delay_sigma: 0.8,
            delay_min: Millis::from_hours(1),
            delay_max: Millis::from_days(5),
            partial_compensation: 0.2,
            unresolved_compensated: 0.5,
            no_score: 0.3,
        }
    }
}

/// Satisfaction after recovery, CSAT 1-5 (the simulator's survey scale): mostly 3-5 after a
/// resolved recovery, 1-2 after one that failed or never reached the customer.
const SCORES_RESOLVED: [f64; 5] = [0.02, 0.04, 0.14, 0.38, 0.42];
const SCORES_FAILED: [f64; 5] = [0.6, 0.4, 0.0, 0.0, 0.0];

/// One recovery outcome, keyed by `customer_id` like the input contract asks.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOutcome {
    pub task_id: String,
    pub customer_id: String,
    pub occurred_at: EventTime,
    pub status: RecoveryStatus,
    /// What was actually given: the task's offer, sometimes less.
    pub compensation: Option<Compensation>,
    /// CSAT 1-5 after recovery.
    pub score: Option<u8>,
}

impl SimOutcome {
    /// The record key: the customer id.
    pub fn key(&self) -> &[u8] {
        self.customer_id.as_bytes()
    }

    /// As a record to produce to the `recovery-outcomes` topic (key `customer_id`), e.g. with
    /// `app::simulate::produce_all`.
    pub fn record(&self) -> SimRecord {
        SimRecord {
            key: self.key().to_vec(),
            payload: self.to_json(),
            occurred_at: self.occurred_at,
            poison: None,
        }
    }

    /// The JSON the `recovery-outcomes` topic carries (no newline).
    pub fn to_json(&self) -> Vec<u8> {
        let occurred_at = self.occurred_at.to_string();
        let wire = WireOutcome {
            task_id: Some(Cow::Borrowed(&self.task_id)),
            customer_id: Some(Cow::Borrowed(&self.customer_id)),
            occurred_at: Some(Cow::Borrowed(&occurred_at)),
            status: Some(Cow::Borrowed(self.status.as_str())),
            compensation: self.compensation.as_ref().map(|c| WireCompensation {
                kind: Some(Cow::Borrowed(&c.kind)),
                amount: Some(c.amount),
                currency: Some(Cow::Borrowed(&c.currency)),
            }),
            score: self.score.map(f64::from),
        };
        // Plain strings and numbers into a Vec: serializing cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// Writes one outcome per line; returns how many.
pub fn write_outcomes_jsonl(outcomes: &[SimOutcome], w: &mut impl Write) -> io::Result<usize> {
    let mut out = io::BufWriter::new(w);
    for o in outcomes {
        out.write_all(&o.to_json())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(outcomes.len())
}

/// Outcomes for the tasks in `tasks` (task revisions in any order, duplicates allowed), sorted
/// by `occurred_at` (then `task_id`).
///
/// A task is answered on the strength of its first revision (`detected_at`, customer) unless
/// amends closed it itself: a task whose highest revision is `resolved` or `cancelled` (a
/// retracted missed promise, a withdrawn contact) gets none. The rest get `resolved`,
/// `unresolved`, `no_response` or nothing with the shares of `cfg`, at `detected_at` plus a
/// delay. The compensation reported is the offer of the revision in force at that time (the
/// latest emitted by then, else the first): its first action with a compensation, as offered
/// or sometimes less.
pub fn outcomes_for(tasks: &[RecoveryTask], cfg: &OutcomeConfig, seed: u64) -> Vec<SimOutcome> {
    let mut out: Vec<SimOutcome> = revisions_by_task(tasks)
        .into_iter()
        .filter_map(|(id, revisions)| outcome_of(id, &revisions, cfg, seed))
        .collect();
    out.sort_by(|a, b| (a.occurred_at, &a.task_id).cmp(&(b.occurred_at, &b.task_id)));
    out
}

/// Each task's revisions in revision order.
fn revisions_by_task(tasks: &[RecoveryTask]) -> BTreeMap<&str, Vec<&RecoveryTask>> {
    let mut by_id: BTreeMap<&str, Vec<&RecoveryTask>> = BTreeMap::new();
    for t in tasks {
        by_id.entry(&t.task_id).or_default().push(t);
    }
    for revisions in by_id.values_mut() {
        revisions.sort_by_key(|t| t.revision);
    }
    by_id
}

fn closed(status: TaskStatus) -> bool {
    matches!(status, TaskStatus::Resolved | TaskStatus::Cancelled)
}

fn closed_by_amends(revisions: &[&RecoveryTask]) -> bool {
    revisions.last().is_none_or(|t| closed(t.status))
}

fn outcome_of(
    task_id: &str,
    revisions: &[&RecoveryTask],
    cfg: &OutcomeConfig,
    seed: u64,
) -> Option<SimOutcome> {
    let first = *revisions.first()?;
    if closed_by_amends(revisions) || closed(first.status) {
        return None;
    }
    // Tasks come from the engine, so this parses; a task that does not gets no outcome.
    let detected_at = EventTime::parse(&first.detected_at).ok()?;
    let mut rng = Rng::stream(seed, STREAM_OUTCOMES, fnv1a(task_id.as_bytes()));
    let weights = [cfg.resolved, cfg.unresolved, cfg.no_response].map(share);
    let none = (1.0 - weights.iter().sum::<f64>()).max(0.0);
    let status = match rng.weighted(&[weights[0], weights[1], weights[2], none]) {
        0 => RecoveryStatus::Resolved,
        1 => RecoveryStatus::Unresolved,
        2 => RecoveryStatus::NoResponse,
        _ => return None,
    };
    let occurred_at = detected_at.plus(delay(&mut rng, cfg));
    let in_force = revisions
        .iter()
        .rev()
        .find(|t| EventTime::parse(&t.emitted_at).is_ok_and(|e| e <= occurred_at))
        .copied()
        .unwrap_or(first);
    let offer = in_force
        .actions
        .iter()
        .find_map(|a| a.compensation.as_ref());
    let compensated = match status {
        RecoveryStatus::Resolved => true,
        RecoveryStatus::Unresolved => rng.chance(share(cfg.unresolved_compensated)),
        RecoveryStatus::NoResponse => false,
    };
    let compensation = offer
        .filter(|_| compensated)
        .map(|c| given(c, &mut rng, cfg));
    let scores = match status {
        RecoveryStatus::Resolved => &SCORES_RESOLVED,
        _ => &SCORES_FAILED,
    };
    let score = (!rng.chance(share(cfg.no_score))).then(|| 1 + rng.weighted(scores) as u8);
    Some(SimOutcome {
        task_id: task_id.to_string(),
        customer_id: first.customer_id.clone(),
        occurred_at,
        status,
        compensation,
        score,
    })
}

/// The delay from detection to the outcome.
fn delay(rng: &mut Rng, cfg: &OutcomeConfig) -> Millis {
    let (lo, hi) = (cfg.delay_min.0.max(0), cfg.delay_max.0.max(0));
    let median = if cfg.delay_median.0 > 0 {
        cfg.delay_median.0 as f64
    } else {
        20.0 * HOUR_MS as f64
    };
    let sigma = if cfg.delay_sigma.is_finite() {
        cfg.delay_sigma.max(0.0)
    } else {
        0.0
    };
    let ms = rng
        .log_normal(median, sigma)
        .clamp(0.0, 365.0 * DAY_MS as f64) as i64;
    Millis(ms.clamp(lo, hi.max(lo)))
}

/// The compensation given for `offer`: as offered, or sometimes 50-90 % of it (to the cent).
fn given(offer: &Compensation, rng: &mut Rng, cfg: &OutcomeConfig) -> Compensation {
    let mut c = offer.clone();
    if rng.chance(share(cfg.partial_compensation)) && c.amount > 0.0 {
        let part = 0.5 + 0.4 * rng.f64();
        c.amount = (c.amount * part * 100.0).round() / 100.0;
    }
    c
}

fn share(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// FNV-1a, 64 bits: a stable hash of the task id for its random stream (std's hashers may
/// change between releases; the outcome for a seed must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What [`outcomes_for`] made of a set of tasks, for a one-line summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutcomeSummary {
    /// Distinct task ids.
    pub tasks: usize,
    /// Tasks whose highest revision amends itself resolved or cancelled (no outcome).
    pub closed_by_amends: usize,
    pub resolved: usize,
    pub unresolved: usize,
    pub no_response: usize,
    /// Open tasks without an outcome: they pass their due time.
    pub without_outcome: usize,
}

impl OutcomeSummary {
    pub fn of(tasks: &[RecoveryTask], outcomes: &[SimOutcome]) -> OutcomeSummary {
        let by_task = revisions_by_task(tasks);
        let answered: BTreeSet<&str> = outcomes.iter().map(|o| o.task_id.as_str()).collect();
        let mut s = OutcomeSummary {
            tasks: by_task.len(),
            ..OutcomeSummary::default()
        };
        for (id, revisions) in &by_task {
            if closed_by_amends(revisions) {
                s.closed_by_amends += 1;
            } else if !answered.contains(id) {
                s.without_outcome += 1;
            }
        }
        for o in outcomes {
            match o.status {
                RecoveryStatus::Resolved => s.resolved += 1,
                RecoveryStatus::Unresolved => s.unresolved += 1,
                RecoveryStatus::NoResponse => s.no_response += 1,
            }
        }
        s
    }

    pub fn written(&self) -> usize {
        self.resolved + self.unresolved + self.no_response
    }
}

impl fmt::Display for OutcomeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tasks seen ({} closed by amends itself); {} outcomes written (resolved {}, unresolved {}, no_response {}); {} left without an outcome",
            self.tasks,
            self.closed_by_amends,
            self.written(),
            self.resolved,
            self.unresolved,
            self.no_response,
            self.without_outcome
        )
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;

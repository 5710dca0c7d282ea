//! The detection engine: a plain, synchronous state machine. Events and clock values go in,
//! recovery tasks come out. It never touches Kafka, tokio, the wall clock or global state,
//! which is what lets the same engine run in the service, in `amends replay`, in tests and
//! in benchmarks.
//!
//! One `Engine` holds the state of the customers of one input partition (the pipeline runs
//! one per partition worker), so state can be restored and dropped per partition.
//!
//! Recovery outcomes come in too (`on_outcome`, the closed loop in `closed_loop`): they are
//! recorded on their tasks and, with the tasks opened, overdue and followed by new failures,
//! come out as [`LoopMeasure`]s.

mod closed_loop;
mod contacts;
mod expect;
pub mod ids;
mod lifecycle;
pub mod rules;
pub mod snapshot;
pub mod state;

use crate::config::{Config, DetectConfig};
use crate::domain::{
    Cause, EventTime, Millis, RecoveryOutcome, RecoveryTask, SourcePos, TaskStatus, TouchpointEvent,
};
use crate::policy::{IncidentFacts, Policy};
pub use closed_loop::{LoopKind, LoopMeasure, OutcomeVerdict};
use lifecycle::{Signalled, Trigger};
pub use rules::FiredBy;
use rules::{FailureSignal, Rule};
use state::{CustomerState, Ev, Incident, Syms};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

/// What the engine produces.
// Task revisions are the common output and outputs only pass through a short, reused Vec:
// boxing them would cost an allocation per revision to save bytes nobody keeps.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A new revision of a recovery task.
    Task(RecoveryTask),
    /// A closed-loop measure (outcome, double deviation, task opened), for the trend stage.
    Loop(LoopMeasure),
}

/// The processing clock stamped on outputs as `emitted_at`. It never affects decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock at processing time (the service).
    Wall(EventTime),
    /// The event time that caused each output: the event's `occurred_at`, or the deadline of
    /// a fired timer. Deterministic whatever the partitioning (`amends replay`, tests).
    Event,
}

impl Clock {
    pub fn at(self, cause: EventTime) -> EventTime {
        match self {
            Clock::Wall(t) => t,
            Clock::Event => cause,
        }
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    /// A repeated `event_id` within `detect.duplicate_horizon`: ignored.
    Duplicate,
    /// Later than `detect.allowed_lateness`: history updated, no task opened or escalated.
    Late,
}

/// Counters the pipeline turns into metrics. Monotonic over the engine's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub failures: u64,
    pub duplicates: u64,
    pub tasks_opened: u64,
    pub tasks_escalated: u64,
    /// Customers dropped because `detect.max_customers` was reached.
    pub evicted: u64,
    /// Customers dropped after `detect.state_ttl` without activity.
    pub expired: u64,
    /// Events later than `detect.allowed_lateness`.
    pub late: u64,
    /// Promises whose timer fired before any fulfilment came.
    pub timers_fired: u64,
    /// Task revisions that resolved or cancelled a task.
    pub tasks_settled: u64,
    /// Recovery outcomes handed to the engine, whatever became of them.
    pub outcomes: u64,
    /// Outcomes for a task this engine does not hold ([`OutcomeVerdict::UnknownTask`]).
    pub outcomes_unknown: u64,
    /// Repeated outcomes ignored ([`OutcomeVerdict::Duplicate`]).
    pub outcomes_duplicate: u64,
    /// Tasks escalated because their due time passed with no outcome (also counted in
    /// `tasks_escalated`).
    pub tasks_overdue: u64,
}

impl EngineStats {
    fn count(&mut self, task: &RecoveryTask) {
        match task.status {
            TaskStatus::Open => self.tasks_opened += 1,
            TaskStatus::Escalated => self.tasks_escalated += 1,
            TaskStatus::Resolved | TaskStatus::Cancelled => self.tasks_settled += 1,
        }
    }
}

pub struct Engine {
    detect: DetectConfig,
    policy: Policy,
    specs: expect::Specs,
    /// Keyed by customer id; the key is shared with the customer's timers.
    customers: HashMap<Arc<str>, CustomerState, ids::FastState>,
    stats: EngineStats,
    /// Highest event time applied; state expiry runs against it.
    max_event_time: EventTime,
    /// The watermark the pipeline last set: lateness is judged against it.
    watermark: EventTime,
    next_sweep: EventTime,
    /// Promise deadlines and task due times, earliest first: (deadline, customer). Entries
    /// whose promise was kept, or whose task got an outcome or a new due time, in the meantime
    /// are skipped when they come up. Not stored: rebuilt from the state after a restore.
    timers: BinaryHeap<Reverse<(EventTime, Arc<str>)>>,
    /// Deadlines for new timers noted while applying one input (reused, so no allocation).
    new_timers: Vec<EventTime>,
    /// The classification of the last event applied (see `last_failure_signal`).
    last_signal: Option<FailureSignal>,
    /// Shared strings for the state (see `state::Syms`).
    syms: RefCell<Syms>,
    /// Event types the configuration names, and as what.
    kinds: HashMap<Box<str>, Kind, ids::FastState>,
    /// Customers whose state changed (or left) since `take_changes`, while tracking is on
    /// (`track_changes`: the service, which writes them to the changelog).
    changes: Option<HashSet<Arc<str>, ids::FastState>>,
}

/// What the configuration makes of an event type.
#[derive(Debug, Clone, Copy, Default)]
struct Kind {
    failure: bool,
    survey: bool,
    contact: bool,
}

/// How far event time must move between TTL sweeps. A sweep walks every customer, so it
/// is amortised over at least this much event time.
const SWEEP_EVERY: Millis = Millis(crate::domain::time::HOUR_MS);

impl Engine {
    pub fn new(config: &Config) -> Engine {
        Engine {
            detect: config.detect.clone(),
            policy: Policy::new(&config.policy),
            specs: expect::Specs::new(&config.detect),
            customers: HashMap::default(),
            stats: EngineStats::default(),
            max_event_time: EventTime::MIN,
            watermark: EventTime::MIN,
            next_sweep: EventTime::MIN,
            timers: BinaryHeap::new(),
            new_timers: Vec::new(),
            last_signal: None,
            syms: RefCell::new(Syms::default()),
            kinds: {
                let d = &config.detect;
                let mut kinds: HashMap<Box<str>, Kind, ids::FastState> = HashMap::default();
                for t in &d.failure_types {
                    kinds.entry(t.as_str().into()).or_default().failure = true;
                }
                for t in &d.survey_types {
                    kinds.entry(t.as_str().into()).or_default().survey = true;
                }
                for t in &d.contact_types {
                    kinds.entry(t.as_str().into()).or_default().contact = true;
                }
                kinds
            },
            changes: None,
        }
    }

    /// From now on, notes every customer whose state changes or who leaves the state (see
    /// [`Engine::take_changes`]).
    pub fn track_changes(&mut self) {
        self.changes.get_or_insert_with(HashSet::default);
    }

    /// The customers whose state changed, or who left the state, since the last call (or since
    /// [`Engine::track_changes`]), sorted by id. Empty while tracking is off.
    pub fn take_changes(&mut self) -> Vec<Arc<str>> {
        let Some(ch) = self.changes.as_mut() else {
            return Vec::new();
        };
        let mut v: Vec<Arc<str>> = ch.drain().collect();
        v.sort_unstable();
        v
    }

    /// Notes a change to a customer's state, while tracking is on.
    fn changed(&mut self, customer_id: &str) {
        if let Some(ch) = self.changes.as_mut() {
            if !ch.contains(customer_id) {
                if let Some((k, _)) = self.customers.get_key_value(customer_id) {
                    ch.insert(k.clone());
                }
            }
        }
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Customers currently tracked.
    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    /// What the configuration makes of an event type (one lookup instead of scanning the
    /// type lists for every event).
    fn kind(&self, event_type: &str) -> Kind {
        self.kinds.get(event_type).copied().unwrap_or_default()
    }

    /// Why, if at all, this event is a failure.
    pub fn classify(&self, e: &TouchpointEvent) -> Option<FailureSignal> {
        let kind = self.kind(&e.event_type);
        if kind.survey {
            return match e.score {
                Some(s) if s <= self.detect.detractor_score_max => Some(FailureSignal::Detractor),
                _ if e.outcome == crate::domain::Outcome::Failure => Some(FailureSignal::Outcome),
                _ => None,
            };
        }
        if e.outcome == crate::domain::Outcome::Failure {
            return Some(FailureSignal::Outcome);
        }
        if kind.failure {
            return Some(FailureSignal::FailureType);
        }
        None
    }

    /// Is an event at `t` later than the allowed lateness behind the current watermark?
    pub fn is_late(&self, t: EventTime) -> bool {
        self.watermark > EventTime::MIN
            && t.plus(self.detect.allowed_lateness.millis()) < self.watermark
    }

    /// Applies one event. The pipeline hands events over in event-time order (up to the
    /// watermark) and says whether the event is `late`; `clock` stamps the outputs.
    pub fn on_event(
        &mut self,
        e: &TouchpointEvent,
        src: &SourcePos,
        clock: Clock,
        late: bool,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let mut new_timers = std::mem::take(&mut self.new_timers);
        let v = self.apply(e, src, clock, late, out, &mut new_timers);
        self.schedule(&e.customer_id, &mut new_timers);
        self.new_timers = new_timers;
        // Even a duplicate prunes the customer's state first.
        self.changed(&e.customer_id);
        v
    }

    /// How the event last given to [`Engine::on_event`] was classified (`None`: not a
    /// failure), so a caller need not classify it again.
    pub fn last_failure_signal(&self) -> Option<FailureSignal> {
        self.last_signal
    }

    /// Pushes the timers noted for a customer (draining `deadlines`). The timer shares the
    /// customer's key. (A customer's rarely used parts that emptied are released at their next
    /// event or by the hourly sweep, not looked up again here.)
    fn schedule(&mut self, customer_id: &str, deadlines: &mut Vec<EventTime>) {
        if deadlines.is_empty() {
            return;
        }
        if let Some((key, _)) = self.customers.get_key_value(customer_id) {
            for d in deadlines.drain(..) {
                self.timers.push(Reverse((d, key.clone())));
            }
        }
        deadlines.clear();
    }

    /// Applies a recovery outcome reported for one of this customer's tasks (the closed loop;
    /// see `closed_loop`). The pipeline hands outcomes over in event-time order with the
    /// events, by `occurred_at`. `clock` would stamp task revisions; an outcome emits none,
    /// only an [`Output::Loop`] measure (event time). The customer's state is pruned as of the
    /// outcome's time first, as an event at that time would, so whether a task is still known
    /// does not depend on when the hourly sweep ran.
    pub fn on_outcome(
        &mut self,
        o: &RecoveryOutcome,
        _clock: Clock,
        out: &mut Vec<Output>,
    ) -> OutcomeVerdict {
        self.stats.outcomes += 1;
        if o.occurred_at > self.max_event_time {
            self.max_event_time = o.occurred_at;
        }
        let d = &self.detect;
        let v = match self.customers.get_mut(&*o.customer_id) {
            None => OutcomeVerdict::UnknownTask,
            Some(cust) => {
                let t = o.occurred_at.max(cust.last_activity);
                cust.prune(t, d);
                closed_loop::on_outcome(cust, o, out)
            }
        };
        // Pruned at least (nothing, if the customer is not held).
        self.changed(&o.customer_id);
        match v {
            OutcomeVerdict::UnknownTask => self.stats.outcomes_unknown += 1,
            OutcomeVerdict::Duplicate => self.stats.outcomes_duplicate += 1,
            OutcomeVerdict::Applied => {}
        }
        v
    }

    /// Applies an event; notes the deadlines of new timers (a promise it makes, due times of
    /// the revisions it causes) in `new_timers`.
    fn apply(
        &mut self,
        e: &TouchpointEvent,
        src: &SourcePos,
        clock: Clock,
        late: bool,
        out: &mut Vec<Output>,
        new_timers: &mut Vec<EventTime>,
    ) -> Verdict {
        self.stats.events += 1;
        if e.occurred_at > self.max_event_time {
            self.max_event_time = e.occurred_at;
        }
        let fp = ids::fingerprint(&e.event_id);
        let failure = self.classify(e);
        self.last_signal = failure;
        let kind = self.kind(&e.event_type);
        let is_contact = kind.contact;
        if self.customers.len() >= self.detect.max_customers
            && !self.customers.contains_key(&*e.customer_id)
        {
            self.evict();
        }
        let d = &self.detect;
        let cust = match self.customers.get_mut(&*e.customer_id) {
            Some(c) => c,
            None => self
                .customers
                .entry(Arc::from(&*e.customer_id))
                .or_default(),
        };
        // State is pruned against the customer's latest activity, so a late event never
        // revives what a newer one already expired.
        let t = e.occurred_at.max(cust.last_activity);
        cust.prune(t, d);
        if cust.seen.iter().any(|(f, _)| *f == fp) {
            self.stats.duplicates += 1;
            return Verdict::Duplicate;
        }
        state::push_grow(&mut cust.seen, (fp, e.occurred_at));
        let newest = e.occurred_at >= cust.last_activity;
        if e.occurred_at > cust.last_activity {
            cust.last_activity = e.occurred_at;
        }
        // The profile of the newest event wins: a late event does not roll it back.
        if let Some(p) = e.customer.as_ref().filter(|_| newest) {
            if !cust.profile.as_ref().is_some_and(|old| old.same_as(p)) {
                cust.profile = Some(Box::new(state::Profile::new(
                    p,
                    &mut self.syms.borrow_mut(),
                )));
            }
        }
        // The satisfaction a later incident's recovery is compared with (the paradox). Late
        // answers count too, unless a newer one is known.
        if let (true, Some(score)) = (kind.survey, e.score) {
            cust.note_survey(e.occurred_at, score as f32);
        }
        if late {
            self.stats.late += 1;
        }
        if failure.is_some() {
            self.stats.failures += 1;
        }
        let policy = &self.policy;
        let mut em = Emitter {
            policy,
            detect: d,
            customer_id: &e.customer_id,
            clock,
            stats: &mut self.stats,
            out,
            new_timers,
        };
        let mut emit = |cust: &mut CustomerState, idx: usize, cause: EventTime, why: Trigger| {
            em.revision(cust, idx, cause, why)
        };
        if is_contact {
            let defaults = contacts::EffortDefaults {
                severity: policy.cfg.severity.default,
                currency: &policy.cfg.default_currency,
                syms: &self.syms,
            };
            if let Some(sig) = contacts::on_contact(
                d,
                &defaults,
                &e.customer_id,
                cust,
                e,
                evidence_of(e, src, &self.syms),
                !late,
            ) {
                // Customer effort is a failure of its own (domain.md, 5); a cascade is not.
                let why = if cust.more().incidents[sig.index()].rule == Rule::CustomerEffort {
                    Trigger::Failure
                } else {
                    Trigger::Other
                };
                emit(cust, sig.index(), e.occurred_at, why);
            }
        }
        let ctx = expect::Ctx {
            specs: &self.specs,
            detect: d,
            policy,
            customer_id: &e.customer_id,
        };
        let new_deadline = ctx.on_event(
            cust,
            e,
            failure.is_some(),
            late,
            &self.syms,
            &|| evidence_of(e, src, &self.syms),
            &mut emit,
        );
        // The promise's timer; `emit` is not used on the paths that return early, so the
        // emitter is free again there.
        let Some(signal) = failure else {
            em.new_timers.extend(new_deadline);
            return if late {
                Verdict::Late
            } else {
                Verdict::Applied
            };
        };
        let key: Box<str> = match &e.reference {
            Some(r) => r.clone(),
            None => format!("{}/{}", e.channel.as_str(), e.touchpoint).into(),
        };
        let existing = cust.incident_for(&key);
        if late {
            // History only: the failure counts towards later `failure_count`s, and it is a
            // failure after a recovery all the same.
            if existing.is_none() {
                state::push_tight(&mut cust.m().incident_opens, e.occurred_at);
            }
            closed_loop::on_failure(cust, e.occurred_at, d.follow_up_period.millis(), em.out);
            em.new_timers.extend(new_deadline);
            return Verdict::Late;
        }
        let severity = self.policy.severity(e);
        let cause = e.cause.unwrap_or(Cause::Unknown);
        let evidence = evidence_of(e, src, &self.syms);
        let (currency, touchpoint, event_type) = {
            let mut syms = self.syms.borrow_mut();
            (
                syms.get(
                    e.currency
                        .as_deref()
                        .unwrap_or(&self.policy.cfg.default_currency),
                ),
                syms.get(&e.touchpoint),
                syms.get(&e.event_type),
            )
        };
        let sig = match existing {
            Some(idx) => {
                let m = cust.m();
                let opens = m.incident_opens.len() as u32;
                let inc = &mut m.incidents[idx];
                inc.revision += 1;
                inc.status = TaskStatus::Escalated;
                inc.failures += 1;
                inc.has_failures = true;
                inc.signal = None;
                inc.rule = inc.opened_by;
                inc.severity = inc.severity.max(severity);
                inc.cause = inc.cause.max(cause);
                inc.amount_at_stake = inc.amount_at_stake.max(e.amount.unwrap_or(0.0));
                if e.occurred_at > inc.last_failure_at {
                    inc.last_failure_at = e.occurred_at;
                }
                // This incident has a failure now, so it counts even if it opened before the
                // repeat window (its own opening has then been pruned from the list).
                let opened_before_window = inc.detected_at.plus(d.repeat_window.millis()) < t;
                inc.failure_count = opens + u32::from(opened_before_window);
                if inc.key != key {
                    // A failure on a reference merged into this task.
                    inc.signal = Some(
                        format!(
                            "{} on {key}, merged into this task",
                            crate::policy::render::humanize(&e.event_type)
                        )
                        .into(),
                    );
                }
                lifecycle::add_evidence(inc, evidence);
                Signalled::Escalated(idx)
            }
            None => {
                state::push_tight(&mut cust.m().incident_opens, e.occurred_at);
                let nth = cust.m().incident_opens.len() as u32;
                let rule = Rule::for_new_incident(signal, nth, d.repeat_min_failures);
                // Repetition points to a pattern: one step more severe (domain.md, 2).
                let severity = if nth >= d.repeat_min_failures {
                    severity.raised(1)
                } else {
                    severity
                };
                let task_id = ids::stable_id("t", &[&e.customer_id, &key, &e.event_id]);
                let mut inc = Incident::open(state::Opening {
                    task_id,
                    key,
                    rule,
                    at: e.occurred_at,
                    severity,
                    cause,
                    failure_count: nth,
                    channel: e.channel.0.clone(),
                    touchpoint,
                    event_type,
                    amount_at_stake: e.amount.unwrap_or(0.0),
                    currency,
                    evidence: vec![evidence],
                });
                inc.has_failures = true;
                lifecycle::open(cust, d.suppression_period.millis(), inc)
            }
        };
        emit(cust, sig.index(), e.occurred_at, Trigger::Failure);
        em.new_timers.extend(new_deadline);
        Verdict::Applied
    }

    /// The earliest pending timer: a promise deadline or a task's due time, if any (it may
    /// turn out already settled).
    pub fn next_timer(&self) -> Option<EventTime> {
        self.timers.peek().map(|Reverse((d, _))| *d)
    }

    /// Fires the earliest timer: the promises of that customer due by its deadline that are
    /// still unkept open (or escalate) their tasks, then the customer's tasks due by it that
    /// still have no outcome are escalated as overdue. False when there was no timer.
    pub fn fire_next(&mut self, clock: Clock, fired_by: FiredBy, out: &mut Vec<Output>) -> bool {
        let Some(Reverse((deadline, customer_id))) = self.timers.pop() else {
            return false;
        };
        let Some(cust) = self.customers.get_mut(&customer_id) else {
            return true;
        };
        let (policy, d) = (&self.policy, &self.detect);
        let ctx = expect::Ctx {
            specs: &self.specs,
            detect: d,
            policy,
            customer_id: &customer_id,
        };
        let mut new_timers = std::mem::take(&mut self.new_timers);
        let mut em = Emitter {
            policy,
            detect: d,
            customer_id: &customer_id,
            clock,
            stats: &mut self.stats,
            out,
            new_timers: &mut new_timers,
        };
        let mut emit = |cust: &mut CustomerState, idx: usize, cause: EventTime, why: Trigger| {
            em.revision(cust, idx, cause, why)
        };
        // Promises first, so a task's due time is judged after the missed promises that
        // escalate it at the same time (and with the due time they give it).
        let n = expect::fire_due(&ctx, cust, deadline, fired_by, &mut emit);
        let overdue = if d.escalate_overdue {
            closed_loop::fire_overdue(cust, deadline, fired_by, &mut emit)
        } else {
            0
        };
        cust.compact();
        self.stats.timers_fired += n as u64;
        self.stats.tasks_overdue += overdue as u64;
        self.schedule(&customer_id, &mut new_timers);
        self.new_timers = new_timers;
        // Even a timer that fires nothing may settle what it was for.
        self.changed(&customer_id);
        true
    }

    /// The watermark last set.
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Moves the watermark (never back) and expires state past its TTL. Timers are fired by
    /// the pipeline, in event-time order with the events (`next_timer`, `fire_next`).
    pub fn set_watermark(&mut self, watermark: EventTime) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        if watermark < self.next_sweep {
            return;
        }
        self.next_sweep = watermark.plus(SWEEP_EVERY);
        let d = &self.detect;
        let ttl = d.state_ttl.millis();
        // What no event that is not late can still need: customers who went quiet give back
        // their recent-event lists without waiting for their next event.
        let quiet = watermark.plus(Millis(
            -(d.allowed_lateness.millis().0 + d.out_of_orderness.millis().0),
        ));
        let before = self.customers.len();
        let changes = &mut self.changes;
        self.customers.retain(|k, c| {
            if c.last_activity.plus(ttl) < watermark {
                if let Some(ch) = changes.as_mut() {
                    ch.insert(k.clone());
                }
                return false;
            }
            match changes.as_mut() {
                Some(ch) => {
                    // Sweeping only removes entries, so a change shows in the lengths; a
                    // quiet customer swept again (nothing left to forget) is not rewritten.
                    let was = c.shape();
                    c.sweep(quiet, d);
                    if c.shape() != was {
                        ch.insert(k.clone());
                    }
                }
                None => c.sweep(quiet, d),
            }
            true
        });
        self.stats.expired += (before - self.customers.len()) as u64;
    }

    /// The highest event time this engine has seen.
    pub fn max_event_time(&self) -> EventTime {
        self.max_event_time
    }

    /// Drops the least recently active tenth of the customers above the cap, so eviction
    /// is amortised rather than run on every new customer.
    fn evict(&mut self) {
        let cap = self.detect.max_customers;
        // Leave room for a tenth of the cap (at least one) so the next eviction is far away.
        let target = cap - (cap / 10).max(1);
        let excess = self.customers.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        // Order by (last activity, customer id): ties break by id, so which customers go does
        // not depend on HashMap order, and every engine fed the same events keeps the same ones.
        let mut keys: Vec<(EventTime, &str)> = self
            .customers
            .iter()
            .map(|(k, c)| (c.last_activity, &**k))
            .collect();
        let (_, cutoff, _) = keys.select_nth_unstable(excess - 1);
        let (cut_time, cut_id) = (cutoff.0, cutoff.1.to_string());
        let before = self.customers.len();
        let changes = &mut self.changes;
        self.customers.retain(|k, c| {
            let keep = (c.last_activity, &**k) > (cut_time, cut_id.as_str());
            if !keep {
                if let Some(ch) = changes.as_mut() {
                    ch.insert(k.clone());
                }
            }
            keep
        });
        let removed = before - self.customers.len();
        self.stats.evicted += removed as u64;
    }

    /// The whole state as a versioned, deterministic `amends.v1.EngineSnapshot`.
    pub fn snapshot(&self) -> Vec<u8> {
        snapshot::snapshot(self)
    }

    /// An engine with the state of a [`Engine::snapshot`] and the rules of `config`.
    pub fn restore(config: &Config, bytes: &[u8]) -> Result<Engine, snapshot::SnapshotError> {
        snapshot::restore(config, bytes)
    }

    /// Puts one customer's `amends.v1.CustomerSnapshot` into the state; returns its id.
    pub fn restore_customer(&mut self, bytes: &[u8]) -> Result<Box<str>, snapshot::SnapshotError> {
        snapshot::restore_customer(self, bytes)
    }

    /// Re-creates the timer of every unfired promise and of every task waiting for an
    /// outcome by its due time (after a restore).
    fn rebuild_timers(&mut self) {
        self.timers.clear();
        for (id, c) in &self.customers {
            for d in c.timer_deadlines() {
                self.timers.push(Reverse((d, id.clone())));
            }
        }
    }
}

/// Renders and emits task revisions, with the closed-loop measures that go with them, and
/// notes the due times the overdue timers must watch.
struct Emitter<'a> {
    policy: &'a Policy,
    detect: &'a DetectConfig,
    customer_id: &'a str,
    clock: Clock,
    stats: &'a mut EngineStats,
    out: &'a mut Vec<Output>,
    new_timers: &'a mut Vec<EventTime>,
}

impl Emitter<'_> {
    /// Emits the current revision of the customer's incident `idx`, caused at `cause`.
    fn revision(&mut self, cust: &mut CustomerState, idx: usize, cause: EventTime, why: Trigger) {
        let due_before = cust.more().incidents[idx].due_at;
        let task = render(
            self.policy,
            self.detect,
            self.customer_id,
            cust,
            idx,
            self.clock.at(cause),
        );
        self.stats.count(&task);
        let inc = &cust.more().incidents[idx];
        // A new due time needs its own timer; an unchanged one has its timer already.
        if self.detect.escalate_overdue && inc.awaits_outcome() && inc.due_at != due_before {
            self.new_timers.push(inc.due_at);
        }
        let opened = (task.revision == 1).then(|| {
            closed_loop::measure(
                cust,
                idx,
                inc.detected_at,
                LoopKind::TaskOpened {
                    rule: task.rule.clone(),
                    severity: task.severity,
                    value_at_risk: task.value_at_risk,
                },
            )
        });
        self.out.push(Output::Task(task));
        if let Some(m) = opened {
            self.out.push(Output::Loop(m));
        }
        if why == Trigger::Failure {
            closed_loop::on_failure(cust, cause, self.detect.follow_up_period.millis(), self.out);
        }
    }
}

fn evidence_of(e: &TouchpointEvent, src: &SourcePos, syms: &RefCell<Syms>) -> Ev {
    Ev {
        event_id: e.event_id.clone(),
        topic: src.topic.clone(),
        event_type: syms.borrow_mut().get(&e.event_type),
        offset: src.offset,
        occurred_at: e.occurred_at,
        partition: src.partition,
    }
}

fn render(
    policy: &Policy,
    detect: &DetectConfig,
    customer_id: &str,
    cust: &mut CustomerState,
    idx: usize,
    emitted_at: EventTime,
) -> RecoveryTask {
    let profile_owned = cust.profile.as_ref().map(|p| p.to_profile());
    let profile = profile_owned.as_ref();
    let inc = &cust.more().incidents[idx];
    let facts = IncidentFacts {
        event_type: &inc.event_type,
        channel: &inc.channel,
        touchpoint: &inc.touchpoint,
        reference: &inc.key,
        severity: inc.severity,
        cause: inc.cause,
        failure_count: inc.failure_count,
        failures_on_incident: inc.failures,
        priority_boost: inc.priority_boost,
        signal: inc.signal.as_deref(),
        repeat_window: detect.repeat_window.millis(),
        amount_at_stake: inc.amount_at_stake,
        currency: &inc.currency,
        profile,
        detected_at: inc.detected_at,
        last_failure_at: inc.last_failure_at,
        previous_due: if inc.revision > 1 {
            Some(inc.due_at)
        } else {
            None
        },
    };
    let r = policy.respond(&facts);
    let reason = match (&inc.signal, inc.status) {
        (Some(s), _) => Some(s.to_string()),
        (None, TaskStatus::Escalated) => {
            Some(format!("failure {} on the same incident", inc.failures))
        }
        _ => None,
    };
    let task = RecoveryTask {
        task_id: inc.task_id.clone(),
        revision: inc.revision,
        status: inc.status,
        customer_id: customer_id.to_string(),
        incident: inc.key.to_string(),
        rule: inc.rule.id().to_string(),
        detected_at: inc.detected_at.to_string(),
        emitted_at: emitted_at.to_string(),
        severity: inc.severity,
        failure_count: inc.failure_count,
        cause: inc.cause.as_str().to_string(),
        relationship: r.relationship,
        priority: r.priority,
        due_at: r.due_at.to_string(),
        owner_queue: r.owner_queue,
        actions: r.actions,
        value_at_risk: r.value_at_risk,
        currency: inc.currency.to_string(),
        evidence: inc.evidence.iter().map(Ev::evidence).collect(),
        explanation: match (inc.status, reason.as_deref()) {
            // A closed task says why it closed, not what to do.
            (TaskStatus::Resolved | TaskStatus::Cancelled, Some(why)) => {
                let mut why = why.to_string();
                if let Some(first) = why.get(..1) {
                    let upper = first.to_ascii_uppercase();
                    why.replace_range(..1, &upper);
                }
                format!("{why}; no recovery contact is due.")
            }
            _ => r.explanation,
        },
        channel: inc.channel.to_string(),
        touchpoint: inc.touchpoint.to_string(),
        segment: profile
            .and_then(|p| p.segment.as_ref())
            .map(|s| s.to_string()),
        reason,
        fired_by: inc.fired_by.map(|f| f.as_str().to_string()),
    };
    cust.m().incidents[idx].due_at = r.due_at;
    task
}

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod tests;

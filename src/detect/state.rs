//! Per-customer state: what the engine remembers between events. Kept compact because there
//! is one per active customer: open incidents, recent incident openings (for `failure_count`),
//! recent event-id fingerprints (duplicates) and the last known profile, and for the closed
//! loop the recovery outcomes of each task, the latest survey score and recent recoveries.

use super::rules::{FiredBy, Rule};
use crate::domain::{
    Cause, CustomerProfile, EventTime, Evidence, RecoveryStatus, Severity, TaskStatus,
};
use std::collections::HashSet;
use std::sync::Arc;
use thin_vec::ThinVec;

/// The last known customer profile, as the state keeps it: 32 bytes, the segment shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `EventTime::MIN` when unknown.
    pub since: EventTime,
    /// NaN when unknown.
    pub annual_value: f64,
    pub segment: Option<Arc<str>>,
}

impl Profile {
    pub fn new(p: &CustomerProfile, syms: &mut Syms) -> Profile {
        Profile {
            since: p.since.unwrap_or(EventTime::MIN),
            annual_value: p.annual_value.unwrap_or(f64::NAN),
            segment: p.segment.as_deref().map(|s| syms.get(s)),
        }
    }

    /// Does it say what `p` says?
    pub fn same_as(&self, p: &CustomerProfile) -> bool {
        self.since == p.since.unwrap_or(EventTime::MIN)
            && match p.annual_value {
                Some(v) => self.annual_value.to_bits() == v.to_bits(),
                None => self.annual_value.is_nan(),
            }
            && self.segment.as_deref() == p.segment.as_deref()
    }

    /// The domain form (for the policy).
    pub fn to_profile(&self) -> CustomerProfile {
        CustomerProfile {
            since: (self.since > EventTime::MIN).then_some(self.since),
            segment: self.segment.as_deref().map(Box::from),
            annual_value: (!self.annual_value.is_nan()).then_some(self.annual_value),
        }
    }
}

/// Evidence as the state keeps it: the event id, where it was read, its time and type, with
/// the topic and type shared rather than copied per event (see [`Syms`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub event_id: Box<str>,
    pub topic: Arc<str>,
    pub event_type: Arc<str>,
    pub offset: i64,
    pub occurred_at: EventTime,
    pub partition: i32,
}

impl Ev {
    /// The output contract's form.
    pub fn evidence(&self) -> Evidence {
        Evidence {
            event_id: self.event_id.to_string(),
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            occurred_at: self.occurred_at.to_string(),
            event_type: self.event_type.to_string(),
        }
    }

    /// From the output contract's form (snapshots); an unparsable time becomes "never".
    pub fn from_evidence(e: Evidence, syms: &mut Syms) -> Ev {
        Ev {
            event_id: e.event_id.into(),
            topic: syms.get(&e.topic),
            event_type: syms.get(&e.event_type),
            offset: e.offset,
            occurred_at: EventTime::parse(&e.occurred_at).unwrap_or(EventTime::MIN),
            partition: e.partition,
        }
    }
}

/// Shared copies of the few distinct strings the state repeats for every customer (event
/// types, channels, touchpoints, currencies, topics). Bounded: beyond `MAX_SYMS` distinct
/// strings new ones are simply not shared.
#[derive(Debug, Default)]
pub struct Syms {
    set: HashSet<Arc<str>, super::ids::FastState>,
}

const MAX_SYMS: usize = 65_536;

impl Syms {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.set.len() < MAX_SYMS {
            self.set.insert(a.clone());
        }
        a
    }
}

/// Appends growing the capacity by one, not to the next power of two: a customer's lists are
/// short, and a `Vec`'s first push would otherwise reserve room for four elements.
pub fn push_tight<T>(v: &mut ThinVec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
    v.push(x);
}

/// Appends growing the capacity by half (at least two): for lists that grow with every event
/// (recent event ids), where growing by one would reallocate on every push.
pub fn push_grow<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 2).max(2));
    }
    v.push(x);
}

/// Most evidence entries kept on one incident; older ones beyond it are summarised by
/// `failures` (the count stays exact).
pub const MAX_EVIDENCE: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct CustomerState {
    pub last_activity: EventTime,
    pub profile: Option<Box<Profile>>,
    /// (fingerprint of event_id, occurred_at) of recent events, for duplicate detection.
    pub seen: Vec<(u64, EventTime)>,
    /// Everything most customers do not have; allocated only while there is some.
    more: Option<Box<More>>,
}

/// The parts of a customer's state that most customers, most of the time, do not have. The
/// lists are `ThinVec`s (one pointer each, length and capacity live in the allocation), so the
/// box stays small when only one of them is in use.
#[derive(Debug, Clone, Default)]
pub struct More {
    /// Open times of this customer's incidents within the repeat window.
    pub incident_opens: ThinVec<EventTime>,
    pub incidents: ThinVec<Incident>,
    /// Recent contacts (the customer reaching out), for `customer_effort` and `cascade`.
    pub contacts: ThinVec<Contact>,
    /// Promises and service levels awaiting their fulfilling event (or already missed and
    /// awaiting it for the retraction).
    pub expectations: ThinVec<Expectation>,
    /// Recent events that fulfil or withdraw a configured promise, so a promise applied
    /// after its fulfilment (same time, or behind the watermark) is matched. Kept for
    /// `allowed_lateness + out_of_orderness`.
    pub fulfilments: ThinVec<Fulfilment>,
    /// The closed loop's memory (survey score, recent recoveries): one pointer while absent.
    pub closed_loop: Option<Box<LoopState>>,
}

static NOTHING_MORE: More = More {
    incident_opens: ThinVec::new(),
    incidents: ThinVec::new(),
    contacts: ThinVec::new(),
    expectations: ThinVec::new(),
    fulfilments: ThinVec::new(),
    closed_loop: None,
};

impl More {
    fn is_empty(&self) -> bool {
        self.incident_opens.is_empty()
            && self.incidents.is_empty()
            && self.contacts.is_empty()
            && self.expectations.is_empty()
            && self.fulfilments.is_empty()
            && self.closed_loop.is_none()
    }
}

/// What the closed loop remembers of a customer besides their tasks (domain.md, "Closing the
/// loop"). Allocated only while it holds something, so a customer who never answered a survey
/// and has no recent recovery pays one pointer, and only if they have other state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopState {
    /// The latest survey answer with a score (`detect.survey_types`): the satisfaction an
    /// incident opening after it compares the recovery with (the paradox).
    pub survey: Option<Survey>,
    /// Recoveries reported `resolved` within `detect.follow_up_period`: a new failure in that
    /// time is a double deviation.
    pub recovered: ThinVec<Recovered>,
}

impl LoopState {
    fn is_empty(&self) -> bool {
        self.survey.is_none() && self.recovered.is_empty()
    }
}

/// A survey score and when it was given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Survey {
    pub at: EventTime,
    pub score: f32,
}

/// A task whose recovery was reported `resolved`, with what the double deviation measure
/// needs once the task itself may be forgotten (incidents close `incident_window` after their
/// last failure, which can be before the follow-up period ends).
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// Fingerprint of the task id (one entry per task).
    pub task_fp: u64,
    pub resolved_at: EventTime,
    pub channel: Arc<str>,
    pub touchpoint: Arc<str>,
    pub failure_type: Option<Arc<str>>,
    /// The double deviation was measured (at most once per recovered task).
    pub deviated: bool,
}

/// A recovery outcome as its task keeps it: enough to recognise a repeated delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeSeen {
    pub at: EventTime,
    pub status: RecoveryStatus,
    /// NaN when the outcome carried no score.
    pub score: f32,
}

/// Most outcomes kept per task; beyond it the oldest is forgotten (a case tool reports a task
/// a few times at most, so this only bounds a misbehaving producer).
pub const MAX_OUTCOMES: usize = 8;

impl CustomerState {
    /// The rarely present parts, read-only (empty when there are none).
    pub fn more(&self) -> &More {
        self.more.as_deref().unwrap_or(&NOTHING_MORE)
    }

    /// The rarely present parts, for changing (allocated on first use; see `compact`).
    pub fn m(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// Releases the rarely present parts when they hold nothing.
    /// The lengths of the customer's lists (and which optional parts exist): pruning and
    /// sweeping only remove entries, so a change they make shows here.
    pub fn shape(&self) -> [usize; 8] {
        let m = self.more();
        [
            self.seen.len(),
            usize::from(self.more.is_some()),
            m.incident_opens.len(),
            m.incidents.len(),
            m.contacts.len(),
            m.expectations.len(),
            m.fulfilments.len(),
            m.closed_loop.as_ref().map_or(0, |l| 1 + l.recovered.len()),
        ]
    }

    pub fn compact(&mut self) {
        if self.more.as_ref().is_some_and(|m| m.is_empty()) {
            self.more = None;
        }
    }

    /// Builds a state from its parts (snapshots).
    pub fn from_parts(
        last_activity: EventTime,
        profile: Option<Profile>,
        seen: Vec<(u64, EventTime)>,
        more: More,
    ) -> CustomerState {
        // Decoded lists can carry spare capacity (and reuse the decoder's larger buffers).
        let mut more = more;
        more.incident_opens.shrink_to_fit();
        more.incidents.shrink_to_fit();
        more.contacts.shrink_to_fit();
        more.expectations.shrink_to_fit();
        more.fulfilments.shrink_to_fit();
        if let Some(l) = more.closed_loop.as_deref_mut() {
            l.recovered.shrink_to_fit();
        }
        if more.closed_loop.as_ref().is_some_and(|l| l.is_empty()) {
            more.closed_loop = None;
        }
        let mut seen = seen;
        seen.shrink_to_fit();
        let mut c = CustomerState {
            last_activity,
            profile: profile.map(Box::new),
            seen,
            more: Some(Box::new(more)),
        };
        c.compact();
        c
    }
}

/// A promise made to the customer: `promise_type` on `key` expects a fulfilling event by
/// `deadline`. Which rule and which types fulfil it follow from `promise_type` and the
/// config (`detect.expectations`), so the state stays valid when other expectations change.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub key: Box<str>,
    pub deadline: EventTime,
    /// The deadline passed and the task was opened (or the incident escalated).
    pub fired: bool,
    pub evidence: Ev,
    pub channel: Arc<str>,
    pub touchpoint: Arc<str>,
    pub amount: Option<f64>,
    pub currency: Option<Arc<str>>,
    pub cause: Option<Cause>,
}

impl Expectation {
    /// The type of the promising event (what the rule and fulfilling types follow from).
    pub fn promise_type(&self) -> &Arc<str> {
        &self.evidence.event_type
    }

    /// When the promise was made: the promising event's time.
    pub fn made_at(&self) -> EventTime {
        self.evidence.occurred_at
    }
}

/// An event on a reference, remembered briefly: fingerprints of reference and type, its
/// time, whether it was a failure, and the event itself as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Fulfilment {
    pub key_fp: u64,
    pub type_fp: u64,
    pub at: EventTime,
    pub failure: bool,
    /// The event, to name it and list it as evidence when it settles a promise.
    pub evidence: Ev,
}

/// The customer reaching out: when, about what, where, and the event as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub at: EventTime,
    pub reference: Option<Box<str>>,
    pub channel: Arc<str>,
    pub evidence: Ev,
}

#[derive(Debug, Clone)]
pub struct Incident {
    pub task_id: String,
    /// The reference the incident is keyed by (`channel/touchpoint` when events carry none).
    pub key: Box<str>,
    /// The rule behind the latest revision (a contact signal names its own rule).
    pub rule: Rule,
    /// The rule that opened the incident; failure escalations carry it.
    pub opened_by: Rule,
    pub revision: u32,
    pub status: TaskStatus,
    pub detected_at: EventTime,
    pub last_failure_at: EventTime,
    pub due_at: EventTime,
    pub severity: Severity,
    pub cause: Cause,
    pub failures: u32,
    pub failure_count: u32,
    pub channel: Arc<str>,
    pub touchpoint: Arc<str>,
    pub event_type: Arc<str>,
    pub amount_at_stake: f64,
    pub currency: Arc<str>,
    pub evidence: Vec<Ev>,
    /// Priority steps added by customer effort and cascades.
    pub priority_boost: u8,
    /// A cascade has escalated this incident (once per incident).
    pub cascaded: bool,
    /// Customer effort has escalated (or opened) this incident (once per incident).
    pub effort_signalled: bool,
    /// Why the latest revision exists when a contact caused it (shown as `reason`).
    pub signal: Option<Box<str>>,
    /// References of incidents merged into this one's task within the suppression period.
    pub also: ThinVec<Box<str>>,
    /// The clock that fired the timer behind this incident, if a timer did.
    pub fired_by: Option<FiredBy>,
    /// Missed promises on this task still waiting for their fulfilling event.
    pub unsettled: u8,
    /// A failure event (not only missed promises) is part of this task: a late fulfilment
    /// then does not resolve it.
    pub has_failures: bool,
    /// The task passed its `due_at` with no outcome and was escalated for it (once per task).
    pub overdue: bool,
    /// The customer's latest survey score before the incident opened; NaN when none.
    pub satisfaction_before: f32,
    /// Recovery outcomes reported for the task, in the order applied (at most `MAX_OUTCOMES`).
    pub outcomes: ThinVec<OutcomeSeen>,
}

/// What differs between newly opened incidents; [`Incident::open`] sets the rest.
pub struct Opening {
    pub task_id: String,
    pub key: Box<str>,
    pub rule: Rule,
    pub at: EventTime,
    pub severity: Severity,
    pub cause: Cause,
    pub failure_count: u32,
    pub channel: Arc<str>,
    pub touchpoint: Arc<str>,
    pub event_type: Arc<str>,
    pub amount_at_stake: f64,
    pub currency: Arc<str>,
    pub evidence: Vec<Ev>,
}

impl Incident {
    /// A new incident at revision 1, status open, detected at `o.at`.
    pub fn open(o: Opening) -> Incident {
        Incident {
            task_id: o.task_id,
            key: o.key,
            rule: o.rule,
            opened_by: o.rule,
            revision: 1,
            status: TaskStatus::Open,
            detected_at: o.at,
            last_failure_at: o.at,
            due_at: EventTime::MIN,
            severity: o.severity,
            cause: o.cause,
            failures: 1,
            failure_count: o.failure_count,
            channel: o.channel,
            touchpoint: o.touchpoint,
            event_type: o.event_type,
            amount_at_stake: o.amount_at_stake,
            currency: o.currency,
            evidence: o.evidence,
            priority_boost: 0,
            cascaded: false,
            effort_signalled: false,
            signal: None,
            also: ThinVec::new(),
            fired_by: None,
            unsettled: 0,
            has_failures: false,
            overdue: false,
            satisfaction_before: f32::NAN,
            outcomes: ThinVec::new(),
        }
    }

    /// Is `key` this incident's reference or one merged into it?
    pub fn covers(&self, key: &str) -> bool {
        &*self.key == key || self.also.iter().any(|k| &**k == key)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.status, TaskStatus::Resolved | TaskStatus::Cancelled)
    }

    /// Is the task still waiting for a recovery outcome, so that passing `due_at` escalates
    /// it? Not once closed, not once any outcome came, and only once.
    pub fn awaits_outcome(&self) -> bool {
        !self.is_closed() && self.outcomes.is_empty() && !self.overdue
    }

    /// The type of the incident's first failure event (`missed_order_placed` for a missed
    /// promise). None for an incident that customer effort opened: it has no failure event.
    pub fn failure_type(&self) -> Option<&Arc<str>> {
        (self.opened_by != Rule::CustomerEffort).then_some(&self.event_type)
    }
}

impl CustomerState {
    /// The incident keyed by `key`, or the one it was merged into.
    pub fn incident_for(&self, key: &str) -> Option<usize> {
        self.more().incidents.iter().position(|i| i.covers(key))
    }

    /// Forgets, as of event time `t`, what no rule can need any more, and gives back spare
    /// capacity (the engine's periodic sweep, for customers who went quiet).
    pub fn sweep(&mut self, t: EventTime, d: &crate::config::DetectConfig) {
        // Only customers quiet for longer than the duplicate horizon: their recent ids are all
        // gone then. Recently active ones are pruned at their next event anyway.
        if t <= self.last_activity.plus(d.duplicate_horizon.millis()) {
            return;
        }
        self.prune(t, d);
        self.prune_contacts(t, d.effort_window.millis().max(d.cascade_window.millis()));
        let keep = d.allowed_lateness.millis().0 + d.out_of_orderness.millis().0;
        let horizon = self.last_activity.plus(crate::domain::Millis(-keep));
        if let Some(m) = self.more.as_deref_mut() {
            m.fulfilments.retain(|f| f.at >= horizon);
        }
        self.seen.shrink_to_fit();
        self.compact();
    }

    pub fn prune_contacts(&mut self, t: EventTime, keep: crate::domain::Millis) {
        if !self.more().contacts.is_empty() {
            self.m().contacts.retain(|c| c.at.plus(keep) >= t);
        }
    }

    /// Forgets, as of event time `t`, recent ids, incidents, failures and recoveries older
    /// than their windows in `d`.
    pub fn prune(&mut self, t: EventTime, d: &crate::config::DetectConfig) {
        let incident_window = d.incident_window.millis();
        let repeat_window = d.repeat_window.millis();
        let dup_horizon = d.duplicate_horizon.millis();
        let follow_up = d.follow_up_period.millis();
        self.seen.retain(|(_, at)| at.plus(dup_horizon) >= t);
        let Some(m) = self.more.as_deref_mut() else {
            return;
        };
        if let Some(l) = m.closed_loop.as_deref_mut() {
            if !l.recovered.is_empty() {
                l.recovered.retain(|r| r.resolved_at.plus(follow_up) >= t);
            }
            if l.is_empty() {
                m.closed_loop = None;
            }
        }
        m.incidents
            .retain(|i| i.last_failure_at.plus(incident_window) >= t);
        // A missed promise stays matchable by a late fulfilment while its incident lives.
        m.expectations
            .retain(|x| !x.fired || x.deadline.plus(incident_window) >= t);
        m.incident_opens.retain(|o| o.plus(repeat_window) >= t);
        self.compact();
    }
}

impl CustomerState {
    /// The closed loop's memory, if any.
    pub fn closed_loop(&self) -> Option<&LoopState> {
        self.more().closed_loop.as_deref()
    }

    /// The closed loop's memory, for changing (allocated on first use).
    pub fn closed_loop_mut(&mut self) -> &mut LoopState {
        self.m().closed_loop.get_or_insert_with(Box::default)
    }

    /// Remembers a survey score given at `at`, unless a newer one is already known (a late
    /// survey does not replace a newer answer).
    pub fn note_survey(&mut self, at: EventTime, score: f32) {
        if self
            .closed_loop()
            .and_then(|l| l.survey)
            .is_some_and(|s| s.at > at)
        {
            return;
        }
        self.closed_loop_mut().survey = Some(Survey { at, score });
    }

    /// The latest survey score given strictly before `t`; NaN when there is none.
    pub fn satisfaction_before(&self, t: EventTime) -> f32 {
        match self.closed_loop().and_then(|l| l.survey) {
            Some(s) if s.at < t => s.score,
            _ => f32::NAN,
        }
    }

    /// The deadlines the engine's timers must hold for this customer: unfired promises, and
    /// tasks waiting for an outcome by their `due_at` (rebuilt from state after a restore, so
    /// timers are never stored themselves).
    pub fn timer_deadlines(&self) -> impl Iterator<Item = EventTime> + '_ {
        let m = self.more();
        m.expectations
            .iter()
            .filter(|x| !x.fired)
            .map(|x| x.deadline)
            .chain(
                m.incidents
                    .iter()
                    .filter(|i| i.awaits_outcome() && i.due_at > EventTime::MIN)
                    .map(|i| i.due_at),
            )
    }
}

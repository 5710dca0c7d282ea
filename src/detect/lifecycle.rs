//! Opening incidents, and the suppression period (domain.md, "Incidents and tasks"): a
//! customer is contacted proactively at most once per `detect.suppression_period`. A new,
//! non-critical incident within it merges into the customer's open task (a new revision of
//! that task, which now also covers the new reference) instead of opening a second task.

use super::state::Ev;
use super::state::{CustomerState, Incident, MAX_EVIDENCE};
use crate::domain::{EventTime, Millis, Severity, TaskStatus};

/// What a signal did to the customer's tasks: escalated the incident at this index (also a
/// merge into it), or opened it.
pub(super) enum Signalled {
    Escalated(usize),
    Opened(usize),
}

impl Signalled {
    pub fn index(&self) -> usize {
        match self {
            Signalled::Escalated(i) | Signalled::Opened(i) => *i,
        }
    }
}

/// Why a task revision is emitted, as far as the closed loop cares: a new failure signal (a
/// failure event, a missed promise, customer effort) after a resolved recovery is a double
/// deviation; other revisions (cascades, retractions, overdue escalations) are not failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    Failure,
    Other,
}

/// Opens `inc` as a new task, or merges it into the open task it is suppressed by.
pub(super) fn open(cust: &mut CustomerState, suppression: Millis, mut inc: Incident) -> Signalled {
    if inc.severity != Severity::Critical {
        if let Some(h) = host(cust, inc.detected_at, suppression) {
            merge(&mut cust.m().incidents[h], inc, suppression);
            return Signalled::Escalated(h);
        }
    }
    // What the customer thought before this failure, for the recovery paradox.
    inc.satisfaction_before = cust.satisfaction_before(inc.detected_at);
    super::state::push_tight(&mut cust.m().incidents, inc);
    Signalled::Opened(cust.m().incidents.len() - 1)
}

/// The customer's most recently detected task that is still open and was detected within the
/// suppression period before `t` (ties broken by task id, so the choice is deterministic).
fn host(cust: &CustomerState, t: EventTime, suppression: Millis) -> Option<usize> {
    if suppression.0 <= 0 {
        return None;
    }
    cust.more()
        .incidents
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            !i.is_closed() && i.detected_at <= t && t < i.detected_at.plus(suppression)
        })
        .max_by(|(_, a), (_, b)| (a.detected_at, &a.task_id).cmp(&(b.detected_at, &b.task_id)))
        .map(|(i, _)| i)
}

fn merge(host: &mut Incident, inc: Incident, suppression: Millis) {
    let why = format!(
        "merged: {} on {} within the suppression period ({}; one proactive contact per customer){}",
        crate::policy::render::describe(&inc.event_type),
        inc.key,
        suppression.human(),
        match &inc.signal {
            Some(s) => format!("; {s}"),
            None => String::new(),
        }
    );
    host.revision += 1;
    host.status = TaskStatus::Escalated;
    host.rule = inc.rule;
    host.failures += 1;
    host.failure_count = host.failure_count.max(inc.failure_count);
    host.severity = host.severity.max(inc.severity);
    host.cause = host.cause.max(inc.cause);
    host.amount_at_stake = host.amount_at_stake.max(inc.amount_at_stake);
    host.last_failure_at = host.last_failure_at.max(inc.last_failure_at);
    host.priority_boost = host.priority_boost.max(inc.priority_boost);
    if host.fired_by.is_none() {
        host.fired_by = inc.fired_by;
    }
    host.unsettled = host.unsettled.saturating_add(inc.unsettled);
    host.has_failures |= inc.has_failures;
    host.signal = Some(why.into());
    if !host.also.contains(&inc.key) && host.key != inc.key {
        super::state::push_tight(&mut host.also, inc.key);
    }
    for e in inc.evidence {
        add_evidence(host, e);
    }
}

/// Adds evidence once per event, up to `MAX_EVIDENCE` (the failure count stays exact).
pub(super) fn add_evidence(inc: &mut Incident, ev: Ev) {
    if inc.evidence.len() < MAX_EVIDENCE && !inc.evidence.iter().any(|x| x.event_id == ev.event_id)
    {
        inc.evidence.push(ev);
    }
}

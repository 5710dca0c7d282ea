//! Signals from the customer reaching out (contacts): `customer_effort` (repeated contacts
//! about one reference, or the same problem raised in several channels) and `cascade` (a
//! contact in another channel after a failure). Both say the customer is carrying the cost:
//! they escalate the incident with a higher priority, once each per incident. Effort with no
//! incident yet opens one, because the effort is a failure of its own (domain.md, 5).

use super::ids;
use super::lifecycle::{self, add_evidence, Signalled};
use super::rules::Rule;
use super::state::Ev;
use super::state::{Contact, CustomerState, Incident, Opening};
use crate::config::DetectConfig;
use crate::domain::{Cause, EventTime, Severity, TaskStatus, TouchpointEvent};

/// Severity of an effort-only incident, before repetition raises it, and the shared strings.
pub(super) struct EffortDefaults<'a> {
    pub severity: Severity,
    pub currency: &'a str,
    pub syms: &'a std::cell::RefCell<super::state::Syms>,
}

/// Records the contact and applies the first signal it completes, if any.
pub(super) fn on_contact(
    d: &DetectConfig,
    defaults: &EffortDefaults<'_>,
    customer_id: &str,
    cust: &mut CustomerState,
    e: &TouchpointEvent,
    evidence: Ev,
    signal: bool,
) -> Option<Signalled> {
    let t = e.occurred_at;
    cust.prune_contacts(t, d.effort_window.millis().max(d.cascade_window.millis()));
    super::state::push_tight(
        &mut cust.m().contacts,
        Contact {
            at: t,
            reference: e.reference.clone(),
            channel: e.channel.0.clone(),
            evidence: evidence.clone(),
        },
    );
    if !signal {
        // A late contact is history only.
        return None;
    }
    if let Some(s) = effort(d, defaults, customer_id, cust, e) {
        return Some(s);
    }
    cascade(d, cust, e, evidence)
}

fn effort(
    d: &DetectConfig,
    defaults: &EffortDefaults<'_>,
    customer_id: &str,
    cust: &mut CustomerState,
    e: &TouchpointEvent,
) -> Option<Signalled> {
    let r = e.reference.as_deref()?;
    let window = d.effort_window.millis();
    let about: Vec<&Contact> = cust
        .m()
        .contacts
        .iter()
        .filter(|c| c.reference.as_deref() == Some(r) && c.at.plus(window) >= e.occurred_at)
        .collect();
    let n = about.len() as u32;
    let mut channels: Vec<&str> = about.iter().map(|c| &*c.channel).collect();
    channels.sort_unstable();
    channels.dedup();
    let n_channels = channels.len() as u32;
    if n < d.effort_min_contacts && n_channels < d.effort_min_channels {
        return None;
    }
    let why = if n_channels >= d.effort_min_channels {
        format!(
            "customer effort: {r} raised in {n_channels} channels ({})",
            channels.join(", ")
        )
    } else {
        format!(
            "customer effort: {n} contacts about {r} within {}",
            window.human()
        )
    };
    let evidence: Vec<Ev> = about.iter().map(|c| c.evidence.clone()).collect();
    match cust.incident_for(r) {
        Some(idx) => {
            let inc = &mut cust.m().incidents[idx];
            if inc.effort_signalled || inc.is_closed() {
                return None;
            }
            inc.effort_signalled = true;
            escalate(inc, Rule::CustomerEffort, why, e.occurred_at);
            for ev in evidence {
                add_evidence(inc, ev);
            }
            Some(Signalled::Escalated(idx))
        }
        None => {
            super::state::push_tight(&mut cust.m().incident_opens, e.occurred_at);
            let nth = cust.m().incident_opens.len() as u32;
            let severity = if nth >= d.repeat_min_failures {
                defaults.severity.raised(1)
            } else {
                defaults.severity
            };
            let task_id = ids::stable_id("t", &[customer_id, r, &e.event_id]);
            let (touchpoint, event_type, currency) = {
                let mut syms = defaults.syms.borrow_mut();
                (
                    syms.get(&e.touchpoint),
                    syms.get(&e.event_type),
                    syms.get(defaults.currency),
                )
            };
            let mut inc = Incident::open(Opening {
                task_id,
                key: r.into(),
                rule: Rule::CustomerEffort,
                at: e.occurred_at,
                severity,
                cause: Cause::Unknown,
                failure_count: nth,
                channel: e.channel.0.clone(),
                touchpoint,
                event_type,
                amount_at_stake: 0.0,
                currency,
                evidence,
            });
            inc.priority_boost = 1;
            inc.effort_signalled = true;
            inc.signal = Some(why.into());
            Some(lifecycle::open(cust, d.suppression_period.millis(), inc))
        }
    }
}

fn cascade(
    d: &DetectConfig,
    cust: &mut CustomerState,
    e: &TouchpointEvent,
    evidence: Ev,
) -> Option<Signalled> {
    let window = d.cascade_window.millis();
    let t = e.occurred_at;
    // Prefer the incident the contact names, then the most recent failure; the task id breaks
    // ties so the choice never depends on order of insertion.
    let idx = cust
        .m()
        .incidents
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            !i.cascaded
                && !i.is_closed()
                && *i.channel != *e.channel.as_str()
                && t >= i.last_failure_at
                && t <= i.last_failure_at.plus(window)
        })
        .max_by(|(_, a), (_, b)| {
            let named = |i: &Incident| e.reference.as_deref() == Some(&*i.key);
            (named(a), a.last_failure_at, &a.task_id).cmp(&(
                named(b),
                b.last_failure_at,
                &b.task_id,
            ))
        })
        .map(|(idx, _)| idx)?;
    let inc = &mut cust.m().incidents[idx];
    inc.cascaded = true;
    let why = format!(
        "cascade: the customer turned to {} ({}) after the {} on {}",
        e.channel.as_str(),
        e.touchpoint,
        crate::policy::render::describe(&inc.event_type),
        inc.key
    );
    escalate(inc, Rule::Cascade, why, t);
    add_evidence(inc, evidence);
    Some(Signalled::Escalated(idx))
}

/// A contact-driven revision counts from the contact, like a failure: a deadline that has
/// already passed is replaced by a fresh one (see `policy::render`), and the incident stays
/// open for `incident_window` after it.
fn escalate(inc: &mut Incident, rule: Rule, why: String, at: EventTime) {
    inc.last_failure_at = inc.last_failure_at.max(at);
    inc.revision += 1;
    inc.status = TaskStatus::Escalated;
    inc.rule = rule;
    inc.priority_boost = inc.priority_boost.saturating_add(1);
    inc.signal = Some(why.into());
}

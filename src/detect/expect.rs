//! Promises and service levels: `missed_expectation` and `slow_response` (domain.md, "Missed
//! expectation", "Slow response").
//!
//! A promise is an event of a type named by a `[[detect.expectations]]` entry (deadline: its
//! `within` after the event, or the event's own `expected_by`), or any other event that
//! carries `expected_by` (fulfilled by any non-failure event of another type on the same
//! reference). It is kept when a fulfilling event for the same customer and `reference`
//! occurs at or before the deadline. Otherwise a timer fires once the watermark passes the
//! deadline and the task opens; a fulfilling event that comes after that resolves the task
//! (retraction), and a withdrawing event (`cancelled_by`) cancels it.
//!
//! Everything is decided on event time, so the outcome does not depend on when the timer
//! happened to fire: a fulfilment one millisecond after the deadline means the promise was
//! missed whether it arrives before or after the timer (the task opens and is resolved at
//! once), and one at the deadline means it was kept.

use super::ids;
use super::lifecycle::{self, add_evidence, Trigger};
use super::rules::{FiredBy, Rule};
use super::state::{CustomerState, Ev, Expectation, Fulfilment, Incident, Opening, Syms};
use crate::config::{DetectConfig, ExpectationRule};
use crate::domain::{Cause, EventTime, Millis, Severity, TaskStatus, TouchpointEvent};
use crate::policy::render::humanize;
use crate::policy::Policy;

/// One configured expectation, with its event types fingerprinted for cheap matching.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    rule: Rule,
    when: Box<str>,
    expect: Vec<Box<str>>,
    expect_fps: Vec<u64>,
    cancel_fps: Vec<u64>,
    within: Option<Millis>,
    severity: Severity,
}

/// All expectations of the config, plus the generic one for `expected_by` on other types.
#[derive(Debug, Clone)]
pub(super) struct Specs {
    list: Vec<Spec>,
    promise_severity: Severity,
    /// Contact and survey types: they never keep a generic promise.
    not_fulfilling: Vec<u64>,
}

/// How an event relates to a promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    Fulfils,
    Cancels { failure: bool },
}

/// What a revision produced here needs for rendering: the incident, the event time that
/// caused the revision (the deadline for a fired timer), and whether a new failure caused it.
pub(super) type Emit<'a> = dyn FnMut(&mut CustomerState, usize, EventTime, Trigger) + 'a;

impl Specs {
    pub fn new(d: &DetectConfig) -> Specs {
        let fp = |s: &String| ids::fingerprint(s);
        Specs {
            list: d
                .expectations
                .iter()
                .map(|x| Spec {
                    rule: match x.rule {
                        ExpectationRule::MissedExpectation => Rule::MissedExpectation,
                        ExpectationRule::SlowResponse => Rule::SlowResponse,
                    },
                    when: x.when.as_str().into(),
                    expect: x.expect.iter().map(|s| s.as_str().into()).collect(),
                    expect_fps: x.expect.iter().map(fp).collect(),
                    cancel_fps: x.cancelled_by.iter().map(fp).collect(),
                    within: x.within.map(|w| w.millis()),
                    severity: x.severity,
                })
                .collect(),
            promise_severity: d.promise_severity,
            not_fulfilling: d
                .contact_types
                .iter()
                .chain(&d.survey_types)
                .map(fp)
                .collect(),
        }
    }

    /// Does an event of this type fulfil or withdraw some configured promise?
    fn settles_some(&self, type_fp: u64) -> bool {
        self.list
            .iter()
            .any(|s| s.expect_fps.contains(&type_fp) || s.cancel_fps.contains(&type_fp))
    }

    fn spec(&self, promise_type: &str) -> Option<&Spec> {
        self.list.iter().find(|s| *s.when == *promise_type)
    }

    /// Does an event of `type_fp` (a failure or not) fulfil or withdraw a promise of
    /// `promise_type`?
    fn matches(&self, promise_type: &str, type_fp: u64, failure: bool) -> Option<Match> {
        match self.spec(promise_type) {
            Some(s) => {
                if s.cancel_fps.contains(&type_fp) {
                    Some(Match::Cancels { failure })
                } else if !failure && s.expect_fps.contains(&type_fp) {
                    Some(Match::Fulfils)
                } else {
                    None
                }
            }
            // A generic promise: any non-failure event of another type on the reference, but
            // not the customer chasing it (a contact) or rating it (a survey).
            None => (!failure
                && type_fp != ids::fingerprint(promise_type)
                && !self.not_fulfilling.contains(&type_fp))
            .then_some(Match::Fulfils),
        }
    }

    /// The deadline of a promise made by `e`, if `e` makes one.
    fn deadline(&self, e: &TouchpointEvent) -> Option<EventTime> {
        match self.spec(&e.event_type) {
            Some(s) => match s.within {
                Some(w) => Some(e.occurred_at.plus(w)),
                None => e.expected_by,
            },
            None => e.expected_by,
        }
    }
}

/// Everything the expectation logic reads besides the customer's state.
pub(super) struct Ctx<'a> {
    pub specs: &'a Specs,
    pub detect: &'a DetectConfig,
    pub policy: &'a Policy,
    pub customer_id: &'a str,
}

impl Ctx<'_> {
    /// Applies event `e` (already de-duplicated and in event-time order, or behind the
    /// watermark): fulfils or withdraws this customer's promises on its reference, remembers
    /// it for promises still to arrive, and registers the promise it makes. Returns the
    /// deadline of a newly registered promise, for the engine's timers.
    #[allow(clippy::too_many_arguments)]
    pub fn on_event(
        &self,
        cust: &mut CustomerState,
        e: &TouchpointEvent,
        failure: bool,
        late: bool,
        syms: &std::cell::RefCell<Syms>,
        evidence: &dyn Fn() -> Ev,
        emit: &mut Emit<'_>,
    ) -> Option<EventTime> {
        let r = e.reference.as_deref()?;
        let type_fp = ids::fingerprint(&e.event_type);
        // Promises this event settles.
        let mut i = 0;
        while i < cust.more().expectations.len() {
            let x = &cust.more().expectations[i];
            let m = if &*x.key == r && x.made_at() <= e.occurred_at {
                self.specs.matches(x.promise_type(), type_fp, failure)
            } else {
                None
            };
            match m {
                Some(m) => {
                    let x = cust.m().expectations.remove(i);
                    self.settle(
                        cust,
                        x,
                        m,
                        e.occurred_at,
                        &e.event_type,
                        Some(evidence()),
                        emit,
                    );
                }
                None => i += 1,
            }
        }
        // Remembered for a promise applied after its fulfilment: one at the same time, or one
        // behind the watermark. Only events that fulfil or withdraw a configured promise are
        // kept (a generic `expected_by` promise is matched by later events only).
        let keep =
            self.detect.allowed_lateness.millis().0 + self.detect.out_of_orderness.millis().0;
        let horizon = cust.last_activity.plus(Millis(-keep));
        if !cust.more().fulfilments.is_empty() {
            cust.m().fulfilments.retain(|f| f.at >= horizon);
        }
        let key_fp = ids::fingerprint(r);
        if self.specs.settles_some(type_fp) {
            super::state::push_tight(
                &mut cust.m().fulfilments,
                Fulfilment {
                    key_fp,
                    type_fp,
                    at: e.occurred_at,
                    failure,
                    evidence: evidence(),
                },
            );
        }
        // The promise this event makes. A late event, or one older than what this customer's
        // remembered events cover, makes none: its fulfilment may already be forgotten.
        if late || e.occurred_at < horizon {
            return None;
        }
        // A deadline before the promise itself is no promise anyone could keep.
        let deadline = self.specs.deadline(e).filter(|d| *d >= e.occurred_at)?;
        // An earlier fulfilment or withdrawal, delivered first.
        let settled = cust
            .more()
            .fulfilments
            .iter()
            .filter(|f| f.key_fp == key_fp && f.at >= e.occurred_at)
            .filter_map(|f| {
                self.specs
                    .matches(&e.event_type, f.type_fp, f.failure)
                    .map(|m| (f.at, m, f.evidence.clone()))
            })
            .min_by_key(|(at, _, _)| *at);
        // A new promise of the same kind on the same reference replaces one still pending.
        cust.m()
            .expectations
            .retain(|x| !(!x.fired && &*x.key == r && **x.promise_type() == *e.event_type));
        let evidence = evidence();
        let mut syms = syms.borrow_mut();
        let x = Expectation {
            key: r.into(),
            deadline,
            fired: false,
            evidence,
            channel: e.channel.0.clone(),
            touchpoint: syms.get(&e.touchpoint),
            amount: e.amount,
            currency: e.currency.as_deref().map(|c| syms.get(c)),
            cause: e.cause,
        };
        drop(syms);
        match settled {
            Some((at, m, by)) => {
                let by_type = by.event_type.clone();
                self.settle(cust, x, m, at, &by_type, Some(by), emit);
                None
            }
            None => {
                super::state::push_tight(&mut cust.m().expectations, x);
                Some(deadline)
            }
        }
    }

    /// Settles promise `x` by an event at `at`: kept, missed and then fulfilled, withdrawn.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        cust: &mut CustomerState,
        mut x: Expectation,
        m: Match,
        at: EventTime,
        by_type: &str,
        by: Option<Ev>,
        emit: &mut Emit<'_>,
    ) {
        let on_time = at <= x.deadline;
        match m {
            Match::Fulfils if on_time && !x.fired => {}
            Match::Cancels { .. } if on_time && !x.fired => {}
            // A failure that withdraws the promise (the order was cancelled) is an incident of
            // its own on the same reference; the failure path handles it.
            Match::Cancels { failure: true } => {}
            _ => {
                if !x.fired {
                    // Missed, and we learn it from the settling event itself: the task the
                    // timer would have opened opens now, then settles.
                    self.fire(cust, &mut x, FiredBy::EventTime, emit);
                }
                let what = humanize(by_type);
                let (status, reason) = match m {
                    Match::Fulfils if on_time => (
                        TaskStatus::Resolved,
                        format!("resolved: the {what} at {at} kept the promise; its event reached amends late"),
                    ),
                    Match::Fulfils => (
                        TaskStatus::Resolved,
                        format!(
                            "resolved: the {what} came at {at}, {} after the promised {}",
                            Millis(at.0 - x.deadline.0).human(),
                            x.deadline
                        ),
                    ),
                    Match::Cancels { .. } => (
                        TaskStatus::Cancelled,
                        format!("cancelled: the {what} at {at} withdrew the request"),
                    ),
                };
                let Some(idx) = cust.m().incidents.iter().position(|i| {
                    i.covers(&x.key) && !i.has_failures && i.unsettled > 0 && !i.is_closed()
                }) else {
                    // The miss is part of a task with failures of its own: that task stands.
                    return;
                };
                let inc = &mut cust.m().incidents[idx];
                inc.unsettled -= 1;
                if inc.unsettled > 0 {
                    // Another missed promise on the task is still open.
                    if let Some(ev) = by {
                        add_evidence(inc, ev);
                    }
                    return;
                }
                inc.revision += 1;
                inc.status = status;
                inc.rule = inc.opened_by;
                inc.signal = Some(reason.into());
                if let Some(ev) = by {
                    add_evidence(inc, ev);
                }
                emit(cust, idx, at, Trigger::Other);
            }
        }
    }

    /// The deadline of promise `x` passed: opens its task, or escalates the incident already
    /// open on its reference, and emits the revision (caused at the deadline).
    pub fn fire(
        &self,
        cust: &mut CustomerState,
        x: &mut Expectation,
        fired_by: FiredBy,
        emit: &mut Emit<'_>,
    ) {
        x.fired = true;
        let spec = self.specs.spec(x.promise_type());
        let rule = spec.map_or(Rule::MissedExpectation, |s| s.rule);
        let expected = spec.map_or("fulfilling event".to_string(), |s| {
            let names = s.expect.iter().map(|t| humanize(t)).collect::<Vec<_>>();
            format!("{} event", names.join(" or "))
        });
        let promise = humanize(x.promise_type());
        let why = match (rule, spec.and_then(|s| s.within)) {
            (Rule::SlowResponse, Some(w)) => format!(
                "slow response: no {expected} within {} of the {promise} on {}",
                w.human(),
                x.key
            ),
            (_, Some(w)) => format!(
                "missed expectation: no {expected} within {} of the {promise} on {} (due {})",
                w.human(),
                x.key,
                x.deadline
            ),
            _ => format!(
                "missed expectation: no {expected} by {}, the time promised with the {promise} on {}",
                x.deadline, x.key
            ),
        };
        let d = self.detect;
        let base = spec.map_or(self.specs.promise_severity, |s| s.severity);
        let severity = self.policy.severity_for_amount(base, x.amount);
        let at = x.deadline;
        if let Some(idx) = cust.incident_for(&x.key) {
            let inc = &mut cust.m().incidents[idx];
            inc.revision += 1;
            inc.status = TaskStatus::Escalated;
            inc.rule = rule;
            inc.failures += 1;
            inc.severity = inc.severity.max(severity);
            inc.last_failure_at = inc.last_failure_at.max(at);
            inc.signal = Some(why.into());
            inc.fired_by.get_or_insert(fired_by);
            inc.unsettled = inc.unsettled.saturating_add(1);
            add_evidence(inc, x.evidence.clone());
            emit(cust, idx, at, Trigger::Failure);
            return;
        }
        super::state::push_tight(&mut cust.m().incident_opens, at);
        let nth = cust.m().incident_opens.len() as u32;
        let severity = if nth >= d.repeat_min_failures {
            severity.raised(1)
        } else {
            severity
        };
        // What the task is about, as an event type: `missed_order_placed` (humanized "missed
        // order placed"), `unanswered_ticket_opened`.
        let prefix = if rule == Rule::SlowResponse {
            "unanswered"
        } else {
            "missed"
        };
        let mut inc = Incident::open(Opening {
            task_id: ids::stable_id(
                "t",
                &[self.customer_id, &x.key, &x.evidence.event_id, rule.id()],
            ),
            key: x.key.clone(),
            rule,
            at,
            severity,
            cause: x.cause.unwrap_or(Cause::Unknown),
            failure_count: nth,
            channel: x.channel.clone(),
            touchpoint: x.touchpoint.clone(),
            event_type: format!("{prefix}_{}", x.promise_type()).into(),
            amount_at_stake: x.amount.unwrap_or(0.0),
            currency: x
                .currency
                .clone()
                .unwrap_or_else(|| self.policy.cfg.default_currency.as_str().into()),
            evidence: vec![x.evidence.clone()],
        });
        inc.signal = Some(why.into());
        inc.fired_by = Some(fired_by);
        inc.unsettled = 1;
        let s = lifecycle::open(cust, d.suppression_period.millis(), inc);
        emit(cust, s.index(), at, Trigger::Failure);
    }
}

/// Fires the customer's unfired promises due at or before `deadline`, in deadline order.
pub(super) fn fire_due(
    ctx: &Ctx<'_>,
    cust: &mut CustomerState,
    deadline: EventTime,
    fired_by: FiredBy,
    emit: &mut Emit<'_>,
) -> usize {
    let xs = &cust.more().expectations;
    let mut due: Vec<usize> = (0..xs.len())
        .filter(|&i| !xs[i].fired && xs[i].deadline <= deadline)
        .collect();
    due.sort_by_key(|&i| (xs[i].deadline, i));
    for &i in &due {
        let mut x = cust.m().expectations[i].clone();
        ctx.fire(cust, &mut x, fired_by, emit);
        cust.m().expectations[i] = x;
    }
    due.len()
}

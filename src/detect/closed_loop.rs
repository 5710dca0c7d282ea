//! Closing the loop (domain.md, "Closing the loop"): recovery outcomes reported back by case
//! tools, the overdue escalation of tasks nobody reported on, and what the loop measures.
//!
//! - An outcome is recorded on its task (found by `task_id` among the customer's incidents)
//!   and yields a [`LoopKind::Outcome`] measure: double deviation when the recovery itself
//!   failed, the recovery paradox against the customer's last survey score before the
//!   failure, and the time to recovery.
//! - A task still without an outcome when its `due_at` passes gets one `escalated` revision
//!   (reason `overdue: ...`), driven by the engine's timers like a promise.
//! - A new failure within `detect.follow_up_period` after a `resolved` outcome is a
//!   [`LoopKind::DoubleDeviation`]: the recovery did not hold.
//! - Every task opened is a [`LoopKind::TaskOpened`], for trend counts.
//!
//! Pure like the rest of the engine: outcomes and clock values go in, measures come out.
//! Measures carry event time only; nothing here touches Kafka.

use super::expect::Emit;
use super::ids;
use super::lifecycle::Trigger;
use super::rules::FiredBy;
use super::state::{self, CustomerState, OutcomeSeen, Recovered, MAX_OUTCOMES};
use super::Output;
use crate::domain::{EventTime, Millis, RecoveryOutcome, RecoveryStatus, Severity, TaskStatus};
use std::sync::Arc;

/// What became of a recovery outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeVerdict {
    /// Recorded on its task; a [`LoopKind::Outcome`] measure was emitted.
    Applied,
    /// No incident with that `task_id` in this customer's state (never seen here, or
    /// forgotten `detect.incident_window` after its last failure). Counted, nothing changed;
    /// the caller decides what to do with it (the pipeline dead-letters it).
    UnknownTask,
    /// The task already has an outcome with the same status and `occurred_at`: a repeated
    /// delivery, ignored.
    Duplicate,
}

/// One thing the closed loop measures, with the dimensions trends group by: the task's
/// channel, touch-point, customer segment and failure type.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopMeasure {
    /// Event time: the outcome's `occurred_at`, the new failure's time, or the task's
    /// `detected_at`.
    pub at: EventTime,
    pub channel: Arc<str>,
    pub touchpoint: String,
    pub segment: Option<String>,
    /// The event type of the incident's first failure (`missed_order_placed` for a missed
    /// promise); none for a task that customer effort opened.
    pub failure_type: Option<String>,
    pub kind: LoopKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoopKind {
    /// An outcome received for a task.
    Outcome {
        status: RecoveryStatus,
        /// The recovery itself failed: `unresolved` or `no_response`.
        double_deviation: bool,
        /// Satisfaction after the recovery (the outcome's `score`) at or above the customer's
        /// last survey score before the failure; none unless both are known.
        paradox: Option<bool>,
        /// From the task's `detected_at` (revision 1) to the outcome, for `resolved` only.
        time_to_recovery: Option<Millis>,
    },
    /// A new failure within `detect.follow_up_period` after a resolved recovery: the recovery
    /// did not hold. At most once per recovered task; dimensions are the recovered task's.
    DoubleDeviation,
    /// A task opened (revision 1), for trend counts.
    TaskOpened {
        rule: String,
        severity: Severity,
        value_at_risk: f64,
    },
}

/// A measure with the dimensions of the customer's incident at `idx`.
pub(super) fn measure(
    cust: &CustomerState,
    idx: usize,
    at: EventTime,
    kind: LoopKind,
) -> LoopMeasure {
    let inc = &cust.more().incidents[idx];
    LoopMeasure {
        at,
        channel: inc.channel.clone(),
        touchpoint: inc.touchpoint.to_string(),
        segment: segment(cust),
        failure_type: inc.failure_type().map(|t| t.to_string()),
        kind,
    }
}

fn segment(cust: &CustomerState) -> Option<String> {
    cust.profile
        .as_ref()
        .and_then(|p| p.segment.as_deref())
        .map(String::from)
}

/// Records outcome `o` on the customer's task and emits its measure. The caller has pruned
/// the customer's state as of the outcome's time.
pub(super) fn on_outcome(
    cust: &mut CustomerState,
    o: &RecoveryOutcome,
    out: &mut Vec<Output>,
) -> OutcomeVerdict {
    let Some(idx) = cust
        .more()
        .incidents
        .iter()
        .position(|i| *i.task_id == *o.task_id)
    else {
        return OutcomeVerdict::UnknownTask;
    };
    let inc = &cust.more().incidents[idx];
    if inc
        .outcomes
        .iter()
        .any(|x| x.status == o.status && x.at == o.occurred_at)
    {
        return OutcomeVerdict::Duplicate;
    }
    // Both scores are compared as stored (f32), so equal answers compare equal.
    let score = o.score.map_or(f32::NAN, |s| s as f32);
    let before = inc.satisfaction_before;
    let paradox = (!score.is_nan() && !before.is_nan()).then_some(score >= before);
    let resolved = o.status == RecoveryStatus::Resolved;
    // An outcome dated before the task was detected says nothing about how long recovery
    // took (a clock or data error upstream): no time rather than a negative one.
    let time_to_recovery = resolved
        .then(|| Millis(o.occurred_at.0.saturating_sub(inc.detected_at.0)))
        .filter(|m| m.0 >= 0);
    let m = measure(
        cust,
        idx,
        o.occurred_at,
        LoopKind::Outcome {
            status: o.status,
            double_deviation: o.status.recovery_failed(),
            paradox,
            time_to_recovery,
        },
    );
    let task_fp = ids::fingerprint(&o.task_id);
    let inc = &mut cust.m().incidents[idx];
    if inc.outcomes.len() >= MAX_OUTCOMES {
        inc.outcomes.remove(0);
    }
    state::push_tight(
        &mut inc.outcomes,
        OutcomeSeen {
            at: o.occurred_at,
            status: o.status,
            score,
        },
    );
    if resolved {
        let recovered = Recovered {
            task_fp,
            resolved_at: o.occurred_at,
            channel: inc.channel.clone(),
            touchpoint: inc.touchpoint.clone(),
            failure_type: inc.failure_type().cloned(),
            deviated: false,
        };
        let l = cust.closed_loop_mut();
        // One entry per task: a second `resolved` for it neither restarts the follow-up
        // period nor allows a second double deviation.
        if !l.recovered.iter().any(|r| r.task_fp == task_fp) {
            state::push_tight(&mut l.recovered, recovered);
        }
    }
    out.push(Output::Loop(m));
    OutcomeVerdict::Applied
}

/// A new failure signal of the customer at `at` (a failure event, late or not, a missed
/// promise, customer effort): a double deviation for each resolved recovery whose follow-up
/// period it falls in, once per recovered task.
pub(super) fn on_failure(
    cust: &mut CustomerState,
    at: EventTime,
    follow_up: Millis,
    out: &mut Vec<Output>,
) {
    let within =
        |r: &Recovered| !r.deviated && r.resolved_at < at && at <= r.resolved_at.plus(follow_up);
    if !cust
        .closed_loop()
        .is_some_and(|l| l.recovered.iter().any(within))
    {
        return;
    }
    let segment = segment(cust);
    for r in cust.closed_loop_mut().recovered.iter_mut() {
        if within(r) {
            r.deviated = true;
            out.push(Output::Loop(LoopMeasure {
                at,
                channel: r.channel.clone(),
                touchpoint: r.touchpoint.to_string(),
                segment: segment.clone(),
                failure_type: r.failure_type.as_deref().map(String::from),
                kind: LoopKind::DoubleDeviation,
            }));
        }
    }
}

/// Escalates the customer's tasks whose `due_at` is at or before `deadline` and that are still
/// waiting for an outcome: one revision each, `escalated`, one priority step up, caused at
/// its due time. Returns how many.
pub(super) fn fire_overdue(
    cust: &mut CustomerState,
    deadline: EventTime,
    fired_by: FiredBy,
    emit: &mut Emit<'_>,
) -> usize {
    let incs = &cust.more().incidents;
    let mut due: Vec<usize> = (0..incs.len())
        .filter(|&i| incs[i].awaits_outcome() && incs[i].due_at <= deadline)
        .collect();
    if due.is_empty() {
        return 0;
    }
    due.sort_by(|&a, &b| {
        (incs[a].due_at, &incs[a].task_id).cmp(&(incs[b].due_at, &incs[b].task_id))
    });
    for &idx in &due {
        let inc = &mut cust.m().incidents[idx];
        let at = inc.due_at;
        inc.revision += 1;
        inc.status = TaskStatus::Escalated;
        inc.rule = inc.opened_by;
        inc.overdue = true;
        inc.priority_boost = inc.priority_boost.saturating_add(1);
        inc.signal = Some(format!("overdue: no recovery outcome by the due time {at}").into());
        // This revision says which clock fired its timer; the incident keeps the clock of the
        // promise behind it (if any) for its other revisions.
        let behind = inc.fired_by.replace(fired_by);
        emit(cust, idx, at, Trigger::Other);
        cust.m().incidents[idx].fired_by = behind;
    }
    due.len()
}

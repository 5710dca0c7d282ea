//! `[detect]`: what counts as a failure, how failures group into incidents, state bounds.

use super::{invalid, ConfigError, Dur};
use crate::domain::Severity;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Accepted channel names. Events on other channels are dead-lettered (validation).
    pub channels: Vec<String>,
    /// Event types that are failures whatever their `outcome` says.
    pub failure_types: Vec<String>,
    /// Event types that carry a survey `score`.
    pub survey_types: Vec<String>,
    /// A survey answer with a score at or below this is a failure (a detractor).
    pub detractor_score_max: f64,
    /// Failures of one customer on one reference within this window form one incident.
    pub incident_window: Dur,
    /// Window over which a customer's failures are counted (`failure_count`: first, n-th).
    pub repeat_window: Dur,
    /// The n-th distinct incident in `repeat_window` from which a new incident is a
    /// `repeat_failure` and one step more severe.
    pub repeat_min_failures: u32,
    /// Repeated `event_id`s within this horizon are ignored (duplicate deliveries).
    pub duplicate_horizon: Dur,
    /// Event types that are the customer reaching out (for `customer_effort` and `cascade`).
    pub contact_types: Vec<String>,
    /// Window for counting contacts about one reference (`customer_effort`).
    pub effort_window: Dur,
    /// This many contacts about one reference within `effort_window` is customer effort...
    pub effort_min_contacts: u32,
    /// ...and so is the same reference raised in this many channels.
    pub effort_min_channels: u32,
    /// A contact in another channel within this time after a failure is a `cascade`.
    pub cascade_window: Dur,
    /// A customer's state is dropped this long after their last activity.
    pub state_ttl: Dur,
    /// Most customers kept per partition; the least recently active are evicted beyond it.
    pub max_customers: usize,
    /// A partition's watermark is its highest event time minus this.
    pub out_of_orderness: Dur,
    /// An event more than this behind the watermark is late: it updates history, is counted
    /// and dead-lettered as `late`, and never opens or escalates a task.
    pub allowed_lateness: Dur,
    /// Wall-clock time without input after which a partition stops holding the watermark
    /// back; when all are idle, the watermark advances with the wall clock.
    pub idle_partition_after: Dur,
    /// A customer is contacted proactively at most once per this period: a new incident
    /// within it merges into the customer's open task, unless it is critical.
    pub suppression_period: Dur,
    /// Closing the loop: a new failure of the customer within this time after a recovery
    /// reported `resolved` is a double deviation (the recovery did not hold), measured once per
    /// recovered task. Event time.
    pub follow_up_period: Dur,
    /// Closing the loop: a task that passes its `due_at` with no recovery outcome gets one
    /// `escalated` revision (reason `overdue`). Off for a deployment where no case tool
    /// reports outcomes back, where every task would otherwise go overdue.
    pub escalate_overdue: bool,
    /// Severity of a missed promise made with `expected_by` on an event type no expectation
    /// below names.
    #[serde(deserialize_with = "super::policy::de_severity")]
    pub promise_severity: Severity,
    /// Promises and service levels: `missed_expectation` and `slow_response`.
    pub expectations: Vec<ExpectationConfig>,
}

/// Which rule a missed expectation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectationRule {
    MissedExpectation,
    SlowResponse,
}

/// `[[detect.expectations]]`: an event of type `when` expects an event of one of the
/// `expect` types for the same customer and `reference`, within `within` (or, without
/// `within`, by the event's own `expected_by`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectationConfig {
    pub rule: ExpectationRule,
    pub when: String,
    pub expect: Vec<String>,
    #[serde(default)]
    pub within: Option<Dur>,
    /// Event types that withdraw the request: no task, or the open task is cancelled.
    #[serde(default)]
    pub cancelled_by: Vec<String>,
    #[serde(deserialize_with = "super::policy::de_severity")]
    pub severity: Severity,
}

impl ExpectationConfig {
    fn new(
        rule: ExpectationRule,
        when: &str,
        expect: &str,
        within: Option<Dur>,
        cancelled_by: &[&str],
        severity: Severity,
    ) -> ExpectationConfig {
        ExpectationConfig {
            rule,
            when: when.into(),
            expect: vec![expect.into()],
            within,
            cancelled_by: cancelled_by.iter().map(|s| s.to_string()).collect(),
            severity,
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            channels: ["sales", "billing", "shipping", "service"]
                .map(String::from)
                .to_vec(),
            failure_types: [
                "payment_declined",
                "delivery_failed",
                "order_cancelled",
                "invoice_disputed",
                "refund_failed",
                "ticket_reopened",
                "call_abandoned",
                "visit_missed",
            ]
            .map(String::from)
            .to_vec(),
            survey_types: vec!["survey_answered".into()],
            detractor_score_max: 2.0,
            incident_window: Dur::days(14),
            repeat_window: Dur::days(30),
            repeat_min_failures: 2,
            duplicate_horizon: Dur::hours(24),
            contact_types: [
                "ticket_opened",
                "call_received",
                "callback_requested",
                "chat_started",
                "email_received",
            ]
            .map(String::from)
            .to_vec(),
            effort_window: Dur::hours(72),
            effort_min_contacts: 3,
            effort_min_channels: 2,
            cascade_window: Dur::hours(72),
            state_ttl: Dur::days(90),
            max_customers: 1_000_000,
            out_of_orderness: Dur::secs(120),
            allowed_lateness: Dur::hours(1),
            idle_partition_after: Dur::secs(30),
            suppression_period: Dur::days(7),
            follow_up_period: Dur::days(14),
            escalate_overdue: true,
            promise_severity: Severity::Major,
            expectations: vec![
                ExpectationConfig::new(
                    ExpectationRule::MissedExpectation,
                    "order_placed",
                    "order_shipped",
                    Some(Dur::hours(48)),
                    &["order_cancelled", "order_withdrawn"],
                    Severity::Major,
                ),
                ExpectationConfig::new(
                    ExpectationRule::MissedExpectation,
                    "delivery_scheduled",
                    "delivered",
                    None,
                    &["delivery_failed", "delivery_withdrawn"],
                    Severity::Major,
                ),
                ExpectationConfig::new(
                    ExpectationRule::SlowResponse,
                    "ticket_opened",
                    "agent_replied",
                    Some(Dur::hours(4)),
                    &["ticket_withdrawn"],
                    Severity::Minor,
                ),
                ExpectationConfig::new(
                    ExpectationRule::SlowResponse,
                    "callback_requested",
                    "callback_made",
                    Some(Dur::hours(2)),
                    &["callback_cancelled"],
                    Severity::Minor,
                ),
            ],
        }
    }
}

impl DetectConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.channels.is_empty() {
            return Err(invalid("detect.channels", "must list at least one channel"));
        }
        for (i, c) in self.channels.iter().enumerate() {
            if c.is_empty()
                || !c
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(invalid(
                    format!("detect.channels[{i}]"),
                    format!("`{c}` must be lower-case letters, digits or `_`"),
                ));
            }
            if self.channels[..i].contains(c) {
                return Err(invalid(
                    format!("detect.channels[{i}]"),
                    format!("`{c}` is listed twice"),
                ));
            }
        }
        if !self.detractor_score_max.is_finite() {
            return Err(invalid(
                "detect.detractor_score_max",
                "must be a finite number",
            ));
        }
        for (key, d) in [
            ("detect.incident_window", self.incident_window),
            ("detect.repeat_window", self.repeat_window),
            ("detect.state_ttl", self.state_ttl),
        ] {
            if d.millis().0 <= 0 {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        if self.state_ttl.millis() < self.repeat_window.millis()
            || self.state_ttl.millis() < self.incident_window.millis()
        {
            return Err(invalid("detect.state_ttl", "must be at least as long as detect.repeat_window and detect.incident_window, or history would be forgotten inside a window"));
        }
        if self.effort_min_contacts < 2 {
            return Err(invalid("detect.effort_min_contacts", "must be at least 2"));
        }
        if self.effort_min_channels < 2 {
            return Err(invalid(
                "detect.effort_min_channels",
                "must be at least 2 (one channel is no channel switch)",
            ));
        }
        for (key, d) in [
            ("detect.effort_window", self.effort_window),
            ("detect.cascade_window", self.cascade_window),
        ] {
            if d.millis().0 <= 0 {
                return Err(invalid(key, "must be longer than zero"));
            }
            if d.millis() > self.state_ttl.millis() {
                return Err(invalid(key, "must not be longer than detect.state_ttl"));
            }
        }
        if self.repeat_min_failures < 2 {
            return Err(invalid(
                "detect.repeat_min_failures",
                "must be at least 2 (the first failure is never a repeat)",
            ));
        }
        if self.max_customers == 0 {
            return Err(invalid("detect.max_customers", "must be at least 1"));
        }
        for (key, d) in [
            ("detect.allowed_lateness", self.allowed_lateness),
            ("detect.idle_partition_after", self.idle_partition_after),
        ] {
            if d.millis().0 <= 0 {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        if self.allowed_lateness.millis() > self.state_ttl.millis() {
            return Err(invalid(
                "detect.allowed_lateness",
                "must not be longer than detect.state_ttl",
            ));
        }
        if self.suppression_period.millis() > self.state_ttl.millis() {
            return Err(invalid(
                "detect.suppression_period",
                "must not be longer than detect.state_ttl",
            ));
        }
        if self.follow_up_period.millis().0 <= 0 {
            return Err(invalid(
                "detect.follow_up_period",
                "must be longer than zero",
            ));
        }
        if self.follow_up_period.millis() > self.state_ttl.millis() {
            return Err(invalid(
                "detect.follow_up_period",
                "must not be longer than detect.state_ttl",
            ));
        }
        for (i, x) in self.expectations.iter().enumerate() {
            let key = |k: &str| format!("detect.expectations[{i}].{k}");
            if x.when.is_empty() {
                return Err(invalid(key("when"), "must name an event type"));
            }
            if x.expect.is_empty() || x.expect.iter().any(String::is_empty) {
                return Err(invalid(
                    key("expect"),
                    "must list at least one event type, none empty",
                ));
            }
            if x.expect.contains(&x.when) {
                return Err(invalid(
                    key("expect"),
                    format!("`{}` cannot fulfil its own promise", x.when),
                ));
            }
            if let Some(w) = x.within {
                if w.millis().0 <= 0 {
                    return Err(invalid(key("within"), "must be longer than zero"));
                }
                if w.millis() > self.state_ttl.millis() {
                    return Err(invalid(
                        key("within"),
                        "must not be longer than detect.state_ttl",
                    ));
                }
            }
            if let Some(c) = x
                .cancelled_by
                .iter()
                .find(|c| x.expect.contains(c) || **c == x.when)
            {
                return Err(invalid(
                    key("cancelled_by"),
                    format!("`{c}` is also the promise or its fulfilment"),
                ));
            }
            if self.expectations[..i].iter().any(|o| o.when == x.when) {
                return Err(invalid(
                    key("when"),
                    format!("`{}` already has an expectation", x.when),
                ));
            }
        }
        Ok(())
    }
}

//! `[detect]`: what counts as a failure, how failures group into incidents, state bounds.

use super::{invalid, ConfigError, Dur};
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
        Ok(())
    }
}

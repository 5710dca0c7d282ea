//! Named telemetry events: one small struct per thing that happens, whose `emit()` counts
//! (and logs when it is worth a line). No customer data in fields or labels.

use super::names::*;
use metrics::{counter, histogram};

pub struct EventDecoded<'a> {
    pub channel: &'a str,
    pub outcome: &'static str,
}

impl EventDecoded<'_> {
    pub fn emit(&self) {
        counter!(EVENTS_IN, "channel" => self.channel.to_string(), "outcome" => self.outcome)
            .increment(1);
    }
}

pub struct DeadLettered<'a> {
    pub reason: &'static str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub field: Option<&'a str>,
}

impl DeadLettered<'_> {
    pub fn emit(&self) {
        counter!(DEAD_LETTERS, "reason" => self.reason).increment(1);
        // The detail can quote the payload (customer data), so only the field name is logged.
        tracing::warn!(
            reason = self.reason,
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            field = self.field.unwrap_or("-"),
            "input record dead-lettered"
        );
    }
}

pub struct TaskDelivered<'a> {
    pub rule: &'a str,
    pub severity: &'a str,
    pub latency_s: Option<f64>,
}

impl TaskDelivered<'_> {
    pub fn emit(&self) {
        counter!(TASKS, "rule" => self.rule.to_string(), "severity" => self.severity.to_string())
            .increment(1);
        if let Some(l) = self.latency_s {
            histogram!(EVENT_TO_TASK).record(l);
        }
    }
}

pub struct DeliveryRetried<'a> {
    pub topic: &'a str,
    pub attempt: u32,
    pub error: &'a str,
}

impl DeliveryRetried<'_> {
    pub fn emit(&self) {
        counter!(DELIVERY_RETRIES).increment(1);
        tracing::warn!(
            topic = self.topic,
            attempt = self.attempt,
            error = self.error,
            "output delivery failed; retrying"
        );
    }
}

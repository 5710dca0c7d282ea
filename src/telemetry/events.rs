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

/// Dead-letter log lines are rate-limited: a flood of bad input (a producer shipping the wrong
/// schema) would otherwise write one line per record. The counter always counts every record;
/// the log shows at most one line per second, saying how many it left out.
static DEAD_LETTER_LOG: LogLimiter = LogLimiter::new();

impl DeadLettered<'_> {
    pub fn emit(&self) {
        counter!(DEAD_LETTERS, "reason" => self.reason).increment(1);
        if let Some(suppressed) = DEAD_LETTER_LOG.allow() {
            // The detail can quote the payload (customer data), so only the field name is logged.
            tracing::warn!(
                reason = self.reason,
                topic = self.topic,
                partition = self.partition,
                offset = self.offset,
                field = self.field.unwrap_or("-"),
                suppressed_since_last = suppressed,
                "input record dead-lettered"
            );
        }
    }
}

/// Allows one log line per second and counts the ones it held back.
pub struct LogLimiter {
    last_second: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogLimiter {
    pub const fn new() -> LogLimiter {
        LogLimiter {
            last_second: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log now, `n` lines were held back since the last one. `None`: hold back.
    pub fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_second.load(Relaxed);
        if now != last
            && self
                .last_second
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new()
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

#[cfg(test)]
mod tests {
    use super::LogLimiter;

    #[test]
    fn the_limiter_lets_one_line_a_second_through_and_counts_the_rest() {
        let l = LogLimiter::new();
        assert_eq!(l.allow(), Some(0));
        let held: usize = (0..1000).filter(|_| l.allow().is_none()).count();
        // Everything in the same second is held back (a second boundary may let one through).
        assert!(held >= 999, "held back {held} of 1000");
    }
}

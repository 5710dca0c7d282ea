//! A recovery outcome reported back by a downstream case tool (closing the loop).

use super::time::EventTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecoveryStatus {
    Resolved,
    Unresolved,
    NoResponse,
}

impl RecoveryStatus {
    pub fn parse(s: &str) -> Option<RecoveryStatus> {
        match s {
            "resolved" => Some(RecoveryStatus::Resolved),
            "unresolved" => Some(RecoveryStatus::Unresolved),
            "no_response" => Some(RecoveryStatus::NoResponse),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStatus::Resolved => "resolved",
            RecoveryStatus::Unresolved => "unresolved",
            RecoveryStatus::NoResponse => "no_response",
        }
    }

    /// Did the recovery itself fail (a double deviation, domain.md "Closing the loop")? The
    /// problem was not put right, or the customer never answered the attempt.
    pub fn recovery_failed(self) -> bool {
        matches!(
            self,
            RecoveryStatus::Unresolved | RecoveryStatus::NoResponse
        )
    }
}

/// What a case tool reports about one task. `score` is the customer's satisfaction after the
/// recovery, on the scale of the survey scores (`detect.detractor_score_max`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryOutcome {
    pub task_id: Box<str>,
    pub customer_id: Box<str>,
    pub occurred_at: EventTime,
    pub status: RecoveryStatus,
    pub compensation_type: Option<Box<str>>,
    pub compensation_amount: Option<f64>,
    pub currency: Option<Box<str>>,
    pub score: Option<f64>,
}

//! The detection rules. Each rule has a stable id that appears in the task's `rule` field
//! and in metrics. New patterns are added here as variants.

/// A detection rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A single service failure: an event with `outcome: failure`, a configured failure
    /// type, or a survey answer at or below the detractor score.
    BreakingPoint,
}

impl Rule {
    pub const ALL: [Rule; 1] = [Rule::BreakingPoint];

    pub fn id(self) -> &'static str {
        match self {
            Rule::BreakingPoint => "breaking_point",
        }
    }
}

/// Why an event counts as a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureSignal {
    /// `outcome: failure`.
    Outcome,
    /// The type is listed in `detect.failure_types`.
    FailureType,
    /// A survey answer at or below `detect.detractor_score_max`.
    Detractor,
}

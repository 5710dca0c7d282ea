//! The detection rules. Each rule has a stable id that appears in the task's `rule` field
//! and in metrics. New patterns are added here as variants.

/// A detection rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A single service failure: an event with `outcome: failure` or a configured failure
    /// type, the customer's first incident in the repeat window.
    BreakingPoint,
    /// The customer's n-th failure on distinct incidents within `detect.repeat_window`
    /// (n >= `detect.repeat_min_failures`): a pattern, not an accident. Severity rises a step.
    RepeatFailure,
    /// A survey answer at or below `detect.detractor_score_max`.
    Detractor,
    /// After a failure, the customer turns to another channel within `detect.cascade_window`:
    /// they are carrying the cost, so the task escalates with a higher priority.
    Cascade,
    /// Repeated contacts about one reference, or the same problem raised in several channels:
    /// the effort is a failure of its own (domain.md, 5).
    CustomerEffort,
    /// A promise was not kept: the fulfilling event did not come by the deadline
    /// (`detect.expectations` with rule `missed_expectation`, or an event's `expected_by`).
    MissedExpectation,
    /// A contact got no response within its service level (`detect.expectations` with rule
    /// `slow_response`).
    SlowResponse,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::BreakingPoint,
        Rule::RepeatFailure,
        Rule::Detractor,
        Rule::Cascade,
        Rule::CustomerEffort,
        Rule::MissedExpectation,
        Rule::SlowResponse,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::BreakingPoint => "breaking_point",
            Rule::RepeatFailure => "repeat_failure",
            Rule::Detractor => "detractor",
            Rule::Cascade => "cascade",
            Rule::CustomerEffort => "customer_effort",
            Rule::MissedExpectation => "missed_expectation",
            Rule::SlowResponse => "slow_response",
        }
    }

    /// The rule for a newly opened incident: what the signal was, and whether it is the
    /// `nth` incident of the customer in the repeat window. A detractor keeps its own rule
    /// (the survey is the signal), but its severity still rises when it repeats.
    pub fn for_new_incident(signal: FailureSignal, nth: u32, repeat_min_failures: u32) -> Rule {
        match signal {
            FailureSignal::Detractor => Rule::Detractor,
            _ if nth >= repeat_min_failures => Rule::RepeatFailure,
            _ => Rule::BreakingPoint,
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
    /// After a failure, the customer turns to another channel within `detect.cascade_window`:
    /// they are carrying the cost, so the task escalates with a higher priority.
    Cascade,
    /// Repeated contacts about one reference, or the same problem raised in several channels:
    /// the effort is a failure of its own (domain.md, 5).
    CustomerEffort,
}

/// Which clock moved the watermark past a timer's deadline (the task's `fired_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FiredBy {
    /// Event time: later events moved the watermark.
    EventTime,
    /// The wall clock: the partitions were idle, so time advanced without events.
    WallClock,
}

impl FiredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FiredBy::EventTime => "event_time",
            FiredBy::WallClock => "wall_clock",
        }
    }
    pub fn parse(s: &str) -> Option<FiredBy> {
        match s {
            "event_time" => Some(FiredBy::EventTime),
            "wall_clock" => Some(FiredBy::WallClock),
            _ => None,
        }
    }
}

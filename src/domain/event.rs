//! The touch-point event after validation.

use super::time::EventTime;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    Neutral,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "neutral" => Some(Outcome::Neutral),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Neutral => "neutral",
        }
    }
}

/// Was the failure under the company's control?
///
/// Ordered by how much the company owes (declaration order): when failures on one incident
/// disagree, the incident keeps the highest, so an escalation never withdraws an offer
/// (external: apology only < unknown: goodwill credit < internal: tangible compensation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    External,
    Unknown,
    Internal,
}

impl Cause {
    pub fn parse(s: &str) -> Option<Cause> {
        match s {
            "internal" => Some(Cause::Internal),
            "external" => Some(Cause::External),
            "unknown" => Some(Cause::Unknown),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Internal => "internal",
            Cause::External => "external",
            Cause::Unknown => "unknown",
        }
    }
}

/// A configured channel name. Interned: decoding hands out clones of the configured `Arc`,
/// so comparing and storing channels costs no allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(pub Arc<str>);

impl Channel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct CustomerProfile {
    pub since: Option<EventTime>,
    pub segment: Option<Box<str>>,
    pub annual_value: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TouchpointEvent {
    pub event_id: Box<str>,
    pub occurred_at: EventTime,
    pub customer_id: Box<str>,
    pub channel: Channel,
    pub touchpoint: Box<str>,
    pub event_type: Box<str>,
    pub outcome: Outcome,
    pub reference: Option<Box<str>>,
    pub cause: Option<Cause>,
    pub amount: Option<f64>,
    pub currency: Option<Box<str>>,
    pub expected_by: Option<EventTime>,
    pub customer: Option<CustomerProfile>,
    pub score: Option<f64>,
    pub attributes: Vec<(Box<str>, Box<str>)>,
}

//! The recovery task: the output contract. Serialized field for field as the JSON contract in
//! README.md; `codec::output` also maps it to `amends.v1.RecoveryTask`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
    /// One step up, saturating at critical.
    pub fn raised(self, steps: u8) -> Severity {
        let mut s = self;
        for _ in 0..steps {
            s = match s {
                Severity::Minor => Severity::Major,
                _ => Severity::Critical,
            };
        }
        s
    }
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "minor" => Some(Severity::Minor),
            "major" => Some(Severity::Major),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Escalated,
    Resolved,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Escalated => "escalated",
            TaskStatus::Resolved => "resolved",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// Relationship strength, from tenure and value (domain.md, "What shapes the response" 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    New,
    Established,
    Loyal,
    /// No profile came with the events: treated like a new customer for speed, since a
    /// customer we know nothing about has no relationship buffer we can count on.
    Unknown,
}

impl Relationship {
    pub fn as_str(self) -> &'static str {
        match self {
            Relationship::New => "new",
            Relationship::Established => "established",
            Relationship::Loyal => "loyal",
            Relationship::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Acknowledge,
    Fix,
    Alternatives,
    Compensate,
    FollowUp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compensation {
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: f64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub step: u32,
    pub kind: ActionKind,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub compensation: Option<Compensation>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub due_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub event_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub occurred_at: String,
    #[serde(rename = "type")]
    pub event_type: String,
}

/// One revision of a recovery task. The highest revision of a `task_id` is the truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryTask {
    pub task_id: String,
    pub revision: u32,
    pub status: TaskStatus,
    pub customer_id: String,
    pub incident: String,
    pub rule: String,
    pub detected_at: String,
    pub emitted_at: String,
    pub severity: Severity,
    pub failure_count: u32,
    pub cause: String,
    pub relationship: Relationship,
    pub priority: String,
    pub due_at: String,
    pub owner_queue: String,
    pub actions: Vec<Action>,
    pub value_at_risk: f64,
    pub currency: String,
    pub evidence: Vec<Evidence>,
    pub explanation: String,
    pub channel: String,
    pub touchpoint: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub segment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fired_by: Option<String>,
}

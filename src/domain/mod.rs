//! Validated domain types. Everything in here has already passed decoding and validation:
//! inside the engine an invalid value cannot exist. Parsing from wire formats lives in
//! `codec`; nothing here knows about Kafka, JSON or Protobuf.

pub mod event;
pub mod outcome;
pub mod task;
pub mod time;

pub use event::{Cause, Channel, CustomerProfile, Outcome, TouchpointEvent};
pub use outcome::{RecoveryOutcome, RecoveryStatus};
pub use task::{
    Action, ActionKind, Compensation, Evidence, RecoveryTask, Relationship, Severity, TaskStatus,
};
pub use time::{EventTime, Millis};

/// Where an input record came from. Evidence on tasks points back here.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourcePos {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

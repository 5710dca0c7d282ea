//! Trends (domain.md, "Trends: failures as market research"; design.md, "Scaling out"):
//! tumbling event-time windows of failure rates per dimension, merged across every input
//! partition, compared with baselines, and alerts when a rate breaks away.
//!
//! - [`window`]: per input partition, facts (events, tasks opened, recovery outcomes) in,
//!   partial aggregates and "closed" markers out, as records for `amends.trend-partials`.
//! - [`sketch`]: the mergeable summaries inside a partial: a HyperLogLog for distinct
//!   customers and a log-bucket histogram for the median time to recovery.
//! - [`merge`]: per partials partition, merges every source's partials into one snapshot per
//!   closed window and dimension, once all sources reported or after a wait.
//! - [`baseline`] and [`alert`]: per dimension and width, the recent and seasonal baselines
//!   and the alert lifecycle (pending, firing, resolved).
//!
//! Pure like `detect`: no Kafka, no tokio, no wall clock read inside; time is an argument.

pub mod alert;
pub mod baseline;
pub mod merge;
pub mod sketch;
pub mod window;

pub use alert::{Alert, AlertConfig, Alerting, Evaluation, WindowCounts};
pub use merge::{Merger, Snapshot};
pub use window::{Dimension, Fact, PartialRecord, PartitionTrends, Recorded};

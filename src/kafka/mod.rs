//! The Kafka edge: the only module that names rdkafka types. A poll thread feeds one worker
//! task per assigned partition; workers run the pure [`Processor`](crate::pipeline::Processor),
//! produce its outputs and report the offsets whose outputs are all acknowledged; the poll
//! thread stores those offsets for librdkafka's periodic commit (at-least-once).
//!
//! Rebalances are handled in the poll thread's callbacks: on revocation the affected workers
//! finish their in-flight work, their offsets are stored and committed synchronously, and
//! only then is their state dropped.
//!
//! With `kafka.guarantee = "exactly_once"` the poll thread is also the transaction
//! coordinator (`consumer::Transactions`): one transactional producer per instance, and one
//! transaction per `pipeline.checkpoint_interval` holding the outputs, the changelog records
//! and the input offsets of every partition the instance owns.

pub mod client;
mod consumer;
pub mod restore;
pub mod sink;
mod worker;

pub use consumer::{run, RunReport};

/// Errors that stop the service. Everything else (bad input, retriable broker errors) is
/// handled where it happens.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("kafka client could not be created: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("cannot reach the brokers at {brokers} within {waited_s} s: {detail}")]
    Unreachable {
        brokers: String,
        waited_s: u64,
        detail: String,
    },
    #[error(
        "output topic `{topic}` (config key {key}) does not exist on the cluster; create it first"
    )]
    MissingTopic { topic: String, key: &'static str },
    #[error(
        "input topic `{topic}` (config key {key}) has {partitions} partitions but the first touch-point topic `{touchpoints}` has {expected}: partition p of every input topic is read where the state of its customers is, so all input topics must have the same partition count and be keyed by customer_id with the same partitioner"
    )]
    NotCoPartitioned {
        key: &'static str,
        topic: String,
        partitions: usize,
        touchpoints: String,
        expected: usize,
    },
    #[error("subscribing to {topics:?} failed: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: rdkafka::error::KafkaError,
    },
    #[error("an output could not be delivered after {attempts} attempts ({topic}): {error}; stopping without committing its input")]
    Delivery {
        topic: String,
        attempts: u32,
        error: String,
    },
    #[error("rebuilding the state of {topic}/{partition} failed: {detail}")]
    Restore {
        topic: String,
        partition: i32,
        detail: String,
    },
    #[error(
        "changelog topic `{topic}` (config key output.changelog) has {partitions} partitions but the first touch-point topic `{touchpoints}` has {expected}: partition p of the changelog holds the state of input partition p; create it compacted with {expected} partitions, or set pipeline.restore = \"input\""
    )]
    ChangelogPartitions {
        topic: String,
        partitions: usize,
        touchpoints: String,
        expected: usize,
    },
    #[error("writing the state of partition {partition} to the changelog failed: {detail}")]
    Checkpoint { partition: i32, detail: String },
    #[error("exactly-once: {step} failed: {detail}")]
    Transaction { step: &'static str, detail: String },
    #[error("exactly-once: this instance was fenced ({detail}); another instance with transactional.id `{id}` (config key kafka.transactional_id) took over, or the transaction timed out. Stopping without committing; the last committed transaction stands")]
    Fenced { id: String, detail: String },
    #[error("the consumer thread panicked")]
    ConsumerPanicked,
}

//! amends: finds service breaking points in customer touch-point events on Kafka and
//! publishes proactive recovery tasks.
//!
//! Map of the crate (dependencies point inward, towards `domain`):
//! - [`domain`]: validated types (events, outcomes, tasks, event time). No I/O.
//! - [`codec`]: JSON and Protobuf in, validated domain types out; output encoding.
//! - [`detect`]: the pure detection engine (per-customer state, incidents, rules).
//! - [`policy`]: the recovery playbook: severity, tiers, priority, compensation, wording.
//! - [`pipeline`]: the seam between Kafka and the engine: plain inbound/outbound records,
//!   decode + validate + detect + dead-letter, usable with an in-memory sink.
//! - [`kafka`]: the only module that names rdkafka: consumer loop, producer, rebalances.
//! - [`telemetry`]: metric names, logging set-up, the HTTP endpoint.
//! - [`trend`]: the pure trend stage: windows per partition, the merge across partitions,
//!   baselines and alerts.
//! - [`sim`]: the seeded traffic generator behind `amends simulate` and `amends demo`.
//! - [`config`]: typed, validated configuration.
//! - [`app`]: the commands (`run`, `replay`, `demo`, `simulate`, `check-config`).

pub mod app;
pub mod codec;
pub mod config;
pub mod detect;
pub mod domain;
pub mod kafka;
pub mod pipeline;
pub mod policy;
pub mod sim;
pub mod telemetry;
pub mod trend;

/// Types generated from `proto/amends/v1/*.proto`.
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/amends.v1.rs"));
}

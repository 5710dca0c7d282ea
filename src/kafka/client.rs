//! librdkafka client configuration: the properties amends manages for its guarantee, then
//! the user's pass-through properties. Logged only through [`redacted`](crate::config::redacted).

use crate::config::{redacted, Config, Guarantee};
use rdkafka::ClientConfig;

/// Consumer properties: offsets are stored by amends only after delivery
/// (`enable.auto.offset.store=false`) and committed by librdkafka's timer.
pub fn consumer_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.kafka.group_id)
        .set("client.id", &config.kafka.client_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        // The statistics also tell which partitions are caught up, which decides whether a
        // quiet partition is idle: report several times per idle period.
        .set(
            "statistics.interval.ms",
            statistics_interval_ms(config).to_string(),
        )
        // librdkafka backs off fetching for 1 s when its queue is full; 10 ms keeps a fast
        // consumer fed (measured about 3.4x throughput, see design.md).
        .set("fetch.queue.backoff.ms", "10");
    for (k, v) in config.client_properties(true) {
        c.set(k, v);
    }
    // Set last so pass-through cannot weaken the guarantee (validation rejects it anyway).
    if config.kafka.guarantee == Guarantee::ExactlyOnce {
        // Offsets are committed by the producer's transactions only, and only committed
        // records are read.
        c.set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    }
    c.set("enable.auto.offset.store", "false")
        // The range assignor gives a member the same partition numbers of every topic with
        // the same partition count: a touch-point partition and its outcomes partition stay
        // together (validation rejects another strategy).
        .set("partition.assignment.strategy", "range");
    tracing::debug!(properties = ?redacted(&config.client_properties(true)), "consumer pass-through properties");
    c
}

/// A quarter of `detect.idle_partition_after`, between 100 ms and 5 s.
pub fn statistics_interval_ms(config: &Config) -> i64 {
    (config.detect.idle_partition_after.millis().0 / 4).clamp(100, 5_000)
}

/// Producer properties: idempotent, `acks=all`; with exactly-once, transactional with
/// `transactional_id` (see [`transactional_id`]).
pub fn producer_config(config: &Config, transactional_id: Option<&str>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("client.id", &config.kafka.client_id)
        .set("linger.ms", "5")
        .set("statistics.interval.ms", "0")
        // Dead letters carry the original payload, which may be up to the input limit, plus
        // headers: allow that locally. A broker or topic limit below it is handled by
        // truncating the dead letter (see sink.rs).
        .set(
            "message.max.bytes",
            (config.limits.max_message_bytes + 64 * 1024)
                .max(1_000_000)
                .to_string(),
        );
    for (k, v) in config.client_properties(false) {
        c.set(k, v);
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    if let Some(id) = transactional_id {
        c.set("transactional.id", id).set(
            "transaction.timeout.ms",
            config.transaction_timeout_ms().to_string(),
        );
    }
    tracing::debug!(properties = ?redacted(&config.client_properties(false)), "producer pass-through properties");
    c
}

/// The instance's `transactional.id`: `kafka.transactional_id`, or `<group_id>-` and a
/// value unique to this process and call (see the key's documentation for the trade-off).
pub fn transactional_id(config: &Config) -> String {
    if !config.kafka.transactional_id.is_empty() {
        return config.kafka.transactional_id.clone();
    }
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{:x}{:08x}-{}",
        config.kafka.group_id,
        std::process::id(),
        nanos,
        STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Clients for rebuilding state. The reader uses a group id of its own (librdkafka's assign
/// needs one) and never commits, so nothing it fetches or closes can touch the real group's
/// offsets; the offsets client carries the real group id only to read the group's committed
/// offsets, and never assigns or fetches.
pub fn restore_config(config: &Config, read_group_offsets: bool) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("client.id", format!("{}-restore", config.kafka.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.queue.backoff.ms", "10");
    for (k, v) in config.client_properties(true) {
        c.set(k, v);
    }
    // After the pass-through, so it cannot turn these clients into group members.
    if read_group_offsets {
        c.set("group.id", &config.kafka.group_id);
    } else {
        c.set(
            "group.id",
            format!("{}.restore-reader", config.kafka.group_id),
        );
    }
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c
}

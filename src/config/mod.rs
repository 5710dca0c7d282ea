//! Typed configuration: one TOML file plus `AMENDS_<SECTION>__<KEY>` environment overrides.
//!
//! Every key has a default in this module (and is documented with it in
//! `config/amends.toml`), unknown keys are errors, and [`Config::validate`] checks the values
//! at start-up. Errors name the exact key. Environment variables are read only by
//! [`Config::load`], which `main` calls; the library never reads the environment elsewhere.

mod detect;
mod durations;
mod policy;
mod trend;

pub use detect::{DetectConfig, ExpectationConfig, ExpectationRule};
pub use durations::Dur;
pub use policy::{CompensationRule, PolicyConfig, ResponseRule};
pub use trend::{AlertsConfig, TrendConfig};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A configuration error that names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Brokers, consumer group, delivery guarantee and librdkafka pass-through properties.
    pub kafka: KafkaConfig,
    /// Input topics and their formats.
    pub input: InputConfig,
    /// Output topic names.
    pub output: OutputConfig,
    /// Limits on input records.
    pub limits: Limits,
    /// Worker and shutdown settings.
    pub pipeline: PipelineConfig,
    /// The HTTP endpoint for /metrics, /healthz and /readyz.
    pub http: HttpConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// What counts as a failure, incident windows, state bounds.
    pub detect: DetectConfig,
    /// Trend windows, their merge across partitions, and trend alerts.
    pub trend: TrendConfig,
    /// The recovery policy: severity, relationship tiers, response times, compensation.
    pub policy: PolicyConfig,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Offsets are stored only after every output derived from the input is acknowledged.
    #[default]
    AtLeastOnce,
    /// Outputs, changelog records and input offsets are committed in one Kafka transaction
    /// per `pipeline.checkpoint_interval` (needs a broker with transactions).
    ExactlyOnce,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// Consumer group id. Instances with the same id share the input partitions.
    pub group_id: String,
    /// client.id reported to the brokers.
    pub client_id: String,
    /// Delivery guarantee.
    pub guarantee: Guarantee,
    /// The producer's `transactional.id` with `guarantee = "exactly_once"`: unique per live
    /// instance, and best stable across its restarts (a pod name), so that a restarted
    /// instance aborts its predecessor's open transaction at once. Empty: generated per start
    /// (`<group_id>-<random>`), and an open transaction of a crashed instance then holds
    /// read_committed readers back until `transaction.timeout.ms` ends it.
    pub transactional_id: String,
    /// librdkafka properties for both consumer and producer (TLS, SASL, timeouts...).
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only (override `properties`).
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer only (override `properties`).
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "localhost:9092".into(),
            group_id: "amends".into(),
            client_id: "amends".into(),
            guarantee: Guarantee::AtLeastOnce,
            transactional_id: String::new(),
            properties: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// `transaction.timeout.ms` amends gives its transactional producer unless set.
pub const TRANSACTION_TIMEOUT_MS: i64 = 60_000;

/// Properties amends sets itself because its delivery guarantee depends on them.
pub const MANAGED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "transactional.id",
    "isolation.level",
];

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Protobuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputTopic {
    /// Topic names.
    pub topics: Vec<String>,
    /// Payload encoding: `json` or `protobuf`.
    pub format: Format,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    pub touchpoints: InputTopic,
    pub recovery_outcomes: InputTopic,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            touchpoints: InputTopic {
                topics: vec!["touchpoints".into()],
                format: Format::Json,
            },
            recovery_outcomes: InputTopic {
                topics: vec!["recovery-outcomes".into()],
                format: Format::Json,
            },
        }
    }
}

impl Default for InputTopic {
    fn default() -> Self {
        InputTopic {
            topics: Vec::new(),
            format: Format::Json,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub recovery_tasks: String,
    pub trend_snapshots: String,
    pub trend_alerts: String,
    pub dead_letter: String,
    pub changelog: String,
    pub trend_partials: String,
    /// Encoding of tasks, snapshots and alerts: `json` or `protobuf`.
    pub format: Format,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            recovery_tasks: "amends.recovery-tasks".into(),
            trend_snapshots: "amends.trend-snapshots".into(),
            trend_alerts: "amends.trend-alerts".into(),
            dead_letter: "amends.dead-letter".into(),
            changelog: "amends.changelog".into(),
            trend_partials: "amends.trend-partials".into(),
            format: Format::Json,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted payload; larger records are dead-lettered as `too_large`.
    pub max_message_bytes: usize,
    /// Longest accepted string field (ids, channel, type, reference...), in bytes.
    pub max_string_bytes: usize,
    /// Most entries accepted in `attributes`.
    pub max_attributes: usize,
    /// Longest accepted attribute key or value, in bytes.
    pub max_attribute_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
            max_string_bytes: 256,
            max_attributes: 32,
            max_attribute_bytes: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Records queued per partition worker before the poll loop waits (backpressure).
    pub partition_queue: usize,
    /// Input records per partition whose outputs may be awaiting broker acknowledgement.
    pub max_in_flight: usize,
    /// Events per partition held in the reorder buffer until the watermark passes them;
    /// beyond it the earliest is applied at once (counted in metrics).
    pub reorder_buffer_max: usize,
    /// How long a graceful stop (SIGTERM/SIGINT) may take to drain and commit.
    pub shutdown_timeout: Dur,
    /// How long a revoked partition may take to drain before the rebalance proceeds.
    pub revoke_timeout: Dur,
    /// Attempts to deliver one output before the instance stops without committing.
    pub delivery_attempts: u32,
    /// Where a partition's state comes from when it is assigned (see [`Restore`]).
    pub restore: Restore,
    /// How often a partition's changed state is written to `output.changelog` (with
    /// `restore = "changelog"`). Input offsets are committed only up to the last checkpoint
    /// the broker acknowledged, so this also bounds how far commits lag.
    pub checkpoint_interval: Dur,
    /// Most records replayed per partition when rebuilding state from input (the newest ones
    /// before the committed offset).
    pub restore_max_records: usize,
}

/// How a partition's per-customer state (and its open trend windows) is rebuilt when the
/// partition is assigned: after a restart, a crash or a rebalance.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Restore {
    /// Read from `output.changelog`, which every checkpoint updates; input after the last
    /// checkpoint is replayed on top. A partition whose changelog holds no checkpoint yet is
    /// rebuilt from input, as with `Input`.
    #[default]
    Changelog,
    /// Replay the partition's own input up to the committed offset, outputs discarded. No
    /// changelog is written.
    Input,
    /// Start empty: an incident that spans the hand-over opens a second task.
    None,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            partition_queue: 1024,
            max_in_flight: 4096,
            reorder_buffer_max: 200_000,
            shutdown_timeout: Dur::secs(30),
            revoke_timeout: Dur::secs(20),
            delivery_attempts: 5,
            restore: Restore::Changelog,
            checkpoint_interval: Dur::secs(1),
            restore_max_records: 5_000_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address for /metrics, /healthz and /readyz. Empty disables the endpoint.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:9464".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// A tracing EnvFilter directive; RUST_LOG overrides it.
    pub log_level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

impl Config {
    /// Reads a TOML file, applies `AMENDS_*__*` overrides from `env`, and validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml_str(&text, &path.display().to_string(), env)
    }

    /// The embedded defaults, as used by `amends demo` and `amends replay` without `--config`.
    pub fn defaults() -> Config {
        let c = Config::default();
        debug_assert!(c.validate().is_ok());
        c
    }

    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_string(),
                    message: e.to_string(),
                })?;
        let overrides = env_overrides(env)?;
        // An override's text is read as a TOML value (numbers, booleans, arrays) unless the key
        // it replaces is a string. A key the file does not set has no type to go by, so when
        // the typed read fails exactly at an overridden key, that override is retried as a
        // plain string (`AMENDS_KAFKA__PROPERTIES__SESSION.TIMEOUT.MS=45000`).
        let mut as_string: Vec<bool> = vec![false; overrides.len()];
        loop {
            let mut t = table.clone();
            for (i, o) in overrides.iter().enumerate() {
                apply_override(&mut t, o, as_string[i])?;
            }
            match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(t)) {
                Ok(config) => {
                    config.validate()?;
                    return Ok(config);
                }
                Err(e) => {
                    let key = e.path().to_string();
                    if let Some(i) = overrides.iter().position(|o| o.path.join(".") == key) {
                        if !as_string[i] {
                            as_string[i] = true;
                            continue;
                        }
                    }
                    return Err(invalid(
                        if key == "." {
                            "(top level)".to_string()
                        } else {
                            key
                        },
                        e.into_inner().message().to_string(),
                    ));
                }
            }
        }
    }

    /// Checks values that types alone cannot. Names the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one broker"));
        }
        if k.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        for (section, map) in [
            ("properties", &k.properties),
            ("consumer", &k.consumer),
            ("producer", &k.producer),
        ] {
            for (key, value) in map {
                if MANAGED_PROPERTIES.contains(&key.as_str()) {
                    return Err(invalid(
                        format!("kafka.{section}.\"{key}\""),
                        "is managed by amends (it decides the delivery guarantee); use kafka.brokers, kafka.group_id or kafka.guarantee",
                    ));
                }
                if key == "partition.assignment.strategy" && section != "producer" {
                    return Err(invalid(
                        format!("kafka.{section}.\"{key}\""),
                        "is managed by amends: it uses the range assignor, which gives one instance the same partitions of the touch-point and recovery-outcomes topics, so an outcome reaches the customer's state",
                    ));
                }
                if key == "statistics.interval.ms" && section != "producer" {
                    // The consumer's statistics say whether a quiet partition is caught up,
                    // which it must be to count as idle (see pipeline::watermark).
                    let idle_ms = self.detect.idle_partition_after.millis().0;
                    let ok = value
                        .trim()
                        .parse::<i64>()
                        .is_ok_and(|v| v > 0 && v <= idle_ms / 2);
                    if !ok {
                        return Err(invalid(
                            format!("kafka.{section}.\"{key}\""),
                            format!("must be a number of milliseconds from 1 to half of detect.idle_partition_after ({idle_ms} ms): amends learns from the consumer statistics whether a quiet partition is caught up; got {value:?}"),
                        ));
                    }
                }
            }
        }
        for (key, input) in [
            ("input.touchpoints.topics", &self.input.touchpoints),
            (
                "input.recovery_outcomes.topics",
                &self.input.recovery_outcomes,
            ),
        ] {
            for t in &input.topics {
                check_topic(key, t)?;
            }
        }
        if self.input.touchpoints.topics.is_empty() {
            return Err(invalid(
                "input.touchpoints.topics",
                "must list at least one topic",
            ));
        }
        let o = &self.output;
        for (key, t) in [
            ("output.recovery_tasks", &o.recovery_tasks),
            ("output.trend_snapshots", &o.trend_snapshots),
            ("output.trend_alerts", &o.trend_alerts),
            ("output.dead_letter", &o.dead_letter),
            ("output.changelog", &o.changelog),
            ("output.trend_partials", &o.trend_partials),
        ] {
            check_topic(key, t)?;
            let inputs = self
                .input
                .touchpoints
                .topics
                .iter()
                .chain(&self.input.recovery_outcomes.topics);
            if inputs.clone().any(|i| i == t) {
                return Err(invalid(
                    key,
                    format!("topic `{t}` is also an input topic; outputs would loop back"),
                ));
            }
        }
        let l = &self.limits;
        if l.max_message_bytes < 256 {
            return Err(invalid("limits.max_message_bytes", "must be at least 256"));
        }
        if l.max_string_bytes < 8 {
            return Err(invalid("limits.max_string_bytes", "must be at least 8"));
        }
        if l.max_attribute_bytes < 1 {
            return Err(invalid("limits.max_attribute_bytes", "must be at least 1"));
        }
        let p = &self.pipeline;
        if p.partition_queue == 0 {
            return Err(invalid("pipeline.partition_queue", "must be at least 1"));
        }
        if p.reorder_buffer_max == 0 {
            return Err(invalid("pipeline.reorder_buffer_max", "must be at least 1"));
        }
        if p.max_in_flight == 0 {
            return Err(invalid("pipeline.max_in_flight", "must be at least 1"));
        }
        if p.delivery_attempts == 0 {
            return Err(invalid("pipeline.delivery_attempts", "must be at least 1"));
        }
        if p.shutdown_timeout.millis().0 < 1000 {
            return Err(invalid("pipeline.shutdown_timeout", "must be at least 1s"));
        }
        if p.revoke_timeout.millis().0 < 1000 {
            return Err(invalid("pipeline.revoke_timeout", "must be at least 1s"));
        }
        if p.checkpoint_interval.millis().0 < 100 {
            return Err(invalid(
                "pipeline.checkpoint_interval",
                "must be at least 100ms",
            ));
        }
        if self.kafka.guarantee == Guarantee::ExactlyOnce {
            self.validate_exactly_once()?;
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "http.listen",
                format!(
                    "`{}` is not an address such as 0.0.0.0:9464",
                    self.http.listen
                ),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_level).is_err() {
            return Err(invalid(
                "telemetry.log_level",
                format!(
                    "`{}` is not a valid filter such as `info` or `amends=debug`",
                    self.telemetry.log_level
                ),
            ));
        }
        self.detect.validate()?;
        self.trend.validate()?;
        self.policy.validate(&self.detect)?;
        Ok(())
    }

    /// The librdkafka constraints of a transactional producer, checked where the user can
    /// break them: the state must be in the changelog (a rewind restores it from there), a
    /// transaction must outlive the commit interval, and `message.timeout.ms` and
    /// `socket.timeout.ms` must not exceed `transaction.timeout.ms`.
    fn validate_exactly_once(&self) -> Result<(), ConfigError> {
        if self.pipeline.restore != Restore::Changelog {
            return Err(invalid(
                "pipeline.restore",
                "must be \"changelog\" with kafka.guarantee = \"exactly_once\": the state is committed with the outputs and offsets, and an aborted transaction is rewound by restoring it",
            ));
        }
        if self.kafka.transactional_id.contains(char::is_whitespace) {
            return Err(invalid(
                "kafka.transactional_id",
                "must not contain whitespace",
            ));
        }
        let producer = self.client_properties(false);
        let section = |key: &str| {
            if self.kafka.producer.contains_key(key) {
                "producer"
            } else {
                "properties"
            }
        };
        let number = |key: &str| -> Result<Option<i64>, ConfigError> {
            let section = section(key);
            producer
                .get(key)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| {
                        invalid(
                            format!("kafka.{section}.\"{key}\""),
                            format!("must be a number of milliseconds; got {v:?}"),
                        )
                    })
                })
                .transpose()
        };
        number("transaction.timeout.ms")?;
        let txn = self.transaction_timeout_ms();
        let interval = self.pipeline.checkpoint_interval.millis().0;
        if txn < 2 * interval || txn < 1000 {
            return Err(invalid(
                format!("kafka.{}.\"transaction.timeout.ms\"", section("transaction.timeout.ms")),
                format!("must be at least 1000 and twice pipeline.checkpoint_interval ({interval} ms), which is how long a transaction stays open; got {txn}"),
            ));
        }
        for (key, margin) in [("message.timeout.ms", 0), ("socket.timeout.ms", 100)] {
            if let Some(v) = number(key)? {
                if v > txn - margin {
                    return Err(invalid(
                        format!("kafka.{}.\"{key}\"", section(key)),
                        format!("must be at most transaction.timeout.ms ({txn} ms){} with exactly_once (a librdkafka rule); got {v}", if margin > 0 { " minus 100" } else { "" }),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The transactional producer's `transaction.timeout.ms`: the user's (checked to be a
    /// number by validation with exactly_once), else [`TRANSACTION_TIMEOUT_MS`].
    pub fn transaction_timeout_ms(&self) -> i64 {
        self.client_properties(false)
            .get("transaction.timeout.ms")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(TRANSACTION_TIMEOUT_MS)
    }

    /// librdkafka properties for one client, merged from `properties` then the
    /// client-specific map. Values never appear in logs (see [`redacted`]).
    pub fn client_properties(&self, consumer: bool) -> BTreeMap<String, String> {
        let mut m = self.kafka.properties.clone();
        let specific = if consumer {
            &self.kafka.consumer
        } else {
            &self.kafka.producer
        };
        m.extend(specific.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }
}

/// Returns a printable copy of librdkafka properties with secrets masked. rdkafka's own debug
/// output only redacts a few keys, so anything that looks like a credential is masked here.
pub fn redacted(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    props
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let secret = ["password", "secret", "key", "token", "jaas", "credential"]
                .iter()
                .any(|s| lower.contains(s))
                && !lower.ends_with(".location");
            (
                k.clone(),
                if secret {
                    "[redacted]".to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

fn check_topic(key: &str, t: &str) -> Result<(), ConfigError> {
    if t.is_empty() || t.len() > 249 || t == "." || t == ".." {
        return Err(invalid(key, format!("`{t}` is not a valid topic name")));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(
            key,
            format!("topic `{t}` contains `{c}`; Kafka allows only [a-zA-Z0-9._-]"),
        ));
    }
    Ok(())
}

/// One `AMENDS_SECTION__KEY[__SUBKEY]=value` override. Only variables that contain `__` are
/// overrides, so `AMENDS_TEST_BROKERS` and the like are left alone.
struct EnvOverride {
    var: String,
    path: Vec<String>,
    value: String,
}

fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("AMENDS_") && k.contains("__"))
        .collect();
    vars.sort();
    vars.into_iter()
        .map(|(var, value)| {
            let path: Vec<String> = var["AMENDS_".len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Env {
                    var,
                    reason: "empty path segment".into(),
                });
            }
            Ok(EnvOverride { var, path, value })
        })
        .collect()
}

fn apply_override(
    table: &mut toml::Table,
    o: &EnvOverride,
    force_string: bool,
) -> Result<(), ConfigError> {
    let mut cur = table;
    for seg in &o.path[..o.path.len() - 1] {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Env {
                    var: o.var.clone(),
                    reason: format!("`{seg}` is not a table"),
                })
            }
        };
    }
    let last = o.path.last().expect("split yields at least one segment");
    let existing_is_string = matches!(cur.get(last), Some(toml::Value::String(_)));
    let parsed = if force_string || existing_is_string {
        toml::Value::String(o.value.clone())
    } else {
        parse_env_value(&o.value)
    };
    cur.insert(last.clone(), parsed);
    Ok(())
}

fn parse_env_value(value: &str) -> toml::Value {
    // Parse as the right-hand side of a TOML assignment; fall back to a plain string, which
    // is what most overrides (broker lists, names) are.
    let doc = format!("v = {value}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests;

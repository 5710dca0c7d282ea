//! `amends check-config FILE`: validates a config file (with environment overrides) and
//! prints what it resolved to, with secrets masked.

use crate::config::{redacted, Config, ConfigError};
use std::path::Path;

pub fn check(path: &Path, env: Vec<(String, String)>) -> Result<String, ConfigError> {
    let c = Config::load(path, env)?;
    Ok(summary(&c, &path.display().to_string()))
}

pub fn summary(c: &Config, origin: &str) -> String {
    let props = redacted(&c.client_properties(true));
    format!(
        "config OK: {origin}\n  brokers: {}\n  group: {}\n  guarantee: {:?}\n  touchpoints: {:?} ({:?})\n  recovery outcomes: {:?} ({:?})\n  outputs: {}, {}\n  pass-through (consumer): {:?}\n",
        c.kafka.brokers,
        c.kafka.group_id,
        c.kafka.guarantee,
        c.input.touchpoints.topics,
        c.input.touchpoints.format,
        c.input.recovery_outcomes.topics,
        c.input.recovery_outcomes.format,
        c.output.recovery_tasks,
        c.output.dead_letter,
        props,
    )
}

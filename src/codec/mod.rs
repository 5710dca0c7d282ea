//! Wire formats at the boundary: JSON and Protobuf in, validated domain types out, and the
//! encoding of outputs. Both input formats go through one validation path
//! ([`validate`]), so a rule about a field is written once and errors read the same.
//!
//! Nothing in here knows about Kafka; the pipeline hands in bytes and gets a value or a
//! [`DecodeError`] that says which field is wrong and why.

pub mod json;
mod json_fast;
pub mod output;
pub mod protobuf;
mod validate;

/// Cuts a string at a char boundary at or below `max` bytes.
pub fn validate_truncate(s: &str, max: usize) -> &str {
    validate::truncate(s, max)
}

use crate::config::{Config, Format, Limits};
use crate::domain::{Channel, RecoveryOutcome, TouchpointEvent};
use std::sync::Arc;

/// Why a record was dead-lettered. The string form is the `amends.reason` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not decodable at all: not UTF-8, not JSON or Protobuf, a field of the wrong type.
    Decode,
    /// Decoded, but a value breaks the contract: missing field, unknown enum, bad timestamp,
    /// a limit exceeded.
    Validation,
    /// Larger than `limits.max_message_bytes`.
    TooLarge,
    /// A valid event later than `detect.allowed_lateness` behind the watermark. It still
    /// updated the customer's history; the dead letter makes it visible (design.md, Time).
    Late,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Decode => "decode",
            Reason::Validation => "validation",
            Reason::TooLarge => "too_large",
            Reason::Late => "late",
        }
    }
    pub const ALL: [Reason; 4] = [
        Reason::Decode,
        Reason::Validation,
        Reason::TooLarge,
        Reason::Late,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct DecodeError {
    pub reason: Reason,
    /// The offending field as a path (`customer.since`, `attributes.carrier`), when known.
    pub field: Option<String>,
    pub detail: String,
}

impl DecodeError {
    pub fn decode(field: Option<String>, detail: impl Into<String>) -> Self {
        DecodeError {
            reason: Reason::Decode,
            field,
            detail: detail.into(),
        }
    }
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        DecodeError {
            reason: Reason::Validation,
            field: Some(field.to_string()),
            detail: detail.into(),
        }
    }
    fn render(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}: {}", self.detail),
            None => self.detail.clone(),
        }
    }
}

/// Decodes and validates input payloads according to the configured formats and limits.
#[derive(Clone, Debug)]
pub struct Decoder {
    limits: Limits,
    channels: Vec<Channel>,
    touchpoint_format: Format,
    outcome_format: Format,
}

impl Decoder {
    pub fn new(config: &Config) -> Decoder {
        Decoder {
            limits: config.limits.clone(),
            channels: config
                .detect
                .channels
                .iter()
                .map(|c| Channel(Arc::from(c.as_str())))
                .collect(),
            touchpoint_format: config.input.touchpoints.format,
            outcome_format: config.input.recovery_outcomes.format,
        }
    }

    /// The interned channel of the given name, if configured.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.as_str() == name)
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    fn check_size(&self, bytes: &[u8]) -> Result<(), DecodeError> {
        if bytes.len() > self.limits.max_message_bytes {
            return Err(DecodeError {
                reason: Reason::TooLarge,
                field: None,
                detail: format!(
                    "payload is {} bytes, limit is {} (limits.max_message_bytes)",
                    bytes.len(),
                    self.limits.max_message_bytes
                ),
            });
        }
        Ok(())
    }

    pub fn touchpoint(&self, bytes: &[u8]) -> Result<TouchpointEvent, DecodeError> {
        self.check_size(bytes)?;
        match self.touchpoint_format {
            Format::Json => json::decode_touchpoint(bytes, &self.limits, &self.channels),
            Format::Protobuf => protobuf::decode_touchpoint(bytes, &self.limits, &self.channels),
        }
    }

    pub fn outcome(&self, bytes: &[u8]) -> Result<RecoveryOutcome, DecodeError> {
        self.check_size(bytes)?;
        match self.outcome_format {
            Format::Json => json::decode_outcome(bytes, &self.limits),
            Format::Protobuf => protobuf::decode_outcome(bytes, &self.limits),
        }
    }
}

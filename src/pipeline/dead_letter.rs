//! Dead letters: the original bytes untouched, plus headers saying why and from where.
//!
//! Headers (all UTF-8 strings): `amends.reason` (`decode` | `validation` | `too_large`),
//! `amends.field` (when known), `amends.detail`, `amends.source.topic`,
//! `amends.source.partition`, `amends.source.offset`, `amends.source.timestamp` (RFC 3339,
//! when the record had one) and `amends.dead_lettered_at`.

use super::{InboundRecord, OutboundKind, OutboundRecord};
use crate::codec::DecodeError;
use crate::domain::EventTime;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest detail message kept in a header; the detail can quote the payload.
const MAX_DETAIL: usize = 512;

pub fn record(
    topic: &Arc<str>,
    rec: &InboundRecord,
    err: &DecodeError,
    now: EventTime,
) -> OutboundRecord {
    let detail = crate::codec::validate_truncate(&err.to_string(), MAX_DETAIL).to_string();
    let mut headers = vec![
        (
            "amends.reason".to_string(),
            err.reason.as_str().as_bytes().to_vec(),
        ),
        ("amends.detail".to_string(), detail.into_bytes()),
        (
            "amends.source.topic".to_string(),
            rec.topic.as_bytes().to_vec(),
        ),
        (
            "amends.source.partition".to_string(),
            rec.partition.to_string().into_bytes(),
        ),
        (
            "amends.source.offset".to_string(),
            rec.offset.to_string().into_bytes(),
        ),
        (
            "amends.dead_lettered_at".to_string(),
            now.to_string().into_bytes(),
        ),
    ];
    if let Some(f) = &err.field {
        headers.push(("amends.field".to_string(), f.as_bytes().to_vec()));
    }
    if let Some(ts) = rec.timestamp_ms {
        headers.push((
            "amends.source.timestamp".to_string(),
            EventTime(ts).to_string().into_bytes(),
        ));
    }
    OutboundRecord {
        kind: OutboundKind::DeadLetter,
        topic: topic.clone(),
        key: rec.key.clone(),
        payload: rec.payload.clone().unwrap_or_default(),
        headers,
    }
}

/// A dead letter as one JSON line (`amends replay`'s `dead-letter.jsonl`, the demo's output
/// folder). `payload` is the original text when it is UTF-8; `payload_base64` always holds
/// the exact bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterLine {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub detail: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub dead_lettered_at: String,
    pub payload: Option<String>,
    pub payload_base64: String,
}

impl DeadLetterLine {
    /// Rebuilds the line from a dead-letter record's headers and payload.
    pub fn from_record(headers: &[(String, Vec<u8>)], payload: &[u8]) -> DeadLetterLine {
        let h = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        DeadLetterLine {
            reason: h("amends.reason").unwrap_or_default(),
            field: h("amends.field"),
            detail: h("amends.detail").unwrap_or_default(),
            topic: h("amends.source.topic").unwrap_or_default(),
            partition: h("amends.source.partition")
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1),
            offset: h("amends.source.offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1),
            timestamp: h("amends.source.timestamp"),
            dead_lettered_at: h("amends.dead_lettered_at").unwrap_or_default(),
            payload: std::str::from_utf8(payload).ok().map(String::from),
            payload_base64: base64::engine::general_purpose::STANDARD.encode(payload),
        }
    }
}

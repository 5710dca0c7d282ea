//! Protobuf input (`amends.v1.TouchpointEvent`, `amends.v1.RecoveryOutcome`). Proto3 has no
//! "absent" for plain strings, so an empty required string is reported as missing.

use super::validate::{self, RawEvent, RawOutcome, RawProfile};
use super::DecodeError;
use crate::config::Limits;
use crate::domain::{Channel, RecoveryOutcome, TouchpointEvent};
use crate::pb;
use prost::Message;

fn opt(s: &str) -> Option<&str> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn outcome_name(v: i32) -> Option<Result<&'static str, i32>> {
    match pb::Outcome::try_from(v) {
        Ok(pb::Outcome::Unspecified) => None,
        Ok(pb::Outcome::Success) => Some(Ok("success")),
        Ok(pb::Outcome::Failure) => Some(Ok("failure")),
        Ok(pb::Outcome::Neutral) => Some(Ok("neutral")),
        Err(_) => Some(Err(v)),
    }
}

fn cause_name(v: i32) -> Option<Result<&'static str, i32>> {
    match pb::Cause::try_from(v) {
        Ok(pb::Cause::Unspecified) => None,
        Ok(pb::Cause::Internal) => Some(Ok("internal")),
        Ok(pb::Cause::External) => Some(Ok("external")),
        Ok(pb::Cause::Unknown) => Some(Ok("unknown")),
        Err(_) => Some(Err(v)),
    }
}

fn status_name(v: i32) -> Option<Result<&'static str, i32>> {
    match pb::RecoveryStatus::try_from(v) {
        Ok(pb::RecoveryStatus::Unspecified) => None,
        Ok(pb::RecoveryStatus::Resolved) => Some(Ok("resolved")),
        Ok(pb::RecoveryStatus::Unresolved) => Some(Ok("unresolved")),
        Ok(pb::RecoveryStatus::NoResponse) => Some(Ok("no_response")),
        Err(_) => Some(Err(v)),
    }
}

pub fn decode_touchpoint(
    bytes: &[u8],
    limits: &Limits,
    channels: &[Channel],
) -> Result<TouchpointEvent, DecodeError> {
    let m = pb::TouchpointEvent::decode(bytes).map_err(|e| {
        DecodeError::decode(None, format!("not a valid amends.v1.TouchpointEvent: {e}"))
    })?;
    let mut attributes: Vec<(&str, &str)> = m
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // HashMap order is random; sort so that outputs stay deterministic.
    attributes.sort_unstable();
    let raw = RawEvent {
        event_id: opt(&m.event_id),
        occurred_at: opt(&m.occurred_at),
        customer_id: opt(&m.customer_id),
        channel: opt(&m.channel),
        touchpoint: opt(&m.touchpoint),
        event_type: opt(&m.r#type),
        outcome: outcome_name(m.outcome),
        reference: m.reference.as_deref(),
        cause: cause_name(m.cause),
        amount: m.amount,
        currency: m.currency.as_deref(),
        expected_by: m.expected_by.as_deref(),
        customer: m.customer.as_ref().map(|p| RawProfile {
            since: p.since.as_deref(),
            segment: p.segment.as_deref(),
            annual_value: p.annual_value,
        }),
        score: m.score,
        attributes,
    };
    validate::touchpoint(raw, limits, channels)
}

pub fn decode_outcome(bytes: &[u8], limits: &Limits) -> Result<RecoveryOutcome, DecodeError> {
    let m = pb::RecoveryOutcome::decode(bytes).map_err(|e| {
        DecodeError::decode(None, format!("not a valid amends.v1.RecoveryOutcome: {e}"))
    })?;
    let comp = m.compensation.as_ref();
    let raw = RawOutcome {
        task_id: opt(&m.task_id),
        customer_id: opt(&m.customer_id),
        occurred_at: opt(&m.occurred_at),
        status: status_name(m.status),
        compensation_type: comp.and_then(|c| opt(&c.r#type)),
        compensation_amount: comp.and_then(|c| c.amount),
        currency: comp.and_then(|c| c.currency.as_deref()),
        score: m.score,
    };
    validate::outcome(raw, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Reason;
    use crate::config::Config;

    fn sample() -> pb::TouchpointEvent {
        pb::TouchpointEvent {
            event_id: "e-1".into(),
            occurred_at: "2026-11-22T10:15:03.120Z".into(),
            customer_id: "c-1".into(),
            channel: "billing".into(),
            touchpoint: "payment".into(),
            r#type: "payment_declined".into(),
            outcome: pb::Outcome::Failure as i32,
            cause: pb::Cause::Internal as i32,
            amount: Some(49.0),
            attributes: [
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_protobuf_events_through_the_same_validation() {
        let c = Config::defaults();
        let d = crate::codec::Decoder::new(&c);
        let e = decode_touchpoint(&sample().encode_to_vec(), &c.limits, d.channels()).unwrap();
        assert_eq!(&*e.event_type, "payment_declined");
        assert_eq!(
            e.attributes[0].0.as_ref(),
            "a",
            "attributes are sorted for determinism"
        );
        let mut m = sample();
        m.outcome = 9;
        let err = decode_touchpoint(&m.encode_to_vec(), &c.limits, d.channels()).unwrap_err();
        assert_eq!(
            (err.reason, err.field.as_deref()),
            (Reason::Validation, Some("outcome"))
        );
        let mut m = sample();
        m.customer_id.clear();
        let err = decode_touchpoint(&m.encode_to_vec(), &c.limits, d.channels()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("customer_id"));
        let err = decode_touchpoint(b"\xff\xff\xff\xff", &c.limits, d.channels()).unwrap_err();
        assert_eq!(err.reason, Reason::Decode);
    }
}

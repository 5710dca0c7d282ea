//! The one validation path both wire formats end in.

use super::DecodeError;
use crate::config::Limits;
use crate::domain::{
    Cause, Channel, CustomerProfile, EventTime, Outcome, RecoveryOutcome, RecoveryStatus,
    TouchpointEvent,
};

/// A decoded but unvalidated touch-point event, borrowing from the wire value.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RawEvent<'a> {
    pub event_id: Option<&'a str>,
    pub occurred_at: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub touchpoint: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// `Err` carries an enum value the wire format could not name (Protobuf numbers).
    pub outcome: Option<Result<&'a str, i32>>,
    pub reference: Option<&'a str>,
    pub cause: Option<Result<&'a str, i32>>,
    pub amount: Option<f64>,
    pub currency: Option<&'a str>,
    pub expected_by: Option<&'a str>,
    pub customer: Option<RawProfile<'a>>,
    pub score: Option<f64>,
    pub attributes: Vec<(&'a str, &'a str)>,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct RawProfile<'a> {
    pub since: Option<&'a str>,
    pub segment: Option<&'a str>,
    pub annual_value: Option<f64>,
}

#[derive(Default)]
pub(crate) struct RawOutcome<'a> {
    pub task_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub occurred_at: Option<&'a str>,
    pub status: Option<Result<&'a str, i32>>,
    pub compensation_type: Option<&'a str>,
    pub compensation_amount: Option<f64>,
    pub currency: Option<&'a str>,
    pub score: Option<f64>,
}

fn required<'a>(field: &str, v: Option<&'a str>, limits: &Limits) -> Result<&'a str, DecodeError> {
    match v {
        None => Err(DecodeError::invalid(field, "is required")),
        Some(s) if is_blank(s) => Err(DecodeError::invalid(field, "must not be empty")),
        Some(s) => bounded(field, s, limits.max_string_bytes),
    }
}

/// `s.trim().is_empty()`, without trimming the usual value that starts with a visible ASCII
/// character (none of which is whitespace).
fn is_blank(s: &str) -> bool {
    match s.as_bytes().first() {
        Some(b) if b.is_ascii_graphic() => false,
        _ => s.trim().is_empty(),
    }
}

fn bounded<'a>(field: &str, s: &'a str, max: usize) -> Result<&'a str, DecodeError> {
    if s.len() > max {
        return Err(DecodeError::invalid(
            field,
            format!("is {} bytes, limit is {max}", s.len()),
        ));
    }
    Ok(s)
}

fn optional<'a>(
    field: &str,
    v: Option<&'a str>,
    limits: &Limits,
) -> Result<Option<&'a str>, DecodeError> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => bounded(field, s, limits.max_string_bytes).map(Some),
    }
}

fn time(field: &str, s: &str) -> Result<EventTime, DecodeError> {
    EventTime::parse(s)
        .map_err(|e| DecodeError::invalid(field, format!("`{}` is {e}", truncate(s, 64))))
}

fn money(field: &str, v: Option<f64>) -> Result<Option<f64>, DecodeError> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => Err(DecodeError::invalid(
            field,
            "must be a finite, non-negative number",
        )),
        other => Ok(other),
    }
}

fn currency(field: &str, v: Option<&str>) -> Result<Option<Box<str>>, DecodeError> {
    match v {
        None | Some("") => Ok(None),
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(Some(c.into())),
        Some(c) => Err(DecodeError::invalid(
            field,
            format!("`{}` is not an ISO 4217 code such as EUR", truncate(c, 16)),
        )),
    }
}

fn enum_value<T>(
    field: &str,
    v: Option<Result<&str, i32>>,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, DecodeError> {
    match v {
        None => Ok(None),
        Some(Ok(s)) => parse(s).map(Some).ok_or_else(|| {
            DecodeError::invalid(
                field,
                format!("unknown value `{}`, expected {expected}", truncate(s, 32)),
            )
        }),
        Some(Err(n)) => Err(DecodeError::invalid(
            field,
            format!("unknown enum number {n}, expected {expected}"),
        )),
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn touchpoint(
    raw: RawEvent<'_>,
    limits: &Limits,
    channels: &[Channel],
) -> Result<TouchpointEvent, DecodeError> {
    let event_id = required("event_id", raw.event_id, limits)?;
    let occurred_at = time(
        "occurred_at",
        required("occurred_at", raw.occurred_at, limits)?,
    )?;
    let customer_id = required("customer_id", raw.customer_id, limits)?;
    let channel_name = required("channel", raw.channel, limits)?;
    let channel = channels
        .iter()
        .find(|c| c.as_str() == channel_name)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
            DecodeError::invalid(
                "channel",
                format!(
                    "unknown value `{}`, expected one of {} (detect.channels)",
                    truncate(channel_name, 32),
                    names.join(", ")
                ),
            )
        })?;
    let touchpoint = required("touchpoint", raw.touchpoint, limits)?;
    let event_type = required("type", raw.event_type, limits)?;
    let outcome = enum_value(
        "outcome",
        raw.outcome,
        Outcome::parse,
        "success, failure or neutral",
    )?
    .ok_or_else(|| DecodeError::invalid("outcome", "is required"))?;
    let reference = optional("reference", raw.reference, limits)?;
    let cause = enum_value(
        "cause",
        raw.cause,
        Cause::parse,
        "internal, external or unknown",
    )?;
    let amount = money("amount", raw.amount)?;
    let currency = currency("currency", raw.currency)?;
    let expected_by = match optional("expected_by", raw.expected_by, limits)? {
        Some(s) => Some(time("expected_by", s)?),
        None => None,
    };
    let customer = match raw.customer {
        None => None,
        Some(p) => {
            let since = match optional("customer.since", p.since, limits)? {
                Some(s) => Some(time("customer.since", s)?),
                None => None,
            };
            let segment = optional("customer.segment", p.segment, limits)?.map(Box::from);
            let annual_value = money("customer.annual_value", p.annual_value)?;
            Some(CustomerProfile {
                since,
                segment,
                annual_value,
            })
        }
    };
    if let Some(s) = raw.score {
        if !s.is_finite() {
            return Err(DecodeError::invalid("score", "must be a finite number"));
        }
    }
    if raw.attributes.len() > limits.max_attributes {
        return Err(DecodeError::invalid(
            "attributes",
            format!(
                "has {} entries, limit is {} (limits.max_attributes)",
                raw.attributes.len(),
                limits.max_attributes
            ),
        ));
    }
    let mut attributes = Vec::with_capacity(raw.attributes.len());
    for (k, v) in raw.attributes {
        // The field name is only made for an error: this loop runs for every attribute.
        if k.len() > limits.max_attribute_bytes || v.len() > limits.max_attribute_bytes {
            let field = format!("attributes.{}", truncate(k, 32));
            bounded(&field, k, limits.max_attribute_bytes)?;
            bounded(&field, v, limits.max_attribute_bytes)?;
        }
        attributes.push((Box::from(k), Box::from(v)));
    }
    Ok(TouchpointEvent {
        event_id: event_id.into(),
        occurred_at,
        customer_id: customer_id.into(),
        channel,
        touchpoint: touchpoint.into(),
        event_type: event_type.into(),
        outcome,
        reference: reference.map(Box::from),
        cause,
        amount,
        currency,
        expected_by,
        customer,
        score: raw.score,
        attributes,
    })
}

pub(crate) fn outcome(
    raw: RawOutcome<'_>,
    limits: &Limits,
) -> Result<RecoveryOutcome, DecodeError> {
    let task_id = required("task_id", raw.task_id, limits)?;
    let customer_id = required("customer_id", raw.customer_id, limits)?;
    let occurred_at = time(
        "occurred_at",
        required("occurred_at", raw.occurred_at, limits)?,
    )?;
    let status = enum_value(
        "status",
        raw.status,
        RecoveryStatus::parse,
        "resolved, unresolved or no_response",
    )?
    .ok_or_else(|| DecodeError::invalid("status", "is required"))?;
    let compensation_type =
        optional("compensation.type", raw.compensation_type, limits)?.map(Box::from);
    let compensation_amount = money("compensation.amount", raw.compensation_amount)?;
    let currency = currency("compensation.currency", raw.currency)?;
    if let Some(s) = raw.score {
        if !s.is_finite() {
            return Err(DecodeError::invalid("score", "must be a finite number"));
        }
    }
    Ok(RecoveryOutcome {
        task_id: task_id.into(),
        customer_id: customer_id.into(),
        occurred_at,
        status,
        compensation_type,
        compensation_amount,
        currency,
        score: raw.score,
    })
}

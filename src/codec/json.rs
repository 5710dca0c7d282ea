//! JSON input. Fields borrow from the payload where they can (no escapes), and every field is
//! optional at this layer so that a missing field is reported by validation with its name.
//! Unknown fields are ignored so producers can evolve.

use super::validate::{self, RawEvent, RawOutcome, RawProfile};
use super::{json_fast, DecodeError};
use crate::config::Limits;
use crate::domain::{Channel, RecoveryOutcome, TouchpointEvent};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// The JSON shape of a touch-point event. `Serialize` is used by the simulator, so the
/// generator and the decoder share one definition of the contract.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct WireEvent<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub touchpoint: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        default,
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub expected_by: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<WireProfile<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(
        borrow,
        default,
        deserialize_with = "attributes",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser_attributes"
    )]
    pub attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct WireProfile<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual_value: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct WireOutcome<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<WireCompensation<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct WireCompensation<'a> {
    #[serde(
        borrow,
        default,
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Cow<'a, str>>,
}

type Attrs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn attributes<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Attrs<'a>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Attrs<'de>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of string values, or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(V)
        }
        fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = m.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_option(V)
}

fn ser_attributes<S: serde::Serializer>(a: &Attrs<'_>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(a.iter().map(|(k, v)| (k, v)))
}

fn utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::decode(
            None,
            format!(
                "payload is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Parses `text` into `T`; on failure parses it again while tracking the path, so the error
/// names the field (`customer.annual_value`). The second pass only runs for bad records.
fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    // serde would also accept a JSON array positionally for a struct; the contract is an object.
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::decode(None, "payload is not a JSON object"));
    }
    match serde_json::from_str::<T>(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => {
                    let path = e.path().to_string();
                    let field = if path == "." || path == "?" || path.is_empty() {
                        None
                    } else {
                        Some(path)
                    };
                    Err(DecodeError::decode(field, e.into_inner().to_string()))
                }
                Ok(_) => Err(DecodeError::decode(None, first.to_string())),
            }
        }
    }
}

/// Decodes and validates a JSON touch-point event. Most payloads take the scanner in
/// `json_fast.rs`; anything it does not handle takes the serde path, which gives the same
/// result for every input (the fast path only exists to be quicker).
pub fn decode_touchpoint(
    bytes: &[u8],
    limits: &Limits,
    channels: &[Channel],
) -> Result<TouchpointEvent, DecodeError> {
    let text = utf8(bytes)?;
    match json_fast::scan(text) {
        Some(raw) => validate::touchpoint(raw, limits, channels),
        None => serde_touchpoint(text, limits, channels),
    }
}

/// The serde path alone, for every payload: the reference the fast path is tested and
/// benchmarked against.
pub fn decode_touchpoint_serde(
    bytes: &[u8],
    limits: &Limits,
    channels: &[Channel],
) -> Result<TouchpointEvent, DecodeError> {
    serde_touchpoint(utf8(bytes)?, limits, channels)
}

fn serde_touchpoint(
    text: &str,
    limits: &Limits,
    channels: &[Channel],
) -> Result<TouchpointEvent, DecodeError> {
    let w: WireEvent<'_> = parse(text)?;
    validate::touchpoint(raw_event(&w), limits, channels)
}

pub(super) fn raw_event<'a>(w: &'a WireEvent<'a>) -> RawEvent<'a> {
    RawEvent {
        event_id: w.event_id.as_deref(),
        occurred_at: w.occurred_at.as_deref(),
        customer_id: w.customer_id.as_deref(),
        channel: w.channel.as_deref(),
        touchpoint: w.touchpoint.as_deref(),
        event_type: w.event_type.as_deref(),
        outcome: w.outcome.as_deref().map(Ok),
        reference: w.reference.as_deref(),
        cause: w.cause.as_deref().map(Ok),
        amount: w.amount,
        currency: w.currency.as_deref(),
        expected_by: w.expected_by.as_deref(),
        customer: w.customer.as_ref().map(|p| RawProfile {
            since: p.since.as_deref(),
            segment: p.segment.as_deref(),
            annual_value: p.annual_value,
        }),
        score: w.score,
        attributes: w
            .attributes
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect(),
    }
}

pub fn decode_outcome(bytes: &[u8], limits: &Limits) -> Result<RecoveryOutcome, DecodeError> {
    let text = utf8(bytes)?;
    let w: WireOutcome<'_> = parse(text)?;
    let comp = w.compensation.as_ref();
    let raw = RawOutcome {
        task_id: w.task_id.as_deref(),
        customer_id: w.customer_id.as_deref(),
        occurred_at: w.occurred_at.as_deref(),
        status: w.status.as_deref().map(Ok),
        compensation_type: comp.and_then(|c| c.kind.as_deref()),
        compensation_amount: comp.and_then(|c| c.amount),
        currency: comp.and_then(|c| c.currency.as_deref()),
        score: w.score,
    };
    validate::outcome(raw, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Reason;
    use crate::config::Config;
    use crate::domain::{Cause, EventTime, Outcome};

    const GOOD: &str = r#"{"event_id":"e-00000001","occurred_at":"2026-11-22T10:15:03.120Z","customer_id":"c-000042",
 "channel":"shipping","touchpoint":"delivery","type":"delivery_failed","outcome":"failure",
 "reference":"order-778","cause":"internal","amount":129.9,"currency":"EUR",
 "expected_by":"2026-11-24T18:00:00Z",
 "customer":{"since":"2019-03-01","segment":"smb","annual_value":2400.0},
 "score":null,"attributes":{"carrier":"dhl"},"future_field":[1,2,3]}"#;

    fn decode(s: &[u8]) -> Result<TouchpointEvent, DecodeError> {
        crate::codec::Decoder::new(&Config::defaults()).touchpoint(s)
    }

    #[test]
    fn decodes_the_design_example() {
        let e = decode(GOOD.as_bytes()).unwrap();
        assert_eq!(&*e.event_id, "e-00000001");
        assert_eq!(
            e.occurred_at,
            EventTime::parse("2026-11-22T10:15:03.120Z").unwrap()
        );
        assert_eq!(e.channel.as_str(), "shipping");
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.cause, Some(Cause::Internal));
        assert_eq!(e.amount, Some(129.9));
        assert_eq!(e.customer.as_ref().unwrap().annual_value, Some(2400.0));
        assert_eq!(e.attributes, vec![("carrier".into(), "dhl".into())]);
        assert_eq!(e.score, None);
    }

    #[test]
    fn each_poison_kind_names_its_reason_and_field() {
        let cases: Vec<(Vec<u8>, Reason, Option<&str>, &str)> = vec![
            (
                b"{not json".to_vec(),
                Reason::Decode,
                None,
                "key must be a string",
            ),
            (
                vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'],
                Reason::Decode,
                None,
                "not valid UTF-8",
            ),
            (
                GOOD.replace("\"customer_id\":\"c-000042\",", "")
                    .into_bytes(),
                Reason::Validation,
                Some("customer_id"),
                "is required",
            ),
            (
                GOOD.replace("\"amount\":129.9", "\"amount\":\"lots\"")
                    .into_bytes(),
                Reason::Decode,
                Some("amount"),
                "invalid type",
            ),
            (
                GOOD.replace("\"annual_value\":2400.0", "\"annual_value\":true")
                    .into_bytes(),
                Reason::Decode,
                Some("customer.annual_value"),
                "invalid type",
            ),
            (
                GOOD.replace("\"outcome\":\"failure\"", "\"outcome\":\"meh\"")
                    .into_bytes(),
                Reason::Validation,
                Some("outcome"),
                "unknown value `meh`",
            ),
            (
                GOOD.replace("\"channel\":\"shipping\"", "\"channel\":\"fax\"")
                    .into_bytes(),
                Reason::Validation,
                Some("channel"),
                "unknown value `fax`",
            ),
            (
                GOOD.replace("2026-11-22T10:15:03.120Z", "22/11/2026 10:15")
                    .into_bytes(),
                Reason::Validation,
                Some("occurred_at"),
                "not an RFC 3339",
            ),
            (
                GOOD.replace("\"currency\":\"EUR\"", "\"currency\":\"euro\"")
                    .into_bytes(),
                Reason::Validation,
                Some("currency"),
                "ISO 4217",
            ),
            (
                b"[1,2,3]".to_vec(),
                Reason::Decode,
                None,
                "not a JSON object",
            ),
        ];
        for (payload, reason, field, needle) in cases {
            let e = decode(&payload).unwrap_err();
            assert_eq!(e.reason, reason, "{e}");
            assert_eq!(e.field.as_deref(), field, "{e}");
            assert!(
                e.to_string().contains(needle),
                "`{e}` should contain `{needle}`"
            );
        }
    }

    #[test]
    fn limits_are_enforced() {
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 1));
        assert_eq!(decode(big.as_bytes()).unwrap_err().reason, Reason::TooLarge);
        let long = GOOD.replace("order-778", &"r".repeat(300));
        let e = decode(long.as_bytes()).unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_deref()),
            (Reason::Validation, Some("reference"))
        );
        let attrs: Vec<String> = (0..40).map(|i| format!("\"k{i}\":\"v\"")).collect();
        let many = GOOD.replace("{\"carrier\":\"dhl\"}", &format!("{{{}}}", attrs.join(",")));
        let e = decode(many.as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("attributes"));
    }

    #[test]
    fn escaped_strings_decode() {
        let s = GOOD.replace("order-778", "order\\u002d778");
        assert_eq!(
            decode(s.as_bytes()).unwrap().reference.as_deref(),
            Some("order-778")
        );
    }

    #[test]
    fn outcomes_decode_and_validate() {
        let limits = Config::defaults().limits;
        let ok = br#"{"task_id":"t-1","customer_id":"c-1","occurred_at":"2026-11-22T10:00:00Z","status":"resolved","compensation":{"type":"refund","amount":10,"currency":"EUR"},"score":4}"#;
        let o = decode_outcome(ok, &limits).unwrap();
        assert_eq!(o.compensation_amount, Some(10.0));
        let bad = br#"{"task_id":"t-1","customer_id":"c-1","occurred_at":"2026-11-22T10:00:00Z","status":"done"}"#;
        assert_eq!(
            decode_outcome(bad, &limits).unwrap_err().field.as_deref(),
            Some("status")
        );
    }
}

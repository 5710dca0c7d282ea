//! Poison records: payloads amends must dead-letter without stopping, one per way input goes
//! wrong. Each is a plausible event broken in exactly one way, built deterministically from a
//! sequence number, and none contains a raw newline, so they can sit in a JSON-lines file.

use crate::domain::time::SECOND_MS;
use crate::domain::EventTime;

/// Largest payload amends accepts by default (`limits.max_message_bytes`); `Oversize` is one
/// byte more.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// One way an input record can be bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoisonKind {
    /// Truncated JSON.
    InvalidJson,
    /// Bytes that are not UTF-8 (0xFF 0xFE inside a string).
    InvalidUtf8,
    /// A required field (`customer_id`) is missing.
    MissingField,
    /// A number field holds a string: `"amount":"lots"`.
    WrongType,
    /// An enum field holds an unknown value: `"outcome":"sideways"`.
    UnknownEnum,
    /// `occurred_at` is not RFC 3339: `"22/11/2026 10:15"`.
    BadTimestamp,
    /// A valid-looking event padded past the 1 MiB limit.
    Oversize,
}

impl PoisonKind {
    pub const ALL: [PoisonKind; 7] = [
        PoisonKind::InvalidJson,
        PoisonKind::InvalidUtf8,
        PoisonKind::MissingField,
        PoisonKind::WrongType,
        PoisonKind::UnknownEnum,
        PoisonKind::BadTimestamp,
        PoisonKind::Oversize,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PoisonKind::InvalidJson => "invalid_json",
            PoisonKind::InvalidUtf8 => "invalid_utf8",
            PoisonKind::MissingField => "missing_field",
            PoisonKind::WrongType => "wrong_type",
            PoisonKind::UnknownEnum => "unknown_enum",
            PoisonKind::BadTimestamp => "bad_timestamp",
            PoisonKind::Oversize => "oversize",
        }
    }

    /// The dead-letter reason amends must give (`Reason::as_str`): "decode" | "validation" |
    /// "too_large".
    pub fn expected_reason(self) -> &'static str {
        match self {
            PoisonKind::InvalidJson | PoisonKind::InvalidUtf8 | PoisonKind::WrongType => "decode",
            PoisonKind::MissingField | PoisonKind::UnknownEnum | PoisonKind::BadTimestamp => {
                "validation"
            }
            PoisonKind::Oversize => "too_large",
        }
    }
}

/// The bad payload of the given kind; `seq` varies the ids and times so that poison records
/// are distinct from each other. Deterministic.
pub fn poison_payload(kind: PoisonKind, seq: u64) -> Vec<u8> {
    let at = EventTime(
        EventTime::parse("2026-11-21T12:00:00Z")
            .map(|t| t.0)
            .unwrap_or(0)
            + (seq % 86_400) as i64 * SECOND_MS,
    );
    let occurred_at = at.to_string();
    let customer_id = format!("c-{:06}", seq % 1_000 + 1);
    let mut p = Parts {
        event_id: format!("p-{seq:08}"),
        occurred_at: occurred_at.clone(),
        customer_id: Some(customer_id),
        outcome: "failure",
        amount: "49.9".into(),
        padding: None,
        seq,
    };
    match kind {
        PoisonKind::InvalidJson => {
            let full = p.render();
            // Cut mid-object: never valid JSON, whatever the cut lands on.
            return full.as_bytes()[..full.len() * 3 / 5].to_vec();
        }
        PoisonKind::InvalidUtf8 => {
            let full = p.render().into_bytes();
            let needle = b"\"customer_id\":\"c-";
            let mut out = Vec::with_capacity(full.len() + 2);
            match full.windows(needle.len()).position(|w| w == needle) {
                Some(i) => {
                    out.extend_from_slice(&full[..i + needle.len()]);
                    out.extend_from_slice(&[0xFF, 0xFE]);
                    out.extend_from_slice(&full[i + needle.len()..]);
                }
                None => {
                    out.extend_from_slice(&full);
                    out.extend_from_slice(&[0xFF, 0xFE]);
                }
            }
            return out;
        }
        PoisonKind::MissingField => p.customer_id = None,
        PoisonKind::WrongType => p.amount = "\"lots\"".into(),
        PoisonKind::UnknownEnum => p.outcome = "sideways",
        PoisonKind::BadTimestamp => p.occurred_at = "22/11/2026 10:15".into(),
        PoisonKind::Oversize => {
            let base = p.render().len();
            // `,"padding":""` adds 13 bytes around the padding itself.
            let want = MAX_MESSAGE_BYTES + 1;
            p.padding = Some(want.saturating_sub(base + 13).max(1));
        }
    }
    p.render().into_bytes()
}

/// The pieces of a poison event that the kinds vary.
struct Parts {
    event_id: String,
    occurred_at: String,
    customer_id: Option<String>,
    outcome: &'static str,
    amount: String,
    padding: Option<usize>,
    seq: u64,
}

impl Parts {
    fn render(&self) -> String {
        let customer = match &self.customer_id {
            Some(c) => format!(r#""customer_id":"{c}","#),
            None => String::new(),
        };
        let mut s = format!(
            concat!(
                r#"{{"event_id":"{}","occurred_at":"{}",{}"channel":"billing","touchpoint":"payment","#,
                r#""type":"payment_declined","outcome":"{}","reference":"order-9{:05}","cause":"external","#,
                r#""amount":{},"currency":"EUR","customer":{{"since":"2021-05-04","segment":"consumer","annual_value":640.0}},"#,
                r#""attributes":{{"payment_method":"card","decline_code":"do_not_honor"}}"#
            ),
            self.event_id,
            self.occurred_at,
            customer,
            self.outcome,
            self.seq % 100_000,
            self.amount
        );
        if let Some(n) = self.padding {
            s.reserve(n + 16);
            s.push_str(",\"padding\":\"");
            s.push_str(&"x".repeat(n));
            s.push('"');
        }
        s.push('}');
        s
    }
}

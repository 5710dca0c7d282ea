//! The simulator's compact event record and its JSON form.
//!
//! Generation works on [`Ev`], a small fixed-size struct (no strings), so a million events fit
//! in a few tens of megabytes and sort quickly. Strings are made only when an event is written,
//! through the codec's own [`WireEvent`], so the simulator cannot drift from the contract.

use super::customer::Customer;
use crate::codec::json::{WireEvent, WireProfile};
use crate::domain::EventTime;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Every event type the simulator emits: channel, touchpoint, type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    OrderPlaced,
    OrderCancelled,
    PaymentAuthorized,
    PaymentDeclined,
    InvoiceSent,
    InvoiceDisputed,
    RefundIssued,
    RefundFailed,
    OrderShipped,
    DeliveryScheduled,
    Delivered,
    DeliveryFailed,
    TicketOpened,
    AgentReplied,
    TicketResolved,
    TicketReopened,
    CallReceived,
    CallbackRequested,
    CallbackMade,
    CallAbandoned,
    SurveyAnswered,
}

impl Kind {
    #[cfg(test)]
    pub(crate) const ALL: [Kind; 21] = [
        Kind::OrderPlaced,
        Kind::OrderCancelled,
        Kind::PaymentAuthorized,
        Kind::PaymentDeclined,
        Kind::InvoiceSent,
        Kind::InvoiceDisputed,
        Kind::RefundIssued,
        Kind::RefundFailed,
        Kind::OrderShipped,
        Kind::DeliveryScheduled,
        Kind::Delivered,
        Kind::DeliveryFailed,
        Kind::TicketOpened,
        Kind::AgentReplied,
        Kind::TicketResolved,
        Kind::TicketReopened,
        Kind::CallReceived,
        Kind::CallbackRequested,
        Kind::CallbackMade,
        Kind::CallAbandoned,
        Kind::SurveyAnswered,
    ];

    /// `(channel, touchpoint, type)`.
    pub(crate) fn names(self) -> (&'static str, &'static str, &'static str) {
        use Kind::*;
        match self {
            OrderPlaced => ("sales", "checkout", "order_placed"),
            OrderCancelled => ("sales", "checkout", "order_cancelled"),
            PaymentAuthorized => ("billing", "payment", "payment_authorized"),
            PaymentDeclined => ("billing", "payment", "payment_declined"),
            InvoiceSent => ("billing", "invoice", "invoice_sent"),
            InvoiceDisputed => ("billing", "invoice", "invoice_disputed"),
            RefundIssued => ("billing", "refund", "refund_issued"),
            RefundFailed => ("billing", "refund", "refund_failed"),
            OrderShipped => ("shipping", "dispatch", "order_shipped"),
            DeliveryScheduled => ("shipping", "delivery", "delivery_scheduled"),
            Delivered => ("shipping", "delivery", "delivered"),
            DeliveryFailed => ("shipping", "delivery", "delivery_failed"),
            TicketOpened => ("service", "ticket", "ticket_opened"),
            AgentReplied => ("service", "ticket", "agent_replied"),
            TicketResolved => ("service", "ticket", "ticket_resolved"),
            TicketReopened => ("service", "ticket", "ticket_reopened"),
            CallReceived => ("service", "phone", "call_received"),
            CallbackRequested => ("service", "phone", "callback_requested"),
            CallbackMade => ("service", "phone", "callback_made"),
            CallAbandoned => ("service", "phone", "call_abandoned"),
            SurveyAnswered => ("service", "survey", "survey_answered"),
        }
    }

    pub(crate) fn is_failure(self) -> bool {
        use Kind::*;
        matches!(
            self,
            OrderCancelled
                | PaymentDeclined
                | InvoiceDisputed
                | RefundFailed
                | DeliveryFailed
                | TicketReopened
                | CallAbandoned
        )
    }

    /// `failure` for failure steps; `neutral` for contacts, requests and surveys (they report,
    /// they neither succeed nor fail); `success` for completed operational steps.
    pub(crate) fn outcome(self) -> &'static str {
        use Kind::*;
        match self {
            k if k.is_failure() => "failure",
            TicketOpened | CallReceived | CallbackRequested | SurveyAnswered => "neutral",
            _ => "success",
        }
    }
}

/// What a reference points at. Numbers are given in order of first appearance in time, so
/// `order-000001` is the first order seen in the simulated window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    Order,
    Invoice,
    Ticket,
}

impl RefKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            RefKind::Order => "order-",
            RefKind::Invoice => "invoice-",
            RefKind::Ticket => "ticket-",
        }
    }
}

pub(crate) const NO_JOURNEY: u32 = u32::MAX;
pub(crate) const NO_TIME: i64 = i64::MIN;

/// Cause codes in [`Ev::cause`].
pub(crate) const CAUSE_NONE: u8 = 0;
pub(crate) const CAUSES: [&str; 4] = ["", "internal", "external", "unknown"];

/// One simulated event. `a`, `b` and `n` are attribute slots whose meaning depends on `kind`
/// (see [`attributes`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ev {
    pub t: i64,
    pub expected_by: i64,
    /// 0 = no amount.
    pub amount_cents: u32,
    pub customer: u32,
    /// Index into the simulator's journey table, or [`NO_JOURNEY`].
    pub journey: u32,
    pub kind: Kind,
    pub cause: u8,
    /// 1..=5, 0 = none.
    pub score: u8,
    pub a: u8,
    pub b: u8,
    pub n: u16,
    /// Whether the producing system attached the customer profile snapshot.
    pub profile: bool,
}

impl Ev {
    pub(crate) fn new(kind: Kind, t: i64, customer: u32, journey: u32) -> Ev {
        Ev {
            t,
            expected_by: NO_TIME,
            amount_cents: 0,
            customer,
            journey,
            kind,
            cause: CAUSE_NONE,
            score: 0,
            a: 0,
            b: 0,
            n: 0,
            profile: true,
        }
    }
}

pub(crate) const STOREFRONTS: [&str; 5] = ["web", "app", "phone", "sales_rep", "edi"];
pub(crate) const PAYMENT_METHODS: [&str; 5] =
    ["card", "paypal", "sepa_debit", "invoice", "bank_transfer"];
pub(crate) const CARRIERS: [&str; 5] = ["dhl", "ups", "dpd", "gls", "postnl"];
pub(crate) const WAREHOUSES: [&str; 3] = ["ams-1", "fra-2", "mad-1"];
pub(crate) const TICKET_VIA: [&str; 3] = ["email", "chat", "web_form"];
pub(crate) const TOPICS: [&str; 7] = [
    "delivery", "payment", "invoice", "refund", "order", "account", "product",
];
pub(crate) const QUEUES: [&str; 4] = ["general", "billing", "shipping", "sales"];
pub(crate) const INVOICE_DELIVERY: [&str; 3] = ["email", "portal", "post"];
pub(crate) const SURVEYS: [&str; 2] = ["csat_order", "csat_contact"];
pub(crate) const REFUND_REASONS: [&str; 4] =
    ["return", "failed_delivery", "dispute", "cancellation"];

/// Failure reasons with the cause they belong to (index into [`CAUSES`]), per failure type.
pub(crate) const DECLINE_CODES: [(&str, u8); 6] = [
    ("gateway_timeout", 1),
    ("fraud_rule_false_positive", 1),
    ("insufficient_funds", 2),
    ("card_expired", 2),
    ("do_not_honor", 2),
    ("processor_error", 3),
];
pub(crate) const DELIVERY_FAILURES: [(&str, u8); 7] = [
    ("courier_no_show", 1),
    ("wrong_address_label", 1),
    ("damaged_in_transit", 1),
    ("recipient_absent", 2),
    ("weather", 2),
    ("carrier_strike", 2),
    ("parcel_lost", 3),
];
pub(crate) const CANCEL_REASONS: [(&str, u8); 5] = [
    ("out_of_stock", 1),
    ("pricing_error", 1),
    ("payment_failed", 2),
    ("customer_request", 2),
    ("fraud_check", 3),
];
pub(crate) const DISPUTE_REASONS: [(&str, u8); 5] = [
    ("charged_twice", 1),
    ("wrong_amount", 1),
    ("not_delivered", 1),
    ("bank_chargeback", 2),
    ("unrecognised_charge", 3),
];
pub(crate) const REFUND_FAILURES: [(&str, u8); 4] = [
    ("system_error", 1),
    ("bank_rejected", 2),
    ("account_closed", 2),
    ("timeout", 3),
];

/// Scratch buffers reused from one event to the next while writing.
#[derive(Default)]
pub(crate) struct Scratch {
    event_id: String,
    occurred_at: String,
    reference: String,
    expected_by: String,
    number: String,
    invoice: String,
}

/// Serializes `ev` as one JSON object (no trailing newline) onto `out`.
pub(crate) fn write_json(
    ev: &Ev,
    event_id: u64,
    reference: Option<(RefKind, u32)>,
    customer: &Customer,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let s = scratch;
    s.event_id.clear();
    let _ = write!(s.event_id, "e-{event_id:08}");
    s.occurred_at.clear();
    let _ = write!(s.occurred_at, "{}", EventTime(ev.t));
    s.reference.clear();
    if let Some((kind, number)) = reference {
        let _ = write!(s.reference, "{}{number:06}", kind.prefix());
    }
    s.expected_by.clear();
    if ev.expected_by != NO_TIME {
        let _ = write!(s.expected_by, "{}", EventTime(ev.expected_by));
    }
    s.number.clear();
    let _ = write!(s.number, "{}", ev.n);
    s.invoice.clear();
    if let Some((RefKind::Order, number)) = reference {
        let _ = write!(s.invoice, "inv-{number:06}");
    }
    let (channel, touchpoint, event_type) = ev.kind.names();
    let wire = WireEvent {
        event_id: Some(Cow::Borrowed(&s.event_id)),
        occurred_at: Some(Cow::Borrowed(&s.occurred_at)),
        customer_id: Some(Cow::Borrowed(&customer.id)),
        channel: Some(Cow::Borrowed(channel)),
        touchpoint: Some(Cow::Borrowed(touchpoint)),
        event_type: Some(Cow::Borrowed(event_type)),
        outcome: Some(Cow::Borrowed(ev.kind.outcome())),
        reference: (!s.reference.is_empty()).then_some(Cow::Borrowed(&s.reference)),
        cause: (ev.cause != CAUSE_NONE)
            .then(|| Cow::Borrowed(CAUSES[usize::from(ev.cause) % CAUSES.len()])),
        amount: (ev.amount_cents > 0).then(|| f64::from(ev.amount_cents) / 100.0),
        currency: (ev.amount_cents > 0).then_some(Cow::Borrowed("EUR")),
        expected_by: (!s.expected_by.is_empty()).then_some(Cow::Borrowed(&s.expected_by)),
        customer: ev.profile.then(|| WireProfile {
            since: Some(Cow::Borrowed(&customer.since)),
            segment: Some(Cow::Borrowed(customer.segment.name())),
            annual_value: Some(customer.annual_value),
        }),
        score: (ev.score > 0).then(|| f64::from(ev.score)),
        attributes: attributes(ev, &s.number, &s.invoice),
    };
    serde_json::to_writer(out, &wire)
}

fn get(table: &[&'static str], i: u8) -> &'static str {
    table.get(usize::from(i)).copied().unwrap_or("other")
}

fn reason(table: &[(&'static str, u8)], i: u8) -> &'static str {
    table.get(usize::from(i)).map(|r| r.0).unwrap_or("other")
}

/// The attribute map of an event: a couple of string pairs, as producers typically add.
fn attributes<'a>(ev: &Ev, number: &'a str, invoice: &'a str) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    use Kind::*;
    let b = |k: &'static str, v: &'static str| (Cow::Borrowed(k), Cow::Borrowed(v));
    let num = |k: &'static str| (Cow::Borrowed(k), Cow::Borrowed(number));
    match ev.kind {
        OrderPlaced => vec![b("storefront", get(&STOREFRONTS, ev.a)), num("items")],
        OrderCancelled => vec![
            b("storefront", get(&STOREFRONTS, ev.a)),
            b("reason", reason(&CANCEL_REASONS, ev.b)),
        ],
        PaymentAuthorized => vec![
            b("payment_method", get(&PAYMENT_METHODS, ev.a)),
            num("attempt"),
        ],
        PaymentDeclined => vec![
            b("payment_method", get(&PAYMENT_METHODS, ev.a)),
            b("decline_code", reason(&DECLINE_CODES, ev.b)),
        ],
        InvoiceSent | InvoiceDisputed => {
            let mut v = vec![if ev.kind == InvoiceSent {
                b("delivery", get(&INVOICE_DELIVERY, ev.a))
            } else {
                b("reason", reason(&DISPUTE_REASONS, ev.b))
            }];
            if !invoice.is_empty() {
                v.push((Cow::Borrowed("invoice_id"), Cow::Borrowed(invoice)));
            }
            v
        }
        RefundIssued => vec![
            b("payment_method", get(&PAYMENT_METHODS, ev.a)),
            b("reason", get(&REFUND_REASONS, ev.b)),
        ],
        RefundFailed => vec![
            b("payment_method", get(&PAYMENT_METHODS, ev.a)),
            b("reason", reason(&REFUND_FAILURES, ev.b)),
        ],
        OrderShipped => vec![
            b("carrier", get(&CARRIERS, ev.a)),
            b("warehouse", get(&WAREHOUSES, ev.b)),
        ],
        DeliveryScheduled | Delivered => vec![b("carrier", get(&CARRIERS, ev.a)), num("attempt")],
        DeliveryFailed => vec![
            b("carrier", get(&CARRIERS, ev.a)),
            b("reason", reason(&DELIVERY_FAILURES, ev.b)),
            num("attempt"),
        ],
        TicketOpened | AgentReplied | TicketResolved | TicketReopened => {
            vec![
                b("via", get(&TICKET_VIA, ev.a)),
                b("topic", get(&TOPICS, ev.b)),
            ]
        }
        CallReceived | CallAbandoned => vec![b("queue", get(&QUEUES, ev.a)), num("wait_s")],
        CallbackRequested | CallbackMade => vec![b("queue", get(&QUEUES, ev.a))],
        SurveyAnswered => vec![b("survey", get(&SURVEYS, ev.a))],
    }
}

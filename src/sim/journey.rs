//! Customer journeys: orders from checkout to delivery and invoice, account invoices, and the
//! failures along the way (declined payments, cancellations, failed or late deliveries,
//! disputes, failed refunds). Service contacts and surveys are in `contact.rs`.
//!
//! A journey is generated whole from its start time; only the events that fall inside the
//! simulated window are kept. Journeys start up to [`LEAD_IN_MS`] before the window so that the
//! window opens on a steady state (parcels already on their way) rather than on an empty shop.
//!
//! Each operational step fails with `SimConfig::failure_rate` times a step-specific factor
//! (deliveries fail more often than refunds do), drawn by [`Gen::fails`], which also applies an
//! injected spike (`spike.rs`) to the steps of its channel performed inside its window.

use super::customer::Customer;
use super::event::*;
use super::rng::Rng;
use super::spike::SpikeWindow;
use crate::domain::time::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};

/// How long before the window journeys may start. Longer than almost every journey.
pub(crate) const LEAD_IN_MS: i64 = 6 * DAY_MS;

/// Relative activity by hour of day (UTC; customers in Europe): quiet at night, busy from late
/// morning to evening. The peak is 1.0.
const HOURLY: [f64; 24] = [
    0.18, 0.1, 0.06, 0.05, 0.05, 0.08, 0.2, 0.42, 0.67, 0.83, 0.92, 0.95, 1.0, 0.95, 0.88, 0.85,
    0.85, 0.88, 0.95, 1.0, 0.97, 0.8, 0.55, 0.32,
];

/// Topic indices into [`TOPICS`].
pub(crate) const T_DELIVERY: u8 = 0;
pub(crate) const T_PAYMENT: u8 = 1;
pub(crate) const T_INVOICE: u8 = 2;
pub(crate) const T_REFUND: u8 = 3;
pub(crate) const T_ORDER: u8 = 4;
pub(crate) const T_ACCOUNT: u8 = 5;
pub(crate) const T_PRODUCT: u8 = 6;

/// Payment method indices into [`PAYMENT_METHODS`] used by account invoices.
const M_SEPA_DEBIT: u8 = 2;
const M_BANK_TRANSFER: u8 = 4;

/// Refund reason indices into [`REFUND_REASONS`].
const R_RETURN: u8 = 0;
const R_FAILED_DELIVERY: u8 = 1;
const R_DISPUTE: u8 = 2;
const R_CANCELLATION: u8 = 3;

/// The simulated window, the failure rate and any spike, shared by every customer's generator.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
    pub failure_rate: f64,
    pub spike: Option<SpikeWindow>,
}

/// Generates one customer's events into a shared buffer.
pub(crate) struct Gen<'a> {
    pub rng: Rng,
    pub window: Window,
    pub index: u32,
    pub cust: &'a Customer,
    pub out: &'a mut Vec<Ev>,
    pub journeys: &'a mut Vec<RefKind>,
}

impl Gen<'_> {
    /// All of this customer's journeys that touch the window.
    pub(crate) fn run(&mut self) {
        let from = self.window.start - LEAD_IN_MS;
        let days = (self.window.end - from) as f64 / DAY_MS as f64;
        let seg = self.cust.segment;
        let activity = self.cust.activity;
        let orders = self.rng.poisson(seg.orders_per_day() * activity * days);
        for _ in 0..orders {
            if let Some(t) = self.customer_time(from, self.window.end) {
                self.order(t);
            }
        }
        let questions = self.rng.poisson(seg.questions_per_day() * activity * days);
        for _ in 0..questions {
            if let Some(t) = self.customer_time(from, self.window.end) {
                self.question(t);
            }
        }
        let invoices = self.rng.poisson(seg.account_invoices_per_day() * days);
        for _ in 0..invoices {
            let t = self.rng.between(from, self.window.end);
            self.account_invoice(t);
        }
    }

    /// The probability that an operational step fails: the failure rate times the step's
    /// `factor`, times the spike's factor (capped at 1) when the step belongs to the spike's
    /// channel and is performed inside its window. `kind` is the failure the step would
    /// produce (for a late step, the step that comes late), which gives its channel; `t` is when
    /// the step at fault is performed. For a failure that surfaces at once (a declined payment,
    /// a failed delivery, a failed refund, an abandoned call) that is the failure's own time;
    /// for one that surfaces later it is the faulty step's: the invoice behind a dispute, the
    /// resolution behind a reopened ticket, the order behind a cancellation or a late dispatch,
    /// the scheduling behind a late delivery.
    pub(crate) fn p_fail(&self, kind: Kind, factor: f64, t: i64) -> f64 {
        let p = self.window.failure_rate * factor;
        match self.window.spike {
            Some(s) if s.covers(kind, t) => (p * s.factor).min(1.0),
            _ => p,
        }
    }

    /// Draws whether a step fails with [`Gen::p_fail`]. One draw whatever the probability, so a
    /// spike changes the random stream only where it changes an outcome.
    pub(crate) fn fails(&mut self, kind: Kind, factor: f64, t: i64) -> bool {
        let p = self.p_fail(kind, factor, t);
        self.rng.chance(p)
    }

    pub(crate) fn journey(&mut self, kind: RefKind) -> u32 {
        let id = self.journeys.len() as u32;
        self.journeys.push(kind);
        id
    }

    pub(crate) fn ev(&self, kind: Kind, t: i64, journey: u32) -> Ev {
        Ev::new(kind, t, self.index, journey)
    }

    /// Keeps the event if it falls inside the window.
    pub(crate) fn push(&mut self, ev: Ev) {
        if ev.t >= self.window.start && ev.t < self.window.end {
            self.out.push(ev);
        }
    }

    /// A cause code drawn with weights for internal, external, unknown.
    pub(crate) fn cause(&mut self, weights: [f64; 3]) -> u8 {
        1 + self.rng.weighted(&weights) as u8
    }

    /// A reason from `table` that belongs to `cause`.
    pub(crate) fn reason(&mut self, table: &[(&str, u8)], cause: u8) -> u8 {
        let n = table.iter().filter(|r| r.1 == cause).count() as u64;
        let k = self.rng.below(n) as usize;
        table
            .iter()
            .enumerate()
            .filter(|(_, r)| r.1 == cause)
            .nth(k)
            .map(|(i, _)| i as u8)
            .unwrap_or(0)
    }

    /// A time in [from, to) that follows the daily shape of customer activity.
    fn customer_time(&mut self, from: i64, to: i64) -> Option<i64> {
        for _ in 0..64 {
            let t = self.rng.between(from, to);
            let hour = (t.rem_euclid(DAY_MS) / HOUR_MS) as usize;
            if self.rng.f64() < HOURLY[hour % 24] {
                return Some(t);
            }
        }
        None
    }

    /// `t` if it is within opening hours [open, close) UTC, else shortly after the next opening.
    pub(crate) fn business(&mut self, t: i64, open_h: i64, close_h: i64) -> i64 {
        let day = t.div_euclid(DAY_MS);
        let tod = t.rem_euclid(DAY_MS);
        if tod < open_h * HOUR_MS {
            day * DAY_MS + open_h * HOUR_MS + self.rng.skewed(0, 2 * HOUR_MS)
        } else if tod >= close_h * HOUR_MS {
            (day + 1) * DAY_MS + open_h * HOUR_MS + self.rng.skewed(0, 2 * HOUR_MS)
        } else {
            t
        }
    }

    /// order_placed -> payment -> (cancellation) -> dispatch -> invoice -> delivery ->
    /// (dispute | return) -> (survey).
    fn order(&mut self, t0: i64) {
        let j = self.journey(RefKind::Order);
        let seg = self.cust.segment;
        let cents = seg.order_cents(&mut self.rng);
        let store = self.rng.weighted(seg.storefronts()) as u8;
        let max_items = match seg {
            super::customer::Segment::Consumer => 4,
            super::customer::Segment::Smb => 15,
            super::customer::Segment::Enterprise => 60,
        };
        let mut e = self.ev(Kind::OrderPlaced, t0, j);
        e.amount_cents = cents;
        e.a = store;
        e.n = 1 + self.rng.skewed(0, max_items) as u16;
        // The promise made at checkout: dispatched within 48 h.
        let promised = (t0 + 48 * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
        e.expected_by = promised;
        self.push(e);

        let mut failures = 0u32;
        let mut method = self.rng.weighted(seg.payment_methods()) as u8;
        let mut t = t0 + self.rng.between(2 * SECOND_MS, 90 * SECOND_MS);
        if !self.pay(
            j,
            &mut t,
            &mut method,
            cents,
            (MINUTE_MS, 3 * HOUR_MS),
            &mut failures,
        ) {
            // Never paid: the order lapses. Company-caused only when the gateway was at fault.
            t += self.rng.between(20 * MINUTE_MS, 6 * HOUR_MS);
            let mut c = self.ev(Kind::OrderCancelled, t, j);
            c.cause = self.cause([0.1, 0.75, 0.15]);
            c.b = 2; // payment_failed
            c.a = store;
            c.amount_cents = cents;
            self.push(c);
            return;
        }
        if self.fails(Kind::OrderCancelled, 0.4, t) {
            // Cancelled by the company before dispatch: out of stock, pricing error.
            let delay = self.rng.skewed(HOUR_MS, 30 * HOUR_MS);
            t = self.business(t + delay, 6, 22);
            let mut c = self.ev(Kind::OrderCancelled, t, j);
            c.cause = self.cause([0.85, 0.0, 0.15]);
            c.b = self.reason(&CANCEL_REASONS, c.cause);
            c.a = store;
            c.amount_cents = cents;
            self.push(c);
            self.contacts(j, t, 0.5, T_ORDER, 1);
            let delay = self.rng.between(HOUR_MS, 30 * HOUR_MS);
            let t_refund = self.business(t + delay, 6, 20);
            self.refund(j, t_refund, method, cents, R_CANCELLATION, &mut failures);
            if self.rng.chance(0.3) {
                let ts = t + self.rng.skewed(2 * HOUR_MS, 48 * HOUR_MS);
                self.survey(j, ts, 1, 0);
            }
            return;
        }

        // Dispatch: usually well within the promise; sometimes days late (a missed promise
        // with no failure event: the engine has to notice the absence).
        let late = self.fails(Kind::OrderShipped, 0.5, t);
        let wait = if late {
            self.rng.between(50 * HOUR_MS, 90 * HOUR_MS)
        } else {
            self.rng.skewed(40 * MINUTE_MS, 36 * HOUR_MS)
        };
        let t_ship = self.business(t + wait, 6, 22);
        if late {
            failures += 1;
            let tc = promised + self.rng.between(HOUR_MS, 20 * HOUR_MS);
            self.contacts(j, tc, 0.35, T_ORDER, 0);
        }
        let carrier = self.rng.weighted(&[0.3, 0.2, 0.2, 0.15, 0.15]) as u8;
        let mut s = self.ev(Kind::OrderShipped, t_ship, j);
        s.a = carrier;
        s.b = self.rng.below(WAREHOUSES.len() as u64) as u8;
        self.push(s);

        let t_inv = t_ship + self.rng.between(MINUTE_MS, 30 * MINUTE_MS);
        let mut inv = self.ev(Kind::InvoiceSent, t_inv, j);
        inv.amount_cents = cents;
        inv.a = match seg {
            super::customer::Segment::Consumer => 0,
            _ => self.rng.weighted(&[0.3, 0.6, 0.1]) as u8,
        };
        self.push(inv);

        let before = failures;
        let (t_end, delivered) = self.deliver(j, t_ship, carrier, method, cents, &mut failures);
        let delivery_failed = failures > before;
        let p_dispute = if delivery_failed {
            0.15
        } else {
            self.p_fail(Kind::InvoiceDisputed, 0.4, t_inv)
        };
        if self.rng.chance(p_dispute) {
            let td = t_end + self.rng.skewed(2 * HOUR_MS, 4 * DAY_MS);
            self.dispute(j, td, method, cents, delivery_failed, &mut failures);
        } else if delivered && self.rng.chance(0.05) {
            let delay = self.rng.between(2 * DAY_MS, 6 * DAY_MS);
            let tr = self.business(t_end + delay, 6, 20);
            self.refund(j, tr, method, cents, R_RETURN, &mut failures);
        }
        let p_survey = if failures > 0 { 0.3 } else { 0.12 };
        if self.rng.chance(p_survey) {
            let ts = t_end + self.rng.skewed(2 * HOUR_MS, 48 * HOUR_MS);
            self.survey(j, ts, failures, 0);
        }
    }

    /// Payment attempts at `*t` (a declined payment is retried after `retry_gap`, perhaps with
    /// another method). Returns whether the payment was authorised; `*t` is the last attempt.
    fn pay(
        &mut self,
        j: u32,
        t: &mut i64,
        method: &mut u8,
        cents: u32,
        retry_gap: (i64, i64),
        failures: &mut u32,
    ) -> bool {
        for attempt in 1..=3u16 {
            if self.fails(Kind::PaymentDeclined, 1.25, *t) {
                let mut d = self.ev(Kind::PaymentDeclined, *t, j);
                d.cause = self.cause([0.4, 0.45, 0.15]);
                d.b = self.reason(&DECLINE_CODES, d.cause);
                d.a = *method;
                d.amount_cents = cents;
                d.n = attempt;
                self.push(d);
                *failures += 1;
                if attempt < 3 && self.rng.chance(0.65) {
                    *t += self.rng.skewed(retry_gap.0, retry_gap.1);
                    if self.rng.chance(0.4) {
                        *method = self.rng.weighted(self.cust.segment.payment_methods()) as u8;
                    }
                    continue;
                }
                self.contacts(j, *t, 0.3, T_PAYMENT, 1);
                return false;
            }
            let mut a = self.ev(Kind::PaymentAuthorized, *t, j);
            a.a = *method;
            a.amount_cents = cents;
            a.n = attempt;
            self.push(a);
            return true;
        }
        false
    }

    /// Scheduling and delivery attempts (up to three). Returns when it ended and whether the
    /// parcel was delivered; a parcel that never arrives is refunded.
    fn deliver(
        &mut self,
        j: u32,
        t_ship: i64,
        carrier: u8,
        method: u8,
        cents: u32,
        failures: &mut u32,
    ) -> (i64, bool) {
        let mut t = t_ship + self.rng.skewed(20 * MINUTE_MS, 5 * HOUR_MS);
        for attempt in 1..=3u16 {
            let transit = if attempt == 1 {
                1 + self.rng.weighted(&[0.55, 0.35, 0.1]) as i64
            } else {
                1
            };
            let day = t.div_euclid(DAY_MS) + transit;
            let promised = day * DAY_MS + 18 * HOUR_MS;
            let mut s = self.ev(Kind::DeliveryScheduled, t, j);
            s.expected_by = promised;
            s.a = carrier;
            s.n = attempt;
            self.push(s);
            let late = self.fails(Kind::Delivered, 0.4, t);
            let t_try = day * DAY_MS
                + 8 * HOUR_MS
                + self.rng.between(0, 10 * HOUR_MS)
                + if late { DAY_MS } else { 0 };
            if self.fails(Kind::DeliveryFailed, 1.75, t_try) {
                let mut fl = self.ev(Kind::DeliveryFailed, t_try, j);
                fl.cause = self.cause([0.62, 0.28, 0.1]);
                fl.b = self.reason(&DELIVERY_FAILURES, fl.cause);
                fl.a = carrier;
                fl.n = attempt;
                fl.amount_cents = cents;
                self.push(fl);
                *failures += 1;
                self.contacts(j, t_try, 0.6, T_DELIVERY, *failures);
                if attempt < 3 && self.rng.chance(0.75) {
                    t = t_try + self.rng.skewed(30 * MINUTE_MS, 6 * HOUR_MS);
                    continue;
                }
                let delay = self.rng.between(DAY_MS, 4 * DAY_MS);
                let tr = self.business(t_try + delay, 6, 20);
                self.refund(j, tr, method, cents, R_FAILED_DELIVERY, failures);
                return (t_try, false);
            }
            let mut d = self.ev(Kind::Delivered, t_try, j);
            d.a = carrier;
            d.n = attempt;
            self.push(d);
            if late {
                *failures += 1;
                let tc = promised + self.rng.skewed(30 * MINUTE_MS, 12 * HOUR_MS);
                self.contacts(j, tc, 0.35, T_DELIVERY, 0);
            }
            return (t_try, true);
        }
        (t, false)
    }

    /// An invoice dispute, often after a delivery failure, usually settled with a refund.
    fn dispute(
        &mut self,
        j: u32,
        t: i64,
        method: u8,
        cents: u32,
        after_delivery_failure: bool,
        failures: &mut u32,
    ) {
        let t = self.business(t, 7, 22);
        let mut d = self.ev(Kind::InvoiceDisputed, t, j);
        if after_delivery_failure {
            d.cause = 1;
            d.b = 2; // not_delivered
        } else {
            d.cause = self.cause([0.55, 0.2, 0.25]);
            d.b = self.reason(&DISPUTE_REASONS, d.cause);
        }
        d.amount_cents = cents;
        self.push(d);
        *failures += 1;
        self.contacts(j, t, 0.4, T_INVOICE, *failures);
        if self.rng.chance(0.7) {
            let delay = self.rng.between(DAY_MS, 4 * DAY_MS);
            let tr = self.business(t + delay, 6, 20);
            self.refund(j, tr, method, cents, R_DISPUTE, failures);
        }
    }

    /// A refund; a failed one is retried a day or two later.
    fn refund(&mut self, j: u32, t: i64, method: u8, cents: u32, reason: u8, failures: &mut u32) {
        let mut t = t;
        if self.fails(Kind::RefundFailed, 1.5, t) {
            let mut r = self.ev(Kind::RefundFailed, t, j);
            r.cause = self.cause([0.6, 0.25, 0.15]);
            r.b = self.reason(&REFUND_FAILURES, r.cause);
            r.a = method;
            r.amount_cents = cents;
            self.push(r);
            *failures += 1;
            self.contacts(j, t, 0.7, T_REFUND, *failures);
            let delay = self.rng.between(DAY_MS, 3 * DAY_MS);
            t = self.business(t + delay, 6, 20);
        }
        let mut r = self.ev(Kind::RefundIssued, t, j);
        r.a = method;
        r.b = reason;
        r.amount_cents = cents;
        self.push(r);
    }

    /// A business account's periodic invoice: sent, then paid by debit or transfer days later,
    /// or disputed.
    fn account_invoice(&mut self, t: i64) {
        let j = self.journey(RefKind::Invoice);
        let t = self.business(t, 6, 20);
        let monthly = self.cust.annual_value / 12.0 * (0.5 + self.rng.f64());
        let cents = (monthly * 100.0).round().clamp(1_000.0, 4_000_000_000.0) as u32;
        let mut inv = self.ev(Kind::InvoiceSent, t, j);
        inv.amount_cents = cents;
        inv.a = self.rng.weighted(&[0.3, 0.6, 0.1]) as u8;
        self.push(inv);
        let mut failures = 0;
        if self.fails(Kind::InvoiceDisputed, 0.6, t) {
            let td = t + self.rng.skewed(2 * HOUR_MS, 5 * DAY_MS);
            self.dispute(j, td, M_BANK_TRANSFER, cents, false, &mut failures);
            return;
        }
        let mut method = if self.rng.chance(0.5) {
            M_SEPA_DEBIT
        } else {
            M_BANK_TRANSFER
        };
        let delay = self.rng.between(DAY_MS, 6 * DAY_MS);
        let mut tp = self.business(t + delay, 6, 20);
        self.pay(
            j,
            &mut tp,
            &mut method,
            cents,
            (DAY_MS, 3 * DAY_MS),
            &mut failures,
        );
    }
}

//! Service contacts and surveys: what customers do after a failure (tickets and calls about
//! the same reference, sometimes in several channels, sometimes repeatedly) and the everyday
//! questions that have nothing to do with a failure.
//!
//! Contact-centre steps can fail on their own: a call is abandoned in the queue, a resolved
//! ticket is reopened. Survey scores are lower after failures.

use super::event::*;
use super::journey::{
    Gen, T_ACCOUNT, T_DELIVERY, T_INVOICE, T_ORDER, T_PAYMENT, T_PRODUCT, T_REFUND,
};
use crate::domain::time::{DAY_MS, HOUR_MS, MINUTE_MS};

/// What the steps of one phone contact share.
#[derive(Clone, Copy)]
struct PhoneCall {
    j: u32,
    queue: u8,
    profile: bool,
}

/// Survey kinds, indices into [`SURVEYS`].
const S_CONTACT: u8 = 1;

impl Gen<'_> {
    /// After a failure at `t_fail`: with probability `p` (scaled by how readily this customer
    /// reaches out) one or more contacts about reference `j`. `failures` so far on the journey
    /// make repeated contacts more likely.
    pub(crate) fn contacts(&mut self, j: u32, t_fail: i64, p: f64, topic: u8, failures: u32) {
        let p = (p * self.cust.effort).min(0.95);
        if !self.rng.chance(p) {
            return;
        }
        let mut t = t_fail + self.rng.skewed(5 * MINUTE_MS, 10 * HOUR_MS);
        let mut phone = self.rng.chance(0.45);
        let p_repeat = 0.2 + 0.05 * f64::from(failures.min(3));
        for n in 0..3 {
            let end = if phone {
                self.call(j, t, topic)
            } else {
                self.ticket(j, t, topic)
            };
            if n == 2 {
                t = end;
                break;
            }
            if self.rng.chance(p_repeat) {
                // Same channel again: the answer did not help.
            } else if self.rng.chance(0.3) {
                phone = !phone; // Channel switch to get an answer.
            } else {
                t = end;
                break;
            }
            t = end + self.rng.skewed(30 * MINUTE_MS, 24 * HOUR_MS);
        }
        if self.rng.chance(0.15) {
            let ts = t + self.rng.skewed(HOUR_MS, 24 * HOUR_MS);
            self.survey(j, ts, failures.max(1), S_CONTACT);
        }
    }

    /// A question unrelated to any failure: a ticket with its own reference, or a call.
    pub(crate) fn question(&mut self, t: i64) {
        const TOPICS: [u8; 7] = [
            T_ORDER, T_ACCOUNT, T_PRODUCT, T_PAYMENT, T_INVOICE, T_DELIVERY, T_REFUND,
        ];
        let topic = TOPICS[self.rng.weighted(&[0.25, 0.25, 0.2, 0.08, 0.08, 0.1, 0.04])];
        let (j, end) = if self.rng.chance(0.5) {
            let j = self.journey(RefKind::Ticket);
            (j, self.ticket(j, t, topic))
        } else {
            (NO_JOURNEY, self.call(NO_JOURNEY, t, topic))
        };
        if self.rng.chance(0.08) {
            let ts = end + self.rng.skewed(HOUR_MS, 24 * HOUR_MS);
            self.survey(j, ts, 0, S_CONTACT);
        }
    }

    /// A ticket: opened, answered (sometimes slowly), resolved, sometimes reopened. Returns
    /// when it was last resolved.
    pub(crate) fn ticket(&mut self, j: u32, t: i64, topic: u8) -> i64 {
        let via = self.rng.weighted(&[0.5, 0.3, 0.2]) as u8;
        // Most people write during the day; a few at night.
        let t = if self.rng.chance(0.85) {
            self.business(t, 7, 23)
        } else {
            t
        };
        let step = |g: &mut Self, kind: Kind, t: i64| {
            let mut e = g.ev(kind, t, j);
            e.a = via;
            e.b = topic;
            e
        };
        let e = step(self, Kind::TicketOpened, t);
        self.push(e);
        let slow = self.rng.chance(0.08);
        let wait = if slow {
            self.rng.between(20 * HOUR_MS, 60 * HOUR_MS)
        } else {
            self.rng.skewed(5 * MINUTE_MS, 8 * HOUR_MS)
        };
        let t_reply = self.business(t + wait, 7, 21);
        let e = step(self, Kind::AgentReplied, t_reply);
        self.push(e);
        let t_resolved = t_reply + self.rng.skewed(10 * MINUTE_MS, 30 * HOUR_MS);
        let e = step(self, Kind::TicketResolved, t_resolved);
        self.push(e);
        if !self.fails(Kind::TicketReopened, 2.5, t_resolved) {
            return t_resolved;
        }
        let t_reopen = t_resolved + self.rng.skewed(HOUR_MS, 3 * DAY_MS);
        let mut e = step(self, Kind::TicketReopened, t_reopen);
        e.cause = self.cause([0.7, 0.1, 0.2]);
        self.push(e);
        let delay = self.rng.skewed(15 * MINUTE_MS, 8 * HOUR_MS);
        let t_reply = self.business(t_reopen + delay, 7, 21);
        let e = step(self, Kind::AgentReplied, t_reply);
        self.push(e);
        let t_resolved = t_reply + self.rng.skewed(10 * MINUTE_MS, 24 * HOUR_MS);
        let e = step(self, Kind::TicketResolved, t_resolved);
        self.push(e);
        t_resolved
    }

    /// A phone call in opening hours: answered, or abandoned in the queue (then a callback or
    /// a second call). Returns when the contact ended.
    pub(crate) fn call(&mut self, j: u32, t: i64, topic: u8) -> i64 {
        let queue = match topic {
            T_PAYMENT | T_INVOICE | T_REFUND => 1,
            T_DELIVERY => 2,
            T_ORDER => 3,
            _ => 0,
        };
        let t = self.business(t, 8, 20);
        // The telephony system often knows the caller's number, not their profile.
        let profile = self.rng.chance(0.7);
        let call = PhoneCall { j, queue, profile };
        if self.fails(Kind::CallAbandoned, 3.0, t) {
            let wait_s = self.rng.between(90, 900);
            let cause = self.cause([0.75, 0.05, 0.2]);
            self.phone_step(call, Kind::CallAbandoned, t, wait_s, cause);
            if self.rng.chance(0.5) {
                let t2 = t + self.rng.between(MINUTE_MS, 15 * MINUTE_MS);
                return self.callback(call, t2);
            }
            if self.rng.chance(0.6) {
                let delay = self.rng.skewed(5 * MINUTE_MS, 3 * HOUR_MS);
                let t2 = self.business(t + delay, 8, 20);
                let wait_s = self.rng.skewed(5, 600);
                self.phone_step(call, Kind::CallReceived, t2, wait_s, 0);
                return t2 + self.rng.between(2 * MINUTE_MS, 20 * MINUTE_MS);
            }
            return t;
        }
        let wait_s = self.rng.skewed(5, 600);
        self.phone_step(call, Kind::CallReceived, t, wait_s, 0);
        let end = t + self.rng.between(2 * MINUTE_MS, 20 * MINUTE_MS);
        if self.rng.chance(0.12) {
            return self.callback(call, end);
        }
        end
    }

    /// A callback request; usually the callback is made in opening hours, sometimes never.
    fn callback(&mut self, call: PhoneCall, t: i64) -> i64 {
        self.phone_step(call, Kind::CallbackRequested, t, 0, 0);
        if !self.rng.chance(0.9) {
            return t; // The promised callback never comes: a slow response.
        }
        let delay = self.rng.skewed(15 * MINUTE_MS, 26 * HOUR_MS);
        let t_back = self.business(t + delay, 8, 20);
        self.phone_step(call, Kind::CallbackMade, t_back, 0, 0);
        t_back
    }

    fn phone_step(&mut self, call: PhoneCall, kind: Kind, t: i64, wait_s: i64, cause: u8) {
        let mut e = self.ev(kind, t, call.j);
        e.a = call.queue;
        e.n = wait_s.clamp(0, i64::from(u16::MAX)) as u16;
        e.profile = call.profile;
        e.cause = cause;
        self.push(e);
    }

    /// A survey answer, CSAT 1..5: mostly 4-5, mostly 1-2 after failures.
    pub(crate) fn survey(&mut self, j: u32, t: i64, failures: u32, kind: u8) {
        let weights: [f64; 5] = if failures > 0 {
            [0.3, 0.28, 0.2, 0.14, 0.08]
        } else {
            [0.03, 0.05, 0.12, 0.35, 0.45]
        };
        let mut e = self.ev(Kind::SurveyAnswered, t, j);
        e.score = 1 + self.rng.weighted(&weights) as u8;
        e.a = kind;
        self.push(e);
    }
}

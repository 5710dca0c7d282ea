//! The recovery playbook (domain.md, "What shapes the response" and "Incidents and tasks").
//!
//! Pure functions from an incident's facts to the response: severity, relationship tier,
//! priority and due time, the ordered actions with compensation, value at risk and a
//! one-line explanation. No state, no clock: the engine passes in every time it needs.

pub(crate) mod render;

pub use render::{IncidentFacts, Response};

use crate::config::{PolicyConfig, ResponseRule};
use crate::domain::{
    Cause, CustomerProfile, EventTime, Millis, Relationship, Severity, TouchpointEvent,
};

#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) cfg: PolicyConfig,
}

impl Policy {
    pub fn new(cfg: &PolicyConfig) -> Policy {
        Policy { cfg: cfg.clone() }
    }

    /// Severity of one failure: by type, raised one step by money at stake at or above
    /// `major_amount`, and made critical at `critical_amount`.
    pub fn severity(&self, event: &TouchpointEvent) -> Severity {
        let s = &self.cfg.severity;
        let base = s
            .types
            .get(&*event.event_type)
            .copied()
            .unwrap_or(s.default);
        self.severity_for_amount(base, event.amount)
    }

    /// `base` raised by money at stake, as for a failure event (see `severity`).
    pub fn severity_for_amount(&self, base: Severity, amount: Option<f64>) -> Severity {
        let s = &self.cfg.severity;
        match amount {
            Some(a) if a >= s.critical_amount => Severity::Critical,
            Some(a) if a >= s.major_amount => base.raised(1),
            _ => base,
        }
    }

    /// Relationship tier at time `at`. Tenure decides first: a customer younger than
    /// `new_max_tenure` is new whatever they spend; otherwise long tenure or high value makes
    /// them loyal.
    pub fn relationship(&self, profile: Option<&CustomerProfile>, at: EventTime) -> Relationship {
        let r = &self.cfg.relationship;
        let Some(p) = profile else {
            return Relationship::Unknown;
        };
        let high_value = p
            .annual_value
            .is_some_and(|v| v >= r.loyal_min_annual_value);
        match p.since {
            Some(since) => {
                let tenure = Millis(at.0 - since.0);
                if tenure < r.new_max_tenure.millis() {
                    Relationship::New
                } else if tenure >= r.loyal_min_tenure.millis() || high_value {
                    Relationship::Loyal
                } else {
                    Relationship::Established
                }
            }
            None if high_value => Relationship::Loyal,
            None => Relationship::Unknown,
        }
    }

    /// Priority and time to first contact. New and unknown customers expect immediate
    /// recovery: their time is scaled by `new_customer_factor` and priority rises a step.
    pub fn response(&self, severity: Severity, tier: Relationship) -> (String, Millis) {
        let r = &self.cfg.response;
        let rule: &ResponseRule = match severity {
            Severity::Minor => &r.minor,
            Severity::Major => &r.major,
            Severity::Critical => &r.critical,
        };
        let urgent = matches!(tier, Relationship::New | Relationship::Unknown);
        if urgent {
            (
                raise_priority(&rule.priority),
                rule.within.millis().scale(r.new_customer_factor),
            )
        } else {
            (rule.priority.clone(), rule.within.millis())
        }
    }

    /// Annual value times operating margin: the yearly profit a failed recovery puts at risk.
    pub fn value_at_risk(&self, profile: Option<&CustomerProfile>) -> f64 {
        let v = profile.and_then(|p| p.annual_value).unwrap_or(0.0);
        round2(v * self.cfg.operating_margin)
    }

    pub fn owner_queue(&self, channel: &str, severity: Severity) -> String {
        let q = &self.cfg.queues;
        if severity == Severity::Critical {
            return q.critical.clone();
        }
        q.channels
            .get(channel)
            .cloned()
            .unwrap_or_else(|| q.default.clone())
    }

    /// Compensation type and amount for a failure. Internal cause: tangible, by severity,
    /// as percent of money at stake plus a fixed part. Unknown cause: a goodwill credit at a
    /// share of that. External cause: an apology only (the playbook adds alternatives).
    /// Loyal customers get `loyal_factor` of it. Always within the tier's cap.
    pub fn compensation(
        &self,
        severity: Severity,
        cause: Cause,
        tier: Relationship,
        amount_at_stake: f64,
    ) -> (String, f64) {
        let c = &self.cfg.compensation;
        let rule = match severity {
            Severity::Minor => &c.minor,
            Severity::Major => &c.major,
            Severity::Critical => &c.critical,
        };
        let base = amount_at_stake * rule.percent / 100.0 + rule.fixed;
        let (kind, mut amount) = match cause {
            Cause::Internal => (rule.kind.clone(), base),
            Cause::Unknown => ("credit".to_string(), base * c.unknown_cause_factor),
            Cause::External => return ("apology".to_string(), 0.0),
        };
        if tier == Relationship::Loyal {
            amount *= c.loyal_factor;
        }
        let cap = match tier {
            Relationship::New => c.cap_new,
            Relationship::Established => c.cap_established,
            Relationship::Loyal => c.cap_loyal,
            Relationship::Unknown => c.cap_unknown,
        };
        (kind, round2(amount.min(cap)))
    }
}

pub(crate) fn raise_priority(p: &str) -> String {
    match p {
        "p4" => "p3",
        "p3" => "p2",
        _ => "p1",
    }
    .to_string()
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy() -> Policy {
        Policy::new(&Config::defaults().policy)
    }

    fn profile(since: &str, value: f64) -> CustomerProfile {
        CustomerProfile {
            since: Some(EventTime::parse(since).unwrap()),
            segment: None,
            annual_value: Some(value),
        }
    }

    #[test]
    fn tiers_follow_tenure_then_value() {
        let p = policy();
        let at = EventTime::parse("2026-11-22T00:00:00Z").unwrap();
        assert_eq!(
            p.relationship(Some(&profile("2026-10-01", 50_000.0)), at),
            Relationship::New
        );
        assert_eq!(
            p.relationship(Some(&profile("2025-01-01", 500.0)), at),
            Relationship::Established
        );
        assert_eq!(
            p.relationship(Some(&profile("2025-01-01", 20_000.0)), at),
            Relationship::Loyal
        );
        assert_eq!(
            p.relationship(Some(&profile("2019-03-01", 500.0)), at),
            Relationship::Loyal
        );
        assert_eq!(p.relationship(None, at), Relationship::Unknown);
    }

    #[test]
    fn compensation_follows_cause_tier_and_cap() {
        let p = policy();
        // major internal: 15% of 200 + 10 = 40
        assert_eq!(
            p.compensation(
                Severity::Major,
                Cause::Internal,
                Relationship::Established,
                200.0
            ),
            ("refund".into(), 40.0)
        );
        // loyal gets half
        assert_eq!(
            p.compensation(Severity::Major, Cause::Internal, Relationship::Loyal, 200.0),
            ("refund".into(), 20.0)
        );
        // unknown cause: half, as credit
        assert_eq!(
            p.compensation(
                Severity::Major,
                Cause::Unknown,
                Relationship::Established,
                200.0
            ),
            ("credit".into(), 20.0)
        );
        // external: apology only
        assert_eq!(
            p.compensation(
                Severity::Critical,
                Cause::External,
                Relationship::New,
                5000.0
            ),
            ("apology".into(), 0.0)
        );
        // capped: critical 50% of 5000 + 25 = 2525, cap for new = 250
        assert_eq!(
            p.compensation(
                Severity::Critical,
                Cause::Internal,
                Relationship::New,
                5000.0
            ),
            ("refund".into(), 250.0)
        );
    }

    #[test]
    fn new_customers_get_faster_response() {
        let p = policy();
        assert_eq!(
            p.response(Severity::Major, Relationship::Established),
            ("p2".into(), Millis::from_hours(8))
        );
        assert_eq!(
            p.response(Severity::Major, Relationship::New),
            ("p1".into(), Millis::from_hours(4))
        );
        assert_eq!(
            p.response(Severity::Minor, Relationship::Unknown),
            ("p2".into(), Millis::from_hours(12))
        );
    }
}

//! `[policy]`: the recovery playbook's parameters (domain.md, "What shapes the response").

use super::{invalid, ConfigError, DetectConfig, Dur};
use crate::domain::Severity;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Operating margin: value at risk = annual value x margin.
    pub operating_margin: f64,
    /// Currency for compensation when the failing event names none.
    pub default_currency: String,
    pub severity: SeverityPolicy,
    pub relationship: RelationshipPolicy,
    pub response: ResponsePolicy,
    pub compensation: CompensationPolicy,
    pub queues: QueuePolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeverityPolicy {
    /// Severity of a failure whose type is not listed in `types`.
    #[serde(deserialize_with = "de_severity")]
    pub default: Severity,
    /// Severity by failure type.
    #[serde(deserialize_with = "de_severity_map")]
    pub types: BTreeMap<String, Severity>,
    /// Money at stake at or above this raises severity one step.
    pub major_amount: f64,
    /// Money at stake at or above this makes the failure critical.
    pub critical_amount: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelationshipPolicy {
    /// Customers with a shorter tenure are `new`.
    pub new_max_tenure: Dur,
    /// Customers with at least this tenure are `loyal`...
    pub loyal_min_tenure: Dur,
    /// ...and so are customers with at least this annual value.
    pub loyal_min_annual_value: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRule {
    /// p1 (highest) to p4.
    pub priority: String,
    /// Time from detection to first contact.
    pub within: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsePolicy {
    pub minor: ResponseRule,
    pub major: ResponseRule,
    pub critical: ResponseRule,
    /// New and unknown customers: `within` is multiplied by this, and priority rises a step.
    pub new_customer_factor: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompensationRule {
    /// refund | credit | discount
    #[serde(rename = "type")]
    pub kind: String,
    /// Percent of the money at stake.
    pub percent: f64,
    /// Fixed amount added (and the whole offer when no amount is at stake).
    pub fixed: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompensationPolicy {
    /// Tangible compensation for company-caused (internal) failures, by severity.
    pub minor: CompensationRule,
    pub major: CompensationRule,
    pub critical: CompensationRule,
    /// Unknown cause: this share of the internal-cause offer, as a goodwill credit.
    pub unknown_cause_factor: f64,
    /// Loyal customers expect less immediate compensation and more that the next time is
    /// right: their offer is multiplied by this, and the follow-up is emphasised.
    pub loyal_factor: f64,
    /// The most that may be offered, by relationship tier: new, established, loyal, unknown.
    pub cap_new: f64,
    pub cap_established: f64,
    pub cap_loyal: f64,
    pub cap_unknown: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuePolicy {
    /// Owner queue by channel of the failure.
    pub channels: BTreeMap<String, String>,
    /// Queue for channels not listed.
    pub default: String,
    /// Critical failures go to supervisors whatever the channel.
    pub critical: String,
}

pub(super) fn de_severity<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let s = String::deserialize(d)?;
    Severity::parse(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not minor, major or critical")))
}

fn de_severity_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Severity>, D::Error> {
    let m = BTreeMap::<String, String>::deserialize(d)?;
    m.into_iter()
        .map(|(k, v)| match Severity::parse(&v) {
            Some(s) => Ok((k, s)),
            None => Err(serde::de::Error::custom(format!(
                "`{k} = \"{v}\"`: severity must be minor, major or critical"
            ))),
        })
        .collect()
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let types = [
            ("payment_declined", Severity::Minor),
            ("delivery_failed", Severity::Major),
            ("order_cancelled", Severity::Major),
            ("invoice_disputed", Severity::Major),
            ("refund_failed", Severity::Major),
            ("ticket_reopened", Severity::Major),
            ("call_abandoned", Severity::Minor),
            ("visit_missed", Severity::Major),
            ("survey_answered", Severity::Minor),
        ];
        let queues = [
            ("sales", "sales-recovery"),
            ("billing", "billing-recovery"),
            ("shipping", "shipping-recovery"),
            ("service", "service-recovery"),
        ];
        PolicyConfig {
            operating_margin: 0.15,
            default_currency: "EUR".into(),
            severity: SeverityPolicy {
                default: Severity::Minor,
                types: types.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                major_amount: 250.0,
                critical_amount: 2500.0,
            },
            relationship: RelationshipPolicy {
                new_max_tenure: Dur::days(180),
                loyal_min_tenure: Dur::days(3 * 365),
                loyal_min_annual_value: 10_000.0,
            },
            response: ResponsePolicy {
                minor: ResponseRule {
                    priority: "p3".into(),
                    within: Dur::hours(24),
                },
                major: ResponseRule {
                    priority: "p2".into(),
                    within: Dur::hours(8),
                },
                critical: ResponseRule {
                    priority: "p1".into(),
                    within: Dur::hours(2),
                },
                new_customer_factor: 0.5,
            },
            compensation: CompensationPolicy {
                minor: CompensationRule {
                    kind: "credit".into(),
                    percent: 5.0,
                    fixed: 5.0,
                },
                major: CompensationRule {
                    kind: "refund".into(),
                    percent: 15.0,
                    fixed: 10.0,
                },
                critical: CompensationRule {
                    kind: "refund".into(),
                    percent: 50.0,
                    fixed: 25.0,
                },
                unknown_cause_factor: 0.5,
                loyal_factor: 0.5,
                cap_new: 250.0,
                cap_established: 200.0,
                cap_loyal: 150.0,
                cap_unknown: 150.0,
            },
            queues: QueuePolicy {
                channels: queues
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                default: "customer-recovery".into(),
                critical: "recovery-supervisors".into(),
            },
        }
    }
}

impl Default for SeverityPolicy {
    fn default() -> Self {
        PolicyConfig::default().severity
    }
}
impl Default for RelationshipPolicy {
    fn default() -> Self {
        PolicyConfig::default().relationship
    }
}
impl Default for ResponsePolicy {
    fn default() -> Self {
        PolicyConfig::default().response
    }
}
impl Default for CompensationPolicy {
    fn default() -> Self {
        PolicyConfig::default().compensation
    }
}
impl Default for QueuePolicy {
    fn default() -> Self {
        PolicyConfig::default().queues
    }
}

impl PolicyConfig {
    pub fn validate(&self, detect: &DetectConfig) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.operating_margin) {
            return Err(invalid(
                "policy.operating_margin",
                "must be between 0 and 1",
            ));
        }
        if self.default_currency.len() != 3
            || !self
                .default_currency
                .chars()
                .all(|c| c.is_ascii_uppercase())
        {
            return Err(invalid(
                "policy.default_currency",
                "must be an ISO 4217 code such as EUR",
            ));
        }
        let s = &self.severity;
        if !(s.major_amount > 0.0 && s.critical_amount > s.major_amount) {
            return Err(invalid(
                "policy.severity.critical_amount",
                "must be greater than policy.severity.major_amount, which must be positive",
            ));
        }
        let r = &self.relationship;
        if r.loyal_min_tenure.millis() <= r.new_max_tenure.millis() {
            return Err(invalid(
                "policy.relationship.loyal_min_tenure",
                "must be longer than policy.relationship.new_max_tenure",
            ));
        }
        if r.loyal_min_annual_value < 0.0 {
            return Err(invalid(
                "policy.relationship.loyal_min_annual_value",
                "must not be negative",
            ));
        }
        for (name, rule) in [
            ("minor", &self.response.minor),
            ("major", &self.response.major),
            ("critical", &self.response.critical),
        ] {
            if !matches!(rule.priority.as_str(), "p1" | "p2" | "p3" | "p4") {
                return Err(invalid(
                    format!("policy.response.{name}.priority"),
                    format!("`{}` must be p1, p2, p3 or p4", rule.priority),
                ));
            }
            if rule.within.millis().0 <= 0 {
                return Err(invalid(
                    format!("policy.response.{name}.within"),
                    "must be longer than zero",
                ));
            }
        }
        if !(self.response.new_customer_factor > 0.0 && self.response.new_customer_factor <= 1.0) {
            return Err(invalid(
                "policy.response.new_customer_factor",
                "must be in (0, 1]",
            ));
        }
        let c = &self.compensation;
        for (name, rule) in [
            ("minor", &c.minor),
            ("major", &c.major),
            ("critical", &c.critical),
        ] {
            if !matches!(rule.kind.as_str(), "refund" | "credit" | "discount") {
                return Err(invalid(
                    format!("policy.compensation.{name}.type"),
                    format!("`{}` must be refund, credit or discount", rule.kind),
                ));
            }
            if !(0.0..=100.0).contains(&rule.percent) {
                return Err(invalid(
                    format!("policy.compensation.{name}.percent"),
                    "must be between 0 and 100",
                ));
            }
            if rule.fixed < 0.0 || !rule.fixed.is_finite() {
                return Err(invalid(
                    format!("policy.compensation.{name}.fixed"),
                    "must not be negative",
                ));
            }
        }
        for (key, f) in [
            (
                "policy.compensation.unknown_cause_factor",
                c.unknown_cause_factor,
            ),
            ("policy.compensation.loyal_factor", c.loyal_factor),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(invalid(key, "must be between 0 and 1"));
            }
        }
        for (key, cap) in [
            ("policy.compensation.cap_new", c.cap_new),
            ("policy.compensation.cap_established", c.cap_established),
            ("policy.compensation.cap_loyal", c.cap_loyal),
            ("policy.compensation.cap_unknown", c.cap_unknown),
        ] {
            if cap < 0.0 || !cap.is_finite() {
                return Err(invalid(key, "must not be negative"));
            }
        }
        for ch in self.queues.channels.keys() {
            if !detect.channels.contains(ch) {
                return Err(invalid(
                    format!("policy.queues.channels.{ch}"),
                    format!("`{ch}` is not in detect.channels"),
                ));
            }
        }
        if self.queues.default.is_empty() || self.queues.critical.is_empty() {
            return Err(invalid(
                "policy.queues.default",
                "queue names must not be empty",
            ));
        }
        Ok(())
    }
}

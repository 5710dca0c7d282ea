//! Turns an incident's facts into the response a person acts on: actions in playbook order
//! (acknowledge, fix, alternatives, compensate, follow up) and the one-line explanation.

use super::Policy;
use crate::domain::time::DAY_MS;
use crate::domain::{
    Action, ActionKind, Cause, Compensation, CustomerProfile, EventTime, Millis, Relationship,
    Severity,
};

/// What the engine knows about an incident when it renders a task revision.
pub struct IncidentFacts<'a> {
    pub event_type: &'a str,
    pub channel: &'a str,
    pub touchpoint: &'a str,
    pub reference: &'a str,
    pub severity: Severity,
    pub cause: Cause,
    /// The customer's n-th failure (distinct incidents) in the repeat window.
    pub failure_count: u32,
    /// Failures on this incident so far (1 when the task opens).
    pub failures_on_incident: u32,
    /// Priority steps added because the customer is carrying the cost (effort, cascades).
    pub priority_boost: u8,
    /// Why this revision exists when a contact caused it (`cascade: ...`).
    pub signal: Option<&'a str>,
    pub repeat_window: Millis,
    pub amount_at_stake: f64,
    pub currency: &'a str,
    pub profile: Option<&'a CustomerProfile>,
    /// When the incident was first detected (event time); tiers are judged at this time.
    pub detected_at: EventTime,
    /// The failure that produced this revision; response times count from it.
    pub last_failure_at: EventTime,
    /// Due time of the previous revision, if any. A revision never relaxes a deadline that
    /// is still ahead; one that has already passed is replaced by a fresh one.
    pub previous_due: Option<EventTime>,
}

pub struct Response {
    pub relationship: Relationship,
    pub priority: String,
    pub due_at: EventTime,
    pub owner_queue: String,
    pub actions: Vec<Action>,
    pub value_at_risk: f64,
    pub explanation: String,
}

impl Policy {
    pub fn respond(&self, f: &IncidentFacts<'_>) -> Response {
        let tier = self.relationship(f.profile, f.detected_at);
        let (mut priority, within) = self.response(f.severity, tier);
        for _ in 0..f.priority_boost {
            priority = super::raise_priority(&priority);
        }
        let mut due_at = f.last_failure_at.plus(within);
        if let Some(prev) = f.previous_due {
            if prev >= f.last_failure_at {
                due_at = due_at.min(prev);
            }
        }
        let due = due_at.to_string();
        let (comp_kind, comp_amount) =
            self.compensation(f.severity, f.cause, tier, f.amount_at_stake);
        let what = describe(f.event_type);
        let repeated = f.failure_count > 1;
        let supervisor = repeated || f.severity == Severity::Critical;

        let acknowledge = match (supervisor, tier) {
            (true, _) => format!("A supervisor calls the customer, apologises for the {what} on {} and owns the failure", f.reference),
            (false, Relationship::New | Relationship::Unknown) => format!("Call the customer with a formal apology for the {what} on {} and own the failure", f.reference),
            (false, _) => format!("Acknowledge the {what} on {} to the customer and apologise", f.reference),
        };
        let fix = format!(
            "Fix the underlying problem: {}",
            fix_for(f.event_type, f.touchpoint)
        );
        // A survey answer is feedback about the experience as a whole, not a step that can be
        // redone: the response asks what went wrong instead of offering another survey.
        let feedback = f.touchpoint == "survey";
        let alternatives = match (feedback, f.cause) {
            (true, _) => {
                "Ask what went wrong and offer the customer a concrete way to put it right"
                    .to_string()
            }
            (false, Cause::External) => format!(
                "Explain what happened outside our control and offer alternatives for the {}",
                f.touchpoint
            ),
            (false, _) => format!(
                "Offer the customer alternatives for the {} while it is fixed",
                f.touchpoint
            ),
        };
        let compensate = if comp_kind == "apology" {
            "No tangible compensation: the cause was external; the apology and alternatives are the amends".to_string()
        } else {
            format!(
                "Offer a {comp_kind} of {comp_amount:.2} {} (within the {} cap)",
                f.currency,
                tier.as_str()
            )
        };
        let next = if feedback {
            "contact".to_string()
        } else {
            f.touchpoint.to_string()
        };
        let follow_up = match tier {
            Relationship::Loyal => format!(
                "Follow up within 7 days, and flag the account so the next {next} is handled with priority: a loyal customer expects the next time to be right"
            ),
            _ => "Follow up within 7 days after recovery to check the customer is satisfied".to_string(),
        };
        let follow_up_due = due_at.plus(Millis(7 * DAY_MS)).to_string();
        let actions = vec![
            action(
                1,
                ActionKind::Acknowledge,
                acknowledge,
                None,
                Some(due.clone()),
            ),
            action(2, ActionKind::Fix, fix, None, None),
            action(3, ActionKind::Alternatives, alternatives, None, None),
            action(
                4,
                ActionKind::Compensate,
                compensate,
                Some(Compensation {
                    kind: comp_kind.clone(),
                    amount: comp_amount,
                    currency: f.currency.to_string(),
                }),
                None,
            ),
            action(
                5,
                ActionKind::FollowUp,
                follow_up,
                None,
                Some(follow_up_due),
            ),
        ];

        let tier_words = format!("{} {} customer", article(tier.as_str()), tier.as_str());
        let tenure = match f.profile.and_then(|p| p.since) {
            Some(since) => format!(
                "{tier_words} of {}",
                tenure_human(Millis(f.detected_at.0 - since.0))
            ),
            None => tier_words,
        };
        let offer = if comp_kind == "apology" {
            "apologise, offer alternatives".to_string()
        } else {
            format!("{comp_kind} {comp_amount:.2} {}", f.currency)
        };
        let contact = if supervisor {
            "supervisor call"
        } else {
            "call"
        };
        let at_stake = if f.amount_at_stake > 0.0 {
            format!(", {:.2} {} at stake", f.amount_at_stake, f.currency)
        } else {
            String::new()
        };
        let facts = format!(
            "{what}, cause {}{at_stake}, {} severity",
            f.cause.as_str(),
            f.severity.as_str()
        );
        let head = if let Some(sig) = f.signal {
            let mut sig = sig.to_string();
            if let Some(first) = sig.get(..1) {
                let upper = first.to_ascii_uppercase();
                sig.replace_range(..1, &upper);
            }
            format!(
                "{sig} ({} incident in {}; {facts})",
                ordinal(f.failure_count),
                f.repeat_window.human()
            )
        } else if f.failures_on_incident > 1 {
            format!(
                "{} failure on {} ({} incident in {}; {facts})",
                ordinal(f.failures_on_incident),
                f.reference,
                ordinal(f.failure_count),
                f.repeat_window.human()
            )
        } else {
            format!(
                "{} failure in {} ({facts})",
                ordinal(f.failure_count),
                f.repeat_window.human()
            )
        };
        let explanation = format!(
            "{head} for {tenure}: {offer} and {contact} within {}.",
            Millis(due_at.0 - f.last_failure_at.0).human()
        );
        Response {
            relationship: tier,
            priority,
            due_at,
            owner_queue: self.owner_queue(f.channel, f.severity),
            actions,
            value_at_risk: self.value_at_risk(f.profile),
            explanation,
        }
    }
}

fn action(
    step: u32,
    kind: ActionKind,
    description: String,
    compensation: Option<Compensation>,
    due_at: Option<String>,
) -> Action {
    Action {
        step,
        kind,
        description,
        compensation,
        due_at,
    }
}

/// What an incident is about, in words: `delivery_failed` -> `delivery failed`; the types
/// given to missed promises read `broken promise (order placed)` and `unanswered request
/// (ticket opened)`.
pub fn describe(event_type: &str) -> String {
    if let Some(t) = event_type.strip_prefix("missed_") {
        format!("broken promise ({})", humanize(t))
    } else if let Some(t) = event_type.strip_prefix("unanswered_") {
        format!("unanswered request ({})", humanize(t))
    } else {
        humanize(event_type)
    }
}

/// `delivery_failed` -> `delivery failed`.
pub fn humanize(t: &str) -> String {
    t.replace('_', " ")
}

fn fix_for(event_type: &str, touchpoint: &str) -> String {
    match event_type {
        "delivery_failed" => "re-dispatch the order and confirm a delivery slot".into(),
        "payment_declined" => {
            "check the payment set-up, correct any error on our side and retry".into()
        }
        "order_cancelled" => "reinstate the order or find a replacement".into(),
        "invoice_disputed" => "correct the invoice and send the corrected copy".into(),
        "refund_failed" => "re-issue the refund and confirm it has been paid".into(),
        "ticket_reopened" => {
            "find the root cause the first answer missed and close it for good".into()
        }
        "call_abandoned" => "call the customer back and answer the open question".into(),
        "visit_missed" => "book the technician visit at the customer's earliest convenience".into(),
        "survey_answered" => "read the customer's feedback and put right what they name".into(),
        t if t.starts_with("missed_") => format!(
            "find what held up the {} and give the customer a firm new date",
            humanize(&t["missed_".len()..])
        ),
        t if t.starts_with("unanswered_") => format!(
            "answer the {} now and find why the service level was missed",
            humanize(&t["unanswered_".len()..])
        ),
        _ => format!("resolve what went wrong at {touchpoint}"),
    }
}

fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn tenure_human(t: Millis) -> String {
    let days = (t.0 / DAY_MS).max(0);
    if days >= 730 {
        format!("{} years", days / 365)
    } else if days >= 60 {
        format!("{} months", days / 30)
    } else if days == 1 {
        "1 day".into()
    } else {
        format!("{days} days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101]
            .iter()
            .map(|n| ordinal(*n))
            .collect();
        assert_eq!(
            got,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }
}

//! Encoding of outputs: recovery tasks as JSON or `amends.v1.RecoveryTask`.

use crate::config::Format;
use crate::domain::{Evidence, RecoveryTask};
use crate::pb;
use prost::Message;

pub fn encode_task(task: &RecoveryTask, format: Format) -> Vec<u8> {
    match format {
        // Serializing a struct of strings, numbers and vectors cannot fail.
        Format::Json => serde_json::to_vec(task).expect("recovery task serializes"),
        Format::Protobuf => task_to_pb(task).encode_to_vec(),
    }
}

pub fn task_to_pb(t: &RecoveryTask) -> pb::RecoveryTask {
    pb::RecoveryTask {
        task_id: t.task_id.clone(),
        revision: t.revision,
        status: t.status.as_str().into(),
        customer_id: t.customer_id.clone(),
        incident: t.incident.clone(),
        rule: t.rule.clone(),
        detected_at: t.detected_at.clone(),
        emitted_at: t.emitted_at.clone(),
        severity: t.severity.as_str().into(),
        failure_count: t.failure_count,
        cause: t.cause.clone(),
        relationship: t.relationship.as_str().into(),
        priority: t.priority.clone(),
        due_at: t.due_at.clone(),
        owner_queue: t.owner_queue.clone(),
        actions: t
            .actions
            .iter()
            .map(|a| pb::Action {
                step: a.step as i32,
                kind: serde_json::to_value(a.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                description: a.description.clone(),
                compensation: a.compensation.as_ref().map(|c| pb::Compensation {
                    r#type: c.kind.clone(),
                    amount: c.amount,
                    currency: c.currency.clone(),
                }),
                due_at: a.due_at.clone(),
            })
            .collect(),
        value_at_risk: t.value_at_risk,
        evidence: t.evidence.iter().map(pb::Evidence::from).collect(),
        explanation: t.explanation.clone(),
        channel: t.channel.clone(),
        touchpoint: t.touchpoint.clone(),
        reason: t.reason.clone(),
        fired_by: t.fired_by.clone(),
        segment: t.segment.clone(),
        currency: t.currency.clone(),
    }
}

impl From<&Evidence> for pb::Evidence {
    fn from(e: &Evidence) -> pb::Evidence {
        pb::Evidence {
            event_id: e.event_id.clone(),
            topic: e.topic.clone(),
            partition: e.partition,
            offset: e.offset,
            occurred_at: e.occurred_at.clone(),
            r#type: e.event_type.clone(),
        }
    }
}

impl From<pb::Evidence> for Evidence {
    fn from(e: pb::Evidence) -> Evidence {
        Evidence {
            event_id: e.event_id,
            topic: e.topic,
            partition: e.partition,
            offset: e.offset,
            occurred_at: e.occurred_at,
            event_type: e.r#type,
        }
    }
}

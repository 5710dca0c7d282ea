//! Snapshots of detection state: a partition's whole [`Engine`], or one customer, encoded as
//! `amends.v1.EngineSnapshot` / `amends.v1.CustomerSnapshot` (`proto/amends/v1/state.proto`,
//! which also states the versioning rule).
//!
//! The encoding is deterministic (customers sorted by id, every list in the engine's order),
//! so equal states give equal bytes, and restoring a snapshot gives an engine whose future
//! outputs are those the original would have produced. Configuration is not part of a
//! snapshot: the restoring engine interprets the state under the configuration it is given.

use super::rules::Rule;
use super::state::{CustomerState, Ev, Incident, Syms};
use super::{Engine, EngineStats};
use crate::config::Config;
use crate::domain::{
    Cause, CustomerProfile, EventTime, Evidence, RecoveryStatus, Severity, TaskStatus,
};
use crate::pb;
use prost::Message;
use std::collections::HashMap;

/// The snapshot format version this build writes and the newest it reads.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("state snapshot does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(
        "state snapshot version {found} is newer than the supported version {supported}; \
         it was written by a newer amends and cannot be read by this one"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("state snapshot field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_version(field: &str, found: u32) -> Result<(), SnapshotError> {
    match found {
        0 => Err(invalid(
            field,
            "missing (0): not a state snapshot written by amends",
        )),
        v if v > SNAPSHOT_VERSION => Err(SnapshotError::UnsupportedVersion {
            found: v,
            supported: SNAPSHOT_VERSION,
        }),
        _ => Ok(()),
    }
}

/// The engine's whole state, encoded.
pub fn snapshot(engine: &Engine) -> Vec<u8> {
    to_pb(engine).encode_to_vec()
}

/// An engine with the state of `bytes` and the detection rules and policy of `config`.
pub fn restore(config: &Config, bytes: &[u8]) -> Result<Engine, SnapshotError> {
    let snap = pb::EngineSnapshot::decode(bytes)?;
    check_version("version", snap.version)?;
    let stats = snap
        .stats
        .as_ref()
        .ok_or_else(|| invalid("stats", "missing"))?;
    let mut customers = HashMap::with_capacity_and_hasher(snap.customers.len(), Default::default());
    let mut syms = Syms::default();
    for (i, c) in snap.customers.into_iter().enumerate() {
        let path = format!("customers[{i}]");
        let (id, state) = customer_from_pb(c, &path, &mut syms)?;
        if customers
            .insert(std::sync::Arc::<str>::from(id), state)
            .is_some()
        {
            return Err(invalid(
                format!("{path}.customer_id"),
                "appears more than once",
            ));
        }
    }
    let mut engine = Engine::new(config);
    engine.customers = customers;
    engine.syms = std::cell::RefCell::new(syms);
    engine.stats = stats_from_pb(stats);
    engine.max_event_time = EventTime(snap.max_event_time_ms);
    engine.next_sweep = EventTime(snap.next_sweep_ms);
    engine.watermark = snap.watermark_ms.map_or(EventTime::MIN, EventTime);
    engine.rebuild_timers();
    Ok(engine)
}

/// One customer's state as a self-contained `CustomerSnapshot` (e.g. a changelog record
/// keyed by the customer id), or `None` if the engine does not track the customer.
pub fn customer_bytes(engine: &Engine, customer_id: &str) -> Option<Vec<u8>> {
    engine
        .customers
        .get(customer_id)
        .map(|c| customer_to_pb(customer_id, c).encode_to_vec())
}

/// Decodes a `CustomerSnapshot` written by [`customer_bytes`].
pub fn decode_customer(bytes: &[u8]) -> Result<(Box<str>, CustomerState), SnapshotError> {
    customer_from_pb(
        pb::CustomerSnapshot::decode(bytes)?,
        "",
        &mut super::state::Syms::default(),
    )
}

/// Puts one customer's state into the engine, replacing what it had for that customer, and
/// returns the customer id. Engine-wide values (highest event time, next sweep, counters)
/// are left alone: they are not part of a customer's snapshot.
pub fn restore_customer(engine: &mut Engine, bytes: &[u8]) -> Result<Box<str>, SnapshotError> {
    let (id, state) = customer_from_pb(
        pb::CustomerSnapshot::decode(bytes)?,
        "",
        engine.syms.get_mut(),
    )?;
    let key: std::sync::Arc<str> = std::sync::Arc::from(&*id);
    for d in state.timer_deadlines() {
        engine.timers.push(std::cmp::Reverse((d, key.clone())));
    }
    engine.customers.insert(key, state);
    Ok(id)
}

/// The engine-wide part of the state (clocks and counters, no customers) as the fields of a
/// changelog checkpoint; the caller fills in the rest.
pub fn checkpoint_fields(engine: &Engine) -> pb::PartitionCheckpoint {
    let whole = to_pb_without_customers(engine);
    pb::PartitionCheckpoint {
        version: SNAPSHOT_VERSION,
        max_event_time_ms: whole.max_event_time_ms,
        next_sweep_ms: whole.next_sweep_ms,
        watermark_ms: whole.watermark_ms,
        stats: whole.stats,
        ..pb::PartitionCheckpoint::default()
    }
}

/// Sets the engine-wide part of the state from a checkpoint (after its customers were put in
/// with [`restore_customer`]) and re-creates every customer's timers.
pub fn restore_checkpoint_fields(
    engine: &mut Engine,
    cp: &pb::PartitionCheckpoint,
) -> Result<(), SnapshotError> {
    check_version("checkpoint.version", cp.version)?;
    let stats = cp
        .stats
        .as_ref()
        .ok_or_else(|| invalid("checkpoint.stats", "missing"))?;
    engine.stats = stats_from_pb(stats);
    engine.max_event_time = EventTime(cp.max_event_time_ms);
    engine.next_sweep = EventTime(cp.next_sweep_ms);
    engine.watermark = cp.watermark_ms.map_or(EventTime::MIN, EventTime);
    engine.rebuild_timers();
    Ok(())
}

fn stats_from_pb(stats: &pb::EngineStatsSnapshot) -> EngineStats {
    EngineStats {
        events: stats.events,
        failures: stats.failures,
        duplicates: stats.duplicates,
        tasks_opened: stats.tasks_opened,
        tasks_escalated: stats.tasks_escalated,
        evicted: stats.evicted,
        expired: stats.expired,
        late: stats.late,
        timers_fired: stats.timers_fired,
        tasks_settled: stats.tasks_settled,
        outcomes: stats.outcomes,
        outcomes_unknown: stats.outcomes_unknown,
        outcomes_duplicate: stats.outcomes_duplicate,
        tasks_overdue: stats.tasks_overdue,
    }
}

/// Removes a customer from the state (a changelog tombstone). Their timers are dropped when
/// they come up, or by the rebuild at the end of a restore.
pub fn forget_customer(engine: &mut Engine, customer_id: &str) {
    engine.customers.remove(customer_id);
}

fn to_pb(engine: &Engine) -> pb::EngineSnapshot {
    let mut ids: Vec<(&std::sync::Arc<str>, &CustomerState)> = engine.customers.iter().collect();
    // HashMap order is random; sorting makes equal states encode to equal bytes.
    ids.sort_unstable_by(|a, b| a.0.cmp(b.0));
    pb::EngineSnapshot {
        customers: ids
            .into_iter()
            .map(|(id, c)| customer_to_pb(id, c))
            .collect(),
        ..to_pb_without_customers(engine)
    }
}

fn to_pb_without_customers(engine: &Engine) -> pb::EngineSnapshot {
    let s = &engine.stats;
    pb::EngineSnapshot {
        version: SNAPSHOT_VERSION,
        max_event_time_ms: engine.max_event_time.0,
        next_sweep_ms: engine.next_sweep.0,
        customers: Vec::new(),
        stats: Some(pb::EngineStatsSnapshot {
            events: s.events,
            failures: s.failures,
            duplicates: s.duplicates,
            tasks_opened: s.tasks_opened,
            tasks_escalated: s.tasks_escalated,
            evicted: s.evicted,
            expired: s.expired,
            late: s.late,
            timers_fired: s.timers_fired,
            tasks_settled: s.tasks_settled,
            outcomes: s.outcomes,
            outcomes_unknown: s.outcomes_unknown,
            outcomes_duplicate: s.outcomes_duplicate,
            tasks_overdue: s.tasks_overdue,
        }),
        watermark_ms: (engine.watermark > EventTime::MIN).then_some(engine.watermark.0),
    }
}

fn customer_to_pb(id: &str, c: &CustomerState) -> pb::CustomerSnapshot {
    pb::CustomerSnapshot {
        customer_id: id.to_string(),
        last_activity_ms: c.last_activity.0,
        profile: c.profile.as_ref().map(|p| {
            let p = p.to_profile();
            pb::ProfileSnapshot {
                since_ms: p.since.map(|t| t.0),
                segment: p.segment.as_deref().map(String::from),
                annual_value: p.annual_value,
            }
        }),
        incident_opens_ms: c.more().incident_opens.iter().map(|t| t.0).collect(),
        incidents: c.more().incidents.iter().map(incident_to_pb).collect(),
        seen: c
            .seen
            .iter()
            .map(|&(fingerprint, at)| pb::SeenEvent {
                fingerprint,
                at_ms: at.0,
            })
            .collect(),
        version: SNAPSHOT_VERSION,
        contacts: c
            .more()
            .contacts
            .iter()
            .map(|k| pb::ContactSnapshot {
                at_ms: k.at.0,
                reference: k.reference.as_deref().map(String::from),
                channel: k.channel.to_string(),
                evidence: Some(pb::Evidence::from(&k.evidence.evidence())),
            })
            .collect(),
        expectations: c
            .more()
            .expectations
            .iter()
            .map(|x| pb::ExpectationSnapshot {
                key: x.key.to_string(),
                promise_type: x.promise_type().to_string(),
                made_at_ms: x.made_at().0,
                deadline_ms: x.deadline.0,
                fired: x.fired,
                evidence: Some(pb::Evidence::from(&x.evidence.evidence())),
                channel: x.channel.to_string(),
                touchpoint: x.touchpoint.to_string(),
                amount: x.amount,
                currency: x.currency.as_deref().map(String::from),
                cause: x.cause.map(|c| c.as_str().to_string()).unwrap_or_default(),
            })
            .collect(),
        fulfilments: c
            .more()
            .fulfilments
            .iter()
            .map(|f| pb::FulfilmentSnapshot {
                key_fingerprint: f.key_fp,
                type_fingerprint: f.type_fp,
                at_ms: f.at.0,
                failure: f.failure,
                evidence: Some(pb::Evidence::from(&f.evidence.evidence())),
            })
            .collect(),
        survey: c
            .closed_loop()
            .and_then(|l| l.survey)
            .map(|s| pb::SurveySnapshot {
                at_ms: s.at.0,
                score: s.score,
            }),
        recovered: c
            .closed_loop()
            .map(|l| l.recovered.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|r| pb::RecoveredSnapshot {
                task_fingerprint: r.task_fp,
                resolved_at_ms: r.resolved_at.0,
                channel: r.channel.to_string(),
                touchpoint: r.touchpoint.to_string(),
                failure_type: r.failure_type.as_deref().map(String::from),
                deviated: r.deviated,
            })
            .collect(),
    }
}

fn incident_to_pb(i: &Incident) -> pb::IncidentSnapshot {
    pb::IncidentSnapshot {
        task_id: i.task_id.clone(),
        key: i.key.to_string(),
        rule: i.rule.id().to_string(),
        revision: i.revision,
        status: i.status.as_str().to_string(),
        detected_at_ms: i.detected_at.0,
        last_failure_at_ms: i.last_failure_at.0,
        due_at_ms: i.due_at.0,
        severity: i.severity.as_str().to_string(),
        cause: i.cause.as_str().to_string(),
        failures: i.failures,
        failure_count: i.failure_count,
        channel: i.channel.to_string(),
        touchpoint: i.touchpoint.to_string(),
        event_type: i.event_type.to_string(),
        amount_at_stake: i.amount_at_stake,
        currency: i.currency.to_string(),
        evidence: i
            .evidence
            .iter()
            .map(|e| pb::Evidence::from(&e.evidence()))
            .collect(),
        priority_boost: u32::from(i.priority_boost),
        cascaded: i.cascaded,
        effort_signalled: i.effort_signalled,
        signal: i.signal.as_deref().map(String::from),
        opened_by: i.opened_by.id().to_string(),
        also: i.also.iter().map(|k| k.to_string()).collect(),
        fired_by: i
            .fired_by
            .map(|f| f.as_str().to_string())
            .unwrap_or_default(),
        unsettled: u32::from(i.unsettled),
        has_failures: i.has_failures,
        overdue: i.overdue,
        satisfaction_before: (!i.satisfaction_before.is_nan()).then_some(i.satisfaction_before),
        outcomes: i
            .outcomes
            .iter()
            .map(|o| pb::OutcomeSeenSnapshot {
                status: o.status.as_str().to_string(),
                at_ms: o.at.0,
                score: (!o.score.is_nan()).then_some(o.score),
            })
            .collect(),
    }
}

/// `path` prefixes field names in errors (`customers[3]`); empty for a standalone record.
fn customer_from_pb(
    c: pb::CustomerSnapshot,
    path: &str,
    syms: &mut Syms,
) -> Result<(Box<str>, CustomerState), SnapshotError> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    check_version(&field("version"), c.version)?;
    if c.customer_id.is_empty() {
        return Err(invalid(field("customer_id"), "empty"));
    }
    let incidents = c
        .incidents
        .into_iter()
        .enumerate()
        .map(|(n, i)| incident_from_pb(i, &field(&format!("incidents[{n}]")), syms))
        .collect::<Result<Vec<_>, _>>()?;
    let expectations = c
        .expectations
        .into_iter()
        .enumerate()
        .map(|(n, x)| {
            let cause = match x.cause.as_str() {
                "" => None,
                v => Some(Cause::parse(v).ok_or_else(|| {
                    invalid(
                        field(&format!("expectations[{n}].cause")),
                        format!("unknown value `{v}`"),
                    )
                })?),
            };
            Ok(crate::detect::state::Expectation {
                key: x.key.into(),
                deadline: EventTime(x.deadline_ms),
                fired: x.fired,
                evidence: Ev::from_evidence(Evidence::from(x.evidence.unwrap_or_default()), syms),
                channel: syms.get(&x.channel),
                touchpoint: syms.get(&x.touchpoint),
                amount: x.amount,
                currency: x.currency.map(|c| syms.get(&c)),
                cause,
            })
        })
        .collect::<Result<Vec<_>, SnapshotError>>()?;
    let more = crate::detect::state::More {
        incident_opens: c.incident_opens_ms.into_iter().map(EventTime).collect(),
        incidents: incidents.into(),
        contacts: c
            .contacts
            .into_iter()
            .map(|k| crate::detect::state::Contact {
                at: EventTime(k.at_ms),
                reference: k.reference.map(Box::from),
                channel: syms.get(&k.channel),
                evidence: Ev::from_evidence(Evidence::from(k.evidence.unwrap_or_default()), syms),
            })
            .collect(),
        expectations: expectations.into(),
        fulfilments: c
            .fulfilments
            .into_iter()
            .map(|f| crate::detect::state::Fulfilment {
                key_fp: f.key_fingerprint,
                type_fp: f.type_fingerprint,
                at: EventTime(f.at_ms),
                failure: f.failure,
                evidence: Ev::from_evidence(Evidence::from(f.evidence.unwrap_or_default()), syms),
            })
            .collect(),
        closed_loop: {
            let l = crate::detect::state::LoopState {
                survey: c.survey.map(|s| crate::detect::state::Survey {
                    at: EventTime(s.at_ms),
                    score: s.score,
                }),
                recovered: c
                    .recovered
                    .into_iter()
                    .map(|r| crate::detect::state::Recovered {
                        task_fp: r.task_fingerprint,
                        resolved_at: EventTime(r.resolved_at_ms),
                        channel: syms.get(&r.channel),
                        touchpoint: syms.get(&r.touchpoint),
                        failure_type: r.failure_type.map(|t| syms.get(&t)),
                        deviated: r.deviated,
                    })
                    .collect(),
            };
            (l != Default::default()).then(|| Box::new(l))
        },
    };
    let state = CustomerState::from_parts(
        EventTime(c.last_activity_ms),
        c.profile.map(|p| {
            super::state::Profile::new(
                &CustomerProfile {
                    since: p.since_ms.map(EventTime),
                    segment: p.segment.map(Box::from),
                    annual_value: p.annual_value,
                },
                syms,
            )
        }),
        c.seen
            .into_iter()
            .map(|s| (s.fingerprint, EventTime(s.at_ms)))
            .collect(),
        more,
    );
    Ok((c.customer_id.into(), state))
}

fn incident_from_pb(
    i: pb::IncidentSnapshot,
    path: &str,
    syms: &mut Syms,
) -> Result<Incident, SnapshotError> {
    let unknown = |name: &str, value: &str| {
        invalid(format!("{path}.{name}"), format!("unknown value `{value}`"))
    };
    let rule = Rule::ALL
        .into_iter()
        .find(|r| r.id() == i.rule)
        .ok_or_else(|| unknown("rule", &i.rule))?;
    let opened_by = if i.opened_by.is_empty() {
        rule
    } else {
        Rule::ALL
            .into_iter()
            .find(|r| r.id() == i.opened_by)
            .ok_or_else(|| unknown("opened_by", &i.opened_by))?
    };
    let status = status_from_str(&i.status).ok_or_else(|| unknown("status", &i.status))?;
    let severity = Severity::parse(&i.severity).ok_or_else(|| unknown("severity", &i.severity))?;
    let cause = Cause::parse(&i.cause).ok_or_else(|| unknown("cause", &i.cause))?;
    if i.task_id.is_empty() {
        return Err(invalid(format!("{path}.task_id"), "empty"));
    }
    Ok(Incident {
        task_id: i.task_id,
        key: i.key.into(),
        rule,
        opened_by,
        revision: i.revision,
        status,
        detected_at: EventTime(i.detected_at_ms),
        last_failure_at: EventTime(i.last_failure_at_ms),
        due_at: EventTime(i.due_at_ms),
        severity,
        cause,
        failures: i.failures,
        failure_count: i.failure_count,
        channel: syms.get(&i.channel),
        touchpoint: syms.get(&i.touchpoint),
        event_type: syms.get(&i.event_type),
        amount_at_stake: i.amount_at_stake,
        currency: syms.get(&i.currency),
        evidence: i
            .evidence
            .into_iter()
            .map(|e| Ev::from_evidence(Evidence::from(e), syms))
            .collect(),
        priority_boost: u8::try_from(i.priority_boost)
            .map_err(|_| invalid(format!("{path}.priority_boost"), "out of range"))?,
        cascaded: i.cascaded,
        effort_signalled: i.effort_signalled,
        signal: i.signal.map(Box::from),
        also: i.also.into_iter().map(Box::from).collect(),
        fired_by: match i.fired_by.as_str() {
            "" => None,
            v => Some(super::rules::FiredBy::parse(v).ok_or_else(|| unknown("fired_by", v))?),
        },
        unsettled: u8::try_from(i.unsettled)
            .map_err(|_| invalid(format!("{path}.unsettled"), "out of range"))?,
        has_failures: i.has_failures,
        overdue: i.overdue,
        satisfaction_before: i.satisfaction_before.unwrap_or(f32::NAN),
        outcomes: i
            .outcomes
            .into_iter()
            .enumerate()
            .map(|(n, o)| {
                Ok(crate::detect::state::OutcomeSeen {
                    at: EventTime(o.at_ms),
                    status: RecoveryStatus::parse(&o.status)
                        .ok_or_else(|| unknown(&format!("outcomes[{n}].status"), &o.status))?,
                    score: o.score.unwrap_or(f32::NAN),
                })
            })
            .collect::<Result<_, SnapshotError>>()?,
    })
}

fn status_from_str(s: &str) -> Option<TaskStatus> {
    [
        TaskStatus::Open,
        TaskStatus::Escalated,
        TaskStatus::Resolved,
        TaskStatus::Cancelled,
    ]
    .into_iter()
    .find(|t| t.as_str() == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decoder;
    use crate::detect::Output;
    use crate::domain::SourcePos;
    use crate::sim::{SimConfig, Simulator};
    use std::sync::Arc;

    /// Feeds `records[range]` to `engine` as the pipeline would (offset = index, `now` = the
    /// event time, an `advance` to the highest event time after each event).
    fn feed(
        engine: &mut Engine,
        decoder: &Decoder,
        records: &[(usize, Vec<u8>)],
        out: &mut Vec<Output>,
    ) {
        let topic: Arc<str> = Arc::from("touchpoints");
        for (offset, payload) in records {
            let Ok(e) = decoder.touchpoint(payload) else {
                continue;
            };
            let src = SourcePos {
                topic: topic.clone(),
                partition: 0,
                offset: *offset as i64,
            };
            engine.on_event(&e, &src, crate::detect::Clock::Event, false, out);
            let wm = engine.max_event_time();
            while engine.next_timer().is_some_and(|d| d < wm) {
                engine.fire_next(
                    crate::detect::Clock::Event,
                    crate::detect::FiredBy::EventTime,
                    out,
                );
            }
            engine.set_watermark(wm);
        }
    }

    fn day(customers: usize) -> Vec<(usize, Vec<u8>)> {
        Simulator::new(SimConfig {
            customers,
            ..SimConfig::default()
        })
        .records()
        .into_iter()
        .map(|r| r.payload)
        .enumerate()
        .collect()
    }

    /// Splits a simulated day at the middle, snapshots there, and runs the second half on
    /// the original and on the restored engine.
    /// Returns the snapshot taken at the split and the original engine at the end.
    fn split_day(config: &Config, customers: usize) -> (Vec<u8>, Engine) {
        let records = day(customers);
        let decoder = Decoder::new(config);
        let mid = records.len() / 2;
        let mut original = Engine::new(config);
        let mut first = Vec::new();
        feed(&mut original, &decoder, &records[..mid], &mut first);
        assert!(!first.is_empty(), "the first half opens tasks");

        let bytes = original.snapshot();
        let mut restored = Engine::restore(config, &bytes).unwrap();
        assert_eq!(
            restored.snapshot(),
            bytes,
            "snapshot -> restore -> snapshot"
        );
        assert_eq!(restored.stats(), original.stats());
        assert_eq!(restored.customers(), original.customers());

        let (mut a, mut b) = (Vec::new(), Vec::new());
        feed(&mut original, &decoder, &records[mid..], &mut a);
        feed(&mut restored, &decoder, &records[mid..], &mut b);
        assert!(!a.is_empty(), "the second half opens or escalates tasks");
        assert_eq!(a.len(), b.len());
        for (n, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "output {n} after the restore differs");
        }
        assert_eq!(original.stats(), restored.stats());
        assert_eq!(original.snapshot(), restored.snapshot(), "final state");
        (bytes, original)
    }

    #[test]
    fn restored_engine_continues_a_simulated_day_identically() {
        let config = Config::defaults();
        let (mid, end) = split_day(&config, 300);
        let mid_customers = Engine::restore(&config, &mid).unwrap().customers();
        let end_bytes = end.snapshot().len();
        eprintln!(
            "snapshot at mid-day: {mid_customers} customers, {} bytes, {} bytes/customer; \
             at the end of the day: {} customers, {end_bytes} bytes, {} bytes/customer",
            mid.len(),
            mid.len() / mid_customers.max(1),
            end.customers(),
            end_bytes / end.customers().max(1),
        );
    }

    #[test]
    fn restored_engine_continues_identically_while_state_expires() {
        // Short windows so that incidents, openings and seen events are pruned and whole
        // customers expire in the second half.
        let config = Config::from_toml_str(
            "[detect]\nincident_window = \"2h\"\nrepeat_window = \"3h\"\n\
             duplicate_horizon = \"1h\"\nstate_ttl = \"3h\"\n\
             effort_window = \"2h\"\ncascade_window = \"2h\"\nsuppression_period = \"1h\"\n\
             follow_up_period = \"2h\"\n\
             [[detect.expectations]]\nrule = \"missed_expectation\"\nwhen = \"order_placed\"\n\
             expect = [\"order_shipped\"]\nwithin = \"1h\"\nseverity = \"major\"\n\
             [[detect.expectations]]\nrule = \"slow_response\"\nwhen = \"ticket_opened\"\n\
             expect = [\"agent_replied\"]\nwithin = \"30m\"\nseverity = \"minor\"\n",
            "test",
            std::iter::empty(),
        )
        .unwrap();
        let (mid, end) = split_day(&config, 300);
        let mid = Engine::restore(&config, &mid).unwrap();
        assert!(
            end.stats().expired > mid.stats().expired,
            "customers expire after the restore: {:?}",
            end.stats()
        );
    }

    #[test]
    fn equal_states_give_equal_bytes() {
        // Two engines fed the same events have differently ordered maps.
        let config = Config::defaults();
        let records = day(50);
        let decoder = Decoder::new(&config);
        let (mut a, mut b) = (Engine::new(&config), Engine::new(&config));
        feed(&mut a, &decoder, &records, &mut Vec::new());
        feed(&mut b, &decoder, &records, &mut Vec::new());
        assert!(a.customers() > 1);
        assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn customers_snapshot_and_restore_one_at_a_time() {
        let config = Config::defaults();
        let records = day(50);
        let decoder = Decoder::new(&config);
        let mut original = Engine::new(&config);
        feed(&mut original, &decoder, &records, &mut Vec::new());
        let mut rebuilt = Engine::new(&config);
        let mut ids: Vec<std::sync::Arc<str>> = original.customers.keys().cloned().collect();
        ids.sort();
        for id in &ids {
            let bytes = customer_bytes(&original, id).unwrap();
            assert_eq!(&*rebuilt.restore_customer(&bytes).unwrap(), &**id);
        }
        assert!(customer_bytes(&original, "no-such-customer").is_none());
        // Customers are complete; engine-wide values are not part of a customer record.
        let (a, b) = (to_pb(&original), to_pb(&rebuilt));
        assert_eq!(a.customers, b.customers);
        assert!(a.customers.iter().any(|c| !c.incidents.is_empty()));
        assert_eq!(b.stats, Some(pb::EngineStatsSnapshot::default()));
    }

    #[test]
    fn a_newer_version_is_rejected() {
        let config = Config::defaults();
        let mut snap = to_pb(&Engine::new(&config));
        snap.version = SNAPSHOT_VERSION + 1;
        let err = restore(&config, &snap.encode_to_vec()).err().unwrap();
        assert!(
            matches!(
                err,
                SnapshotError::UnsupportedVersion { found, supported }
                    if found == SNAPSHOT_VERSION + 1 && supported == SNAPSHOT_VERSION
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer than the supported version"));

        let mut c = customer_to_pb("c-1", &CustomerState::default());
        c.version = SNAPSHOT_VERSION + 1;
        assert!(matches!(
            decode_customer(&c.encode_to_vec()),
            Err(SnapshotError::UnsupportedVersion { .. })
        ));
        // Inside an engine snapshot, too.
        let mut snap = to_pb(&Engine::new(&config));
        snap.customers.push(c);
        assert!(matches!(
            restore(&config, &snap.encode_to_vec()),
            Err(SnapshotError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn garbage_and_invalid_snapshots_are_rejected() {
        let config = Config::defaults();
        assert!(matches!(
            restore(&config, &[0xff; 16]),
            Err(SnapshotError::Decode(_))
        ));
        assert!(matches!(
            restore(&config, b"{\"customers\": []}"),
            Err(SnapshotError::Decode(_))
        ));
        // Empty bytes decode to an all-default message: no version.
        match restore(&config, &[]) {
            Err(SnapshotError::Invalid { field, .. }) => assert_eq!(field, "version"),
            other => panic!("{:?}", other.err()),
        }

        let mut c = customer_to_pb("c-1", &CustomerState::default());
        c.incidents.push(pb::IncidentSnapshot {
            task_id: "t-1".into(),
            rule: "breaking_point".into(),
            status: "open".into(),
            severity: "apocalyptic".into(),
            cause: "internal".into(),
            ..Default::default()
        });
        let mut snap = to_pb(&Engine::new(&config));
        snap.customers.push(c.clone());
        match restore(&config, &snap.encode_to_vec()) {
            Err(SnapshotError::Invalid { field, reason }) => {
                assert_eq!(field, "customers[0].incidents[0].severity");
                assert!(reason.contains("apocalyptic"));
            }
            other => panic!("{:?}", other.err()),
        }
        let mut snap = to_pb(&Engine::new(&config));
        snap.customers = vec![
            customer_to_pb("c-1", &CustomerState::default()),
            customer_to_pb("c-1", &CustomerState::default()),
        ];
        assert!(matches!(
            restore(&config, &snap.encode_to_vec()),
            Err(SnapshotError::Invalid { field, .. }) if field == "customers[1].customer_id"
        ));
    }
}

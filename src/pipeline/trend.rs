//! The trend stage's host side (design.md, "Scaling out"): what connects the pure `trend`
//! core to processors and records.
//!
//! - [`TrendFeed`] lives in a touch-point partition's `Processor`: applied events and opened
//!   tasks go into that partition's windows; when the watermark closes windows, their
//!   partial aggregates leave as records for `output.trend_partials`, keyed by dimension, and
//!   a `closed` marker per width goes to every partition of that topic.
//! - [`MergeStage`] lives in the `Processor` of a partials-topic partition: it merges every
//!   source's partials into snapshots (`output.trend_snapshots`, keyed by dimension), runs
//!   the alert lifecycle on each window's first snapshot (`output.trend_alerts`), and holds
//!   the commit of a partial until its window is finished, so a crash re-reads what an
//!   unfinished window needs.

use super::{InboundRecord, OutboundKind, OutboundRecord};
use crate::config::Config;
use crate::detect::rules::FailureSignal;
use crate::detect::{LoopKind, LoopMeasure};
use crate::domain::{EventTime, TouchpointEvent};
use crate::trend::alert::AlertStatus;
use crate::trend::{
    AlertConfig, Alerting, Fact, Merger, PartialRecord, PartitionTrends, Snapshot, WindowCounts,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A touch-point partition's windows.
pub(crate) struct TrendFeed {
    trends: PartitionTrends,
    /// `topic/partition`; `None` (the default) turns the feed off, e.g. for a processor that
    /// only reads recovery outcomes, or in tests of detection alone.
    source: Option<String>,
    topic: Arc<str>,
    partials: Vec<PartialRecord>,
}

impl TrendFeed {
    pub(crate) fn new(config: &Config) -> TrendFeed {
        TrendFeed {
            trends: PartitionTrends::new(
                config.trend.windows.iter().map(|w| w.millis()).collect(),
                config.detect.allowed_lateness.millis(),
            ),
            source: None,
            topic: Arc::from(config.output.trend_partials.as_str()),
            partials: Vec::new(),
        }
    }

    pub(crate) fn set_source(&mut self, source: String) {
        self.source = Some(source);
    }

    pub(crate) fn is_on(&self) -> bool {
        self.source.is_some()
    }

    /// An event the engine applied (not a duplicate, not late).
    pub(crate) fn event(&mut self, e: &TouchpointEvent, signal: Option<FailureSignal>) {
        if self.source.is_none() {
            return;
        }
        let segment = e.customer.as_ref().and_then(|c| c.segment.as_deref());
        self.trends.record(&Fact::Event {
            at: e.occurred_at,
            customer_id: &e.customer_id,
            channel: e.channel.as_str(),
            touchpoint: &e.touchpoint,
            segment,
            failure: signal.is_some(),
            event_type: &e.event_type,
        });
    }

    /// What the engine measured: a task opened, a recovery outcome, a double deviation.
    pub(crate) fn measure(&mut self, m: &LoopMeasure) {
        if self.source.is_none() {
            return;
        }
        let (at, channel, touchpoint) = (m.at, &*m.channel, m.touchpoint.as_str());
        let segment = m.segment.as_deref();
        let failure_type = m.failure_type.as_deref();
        let fact = match &m.kind {
            LoopKind::TaskOpened {
                rule,
                severity,
                value_at_risk,
            } => Fact::TaskOpened {
                at,
                channel,
                touchpoint,
                segment,
                failure_type,
                rule,
                severity: *severity,
                value_at_risk: *value_at_risk,
            },
            LoopKind::Outcome {
                status,
                double_deviation,
                paradox,
                time_to_recovery,
            } => Fact::Outcome {
                at,
                channel,
                touchpoint,
                segment,
                failure_type,
                status: *status,
                double_deviation: *double_deviation,
                paradox: *paradox,
                time_to_recovery: *time_to_recovery,
            },
            LoopKind::DoubleDeviation => Fact::DoubleDeviation {
                at,
                channel,
                touchpoint,
                segment,
                failure_type,
            },
        };
        self.trends.record(&fact);
    }

    /// Closes the windows the watermark passed (end + allowed lateness at or before it).
    pub(crate) fn close(&mut self, watermark: EventTime, out: &mut Vec<OutboundRecord>) {
        let mut partials = std::mem::take(&mut self.partials);
        self.close_into(watermark, &mut partials);
        for p in partials.drain(..) {
            let Ok(payload) = serde_json::to_vec(&p) else {
                continue;
            };
            let kind = match p {
                PartialRecord::Partial { .. } => OutboundKind::TrendPartial,
                // Every merger needs every source's markers: the sink sends it to each
                // partition of the topic, after this source's partials (same producer, so
                // per-partition order keeps the partials first).
                PartialRecord::Closed { .. } => OutboundKind::TrendClosed,
            };
            out.push(OutboundRecord {
                kind,
                topic: self.topic.clone(),
                key: Some(p.key().into_bytes()),
                payload,
                headers: Vec::new(),
            });
        }
        self.partials = partials;
    }

    /// Closes the windows the watermark passed, appending their partials and markers to
    /// `into` unencoded (for a processor that merges its own partials, see
    /// `Processor::with_local_merge`).
    pub(crate) fn close_into(&mut self, watermark: EventTime, into: &mut Vec<PartialRecord>) {
        let Some(source) = &self.source else { return };
        if watermark == EventTime::MIN {
            return;
        }
        self.trends.close_until(watermark, source, into);
    }

    pub(crate) fn open_windows(&self) -> usize {
        self.trends.open_windows()
    }

    /// The open windows, encoded for the changelog.
    pub(crate) fn snapshot_windows(&self) -> Result<Vec<u8>, serde_json::Error> {
        self.trends.snapshot()
    }

    /// Replaces the open windows with those of [`TrendFeed::snapshot_windows`].
    pub(crate) fn restore_windows(&mut self, bytes: &[u8]) -> Result<(), serde_json::Error> {
        self.trends = PartitionTrends::restore(bytes)?;
        Ok(())
    }
}

/// The alert settings of the trend core, from `[trend.alerts]`.
pub fn alert_config(config: &Config) -> AlertConfig {
    let a = &config.trend.alerts;
    let mut c = AlertConfig {
        ratio_threshold: a.ratio_threshold,
        min_failures: a.min_failures,
        min_events: a.min_events,
        significance: a.significance,
        mad_k: a.mad_k,
        for_windows: a.for_windows,
        keep_firing_for_windows: a.keep_firing_for_windows,
        baseline_floor: a.baseline_floor,
        ..AlertConfig::default()
    };
    c.baseline.recent_windows = a.recent_windows;
    c.baseline.min_history = a.min_history;
    c.baseline.min_events_for_baseline = a.min_events_for_baseline;
    c.baseline.seasonal_weeks = a.seasonal_weeks;
    c.baseline.daily_days = a.daily_days;
    c.baseline.daily_min_days = a.daily_min_days;
    c.baseline.require_seasonal = a.require_seasonal;
    c
}

/// A partials-topic partition: the merge, the alerts, and which records it still needs.
pub(crate) struct MergeStage {
    merger: Merger,
    alerting: Alerting,
    snapshots_topic: Arc<str>,
    alerts_topic: Arc<str>,
    /// Offsets of partials whose window is not finished, by (width, start).
    held: BTreeMap<(i64, i64), Vec<i64>>,
    /// The offset of each source's latest marker, by (source, width). A marker is needed
    /// until the source's next one (which implies it), so that a restart re-reads, for
    /// every source, what closes the windows still pending.
    markers: BTreeMap<(String, i64), i64>,
    /// The baseline each recent window was judged against, by snapshot id, so that a later
    /// revision of the window reports the same one (bounded: oldest forgotten first).
    judged: BTreeMap<String, serde_json::Value>,
    judged_order: std::collections::VecDeque<String>,
    snaps: Vec<Snapshot>,
    /// The merger's time-driven work runs at most once per `TICK_EVERY_MS` of `now`: it
    /// visits every window kept, and the caller ticks after every input.
    next_tick_ms: i64,
}

/// How often the merge's time-driven work (incomplete snapshots after `trend.complete_wait`,
/// abandonment, eviction) runs at most.
const TICK_EVERY_MS: i64 = 1_000;

/// Windows whose baseline is remembered for later revisions.
const JUDGED_MAX: usize = 20_000;

impl MergeStage {
    pub(crate) fn new(config: &Config, expected_sources: usize) -> MergeStage {
        MergeStage {
            merger: Merger::new(expected_sources, config.trend.complete_wait.millis()),
            alerting: Alerting::new(alert_config(config)),
            snapshots_topic: Arc::from(config.output.trend_snapshots.as_str()),
            alerts_topic: Arc::from(config.output.trend_alerts.as_str()),
            held: BTreeMap::new(),
            markers: BTreeMap::new(),
            judged: BTreeMap::new(),
            judged_order: std::collections::VecDeque::new(),
            snaps: Vec::new(),
            next_tick_ms: i64::MIN,
        }
    }

    pub(crate) fn set_expected_sources(&mut self, n: usize) {
        self.merger.set_expected_sources(n);
        // Windows may be complete now: look at the next tick.
        self.next_tick_ms = i64::MIN;
    }

    /// Takes a decoded partials record at `offset`; appends snapshots and alerts to `out`
    /// and the offsets no longer needed to `released`.
    pub(crate) fn add(
        &mut self,
        rec: PartialRecord,
        offset: i64,
        now_wall: EventTime,
        out: &mut Vec<OutboundRecord>,
        released: &mut Vec<i64>,
    ) {
        let window = match &rec {
            PartialRecord::Partial {
                width_ms, start_ms, ..
            } => Some((*width_ms, *start_ms)),
            PartialRecord::Closed {
                source, width_ms, ..
            } => {
                let earlier = self.markers.insert((source.clone(), *width_ms), offset);
                released.extend(earlier);
                None
            }
        };
        self.merger.add(rec, now_wall, &mut self.snaps);
        if let Some(w) = window {
            if self.merger.is_pending(w.0, w.1) {
                self.held.entry(w).or_default().push(offset);
            } else {
                released.push(offset);
            }
        }
        self.publish(out, released);
    }

    /// Time-driven work: windows that waited `trend.complete_wait` go out incomplete.
    pub(crate) fn tick(
        &mut self,
        now_wall: EventTime,
        out: &mut Vec<OutboundRecord>,
        released: &mut Vec<i64>,
    ) {
        if now_wall.0 < self.next_tick_ms {
            return;
        }
        self.next_tick_ms = now_wall.0.saturating_add(TICK_EVERY_MS);
        self.merger.tick(now_wall, &mut self.snaps);
        self.publish(out, released);
    }

    /// Evaluates and encodes the snapshots emitted, then releases the partials of windows
    /// that are finished.
    fn publish(&mut self, out: &mut Vec<OutboundRecord>, released: &mut Vec<i64>) {
        for mut s in self.snaps.drain(..) {
            // Each window is judged once, on its first snapshot: a later revision (more
            // sources, a late update) must not move the baseline or the alert again.
            if s.revision == 1 {
                let key = s.dimension.key();
                let counts = WindowCounts {
                    dimension: &key,
                    width: crate::domain::Millis(s.window_seconds * 1000),
                    start: EventTime::parse(&s.window_start).unwrap_or(EventTime(0)),
                    events: s.events,
                    failures: s.failures,
                };
                let (eval, alert) = self.alerting.evaluate(&counts);
                s.baseline = serde_json::to_value(&eval).ok();
                if let Some(b) = &s.baseline {
                    if self
                        .judged
                        .insert(s.snapshot_id.clone(), b.clone())
                        .is_none()
                    {
                        self.judged_order.push_back(s.snapshot_id.clone());
                        if self.judged_order.len() > JUDGED_MAX {
                            if let Some(old) = self.judged_order.pop_front() {
                                self.judged.remove(&old);
                            }
                        }
                    }
                }
                if let Some(a) = alert {
                    if let Ok(payload) = serde_json::to_vec(&a) {
                        out.push(OutboundRecord {
                            kind: OutboundKind::TrendAlert,
                            topic: self.alerts_topic.clone(),
                            key: Some(key.clone().into_bytes()),
                            headers: vec![
                                ("amends.alert_id".into(), a.alert_id.clone().into_bytes()),
                                (
                                    "amends.status".into(),
                                    match a.status {
                                        AlertStatus::Firing => b"firing".to_vec(),
                                        AlertStatus::Resolved => b"resolved".to_vec(),
                                    },
                                ),
                            ],
                            payload,
                        });
                    }
                }
            }
            if s.revision > 1 {
                s.baseline = self.judged.get(&s.snapshot_id).cloned();
            }
            if let Ok(payload) = serde_json::to_vec(&s) {
                out.push(OutboundRecord {
                    kind: OutboundKind::TrendSnapshot,
                    topic: self.snapshots_topic.clone(),
                    key: Some(s.dimension.key().into_bytes()),
                    headers: vec![(
                        "amends.snapshot_id".into(),
                        s.snapshot_id.clone().into_bytes(),
                    )],
                    payload,
                });
            }
        }
        let merger = &self.merger;
        self.held.retain(|w, offsets| {
            if merger.is_pending(w.0, w.1) {
                true
            } else {
                released.append(offsets);
                false
            }
        });
    }

    pub(crate) fn pending_windows(&self) -> usize {
        self.merger.pending_windows()
    }
}

/// The partials record inside an inbound record, or why it is not one.
pub(crate) fn decode_partial(rec: &InboundRecord) -> Result<PartialRecord, String> {
    let payload = rec
        .payload
        .as_deref()
        .ok_or_else(|| "record has no payload (tombstone)".to_string())?;
    serde_json::from_slice(payload).map_err(|e| format!("not a trend partial: {e}"))
}

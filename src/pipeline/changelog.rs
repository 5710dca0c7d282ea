//! A partition's state as changelog records, and back (design.md, "State, offsets and
//! delivery"; the record layout is in `proto/amends/v1/state.proto`).
//!
//! The changelog is compacted, so it needs only each key's latest value: a customer's whole
//! state under their id (a tombstone once they leave the state), and the partition's
//! [`CHECKPOINT_KEY`] record with the engine's clocks and counters, the open trend windows
//! and how far into each input partition the state goes. A checkpoint writes the customers
//! changed since the previous one, then that record. Nothing here talks to Kafka: the worker
//! sends the records (`kafka::worker`) and the restore reads them (`kafka::restore`).
//!
//! Restoring applies the records in offset order (a later value of a key replaces an earlier
//! one, a tombstone removes it), so a compacted or uncompacted changelog gives the same
//! state.

use super::Processor;
use crate::detect::snapshot::{self, SnapshotError};
use crate::domain::EventTime;
use crate::pb;
use prost::Message;
use std::sync::Arc;

/// The key of a partition's checkpoint record: not UTF-8, so no customer id can equal it.
pub const CHECKPOINT_KEY: &[u8] = b"\xFFcheckpoint";

/// One changelog record: a key and its value, `None` for a tombstone.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRecord {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog record at offset {offset}: {source}")]
    Snapshot {
        offset: i64,
        #[source]
        source: SnapshotError,
    },
    #[error("changelog record at offset {offset}: {detail}")]
    Invalid { offset: i64, detail: String },
    #[error("checkpoint record: {0}")]
    Checkpoint(SnapshotError),
    #[error("checkpoint record: trend windows: {0}")]
    Trends(#[from] serde_json::Error),
}

/// What the checkpoint record of a restored changelog said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub sequence: u64,
    pub written_at_ms: i64,
    /// Per input topic, the first record not yet in the state.
    pub inputs: Vec<(String, i64)>,
}

impl CheckpointInfo {
    /// Where the state ends in `topic`: records from here on are not in it.
    pub fn next_offset(&self, topic: &str) -> Option<i64> {
        self.inputs
            .iter()
            .find(|(t, _)| t == topic)
            .map(|&(_, o)| o)
    }
}

impl Processor {
    /// From now on, notes which customers change, for [`Processor::checkpoint`].
    pub fn track_changes(&mut self) {
        self.engine.track_changes();
    }

    /// The records that bring the changelog from the previous checkpoint to this processor's
    /// state: each customer changed since (their snapshot, or a tombstone if they left), then
    /// the checkpoint record. `inputs`: per input topic, the first record not yet applied;
    /// `sequence` counts this partition's checkpoints. Empty when nothing changed since the
    /// previous checkpoint: no customer, and nothing the checkpoint record holds (clocks,
    /// counters, trend windows, which also change with time alone, and input positions).
    pub fn checkpoint(
        &mut self,
        inputs: &[(Arc<str>, i64)],
        sequence: u64,
        written_at_ms: i64,
    ) -> Result<Vec<StateRecord>, ChangelogError> {
        let changed = self.engine.take_changes();
        let mut records = Vec::with_capacity(changed.len() + 1);
        for id in changed {
            records.push(StateRecord {
                value: snapshot::customer_bytes(&self.engine, &id),
                key: id.as_bytes().to_vec(),
            });
        }
        let mut cp = snapshot::checkpoint_fields(&self.engine);
        cp.received_max_ms = self.received_max.0;
        cp.trends_json = self.trend.snapshot_windows()?;
        cp.inputs = inputs
            .iter()
            .map(|(t, o)| pb::InputPosition {
                topic: t.to_string(),
                next_offset: *o,
            })
            .collect();
        // The watermark alone moving (the wall clock, while the partitions are idle) is no
        // reason to write: a restored watermark behind the instance's is moved on at once.
        let watermark = cp.watermark_ms.take();
        let content = cp.encode_to_vec();
        cp.watermark_ms = watermark;
        if records.is_empty() && self.last_checkpoint.as_deref() == Some(&content[..]) {
            return Ok(Vec::new());
        }
        self.last_checkpoint = Some(content);
        cp.written_at_ms = written_at_ms;
        cp.sequence = sequence;
        records.push(StateRecord {
            key: CHECKPOINT_KEY.to_vec(),
            value: Some(cp.encode_to_vec()),
        });
        Ok(records)
    }
}

/// Builds a partition's state from its changelog, one record at a time in offset order.
pub struct Restorer {
    processor: Processor,
    checkpoint: Option<pb::PartitionCheckpoint>,
    records: u64,
}

impl Restorer {
    /// Starts from `processor`, a fresh processor set up for the partition.
    pub fn new(processor: Processor) -> Restorer {
        Restorer {
            processor,
            checkpoint: None,
            records: 0,
        }
    }

    /// Applies the changelog record at `offset`.
    pub fn apply(
        &mut self,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), ChangelogError> {
        self.records += 1;
        let Some(key) = key else {
            return Err(ChangelogError::Invalid {
                offset,
                detail: "no key".into(),
            });
        };
        if key == CHECKPOINT_KEY {
            // Only the latest counts; it is applied at the end.
            self.checkpoint = value
                .map(pb::PartitionCheckpoint::decode)
                .transpose()
                .map_err(|e| ChangelogError::Snapshot {
                    offset,
                    source: e.into(),
                })?;
            return Ok(());
        }
        let Ok(id) = std::str::from_utf8(key) else {
            return Err(ChangelogError::Invalid {
                offset,
                detail: "key is neither a customer id (UTF-8) nor the checkpoint key".into(),
            });
        };
        match value {
            None => snapshot::forget_customer(&mut self.processor.engine, id),
            Some(v) => {
                let restored = snapshot::restore_customer(&mut self.processor.engine, v)
                    .map_err(|source| ChangelogError::Snapshot { offset, source })?;
                if &*restored != id {
                    return Err(ChangelogError::Invalid {
                        offset,
                        detail: "the state's customer_id differs from the record's key".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Records applied so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The restored processor, and what its checkpoint said (`None`: the changelog held no
    /// checkpoint, so the state is empty or incomplete and must not be used alone).
    pub fn finish(self) -> Result<(Processor, Option<CheckpointInfo>), ChangelogError> {
        let mut p = self.processor;
        let Some(cp) = self.checkpoint else {
            return Ok((p, None));
        };
        snapshot::restore_checkpoint_fields(&mut p.engine, &cp)
            .map_err(ChangelogError::Checkpoint)?;
        p.received_max = EventTime(cp.received_max_ms).max(p.received_max);
        if !cp.trends_json.is_empty() {
            p.trend.restore_windows(&cp.trends_json)?;
        }
        let info = CheckpointInfo {
            sequence: cp.sequence,
            written_at_ms: cp.written_at_ms,
            inputs: cp
                .inputs
                .into_iter()
                .map(|i| (i.topic, i.next_offset))
                .collect(),
        };
        Ok((p, Some(info)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Dur};
    use crate::pipeline::{InboundRecord, OutboundKind, OutboundRecord};
    use crate::sim::{SimConfig, Simulator};
    use std::collections::BTreeMap;

    fn config() -> Config {
        let mut c = Config::defaults();
        // Small enough that customers leave the state both ways (tombstones).
        c.detect.max_customers = 200;
        c.detect.state_ttl = Dur::hours(4);
        c
    }

    fn processor(c: &Config) -> Processor {
        let mut p = Processor::new(c).with_event_clock();
        p.set_trend_source("touchpoints/0".into());
        p
    }

    fn input(offset: usize, key: &[u8], payload: &[u8]) -> InboundRecord {
        InboundRecord {
            topic: Arc::from("touchpoints"),
            partition: 0,
            offset: offset as i64,
            key: Some(key.to_vec()),
            payload: Some(payload.to_vec()),
            timestamp_ms: None,
        }
    }

    /// Task revisions as (task id, revision, bytes), sorted.
    fn tasks(out: &[OutboundRecord]) -> Vec<(String, String, Vec<u8>)> {
        let mut v: Vec<_> = out
            .iter()
            .filter(|o| o.kind == OutboundKind::Task)
            .map(|o| {
                (
                    super::super::header(o, "amends.task_id")
                        .unwrap()
                        .to_string(),
                    super::super::header(o, "amends.revision")
                        .unwrap_or("")
                        .to_string(),
                    o.payload.clone(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn restore(c: &Config, log: &[StateRecord]) -> (Processor, CheckpointInfo) {
        let mut r = Restorer::new(processor(c));
        for (i, rec) in log.iter().enumerate() {
            r.apply(i as i64, Some(&rec.key), rec.value.as_deref())
                .expect("applies");
        }
        let (p, info) = r.finish().expect("restores");
        (p, info.expect("a checkpoint was written"))
    }

    /// A processor restored from the changelog its twin wrote holds the twin's state, and
    /// fed the input from the checkpoint's position on, it makes exactly the task revisions
    /// the twin makes: whether the changelog was compacted or not.
    #[test]
    fn the_changelog_restores_the_state_the_checkpoints_wrote() {
        let c = config();
        let sim = Simulator::new(SimConfig {
            customers: 400,
            duration: crate::domain::Millis::from_hours(72),
            ..SimConfig::default()
        });
        let recs = sim.records();
        let cut = recs.len() * 2 / 3;
        let mut a = processor(&c);
        a.track_changes();
        let mut log = Vec::new();
        let mut out = Vec::new();
        let mut seq = 0;
        let frontier = |p: &Processor, next: usize| {
            let first = p.buffered_offsets().first().copied();
            first.unwrap_or(next as i64).min(next as i64)
        };
        for (i, r) in recs[..cut].iter().enumerate() {
            a.process(&input(i, &r.key, &r.payload), EventTime(0), &mut out);
            if i % 157 == 0 {
                seq += 1;
                let at = frontier(&a, i + 1);
                log.extend(
                    a.checkpoint(&[(Arc::from("touchpoints"), at)], seq, 0)
                        .unwrap(),
                );
            }
        }
        let at = frontier(&a, cut);
        log.extend(
            a.checkpoint(&[(Arc::from("touchpoints"), at)], seq + 1, 7)
                .unwrap(),
        );
        assert!(
            log.iter().any(|r| r.value.is_none()),
            "customers left the state: tombstones"
        );
        let st = a.engine().stats();
        assert!(st.evicted > 0 && st.expired > 0, "{st:?}");
        // Compaction keeps each key's latest record.
        let mut latest = BTreeMap::new();
        for r in &log {
            latest.insert(r.key.clone(), r.clone());
        }
        let compacted: Vec<StateRecord> = latest.into_values().collect();
        assert!(compacted.len() < log.len());
        let state_at_cut = a.engine().snapshot();
        let customers_at_cut = a.engine().customers();
        let windows_at_cut = a.trend.snapshot_windows().unwrap();
        let received_at_cut = a.received_max();

        out.clear();
        for (i, r) in recs.iter().enumerate().skip(cut) {
            a.process(&input(i, &r.key, &r.payload), EventTime(0), &mut out);
        }
        a.flush(EventTime(0), &mut out);
        let expected = tasks(&out);
        assert!(expected.len() > 20, "{}", expected.len());

        for log in [&log[..], &compacted[..]] {
            let (mut b, info) = restore(&c, log);
            assert_eq!(
                info,
                CheckpointInfo {
                    sequence: seq + 1,
                    written_at_ms: 7,
                    inputs: vec![("touchpoints".into(), at)],
                }
            );
            // The engine's whole state (compared as bytes: the encoding is deterministic).
            assert!(
                b.engine().snapshot() == state_at_cut,
                "restored state differs: {} customers against {}",
                b.engine().customers(),
                customers_at_cut
            );
            assert_eq!(b.trend.snapshot_windows().unwrap(), windows_at_cut);
            assert_eq!(b.received_max(), received_at_cut);
            let mut out = Vec::new();
            for (i, r) in recs.iter().enumerate().skip(at as usize) {
                b.process(&input(i, &r.key, &r.payload), EventTime(0), &mut out);
            }
            b.flush(EventTime(0), &mut out);
            assert_eq!(tasks(&out), expected);
        }
    }
}

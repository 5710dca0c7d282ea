//! Rebuilding a partition's detection state when it is assigned.
//!
//! An instance that takes over a partition (after a restart, a crash or a rebalance) resumes
//! from the group's committed offset, so it needs the customers' state at that offset.
//!
//! - With `pipeline.restore = "changelog"` (the default) the state is read from the
//!   partition's changelog partition (`pipeline::changelog`): every customer's latest
//!   snapshot and the last checkpoint. The worker only commits offsets up to its last
//!   acknowledged checkpoint, so the checkpoint is at or past the committed offset, and
//!   nothing is left to replay. (If it is behind, say after a run with
//!   `restore = "input"`, the input between the two is replayed on top.)
//! - Otherwise, or while the changelog holds no checkpoint for the partition, the state is
//!   rebuilt by replaying the partition's own input up to the committed offset through the
//!   same `Processor`, outputs discarded, starting at most `pipeline.restore_max_records`
//!   before it.
//!
//! Processing is deterministic, so either way the state equals the state the previous owner
//! had, and the next task is the revision an uninterrupted run would have produced, not a
//! second task for the same incident. Records applied to the state and consumed again are
//! recognised by their event id (or task id and status, for outcomes) and ignored.
//!
//! Meanwhile the partition's records wait in its worker's bounded queue (the group consumer's
//! position is left alone, so nothing can be skipped), and `/readyz` reports not ready.

use super::client::restore_config;
use crate::config::{Config, Restore};
use crate::domain::EventTime;
use crate::pipeline::changelog::{CheckpointInfo, Restorer};
use crate::pipeline::{InboundRecord, Processor};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("restore reader: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "changelog partition {partition}: {source} (fix or delete the changelog topic's \
         records, or set pipeline.restore = \"input\" to rebuild from input instead)"
    )]
    Changelog {
        partition: i32,
        #[source]
        source: crate::pipeline::changelog::ChangelogError,
    },
    #[error("no input arrived for {0} s while replaying up to offset {1}")]
    Stalled(u64, i64),
}

/// What a restore did, for logs and metrics.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub from: i64,
    pub to: i64,
    /// The group's committed offset the state was rebuilt up to; `None` when the group had
    /// none (consumption then starts per `auto.offset.reset`).
    pub committed: Option<i64>,
    /// Input records replayed.
    pub records: u64,
    /// Changelog records read (0 when the state was not read from the changelog).
    pub changelog_records: u64,
    /// What the changelog's last checkpoint said, if the state came from it.
    pub checkpoint: Option<CheckpointInfo>,
    /// The changelog offset read up to (its end, or the limit given).
    pub changelog_end: Option<i64>,
    pub elapsed: Duration,
}

/// Is `topic` the first touch-point topic, whose partitions' workers hold the customers'
/// state (the other input topics' partitions are routed to them) and are the trend sources?
pub fn is_home_topic(config: &Config, topic: &str) -> bool {
    config
        .input
        .touchpoints
        .topics
        .first()
        .is_some_and(|t| *t == topic)
}

/// Does this partition's worker keep its state in the changelog? Those of the first
/// touch-point topic do; partials partitions rebuild from the partials topic, which is their
/// log.
pub fn uses_changelog(config: &Config, topic: &str) -> bool {
    config.pipeline.restore == Restore::Changelog && is_home_topic(config, topic)
}

/// Rebuilds the partition's state: from the changelog if it [`uses_changelog`] and holds a
/// checkpoint, then by replaying input up to the committed offset. `changelog_until`: read
/// the changelog only below this offset (exactly-once rewinds to the state this instance last
/// committed: a read_committed reader stops there anyway once the transaction after it is
/// aborted, but a broker that does not hide aborted transactions, such as the mock cluster,
/// would hand the aborted records over too).
pub fn rebuild(
    config: &Config,
    topic: &Arc<str>,
    partition: i32,
    trend_sources: usize,
    changelog_until: Option<i64>,
) -> Result<(Processor, Restored), RestoreError> {
    let started = Instant::now();
    // Its own watermark, with timers: the state must be the one the previous owner had, and
    // it fired every timer due before the last event replayed here, in event-time order with
    // the events. Their outputs are discarded, which loses nothing: a timer due at `d` fires
    // only once the watermark passes `d`, and a replayed record with an event after `d` was
    // applied after the timer fired; its offset being below the committed one means the
    // timer's outputs, which held the commit at or below that record, were acknowledged.
    // Timers due at or after the last replayed event stay pending; the worker fires them with
    // the instance's watermark (possibly a second time, with the same task id and revision).
    // Trend windows are rebuilt too, and partials partitions rebuild their merge and alert
    // baselines. Windows the replay closes were closed, and their partials acknowledged, by
    // the previous owner, by the same argument as for timers.
    let fresh = || {
        let mut p = Processor::new(config);
        super::worker::configure_trends(&mut p, config, &(topic.clone(), partition), trend_sources);
        p
    };
    let mut processor = fresh();
    let mut changelog_records = 0;
    let mut checkpoint = None;
    let mut changelog_end = None;
    if uses_changelog(config, topic) {
        let (p, info, n, end) = read_changelog(config, partition, &fresh, changelog_until)?;
        processor = p;
        changelog_records = n;
        checkpoint = info;
        changelog_end = Some(end);
    }
    // Where the replay of a topic starts: where the checkpoint's state ends, or (without one,
    // or for a topic it does not name: nothing of it was ever applied) at most
    // `restore_max_records` before the committed offset.
    let start = |t: &str| checkpoint.as_ref().and_then(|c| c.next_offset(t));
    // The worker of the first touch-point topic's partition also reads the same partition of
    // every other input topic (see `consumer::Router`): those are replayed too, each up to its
    // own committed offset, merged by record timestamp, which approximates the order the
    // previous owner received them in (the reorder buffer then orders them by event time).
    let mut readers = vec![Reader::open(config, topic, partition, start(topic))?];
    let input = &config.input;
    for t in input
        .touchpoints
        .topics
        .iter()
        .chain(&input.recovery_outcomes.topics)
    {
        let tp = (Arc::from(t.as_str()), partition);
        if super::consumer::home_of(config, &tp).is_some_and(|home| *home.0 == **topic) {
            readers.push(Reader::open(config, &tp.0, partition, start(&tp.0))?);
        }
    }
    let mut done = Restored {
        from: readers[0].from,
        to: readers[0].committed.max(readers[0].from),
        committed: (readers[0].committed >= 0).then_some(readers[0].committed),
        changelog_records,
        checkpoint,
        changelog_end,
        ..Restored::default()
    };
    let mut out = Vec::new();
    loop {
        for r in &mut readers {
            r.fill()?;
        }
        // The earliest head by timestamp (records without one first), the touch points on ties.
        let Some(next) = readers
            .iter_mut()
            .filter(|r| r.head.is_some())
            .min_by_key(|r| r.head.as_ref().map(|h| h.timestamp_ms.unwrap_or(i64::MIN)))
        else {
            break;
        };
        let rec = next.head.take().expect("filtered on it");
        out.clear();
        // The wall clock only stamps the discarded outputs and starts the merge's wait for
        // windows still pending.
        processor.process(&rec, EventTime(super::sink::now_ms()), &mut out);
        done.records += 1;
    }
    // Every record before the committed offset had been applied by the previous owner.
    // Flushing moves time to the last event replayed (closing trend windows and firing timers
    // with their outputs discarded), so only when input was replayed: a state read from the
    // changelog alone is exactly the previous owner's, windows still open included, and those
    // must close (and report their partials) in the service.
    if done.records > 0 {
        processor.flush(EventTime(super::sink::now_ms()), &mut out);
    }
    done.elapsed = started.elapsed();
    Ok((processor, done))
}

/// Reads one partition from where its replay starts up to the group's committed offset.
struct Reader {
    consumer: Option<BaseConsumer>,
    topic: Arc<str>,
    partition: i32,
    from: i64,
    /// The group's committed offset, -1 when none.
    committed: i64,
    /// The next record, read but not yet replayed.
    head: Option<InboundRecord>,
}

/// Reads the partition's changelog partition to its end (or to `until`) into a `fresh()`
/// processor. Returns the processor, the last checkpoint (`None`: there was none, and the
/// processor is a fresh one, since customers without a checkpoint are an incomplete state),
/// the records read, and the offset read up to.
fn read_changelog(
    config: &Config,
    partition: i32,
    fresh: &dyn Fn() -> Processor,
    until: Option<i64>,
) -> Result<(Processor, Option<CheckpointInfo>, u64, i64), RestoreError> {
    let topic = config.output.changelog.as_str();
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = restore_config(config, false).create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let high = until.map_or(high, |u| u.min(high));
    if high <= low {
        return Ok((fresh(), None, 0, high));
    }
    let mut assign = TopicPartitionList::new();
    assign.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&assign)?;
    let mut restorer = Restorer::new(fresh());
    let stall = Duration::from_secs(30);
    let mut last_progress = Instant::now();
    let mut next = low;
    // When the fetcher last said it reached the end while `next` was still below `high`.
    let mut eof_below_high: Option<Instant> = None;
    while next < high {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() >= high => break,
            Some(Ok(m)) => {
                last_progress = Instant::now();
                eof_below_high = None;
                next = m.offset() + 1;
                restorer
                    .apply(m.offset(), m.key(), m.payload())
                    .map_err(|source| RestoreError::Changelog { partition, source })?;
            }
            // The last offsets need not hold a record the reader sees: an exactly-once
            // changelog ends with a transaction marker, and compaction can remove records.
            // So the end is where the consumer's position reaches `high`. An end-of-partition
            // event below it (a fetch that has not caught up yet) does not end the read;
            // only 2 s without another record after it does.
            Some(Err(KafkaError::PartitionEOF(_))) => {
                let position = consumer
                    .position()?
                    .find_partition(topic, partition)
                    .and_then(|e| e.offset().to_raw());
                if position.is_some_and(|p| p >= high) {
                    break;
                }
                eof_below_high.get_or_insert_with(Instant::now);
            }
            Some(Err(e)) => return Err(e.into()),
            None if eof_below_high.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) => {
                tracing::debug!(
                    topic,
                    partition,
                    next,
                    high,
                    "changelog read to the end the broker reports"
                );
                break;
            }
            None if last_progress.elapsed() > stall => {
                return Err(RestoreError::Stalled(stall.as_secs(), high))
            }
            None => {}
        }
    }
    let n = restorer.records();
    let (p, info) = restorer
        .finish()
        .map_err(|source| RestoreError::Changelog { partition, source })?;
    if info.is_none() {
        // Customers but no checkpoint: a first checkpoint cut short. Start over from input.
        tracing::warn!(
            topic,
            partition,
            records = n,
            "changelog partition has no checkpoint record; rebuilding the state from input"
        );
        drop(p);
        return Ok((fresh(), None, n, high));
    }
    Ok((p, info, n, high))
}

impl Reader {
    /// Opens the partition for replay from `from` (`None`: at most `restore_max_records`
    /// before the committed offset) up to the group's committed offset.
    fn open(
        config: &Config,
        topic: &Arc<str>,
        partition: i32,
        from: Option<i64>,
    ) -> Result<Reader, RestoreError> {
        let timeout = Duration::from_secs(10);
        let committed = {
            let offsets: BaseConsumer = restore_config(config, true).create()?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            offsets
                .committed_offsets(tpl, timeout)?
                .find_partition(topic, partition)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(-1)
        };
        let consumer: BaseConsumer = restore_config(config, false).create()?;
        let (low, _high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let max_records = config.pipeline.restore_max_records as i64;
        let from = match from {
            Some(f) if f < low && f < committed => {
                tracing::warn!(%topic, partition, checkpoint = f, low, "input after the changelog's checkpoint was deleted by retention before it was replayed; the state misses it");
                low
            }
            Some(f) => f,
            None => low.max(committed.saturating_sub(max_records)),
        };
        let consumer = if committed > from {
            let mut assign = TopicPartitionList::new();
            assign.add_partition_offset(topic, partition, Offset::Offset(from))?;
            consumer.assign(&assign)?;
            Some(consumer)
        } else {
            None
        };
        Ok(Reader {
            consumer,
            topic: topic.clone(),
            partition,
            from,
            committed,
            head: None,
        })
    }

    /// Reads the next record into `head` unless it holds one or the range is done.
    fn fill(&mut self) -> Result<(), RestoreError> {
        if self.head.is_some() {
            return Ok(());
        }
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        let stall = Duration::from_secs(30);
        let last_progress = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    if m.offset() >= self.committed {
                        self.consumer = None;
                        return Ok(());
                    }
                    self.head = Some(InboundRecord {
                        topic: self.topic.clone(),
                        partition: self.partition,
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        timestamp_ms: m.timestamp().to_millis(),
                    });
                    if m.offset() + 1 >= self.committed {
                        // The last one: nothing more to read.
                        drop(m);
                        self.consumer = None;
                    }
                    return Ok(());
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    self.consumer = None;
                    return Ok(());
                }
                Some(Err(e)) => return Err(e.into()),
                None if last_progress.elapsed() > stall => {
                    return Err(RestoreError::Stalled(stall.as_secs(), self.committed))
                }
                None => {}
            }
        }
    }
}

//! One worker task per assigned input partition. It owns that partition's engine state,
//! processes records in offset order, keeps at most `pipeline.max_in_flight` records whose
//! outputs await acknowledgement, and publishes the next offset to commit once every output
//! of every earlier record is acknowledged.

use super::sink::{now_ms, KafkaSink};
use super::PipelineError;
use crate::config::Config;
use crate::domain::EventTime;
use crate::pipeline::{InboundRecord, Processed, Processor};
use crate::telemetry::events::{DeadLettered, EventDecoded};
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub(crate) type TopicPartition = (Arc<str>, i32);

/// A partition's rebuilt state and the committed offset it was rebuilt up to.
pub(crate) type RestoredState = Box<(Processor, Option<i64>)>;

pub(crate) enum WorkerMsg {
    Record(InboundRecord),
    /// Finish everything in flight, publish the final offset, acknowledge, and stop.
    Drain(std::sync::mpsc::SyncSender<()>),
}

/// Next offsets to commit, per partition, written by workers and flushed to librdkafka's
/// offset store by the poll thread. "Next offset" means the offset of the first record not
/// yet fully delivered: Kafka commits the position to resume from, so it is the processed
/// record's offset + 1.
#[derive(Default)]
pub(crate) struct OffsetBoard {
    pending: Mutex<HashMap<TopicPartition, i64>>,
}

impl OffsetBoard {
    fn publish(&self, tp: &TopicPartition, next_offset: i64) {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(tp.clone()).or_insert(next_offset);
        *e = (*e).max(next_offset);
    }

    /// Takes the offsets published since the last call, optionally only for some partitions.
    pub(crate) fn take(&self, only: Option<&[TopicPartition]>) -> Vec<(TopicPartition, i64)> {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match only {
            None => m.drain().collect(),
            Some(tps) => tps
                .iter()
                .filter_map(|tp| m.remove(tp).map(|o| (tp.clone(), o)))
                .collect(),
        }
    }
}

/// The first fatal error any worker met; the poll thread stops on it.
#[derive(Default)]
pub(crate) struct Fatal(Mutex<Option<PipelineError>>);

impl Fatal {
    pub(crate) fn set(&self, e: PipelineError) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            tracing::error!(error = %e, "fatal pipeline error");
            *g = Some(e);
        }
    }
    pub(crate) fn is_set(&self) -> bool {
        self.0.lock().map(|g| g.is_some()).unwrap_or(true)
    }
    pub(crate) fn take(&self) -> Option<PipelineError> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}

pub(crate) struct WorkerHandle {
    pub tx: mpsc::Sender<WorkerMsg>,
    pub join: tokio::task::JoinHandle<()>,
    /// True until the worker holds its partition's rebuilt state.
    pub restoring: Arc<std::sync::atomic::AtomicBool>,
}

/// Customers held in state across this instance's workers (the `amends_state_customers`
/// gauge). Each worker adds its own changes and removes its share when it stops.
#[derive(Default)]
pub(crate) struct StateSize(std::sync::atomic::AtomicI64);

impl StateSize {
    fn add(&self, delta: i64) {
        if delta != 0 {
            let total = self
                .0
                .fetch_add(delta, std::sync::atomic::Ordering::Relaxed)
                + delta;
            metrics::gauge!(crate::telemetry::names::STATE_CUSTOMERS).set(total as f64);
        }
    }
}

pub(crate) struct WorkerDeps {
    pub state_size: Arc<StateSize>,
    pub config: Arc<Config>,
    pub sink: KafkaSink,
    pub board: Arc<OffsetBoard>,
    pub fatal: Arc<Fatal>,
}

/// Spawns a partition worker. With `restore`, the worker first waits for the partition's
/// rebuilt state on that channel; records queue up meanwhile (the queue is bounded, so the poll
/// loop waits rather than buffering without limit). The group consumer's position is never
/// touched, so no record can be skipped.
pub(crate) fn spawn(
    rt: &tokio::runtime::Handle,
    tp: TopicPartition,
    deps: &WorkerDeps,
    restore: Option<tokio::sync::oneshot::Receiver<RestoredState>>,
) -> WorkerHandle {
    let (tx, rx) = mpsc::channel(deps.config.pipeline.partition_queue);
    let restoring = Arc::new(std::sync::atomic::AtomicBool::new(restore.is_some()));
    let processor = if restore.is_some() {
        None
    } else {
        Some(Processor::new(&deps.config))
    };
    let w = Worker {
        tp,
        processor,
        sink: deps.sink.clone(),
        board: deps.board.clone(),
        fatal: deps.fatal.clone(),
        max_in_flight: deps.config.pipeline.max_in_flight,
        state_size: deps.state_size.clone(),
        reported: (0, 0, 0, 0),
        restoring: restoring.clone(),
    };
    let join = rt.spawn(w.run(rx, restore));
    WorkerHandle {
        tx,
        join,
        restoring,
    }
}

struct Worker {
    tp: TopicPartition,
    processor: Option<Processor>,
    sink: KafkaSink,
    board: Arc<OffsetBoard>,
    fatal: Arc<Fatal>,
    max_in_flight: usize,
    state_size: Arc<StateSize>,
    /// (customers, evicted, expired, duplicates) as last reported to metrics.
    reported: (usize, u64, u64, u64),
    restoring: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The partition's state goes with the worker.
        self.state_size.add(-(self.reported.0 as i64));
    }
}

impl Worker {
    fn report_state(&mut self) {
        use crate::telemetry::names::{DUPLICATES, STATE_EVICTED};
        let Some(processor) = self.processor.as_ref() else {
            return;
        };
        let eng = processor.engine();
        let st = eng.stats();
        let now = (eng.customers(), st.evicted, st.expired, st.duplicates);
        self.state_size.add(now.0 as i64 - self.reported.0 as i64);
        if now.1 > self.reported.1 {
            metrics::counter!(STATE_EVICTED, "cause" => "cap").increment(now.1 - self.reported.1);
        }
        if now.2 > self.reported.2 {
            metrics::counter!(STATE_EVICTED, "cause" => "ttl").increment(now.2 - self.reported.2);
        }
        if now.3 > self.reported.3 {
            metrics::counter!(DUPLICATES).increment(now.3 - self.reported.3);
        }
        self.reported = now;
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<WorkerMsg>,
        restore: Option<tokio::sync::oneshot::Receiver<RestoredState>>,
    ) {
        let mut resume_at = None;
        if let Some(restored) = restore {
            match restored.await {
                Ok(b) => {
                    let (p, committed) = *b;
                    // The replay's own counts (duplicates seen, customers evicted) were the
                    // previous owner's to report; count from here on. The customers held are
                    // a gauge and are added by the next report.
                    let st = p.engine().stats();
                    self.reported = (0, st.evicted, st.expired, st.duplicates);
                    self.processor = Some(p);
                    resume_at = committed;
                }
                // The restore failed (the fatal error is already set) or was abandoned.
                Err(_) => return,
            }
            self.restoring
                .store(false, std::sync::atomic::Ordering::Release);
        }
        let mut in_flight = FuturesOrdered::new();
        let mut outs = Vec::new();
        loop {
            tokio::select! {
                // Completions first: they free in-flight slots and advance the offset.
                biased;
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    if !self.completed(done) { return; }
                }
                msg = rx.recv(), if in_flight.len() < self.max_in_flight => match msg {
                    Some(WorkerMsg::Record(rec)) => {
                        let offset = rec.offset;
                        if let Some(expected) = resume_at.take() {
                            // The state was rebuilt up to `expected`; the group consumer must
                            // resume exactly there, or records were skipped or replayed twice.
                            if offset != expected {
                                tracing::warn!(topic = %self.tp.0, partition = self.tp.1, offset, expected, "first record after restore is not at the offset the state was rebuilt to");
                            } else {
                                tracing::debug!(topic = %self.tp.0, partition = self.tp.1, offset, "first record after restore");
                            }
                        }
                        let ts = rec.timestamp_ms;
                        let now = EventTime(now_ms());
                        outs.clear();
                        let Some(processor) = self.processor.as_mut() else { return };
                        let processed = processor.process(&rec, now, &mut outs);
                        let wm = processor.engine().max_event_time();
                        processor.advance(wm, now, &mut outs);
                        self.observe(&rec, &processed);
                        self.report_state();
                        let sink = self.sink.clone();
                        let batch = std::mem::take(&mut outs);
                        in_flight.push_back(async move {
                            for o in batch {
                                sink.deliver(o, ts).await?;
                            }
                            Ok::<i64, PipelineError>(offset)
                        });
                    }
                    Some(WorkerMsg::Drain(ack)) => {
                        while let Some(done) = in_flight.next().await {
                            if !self.completed(done) { return; }
                        }
                        let _ = ack.send(());
                        return;
                    }
                    None => return,
                }
            }
        }
    }

    /// Publishes the next offset for a fully delivered record; false on a fatal error.
    fn completed(&self, done: Result<i64, PipelineError>) -> bool {
        match done {
            Ok(offset) => {
                self.board.publish(&self.tp, offset + 1);
                true
            }
            Err(e) => {
                self.fatal.set(e);
                false
            }
        }
    }

    fn observe(&self, rec: &InboundRecord, processed: &Processed) {
        match processed {
            Processed::Event {
                channel, outcome, ..
            } => EventDecoded {
                channel,
                outcome: outcome.as_str(),
            }
            .emit(),
            Processed::RecoveryOutcome => {
                metrics::counter!(crate::telemetry::names::OUTCOMES_IN).increment(1)
            }
            Processed::DeadLettered(err) => DeadLettered {
                reason: err.reason.as_str(),
                topic: &rec.topic,
                partition: rec.partition,
                offset: rec.offset,
                field: err.field.as_deref(),
            }
            .emit(),
        }
    }
}

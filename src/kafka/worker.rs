//! One worker task per assigned input partition. It owns that partition's engine state,
//! processes records in offset order, keeps at most `pipeline.max_in_flight` records whose
//! outputs await acknowledgement, and publishes the next offset to commit once every output
//! of every earlier record is acknowledged.

use super::sink::{now_ms, KafkaSink};
use super::PipelineError;
use crate::config::Config;
use crate::domain::EventTime;
use crate::pipeline::watermark::{PartitionClock, Watermarks};
use crate::pipeline::Watermarking;
use crate::pipeline::{InboundRecord, OutboundKind, OutboundRecord, Processed, Processor};
use crate::telemetry::events::{DeadLettered, EventDecoded};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub(crate) type TopicPartition = (Arc<str>, i32);

/// Where one batch of outputs holds the commits while it is delivered: for each topic the
/// worker reads (index into `Worker::commits`), the offset its commit stays at or below.
type Holds = Vec<(usize, i64)>;

/// What a finished delivery releases.
enum Done {
    /// A batch of outputs (numbered in dispatch order) and the commit holds it released.
    Outputs(u64, Holds),
    /// A changelog checkpoint: per index into `Worker::commits`, the offset the commit may
    /// now reach; and the offset after the checkpoint record.
    Checkpoint(Vec<(usize, i64)>, i64),
}

/// One batch of outputs, or one checkpoint, being delivered.
type Delivery =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Done, PipelineError>> + Send>>;

/// A checkpoint taken and waiting for the output batches numbered up to `.0`: its records,
/// and the commit caps it sets (see `Checkpoints::caps`).
type Waiting = (
    u64,
    Vec<crate::pipeline::changelog::StateRecord>,
    Vec<(usize, i64)>,
);

/// The changelog side of a worker whose partition keeps its state there (see
/// `pipeline::changelog` and design.md, "State, offsets and delivery").
///
/// Every `pipeline.checkpoint_interval` the worker takes a checkpoint: the changed
/// customers' snapshots and the checkpoint record, with each input topic's frontier (the
/// first record not yet applied). The records are sent only once every output batch
/// dispatched before it is acknowledged, so the changelog never holds a state whose outputs
/// could still be lost. Once the checkpoint is acknowledged, commits may move up to its
/// frontiers, and no further: a restart then finds in the changelog every record before the
/// committed offset (and perhaps some after it, which are recognised as duplicates).
struct Checkpoints {
    topic: Arc<str>,
    interval: std::time::Duration,
    last: std::time::Instant,
    /// Checkpoints taken for this partition, the restored one's included.
    sequence: u64,
    /// Per index into `Worker::commits`: how far that topic's commit may go. `None` until a
    /// checkpoint covering the topic is acknowledged: nothing of it is committed.
    caps: Vec<Option<i64>>,
    /// A checkpoint taken and waiting for the output batches numbered up to `.0`: its
    /// records, and the caps it sets.
    waiting: Option<Waiting>,
    /// A checkpoint is being delivered.
    sending: bool,
    /// The input positions of the checkpoint the state was restored from: a topic the worker
    /// has received nothing of since keeps its position in the next checkpoints.
    carried: Vec<(Arc<str>, i64)>,
    /// The offset after the last checkpoint record acknowledged.
    end: Option<i64>,
}

/// How often a worker recomputes the instance's watermark and fires due timers.
const WATERMARK_TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// A partition's rebuilt state, the committed offset it was rebuilt up to, and the changelog
/// checkpoint it was read from, if any.
pub(crate) type RestoredState = Box<(
    Processor,
    Option<i64>,
    Option<crate::pipeline::changelog::CheckpointInfo>,
)>;

/// What the transaction coordinator (the poll thread, with `kafka.guarantee =
/// "exactly_once"`) asks of a worker.
pub(crate) enum Control {
    /// Stop taking records, have every output acknowledged and the state checkpointed, reply
    /// with where the input stands, then wait for `go`: true once the transaction is
    /// committed (carry on), false or dropped when it is not (stop; the state is discarded
    /// and restored from the changelog).
    Seal {
        reply: std::sync::mpsc::SyncSender<Result<Sealed, PipelineError>>,
        go: tokio::sync::oneshot::Receiver<bool>,
    },
}

/// A sealed worker's share of the transaction.
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    /// Per input partition read, the first record not yet applied: the offset to commit.
    pub positions: Vec<(TopicPartition, i64)>,
    /// The offset after the worker's last checkpoint record in the changelog.
    pub changelog_end: Option<i64>,
}

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
    /// Transaction control (exactly-once), served ahead of the record queue.
    pub ctl: mpsc::UnboundedSender<Control>,
    pub join: tokio::task::JoinHandle<()>,
    /// True until the worker holds its partition's rebuilt state.
    pub restoring: Arc<std::sync::atomic::AtomicBool>,
    /// The partition's input clock; the poll thread marks it caught up from the statistics.
    pub clock: Arc<PartitionClock>,
}

/// Engine and processor figures as last reported to metrics (counters report the increase).
#[derive(Default, Clone, Copy)]
struct Reported {
    customers: usize,
    evicted: u64,
    expired: u64,
    duplicates: u64,
    late: u64,
    timers_fired: u64,
    buffered: usize,
    forced: u64,
}

/// Customers held in state across this instance's workers (the `amends_state_customers`
/// gauge). Each worker adds its own changes and removes its share when it stops.
#[derive(Default)]
pub(crate) struct StateSize(std::sync::atomic::AtomicI64);

impl StateSize {
    fn add(&self, delta: i64) {
        self.add_to(delta, crate::telemetry::names::STATE_CUSTOMERS);
    }

    /// Adds to the instance-wide total and sets gauge `name` to it.
    fn add_to(&self, delta: i64, name: &'static str) {
        if delta != 0 {
            let total = self
                .0
                .fetch_add(delta, std::sync::atomic::Ordering::Relaxed)
                + delta;
            metrics::gauge!(name).set(total as f64);
        }
    }
}

pub(crate) struct WorkerDeps {
    pub state_size: Arc<StateSize>,
    /// Events in reorder buffers across this instance's workers.
    pub buffered: Arc<StateSize>,
    pub watermarks: Arc<Watermarks>,
    /// Touch-point partitions in the cluster (trend sources), from the metadata at start.
    pub trend_sources: Arc<std::sync::atomic::AtomicUsize>,
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
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let eos = deps.config.kafka.guarantee == crate::config::Guarantee::ExactlyOnce;
    let restoring = Arc::new(std::sync::atomic::AtomicBool::new(restore.is_some()));
    let changelog = super::restore::uses_changelog(&deps.config, &tp.0).then(|| Checkpoints {
        topic: Arc::from(deps.config.output.changelog.as_str()),
        interval: deps.config.pipeline.checkpoint_interval.std(),
        last: std::time::Instant::now(),
        sequence: 0,
        caps: Vec::new(),
        waiting: None,
        sending: false,
        carried: Vec::new(),
        end: None,
    });
    let processor = if restore.is_some() {
        None
    } else {
        let mut p = Processor::new(&deps.config).with_watermarking(Watermarking::External);
        if changelog.is_some() {
            p.track_changes();
        }
        configure_trends(
            &mut p,
            &deps.config,
            &tp,
            deps.trend_sources
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        Some(p)
    };
    // Only partitions carrying events count towards the instance's watermark.
    let events = deps
        .config
        .input
        .touchpoints
        .topics
        .iter()
        .any(|t| **t == *tp.0);
    let clock = if events {
        deps.watermarks.register(tp.0.clone(), tp.1, now_ms())
    } else {
        PartitionClock::unregistered(now_ms())
    };
    let w = Worker {
        clock: clock.clone(),
        watermarks: deps.watermarks.clone(),
        commits: vec![(tp.0.clone(), Commits::default())],
        tp,
        processor,
        sink: deps.sink.clone(),
        board: deps.board.clone(),
        fatal: deps.fatal.clone(),
        max_in_flight: deps.config.pipeline.max_in_flight,
        state_size: deps.state_size.clone(),
        reported: Reported::default(),
        buffered: deps.buffered.clone(),
        restoring: restoring.clone(),
        trend_tail: None,
        batches: 0,
        unacked: Default::default(),
        changelog,
        eos,
        failed: None,
        skip: Vec::new(),
    };
    let join = rt.spawn(w.run(rx, ctl_rx, restore));
    WorkerHandle {
        tx,
        ctl,
        join,
        restoring,
        clock,
    }
}

/// A partition of the first touch-point topic is a trend source named `topic/partition` (its
/// worker reads the same partition of the other input topics too); every processor learns
/// how many sources a trend window waits for.
pub(crate) fn configure_trends(
    p: &mut Processor,
    config: &Config,
    tp: &TopicPartition,
    sources: usize,
) {
    if super::restore::is_home_topic(config, &tp.0) {
        p.set_trend_source(format!("{}/{}", tp.0, tp.1));
    }
    p.set_trend_sources(sources);
}

/// Where one topic's commit may go, for the worker's partition of it: not past a record still
/// in the reorder buffer, nor past outputs awaiting acknowledgement.
#[derive(Default)]
struct Commits {
    /// Records received but still in the processor's reorder buffer.
    unreleased: std::collections::BTreeSet<i64>,
    /// Deliveries in flight, by the offset the commit must stay at or below until they are
    /// acknowledged.
    blocking: std::collections::BTreeMap<i64, u32>,
    /// The offset after the last record received.
    next: Option<i64>,
}

impl Commits {
    /// The next offset to commit: the first record not yet applied with all outputs
    /// acknowledged.
    fn position(&self) -> Option<i64> {
        [
            self.unreleased.first().copied(),
            self.blocking.keys().next().copied(),
            self.next,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Where new outputs hold the commit when they derive from no particular record (a
    /// timer's revision): the first record not yet applied. Deliveries in flight do not
    /// count: each holds the commit by itself until acknowledged, and taking them in would
    /// chain every new hold to the oldest one, so that under steady load (some delivery
    /// always in flight) the commit would never move.
    fn frontier(&self) -> Option<i64> {
        match (self.unreleased.first().copied(), self.next) {
            (Some(u), Some(n)) => Some(u.min(n)),
            (u, n) => u.or(n),
        }
    }

    /// Where outputs hold the commit until acknowledged: at the first record they derive
    /// from (`first`, released in the step that made them), or at the frontier if earlier.
    fn hold(&self, first: Option<i64>) -> Option<i64> {
        match (first, self.frontier()) {
            (Some(f), Some(p)) => Some(f.min(p)),
            (f, p) => f.or(p),
        }
    }

    fn block(&mut self, at: i64) {
        *self.blocking.entry(at).or_insert(0) += 1;
    }

    fn unblock(&mut self, at: i64) {
        if let Some(n) = self.blocking.get_mut(&at) {
            *n -= 1;
            if *n == 0 {
                self.blocking.remove(&at);
            }
        }
    }
}

struct Worker {
    clock: Arc<PartitionClock>,
    watermarks: Arc<Watermarks>,
    /// Per topic read, the worker's own first: a touch-point partition's worker also gets the
    /// same partition of the outcome topics (see `consumer::Router`).
    commits: Vec<(Arc<str>, Commits)>,
    tp: TopicPartition,
    processor: Option<Processor>,
    sink: KafkaSink,
    board: Arc<OffsetBoard>,
    fatal: Arc<Fatal>,
    max_in_flight: usize,
    state_size: Arc<StateSize>,
    /// What was last reported to metrics.
    reported: Reported,
    buffered: Arc<StateSize>,
    restoring: Arc<std::sync::atomic::AtomicBool>,
    /// Completion of the last batch holding trend records (see `dispatch`).
    trend_tail: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Output batches dispatched (numbers them) and those not yet acknowledged.
    batches: u64,
    unacked: std::collections::BTreeSet<u64>,
    changelog: Option<Checkpoints>,
    /// Exactly-once: outputs and checkpoints are committed by the coordinator's transaction
    /// (see [`Control::Seal`]), not by offsets this worker publishes.
    eos: bool,
    /// Exactly-once: a delivery failed. The transaction is aborted at the next seal; until
    /// then no record is taken.
    failed: Option<PipelineError>,
    /// Exactly-once: per input topic, the first record the restored state has not applied.
    /// Records below it are already in the state (the group's offsets can lag the changelog
    /// only on a broker that does not commit transactional offsets, such as the mock).
    skip: Vec<(Arc<str>, i64)>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The partition's state goes with the worker.
        self.state_size.add(-(self.reported.customers as i64));
        self.buffered.add_to(
            -(self.reported.buffered as i64),
            crate::telemetry::names::REORDER_BUFFERED,
        );
        self.watermarks.deregister(&self.clock);
    }
}

impl Worker {
    fn report_state(&mut self, by: crate::detect::FiredBy) {
        use crate::telemetry::names::{
            DUPLICATES, LATE_EVENTS, REORDER_BUFFERED, REORDER_FORCED, STATE_EVICTED, TIMERS_FIRED,
        };
        let Some(processor) = self.processor.as_ref() else {
            return;
        };
        let eng = processor.engine();
        let st = eng.stats();
        let now = Reported {
            customers: eng.customers(),
            evicted: st.evicted,
            expired: st.expired,
            duplicates: st.duplicates,
            late: st.late,
            timers_fired: st.timers_fired,
            buffered: processor.buffered(),
            forced: processor.forced_releases(),
        };
        let was = &self.reported;
        self.state_size
            .add(now.customers as i64 - was.customers as i64);
        self.buffered
            .add_to(now.buffered as i64 - was.buffered as i64, REORDER_BUFFERED);
        let counters = [
            (
                now.evicted,
                was.evicted,
                STATE_EVICTED,
                Some(("cause", "cap")),
            ),
            (
                now.expired,
                was.expired,
                STATE_EVICTED,
                Some(("cause", "ttl")),
            ),
            (now.duplicates, was.duplicates, DUPLICATES, None),
            (now.late, was.late, LATE_EVENTS, None),
            (
                now.timers_fired,
                was.timers_fired,
                TIMERS_FIRED,
                Some(("clock", by.as_str())),
            ),
            (now.forced, was.forced, REORDER_FORCED, None),
        ];
        for (n, w, name, label) in counters {
            if n > w {
                match label {
                    Some((k, v)) => metrics::counter!(name, k => v).increment(n - w),
                    None => metrics::counter!(name).increment(n - w),
                }
            }
        }
        self.reported = now;
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<WorkerMsg>,
        mut ctl: mpsc::UnboundedReceiver<Control>,
        restore: Option<tokio::sync::oneshot::Receiver<RestoredState>>,
    ) {
        let mut resume_at = None;
        if let Some(mut restored) = restore {
            // Rebuilding is not idleness: the partition keeps holding the watermark.
            let mut touch = tokio::time::interval(WATERMARK_TICK);
            let restored = loop {
                tokio::select! {
                    r = &mut restored => break r,
                    _ = touch.tick() => self.clock.touch(now_ms()),
                    // Nothing processed yet: nothing to add to the transaction.
                    Some(Control::Seal { reply, go }) = ctl.recv() => {
                        let _ = reply.send(Ok(Sealed::default()));
                        if !matches!(go.await, Ok(true)) {
                            return;
                        }
                    }
                }
            };
            match restored {
                Ok(b) => {
                    let (mut p, committed, checkpoint) = *b;
                    if let Some(cl) = self.changelog.as_mut() {
                        p.track_changes();
                        if let Some(c) = checkpoint {
                            cl.sequence = c.sequence;
                            if self.eos {
                                self.skip = c
                                    .inputs
                                    .iter()
                                    .map(|(t, o)| (Arc::from(t.as_str()), *o))
                                    .collect();
                            }
                            cl.carried = c
                                .inputs
                                .into_iter()
                                .map(|(t, o)| (Arc::from(t.as_str()), o))
                                .collect();
                        }
                    }
                    // The replay's own counts (duplicates seen, customers evicted) were the
                    // previous owner's to report; count from here on. The customers held are
                    // a gauge and are added by the next report.
                    let st = p.engine().stats();
                    self.reported = Reported {
                        evicted: st.evicted,
                        expired: st.expired,
                        duplicates: st.duplicates,
                        late: st.late,
                        timers_fired: st.timers_fired,
                        forced: p.forced_releases(),
                        ..Reported::default()
                    };
                    p.set_watermarking(Watermarking::External);
                    self.clock.observe(Some(p.received_max()), now_ms());
                    self.processor = Some(p);
                    resume_at = committed;
                }
                // The restore failed (the fatal error is already set) or was abandoned.
                Err(_) => return,
            }
            self.restoring
                .store(false, std::sync::atomic::Ordering::Release);
        }
        let mut in_flight = FuturesUnordered::new();
        let mut outs = Vec::new();
        let mut released = Vec::new();
        let mut tick = tokio::time::interval(WATERMARK_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Completions first: they free in-flight slots and advance the offset.
                biased;
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    if !self.completed(done, &mut in_flight) { return; }
                }
                Some(Control::Seal { reply, go }) = ctl.recv() => {
                    if !self.seal(reply, go, &mut in_flight).await { return; }
                }
                msg = rx.recv(), if in_flight.len() < self.max_in_flight && self.failed.is_none() => match msg {
                    Some(WorkerMsg::Record(rec)) => {
                        let offset = rec.offset;
                        if self.skip.iter().any(|(t, o)| **t == *rec.topic && offset < *o) {
                            // Applied before the state was checkpointed.
                            continue;
                        }
                        if let Some(expected) = resume_at.take_if(|_| *rec.topic == *self.tp.0) {
                            // The state was rebuilt up to `expected`; the group consumer must
                            // resume exactly there, or records were skipped or replayed twice.
                            if offset != expected {
                                tracing::warn!(topic = %self.tp.0, partition = self.tp.1, offset, expected, "first record after restore is not at the offset the state was rebuilt to");
                            } else {
                                tracing::debug!(topic = %self.tp.0, partition = self.tp.1, offset, "first record after restore");
                            }
                        }
                        let ts = rec.timestamp_ms;
                        let wall = now_ms();
                        let now = EventTime(wall);
                        outs.clear();
                        let own = *rec.topic == *self.tp.0;
                        let Some(processor) = self.processor.as_mut() else { return };
                        let processed = processor.process(&rec, now, &mut outs);
                        let event_time = match &processed {
                            Processed::Event { event_time, .. } => Some(*event_time),
                            _ => None,
                        };
                        self.clock.observe(event_time, wall);
                        let (wm, by) = self.watermarks.current();
                        processor.advance(wm, now, by, &mut outs);
                        processor.take_released(&mut released);
                        let applied = released.iter().any(|(t, o)| *o == offset && *t == rec.topic);
                        let commits = self.commits_of(&rec.topic, own);
                        commits.next = Some(offset + 1);
                        if !applied {
                            commits.unreleased.insert(offset);
                        }
                        self.observe(&rec, &processed);
                        self.report_state(by);
                        self.dispatch(&mut outs, &mut released, ts, &mut in_flight);
                    }
                    Some(WorkerMsg::Drain(ack)) => {
                        // Everything in flight, then a last checkpoint, so the commit can
                        // reach every record applied.
                        loop {
                            while let Some(done) = in_flight.next().await {
                                if !self.completed(done, &mut in_flight) { return; }
                            }
                            if !self.checkpoint(true, &mut in_flight) {
                                break;
                            }
                        }
                        let _ = ack.send(());
                        return;
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    let wall = now_ms();
                    if !self.unacked.is_empty() || !rx.is_empty() {
                        // Busy (outputs pending, records queued): not idle. A checkpoint in
                        // flight is not input work.
                        self.clock.touch(wall);
                    }
                    let (wm, by) = self.watermarks.tick(wall);
                    let Some(processor) = self.processor.as_mut() else { continue };
                    outs.clear();
                    processor.advance(wm, EventTime(wall), by, &mut outs);
                    processor.take_released(&mut released);
                    if wm > EventTime::MIN {
                        metrics::gauge!(crate::telemetry::names::WATERMARK_LAG)
                            .set((wall - wm.0) as f64 / 1000.0);
                    }
                    self.report_state(by);
                    self.dispatch(&mut outs, &mut released, None, &mut in_flight);
                    if !self.eos {
                        self.checkpoint(false, &mut in_flight);
                    }
                }
            }
        }
    }

    /// Sends the outputs of the last processing step. The commit stays at the first record
    /// they derive from (or where it is, for timer outputs) until all are acknowledged.
    fn dispatch(
        &mut self,
        outs: &mut Vec<crate::pipeline::OutboundRecord>,
        released: &mut Vec<crate::pipeline::Released>,
        ts: Option<i64>,
        in_flight: &mut FuturesUnordered<Delivery>,
    ) {
        // The first record released per topic: the outputs may derive from it.
        let mut first: Vec<Option<i64>> = vec![None; self.commits.len()];
        for (topic, offset) in released.drain(..) {
            let i = self.commits_index(&topic);
            if i == first.len() {
                first.push(None);
            }
            self.commits[i].1.unreleased.remove(&offset);
            first[i] = Some(first[i].map_or(offset, |f| f.min(offset)));
        }
        if outs.is_empty() {
            self.publish();
            return;
        }
        // Every topic's commit stays at its frontier (or at the first record released, if
        // earlier) until the outputs are acknowledged: outputs are not tied to one topic's
        // records (an outcome's dead letter, a timer's revision), so all are held.
        let holds: Holds = self
            .commits
            .iter_mut()
            .enumerate()
            .filter_map(|(i, (_, c))| {
                let at = c.hold(first[i])?;
                c.block(at);
                Some((i, at))
            })
            .collect();
        let sink = self.sink.clone();
        let batch = std::mem::take(outs);
        self.batches += 1;
        let number = self.batches;
        self.unacked.insert(number);
        // Trend records leave in the order they were made: a window's partials before the
        // marker that closes it, and one close call's records before the next one's. So a
        // batch holding any waits for the previous such batch to be delivered.
        let (after, done) = if batch.iter().any(|o| {
            matches!(
                o.kind,
                OutboundKind::TrendPartial | OutboundKind::TrendClosed
            )
        }) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (self.trend_tail.replace(rx), Some(tx))
        } else {
            (None, None)
        };
        in_flight.push(Box::pin(async move {
            if let Some(previous) = after {
                // An error means the previous batch failed, which is fatal anyway.
                let _ = previous.await;
            }
            // Tasks and dead letters one after the other, as they were made; a close call's
            // partials all at once (each is about its own window and dimension), then its
            // markers, which must not overtake them.
            let (mut partials, mut rest): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|o| o.kind == OutboundKind::TrendPartial);
            let markers: Vec<_> = {
                let (m, r): (Vec<_>, Vec<_>) = rest
                    .into_iter()
                    .partition(|o| o.kind == OutboundKind::TrendClosed);
                rest = r;
                m
            };
            // Per key in order (a task's revisions, a customer's dead letters), the keys at
            // once: a batch can hold many customers' tasks (a reorder buffer released, a timer
            // sweep), and awaiting each acknowledgement in turn made such a batch take
            // seconds.
            let (group_of, count) = {
                let mut keys: HashMap<Option<&[u8]>, usize> = HashMap::new();
                let group_of: Vec<usize> = rest
                    .iter()
                    .map(|o| {
                        let next = keys.len();
                        *keys.entry(o.key.as_deref()).or_insert(next)
                    })
                    .collect();
                (group_of, keys.len())
            };
            let mut groups: Vec<Vec<OutboundRecord>> = (0..count).map(|_| Vec::new()).collect();
            for (o, i) in rest.into_iter().zip(group_of) {
                groups[i].push(o);
            }
            let sent = futures_util::future::join_all(groups.into_iter().map(|g| {
                let sink = &sink;
                async move {
                    for o in g {
                        sink.deliver(o, ts).await?;
                    }
                    Ok::<(), PipelineError>(())
                }
            }))
            .await;
            for r in sent {
                r?;
            }
            let sent =
                futures_util::future::join_all(partials.drain(..).map(|o| sink.deliver(o, ts)))
                    .await;
            for r in sent {
                r?;
            }
            for o in markers {
                sink.deliver(o, ts).await?;
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
            Ok(Done::Outputs(number, holds))
        }));
        self.publish();
    }

    /// Takes a checkpoint if one is due (`force`: whenever the state changed since the last
    /// one) and none is under way, and sends it once the batches before it are acknowledged.
    /// True if one was taken.
    fn checkpoint(&mut self, force: bool, in_flight: &mut FuturesUnordered<Delivery>) -> bool {
        let (Some(cl), Some(processor)) = (self.changelog.as_mut(), self.processor.as_mut()) else {
            return false;
        };
        if cl.waiting.is_some() || cl.sending || (!force && cl.last.elapsed() < cl.interval) {
            return false;
        }
        cl.last = std::time::Instant::now();
        let frontiers: Vec<(usize, i64)> = self
            .commits
            .iter()
            .enumerate()
            .filter_map(|(i, (_, c))| c.frontier().map(|f| (i, f)))
            .collect();
        let mut inputs: Vec<(Arc<str>, i64)> = frontiers
            .iter()
            .map(|&(i, f)| (self.commits[i].0.clone(), f))
            .collect();
        for (t, o) in &cl.carried {
            if !inputs.iter().any(|(u, _)| u == t) {
                inputs.push((t.clone(), *o));
            }
        }
        let records = match processor.checkpoint(&inputs, cl.sequence + 1, now_ms()) {
            Ok(r) => r,
            Err(e) => {
                self.fatal.set(PipelineError::Checkpoint {
                    partition: self.tp.1,
                    detail: e.to_string(),
                });
                return false;
            }
        };
        if records.is_empty() {
            // Nothing changed since the last checkpoint.
            return false;
        }
        cl.sequence += 1;
        cl.waiting = Some((self.batches, records, frontiers));
        self.send_checkpoint(in_flight);
        true
    }

    /// Sends the waiting checkpoint if every output batch before it is acknowledged.
    fn send_checkpoint(&mut self, in_flight: &mut FuturesUnordered<Delivery>) {
        let Some(cl) = self.changelog.as_mut() else {
            return;
        };
        let Some((before, _, _)) = &cl.waiting else {
            return;
        };
        if self.unacked.first().is_some_and(|first| first <= before) {
            return;
        }
        let (_, records, caps) = cl.waiting.take().expect("checked");
        cl.sending = true;
        let (sink, topic, partition) = (self.sink.clone(), cl.topic.clone(), self.tp.1);
        let n = records.len();
        in_flight.push(Box::pin(async move {
            let mut records: Vec<OutboundRecord> = records
                .into_iter()
                .map(|r| OutboundRecord {
                    kind: OutboundKind::State,
                    topic: topic.clone(),
                    key: Some(r.key),
                    payload: r.value.unwrap_or_default(),
                    headers: Vec::new(),
                })
                .collect();
            // The checkpoint record (last) only once every customer's is acknowledged: a
            // checkpoint in the changelog vouches for the state before it.
            let checkpoint = records.pop();
            let sent = futures_util::future::join_all(
                records
                    .into_iter()
                    .map(|r| sink.deliver_state(r, partition)),
            )
            .await;
            for r in sent {
                r?;
            }
            let mut end = -1;
            if let Some(c) = checkpoint {
                end = sink.deliver_state(c, partition).await? + 1;
            }
            metrics::counter!(crate::telemetry::names::CHANGELOG_RECORDS).increment(n as u64);
            Ok(Done::Checkpoint(caps, end))
        }));
    }

    /// Index of `topic` in `commits`, or `commits.len()` after adding it.
    fn commits_index(&mut self, topic: &Arc<str>) -> usize {
        match self.commits.iter().position(|(t, _)| **t == **topic) {
            Some(i) => i,
            None => {
                self.commits.push((topic.clone(), Commits::default()));
                self.commits.len() - 1
            }
        }
    }

    fn commits_of(&mut self, topic: &Arc<str>, own: bool) -> &mut Commits {
        let i = if own { 0 } else { self.commits_index(topic) };
        &mut self.commits[i].1
    }

    fn publish(&self) {
        if self.eos {
            // The coordinator commits the positions in its transaction.
            return;
        }
        for (i, (topic, c)) in self.commits.iter().enumerate() {
            let Some(mut p) = c.position() else { continue };
            if let Some(cl) = &self.changelog {
                // Not past the last checkpoint acknowledged (none yet: not at all).
                match cl.caps.get(i).copied().flatten() {
                    Some(cap) => p = p.min(cap),
                    None => continue,
                }
            }
            self.board.publish(&(topic.clone(), self.tp.1), p);
        }
    }

    /// Publishes the commit positions once a delivery is acknowledged, and sends a checkpoint
    /// that waited for it; false on a fatal error.
    fn completed(
        &mut self,
        done: Result<Done, PipelineError>,
        in_flight: &mut FuturesUnordered<Delivery>,
    ) -> bool {
        match done {
            Ok(Done::Outputs(number, holds)) => {
                self.unacked.remove(&number);
                for (i, at) in holds {
                    self.commits[i].1.unblock(at);
                }
                self.send_checkpoint(in_flight);
                self.publish();
                true
            }
            Ok(Done::Checkpoint(caps, end)) => {
                if let Some(cl) = self.changelog.as_mut() {
                    cl.sending = false;
                    cl.end = (end >= 0).then_some(end).or(cl.end);
                    for (i, at) in caps {
                        if cl.caps.len() <= i {
                            cl.caps.resize(i + 1, None);
                        }
                        cl.caps[i] = Some(at);
                    }
                }
                self.publish();
                true
            }
            Err(e) if self.eos => {
                // The transaction is aborted at the next seal, and this state with it.
                tracing::warn!(topic = %self.tp.0, partition = self.tp.1, error = %e, "delivery failed; the transaction will be aborted");
                self.failed.get_or_insert(e);
                true
            }
            Err(e) => {
                self.fatal.set(e);
                false
            }
        }
    }

    /// Exactly-once: completes this worker's share of the transaction (see
    /// [`Control::Seal`]). False if the worker must stop.
    async fn seal(
        &mut self,
        reply: std::sync::mpsc::SyncSender<Result<Sealed, PipelineError>>,
        go: tokio::sync::oneshot::Receiver<bool>,
        in_flight: &mut FuturesUnordered<Delivery>,
    ) -> bool {
        // Every output, then the state that results from them.
        let started = std::time::Instant::now();
        let outputs = in_flight.len();
        let mut outputs_ms = 0;
        let mut checkpointed = false;
        loop {
            while let Some(done) = in_flight.next().await {
                if !self.completed(done, in_flight) {
                    return false;
                }
            }
            if self.failed.is_some() || checkpointed {
                break;
            }
            outputs_ms = started.elapsed().as_millis() as u64;
            checkpointed = true;
            if !self.checkpoint(true, in_flight) {
                break;
            }
        }
        tracing::debug!(topic = %self.tp.0, partition = self.tp.1, outputs, outputs_ms, elapsed_ms = started.elapsed().as_millis() as u64, "sealed");
        if self.fatal.is_set() {
            return false;
        }
        let result = match self.failed.take() {
            Some(e) => Err(e),
            None => {
                let mut positions: Vec<(TopicPartition, i64)> = self
                    .commits
                    .iter()
                    .filter_map(|(t, c)| c.frontier().map(|f| ((t.clone(), self.tp.1), f)))
                    .collect();
                let cl = self.changelog.as_ref();
                for (t, o) in cl.map_or(&[][..], |c| &c.carried[..]) {
                    if !positions.iter().any(|((u, _), _)| u == t) {
                        positions.push(((t.clone(), self.tp.1), *o));
                    }
                }
                Ok(Sealed {
                    positions,
                    changelog_end: cl.and_then(|c| c.end),
                })
            }
        };
        let failed = result.is_err();
        if reply.send(result).is_err() || failed {
            return false;
        }
        matches!(go.await, Ok(true))
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
            Processed::TrendPartial => {}
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

#[cfg(test)]
mod tests {
    use super::Commits;

    /// Under steady load some delivery is always in flight. A new hold must not inherit the
    /// oldest one's, or the commit never moves (found by the fault matrix: a burst of input
    /// committed nothing until it ended).
    #[test]
    fn a_new_hold_does_not_chain_to_deliveries_in_flight() {
        let mut c = Commits {
            next: Some(1),
            ..Commits::default()
        };
        let a = c.hold(Some(0)).expect("hold");
        c.block(a);
        assert_eq!((a, c.position()), (0, Some(0)));
        // Records 1..=4 arrive and are applied while the first delivery is in flight.
        c.next = Some(5);
        let b = c.hold(Some(1)).expect("hold");
        c.block(b);
        assert_eq!(
            b, 1,
            "held at its own first record, not at the delivery in flight"
        );
        // A timer's outputs derive from no record: held at the frontier.
        let t = c.hold(None).expect("hold");
        c.block(t);
        assert_eq!(t, 5);
        c.unblock(a);
        assert_eq!(
            c.position(),
            Some(1),
            "the commit moves once the first is acknowledged"
        );
        c.unblock(b);
        assert_eq!(c.position(), Some(5));
        // A record still in the reorder buffer keeps the frontier (and the commit) below it.
        c.unreleased.insert(5);
        c.next = Some(8);
        assert_eq!(c.hold(Some(6)), Some(5));
        c.unblock(t);
        c.unreleased.clear();
        assert_eq!(c.position(), Some(8));
    }
}

//! The consumer group: a dedicated poll thread (librdkafka calls rebalance callbacks on the
//! thread that polls), routing records to partition workers over bounded channels, storing
//! offsets the workers release, and the graceful stop.

use super::client::{consumer_config, producer_config};
use super::restore;
use super::sink::KafkaSink;
use super::worker::{
    self, Control, Fatal, OffsetBoard, TopicPartition, WorkerDeps, WorkerHandle, WorkerMsg,
};
use super::PipelineError;
use crate::config::Config;
use crate::pipeline::InboundRecord;
use crate::telemetry::names;
use crate::telemetry::Health;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run did, for the caller (demo summary, tests).
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    pub records: u64,
    pub rebalances: u64,
}

/// Routes each record to the worker of its partition. The input topics are co-partitioned
/// (keyed by `customer_id`, one partition count): partition `p` of every input topic goes to
/// one worker, that of partition `p` of the first touch-point topic, which holds those
/// customers, like a Kafka Streams task over co-partitioned sources. So a customer's events
/// from several touch-point topics meet in one state, and their recovery outcomes find their
/// tasks. The range assignor gives one instance the same partitions of every input topic.
struct Router {
    workers: Mutex<HashMap<TopicPartition, WorkerHandle>>,
    /// Input partition (other than the first touch-point topic's) -> the partition whose
    /// worker takes its records. Locked after `workers` when both are held.
    routes: Mutex<HashMap<TopicPartition, TopicPartition>>,
    deps: WorkerDeps,
    rt: tokio::runtime::Handle,
    health: Arc<Health>,
    /// Exactly-once: per partition of the first touch-point topic, the changelog offset up to
    /// which this instance knows the state is committed (restored, or written in a committed
    /// transaction). A rewind restores up to there.
    changelog_ends: Mutex<HashMap<i32, i64>>,
}

impl Router {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TopicPartition, WorkerHandle>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<TopicPartition, TopicPartition>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changelog_ends(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i64>> {
        self.changelog_ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn eos(&self) -> bool {
        self.deps.config.kafka.guarantee == crate::config::Guarantee::ExactlyOnce
    }

    fn sender(&self, tp: &TopicPartition) -> tokio::sync::mpsc::Sender<WorkerMsg> {
        let mut w = self.lock();
        let target = self.routes().get(tp).cloned();
        let target = target.as_ref().unwrap_or(tp);
        w.entry(target.clone())
            .or_insert_with(|| worker::spawn(&self.rt, target.clone(), &self.deps, None))
            .tx
            .clone()
    }

    /// The partition whose worker takes the records of input partition `tp`, when that is
    /// not `tp` itself: the same partition of the first touch-point topic.
    fn home_of(&self, tp: &TopicPartition) -> Option<TopicPartition> {
        home_of(&self.deps.config, tp)
    }

    /// Starts the workers of a new assignment: the first touch-point topic's and the
    /// partials partitions first, then the other input partitions are routed to their home
    /// worker. One assigned without its home (another assignor in the group) gets a worker
    /// of its own, with a warning: it holds only the customers whose records it reads.
    fn assign_all(self: &Arc<Self>, tps: &[TopicPartition]) {
        let (routed, others): (Vec<_>, Vec<_>) = tps
            .iter()
            .map(|tp| (tp, self.home_of(tp)))
            .partition(|(_, home)| home.is_some());
        for (tp, _) in others {
            self.assign(tp);
        }
        for (tp, home) in routed {
            let home = home.expect("partitioned on it");
            let w = self.lock();
            if w.contains_key(&home) {
                self.routes().insert(tp.clone(), home);
                continue;
            }
            drop(w);
            tracing::warn!(topic = %tp.0, partition = tp.1, home = %home.0, "input partition assigned without the same partition of the first touch-point topic: its records cannot reach those customers' state (outcomes are dead-lettered as unknown tasks; events see only this topic's history). Every member of the group must use the range assignor");
            self.assign(tp);
        }
    }

    /// Starts the worker of a newly assigned partition. Touch-point partitions get their state
    /// rebuilt first (see `restore`) on a thread of their own; their records wait in the
    /// worker's queue until then.
    fn assign(self: &Arc<Self>, tp: &TopicPartition) {
        let config = &self.deps.config;
        // Touch-point partitions rebuild per-customer state and open trend windows; partials
        // partitions rebuild the merge and the alert baselines.
        let needs_restore = config.pipeline.restore != crate::config::Restore::None
            && (config.input.touchpoints.topics.iter().any(|t| **t == *tp.0)
                || *config.output.trend_partials == *tp.0);
        let mut w = self.lock();
        if w.contains_key(tp) {
            return;
        }
        if !needs_restore {
            w.insert(
                tp.clone(),
                worker::spawn(&self.rt, tp.clone(), &self.deps, None),
            );
            return;
        }
        let (state_tx, state_rx) = tokio::sync::oneshot::channel();
        w.insert(
            tp.clone(),
            worker::spawn(&self.rt, tp.clone(), &self.deps, Some(state_rx)),
        );
        drop(w);
        self.health.restoring(1);
        let router = self.clone();
        let tp = tp.clone();
        std::thread::spawn(move || router.restore(tp, state_tx));
    }

    /// Runs on its own thread: rebuilds the state (with retries) and hands it to the worker.
    fn restore(
        &self,
        tp: TopicPartition,
        state_tx: tokio::sync::oneshot::Sender<worker::RestoredState>,
    ) {
        let config = self.deps.config.clone();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let sources = self.deps.trend_sources.load(Ordering::Relaxed);
            let until = self.changelog_ends().get(&tp.1).copied();
            match restore::rebuild(&config, &tp.0, tp.1, sources, until) {
                Ok(r) => break Ok(r),
                Err(e) if attempt < 3 => {
                    tracing::warn!(topic = %tp.0, partition = tp.1, attempt, error = %e, "rebuilding partition state failed; retrying");
                    std::thread::sleep(Duration::from_secs(attempt));
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok((processor, done)) => {
                let source = if done.checkpoint.is_some() {
                    "changelog"
                } else {
                    "input"
                };
                metrics::histogram!(names::RESTORE_SECONDS, "source" => source)
                    .record(done.elapsed.as_secs_f64());
                metrics::counter!(names::RESTORE_RECORDS, "source" => "input")
                    .increment(done.records);
                metrics::counter!(names::RESTORE_RECORDS, "source" => "changelog")
                    .increment(done.changelog_records);
                let sequence = done.checkpoint.as_ref().map_or(0, |c| c.sequence);
                if let (true, Some(end)) = (self.eos(), done.changelog_end) {
                    self.changelog_ends().insert(tp.1, end);
                }
                let checkpoint = done.checkpoint.clone();
                tracing::info!(topic = %tp.0, partition = tp.1, source, checkpoint = sequence, changelog_records = done.changelog_records, from = done.from, to = done.to, records = done.records, customers = processor.engine().customers(), elapsed_ms = done.elapsed.as_millis() as u64, "partition state rebuilt");
                // Fails only if the partition was revoked meanwhile: nothing to do then.
                let _ = state_tx.send(Box::new((processor, done.committed, checkpoint)));
            }
            Err(e) => self.deps.fatal.set(PipelineError::Restore {
                topic: tp.0.to_string(),
                partition: tp.1,
                detail: e.to_string(),
            }),
        }
        self.health.restoring(-1);
    }

    /// Removes the workers of `tps` (all when `None`) and the routes that end with them;
    /// returns them, and the input partitions whose routes ended.
    fn take_handles(
        &self,
        tps: Option<&[TopicPartition]>,
    ) -> (Vec<(TopicPartition, WorkerHandle)>, Vec<TopicPartition>) {
        let mut w = self.lock();
        let mut routes = self.routes();
        let handles: Vec<_> = match tps {
            None => w.drain().collect(),
            Some(tps) => tps
                .iter()
                .filter_map(|tp| w.remove(tp).map(|h| (tp.clone(), h)))
                .collect(),
        };
        let mut unrouted = Vec::new();
        routes.retain(|from, to| {
            let ends =
                tps.is_none_or(|tps| tps.contains(from)) || handles.iter().any(|(tp, _)| tp == to);
            if ends {
                unrouted.push(from.clone());
            }
            !ends
        });
        (handles, unrouted)
    }

    /// Exactly-once: stops the workers of `tps` (all when `None`) at once, dropping their
    /// state. Their work is either in a committed transaction or in none.
    fn discard(&self, tps: Option<&[TopicPartition]>) {
        let (handles, _) = self.take_handles(tps);
        for (tp, h) in handles {
            h.join.abort();
            if tps.is_some() {
                // Revoked: whoever owns it next restores it to the end.
                self.changelog_ends().remove(&tp.1);
            }
        }
    }

    /// Drains the workers of `tps` (all when `None`): each finishes its in-flight deliveries
    /// and publishes its last offset. Waits at most `timeout` in total; a worker that does not
    /// finish in time is aborted, and its unacknowledged records will be consumed again.
    ///
    /// Returns the partitions whose offsets are final: those drained and the input
    /// partitions routed to them (or revoked themselves), whose routes end here.
    fn drain(&self, tps: Option<&[TopicPartition]>, timeout: Duration) -> Vec<TopicPartition> {
        let (handles, unrouted) = self.take_handles(tps);
        let deadline = Instant::now() + timeout;
        let mut acks = Vec::new();
        // A worker still waiting for its state has processed nothing: stop it at once (its
        // queued records are consumed again by the partition's next owner).
        let (restoring, handles): (Vec<_>, Vec<_>) = handles
            .into_iter()
            .partition(|(_, h)| h.restoring.load(Ordering::Acquire));
        for (_, h) in &restoring {
            h.join.abort();
        }
        for (tp, h) in &handles {
            let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
            // The queue may be full; keep trying until the deadline rather than block forever.
            let mut msg = WorkerMsg::Drain(ack_tx);
            loop {
                match h.tx.try_send(msg) {
                    Ok(()) => break,
                    Err(tokio::sync::mpsc::error::TrySendError::Full(m))
                        if Instant::now() < deadline =>
                    {
                        msg = m;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
            acks.push((tp.clone(), ack_rx));
        }
        for ((tp, rx), (_, h)) in acks.into_iter().zip(&handles) {
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                tracing::warn!(topic = %tp.0, partition = tp.1, "partition did not drain in time; its unacknowledged records will be re-consumed");
                h.join.abort();
            }
        }
        handles
            .into_iter()
            .chain(restoring)
            .map(|(tp, _)| tp)
            .chain(unrouted)
            .collect()
    }
}

struct Ctx {
    router: Arc<Router>,
    health: Arc<Health>,
    revoke_timeout: Duration,
    rebalances: std::sync::atomic::AtomicU64,
    /// Exactly-once: the transaction coordinator (used on the poll thread only).
    txn: Option<Mutex<Transactions>>,
}

impl Ctx {
    fn txn(&self) -> Option<std::sync::MutexGuard<'_, Transactions>> {
        self.txn
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Exactly-once: the instance's transactional producer and the transaction it has open. The
/// poll thread runs it; every `pipeline.checkpoint_interval` it seals every worker (see
/// [`Control::Seal`]: outputs acknowledged, state checkpointed to the changelog, input
/// positions reported), adds the positions with the consumer group's metadata
/// (`send_offsets_to_transaction`, so a member fenced by a rebalance cannot commit), commits,
/// and begins the next transaction before the workers carry on.
///
/// An abortable error aborts the transaction and rewinds every partition: the workers are
/// dropped, the consumer seeks back to the offsets last committed, and the state is restored
/// from the changelog up to what was last committed. A fatal error (fenced) stops the
/// instance without committing anything more.
struct Transactions {
    producer: FutureProducer,
    id: String,
    /// Transactions begun by this producer: the open one's number.
    number: u64,
    interval: Duration,
    /// librdkafka's `transaction.timeout.ms`: the most a transaction call may take.
    timeout: Duration,
    last: Instant,
    /// Per input partition, the offset this instance's last committed transaction gave it.
    committed: HashMap<TopicPartition, i64>,
    /// Stopping: no transaction is open any more (the revocation that unsubscribing causes
    /// has nothing to commit).
    closed: bool,
}

/// Why a transaction did not commit.
enum TxnError {
    Abort(String),
    Fatal(PipelineError),
}

impl TxnError {
    /// The error that stops the instance when `step` could not even abort.
    fn stopping(self, step: &'static str) -> PipelineError {
        match self {
            TxnError::Fatal(e) => e,
            TxnError::Abort(detail) => PipelineError::Transaction { step, detail },
        }
    }
}

impl Transactions {
    /// The open transaction's label, the `amends.txn` header of its records.
    fn label(&self) -> String {
        format!("{}:{}", self.id, self.number)
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Registers the transactional id (fencing any previous holder and aborting what it left
    /// open) and begins the first transaction.
    fn init(&mut self, sink: &KafkaSink) -> Result<(), PipelineError> {
        self.producer.init_transactions(self.timeout).map_err(|e| {
            self.classify("init_transactions", e)
                .stopping("init_transactions")
        })?;
        tracing::info!(transactional_id = %self.id, "exactly-once: transactions initialised");
        self.begin(sink)
    }

    fn begin(&mut self, sink: &KafkaSink) -> Result<(), PipelineError> {
        self.number += 1;
        sink.set_transaction(&self.label());
        self.last = Instant::now();
        self.producer
            .begin_transaction()
            .map_err(|e| PipelineError::Transaction {
                step: "begin_transaction",
                detail: e.to_string(),
            })
    }

    fn classify(&self, step: &'static str, e: KafkaError) -> TxnError {
        let (fatal, fenced) = match &e {
            KafkaError::Transaction(rd) => (
                rd.is_fatal(),
                matches!(
                    rd.code(),
                    RDKafkaErrorCode::Fenced
                        | RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                        | RDKafkaErrorCode::FencedInstanceId
                ),
            ),
            _ => (false, false),
        };
        match (fatal, fenced) {
            (_, true) => TxnError::Fatal(PipelineError::Fenced {
                id: self.id.clone(),
                detail: format!("{step}: {e}"),
            }),
            (true, false) => TxnError::Fatal(PipelineError::Transaction {
                step,
                detail: e.to_string(),
            }),
            _ => TxnError::Abort(format!("{step}: {e}")),
        }
    }

    /// Runs a transaction call, again while librdkafka says the error is retriable.
    fn retrying(
        &self,
        step: &'static str,
        mut call: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<(), TxnError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call() {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(rd)) if rd.is_retriable() && attempt < 3 => {
                    tracing::warn!(step, attempt, error = %rd, "transaction call failed; retrying");
                }
                Err(e) => return Err(self.classify(step, e)),
            }
        }
    }

    /// Seals every worker, commits the open transaction, and begins the next. The workers
    /// for which `stops` is true stop afterwards (revoked, or shutting down); the others carry
    /// on. False when the instance must stop (the fatal error is set).
    fn commit(
        &mut self,
        router: &Arc<Router>,
        consumer: &BaseConsumer<Ctx>,
        stops: &dyn Fn(&TopicPartition) -> bool,
    ) -> bool {
        if self.closed {
            return true;
        }
        let started = Instant::now();
        let handles: Vec<(TopicPartition, tokio::sync::mpsc::UnboundedSender<Control>)> = router
            .lock()
            .iter()
            .map(|(tp, h)| (tp.clone(), h.ctl.clone()))
            .collect();
        let mut sealing = Vec::with_capacity(handles.len());
        for (tp, ctl) in handles {
            let (reply, replies) = std::sync::mpsc::sync_channel(1);
            let (go, go_rx) = tokio::sync::oneshot::channel();
            if ctl.send(Control::Seal { reply, go: go_rx }).is_ok() {
                sealing.push((tp, replies, go));
            }
        }
        // Half the transaction timeout for the outputs, half for the commit.
        let deadline = started + self.timeout / 2;
        let mut offsets = TopicPartitionList::new();
        let mut positions = Vec::new();
        let mut ends = Vec::new();
        let mut failure = None;
        for (tp, replies, _) in &sealing {
            match replies.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(sealed)) => {
                    for ((t, p), o) in sealed.positions {
                        let _ = offsets.add_partition_offset(&t, p, Offset::Offset(o));
                        positions.push(((t, p), o));
                    }
                    if let Some(end) = sealed.changelog_end {
                        ends.push((tp.1, end));
                    }
                }
                Ok(Err(e)) => {
                    failure.get_or_insert(format!("{}/{}: {e}", tp.0, tp.1));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    failure.get_or_insert(format!(
                        "{}/{}: outputs not acknowledged within {} ms",
                        tp.0,
                        tp.1,
                        (self.timeout / 2).as_millis()
                    ));
                }
                // The worker stopped: revoked meanwhile, or a fatal error (set on its own).
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
            }
        }
        let fatal = &router.deps.fatal;
        if fatal.is_set() {
            return false;
        }
        let label = self.label();
        let result = match failure {
            Some(f) => Err(TxnError::Abort(f)),
            None => self.finish(&offsets, consumer),
        };
        match result {
            Ok(()) => {
                tracing::debug!(transaction = %label, partitions = offsets.count(), elapsed_ms = started.elapsed().as_millis() as u64, "transaction committed");
                metrics::counter!(names::TRANSACTIONS, "result" => "committed").increment(1);
                metrics::histogram!(names::TRANSACTION_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                self.committed.extend(positions);
                router.changelog_ends().extend(ends);
                if let Err(e) = self.begin(&router.deps.sink) {
                    fatal.set(e);
                    return false;
                }
                for (tp, _, go) in sealing {
                    let _ = go.send(!stops(&tp));
                }
                true
            }
            Err(TxnError::Abort(reason)) => {
                tracing::warn!(transaction = %label, %reason, "aborting the transaction; every partition goes back to its last committed state");
                // Dropping `go` stops the workers; their state is discarded below.
                drop(sealing);
                router.health.note_aborted(&label);
                metrics::counter!(names::TRANSACTIONS, "result" => "aborted").increment(1);
                if let Err(e) = self.retrying("abort_transaction", || {
                    self.producer.abort_transaction(self.timeout)
                }) {
                    fatal.set(e.stopping("abort_transaction"));
                    return false;
                }
                if let Err(e) = self.begin(&router.deps.sink) {
                    fatal.set(e);
                    return false;
                }
                self.rewind(router, consumer, stops);
                true
            }
            Err(TxnError::Fatal(e)) => {
                // The broker aborts it (the new holder of the id, or the timeout).
                router.health.note_aborted(&label);
                metrics::counter!(names::TRANSACTIONS, "result" => "aborted").increment(1);
                fatal.set(e);
                false
            }
        }
    }

    fn finish(
        &self,
        offsets: &TopicPartitionList,
        consumer: &BaseConsumer<Ctx>,
    ) -> Result<(), TxnError> {
        if offsets.count() > 0 {
            let Some(group) = consumer.group_metadata() else {
                return Err(TxnError::Abort(
                    "no consumer group metadata to commit offsets with".into(),
                ));
            };
            self.retrying("send_offsets_to_transaction", || {
                self.producer
                    .send_offsets_to_transaction(offsets, &group, self.timeout)
            })?;
        }
        self.retrying("commit_transaction", || {
            self.producer.commit_transaction(self.timeout)
        })
    }

    /// After an abort: drops every worker (their state holds what was aborted), moves the
    /// consumer back to the offsets last committed, and restores every partition that stays
    /// (not `stops`) from the changelog up to its last committed state.
    fn rewind(
        &mut self,
        router: &Arc<Router>,
        consumer: &BaseConsumer<Ctx>,
        stops: &dyn Fn(&TopicPartition) -> bool,
    ) {
        router.discard(None);
        let assigned: Vec<TopicPartition> = match consumer.assignment() {
            Ok(tpl) => tp_list(&tpl).into_iter().filter(|tp| !stops(tp)).collect(),
            Err(e) => {
                router.deps.fatal.set(PipelineError::Transaction {
                    step: "rewind",
                    detail: format!("reading the assignment: {e}"),
                });
                return;
            }
        };
        if assigned.is_empty() {
            return;
        }
        // Where each partition's committed state ends: this instance's last commit, or the
        // group's (a partition it has not committed since it was assigned).
        let mut unknown = TopicPartitionList::new();
        for tp in assigned
            .iter()
            .filter(|tp| !self.committed.contains_key(*tp))
        {
            unknown.add_partition(&tp.0, tp.1);
        }
        let group: HashMap<TopicPartition, i64> = if unknown.count() == 0 {
            HashMap::new()
        } else {
            match consumer.committed_offsets(unknown, self.timeout) {
                Ok(tpl) => tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        let o = e.offset().to_raw().filter(|o| *o >= 0)?;
                        Some(((Arc::from(e.topic()), e.partition()), o))
                    })
                    .collect(),
                Err(e) => {
                    router.deps.fatal.set(PipelineError::Transaction {
                        step: "rewind",
                        detail: format!("reading the committed offsets: {e}"),
                    });
                    return;
                }
            }
        };
        let mut seek = TopicPartitionList::new();
        for tp in &assigned {
            let to = match self.committed.get(tp).or_else(|| group.get(tp)) {
                Some(o) => Offset::Offset(*o),
                // Nothing committed: from the start, as auto.offset.reset = earliest does
                // (records a restored checkpoint already holds are skipped by the worker).
                None => Offset::Beginning,
            };
            let _ = seek.add_partition_offset(&tp.0, tp.1, to);
        }
        match consumer.seek_partitions(seek, self.timeout) {
            Ok(result) => {
                for e in result.elements() {
                    if let Err(err) = e.error() {
                        router.deps.fatal.set(PipelineError::Transaction {
                            step: "rewind",
                            detail: format!("seeking {}/{}: {err}", e.topic(), e.partition()),
                        });
                        return;
                    }
                }
            }
            Err(e) => {
                router.deps.fatal.set(PipelineError::Transaction {
                    step: "rewind",
                    detail: format!("seeking: {e}"),
                });
                return;
            }
        }
        tracing::info!(
            partitions = assigned.len(),
            "rewound to the last committed transaction; restoring state"
        );
        router.assign_all(&assigned);
    }
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.health.set_broker_reachable(up);
        let workers = self.router.lock();
        let routes = self.router.routes();
        // A worker's partition is caught up when every input partition it reads is.
        let mut up: HashMap<&TopicPartition, bool> = HashMap::new();
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                // -1 means unknown or not assigned; the internal "-1" partition is skipped.
                if *p >= 0 && part.consumer_lag >= 0 {
                    metrics::gauge!(names::CONSUMER_LAG, "topic" => topic.clone(), "partition" => p.to_string()).set(part.consumer_lag as f64);
                }
                let tp: TopicPartition = (Arc::from(topic.as_str()), *p);
                let home = routes.get(&tp).unwrap_or(&tp);
                if let Some((key, _)) = workers.get_key_value(home) {
                    *up.entry(key).or_insert(true) &= caught_up(part);
                }
            }
        }
        for (tp, caught_up) in up {
            workers[tp].clock.set_caught_up(caught_up);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.health.set_broker_reachable(false);
        }
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        match rebalance {
            Rebalance::Revoke(tpl) => {
                metrics::counter!(names::REBALANCES, "kind" => "revoke").increment(1);
                let tps = tp_list(tpl);
                if let Some(mut txn) = self.txn() {
                    // Everything so far is committed (or rewound) while the partitions are
                    // still this member's; then the revoked ones stop.
                    tracing::info!(
                        partitions = tps.len(),
                        "partitions revoked; committing the transaction"
                    );
                    txn.commit(&self.router, consumer, &|tp| tps.contains(tp));
                    self.router.discard(Some(&tps));
                    for tp in &tps {
                        txn.committed.remove(tp);
                    }
                } else {
                    tracing::info!(partitions = tps.len(), "partitions revoked; draining");
                    let drained = self.router.drain(Some(&tps), self.revoke_timeout);
                    store(consumer, &self.router.deps.board, Some(&drained));
                    commit_sync(consumer);
                }
                self.health.set_assigned(!self.router.lock().is_empty());
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            metrics::counter!(names::REBALANCES, "kind" => "assign").increment(1);
            let tps = tp_list(tpl);
            self.router.assign_all(&tps);
            let n = self.router.lock().len();
            metrics::gauge!(names::ASSIGNED_PARTITIONS).set(n as f64);
            tracing::info!(partitions = tps.len(), total = n, "partitions assigned");
            self.health.set_assigned(n > 0);
        }
    }
}

/// The partition whose worker takes the records of input partition `tp`, when that is not
/// `tp` itself: the same partition of the first touch-point topic, for every other input
/// topic (see [`Router`]).
pub(crate) fn home_of(config: &Config, tp: &TopicPartition) -> Option<TopicPartition> {
    let input = &config.input;
    let first = input.touchpoints.topics.first()?;
    let other_input = input
        .touchpoints
        .topics
        .iter()
        .skip(1)
        .chain(&input.recovery_outcomes.topics)
        .any(|t| **t == *tp.0);
    (other_input && **first != *tp.0).then(|| (Arc::from(first.as_str()), tp.1))
}

/// Whether the consumer has handed every record up to the partition's end to amends: it is
/// fetching, nothing fetched is still waiting to be polled, and the next fetch starts at the
/// end. The end is the last stable offset (amends reads committed records only), or the high
/// watermark when the broker reports no stable offset. Only a caught-up partition can be
/// idle (see `pipeline::watermark`).
fn caught_up(part: &rdkafka::statistics::Partition) -> bool {
    let end = if part.ls_offset >= 0 {
        part.ls_offset
    } else {
        part.hi_offset
    };
    part.fetch_state == "active" && part.fetchq_cnt == 0 && end >= 0 && part.next_offset >= end
}

fn tp_list(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (Arc::from(e.topic()), e.partition()))
        .collect()
}

/// Moves released offsets into librdkafka's offset store, from where the auto-commit timer
/// (or [`commit_sync`]) commits them.
fn store(consumer: &BaseConsumer<Ctx>, board: &OffsetBoard, only: Option<&[TopicPartition]>) {
    store_logged(consumer, board, only, false)
}

fn store_logged(
    consumer: &BaseConsumer<Ctx>,
    board: &OffsetBoard,
    only: Option<&[TopicPartition]>,
    final_store: bool,
) {
    let offsets = board.take(only);
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for ((topic, partition), next) in &offsets {
        // `next` is already "last delivered + 1": rd_kafka_offsets_store stores it as given
        // (unlike the single-offset rd_kafka_offset_store, which adds 1 itself).
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    if only.is_some() || final_store {
        tracing::info!(offsets = ?offsets.iter().map(|((t, p), o)| format!("{t}/{p}@{o}")).collect::<Vec<_>>(), "storing final offsets of drained partitions");
    }
    match consumer.store_offsets(&tpl) {
        Ok(()) => metrics::counter!(names::OFFSETS_STORED).increment(offsets.len() as u64),
        // A partition revoked in the meantime: its records will be re-read by the new owner.
        Err(e) => tracing::debug!(error = %e, "storing offsets failed"),
    }
}

fn commit_sync(consumer: &BaseConsumer<Ctx>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "synchronous offset commit failed"),
    }
}

/// Waits until the brokers answer a metadata request and every output topic exists.
fn check_cluster(
    config: &Config,
    consumer: &BaseConsumer<Ctx>,
    health: &Health,
) -> Result<ClusterInfo, PipelineError> {
    let waited = Duration::from_secs(30);
    let deadline = Instant::now() + waited;
    let md = loop {
        match consumer.fetch_metadata(None, Duration::from_secs(5)) {
            Ok(md) => break md,
            Err(e) if Instant::now() >= deadline => {
                return Err(PipelineError::Unreachable {
                    brokers: config.kafka.brokers.clone(),
                    waited_s: waited.as_secs(),
                    detail: e.to_string(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "brokers not reachable yet; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    health.set_broker_reachable(true);
    let o = &config.output;
    let partitions = |topic: &str| {
        md.topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
    };
    for (key, topic) in [
        ("output.recovery_tasks", &o.recovery_tasks),
        ("output.dead_letter", &o.dead_letter),
        ("output.trend_snapshots", &o.trend_snapshots),
        ("output.trend_alerts", &o.trend_alerts),
        ("output.trend_partials", &o.trend_partials),
    ] {
        if partitions(topic).is_none_or(|n| n == 0) {
            return Err(PipelineError::MissingTopic {
                topic: topic.clone(),
                key,
            });
        }
    }
    // Partition p of every input topic is read by one worker, the one holding those
    // customers, so the input topics must have one partition count (like the sources of a
    // Kafka Streams join).
    let input = &config.input;
    let first = &input.touchpoints.topics[0];
    let want = partitions(first);
    let others = input
        .touchpoints
        .topics
        .iter()
        .skip(1)
        .map(|t| ("input.touchpoints.topics", t))
        .chain(
            input
                .recovery_outcomes
                .topics
                .iter()
                .map(|t| ("input.recovery_outcomes.topics", t)),
        );
    for (key, topic) in others {
        match (partitions(topic), want) {
            (Some(n), Some(want)) if n != want => {
                return Err(PipelineError::NotCoPartitioned {
                    key,
                    topic: topic.clone(),
                    partitions: n,
                    touchpoints: first.clone(),
                    expected: want,
                })
            }
            (None, _) => {
                tracing::warn!(topic = %topic, "input topic does not exist (yet): create it with the partition count of the first touch-point topic; amends reads it once it exists")
            }
            _ => {}
        }
    }
    // Partition p of the changelog holds the state of partition p of the first touch-point
    // topic: it must exist, with as many partitions.
    if config.pipeline.restore == crate::config::Restore::Changelog {
        match (partitions(&o.changelog), want) {
            (None | Some(0), _) => {
                return Err(PipelineError::MissingTopic {
                    topic: o.changelog.clone(),
                    key: "output.changelog",
                })
            }
            (Some(n), Some(want)) if n != want => {
                return Err(PipelineError::ChangelogPartitions {
                    topic: o.changelog.clone(),
                    partitions: n,
                    touchpoints: first.clone(),
                    expected: want,
                })
            }
            _ => {}
        }
    }
    // A trend window is complete when every worker holding customers (one per partition of
    // the first touch-point topic) has closed it.
    let sources = want.unwrap_or(1).max(1);
    Ok(ClusterInfo {
        trend_sources: sources,
        partials_partitions: partitions(&o.trend_partials).unwrap_or(1) as i32,
    })
}

/// What the cluster's metadata says at start.
struct ClusterInfo {
    /// Partitions of the first touch-point topic: the trend sources a window waits for.
    /// Adding partitions later needs a restart to be counted.
    trend_sources: usize,
    partials_partitions: i32,
}

/// Runs the service until `stop` becomes true or a fatal error occurs. On stop it drains
/// every partition, commits, flushes the producer and returns, all within
/// `pipeline.shutdown_timeout`.
pub async fn run(
    config: Config,
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
) -> Result<RunReport, PipelineError> {
    let config = Arc::new(config);
    let eos = config.kafka.guarantee == crate::config::Guarantee::ExactlyOnce;
    let transactional_id = eos.then(|| super::client::transactional_id(&config));
    let producer: FutureProducer = producer_config(&config, transactional_id.as_deref())
        .create()
        .map_err(PipelineError::Client)?;
    let sink = KafkaSink::new(producer.clone(), config.pipeline.delivery_attempts);
    let fatal = Arc::new(Fatal::default());
    let board = Arc::new(OffsetBoard::default());
    let router = Arc::new(Router {
        workers: Mutex::new(HashMap::new()),
        routes: Mutex::new(HashMap::new()),
        deps: WorkerDeps {
            state_size: Default::default(),
            buffered: Default::default(),
            trend_sources: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
            watermarks: Arc::new(crate::pipeline::watermark::Watermarks::new(
                config.detect.out_of_orderness.millis(),
                config.detect.idle_partition_after.millis(),
            )),
            config: config.clone(),
            sink,
            board: board.clone(),
            fatal: fatal.clone(),
        },
        rt: tokio::runtime::Handle::current(),
        health: health.clone(),
        changelog_ends: Mutex::new(HashMap::new()),
    });
    let ctx = Ctx {
        router: router.clone(),
        health: health.clone(),
        revoke_timeout: config.pipeline.revoke_timeout.std(),
        rebalances: Default::default(),
        txn: transactional_id.map(|id| {
            Mutex::new(Transactions {
                producer: producer.clone(),
                id,
                number: 0,
                interval: config.pipeline.checkpoint_interval.std(),
                timeout: Duration::from_millis(config.transaction_timeout_ms().max(0) as u64),
                last: Instant::now(),
                committed: HashMap::new(),
                closed: false,
            })
        }),
    };
    let consumer: BaseConsumer<Ctx> = consumer_config(&config)
        .create_with_context(ctx)
        .map_err(PipelineError::Client)?;

    let cfg = config.clone();
    let fatal2 = fatal.clone();
    let thread = std::thread::Builder::new()
        .name("amends-poll".into())
        .spawn(move || poll_loop(cfg, consumer, router, board, stop, fatal2, health))
        .map_err(|_| PipelineError::ConsumerPanicked)?;
    let result = tokio::task::spawn_blocking(move || thread.join()).await;
    let report = match result {
        Ok(Ok(r)) => r?,
        _ => return Err(PipelineError::ConsumerPanicked),
    };
    // Everything delivered was awaited by the workers; flush covers anything still queued.
    let _ = rdkafka::producer::Producer::flush(&producer, config.pipeline.shutdown_timeout.std());
    match fatal.take() {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn poll_loop(
    config: Arc<Config>,
    consumer: BaseConsumer<Ctx>,
    router: Arc<Router>,
    board: Arc<OffsetBoard>,
    stop: Arc<AtomicBool>,
    fatal: Arc<Fatal>,
    health: Arc<Health>,
) -> Result<RunReport, PipelineError> {
    let info = check_cluster(&config, &consumer, &health)?;
    router
        .deps
        .sink
        .set_partials_partitions(info.partials_partitions);
    router
        .deps
        .trend_sources
        .store(info.trend_sources, Ordering::Relaxed);
    // The partials topic is read back by the same group: whoever owns a partition of it
    // merges the dimensions keyed there.
    let topics: Vec<&str> = config
        .input
        .touchpoints
        .topics
        .iter()
        .chain(&config.input.recovery_outcomes.topics)
        .chain(std::iter::once(&config.output.trend_partials))
        .map(String::as_str)
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| PipelineError::Subscribe {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            source,
        })?;
    if let Some(mut txn) = consumer.context().txn() {
        txn.init(&router.deps.sink)?;
    }
    tracing::info!(topics = ?topics, group = %config.kafka.group_id, "consuming");
    let mut report = RunReport::default();
    let mut topic_names: HashMap<String, Arc<str>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) && !fatal.is_set() {
        store(&consumer, &board, None);
        if let Some(mut txn) = consumer.context().txn().filter(|t| t.due()) {
            if !txn.commit(&router, &consumer, &|_| false) {
                break;
            }
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                continue;
            }
        };
        let topic = match topic_names.get(msg.topic()) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(msg.topic());
                topic_names.insert(msg.topic().to_string(), t.clone());
                t
            }
        };
        let rec = InboundRecord {
            topic: topic.clone(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            timestamp_ms: msg.timestamp().to_millis(),
        };
        drop(msg);
        report.records += 1;
        health.add_records(1);
        let tx = router.sender(&(topic, rec.partition));
        // Bounded queue: when the worker is behind (slow producer), wait here, which slows
        // consumption instead of growing memory. Poll again every few ms so rebalance and
        // stop are still served.
        let mut item = WorkerMsg::Record(rec);
        loop {
            match tx.try_send(item) {
                Ok(()) => break,
                Err(tokio::sync::mpsc::error::TrySendError::Full(m)) => {
                    item = m;
                    if stop.load(Ordering::Relaxed) || fatal.is_set() {
                        break;
                    }
                    store(&consumer, &board, None);
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }
    health.set_stopping();
    if let Some(mut txn) = consumer.context().txn() {
        if !fatal.is_set() {
            tracing::info!("stopping: committing the last transaction");
            txn.commit(&router, &consumer, &|_| true);
        }
        router.discard(None);
        txn.closed = true;
        // The transaction begun after the last commit is empty. After a fatal error, whatever
        // is open is aborted by the broker (timeout, or the next holder of the id).
        let _ = txn
            .producer
            .abort_transaction(Duration::from_secs(if fatal.is_set() { 1 } else { 5 }));
        drop(txn);
        report.rebalances = consumer.context().rebalances.load(Ordering::Relaxed);
        consumer.unsubscribe();
        tracing::info!(records = report.records, "stopped");
        return Ok(report);
    }
    if fatal.is_set() {
        // Commit only what was fully delivered, then stop; the rest is re-read on restart.
        router.drain(None, Duration::from_secs(1));
        store(&consumer, &board, None);
        commit_sync(&consumer);
        return Ok(report);
    }
    tracing::info!("stopping: draining partitions");
    router.drain(None, config.pipeline.shutdown_timeout.std());
    store_logged(&consumer, &board, None, true);
    commit_sync(&consumer);
    report.rebalances = consumer.context().rebalances.load(Ordering::Relaxed);
    consumer.unsubscribe();
    tracing::info!(records = report.records, "stopped");
    Ok(report)
}

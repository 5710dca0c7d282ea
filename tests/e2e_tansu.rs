//! End-to-end: the real `amends` binary as a process, against a real Kafka-protocol broker
//! (Tansu, started per test by `tests/support`).
//!
//! Each test produces seeded touch-point events keyed by customer (4 input partitions, with
//! some poison records), starts `amends run`, keeps producing while it runs, and mid-stream
//! either SIGKILLs the service, SIGTERMs it, or SIGKILLs the broker (SQLite storage); then it
//! restarts whatever it stopped while traffic is still arriving, reads the task topic back and
//! counts:
//!
//! - every expected `(task_id, revision)` is there. "Expected" is computed in this process by
//!   running the library's `pipeline::Processor` over each input partition in offset order (as
//!   read back from the input topic), which is what the service's partition workers do, so no
//!   restart may change it;
//! - every copy of a `(task_id, revision)` has exactly the expected content apart from
//!   `emitted_at` (so a duplicate can only be a re-send of the same revision);
//! - no task id or revision appears that was not expected;
//! - every poison record is in the dead-letter topic, with its original bytes and key and the
//!   expected `amends.reason` header, and no valid record is;
//! - SIGTERM makes the service exit with status 0 within its shutdown timeout.
//!
//! After a SIGKILL of the service or the broker, duplicates are allowed (at-least-once). After
//! a graceful SIGTERM there must be none: the service drains and commits before it exits.
//!
//! On failure the work directory (config, service logs per start, observed and expected tasks
//! as JSON lines) and the broker's directory are kept and their paths printed.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amends::config::Config;
use amends::domain::{EventTime, RecoveryTask};
use amends::pipeline::{InboundRecord, OutboundKind, Processor};
use serde_json::Value;
use support::{
    AmendsProcess, EventGen, GenRecord, Landed, OutRecord, Producer, ReadRecord, ServiceConfig,
    Tansu, TestDir, TopicReader, Topics,
};

const PARTITIONS: i32 = 4;
const CUSTOMERS: u32 = 300;
/// Produced before the service starts.
const FIRST_BATCH: usize = 1500;
/// Produced in chunks while the service runs, is stopped, and restarts.
const LIVE_BATCH: usize = 1500;
const LIVE_CHUNK: usize = 50;
const LIVE_CHUNK_EVERY: Duration = Duration::from_millis(100);
const POISON_PER_BATCH: usize = 4;
/// `pipeline.shutdown_timeout` in the test config, and how long a graceful stop may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the restarted service may take to publish every expected task.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for missing tasks stops once no task record has arrived for this long. It covers a
/// restarted instance's group join after a SIGKILL (the dead member's 6 s session timeout).
const IDLE_GIVE_UP: Duration = Duration::from_secs(20);
/// How long the first start may take to publish its first task (group join, restore).
const FIRST_TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// Input records with where each landed (or was read back from).
#[derive(Default)]
struct Produced {
    records: Vec<(Landed, GenRecord)>,
}

impl Produced {
    fn add(&mut self, landed: Vec<Landed>, batch: Vec<GenRecord>) {
        assert_eq!(landed.len(), batch.len());
        self.records.extend(landed.into_iter().zip(batch));
    }

    fn poison(&self) -> impl Iterator<Item = &(Landed, GenRecord)> {
        self.records.iter().filter(|(_, r)| r.poison.is_some())
    }

    /// The input topic as it really is, read back from the broker: every acknowledged record
    /// where its acknowledgement said, plus any extra copy a producer retry wrote (a broker
    /// killed after storing a batch but before acknowledging it). Expectations are computed
    /// from this, so such copies are expected to be processed too.
    fn read_back(&self, bootstrap: &str, topic: &str) -> Produced {
        let read = support::drain_topic(
            bootstrap,
            topic,
            self.records.len(),
            Duration::from_secs(30),
        );
        let by_payload: HashMap<&[u8], &GenRecord> = self
            .records
            .iter()
            .map(|(_, r)| (r.payload.as_slice(), r))
            .collect();
        let mut out = Produced::default();
        for r in &read {
            let payload = r.payload.as_deref().unwrap_or_default();
            let rec = by_payload.get(payload).unwrap_or_else(|| {
                panic!(
                    "{topic} holds a record this test did not produce at {}:{}",
                    r.partition, r.offset
                )
            });
            out.records.push((
                Landed {
                    partition: r.partition,
                    offset: r.offset,
                },
                (*rec).clone(),
            ));
        }
        let positions: BTreeSet<Landed> = out.records.iter().map(|(l, _)| *l).collect();
        for (landed, _) in &self.records {
            assert!(
                positions.contains(landed),
                "acknowledged input record at {landed:?} is missing from {topic}"
            );
        }
        out
    }
}

fn out_records(batch: &[GenRecord]) -> Vec<OutRecord> {
    batch
        .iter()
        .map(|r| OutRecord::new(r.key.as_bytes(), r.payload.clone()))
        .collect()
}

/// Produces records in chunks from a background thread, as live traffic.
struct LiveFeed {
    sent: Arc<AtomicUsize>,
    total: usize,
    thread: JoinHandle<Vec<Landed>>,
}

impl LiveFeed {
    fn start(bootstrap: &str, topic: &str, batch: &[GenRecord]) -> LiveFeed {
        let producer = Producer::new(bootstrap);
        let topic = topic.to_string();
        let records = out_records(batch);
        let sent = Arc::new(AtomicUsize::new(0));
        let sent2 = sent.clone();
        let thread = std::thread::spawn(move || {
            let mut landed = Vec::with_capacity(records.len());
            for chunk in records.chunks(LIVE_CHUNK) {
                landed.extend(producer.send_all(&topic, chunk));
                sent2.store(landed.len(), Ordering::Relaxed);
                std::thread::sleep(LIVE_CHUNK_EVERY);
            }
            landed
        });
        LiveFeed {
            sent,
            total: batch.len(),
            thread,
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    fn join(self) -> Vec<Landed> {
        self.thread.join().expect("live feed thread")
    }
}

/// What the service must publish for some input, computed with the library.
struct Expected {
    /// `(task_id, revision)` -> the task as JSON, without `emitted_at`.
    tasks: BTreeMap<(String, u32), Value>,
    /// Input position -> `amends.reason` of the dead letter it must become.
    dead_letters: BTreeMap<Landed, String>,
}

fn expected(config_path: &Path, topic: &str, produced: &[(Landed, GenRecord)]) -> Expected {
    let config =
        Config::load(config_path, Vec::<(String, String)>::new()).expect("test config is valid");
    let mut by_partition: BTreeMap<i32, Vec<&(Landed, GenRecord)>> = BTreeMap::new();
    for r in produced {
        by_partition.entry(r.0.partition).or_default().push(r);
    }
    let topic: Arc<str> = Arc::from(topic);
    let mut tasks = BTreeMap::new();
    let mut dead_letters = BTreeMap::new();
    for (partition, mut recs) in by_partition {
        recs.sort_by_key(|(l, _)| l.offset);
        // One processor per partition: the service has one worker (and engine) per partition.
        let mut processor = Processor::new(&config);
        let mut out = Vec::new();
        for (landed, rec) in recs {
            let inbound = InboundRecord {
                topic: topic.clone(),
                partition,
                offset: landed.offset,
                key: Some(rec.key.as_bytes().to_vec()),
                payload: Some(rec.payload.clone()),
                timestamp_ms: None,
            };
            out.clear();
            processor.process(&inbound, EventTime(0), &mut out);
            collect(&out, Some(*landed), &mut tasks, &mut dead_letters);
        }
        // End of input: the reorder buffer empties, as it does in the service once the
        // partitions go idle.
        out.clear();
        processor.flush(EventTime(0), &mut out);
        collect(&out, None, &mut tasks, &mut dead_letters);
    }
    Expected {
        tasks,
        dead_letters,
    }
}

/// Files the outputs of one processing step: tasks by identity, dead letters by the input
/// record (`landed`) they are for.
fn collect(
    out: &[amends::pipeline::OutboundRecord],
    landed: Option<Landed>,
    tasks: &mut BTreeMap<(String, u32), Value>,
    dead_letters: &mut BTreeMap<Landed, String>,
) {
    for o in out {
        match o.kind {
            OutboundKind::Task => {
                let (key, value) = task_identity(&o.payload);
                assert!(
                    tasks.insert(key.clone(), value).is_none(),
                    "the library emitted {key:?} twice"
                );
            }
            OutboundKind::DeadLetter => {
                let reason = o.headers.iter().find(|(k, _)| k == "amends.reason");
                let reason = reason.map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                let landed = landed.expect("dead letters are immediate");
                dead_letters.insert(landed, reason.unwrap_or_default());
            }
            // The model runs detection only; trends are checked on the mock cluster, and
            // changelog records come only from Processor::checkpoint.
            OutboundKind::State
            | OutboundKind::TrendPartial
            | OutboundKind::TrendClosed
            | OutboundKind::TrendSnapshot
            | OutboundKind::TrendAlert => {}
        }
    }
}

/// `(task_id, revision)` and the task as JSON without `emitted_at`. Panics on a payload that is
/// not a recovery task.
fn task_identity(payload: &[u8]) -> ((String, u32), Value) {
    let task: RecoveryTask = serde_json::from_slice(payload).unwrap_or_else(|e| {
        panic!(
            "task payload is not a RecoveryTask ({e}): {}",
            String::from_utf8_lossy(payload)
        )
    });
    let mut value: Value = serde_json::from_slice(payload).expect("task payload is JSON");
    value
        .as_object_mut()
        .expect("task is a JSON object")
        .remove("emitted_at");
    ((task.task_id, task.revision), value)
}

/// The outcome of comparing the task topic with the expectation.
#[derive(Debug, Default)]
struct Tally {
    records: usize,
    distinct: usize,
    /// Copies beyond the first of a `(task_id, revision)`.
    duplicates: usize,
    missing: Vec<(String, u32)>,
    /// Observed `(task_id, revision)` that were not expected (distinct).
    unexpected: BTreeSet<(String, u32)>,
    /// Observed `(task_id, revision)` whose content differs from the expected task (besides
    /// `emitted_at`), with the first differing field.
    mismatched: BTreeMap<(String, u32), String>,
    /// Records whose headers disagree with their payload, or that are keyed wrongly.
    bad_headers: Vec<String>,
}

fn tally(records: &[ReadRecord], exp: &Expected) -> Tally {
    let mut t = Tally {
        records: records.len(),
        ..Tally::default()
    };
    let mut seen: HashMap<(String, u32), usize> = HashMap::new();
    for r in records {
        let payload = r.payload.as_deref().unwrap_or_default();
        let (key, value) = task_identity(payload);
        let revision = key.1.to_string();
        if r.header("amends.task_id") != Some(key.0.as_str())
            || r.header("amends.revision") != Some(revision.as_str())
        {
            t.bad_headers.push(format!(
                "{key:?}: headers task_id={:?} revision={:?}",
                r.header("amends.task_id"),
                r.header("amends.revision")
            ));
        }
        if r.key_str() != value.get("customer_id").and_then(Value::as_str) {
            t.bad_headers.push(format!(
                "{key:?}: record key {:?} is not the customer id",
                r.key_str()
            ));
        }
        match exp.tasks.get(&key) {
            None => {
                t.unexpected.insert(key.clone());
            }
            Some(want) if *want != value => {
                t.mismatched
                    .entry(key.clone())
                    .or_insert_with(|| first_difference(want, &value));
            }
            Some(_) => {}
        }
        *seen.entry(key).or_default() += 1;
    }
    t.distinct = seen.len();
    t.duplicates = seen.values().map(|n| n - 1).sum();
    t.missing = exp
        .tasks
        .keys()
        .filter(|k| !seen.contains_key(*k))
        .cloned()
        .collect();
    t
}

fn first_difference(want: &Value, got: &Value) -> String {
    if let (Some(w), Some(g)) = (want.as_object(), got.as_object()) {
        let keys: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
        for k in keys {
            if w.get(k) != g.get(k) {
                return format!(
                    "field `{k}`: expected {}, got {}",
                    show(w.get(k)),
                    show(g.get(k))
                );
            }
        }
    }
    "differs".into()
}

fn show(v: Option<&Value>) -> String {
    let s = v.map(Value::to_string).unwrap_or_else(|| "(absent)".into());
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s,
    }
}

fn all_expected_present(records: &[ReadRecord], exp: &Expected) -> bool {
    let seen: BTreeSet<(String, u32)> = records
        .iter()
        .filter_map(|r| {
            Some((
                r.header("amends.task_id")?.to_string(),
                r.header("amends.revision")?.parse().ok()?,
            ))
        })
        .collect();
    exp.tasks.keys().all(|k| seen.contains(k))
}

/// Polls the task topic until every expected task is there, failing fast if the service dies.
/// Gives up after `timeout`, or once nothing new has arrived for [`IDLE_GIVE_UP`].
fn wait_for_all(
    reader: &mut TopicReader,
    exp: &Expected,
    service: &mut AmendsProcess,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last_new = Instant::now();
    loop {
        if all_expected_present(reader.records(), exp) {
            return true;
        }
        service.assert_running();
        if Instant::now() >= deadline || last_new.elapsed() >= IDLE_GIVE_UP {
            return false;
        }
        if reader.poll_for(Duration::from_millis(250)) > 0 {
            last_new = Instant::now();
        }
    }
}

/// Waits until the service has published at least one task.
fn wait_for_first_task(reader: &mut TopicReader, service: &mut AmendsProcess) {
    let deadline = Instant::now() + FIRST_TASK_TIMEOUT;
    while reader.records().is_empty() {
        service.assert_running();
        assert!(
            Instant::now() < deadline,
            "amends published no task within {FIRST_TASK_TIMEOUT:?}"
        );
        reader.poll_for(Duration::from_millis(20));
    }
}

/// Writes observed and expected tasks as JSON lines into the work dir, for a post-mortem.
fn dump(dir: &Path, records: &[ReadRecord], exp: &Expected) {
    let mut f = std::fs::File::create(dir.join("tasks-observed.jsonl")).expect("dump file");
    for r in records {
        let _ = writeln!(
            f,
            "{}",
            String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default())
        );
    }
    let mut f = std::fs::File::create(dir.join("tasks-expected.jsonl")).expect("dump file");
    for v in exp.tasks.values() {
        let _ = writeln!(f, "{v}");
    }
}

fn check_dead_letters(bootstrap: &str, topics: &Topics, produced: &Produced, exp: &Expected) {
    let poison: Vec<&(Landed, GenRecord)> = produced.poison().collect();
    assert_eq!(
        exp.dead_letters.len(),
        poison.len(),
        "the library dead-letters {} inputs but {} poison records were produced: the test's event \
         generator is out of step with the input contract",
        exp.dead_letters.len(),
        poison.len()
    );
    let records = support::drain_topic(
        bootstrap,
        &topics.dead_letter,
        poison.len(),
        Duration::from_secs(30),
    );
    let mut by_source: BTreeMap<Landed, Vec<&ReadRecord>> = BTreeMap::new();
    for r in &records {
        assert_eq!(
            r.header("amends.source.topic"),
            Some(topics.touchpoints.as_str()),
            "dead letter names its source topic"
        );
        let partition = r
            .header("amends.source.partition")
            .and_then(|v| v.parse().ok());
        let offset = r
            .header("amends.source.offset")
            .and_then(|v| v.parse().ok());
        let landed = Landed {
            partition: partition.expect("amends.source.partition header"),
            offset: offset.expect("amends.source.offset header"),
        };
        by_source.entry(landed).or_default().push(r);
    }
    for (landed, rec) in &poison {
        let copies = by_source.get(landed).unwrap_or_else(|| {
            panic!(
                "poison record ({}) at partition {} offset {} is not in the dead-letter topic",
                rec.poison.unwrap_or("?"),
                landed.partition,
                landed.offset
            )
        });
        for dl in copies {
            let reason = dl.header("amends.reason").unwrap_or_default();
            assert_eq!(
                reason, exp.dead_letters[landed],
                "amends.reason of the dead letter for {:?}",
                rec.poison
            );
            assert_eq!(
                dl.payload.as_deref(),
                Some(rec.payload.as_slice()),
                "dead letter keeps the original bytes"
            );
            assert_eq!(
                dl.key_str(),
                Some(rec.key.as_str()),
                "dead letter keeps the original key"
            );
        }
    }
    let unexpected: Vec<&Landed> = by_source
        .keys()
        .filter(|l| !exp.dead_letters.contains_key(l))
        .collect();
    assert!(
        unexpected.is_empty(),
        "dead letters for valid inputs: {unexpected:?}"
    );
    println!(
        "dead letters: {} poison records, {} dead-letter records",
        poison.len(),
        records.len()
    );
}

fn assert_tally(t: &Tally, exp: &Expected, allow_duplicates: bool) {
    println!(
        "tasks: expected {} (task_id, revision) pairs; seen {} distinct in {} records; {} duplicates; \
         {} missing; {} unexpected; {} mismatched",
        exp.tasks.len(),
        t.distinct,
        t.records,
        t.duplicates,
        t.missing.len(),
        t.unexpected.len(),
        t.mismatched.len()
    );
    let ids = |v: &mut dyn Iterator<Item = &(String, u32)>| {
        v.take(8)
            .map(|(id, r)| format!("{id}@{r}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut problems = Vec::new();
    if !t.missing.is_empty() {
        problems.push(format!(
            "{} expected tasks never arrived, e.g. {}",
            t.missing.len(),
            ids(&mut t.missing.iter())
        ));
    }
    if !t.unexpected.is_empty() {
        problems.push(format!(
            "{} (task_id, revision) pairs arrived that were not expected, e.g. {}",
            t.unexpected.len(),
            ids(&mut t.unexpected.iter())
        ));
    }
    if !t.mismatched.is_empty() {
        let eg: Vec<String> = t
            .mismatched
            .iter()
            .take(5)
            .map(|((id, r), d)| format!("{id}@{r}: {d}"))
            .collect();
        problems.push(format!(
            "{} (task_id, revision) pairs arrived with other content than expected (besides emitted_at), e.g.\n    {}",
            t.mismatched.len(),
            eg.join("\n    ")
        ));
    }
    if !t.bad_headers.is_empty() {
        problems.push(format!(
            "task records with bad headers or keys: {:?}",
            &t.bad_headers[..t.bad_headers.len().min(5)]
        ));
    }
    if !allow_duplicates && t.duplicates > 0 {
        problems.push(format!(
            "{} re-sent task records after a graceful stop (expected none)",
            t.duplicates
        ));
    }
    if !problems.is_empty() && (!t.unexpected.is_empty() || !t.mismatched.is_empty()) {
        problems.push(
            "hint: new task ids or different revisions/counts after a restart usually mean the restarted \
             instance did not resume with the per-customer state it had (design.md: state is restored \
             from the changelog topic before input is processed)"
                .into(),
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What happens mid-stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGKILL the service, then start it again.
    Kill9,
    /// SIGTERM the service (it must exit 0 in time), then start it again.
    Sigterm,
    /// SIGKILL the broker (SQLite storage) and start it again; the service keeps running.
    BrokerKill9,
}

fn stop_mid_stream_and_restart(stop: Stop, seed: u64) {
    let mut tansu = if stop == Stop::BrokerKill9 {
        Tansu::start_durable()
    } else {
        Tansu::start()
    };
    let bootstrap = tansu.bootstrap();
    let topics = Topics::unique("e2e");
    topics.create(&bootstrap, PARTITIONS);
    let work = TestDir::new("amends-e2e-");
    let mut cfg = ServiceConfig::new(&bootstrap, &topics);
    let shutdown = format!("{}s", SHUTDOWN_TIMEOUT.as_secs());
    cfg.shutdown_timeout = &shutdown;
    let config_path = support::write_config(work.path(), &cfg);

    // Event time close to now and strictly increasing, so no watermark logic can call it late.
    let step_ms = 200;
    let start_ms = support::now_ms() - ((FIRST_BATCH + LIVE_BATCH) as i64 + 100) * step_ms;
    let mut gen = EventGen::new(seed, CUSTOMERS, start_ms, step_ms);
    let first = gen.batch(FIRST_BATCH, POISON_PER_BATCH);
    let live = gen.batch(LIVE_BATCH, POISON_PER_BATCH);

    let producer = Producer::new(&bootstrap);
    let mut produced = Produced::default();
    produced.add(
        producer.send_all(&topics.touchpoints, &out_records(&first)),
        first,
    );
    let first_expected = expected(&config_path, &topics.touchpoints, &produced.records);
    println!(
        "first batch: {} records, {} expected tasks",
        produced.records.len(),
        first_expected.tasks.len()
    );
    assert!(
        first_expected.tasks.len() > 100,
        "the generator should yield plenty of tasks"
    );

    let mut service = AmendsProcess::start(&config_path);
    let mut reader = TopicReader::new(&bootstrap, &topics.recovery_tasks);
    wait_for_first_task(&mut reader, &mut service);
    let feed = LiveFeed::start(&bootstrap, &topics.touchpoints, &live);
    while feed.sent() < feed.total / 3 {
        service.assert_running();
        reader.poll_for(Duration::from_millis(20));
    }
    reader.poll_for(Duration::from_millis(50));
    let (visible, sent) = (reader.records().len(), feed.sent());
    let t0 = Instant::now();
    match stop {
        Stop::Kill9 => service.kill9(),
        Stop::Sigterm => {
            service.sigterm();
            let status = service.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(5));
            assert!(
                status.success(),
                "amends exited with {status} after SIGTERM mid-stream"
            );
            println!("graceful stop mid-stream took {:?}", t0.elapsed());
        }
        Stop::BrokerKill9 => tansu.kill9(),
    }
    println!("stopped ({stop:?}) with {visible} task records visible, {sent} of {} live records produced", feed.total);
    // Traffic keeps arriving (or waiting in the producer, while the broker is down).
    std::thread::sleep(Duration::from_millis(1000));
    match stop {
        Stop::Kill9 | Stop::Sigterm => service.restart(),
        Stop::BrokerKill9 => tansu.restart(),
    }
    let t1 = Instant::now();
    let live_landed = feed.join();
    produced.add(live_landed, live);
    let input = produced.read_back(&bootstrap, &topics.touchpoints);
    let exp = expected(&config_path, &topics.touchpoints, &input.records);
    println!(
        "all input: {} records produced, {} in the topic, {} expected tasks",
        produced.records.len(),
        input.records.len(),
        exp.tasks.len()
    );

    let complete = wait_for_all(&mut reader, &exp, &mut service, CATCH_UP_TIMEOUT);
    println!(
        "after restart: all expected tasks present = {complete}, after {:?}",
        t1.elapsed()
    );
    // Anything still in flight (duplicates, stray revisions) gets a moment to show up.
    while reader.poll_for(Duration::from_secs(1)) > 0 {}
    dump(work.path(), reader.records(), &exp);
    check_dead_letters(&bootstrap, &topics, &input, &exp);
    let t = tally(reader.records(), &exp);
    assert_tally(&t, &exp, stop != Stop::Sigterm);

    // A restarted instance rebuilds each partition's state up to the committed offset; the
    // group consumer must resume exactly there. The service says so when it does not.
    for (_, err) in service.logs() {
        let log = std::fs::read_to_string(err).unwrap_or_default();
        assert!(
            !log.contains("first record after restore is not at the offset"),
            "{}: a partition resumed away from the offset its state was rebuilt to",
            err.display()
        );
    }

    let t2 = Instant::now();
    service.sigterm();
    let status = service.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(5));
    println!(
        "final SIGTERM: exited with {status} after {:?}",
        t2.elapsed()
    );
    assert!(
        status.success(),
        "amends exited with {status} after SIGTERM"
    );
    drop(tansu);
}

#[test]
fn kill9_mid_stream_then_restart_finds_every_task() {
    stop_mid_stream_and_restart(Stop::Kill9, 0xa11ce);
}

#[test]
fn sigterm_mid_stream_then_restart_loses_and_repeats_nothing() {
    stop_mid_stream_and_restart(Stop::Sigterm, 0xb0b);
}

#[test]
fn broker_kill9_mid_stream_then_restart_finds_every_task() {
    stop_mid_stream_and_restart(Stop::BrokerKill9, 0xcafe);
}

/// `amends simulate --brokers` produces the same seeded traffic a file run writes, keyed by
/// customer, to a real Kafka-protocol broker.
#[test]
fn simulate_produces_seeded_traffic_to_a_broker() {
    let tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    let topic = support::unique_name("sim");
    support::create_topics(&bootstrap, &[(&topic, 3)]);
    let dir = TestDir::new("amends-sim-");
    let file = dir.path().join("sim.jsonl");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_amends"))
            .args(["simulate", "--customers", "40", "--seed", "9"])
            .args(args)
            .output()
            .expect("amends simulate runs");
        assert!(
            o.status.success(),
            "amends simulate failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["--output", file.to_str().expect("utf-8 path")]);
    run(&["--brokers", &bootstrap, "--topic", &topic]);
    let lines: Vec<Vec<u8>> = std::fs::read(&file)
        .expect("simulated file")
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert!(
        lines.len() > 200,
        "40 customers give a few hundred events, got {}",
        lines.len()
    );
    let got = support::drain_topic(&bootstrap, &topic, lines.len(), Duration::from_secs(30));
    let mut want = lines.clone();
    let mut have: Vec<Vec<u8>> = got
        .iter()
        .map(|r| r.payload.clone().unwrap_or_default())
        .collect();
    want.sort();
    have.sort();
    assert_eq!(
        have.len(),
        want.len(),
        "every simulated record arrives once"
    );
    assert!(
        have == want,
        "the broker holds exactly the records the file run wrote"
    );
    for r in &got {
        let payload: Value =
            serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).expect("JSON event");
        assert_eq!(
            r.key_str(),
            payload["customer_id"].as_str(),
            "records are keyed by customer id"
        );
    }
}

//! End-to-end throughput and latency (issue 5, benchmarks, not timed tests): the real
//! pipeline against a broker, next to a plain rdkafka consumer reading the same topic.
//!
//! ```sh
//! cargo test --release --test e2e_perf -- --ignored --nocapture
//! ```
//!
//! Environment:
//! - `AMENDS_PERF_MODE`: `at_least_once`, `exactly_once` or `both` (default).
//! - `AMENDS_PERF_EVENTS`: simulated events pre-loaded for the throughput phase (default
//!   500,000).
//! - `AMENDS_PERF_BROKERS`: an external broker (e.g. a Tansu started by hand) instead of
//!   librdkafka's in-process mock cluster; topics are created through the admin API.
//!
//! For each mode:
//! 1. A plain `BaseConsumer` that does nothing reads the events, produced in chunks of 30,000
//!    (the mock cluster keeps only 5 MB per partition, so a reader must not fall further
//!    behind): per chunk, records read from the end of its production until all are read,
//!    over that time. The median chunk is the reference rate.
//! 2. amends runs on a 3-partition input topic fed the same way, measured the same way with
//!    the records it has handed to its workers (a worker's queue is bounded, so this moves
//!    at the processing rate).
//! 3. Then events are produced at half amends' rate for up to 20 s while a reader on the task
//!    topic (read_committed) notes when each task arrives: the event-to-task latency is that
//!    time minus the time its last evidence event was sent, for tasks not fired by a timer.
//!
//! The broker, the producer, the reader and amends share the machine.

use amends::config::{Config, Guarantee};
use amends::domain::RecoveryTask;
use amends::kafka;
use amends::sim::{SimConfig, Simulator};
use amends::telemetry::Health;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARTITIONS: i32 = 3;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn config(brokers: &str, name: &str, guarantee: Guarantee) -> Config {
    let mut c = Config::defaults();
    c.kafka.brokers = brokers.to_string();
    c.kafka.group_id = format!("{name}-group");
    c.kafka.guarantee = guarantee;
    c.http.listen = String::new();
    c.input.touchpoints.topics = vec![format!("{name}-touchpoints")];
    c.input.recovery_outcomes.topics = vec![format!("{name}-outcomes")];
    c.output.recovery_tasks = format!("{name}.tasks");
    c.output.dead_letter = format!("{name}.dead-letter");
    c.output.trend_partials = format!("{name}.trend-partials");
    c.output.trend_snapshots = format!("{name}.trend-snapshots");
    c.output.trend_alerts = format!("{name}.trend-alerts");
    c.output.changelog = format!("{name}.changelog");
    c.kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    c
}

/// The plain consumer's copy of the input.
fn plain_topic(c: &Config) -> String {
    format!("{}.plain", c.input.touchpoints.topics[0])
}

fn topics(c: &Config) -> Vec<String> {
    vec![
        plain_topic(c),
        c.input.touchpoints.topics[0].clone(),
        c.input.recovery_outcomes.topics[0].clone(),
        c.output.recovery_tasks.clone(),
        c.output.dead_letter.clone(),
        c.output.trend_partials.clone(),
        c.output.trend_snapshots.clone(),
        c.output.trend_alerts.clone(),
        c.output.changelog.clone(),
    ]
}

async fn create_topics(brokers: &str, names: &[String]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
}

/// Produces `records` as fast as the producer takes them; returns when all are acknowledged.
async fn preload(brokers: &str, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for chunk in records.chunks(5_000) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|(k, v)| p.send(FutureRecord::to(topic).key(k).payload(v), Timeout::Never))
            .collect();
        for r in futures_util::future::join_all(sends).await {
            r.map_err(|(e, _)| e).expect("preload");
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Input records per throughput chunk: about 10 MB, under the mock cluster's 5 MB per
/// partition (it trims older records beyond that, so a reader more than that far behind
/// loses them).
const CHUNK: usize = 30_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The plain consumer's rate, doing nothing with what it reads: per chunk, the records it
/// reads from the end of the chunk's production until it has them all, over that time.
async fn plain_consumer(brokers: &str, topic: &str, chunks: &[&[(Vec<u8>, Vec<u8>)]]) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "plain-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::End)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    // Let the assignment settle at the end of the (empty or earlier) topic.
    for _ in 0..10 {
        c.poll(Duration::from_millis(50));
    }
    let mut rates = Vec::new();
    for chunk in chunks {
        preload(brokers, topic, chunk).await;
        let t = Instant::now();
        let mut n = 0;
        while n < chunk.len() && t.elapsed() < Duration::from_secs(60) {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                n += 1;
            }
        }
        assert_eq!(n, chunk.len(), "the plain consumer read the chunk");
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    median(rates)
}

/// amends' rate: per chunk, the records handed to its workers from the end of the chunk's
/// production until all are (a worker's queue is bounded, so this moves at the processing
/// rate), over that time. Returns the median, and when the last chunk was all taken.
async fn amends_rate(
    health: &Health,
    brokers: &str,
    topic: &str,
    chunks: &[&[(Vec<u8>, Vec<u8>)]],
) -> f64 {
    let mut rates = Vec::new();
    let mut target = health.records();
    for chunk in chunks {
        target += chunk.len() as u64;
        preload(brokers, topic, chunk).await;
        let t = Instant::now();
        let from = health.records();
        while health.records() < target && t.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(health.records() >= target, "amends took the chunk");
        if target - from > chunk.len() as u64 / 10 {
            rates.push((target - from) as f64 / t.elapsed().as_secs_f64());
        }
    }
    median(rates)
}

/// Reads the task topic from its end, noting when each task arrives.
fn task_reader(
    brokers: &str,
    topic: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(i64, RecoveryTask)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "task-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::End)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                let at = now_ms();
                if let Ok(t) = serde_json::from_slice::<RecoveryTask>(m.payload().unwrap_or(&[])) {
                    out.push((at, t));
                }
            }
        }
        out
    })
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run_mode(brokers: &str, name: &str, guarantee: Guarantee, events: usize) {
    let config = config(brokers, name, guarantee);
    let topic = config.input.touchpoints.topics[0].clone();
    // `events` for the throughput phase, as many again for the latency phase (which sends
    // at most 20 s of them).
    let records: Vec<(Vec<u8>, Vec<u8>)> = Simulator::new(SimConfig::for_events(events * 2))
        .iter()
        .map(|r| (r.key, r.payload))
        .collect();
    let (first, rest) = records.split_at(records.len() / 2);
    let chunks: Vec<&[(Vec<u8>, Vec<u8>)]> = first.chunks(CHUNK).collect();
    // The plain consumer reads its own copy of the chunks, from a topic of its own.
    let plain = plain_consumer(brokers, &plain_topic(&config), &chunks).await;

    let stop = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::default());
    let handle = tokio::spawn(kafka::run(config.clone(), stop.clone(), health.clone()));
    let ready = Instant::now();
    while health.ready().is_err() && ready.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sustained = amends_rate(&health, brokers, &topic, &chunks).await;

    // Half the sustained rate, for 20 s (or until the rest of the input runs out).
    let rate = (sustained / 2.0).max(1.0);
    let sent: Arc<Mutex<HashMap<(i32, i64), i64>>> = Default::default();
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = task_reader(brokers, &config.output.recovery_tasks, reader_stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let started = Instant::now();
    let mut pending = Vec::new();
    for (i, (k, v)) in rest.iter().enumerate() {
        let due = Duration::from_secs_f64(i as f64 / rate);
        if due > Duration::from_secs(20) {
            break;
        }
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let at = now_ms();
        let fut = match p.send_result(FutureRecord::to(&topic).key(k).payload(v)) {
            Ok(f) => f,
            Err((e, _)) => panic!("producing at half rate: {e}"),
        };
        let sent = sent.clone();
        pending.push(tokio::spawn(async move {
            if let Ok(Ok(d)) = fut.await {
                sent.lock().unwrap().insert((d.partition, d.offset), at);
            }
        }));
    }
    let produced = pending.len();
    for h in pending {
        let _ = h.await;
    }
    // Let the last ones through (idle partitions release their reorder buffers).
    tokio::time::sleep(Duration::from_secs(8)).await;
    reader_stop.store(true, Ordering::Relaxed);
    let tasks = reader.join().expect("reader");
    stop.store(true, Ordering::Relaxed);
    let report = handle.await.expect("task").expect("pipeline stops cleanly");
    let sent = sent.lock().unwrap();
    let mut latencies: Vec<i64> = tasks
        .iter()
        .filter(|(_, t)| t.fired_by.is_none())
        .filter_map(|(at, t)| {
            let e = t.evidence.last()?;
            sent.get(&(e.partition, e.offset)).map(|s| at - s)
        })
        .collect();
    latencies.sort_unstable();
    println!(
        "| {guarantee:?} | {} in chunks of {CHUNK} | {sustained:.0} | {plain:.0} | {:.0} % | {rate:.0}/s for {:.0} s: {produced} events, {} tasks | {} | {} | {} |",
        first.len(),
        100.0 * sustained / plain,
        produced as f64 / rate,
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        report.records,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on purpose (see the module doc)"]
async fn end_to_end_throughput_and_latency() {
    if let Ok(filter) = std::env::var("AMENDS_TEST_LOG") {
        amends::telemetry::logging::init(&amends::config::TelemetryConfig {
            log_level: filter,
            ..Default::default()
        });
    }
    let events: usize = std::env::var("AMENDS_PERF_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let mode = std::env::var("AMENDS_PERF_MODE").unwrap_or_else(|_| "both".into());
    let modes: Vec<Guarantee> = match mode.as_str() {
        "at_least_once" => vec![Guarantee::AtLeastOnce],
        "exactly_once" => vec![Guarantee::ExactlyOnce],
        _ => vec![Guarantee::AtLeastOnce, Guarantee::ExactlyOnce],
    };
    println!("| mode | throughput input | amends events/s (median of chunks) | plain consumer events/s | ratio | latency phase | p50 ms | p99 ms | records polled |\n|---|---|---|---|---|---|---|---|---|");
    for (i, g) in modes.into_iter().enumerate() {
        let name = format!("perf{i}-{}", now_ms() % 100_000);
        match std::env::var("AMENDS_PERF_BROKERS") {
            Ok(brokers) => {
                let c = config(&brokers, &name, g);
                create_topics(&brokers, &topics(&c)).await;
                run_mode(&brokers, &name, g, events).await;
            }
            Err(_) => {
                let mock = MockCluster::new(1).expect("mock cluster");
                let brokers = mock.bootstrap_servers();
                for t in topics(&config(&brokers, &name, g)) {
                    mock.create_topic(&t, PARTITIONS, 1).expect("topic");
                }
                run_mode(&brokers, &name, g, events).await;
                drop(mock);
            }
        }
    }
}

//! Pipeline tests on librdkafka's in-process mock cluster: the real consumer group, producer,
//! offsets and rebalance code, with no broker process. Expected tasks are computed by running
//! the same `Processor` over each partition's records in offset order, using the partitions and
//! offsets the producer actually got, so contents (evidence included) must match exactly.

use amends::config::Config;
use amends::domain::{EventTime, RecoveryTask};
use amends::kafka;
use amends::pipeline::{InboundRecord, OutboundKind, Processor};
use amends::telemetry::Health;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;

struct Produced {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    payload: Vec<u8>,
}

impl Produced {
    /// The record as the service's consumer hands it over.
    fn inbound(&self, topic: &str) -> InboundRecord {
        InboundRecord {
            topic: Arc::from(topic),
            partition: self.partition,
            offset: self.offset,
            key: Some(self.key.clone()),
            payload: Some(self.payload.clone()),
            timestamp_ms: None,
        }
    }
}

struct Env {
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    config: Config,
}

fn env(name: &str) -> Env {
    let mock = MockCluster::new(1).expect("mock cluster");
    let mut config = Config::defaults();
    config.kafka.brokers = mock.bootstrap_servers();
    config.kafka.group_id = format!("{name}-group");
    config.http.listen = String::new();
    config.input.touchpoints.topics = vec![format!("{name}-touchpoints")];
    config.input.recovery_outcomes.topics = vec![format!("{name}-outcomes")];
    config.output.recovery_tasks = format!("{name}.tasks");
    config.output.dead_letter = format!("{name}.dead-letter");
    config.output.trend_partials = format!("{name}.trend-partials");
    config.output.trend_snapshots = format!("{name}.trend-snapshots");
    config.output.trend_alerts = format!("{name}.trend-alerts");
    config.pipeline.shutdown_timeout = amends::config::Dur::secs(10);
    // The traffic is in event-time order per partition, so no reorder delay is needed; a
    // partition that has been read to its end and stops receiving stops holding the
    // watermark back after 3 s, which releases the last events soon after the input ends.
    // 3 s is shorter than the mock coordinator's rebalance pause (session.timeout.ms - 1 s =
    // 5 s) on purpose: a stalled partition with unread records must not count as idle, or
    // the watermark would jump past it and its records would become late.
    config.detect.out_of_orderness = amends::config::Dur::secs(0);
    config.detect.idle_partition_after = amends::config::Dur::secs(3);
    // Trend windows wait for every partition however long a hand-over takes, so snapshots
    // can be compared exactly (none goes out incomplete first).
    config.trend.complete_wait = amends::config::Dur::secs(600);
    // Responses due in 10 days: no overdue timer falls due within the traffic (15 hours), so
    // which timers have fired at the end does not depend on how far each instance's watermark
    // got (the highest event time *it* received, then the wall clock). Overdue escalation has
    // its own tests (detect::loop_tests, scenario 043).
    for r in [
        &mut config.policy.response.minor,
        &mut config.policy.response.major,
        &mut config.policy.response.critical,
    ] {
        r.within = amends::config::Dur::days(10);
    }
    // The mock coordinator makes a joining member wait session.timeout.ms - 1 s after a member
    // leaves; a short session keeps restart tests fast.
    config
        .kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    for t in [
        &config.input.touchpoints.topics[0],
        &config.input.recovery_outcomes.topics[0],
        &config.output.recovery_tasks,
        &config.output.dead_letter,
        &config.output.trend_partials,
        &config.output.trend_snapshots,
        &config.output.trend_alerts,
        &config.output.changelog,
    ] {
        mock.create_topic(t, PARTITIONS, 1).expect("create topic");
    }
    Env { mock, config }
}

fn event(
    id: usize,
    customer: usize,
    ty: &str,
    outcome: &str,
    reference: &str,
    minute: usize,
) -> String {
    format!(
        r#"{{"event_id":"e-{id:06}","occurred_at":"2026-11-21T{:02}:{:02}:00.000Z","customer_id":"c-{customer:04}","channel":"shipping","touchpoint":"delivery","type":"{ty}","outcome":"{outcome}","reference":"{reference}","cause":"internal","amount":{}.5,"currency":"EUR","customer":{{"since":"2024-01-0{}","segment":"smb","annual_value":3000.0}}}}"#,
        8 + minute / 60,
        minute % 60,
        40 + id % 300,
        1 + customer % 9
    )
}

/// A mixed stream: most customers succeed, every third has one or two failures (two on the
/// same reference escalate), keyed by customer.
fn traffic(n_customers: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut id = 0;
    for c in 0..n_customers {
        let key = format!("c-{c:04}");
        let order = format!("order-{c}");
        id += 1;
        out.push((
            key.clone(),
            event(id, c, "order_shipped", "success", &order, c),
        ));
        if c % 3 == 0 {
            id += 1;
            out.push((
                key.clone(),
                event(id, c, "delivery_failed", "failure", &order, c + 1),
            ));
        }
        if c % 6 == 0 {
            id += 1;
            out.push((
                key.clone(),
                event(id, c, "delivery_failed", "failure", &order, c + 2),
            ));
        }
    }
    out
}

/// Produces `traffic(n_customers)` to the env's input topic: the topic and what landed where.
async fn produce_traffic(env: &Env, n_customers: usize) -> (String, Vec<Produced>) {
    let topic = env.config.input.touchpoints.topics[0].clone();
    let records: Vec<(String, Vec<u8>)> = traffic(n_customers)
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let produced = produce(&env.config.kafka.brokers, &topic, &records).await;
    (topic, produced)
}

/// Waits up to 30 s for the first task on the tasks topic.
async fn first_tasks_appear(bootstrap: &str, tasks_topic: &str) -> bool {
    wait_until(Duration::from_secs(30), || {
        !tasks_seen(bootstrap, tasks_topic).is_empty()
    })
    .await
}

async fn produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) -> Vec<Produced> {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer");
    let mut out = Vec::new();
    for (key, payload) in records {
        let d = p
            .send(
                FutureRecord::to(topic).key(key.as_bytes()).payload(payload),
                Timeout::Never,
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce input");
        out.push(Produced {
            partition: d.partition,
            offset: d.offset,
            key: key.clone().into_bytes(),
            payload: payload.clone(),
        });
    }
    p.flush(Duration::from_secs(5)).expect("flush");
    out
}

/// Expected task revisions, by (task_id, revision), from the same processing per partition.
fn expected(
    config: &Config,
    topic: &str,
    produced: &[Produced],
) -> BTreeMap<(String, u32), RecoveryTask> {
    expected_with_restart(config, topic, produced, &HashMap::new())
}

/// Expected revisions when the pipeline restarted at `cut[partition]`: state lives in memory
/// until the changelog stage exists, so records from the cut on are processed by a fresh
/// engine, exactly as a restarted instance does.
fn expected_with_restart(
    config: &Config,
    topic: &str,
    produced: &[Produced],
    cut: &HashMap<i32, i64>,
) -> BTreeMap<(String, u32), RecoveryTask> {
    let mut by_partition: BTreeMap<i32, Vec<&Produced>> = BTreeMap::new();
    for p in produced {
        by_partition.entry(p.partition).or_default().push(p);
    }
    let mut out = BTreeMap::new();
    let mut procs = Vec::new();
    for (partition, mut recs) in by_partition {
        recs.sort_by_key(|r| r.offset);
        let mut proc = Processor::new(config);
        let mut outs = Vec::new();
        let cut_at = cut.get(&partition).copied().unwrap_or(i64::MAX);
        for r in recs {
            if r.offset == cut_at {
                proc = Processor::new(config);
            }
            proc.process(&r.inbound(topic), EventTime(0), &mut outs);
        }
        proc.flush(EventTime(0), &mut outs);
        procs.push((proc, outs));
    }
    out.extend(quiet_end(procs));
    out
}

/// The end of the model's run: when every partition has gone quiet the service's watermark
/// moves to the highest event time of all partitions, so timers due before it fire in every
/// partition. Returns every task revision, by (task_id, revision).
fn quiet_end(
    procs: Vec<(Processor, Vec<amends::pipeline::OutboundRecord>)>,
) -> BTreeMap<(String, u32), RecoveryTask> {
    let last = procs
        .iter()
        .map(|(p, _)| p.received_max())
        .max()
        .unwrap_or(EventTime::MIN);
    let mut out = BTreeMap::new();
    for (mut proc, mut outs) in procs {
        proc.advance(
            last,
            EventTime(0),
            amends::detect::FiredBy::EventTime,
            &mut outs,
        );
        for o in outs.into_iter().filter(|o| o.kind == OutboundKind::Task) {
            let t: RecoveryTask = serde_json::from_slice(&o.payload).expect("task json");
            out.insert((t.task_id.clone(), t.revision), t);
        }
    }
    out
}

/// The trend snapshots a single instance produces, by `snapshot_id`: every partition's
/// records through its own `Processor` (a trend source named `topic/partition`, as in the
/// service), then all partials through one merge that waits for every partition. Only windows
/// that close once the watermark reaches the last event time are kept (`end + allowed
/// lateness <= last event`): the service closes the same ones when its partitions go idle.
fn expected_snapshots(
    config: &Config,
    topic: &str,
    produced: &[Produced],
) -> BTreeMap<String, serde_json::Value> {
    let mut by_partition: BTreeMap<i32, Vec<&Produced>> = BTreeMap::new();
    for p in produced {
        by_partition.entry(p.partition).or_default().push(p);
    }
    let mut partials = Vec::new();
    let mut markers = Vec::new();
    let mut last_event = EventTime::MIN;
    for partition in 0..PARTITIONS {
        let mut recs = by_partition.remove(&partition).unwrap_or_default();
        recs.sort_by_key(|r| r.offset);
        let mut proc = Processor::new(config);
        proc.set_trend_source(format!("{topic}/{partition}"));
        let mut outs = Vec::new();
        for r in recs {
            proc.process(&r.inbound(topic), EventTime(0), &mut outs);
        }
        proc.flush(EventTime(0), &mut outs);
        last_event = last_event.max(proc.received_max());
        proc.close_trend_windows(&mut outs);
        for o in outs {
            match o.kind {
                OutboundKind::TrendPartial => partials.push(o),
                OutboundKind::TrendClosed => markers.push(o),
                _ => {}
            }
        }
    }
    let mut merge = Processor::new(config);
    merge.set_trend_sources(PARTITIONS as usize);
    let mut outs = Vec::new();
    for (i, o) in partials.into_iter().chain(markers).enumerate() {
        merge.process(&o.read_back(0, i as i64), EventTime(0), &mut outs);
    }
    let cutoff = last_event.0 - config.detect.allowed_lateness.millis().0;
    let mut want = BTreeMap::new();
    for o in outs
        .into_iter()
        .filter(|o| o.kind == OutboundKind::TrendSnapshot)
    {
        let v: serde_json::Value = serde_json::from_slice(&o.payload).expect("snapshot json");
        if window_end_ms(&v) <= cutoff {
            want.insert(v["snapshot_id"].as_str().unwrap_or_default().to_string(), v);
        }
    }
    want
}

fn window_end_ms(v: &serde_json::Value) -> i64 {
    EventTime::parse(v["window_end"].as_str().unwrap_or_default())
        .expect("window_end")
        .0
}

/// The latest revision of every snapshot on the topic with an id in `want`.
fn snapshots_seen(
    bootstrap: &str,
    topic: &str,
    want: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    let mut seen: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (_, payload) in read_all(bootstrap, topic) {
        let v: serde_json::Value = serde_json::from_slice(&payload).expect("snapshot json");
        let id = v["snapshot_id"].as_str().unwrap_or_default().to_string();
        if !want.contains_key(&id) {
            continue;
        }
        let newer = seen
            .get(&id)
            .is_none_or(|old| old["revision"].as_u64() <= v["revision"].as_u64());
        if newer {
            seen.insert(id, v);
        }
    }
    seen
}

/// Waits for every expected snapshot, then checks them field by field: the instances merged
/// every partition's partials into exactly the single-instance figures, baselines included.
async fn assert_snapshots_match(env: &Env, want: &BTreeMap<String, serde_json::Value>) {
    let bootstrap = env.config.kafka.brokers.clone();
    let topic = env.config.output.trend_snapshots.clone();
    assert!(
        want.len() > 50,
        "the traffic closes enough windows to compare: {}",
        want.len()
    );
    let complete = wait_until(Duration::from_secs(60), || {
        snapshots_seen(&bootstrap, &topic, want).len() == want.len()
    })
    .await;
    let seen = snapshots_seen(&bootstrap, &topic, want);
    assert!(
        complete,
        "{} of {} expected snapshots arrived; missing e.g. {:?}",
        seen.len(),
        want.len(),
        want.keys().find(|k| !seen.contains_key(*k))
    );
    for (id, w) in want {
        let mut got = seen[id].clone();
        // A re-sent partial after a hand-over may raise the revision without changing content.
        got["revision"] = w["revision"].clone();
        if &got != w {
            // Late events count in no window: a watermark running ahead shows up here.
            let dl = read_all(&bootstrap, &env.config.output.dead_letter);
            eprintln!(
                "{} dead letters; the first: {:?}",
                dl.len(),
                dl.first().map(|(h, _)| h)
            );
            // Every version on the topic, to tell a wrong merge from a wrong revision.
            for (_, payload) in read_all(&bootstrap, &topic) {
                let v: serde_json::Value = serde_json::from_slice(&payload).expect("json");
                if v["snapshot_id"] == w["snapshot_id"] {
                    eprintln!("{id}: revision {} complete {} sources {} events {} failures {} tasks {} baseline {}", v["revision"], v["complete"], v["sources_reported"], v["events"], v["failures"], v["tasks_opened"], v.get("baseline").is_some());
                }
            }
        }
        assert_eq!(&got, w, "snapshot {id}");
        assert_eq!(got["complete"], true, "snapshot {id} is complete");
    }
}

type Headers_ = Vec<(String, String)>;

fn read_all(bootstrap: &str, topic: &str) -> Vec<(Headers_, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut eof = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while eof < PARTITIONS && Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let h = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((h, m.payload().unwrap_or_default().to_vec()));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!(
                "reading {topic}: {}",
                e.to_string().chars().take(300).collect::<String>()
            ),
            None => {}
        }
    }
    out
}

fn tasks_seen(bootstrap: &str, topic: &str) -> Vec<RecoveryTask> {
    read_all(bootstrap, topic)
        .into_iter()
        .map(|(_, p)| serde_json::from_slice(&p).expect("task json"))
        .collect()
}

/// A customer id with their incidents' task ids, revisions and statuses.
type Held = (String, Vec<(String, u32, String)>);

/// Every customer a processor holds, with their incidents.
fn incidents_held(p: &Processor) -> Vec<Held> {
    use prost::Message;
    let snap = amends::pb::EngineSnapshot::decode(&p.engine().snapshot()[..]).expect("decodes");
    snap.customers
        .into_iter()
        .map(|c| {
            let incidents = c
                .incidents
                .into_iter()
                .map(|i| (i.task_id, i.revision, i.status))
                .collect();
            (c.customer_id, incidents)
        })
        .collect()
}

fn committed(config: &Config, topic: &str) -> HashMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.kafka.group_id)
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|p| {
            (
                p,
                got.find_partition(topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(-1)
                    .max(0),
            )
        })
        .collect()
}

struct Running {
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Result<kafka::RunReport, kafka::PipelineError>>,
}

fn start(config: &Config) -> Running {
    if std::env::var_os("AMENDS_TEST_LOG").is_some() {
        amends::telemetry::logging::init(&amends::config::TelemetryConfig {
            log_level: "debug,rdkafka=info".into(),
            ..Default::default()
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::default());
    let handle = tokio::spawn(kafka::run(config.clone(), stop.clone(), health.clone()));
    Running {
        health,
        stop,
        handle,
    }
}

impl Running {
    async fn stop(self) -> kafka::RunReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .await
            .expect("pipeline task")
            .expect("pipeline stops cleanly")
    }
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// True when the task topic holds every expected `(task_id, revision)`.
fn all_present(bootstrap: &str, topic: &str, want: &BTreeMap<(String, u32), RecoveryTask>) -> bool {
    let seen: std::collections::HashSet<(String, u32)> = tasks_seen(bootstrap, topic)
        .into_iter()
        .map(|t| (t.task_id, t.revision))
        .collect();
    want.keys().all(|k| seen.contains(k))
}

/// The task topic holds exactly `want`: nothing unexpected, every copy with the expected
/// content (`emitted_at` aside), every expected revision present. Returns (distinct, duplicates).
fn assert_exactly(
    seen: Vec<RecoveryTask>,
    want: &BTreeMap<(String, u32), RecoveryTask>,
) -> (usize, usize) {
    let mut distinct: HashMap<(String, u32), usize> = HashMap::new();
    for t in seen {
        let k = (t.task_id.clone(), t.revision);
        let w = want
            .get(&k)
            .unwrap_or_else(|| {
                let same_incident: Vec<_> = want
                    .values()
                    .filter(|w| w.customer_id == t.customer_id && w.incident == t.incident)
                    .map(|w| (&w.task_id, w.revision, &w.rule, &w.evidence))
                    .collect();
                panic!(
                    "unexpected task {k:?}: {} {} rule {} evidence {:?}; expected for that incident: {same_incident:?}",
                    t.customer_id, t.incident, t.rule, t.evidence
                )
            });
        assert_eq!(
            without_emitted_at(w.clone()),
            without_emitted_at(t),
            "content of {k:?} (duplicates must be the same revision)"
        );
        *distinct.entry(k).or_default() += 1;
    }
    let missing: Vec<&(String, u32)> = want.keys().filter(|k| !distinct.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} expected revisions missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    (distinct.len(), distinct.values().map(|n| n - 1).sum())
}

/// A revision without what says when and by which clock it was processed: a timer that
/// fires on two instances (before and after a hand-over) may be moved by event time on one
/// and by the wall clock on the other; the revision is the same.
fn without_emitted_at(mut t: RecoveryTask) -> RecoveryTask {
    t.emitted_at.clear();
    t.fired_by = None;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_have_the_expected_content_and_every_poison_kind_is_dead_lettered() {
    let env = env("content");
    let topic = env.config.input.touchpoints.topics[0].clone();
    let good = traffic(60);
    // All poison on one customer key, followed by a good failure on the same key: the
    // partition must keep flowing past the poison.
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{\"event_id\": ".to_vec()),
        ("invalid_utf8", b"{\"event_id\":\"\xff\xfe\"}".to_vec()),
        (
            "missing_field",
            event(900, 7, "delivery_failed", "failure", "p-1", 5)
                .replace("\"customer_id\":\"c-0007\",", "")
                .into_bytes(),
        ),
        (
            "wrong_type",
            event(901, 7, "delivery_failed", "failure", "p-1", 5)
                .replace("\"amount\":", "\"amount\":\"x\",\"y\":")
                .into_bytes(),
        ),
        (
            "unknown_enum",
            event(902, 7, "delivery_failed", "sideways", "p-1", 5).into_bytes(),
        ),
        (
            "bad_timestamp",
            event(903, 7, "delivery_failed", "failure", "p-1", 5)
                .replace("2026-11-21T08:05:00.000Z", "21.11.2026 08:05")
                .into_bytes(),
        ),
        (
            "oversize",
            format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10)).into_bytes(),
        ),
    ];
    let mut records: Vec<(String, Vec<u8>)> = good
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (_, p) in &poison {
        records.push(("c-0007".into(), p.clone()));
    }
    records.push((
        "c-0007".into(),
        event(999, 7, "delivery_failed", "failure", "after-poison", 200).into_bytes(),
    ));
    let produced = produce(&env.config.kafka.brokers, &topic, &records).await;
    let want = expected(&env.config, &topic, &produced);
    assert!(
        want.len() >= 30,
        "the traffic should produce a meaningful number of tasks, got {}",
        want.len()
    );

    let run = start(&env.config);
    let bootstrap = env.config.kafka.brokers.clone();
    let tasks_topic = env.config.output.recovery_tasks.clone();
    let ok = wait_until(Duration::from_secs(40), || {
        tasks_seen(&bootstrap, &tasks_topic).len() >= want.len()
    })
    .await;
    run.stop().await;
    assert!(ok, "timed out waiting for {} tasks", want.len());

    let seen = tasks_seen(&bootstrap, &tasks_topic);
    let mut by_id: BTreeMap<(String, u32), RecoveryTask> = BTreeMap::new();
    for t in seen {
        let k = (t.task_id.clone(), t.revision);
        if let Some(prev) = by_id.get(&k) {
            assert_eq!(
                without_emitted_at(prev.clone()),
                without_emitted_at(t.clone()),
                "a duplicate must be identical"
            );
        }
        by_id.insert(k, t);
    }
    assert_eq!(
        by_id.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "exactly the expected (task_id, revision) pairs"
    );
    for (k, w) in &want {
        assert_eq!(
            without_emitted_at(by_id[k].clone()),
            without_emitted_at(w.clone()),
            "content of {k:?}"
        );
    }
    let after = want
        .values()
        .find(|t| t.incident == "after-poison")
        .expect("the failure after the poison opened a task");
    assert_eq!(
        (
            after.customer_id.as_str(),
            after.rule.as_str(),
            after.revision
        ),
        ("c-0007", "breaking_point", 1)
    );
    let escalated = want.values().filter(|t| t.revision == 2).count();
    assert_eq!(
        escalated, 10,
        "customers 0, 6, 12 ... 54 had a second failure on the same order"
    );

    let dead = read_all(&bootstrap, &env.config.output.dead_letter);
    assert_eq!(
        dead.len(),
        poison.len(),
        "one dead letter per poison record"
    );
    let reason_of = |payload: &[u8]| -> (String, String) {
        let (h, _) = dead
            .iter()
            .find(|(_, p)| p == payload)
            .expect("poison payload present, untouched");
        let get = |k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("amends.source.topic"), topic);
        assert!(!get("amends.detail").is_empty());
        (get("amends.reason"), get("amends.field"))
    };
    let expect = [
        ("invalid_json", "decode", "event_id"),
        ("invalid_utf8", "decode", ""),
        ("missing_field", "validation", "customer_id"),
        ("wrong_type", "decode", "amount"),
        ("unknown_enum", "validation", "outcome"),
        ("bad_timestamp", "validation", "occurred_at"),
        ("oversize", "too_large", ""),
    ];
    for ((kind, payload), (k2, reason, field)) in poison.iter().zip(expect) {
        assert_eq!(*kind, k2);
        assert_eq!(
            reason_of(payload),
            (reason.to_string(), field.to_string()),
            "{kind}"
        );
    }
    let done = committed(&env.config, &topic);
    for p in 0..PARTITIONS {
        let high = produced
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset + 1)
            .max()
            .unwrap_or(0);
        assert_eq!(
            done[&p], high,
            "partition {p} committed to its end after a clean stop"
        );
    }
    drop(env.mock);
}

/// Stops a pipeline mid-run and checks the at-least-once invariant: every input below the
/// committed offset has all its tasks delivered. A second pipeline then finishes the job and
/// every expected task is there, with duplicates only as identical revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_only_after_delivery_across_a_stop_and_restart() {
    let env = env("restart");
    let (topic, produced) = produce_traffic(&env, 900).await;
    let uncut = expected(&env.config, &topic, &produced);
    // Slow the broker so the stop lands while deliveries are in flight.
    env.mock
        .broker_round_trip_time(1, Duration::from_millis(30))
        .expect("rtt");
    let bootstrap = env.config.kafka.brokers.clone();
    let tasks_topic = env.config.output.recovery_tasks.clone();

    let first = start(&env.config);
    assert!(
        first_tasks_appear(&bootstrap, &tasks_topic).await,
        "first tasks appear"
    );
    first.stop().await;
    let seen_after_first = tasks_seen(&bootstrap, &tasks_topic);
    let done = committed(&env.config, &topic);
    let delivered: std::collections::HashSet<(String, u32)> = seen_after_first
        .iter()
        .map(|t| (t.task_id.clone(), t.revision))
        .collect();
    let mut checked = 0;
    for t in uncut.values() {
        // A revision a timer fired (a missed promise, an overdue task) is caused by the
        // watermark passing its deadline, not by the input its evidence ends with.
        if t.fired_by.is_some() {
            continue;
        }
        let e = t.evidence.last().expect("evidence");
        if e.offset < done[&e.partition] {
            checked += 1;
            assert!(
                delivered.contains(&(t.task_id.clone(), t.revision)),
                "input {}/{} is committed but its task {} rev {} was not delivered",
                e.partition,
                e.offset,
                t.task_id,
                t.revision
            );
        }
    }
    eprintln!(
        "first run: {} task revisions delivered, {checked} covered by committed offsets {done:?}",
        delivered.len()
    );
    let total: i64 = produced.len() as i64;
    assert!(
        done.values().sum::<i64>() > 0 && done.values().sum::<i64>() < total,
        "the stop landed mid-run: {done:?} of {total}"
    );
    // The restarted pipeline rebuilds each partition's state from its input up to the
    // committed offset, so the outcome is exactly that of an uninterrupted run: escalations
    // that span the restart are revisions of the same task, not second tasks.
    let want = uncut;

    env.mock
        .broker_round_trip_time(1, Duration::from_millis(0))
        .expect("rtt");
    let second = start(&env.config);
    let ok = wait_until(Duration::from_secs(60), || {
        all_present(&bootstrap, &tasks_topic, &want)
    })
    .await;
    second.stop().await;
    assert!(ok, "every expected task arrives after the restart");
    let (distinct, duplicates) = assert_exactly(tasks_seen(&bootstrap, &tasks_topic), &want);
    eprintln!(
        "after restart: {} expected, {distinct} distinct seen, {duplicates} duplicates",
        want.len()
    );
    drop(env.mock);
}

/// Produce requests fail with retriable errors for a while; the pipeline retries and loses
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_produce_errors_lose_nothing() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let env = env("produce-errors");
    let (topic, produced) = produce_traffic(&env, 120).await;
    let want = expected(&env.config, &topic, &produced);
    env.mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 8],
    );
    let bootstrap = env.config.kafka.brokers.clone();
    let tasks_topic = env.config.output.recovery_tasks.clone();
    let run = start(&env.config);
    let ok = wait_until(Duration::from_secs(60), || {
        all_present(&bootstrap, &tasks_topic, &want)
    })
    .await;
    run.stop().await;
    assert!(
        ok,
        "all {} task revisions delivered despite produce errors",
        want.len()
    );
    // Retried produces may repeat a record; only identical revisions are allowed.
    assert_exactly(tasks_seen(&bootstrap, &tasks_topic), &want);
    drop(env.mock);
}

/// A second instance joins the group mid-run, taking over partitions from the first: the
/// revoked partitions finish and commit their in-flight work, the new owner rebuilds their
/// state from the input, and together they publish exactly what one uninterrupted instance
/// would (duplicates, if any, only as identical revisions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joining_mid_run_changes_nothing() {
    let env = env("rebalance");
    let (topic, produced) = produce_traffic(&env, 900).await;
    let want = expected(&env.config, &topic, &produced);
    let want_snapshots = expected_snapshots(&env.config, &topic, &produced);
    env.mock
        .broker_round_trip_time(1, Duration::from_millis(20))
        .expect("rtt");
    let bootstrap = env.config.kafka.brokers.clone();
    let tasks_topic = env.config.output.recovery_tasks.clone();

    let first = start(&env.config);
    assert!(
        first_tasks_appear(&bootstrap, &tasks_topic).await,
        "first tasks appear"
    );
    let second = start(&env.config);
    // Keep the broker slow until the second instance holds (restored) partitions, so the
    // hand-over happens while the first still has work in flight.
    let health = second.health.clone();
    assert!(
        wait_until(Duration::from_secs(30), || health.ready().is_ok()).await,
        "the second instance gets partitions"
    );
    env.mock
        .broker_round_trip_time(1, Duration::from_millis(0))
        .expect("rtt");
    let ok = wait_until(Duration::from_secs(90), || {
        all_present(&bootstrap, &tasks_topic, &want)
    })
    .await;
    // Trend windows are merged across both instances' partitions (design.md, "Scaling out").
    assert_snapshots_match(&env, &want_snapshots).await;
    let r2 = second.stop().await;
    let r1 = first.stop().await;
    assert!(ok, "every expected task arrives with two instances");
    assert!(
        r1.rebalances >= 2,
        "the first instance saw the group change: {} rebalance callbacks",
        r1.rebalances
    );
    assert!(
        r2.records > 0,
        "the second instance took over partitions and processed records"
    );
    let (distinct, duplicates) = assert_exactly(tasks_seen(&bootstrap, &tasks_topic), &want);
    eprintln!(
        "two instances: {} expected, {distinct} distinct, {duplicates} duplicates; records {} + {}",
        want.len(),
        r1.records,
        r2.records
    );
    drop(env.mock);
}

/// The absence rule in the running service: a ticket nobody answers, then no more input at
/// all. The partitions go idle, the instance's watermark advances with the wall clock, and the
/// slow_response task is delivered with `fired_by: wall_clock`, its offset committed after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promise_is_reported_missed_when_everything_goes_quiet() {
    let mut env = env("quiet");
    // A 3 s service level, so the wall clock gets there within the test.
    env.config.detect.expectations = vec![amends::config::ExpectationConfig {
        rule: amends::config::ExpectationRule::SlowResponse,
        when: "ticket_opened".into(),
        expect: vec!["agent_replied".into()],
        within: Some(amends::config::Dur::secs(3)),
        cancelled_by: vec![],
        severity: amends::domain::Severity::Minor,
    }];
    env.config.detect.idle_partition_after = amends::config::Dur::secs(1);
    let topic = env.config.input.touchpoints.topics[0].clone();
    let now = EventTime(support_now_ms());
    let ticket = format!(
        r#"{{"event_id":"e-quiet-1","occurred_at":"{now}","customer_id":"c-quiet","channel":"service","touchpoint":"ticket","type":"ticket_opened","outcome":"neutral","reference":"tk-1"}}"#
    );
    let produced = produce(
        &env.config.kafka.brokers,
        &topic,
        &[("c-quiet".to_string(), ticket.into_bytes())],
    )
    .await;
    let run = start(&env.config);
    let bootstrap = env.config.kafka.brokers.clone();
    let tasks_topic = env.config.output.recovery_tasks.clone();
    let ok = wait_until(Duration::from_secs(40), || {
        !tasks_seen(&bootstrap, &tasks_topic).is_empty()
    })
    .await;
    // Let the commit of the delivered input land before stopping.
    let committed_ok = wait_until(Duration::from_secs(20), || {
        committed(&env.config, &topic).get(&produced[0].partition)
            == Some(&(produced[0].offset + 1))
    })
    .await;
    run.stop().await;
    assert!(ok, "no task arrived although the service level passed");
    let tasks = tasks_seen(&bootstrap, &tasks_topic);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let t = &tasks[0];
    assert_eq!(
        (
            t.customer_id.as_str(),
            t.incident.as_str(),
            t.rule.as_str(),
            t.status,
            t.fired_by.as_deref()
        ),
        (
            "c-quiet",
            "tk-1",
            "slow_response",
            amends::domain::TaskStatus::Open,
            Some("wall_clock")
        )
    );
    assert_eq!(
        t.detected_at,
        now.plus(amends::domain::Millis::from_secs(3)).to_string()
    );
    assert_eq!(t.evidence[0].event_id, "e-quiet-1");
    assert!(
        committed_ok,
        "the ticket's offset is committed once its task is delivered"
    );
    drop(env.mock);
}

fn support_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The closed loop in the running service: outcomes come from their own topic, co-partitioned
/// with the touch points, and reach the worker that holds the customer. A task with an
/// outcome before its due time is not escalated; a task without one is, as `overdue`; an
/// outcome for a task nobody opened is dead-lettered with its reason; the outcome counts in
/// the trend snapshot of its window; and both topics' offsets are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_reach_the_worker_that_holds_the_customer() {
    let mut env = env("loop");
    // Due one hour after detection: the wall clock (idle partitions) passes it at once.
    for r in [
        &mut env.config.policy.response.minor,
        &mut env.config.policy.response.major,
        &mut env.config.policy.response.critical,
    ] {
        r.within = amends::config::Dur::hours(1);
    }
    env.config.detect.idle_partition_after = amends::config::Dur::secs(1);
    env.config.trend.complete_wait = amends::config::Dur::secs(30);
    let topic = env.config.input.touchpoints.topics[0].clone();
    let outcomes_topic = env.config.input.recovery_outcomes.topics[0].clone();
    let bootstrap = env.config.kafka.brokers.clone();
    // Customers 0..8 each fail once, c minutes after a whole hour three hours ago, so every
    // due time (an hour after detection) and that hour's window (closed an hour after its
    // end) lie in the past. A last event at the wall clock's now moves the watermark there
    // once the partitions go idle.
    let now = support_now_ms();
    let t0 = EventTime(now - now % 3_600_000 - 3 * 3_600_000);
    let shipping_failure = |c: usize, at: EventTime| {
        format!(
            r#"{{"event_id":"e-{c:06}","occurred_at":"{at}","customer_id":"c-{c:04}","channel":"shipping","touchpoint":"delivery","type":"delivery_failed","outcome":"failure","reference":"order-{c}","cause":"internal","amount":40.5,"currency":"EUR","customer":{{"since":"2024-01-01","segment":"smb","annual_value":3000.0}}}}"#
        )
    };
    let mut events: Vec<(String, Vec<u8>)> = (0..8)
        .map(|c| {
            let at = t0.plus(amends::domain::Millis::from_secs(60 * c as i64));
            (format!("c-{c:04}"), shipping_failure(c, at).into_bytes())
        })
        .collect();
    events.push((
        "c-9999".into(),
        format!(
            r#"{{"event_id":"e-clock","occurred_at":"{}","customer_id":"c-9999","channel":"sales","touchpoint":"checkout","type":"order_placed","outcome":"success"}}"#,
            EventTime(now)
        )
        .into_bytes(),
    ));
    let produced = produce(&bootstrap, &topic, &events).await;
    let want = expected(&env.config, &topic, &produced);
    let opened: BTreeMap<String, RecoveryTask> = want
        .values()
        .filter(|t| t.revision == 1 && t.rule == "breaking_point")
        .map(|t| (t.customer_id.clone(), t.clone()))
        .collect();
    assert_eq!(opened.len(), 8, "one task per customer: {opened:?}");
    // Even customers' case tool reports a resolved recovery 30 minutes after detection.
    let outcome = |task: &str, customer: &str, at: EventTime| {
        format!(
            r#"{{"task_id":"{task}","customer_id":"{customer}","occurred_at":"{at}","status":"resolved","score":5}}"#
        )
    };
    let mut reports: Vec<(String, Vec<u8>)> = opened
        .values()
        .filter(|t| t.customer_id.ends_with(['0', '2', '4', '6']))
        .map(|t| {
            let at = EventTime::parse(&t.detected_at)
                .expect("detected_at")
                .plus(amends::domain::Millis::from_secs(1800));
            (
                t.customer_id.clone(),
                outcome(&t.task_id, &t.customer_id, at).into_bytes(),
            )
        })
        .collect();
    // And one about a task that never existed.
    reports.push((
        "c-0001".into(),
        outcome(
            "t-unknown",
            "c-0001",
            t0.plus(amends::domain::Millis::from_secs(600)),
        )
        .into_bytes(),
    ));
    let reported = produce(&bootstrap, &outcomes_topic, &reports).await;
    for (r, e) in reported.iter().zip(&reports) {
        let home = produced.iter().find(|p| p.key == e.0.as_bytes());
        if let Some(home) = home {
            assert_eq!(r.partition, home.partition, "co-partitioned by customer_id");
        }
    }

    let run = start(&env.config);
    let tasks_topic = env.config.output.recovery_tasks.clone();
    // The odd customers' tasks go overdue: 4 second revisions.
    let ok = wait_until(Duration::from_secs(40), || {
        tasks_seen(&bootstrap, &tasks_topic)
            .iter()
            .filter(|t| t.revision == 2)
            .count()
            >= 4
    })
    .await;
    let outcome_parts: HashMap<i32, i64> = reported.iter().fold(HashMap::new(), |mut m, r| {
        let e = m.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
        m
    });
    let committed_ok = wait_until(Duration::from_secs(20), || {
        let c = committed(&env.config, &outcomes_topic);
        outcome_parts.iter().all(|(p, o)| c.get(p) == Some(o))
    })
    .await;
    // The hour window from t0 closes once the watermark passes its end plus the lateness.
    let hour = t0.to_string();
    let snapshots_topic = env.config.output.trend_snapshots.clone();
    let shipping_hour = || {
        read_all(&bootstrap, &snapshots_topic)
            .into_iter()
            .map(|(_, p)| serde_json::from_slice::<serde_json::Value>(&p).expect("json"))
            .filter(|v| {
                v["dimension"]["kind"] == "channel"
                    && v["dimension"]["channel"] == "shipping"
                    && v["window_seconds"] == 3600
                    && v["window_start"] == hour.as_str()
            })
            .max_by_key(|v| v["revision"].as_u64())
    };
    let snap_ok = wait_until(Duration::from_secs(40), || shipping_hour().is_some()).await;
    run.stop().await;
    let seen = tasks_seen(&bootstrap, &tasks_topic);
    assert!(
        ok,
        "the tasks without an outcome went overdue: {:?}",
        seen.iter()
            .map(|t| (&t.customer_id, t.revision, t.status, &t.due_at))
            .collect::<Vec<_>>()
    );
    for t in opened.values() {
        let revs: Vec<&RecoveryTask> = seen.iter().filter(|s| s.task_id == t.task_id).collect();
        let reported = t.customer_id.ends_with(['0', '2', '4', '6']);
        let last = revs.iter().max_by_key(|s| s.revision).expect("a revision");
        if reported {
            assert_eq!(
                (last.revision, last.status),
                (1, amends::domain::TaskStatus::Open),
                "{}: its outcome came before the due time, so it is not escalated",
                t.customer_id
            );
        } else {
            assert_eq!(
                (last.revision, last.status),
                (2, amends::domain::TaskStatus::Escalated),
                "{}: no outcome by the due time",
                t.customer_id
            );
            assert!(
                last.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("overdue: no recovery outcome by the due time")),
                "{:?}",
                last.reason
            );
        }
    }
    let dead = read_all(&bootstrap, &env.config.output.dead_letter);
    let unknown = reported.last().expect("the unknown one");
    let h = |hs: &Headers_, k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(dead.len(), 1, "only the unknown task's outcome: {dead:?}");
    assert_eq!(
        (
            h(&dead[0].0, "amends.field"),
            h(&dead[0].0, "amends.source.topic"),
            h(&dead[0].0, "amends.source.partition"),
            h(&dead[0].0, "amends.source.offset"),
        ),
        (
            Some("task_id".to_string()),
            Some(outcomes_topic.clone()),
            Some(unknown.partition.to_string()),
            Some(unknown.offset.to_string())
        )
    );
    assert_eq!(dead[0].1, reports.last().unwrap().1, "the original bytes");
    assert!(committed_ok, "the outcomes topic's offsets are committed");
    assert!(snap_ok, "the {hour} hour snapshot for shipping arrived");
    let s = shipping_hour().expect("snapshot");
    assert_eq!(
        (
            s["failures"].as_u64(),
            s["tasks_opened"].as_u64(),
            s["outcomes"]["received"].as_u64(),
            s["outcomes"]["resolved"].as_u64(),
            s["recovery_success_rate"].as_f64(),
        ),
        (Some(8), Some(8), Some(4), Some(4), Some(1.0)),
        "{s}"
    );
    // 30 minutes, within the recovery histogram's 9 %.
    let median = s["median_time_to_recovery_seconds"]
        .as_f64()
        .expect("median");
    assert!((median - 1800.0).abs() <= 1800.0 * 0.09, "{median}");

    // A new owner rebuilds each partition: from the changelog the workers wrote (nothing left
    // to replay), or (restore = "input") from both topics up to their committed offsets. The
    // outcomes were applied before the due times passed, so only the four tasks without one
    // went overdue, in the rebuilt state too.
    let mut by_input = env.config.clone();
    by_input.pipeline.restore = amends::config::Restore::Input;
    for config in [&env.config, &by_input] {
        let (mut outcomes, mut unknown, mut overdue) = (0, 0, 0);
        for p in 0..PARTITIONS {
            let (proc, done) =
                amends::kafka::restore::rebuild(config, &Arc::from(topic.as_str()), p, 4, None)
                    .expect("rebuild");
            let st = proc.engine().stats();
            outcomes += st.outcomes;
            unknown += st.outcomes_unknown;
            overdue += st.tasks_overdue;
            let touch_points = produced.iter().filter(|r| r.partition == p).count() as u64;
            let reports = reported.iter().filter(|r| r.partition == p).count() as u64;
            let replayed = match config.pipeline.restore {
                amends::config::Restore::Changelog => {
                    assert!(done.checkpoint.is_some(), "partition {p}: a checkpoint");
                    0
                }
                _ => touch_points + reports,
            };
            assert_eq!(done.records, replayed, "partition {p}");
        }
        assert_eq!(
            (outcomes, unknown, overdue),
            (5, 1, 4),
            "{:?}",
            config.pipeline.restore
        );
    }
    drop(env.mock);
}

/// Several touch-point topics (here one for shipping, one for billing), co-partitioned by
/// customer: partition p of both is read by one worker, so a customer's failures in the two
/// topics meet in one state. The second failure is a repeat, which two separate engines
/// (one per topic) could not see. Both topics' offsets are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_events_from_two_topics_meet_in_one_state() {
    let mut env = env("twotopics");
    let shipping = env.config.input.touchpoints.topics[0].clone();
    let billing = format!("{shipping}-billing");
    env.mock
        .create_topic(&billing, PARTITIONS, 1)
        .expect("create topic");
    env.config.input.touchpoints.topics.push(billing.clone());
    let bootstrap = env.config.kafka.brokers.clone();
    // Customer c fails in shipping at 08:c, then in billing (another reference) 10 minutes
    // later.
    let at = |minute: usize| {
        format!(
            "2026-11-21T{:02}:{:02}:00.000Z",
            8 + minute / 60,
            minute % 60
        )
    };
    let billing_failure = |c: usize| {
        format!(
            r#"{{"event_id":"b-{c:06}","occurred_at":"{}","customer_id":"c-{c:04}","channel":"billing","touchpoint":"payment","type":"payment_declined","outcome":"failure","reference":"inv-{c}","cause":"internal","amount":60.0,"currency":"EUR","customer":{{"since":"2024-01-01","segment":"smb","annual_value":3000.0}}}}"#,
            at(c + 10)
        )
    };
    let ship: Vec<(String, Vec<u8>)> = (0..6)
        .map(|c| {
            let e = event(
                c + 1,
                c,
                "delivery_failed",
                "failure",
                &format!("order-{c}"),
                c,
            );
            (format!("c-{c:04}"), e.into_bytes())
        })
        .collect();
    let bill: Vec<(String, Vec<u8>)> = (0..6)
        .map(|c| (format!("c-{c:04}"), billing_failure(c).into_bytes()))
        .collect();
    let in_ship = produce(&bootstrap, &shipping, &ship).await;
    let in_bill = produce(&bootstrap, &billing, &bill).await;
    // The model: per partition, both topics' records through one processor, in event-time
    // order (each customer's shipping failure comes first).
    let mut procs = Vec::new();
    for p in 0..PARTITIONS {
        let mut proc = Processor::new(&env.config);
        let mut outs = Vec::new();
        for (topic, recs) in [(&shipping, &in_ship), (&billing, &in_bill)] {
            for r in recs.iter().filter(|r| r.partition == p) {
                proc.process(&r.inbound(topic), EventTime(0), &mut outs);
            }
        }
        proc.flush(EventTime(0), &mut outs);
        procs.push((proc, outs));
    }
    let want = quiet_end(procs);
    // What makes the test able to fail: every customer's billing failure is a second
    // failure within the repeat window, counted as such.
    let repeats: Vec<&RecoveryTask> = want
        .values()
        .filter(|t| t.evidence.iter().any(|e| e.event_id.starts_with("b-")))
        .collect();
    assert_eq!(repeats.len(), 6, "{repeats:?}");
    for t in &repeats {
        assert_eq!(t.failure_count, 2, "{t:?}");
        assert!(
            t.evidence.iter().any(|e| e.topic == shipping)
                && t.evidence.iter().any(|e| e.topic == billing),
            "the revision rests on both topics' events: {:?}",
            t.evidence
        );
    }

    let run = start(&env.config);
    let tasks_topic = env.config.output.recovery_tasks.clone();
    let ok = wait_until(Duration::from_secs(40), || {
        all_present(&bootstrap, &tasks_topic, &want)
    })
    .await;
    let ends = |recs: &[Produced]| {
        recs.iter()
            .fold(HashMap::new(), |mut m: HashMap<i32, i64>, r| {
                let e = m.entry(r.partition).or_insert(0);
                *e = (*e).max(r.offset + 1);
                m
            })
    };
    let (ship_end, bill_end) = (ends(&in_ship), ends(&in_bill));
    let committed_ok = wait_until(Duration::from_secs(20), || {
        let (s, b) = (
            committed(&env.config, &shipping),
            committed(&env.config, &billing),
        );
        ship_end.iter().all(|(p, o)| s.get(p) == Some(o))
            && bill_end.iter().all(|(p, o)| b.get(p) == Some(o))
    })
    .await;
    run.stop().await;
    assert!(ok, "every expected revision arrives");
    assert_exactly(tasks_seen(&bootstrap, &tasks_topic), &want);
    assert!(committed_ok, "both topics' offsets are committed");
    // A new owner rebuilds partition p: from the changelog the worker wrote, with nothing left
    // to replay, or (restore = "input") from both topics; to the same tasks either way.
    let mut by_input = env.config.clone();
    by_input.pipeline.restore = amends::config::Restore::Input;
    for p in 0..PARTITIONS {
        let topic = Arc::from(shipping.as_str());
        let (from_log, done) =
            amends::kafka::restore::rebuild(&env.config, &topic, p, 4, None).expect("rebuild");
        let n = in_ship
            .iter()
            .chain(&in_bill)
            .filter(|r| r.partition == p)
            .count() as u64;
        let cp = done.checkpoint.as_ref().expect("read from a checkpoint");
        assert_eq!(
            (cp.next_offset(&shipping), cp.next_offset(&billing)),
            (ship_end.get(&p).copied(), bill_end.get(&p).copied()),
            "the last checkpoint covers both topics to their ends"
        );
        assert_eq!(
            (done.records, from_log.engine().stats().events),
            (0, n),
            "partition {p}: every event is in the changelog's state"
        );
        assert!(done.changelog_records > 0);
        let (from_input, done) =
            amends::kafka::restore::rebuild(&by_input, &topic, p, 4, None).expect("rebuild");
        assert_eq!(
            (done.records, from_input.engine().stats().events),
            (n, n),
            "partition {p}"
        );
        assert_eq!(incidents_held(&from_log), incidents_held(&from_input));
    }
    drop(env.mock);
}

/// Start-up refuses input topics that are not co-partitioned, and output topics that do not
/// exist, naming the config key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_names_the_key_of_a_topic_it_cannot_use() {
    let mut env = env("startup");
    let outcomes = format!("{}-2", env.config.input.recovery_outcomes.topics[0]);
    env.mock
        .create_topic(&outcomes, 2, 1)
        .expect("create topic");
    env.config.input.recovery_outcomes.topics = vec![outcomes.clone()];
    let stop = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::default());
    let e = kafka::run(env.config.clone(), stop.clone(), health.clone())
        .await
        .expect_err("not co-partitioned");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "input topic `{outcomes}` (config key input.recovery_outcomes.topics) has 2 partitions"
        )) && msg.contains(&format!("has {PARTITIONS}")),
        "{msg}"
    );
    env.config.input.recovery_outcomes.topics = vec![];
    env.config.output.trend_alerts = "startup.no-such-topic".into();
    let e = kafka::run(env.config.clone(), stop, health)
        .await
        .expect_err("missing output topic");
    assert!(
        e.to_string().contains(
            "output topic `startup.no-such-topic` (config key output.trend_alerts) does not exist"
        ),
        "{e}"
    );
    drop(env.mock);
}

// ---------------------------------------------------------------------------------------
// The fault matrix (issue 5): one harness runs the real pipeline over known input while it
// injects a fault, drains the task topic and compares it with the single-instance model.

/// One row of the matrix.
struct Row {
    fault: &'static str,
    expected: usize,
    seen: usize,
    lost: usize,
    duplicated: usize,
    wrong: usize,
    dead_letters: usize,
    poison: usize,
    /// Exactly-once: lost revisions that were produced in a transaction that never
    /// committed, whose changelog records the mock (which does not hide uncommitted
    /// transactions from read_committed readers) handed to the next owner's restore: that
    /// state then skips the input they came from. `None` in at-least-once rows.
    lost_to_mock: Option<usize>,
}

impl Row {
    fn line(&self) -> String {
        let lost = match self.lost_to_mock {
            Some(m) => format!("{} | {m}", self.lost),
            None => self.lost.to_string(),
        };
        format!(
            "| {} | {} | {} | {lost} | {} | {} | {} of {} |",
            self.fault,
            self.expected,
            self.seen,
            self.duplicated,
            self.wrong,
            self.dead_letters,
            self.poison
        )
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Nothing,
    GracefulStopMidBurst,
    TwoJoinOneLeaves,
    BrokerDownAndUp,
    ProduceErrors,
    CommitErrors,
    PoisonBetweenGood,
    /// Exactly-once only: the transaction's offsets are refused (the group coordinator says
    /// the member's generation is stale), which makes the transaction abortable.
    TxnOffsetsRefused,
    /// Exactly-once only: EndTxn answered by a broker that is no longer the transaction
    /// coordinator, twice.
    CoordinatorMoves,
    /// Exactly-once only: a produce request fails for good mid-transaction (abortable).
    ProduceFailsForGood,
    /// Exactly-once only: a zombie registers the instance's transactional id mid-run; the
    /// instance is fenced and stops, and a new one takes over.
    FencedByZombie,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::Nothing,
        Fault::GracefulStopMidBurst,
        Fault::TwoJoinOneLeaves,
        Fault::BrokerDownAndUp,
        Fault::ProduceErrors,
        Fault::CommitErrors,
        Fault::PoisonBetweenGood,
    ];

    const EXACTLY_ONCE: [Fault; 10] = [
        Fault::Nothing,
        Fault::GracefulStopMidBurst,
        Fault::TwoJoinOneLeaves,
        Fault::BrokerDownAndUp,
        Fault::ProduceErrors,
        Fault::PoisonBetweenGood,
        Fault::TxnOffsetsRefused,
        Fault::CoordinatorMoves,
        Fault::ProduceFailsForGood,
        Fault::FencedByZombie,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::TxnOffsetsRefused => "send_offsets_to_transaction refused 3 times (abortable)",
            Fault::CoordinatorMoves => "transaction coordinator moves during 2 commits",
            Fault::ProduceFailsForGood => "a produce request fails for good (abortable)",
            Fault::FencedByZombie => "fenced (PRODUCER_FENCED on commit), then a new instance",
            Fault::Nothing => "no fault",
            Fault::GracefulStopMidBurst => "graceful stop during a burst, then restart",
            Fault::TwoJoinOneLeaves => "a second and a third instance join, then the first leaves",
            Fault::BrokerDownAndUp => "broker down for 5 s mid-stream, then up",
            Fault::ProduceErrors => "12 produce requests fail (retriable)",
            Fault::CommitErrors => "8 offset commits fail (retriable)",
            Fault::PoisonBetweenGood => "poison records between good ones",
        }
    }
}

/// Counts what the task topic holds against the model: lost (an expected revision never
/// seen), duplicated (extra copies of a `(task_id, revision)`), wrong (a revision the model
/// does not have, or one whose content differs from it, `emitted_at` and `fired_by` aside).
fn tally(
    seen: Vec<RecoveryTask>,
    want: &BTreeMap<(String, u32), RecoveryTask>,
) -> (usize, usize, usize, usize) {
    let mut copies: HashMap<(String, u32), usize> = HashMap::new();
    let mut wrong = 0;
    for t in seen {
        let k = (t.task_id.clone(), t.revision);
        match want.get(&k) {
            Some(w) if without_emitted_at(w.clone()) == without_emitted_at(t) => {}
            _ => wrong += 1,
        }
        *copies.entry(k).or_default() += 1;
    }
    let lost = want.keys().filter(|k| !copies.contains_key(*k)).count();
    let duplicated = copies.values().map(|n| n - 1).sum();
    (copies.len(), lost, duplicated, wrong)
}

async fn fault_row(fault: Fault, exactly_once: bool) -> Row {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mut env = env(&format!(
        "fault-{}{}",
        fault as u8,
        if exactly_once { "-eos" } else { "" }
    ));
    if exactly_once {
        env.config = eos(env.config.clone());
    }
    let topic = env.config.input.touchpoints.topics[0].clone();
    let bootstrap = env.config.kafka.brokers.clone();
    let tasks_topic = env.config.output.recovery_tasks.clone();
    // Transactions the instances aborted (exactly-once): their records are not committed.
    let aborted = std::sync::Mutex::new(std::collections::HashSet::<String>::new());
    let note = |h: &Arc<Health>| aborted.lock().unwrap().extend(h.aborted_transactions());
    let mut records: Vec<(String, Vec<u8>)> = traffic(900)
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let mut poison = 0;
    if matches!(fault, Fault::PoisonBetweenGood) {
        // Every 25th record is followed by a bad one on the same key.
        let bad: [&[u8]; 3] = [b"{\"event_id\": ", b"\xff\xfe", b"{\"event_id\":\"x\"}"];
        let mut mixed = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            let key = r.0.clone();
            mixed.push(r);
            if i % 25 == 0 {
                mixed.push((key, bad[i % 3].to_vec()));
                poison += 1;
            }
        }
        records = mixed;
    }
    let produced = produce(&bootstrap, &topic, &records).await;
    let want = expected(&env.config, &topic, &produced);
    let everything = || all_present(&bootstrap, &tasks_topic, &want);
    let slow = |ms| {
        env.mock
            .broker_round_trip_time(1, Duration::from_millis(ms))
            .expect("rtt")
    };
    match fault {
        Fault::ProduceErrors => env.mock.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 12],
        ),
        Fault::TxnOffsetsRefused => env.mock.request_errors(
            RDKafkaApiKey::TxnOffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION; 3],
        ),
        Fault::CoordinatorMoves => env.mock.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR; 2],
        ),
        Fault::ProduceFailsForGood => env.mock.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1],
        ),
        Fault::CommitErrors => env.mock.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 8],
        ),
        _ => {}
    }
    let ok = match fault {
        Fault::Nothing
        | Fault::PoisonBetweenGood
        | Fault::ProduceErrors
        | Fault::CommitErrors
        | Fault::TxnOffsetsRefused
        | Fault::CoordinatorMoves
        | Fault::ProduceFailsForGood => {
            let run = start(&env.config);
            let ok = wait_until(Duration::from_secs(60), everything).await;
            note(&run.health);
            run.stop().await;
            if matches!(fault, Fault::CommitErrors) {
                // What was committed despite the errors is re-read by a restart: nothing new.
                let run = start(&env.config);
                tokio::time::sleep(Duration::from_secs(5)).await;
                run.stop().await;
            }
            ok
        }
        Fault::GracefulStopMidBurst => {
            slow(30);
            let run = start(&env.config);
            assert!(first_tasks_appear(&bootstrap, &tasks_topic).await);
            note(&run.health);
            run.stop().await;
            slow(0);
            let run = start(&env.config);
            let ok = wait_until(Duration::from_secs(60), everything).await;
            note(&run.health);
            run.stop().await;
            ok
        }
        Fault::FencedByZombie => {
            env.config.kafka.transactional_id = "fault-zombie".into();
            slow(20);
            let run = start(&env.config);
            assert!(first_tasks_appear(&bootstrap, &tasks_topic).await);
            // What the broker answers an instance whose transactional id a zombie has
            // registered since (the mock keeps every producer id valid, so it is injected).
            env.mock.request_errors(
                RDKafkaApiKey::EndTxn,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 1],
            );
            let h = run.health.clone();
            let stopped = run.handle.await.expect("pipeline task");
            note(&h);
            let e = stopped.expect_err("the fenced instance stops with an error");
            assert!(
                e.to_string().contains("fenced") && e.to_string().contains("fault-zombie"),
                "{e}"
            );
            slow(0);
            let run = start(&env.config);
            let ok = wait_until(Duration::from_secs(60), everything).await;
            note(&run.health);
            run.stop().await;
            ok
        }
        Fault::TwoJoinOneLeaves => {
            slow(20);
            let first = start(&env.config);
            assert!(first_tasks_appear(&bootstrap, &tasks_topic).await);
            let second = start(&env.config);
            let h = second.health.clone();
            wait_until(Duration::from_secs(30), || h.ready().is_ok()).await;
            let third = start(&env.config);
            let h = third.health.clone();
            wait_until(Duration::from_secs(30), || h.ready().is_ok()).await;
            note(&first.health);
            first.stop().await;
            slow(0);
            let ok = wait_until(Duration::from_secs(90), everything).await;
            note(&third.health);
            note(&second.health);
            third.stop().await;
            second.stop().await;
            ok
        }
        Fault::BrokerDownAndUp => {
            slow(20);
            let run = start(&env.config);
            assert!(first_tasks_appear(&bootstrap, &tasks_topic).await);
            env.mock.broker_down(1).expect("broker down");
            tokio::time::sleep(Duration::from_secs(5)).await;
            env.mock.broker_up(1).expect("broker up");
            slow(0);
            let ok = wait_until(Duration::from_secs(90), everything).await;
            note(&run.health);
            run.stop().await;
            ok
        }
    };
    let mut hidden = std::collections::HashSet::new();
    let seen = if exactly_once {
        let aborted = aborted.lock().unwrap().clone();
        let (seen, h) = tasks_committed(&bootstrap, &tasks_topic, &aborted);
        eprintln!(
            "{}: {} transactions aborted, {} task records in them hidden",
            fault.name(),
            aborted.len(),
            h.len()
        );
        hidden = h.into_iter().collect();
        seen
    } else {
        tasks_seen(&bootstrap, &tasks_topic)
    };
    let lost_to_mock = exactly_once.then(|| {
        let got: std::collections::HashSet<(String, u32)> = seen
            .iter()
            .map(|t| (t.task_id.clone(), t.revision))
            .collect();
        want.keys()
            .filter(|k| !got.contains(*k) && hidden.contains(*k))
            .count()
    });
    let (seen, lost, duplicated, wrong) = tally(seen, &want);
    let dead_letters = if exactly_once {
        let aborted = aborted.lock().unwrap().clone();
        read_committed(&bootstrap, &env.config.output.dead_letter, &aborted)
            .0
            .len()
    } else {
        read_all(&bootstrap, &env.config.output.dead_letter).len()
    };
    if !ok {
        eprintln!(
            "{}: not every expected revision arrived in time",
            fault.name()
        );
    }
    let row = Row {
        fault: fault.name(),
        expected: want.len(),
        seen,
        lost,
        duplicated,
        wrong,
        dead_letters,
        poison,
        lost_to_mock,
    };
    drop(env.mock);
    row
}

const MATRIX_HEADER_EOS: &str = "| fault | expected revisions | seen | lost | of which only on the mock | duplicated | wrong | dead letters of poison |\n|---|---|---|---|---|---|---|---|";

const MATRIX_HEADER: &str = "| fault | expected revisions | seen | lost | duplicated | wrong | dead letters of poison |\n|---|---|---|---|---|---|---|";

fn assert_row(r: &Row) {
    assert_eq!(
        (
            r.lost - r.lost_to_mock.unwrap_or(0),
            r.wrong,
            r.dead_letters
        ),
        (0, 0, r.poison),
        "{}",
        r.line()
    );
}

/// The whole matrix (at-least-once, state rebuilt from input), printed as the table in
/// docs/reliability.md: `cargo test --release --test kafka_mock fault_matrix -- --ignored
/// --nocapture`. Duplicates are allowed only as identical revisions (`wrong` counts any
/// other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about 3 minutes; run on purpose (see docs/reliability.md)"]
async fn fault_matrix() {
    let rows = run_matrix(&Fault::ALL, false, MATRIX_HEADER).await;
    rows.iter().for_each(assert_row);
}

/// Runs `faults` (only the one at index `AMENDS_FAULT`, 0-based, if set), printing each row
/// as it ends and then the table under `header`.
async fn run_matrix(faults: &[Fault], exactly_once: bool, header: &str) -> Vec<Row> {
    let only: Option<usize> = std::env::var("AMENDS_FAULT")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut rows = Vec::new();
    for (_, f) in faults
        .iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o == *i))
    {
        let r = fault_row(*f, exactly_once).await;
        eprintln!("{}", r.line());
        rows.push(r);
    }
    println!("{header}");
    for r in &rows {
        println!("{}", r.line());
    }
    rows
}

/// The rows of the matrix the other tests here do not cover: the broker going away, and
/// failing offset commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_broker_down_and_commit_errors() {
    for f in [Fault::BrokerDownAndUp, Fault::CommitErrors] {
        let r = fault_row(f, false).await;
        eprintln!("{}", r.line());
        assert_row(&r);
    }
}

// ---------------------------------------------------------------------------------------
// Exactly-once (kafka.guarantee = "exactly_once") on the mock cluster. The mock runs
// transactions (producer ids, epochs, fencing, EndTxn) but neither hides aborted records
// from read_committed readers nor stores the offsets a transaction commits. So a reader here
// drops the records of the transactions the instance reports aborted (their `amends.txn`
// header), which is what a broker's read_committed fetch does, and a restarted instance
// resumes from the changelog checkpoint's positions (it skips what its state holds).

fn eos(mut config: Config) -> Config {
    config.kafka.guarantee = amends::config::Guarantee::ExactlyOnce;
    config.pipeline.checkpoint_interval = amends::config::Dur::millis_const(300);
    config
}

/// The task topic as a read_committed reader sees it: without the records of `aborted`
/// transactions; and the `(task_id, revision)` of those hidden.
fn tasks_committed(
    bootstrap: &str,
    topic: &str,
    aborted: &std::collections::HashSet<String>,
) -> (Vec<RecoveryTask>, Vec<(String, u32)>) {
    let (records, hidden) = read_committed(bootstrap, topic, aborted);
    let task = |p: &[u8]| -> RecoveryTask { serde_json::from_slice(p).expect("task json") };
    let tasks = records.iter().map(|(_, p)| task(p)).collect();
    let hidden = hidden
        .iter()
        .map(|(_, p)| {
            let t = task(p);
            (t.task_id, t.revision)
        })
        .collect();
    (tasks, hidden)
}

/// `read_all` split into the records of committed transactions and those of `aborted` ones.
type Split = (Vec<(Headers_, Vec<u8>)>, Vec<(Headers_, Vec<u8>)>);

fn read_committed(
    bootstrap: &str,
    topic: &str,
    aborted: &std::collections::HashSet<String>,
) -> Split {
    read_all(bootstrap, topic).into_iter().partition(|(h, _)| {
        let txn = h.iter().find(|(k, _)| k == "amends.txn").map(|(_, v)| v);
        let txn = txn.unwrap_or_else(|| panic!("a record without the amends.txn header: {h:?}"));
        !aborted.contains(txn)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_commits_outputs_state_and_offsets_together() {
    let env = env("eos");
    let config = eos(env.config.clone());
    let (topic, produced) = produce_traffic(&env, 300).await;
    let want = expected(&config, &topic, &produced);
    let bootstrap = config.kafka.brokers.clone();
    let tasks_topic = config.output.recovery_tasks.clone();
    let run = start(&config);
    let ok = wait_until(Duration::from_secs(60), || {
        all_present(&bootstrap, &tasks_topic, &want)
    })
    .await;
    let health = run.health.clone();
    run.stop().await;
    assert!(ok, "every expected revision arrives");
    let aborted: std::collections::HashSet<String> =
        health.aborted_transactions().into_iter().collect();
    assert!(aborted.is_empty(), "nothing aborted: {aborted:?}");
    let (seen, _) = tasks_committed(&bootstrap, &tasks_topic, &aborted);
    let (distinct, duplicates) = assert_exactly(seen, &want);
    assert_eq!((distinct, duplicates), (want.len(), 0));
    eprintln!(
        "committed offsets after exactly-once run: {:?}",
        committed(&config, &topic)
    );
    // A restart resumes where the committed state ends: nothing is processed twice.
    let run = start(&config);
    let h = run.health.clone();
    assert!(
        wait_until(Duration::from_secs(30), || h.ready().is_ok()).await,
        "ready"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.stop().await;
    let (seen, _) = tasks_committed(&bootstrap, &tasks_topic, &aborted);
    assert_eq!(
        assert_exactly(seen, &want),
        (want.len(), 0),
        "no duplicates after a restart"
    );
    drop(env.mock);
}

/// The exactly-once matrix on the mock cluster (see the note above `eos`): `cargo test
/// --release --test kafka_mock fault_matrix_exactly_once -- --ignored --nocapture`.
/// Duplicates must be 0 here: what a reader sees is what was committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "several minutes; run on purpose (see docs/reliability.md)"]
async fn fault_matrix_exactly_once() {
    let rows = run_matrix(&Fault::EXACTLY_ONCE, true, MATRIX_HEADER_EOS).await;
    for r in &rows {
        assert_row(r);
        assert_eq!(r.duplicated, 0, "{}", r.line());
    }
}

/// The exactly-once rows in the suite: an abortable error rewinds state and offsets, and a
/// fenced instance stops while a new one takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_aborts_rewind_and_fencing_stops() {
    for f in [Fault::TxnOffsetsRefused, Fault::FencedByZombie] {
        let r = fault_row(f, true).await;
        eprintln!("{}", r.line());
        assert_row(&r);
        assert_eq!(r.duplicated, 0, "{}", r.line());
    }
}

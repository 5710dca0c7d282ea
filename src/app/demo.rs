//! `amends demo`: the whole thing with no setup. Starts librdkafka's in-process mock cluster,
//! produces three simulated days of touch-points (with some poison records) and the recovery
//! outcomes a case tool reports back for the tasks they cause, runs the real Kafka pipeline
//! until it has committed everything, reads the output topics back, writes them to a folder
//! and prints a summary.

use super::simulate::produce_all;
use crate::config::Config;
use crate::domain::RecoveryTask;
use crate::kafka;
use crate::pipeline::dead_letter::DeadLetterLine;
use crate::sim::{SimConfig, Simulator};
use crate::telemetry::Health;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DemoOptions {
    pub output: PathBuf,
    pub customers: usize,
    pub seed: u64,
    pub partitions: i32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            output: PathBuf::from("amends-demo"),
            customers: 700,
            seed: 42,
            partitions: 4,
        }
    }
}

/// What the demo found; also rendered as the printed summary.
pub struct DemoReport {
    pub input_records: usize,
    pub poison_records: usize,
    pub tasks: Vec<RecoveryTask>,
    pub dead_letters: Vec<DeadLetterLine>,
    pub snapshots: usize,
    pub alerts: Vec<serde_json::Value>,
    /// Recovery outcomes produced to the outcomes topic.
    pub outcomes: usize,
    pub elapsed: Duration,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("mock cluster: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("pipeline: {0}")]
    Pipeline(#[from] kafka::PipelineError),
    #[error("writing outputs: {0}")]
    Io(#[from] std::io::Error),
    #[error("the pipeline did not catch up within {0} s")]
    Timeout(u64),
}

pub async fn demo(opts: DemoOptions) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let mock = MockCluster::new(1)?;
    let bootstrap = mock.bootstrap_servers();
    let mut config = Config::defaults();
    config.kafka.brokers = bootstrap.clone();
    config.kafka.group_id = "amends-demo".into();
    config.http.listen = String::new();
    // The whole day is produced at once: once the partitions have been quiet for a second,
    // the last events are released rather than waiting the default 30 s.
    config.detect.idle_partition_after = crate::config::Dur::secs(1);
    let o = &config.output;
    for t in [
        &config.input.touchpoints.topics[0],
        &config.input.recovery_outcomes.topics[0],
        &o.recovery_tasks,
        &o.dead_letter,
        &o.trend_snapshots,
        &o.trend_alerts,
        &o.trend_partials,
        &o.changelog,
    ] {
        mock.create_topic(t, opts.partitions, 1)?;
    }

    // Three simulated days (so that two-day promises come due and some are missed), with
    // poison records of every kind spread through them (the kinds cycle, so at least seven are
    // needed).
    let sim = Simulator::new(SimConfig {
        seed: opts.seed,
        customers: opts.customers,
        duration: crate::domain::Millis::from_days(3),
        poison_every: 2_500,
        // Billing fails six times as often for two hours on day 3 (the first two days give
        // the baseline its time of day): a trend alert fires and resolves.
        spike: crate::sim::Spike::parse(DEMO_SPIKE).ok(),
        ..SimConfig::default()
    });
    let records = sim.records();
    std::fs::create_dir_all(&opts.output)?;
    let mut input =
        std::io::BufWriter::new(std::fs::File::create(opts.output.join("input.jsonl"))?);
    sim.write_jsonl(&mut input)?;
    input.flush()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("message.max.bytes", "2000000")
        .create()?;
    produce_all(&producer, &config.input.touchpoints.topics[0], &records).await?;
    let poison_records = records.iter().filter(|r| r.poison.is_some()).count();

    // The case tool's side of the loop: the simulator answers the tasks the input causes
    // (found by the same detection, offline; task ids are deterministic) with recovery
    // outcomes, keyed by customer like the touch points. Only outcomes up to the last event
    // are sent: the demo's event time stops there, so a later one would wait for time that
    // never comes.
    let tasks_offline = super::simulate::detect_tasks(
        &config,
        std::io::BufReader::new(std::fs::File::open(opts.output.join("input.jsonl"))?),
    )?;
    let last_event = records
        .iter()
        .map(|r| r.occurred_at)
        .max()
        .unwrap_or(crate::domain::EventTime::MIN);
    let outcomes: Vec<crate::sim::SimOutcome> = crate::sim::outcomes_for(
        &tasks_offline,
        &crate::sim::OutcomeConfig::default(),
        opts.seed,
    )
    .into_iter()
    .filter(|o| o.occurred_at <= last_event)
    .collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(opts.output.join("outcomes.jsonl"))?);
    crate::sim::write_outcomes_jsonl(&outcomes, &mut w)?;
    w.flush()?;
    produce_all(
        &producer,
        &config.input.recovery_outcomes.topics[0],
        outcomes.iter().map(|o| o.record()),
    )
    .await?;

    // The real pipeline, stopped once the group has committed every input offset.
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = tokio::spawn(kafka::run(
        config.clone(),
        stop.clone(),
        Arc::new(Health::default()),
    ));
    let mut caught_up = wait_for_commits(
        &bootstrap,
        &config,
        &[
            &config.input.touchpoints.topics[0],
            &config.input.recovery_outcomes.topics[0],
        ],
        opts.partitions,
        Duration::from_secs(60),
    )
    .await;
    // Then the trend partials the partitions sent once they went idle are merged: wait until
    // the snapshots stop coming. (The partials topic's commit never reaches its end: each
    // source's latest marker is held until its next one.)
    if caught_up {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let n = read_topic(&bootstrap, &config.output.trend_snapshots, opts.partitions)?.len();
            if n > 0 && n == last {
                break;
            }
            if Instant::now() > deadline {
                caught_up = false;
                break;
            }
            last = n;
        }
    }
    stop.store(true, Ordering::Relaxed);
    match pipeline.await {
        Ok(r) => {
            r?;
        }
        Err(_) => return Err(DemoError::Pipeline(kafka::PipelineError::ConsumerPanicked)),
    }
    if !caught_up {
        return Err(DemoError::Timeout(60));
    }

    let tasks: Vec<RecoveryTask> =
        read_topic(&bootstrap, &config.output.recovery_tasks, opts.partitions)?
            .into_iter()
            .filter_map(|(_, payload)| serde_json::from_slice(&payload).ok())
            .collect();
    let dead_letters: Vec<DeadLetterLine> =
        read_topic(&bootstrap, &config.output.dead_letter, opts.partitions)?
            .into_iter()
            .map(|(headers, payload)| DeadLetterLine::from_record(&headers, &payload))
            .collect();
    let json = |topic: &str| -> Result<Vec<serde_json::Value>, DemoError> {
        Ok(read_topic(&bootstrap, topic, opts.partitions)?
            .into_iter()
            .filter_map(|(_, payload)| serde_json::from_slice(&payload).ok())
            .collect())
    };
    let snapshots = json(&config.output.trend_snapshots)?;
    let alerts = json(&config.output.trend_alerts)?;
    write_lines(&opts.output.join("recovery-tasks.jsonl"), &tasks)?;
    write_lines(&opts.output.join("dead-letter.jsonl"), &dead_letters)?;
    write_lines(&opts.output.join("trend-snapshots.jsonl"), &snapshots)?;
    write_lines(&opts.output.join("trend-alerts.jsonl"), &alerts)?;
    let elapsed = started.elapsed();
    let mut text = render(
        &opts,
        records.len(),
        poison_records,
        &tasks,
        &dead_letters,
        elapsed,
    );
    text.push_str(&render_loop(outcomes.len(), &tasks, &snapshots));
    text.push_str(&render_trends(&snapshots, &alerts));
    text.push_str(&render_footer(&opts));
    std::fs::write(opts.output.join("summary.txt"), &text)?;
    // Clients must go before the mock cluster they talk to, or they log broker-down errors.
    drop(producer);
    drop(mock);
    Ok(DemoReport {
        input_records: records.len(),
        poison_records,
        tasks,
        dead_letters,
        snapshots: snapshots.len(),
        alerts,
        outcomes: outcomes.len(),
        elapsed,
        text,
    })
}

/// The injected failure spike (see `amends simulate --spike`).
const DEMO_SPIKE: &str = "2026-11-23T12:00:00Z,2h,billing,6";

fn render_trends(snapshots: &[serde_json::Value], alerts: &[serde_json::Value]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nTrends: {} window snapshots (5 min and 1 h, per channel, channel x touch-point, segment, failure type); injected spike: {DEMO_SPIKE}",
        snapshots.len()
    );
    if alerts.is_empty() {
        let _ = writeln!(s, "  no trend alert");
    }
    for a in alerts {
        let _ = writeln!(
            s,
            "  {} {}\n    {}",
            a["status"].as_str().unwrap_or_default(),
            a["alert_id"].as_str().unwrap_or_default(),
            a["summary"].as_str().unwrap_or_default()
        );
    }
    s
}

/// The closed loop as the service measured it: outcomes in, tasks escalated as overdue, and
/// per channel the recovery figures summed over the hourly snapshots.
fn render_loop(sent: usize, tasks: &[RecoveryTask], snapshots: &[serde_json::Value]) -> String {
    let overdue = tasks
        .iter()
        .filter(|t| {
            t.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("overdue"))
        })
        .count();
    #[derive(Default)]
    struct Loop {
        received: u64,
        resolved: u64,
        double_deviations: u64,
    }
    let mut by_channel: BTreeMap<String, Loop> = BTreeMap::new();
    for v in snapshots
        .iter()
        .filter(|v| v["dimension"]["kind"] == "channel" && v["window_seconds"] == 3600)
    {
        let l = by_channel
            .entry(
                v["dimension"]["channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default();
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
        l.received += n(&v["outcomes"]["received"]);
        l.resolved += n(&v["outcomes"]["resolved"]);
        l.double_deviations += n(&v["double_deviations"]);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nClosed loop: {sent} recovery outcomes sent back by the simulated case tool (outcomes.jsonl); {overdue} task revisions escalated as overdue (no outcome by the due time)"
    );
    for (channel, l) in &by_channel {
        if l.received == 0 && l.double_deviations == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            "  {channel:<9} {} outcomes, {:.0}% resolved, {} double deviations",
            l.received,
            100.0 * l.resolved as f64 / l.received.max(1) as f64,
            l.double_deviations,
        );
    }
    let _ = writeln!(
        s,
        "  (each snapshot also carries the recovery paradox rate and the median time to recovery)"
    );
    s
}

fn write_lines<T: serde::Serialize>(path: &Path, items: &[T]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in items {
        serde_json::to_writer(&mut w, i).map_err(std::io::Error::other)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Polls the group's committed offsets until they reach the end of every partition of
/// `topics`.
async fn wait_for_commits(
    bootstrap: &str,
    config: &Config,
    topics: &[&String],
    partitions: i32,
    limit: Duration,
) -> bool {
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let group = config.kafka.group_id.clone();
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        let Ok(c) = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create::<BaseConsumer>()
        else {
            return false;
        };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let mut done = true;
            let mut tpl = TopicPartitionList::new();
            for topic in &topics {
                for p in 0..partitions {
                    tpl.add_partition(topic, p);
                }
            }
            match c.committed_offsets(tpl, Duration::from_secs(2)) {
                Ok(committed) => {
                    for (topic, p) in topics
                        .iter()
                        .flat_map(|t| (0..partitions).map(move |p| (t, p)))
                    {
                        let high = c
                            .fetch_watermarks(topic, p, Duration::from_secs(2))
                            .map(|(_, h)| h)
                            .unwrap_or(i64::MAX);
                        let at = committed
                            .find_partition(topic, p)
                            .and_then(|e| e.offset().to_raw())
                            .unwrap_or(-1);
                        if at < high {
                            done = false;
                        }
                    }
                }
                Err(_) => done = false,
            }
            if done {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })
    .await
    .unwrap_or(false)
}

type HeaderList = Vec<(String, Vec<u8>)>;

/// Reads a whole topic from the beginning (not as a group member).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<(HeaderList, Vec<u8>)>, rdkafka::error::KafkaError> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "amends-demo-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut out = Vec::new();
    let mut eof = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof < partitions && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    x.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((headers, m.payload().map(<[u8]>::to_vec).unwrap_or_default()));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(out)
}

fn render(
    opts: &DemoOptions,
    input: usize,
    poison: usize,
    tasks: &[RecoveryTask],
    dead: &[DeadLetterLine],
    elapsed: Duration,
) -> String {
    // The latest revision of each task is the truth.
    let mut latest: HashMap<&str, &RecoveryTask> = HashMap::new();
    for t in tasks {
        let e = latest.entry(&t.task_id).or_insert(t);
        if t.revision > e.revision {
            *e = t;
        }
    }
    let mut by_severity: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_tier: BTreeMap<&str, usize> = BTreeMap::new();
    for t in latest.values() {
        *by_severity.entry(t.severity.as_str()).or_default() += 1;
        *by_rule.entry(&t.rule).or_default() += 1;
        *by_tier.entry(t.relationship.as_str()).or_default() += 1;
    }
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for d in dead {
        *by_reason.entry(&d.reason).or_default() += 1;
    }
    let fmt = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let escalations = tasks.iter().filter(|t| t.revision > 1).count();
    let mut s = String::new();
    let _ = writeln!(s, "amends demo: three simulated days of touch-points through the real Kafka pipeline (embedded mock cluster)\n");
    let _ = writeln!(s, "  input         {input} records from {} customers on {} partitions, {poison} of them poison", opts.customers, opts.partitions);
    let _ = writeln!(
        s,
        "  recovery tasks {} ({} revisions, {escalations} of them escalations)",
        latest.len(),
        tasks.len()
    );
    let _ = writeln!(s, "    by severity:     {}", fmt(&by_severity));
    let _ = writeln!(s, "    by rule:         {}", fmt(&by_rule));
    let _ = writeln!(s, "    by relationship: {}", fmt(&by_tier));
    let _ = writeln!(s, "  dead letters  {} ({})", dead.len(), fmt(&by_reason));
    let _ = writeln!(s, "  took          {:.1} s\n", elapsed.as_secs_f64());
    let _ = writeln!(s, "Three example tasks:");
    for t in examples(&latest) {
        let comp = t
            .actions
            .iter()
            .find_map(|a| a.compensation.as_ref())
            .map(|c| format!("{} {:.2} {}", c.kind, c.amount, c.currency))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\n  {} rev {} [{} {} {}] customer {} via {}/{} on {}\n    owner {} due {} compensation {}\n    {}",
            t.task_id, t.revision, t.status.as_str(), t.severity.as_str(), t.priority, t.customer_id, t.channel, t.touchpoint, t.incident, t.owner_queue, t.due_at, comp, t.explanation
        );
    }
    s
}

/// Where the outputs are, and how to replay them: the summary's last lines.
fn render_footer(opts: &DemoOptions) -> String {
    format!(
        "\nOutputs in {0}/: input.jsonl, outcomes.jsonl, recovery-tasks.jsonl, dead-letter.jsonl, trend-snapshots.jsonl, trend-alerts.jsonl, summary.txt\n\
         Replay the same input without Kafka: amends replay --input {0}/input.jsonl --outcomes {0}/outcomes.jsonl --output <dir>\n",
        opts.output.display()
    )
}

/// Picks three tasks of different rules (a contact-driven one, a repeat, a first failure...),
/// so the examples show different responses; deterministic for a given run.
fn examples<'a>(latest: &HashMap<&str, &'a RecoveryTask>) -> Vec<&'a RecoveryTask> {
    let mut all: Vec<&RecoveryTask> = latest.values().copied().collect();
    all.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.task_id.cmp(&b.task_id)));
    let mut picked: Vec<&RecoveryTask> = Vec::new();
    for rule in [
        "missed_expectation",
        "customer_effort",
        "repeat_failure",
        "slow_response",
        "cascade",
        "detractor",
        "breaking_point",
    ] {
        if picked.len() == 3 {
            break;
        }
        if let Some(t) = all.iter().find(|t| t.rule == rule) {
            picked.push(t);
        }
    }
    for t in &all {
        if picked.len() == 3 {
            break;
        }
        if !picked.iter().any(|p| p.task_id == t.task_id) {
            picked.push(t);
        }
    }
    picked
}

//! `amends simulate`: seeded synthetic touch-point traffic, to a file or a real cluster, and
//! optionally the recovery outcomes case tools would report for the tasks amends finds in it.

use crate::config::Config;
use crate::domain::RecoveryTask;
use crate::sim::{
    outcomes_for, write_outcomes_jsonl, OutcomeConfig, OutcomeSummary, SimConfig, SimRecord,
    SimStats, Simulator,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::path::Path;

/// What a file run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub records: usize,
    pub stats: SimStats,
}

pub fn to_file(cfg: SimConfig, path: &Path) -> io::Result<Written> {
    let mut w = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let sim = Simulator::new(cfg);
    let records = sim.write_jsonl(&mut w)?;
    w.flush()?;
    Ok(Written {
        records,
        stats: sim.stats().clone(),
    })
}

/// Every task revision the detection emits for the JSON-lines events in `events`, in emission
/// order: `amends replay`'s processing (one partition, the event clock, the watermark moved to
/// the last event time at the end), with the dead letters discarded.
pub fn detect_tasks(config: &Config, events: impl BufRead) -> io::Result<Vec<RecoveryTask>> {
    let mut tasks = TaskLines::default();
    let (mut dead, mut snapshots, mut alerts) = (io::sink(), io::sink(), io::sink());
    let mut w = super::replay::Writers {
        tasks: &mut tasks,
        dead: &mut dead,
        snapshots: &mut snapshots,
        alerts: &mut alerts,
    };
    super::replay::replay_stream(config, events, &mut w)?;
    tasks.finish()
}

/// Detects the tasks in the events file `events` (see [`detect_tasks`]), draws their outcomes
/// with `seed` and writes them to `out` as JSON lines, sorted by `occurred_at`.
pub fn outcomes_to_file(
    config: &Config,
    events: &Path,
    outcomes: &OutcomeConfig,
    seed: u64,
    out: &Path,
) -> io::Result<OutcomeSummary> {
    let reader = io::BufReader::with_capacity(1 << 20, std::fs::File::open(events)?);
    let tasks = detect_tasks(config, reader)?;
    let drawn = outcomes_for(&tasks, outcomes, seed);
    let mut w = std::fs::File::create(out)?;
    write_outcomes_jsonl(&drawn, &mut w)?;
    w.sync_all()?;
    Ok(OutcomeSummary::of(&tasks, &drawn))
}

/// A sink for replay's task lines that parses each line as it completes, so the JSON of all
/// tasks is never held at once.
#[derive(Default)]
struct TaskLines {
    line: Vec<u8>,
    tasks: Vec<RecoveryTask>,
}

impl TaskLines {
    fn take_line(&mut self) -> io::Result<()> {
        if !self.line.iter().all(u8::is_ascii_whitespace) {
            let task = serde_json::from_slice(&self.line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a task line from the detection does not parse: {e}"),
                )
            })?;
            self.tasks.push(task);
        }
        self.line.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<Vec<RecoveryTask>> {
        self.take_line()?;
        Ok(self.tasks)
    }
}

impl Write for TaskLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..i]);
            self.take_line()?;
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a produce run went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub sent: usize,
    /// Records the cluster refused as too large (the oversize poison record, when the topic
    /// keeps Kafka's default 1 MiB limit). Counted, not fatal.
    pub too_large: usize,
}

/// Produces every record to `topic`, keyed by customer id, and waits for all deliveries.
pub async fn to_kafka(
    cfg: SimConfig,
    brokers: &str,
    topic: &str,
    properties: &[(String, String)],
) -> Result<Produced, KafkaError> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        // Lets the oversize poison record leave the client; the topic decides whether it fits.
        .set("message.max.bytes", "2000000");
    for (k, v) in properties {
        cc.set(k, v);
    }
    let producer: FutureProducer = cc.create()?;
    let sim = Simulator::new(cfg);
    produce_all(&producer, topic, sim.iter()).await
}

/// Sends records with a bounded number awaiting acknowledgement and fails on the first
/// undeliverable one. `send_result` enqueues immediately (the async `send` would only enqueue
/// when awaited, which would make this sequential).
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = impl std::borrow::Borrow<SimRecord>>,
) -> Result<Produced, KafkaError> {
    const WINDOW: usize = 20_000;
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(WINDOW);
    let mut done = Produced::default();
    for r in records {
        let r = r.borrow();
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&r.key).payload(&r.payload)) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    match pending.pop_front() {
                        Some(f) => settle(f, &mut done).await?,
                        None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    done.too_large += 1;
                    break;
                }
                Err((e, _)) => return Err(e),
            }
        }
        if pending.len() >= WINDOW {
            if let Some(f) = pending.pop_front() {
                settle(f, &mut done).await?;
            }
        }
    }
    while let Some(f) = pending.pop_front() {
        settle(f, &mut done).await?;
    }
    Ok(done)
}

async fn settle(f: DeliveryFuture, done: &mut Produced) -> Result<(), KafkaError> {
    match f.await {
        Ok(Ok(_)) => {
            done.sent += 1;
            Ok(())
        }
        Ok(Err((e, _)))
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) =>
        {
            done.too_large += 1;
            Ok(())
        }
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Millis;

    #[test]
    fn detect_tasks_returns_what_replay_writes() {
        let sim = Simulator::new(SimConfig {
            customers: 60,
            duration: Millis::from_days(3),
            poison_every: 300,
            ..SimConfig::default()
        });
        let mut events = Vec::new();
        sim.write_jsonl(&mut events).unwrap();
        let config = Config::defaults();
        let mut lines = Vec::new();
        let (mut dead, mut snapshots, mut alerts) = (io::sink(), io::sink(), io::sink());
        let mut w = super::super::replay::Writers {
            tasks: &mut lines,
            dead: &mut dead,
            snapshots: &mut snapshots,
            alerts: &mut alerts,
        };
        super::super::replay::replay_stream(&config, events.as_slice(), &mut w).unwrap();
        let written: Vec<RecoveryTask> = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(written.len() > 20, "{} task revisions", written.len());
        let tasks = detect_tasks(&config, events.as_slice()).unwrap();
        assert_eq!(tasks, written);
        // However the bytes arrive.
        let mut sink = TaskLines::default();
        for chunk in lines.chunks(7) {
            sink.write_all(chunk).unwrap();
        }
        assert_eq!(sink.finish().unwrap(), written);
        let mut bad = TaskLines::default();
        let err = bad.write_all(b"{\"task_id\":1}\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn outcomes_to_file_writes_sorted_decodable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        let cfg = SimConfig {
            customers: 60,
            duration: Millis::from_days(3),
            ..SimConfig::default()
        };
        let w = to_file(cfg.clone(), &events).unwrap();
        assert_eq!(w.records, w.stats.records);
        let out = dir.path().join("outcomes.jsonl");
        let summary = outcomes_to_file(
            &Config::defaults(),
            &events,
            &OutcomeConfig::default(),
            42,
            &out,
        )
        .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let decoder = crate::codec::Decoder::new(&Config::defaults());
        let decoded: Vec<_> = text
            .lines()
            .map(|l| decoder.outcome(l.as_bytes()).unwrap())
            .collect();
        assert!(summary.written() > 10, "{summary}");
        assert_eq!(decoded.len(), summary.written());
        assert!(decoded
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at));
        let again = dir.path().join("again.jsonl");
        outcomes_to_file(
            &Config::defaults(),
            &events,
            &OutcomeConfig::default(),
            42,
            &again,
        )
        .unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), text.into_bytes());
    }
}

//! `amends simulate`: seeded synthetic touch-point traffic, to a file or a real cluster.

use crate::sim::{SimConfig, SimRecord, Simulator};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;

pub fn to_file(cfg: SimConfig, path: &Path) -> std::io::Result<usize> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let n = Simulator::new(cfg).write_jsonl(&mut w)?;
    w.flush()?;
    Ok(n)
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

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

/// Produces every record to `topic`, keyed by customer id, and waits for all deliveries.
pub async fn to_kafka(cfg: SimConfig, brokers: &str, topic: &str, properties: &[(String, String)]) -> Result<usize, KafkaError> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers).set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "20");
    for (k, v) in properties {
        cc.set(k, v);
    }
    let producer: FutureProducer = cc.create()?;
    produce_all(&producer, topic, &Simulator::new(cfg).records()).await
}

/// Sends records with a bounded number awaiting acknowledgement and fails on the first
/// undeliverable one. `send_result` enqueues immediately (the async `send` would only enqueue
/// when awaited, which would make this sequential).
pub async fn produce_all(producer: &FutureProducer, topic: &str, records: &[SimRecord]) -> Result<usize, KafkaError> {
    const WINDOW: usize = 20_000;
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(WINDOW);
    for r in records {
        loop {
            match producer.send_result(FutureRecord::to(topic).key(&r.key).payload(&r.payload)) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => match pending.pop_front() {
                    Some(f) => settle(f).await?,
                    None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                },
                Err((e, _)) => return Err(e),
            }
        }
        if pending.len() >= WINDOW {
            if let Some(f) = pending.pop_front() {
                settle(f).await?;
            }
        }
    }
    while let Some(f) = pending.pop_front() {
        settle(f).await?;
    }
    Ok(records.len())
}

async fn settle(f: DeliveryFuture) -> Result<(), KafkaError> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

//! Producing outputs. Every output of one input record is sent, and the record's offset is
//! released only when all of them are acknowledged. Failed deliveries are re-sent up to
//! `pipeline.delivery_attempts`; after that the instance stops without committing, so the
//! input is processed again after restart (at-least-once).

use super::PipelineError;
use crate::pipeline::{header, OutboundKind, OutboundRecord};
use crate::telemetry::events::{DeliveryRetried, TaskDelivered};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer,
    attempts: u32,
    /// Partitions of `output.trend_partials` (from the cluster's metadata at start): a trend
    /// "closed" marker goes to each.
    partials_partitions: std::sync::Arc<std::sync::atomic::AtomicI32>,
    /// With exactly-once, the open transaction's label, sent in every record's `amends.txn`
    /// header: which transaction a record belongs to, for audits (and for tests on a broker
    /// that does not hide aborted transactions from read_committed readers).
    txn: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<[u8]>>>>,
}

impl KafkaSink {
    pub fn new(producer: FutureProducer, attempts: u32) -> KafkaSink {
        KafkaSink {
            producer,
            attempts,
            partials_partitions: Default::default(),
            txn: Default::default(),
        }
    }

    /// Labels the records sent from now on as part of transaction `label`.
    pub fn set_transaction(&self, label: &str) {
        let mut g = self.txn.write().unwrap_or_else(|p| p.into_inner());
        *g = Some(std::sync::Arc::from(label.as_bytes()));
    }

    pub fn set_partials_partitions(&self, n: i32) {
        self.partials_partitions
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Delivers one output, retrying with back-off. `source_ts_ms` is the input's Kafka
    /// timestamp, for the event-to-task latency histogram.
    pub async fn deliver(
        &self,
        rec: OutboundRecord,
        source_ts_ms: Option<i64>,
    ) -> Result<(), PipelineError> {
        if rec.kind != OutboundKind::TrendClosed {
            return self.deliver_to(rec, None, source_ts_ms).await.map(drop);
        }
        // Every merger must see every source's markers, after that source's partials.
        let n = self
            .partials_partitions
            .load(std::sync::atomic::Ordering::Relaxed);
        for p in 0..n.max(1) {
            self.deliver_to(rec.clone(), Some(p), source_ts_ms).await?;
        }
        Ok(())
    }

    /// Delivers one changelog record to partition `partition` of its topic (the partition
    /// of the input partition whose state it holds), retrying as [`KafkaSink::deliver`] does.
    /// Returns the record's offset.
    pub async fn deliver_state(
        &self,
        rec: OutboundRecord,
        partition: i32,
    ) -> Result<i64, PipelineError> {
        self.deliver_to(rec, Some(partition), None).await
    }

    async fn deliver_to(
        &self,
        mut rec: OutboundRecord,
        partition: Option<i32>,
        source_ts_ms: Option<i64>,
    ) -> Result<i64, PipelineError> {
        let mut attempt = 0u32;
        let txn = self.txn.read().unwrap_or_else(|p| p.into_inner()).clone();
        loop {
            attempt += 1;
            let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len() + 1);
            for (k, v) in &rec.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            if let Some(label) = &txn {
                headers = headers.insert(Header {
                    key: "amends.txn",
                    value: Some(&label[..]),
                });
            }
            let mut fr = FutureRecord::to(&rec.topic).headers(headers);
            if rec.kind != OutboundKind::State || !rec.payload.is_empty() {
                fr = fr.payload(&rec.payload);
            }
            if let Some(k) = &rec.key {
                fr = fr.key(k);
            }
            if let Some(p) = partition {
                fr = fr.partition(p);
            }
            // Timeout::Never: when librdkafka's queue is full, wait for room (backpressure)
            // rather than fail.
            match self.producer.send(fr, Timeout::Never).await {
                Ok(delivered) => {
                    if rec.kind == OutboundKind::Task {
                        let latency_s =
                            source_ts_ms.map(|ts| (now_ms() - ts).max(0) as f64 / 1000.0);
                        TaskDelivered {
                            rule: header(&rec, "amends.rule").unwrap_or("unknown"),
                            severity: header(&rec, "amends.severity").unwrap_or("unknown"),
                            latency_s,
                        }
                        .emit();
                    }
                    return Ok(delivered.offset);
                }
                Err((e, _))
                    if is_too_large(&e)
                        && rec.kind == OutboundKind::DeadLetter
                        && rec.payload.len() > TRUNCATED_DEAD_LETTER =>
                {
                    // The cluster will not take the original bytes (they passed the input
                    // topic's limit but not ours or the dead-letter topic's). Keep the head of
                    // the payload and say so, rather than stall the partition.
                    tracing::warn!(topic = %rec.topic, bytes = rec.payload.len(), "dead letter too large for the cluster; truncating its payload");
                    rec.headers.push((
                        "amends.payload_truncated_from".into(),
                        rec.payload.len().to_string().into_bytes(),
                    ));
                    rec.payload.truncate(TRUNCATED_DEAD_LETTER);
                    attempt -= 1;
                }
                Err((e, _)) => {
                    if attempt >= self.attempts {
                        return Err(PipelineError::Delivery {
                            topic: rec.topic.to_string(),
                            attempts: attempt,
                            error: e.to_string(),
                        });
                    }
                    DeliveryRetried {
                        topic: &rec.topic,
                        attempt,
                        error: &e.to_string(),
                    }
                    .emit();
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }
}

/// Bytes of the original payload kept when a dead letter is too large for the cluster.
const TRUNCATED_DEAD_LETTER: usize = 64 * 1024;

fn is_too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

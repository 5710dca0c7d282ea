//! Kafka clients for tests: topic creation, producing with acknowledgement, reading back.

use super::unique_name;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub(super) fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("log_level", "3") // errors only; the broker coming and going is expected
        .set("socket.timeout.ms", "10000");
    c
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Creates topics (replication 1) and waits until the broker's metadata lists them with the
/// requested partition counts. A topic that already exists is an error: names are unique.
pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> =
        base_config(bootstrap).create().expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, parts)| NewTopic::new(name, *parts, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = block_on(admin.create_topics(new.iter(), &opts)).expect("CreateTopics request");
    for r in results {
        if let Err((topic, code)) = r {
            panic!("creating topic {topic} failed: {code:?}");
        }
    }
    let consumer: BaseConsumer = base_config(bootstrap).create().expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(15);
    for (name, parts) in topics {
        loop {
            let n = partition_count(&consumer, name);
            if n == Some(*parts as usize) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} not visible with {parts} partitions after creation (saw {n:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> Option<usize> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len())
}

/// Where a produced record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Landed {
    pub partition: i32,
    pub offset: i64,
}

/// A record to produce. `payload: None` produces a tombstone.
#[derive(Clone, Debug)]
pub struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl OutRecord {
    pub fn new(key: impl Into<Vec<u8>>, payload: impl Into<Vec<u8>>) -> OutRecord {
        OutRecord {
            key: Some(key.into()),
            payload: Some(payload.into()),
        }
    }
}

/// Produces one record with a `FutureProducer` and waits for the broker's acknowledgement.
pub fn produce(bootstrap: &str, topic: &str, key: &[u8], payload: &[u8]) -> Landed {
    produce_batch(bootstrap, topic, &[OutRecord::new(key, payload)])[0]
}

/// Produces records in order and waits for every acknowledgement; see [`Producer::send_all`].
pub fn produce_batch(bootstrap: &str, topic: &str, records: &[OutRecord]) -> Vec<Landed> {
    Producer::new(bootstrap).send_all(topic, records)
}

/// Produces a record with headers, acknowledged, returning where it landed.
pub fn produce_with_headers(
    bootstrap: &str,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    headers: &[(&str, &[u8])],
) -> Landed {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    let producer = Producer::new(bootstrap);
    let rec = FutureRecord::to(topic).key(key).payload(payload).headers(h);
    match block_on(producer.inner.send(rec, Duration::from_secs(30))) {
        Ok(d) => Landed {
            partition: d.partition,
            offset: d.offset,
        },
        Err((e, _)) => panic!("delivery to {topic} failed: {e}"),
    }
}

/// A `FutureProducer` for tests, reusable across batches (and threads: it is `Send + Sync`).
pub struct Producer {
    inner: FutureProducer,
}

impl Producer {
    pub fn new(bootstrap: &str) -> Producer {
        let inner = base_config(bootstrap)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            // One request in flight keeps a partition's records in production order even when
            // a request is retried, without relying on idempotent-producer support.
            .set("max.in.flight.requests.per.connection", "1")
            // One record per batch. Tansu 0.6.0 answers a fetch from an offset inside a record
            // batch with the *following* batches only (dynostore `fetch` keeps batches whose base
            // offset is >= the requested one), so a consumer resuming from a committed offset in
            // the middle of a batch silently skips the rest of it. Kafka and Redpanda return the
            // containing batch. With single-record batches every offset is a batch boundary.
            .set("batch.num.messages", "1")
            .create()
            .expect("producer");
        Producer { inner }
    }

    /// Produces records in order (keyed records hash to partitions with librdkafka's default
    /// partitioner, as Kafka clients do) and waits for every acknowledgement. Returns where
    /// each landed, in input order. Panics on any delivery failure.
    pub fn send_all(&self, topic: &str, records: &[OutRecord]) -> Vec<Landed> {
        let mut futures = Vec::with_capacity(records.len());
        for r in records {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(k) = r.key.as_deref() {
                rec = rec.key(k);
            }
            if let Some(p) = r.payload.as_deref() {
                rec = rec.payload(p);
            }
            loop {
                match self.inner.send_result(rec) {
                    Ok(f) => {
                        futures.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        self.inner.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("producing to {topic}: {e}"),
                }
            }
        }
        block_on(async {
            let mut landed = Vec::with_capacity(futures.len());
            for f in futures {
                match f.await {
                    Ok(Ok(d)) => landed.push(Landed {
                        partition: d.partition,
                        offset: d.offset,
                    }),
                    Ok(Err((e, _))) => panic!("delivery to {topic} failed: {e}"),
                    Err(_) => panic!("delivery to {topic}: producer dropped the report"),
                }
            }
            landed
        })
    }
}

/// One record read back from a topic.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ReadRecord {
    /// The first header with this name, as UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }
}

/// Reads a whole topic from the beginning with manual assignment (no consumer group, nothing
/// committed), keeping what it has read so repeated [`TopicReader::poll_for`] calls only fetch
/// what is new.
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    records: Vec<ReadRecord>,
}

impl TopicReader {
    pub fn new(bootstrap: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = base_config(bootstrap)
            .set("group.id", unique_name("reader")) // required by librdkafka; never joined
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .expect("reader consumer");
        let deadline = Instant::now() + Duration::from_secs(15);
        let parts = loop {
            if let Some(n) = partition_count(&consumer, topic) {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} has no metadata; was it created?"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("add partition");
        }
        consumer.assign(&tpl).expect("assign");
        TopicReader {
            consumer,
            topic: topic.to_string(),
            records: Vec::new(),
        }
    }

    /// Polls for `d`, appending whatever arrives. Returns how many records arrived.
    pub fn poll_for(&mut self, d: Duration) -> usize {
        let before = self.records.len();
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left.min(Duration::from_millis(100))) {
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_string(),
                                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    self.records.push(ReadRecord {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers,
                    });
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                // The broker going away is what some tests do on purpose; librdkafka reconnects.
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
                ))) => {}
                Some(Err(e)) => eprintln!("reader of {}: {e}", self.topic),
                None => {}
            }
        }
        self.records.len() - before
    }

    /// Polls until `done(records)` holds or `timeout` passes. Returns whether it held.
    pub fn poll_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[ReadRecord]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.records) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.poll_for(Duration::from_millis(200));
        }
    }

    pub fn records(&self) -> &[ReadRecord] {
        &self.records
    }
}

/// Reads `topic` from the beginning until at least `expected_min` records arrived and no more
/// arrive for a short while, or `timeout` passes. Returns what it read (possibly fewer than
/// `expected_min`: the caller asserts).
pub fn drain_topic(
    bootstrap: &str,
    topic: &str,
    expected_min: usize,
    timeout: Duration,
) -> Vec<ReadRecord> {
    let mut r = TopicReader::new(bootstrap, topic);
    r.poll_until(timeout, |recs| recs.len() >= expected_min);
    // Settle: pick up stragglers (duplicates, late acks) without waiting for the full timeout.
    while r.poll_for(Duration::from_millis(500)) > 0 {}
    r.records
}

/// Ok once the broker at `bootstrap` answers a metadata request listing at least one broker.
pub(super) fn metadata_probe(bootstrap: &str) -> Result<(), String> {
    let consumer: BaseConsumer = base_config(bootstrap).create().map_err(|e| e.to_string())?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    if md.brokers().is_empty() {
        return Err("metadata lists no brokers".into());
    }
    Ok(())
}

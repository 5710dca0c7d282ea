//! What the changelog costs with 1,000,000 customers: `cargo bench --bench restore`
//! (`-- <customers>` for another count).
//!
//! Simulated traffic for about that many customers (4 hours of it, about 1.5 events each) goes
//! through a `Processor` that tracks changes; then one checkpoint writes every customer's
//! changelog record (as the first checkpoint after a cold start does), and a `Restorer`
//! rebuilds the state from those records in offset order, as a worker does on assignment.
//! With `-- --brokers HOST:PORT` the records are also written to a changelog topic there and
//! read back by `restore::rebuild`, which is what a worker runs on assignment.
//! Prints the times, the record count and bytes, and checks the restored state is
//! byte-identical.

use amends::config::Config;
use amends::domain::Millis;
use amends::pipeline::changelog::Restorer;
use amends::pipeline::{InboundRecord, Processor};
use amends::sim::{SimConfig, Simulator};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let customers: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // `--brokers HOST:PORT`: also write the records to a changelog topic on that broker and
    // time `restore::rebuild` reading them back, as a worker does on assignment.
    let brokers = args
        .iter()
        .position(|a| a == "--brokers")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mut config = Config::defaults();
    config.detect.max_customers = customers * 4;
    // Over 4 hours about one simulated customer in 7.6 is active: simulate 8x as many to hold
    // about `customers`.
    let sim = SimConfig {
        customers: customers * 8,
        duration: Millis::from_hours(4),
        ..SimConfig::default()
    };
    let topic: Arc<str> = Arc::from("touchpoints");
    let mut p = Processor::new(&config);
    p.track_changes();
    let mut out = Vec::new();
    let t = Instant::now();
    let mut events = 0i64;
    for r in Simulator::new(sim).iter() {
        let rec = InboundRecord {
            topic: topic.clone(),
            partition: 0,
            offset: events,
            key: Some(r.key),
            payload: Some(r.payload),
            timestamp_ms: None,
        };
        p.process(&rec, r.occurred_at, &mut out);
        out.clear();
        events += 1;
    }
    let held = p.engine().customers();
    println!(
        "fed {events} events in {:.1} s: {held} customers held",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let records = p
        .checkpoint(&[(topic.clone(), events)], 1, 0)
        .expect("checkpoint");
    let checkpoint_s = t.elapsed().as_secs_f64();
    let bytes: usize = records
        .iter()
        .map(|r| r.key.len() + r.value.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "checkpoint: {} records, {:.1} MB, {:.0} B per customer, taken in {checkpoint_s:.2} s",
        records.len(),
        bytes as f64 / 1e6,
        bytes as f64 / held.max(1) as f64
    );

    let t = Instant::now();
    let mut restorer = Restorer::new(Processor::new(&config));
    for (offset, r) in records.iter().enumerate() {
        restorer
            .apply(offset as i64, Some(&r.key), r.value.as_deref())
            .expect("apply");
    }
    let (restored, info) = restorer.finish().expect("finish");
    let restore_s = t.elapsed().as_secs_f64();
    println!(
        "restore: {} customers from {} records in {restore_s:.2} s ({:.0} customers/s)",
        restored.engine().customers(),
        records.len(),
        restored.engine().customers() as f64 / restore_s
    );
    assert!(info.is_some(), "the checkpoint record was applied");
    assert_eq!(restored.engine().customers(), held);
    assert!(
        restored.engine().snapshot() == p.engine().snapshot(),
        "the restored state is byte-identical"
    );
    drop(restored);
    if let Some(brokers) = brokers {
        through_broker(&config, &brokers, &records, &p);
    }
}

/// Writes `records` to partition 0 of a new changelog topic on `brokers`, then times
/// `restore::rebuild` of that partition (changelog read to its end, no input to replay).
fn through_broker(
    config: &Config,
    brokers: &str,
    records: &[amends::pipeline::changelog::StateRecord],
    original: &Processor,
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut c = config.clone();
    c.kafka.brokers = brokers.to_string();
    c.kafka.group_id = format!("restore-bench-{suffix}");
    c.output.changelog = format!("restore-bench-{suffix}.changelog");
    c.input.touchpoints.topics = vec![format!("restore-bench-{suffix}.touchpoints")];
    c.input.recovery_outcomes.topics = Vec::new();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let topics = [
        NewTopic::new(&c.output.changelog, 1, TopicReplication::Fixed(1)),
        NewTopic::new(
            &c.input.touchpoints.topics[0],
            1,
            TopicReplication::Fixed(1),
        ),
    ];
    for r in rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("create topics")
    {
        r.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        // One record per batch: Tansu 0.6 answers a fetch from inside a batch with the
        // batches after it only (README, "Tansu"), which a reader resuming mid-batch after a
        // size-limited fetch would see as missing records. Kafka and Redpanda do not need it.
        .set("batch.num.messages", "1")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer");
    let t = Instant::now();
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let mut rec = FutureRecord::<[u8], [u8]>::to(&c.output.changelog)
            .key(&r.key[..])
            .partition(0);
        if let Some(v) = &r.value {
            rec = rec.payload(&v[..]);
        }
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "{e}"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    rec = back;
                }
            }
        }
    }
    let results = rt.block_on(futures_util::future::join_all(pending));
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| match r {
            Ok(Ok(_)) => None,
            Ok(Err((e, _))) => Some(e.to_string()),
            Err(_) => Some("cancelled".into()),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} changelog records not delivered, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    println!(
        "wrote {} records to {} in {:.1} s",
        records.len(),
        c.output.changelog,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let topic: Arc<str> = Arc::from(c.input.touchpoints.topics[0].as_str());
    let (p, done) = amends::kafka::restore::rebuild(&c, &topic, 0, 1, None).expect("rebuild");
    let s = t.elapsed().as_secs_f64();
    println!(
        "restore from the broker: {} customers, {} changelog records, {} input records replayed, in {s:.2} s ({:.0} customers/s)",
        p.engine().customers(),
        done.changelog_records,
        done.records,
        p.engine().customers() as f64 / s
    );
    assert!(
        p.engine().snapshot() == original.engine().snapshot(),
        "the state restored from the broker is byte-identical"
    );
}

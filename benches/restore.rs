//! What the changelog costs with 1,000,000 customers: `cargo bench --bench restore`
//! (`-- <customers>` for another count).
//!
//! Simulated traffic for about that many customers (4 hours of it, about 1.5 events each) goes
//! through a `Processor` that tracks changes; then one checkpoint writes every customer's
//! changelog record (as the first checkpoint after a cold start does), and a `Restorer`
//! rebuilds the state from those records in offset order, as a worker does on assignment.
//! Reading the records from the broker comes on top (see the note in docs/reliability.md).
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
    let customers: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
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
}

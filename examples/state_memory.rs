//! Measures the detection state's memory per tracked customer.
//!
//! `cargo run --release --example state_memory -- [CUSTOMERS] [HOURS]` simulates CUSTOMERS
//! customers (default 1,000,000) over HOURS of event time (default 6), decodes the events and
//! feeds them to one engine through the pipeline's `Processor` (reorder buffer included, then
//! flushed), and reports the heap bytes the state holds (counted by a wrapping allocator: bytes
//! allocated and not freed, after the inputs are dropped), the bytes per customer, the
//! snapshot's encoded size, and the process's peak RSS.

use amends::config::Config;
use amends::domain::EventTime;
use amends::pipeline::{InboundRecord, Processor};
use amends::sim::{SimConfig, Simulator};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let customers: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("CUSTOMERS"));
    let hours: i64 = args.next().map_or(6, |a| a.parse().expect("HOURS"));
    // `AMENDS_SECTION__KEY` overrides apply, e.g. AMENDS_DETECT__EXPECTATIONS='[]'.
    let config = Config::from_toml_str("", "defaults", std::env::vars()).expect("config");
    let sim = Simulator::new(SimConfig {
        customers,
        duration: amends::domain::Millis::from_hours(hours),
        ..SimConfig::default()
    });
    let before = LIVE.load(Ordering::Relaxed);
    let mut p = Processor::new(&config).with_event_clock();
    let engine_empty = LIVE.load(Ordering::Relaxed) - before;
    let topic: Arc<str> = Arc::from("touchpoints");
    let mut out = Vec::new();
    let mut released = Vec::new();
    let mut events = 0u64;
    let mut tasks = 0u64;
    let started = std::time::Instant::now();
    for (i, r) in sim.iter().enumerate() {
        let rec = InboundRecord {
            topic: topic.clone(),
            partition: 0,
            offset: i as i64,
            key: None,
            payload: Some(r.payload),
            timestamp_ms: None,
        };
        p.process(&rec, EventTime(0), &mut out);
        p.take_released(&mut released);
        released.clear();
        tasks += out.len() as u64;
        out.clear();
        events += 1;
    }
    p.flush(EventTime(0), &mut out);
    tasks += out.len() as u64;
    out.clear();
    out.shrink_to_fit();
    released.shrink_to_fit();
    let elapsed = started.elapsed().as_secs_f64();
    let state = LIVE.load(Ordering::Relaxed) - before;
    let n = p.engine().customers();
    let snapshot = p.engine().snapshot().len();
    println!(
        "{events} events, {tasks} task revisions, {n} customers in state ({:.1} s, {:.0} events/s with decode)",
        elapsed,
        events as f64 / elapsed
    );
    println!(
        "state heap: {} bytes = {:.0} bytes per customer (empty engine {} bytes); snapshot {} bytes = {:.0} per customer",
        state,
        state as f64 / n.max(1) as f64,
        engine_empty,
        snapshot,
        snapshot as f64 / n.max(1) as f64
    );
    // The same state restored from its snapshot: no reorder buffer, no growth slack.
    let bytes = p.engine().snapshot();
    drop(p);
    let base = LIVE.load(Ordering::Relaxed);
    let restored = amends::detect::Engine::restore(&config, &bytes).expect("restore");
    let restored_bytes = LIVE.load(Ordering::Relaxed) - base;
    drop(bytes);
    println!(
        "restored from the snapshot: {} bytes = {:.0} bytes per customer",
        restored_bytes,
        restored_bytes as f64 / restored.customers().max(1) as f64
    );
    if let Some(kib) = peak_rss_kib() {
        println!("peak RSS: {:.0} MiB", kib as f64 / 1024.0);
    }
}

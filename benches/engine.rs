//! The detection engine without decoding: `cargo bench --bench engine`.
//!
//! Simulator events are decoded once up front; each iteration feeds all of them, in delivery
//! order, to a fresh `Engine` on the event clock `replay` uses, none of them marked late.

use amends::codec::Decoder;
use amends::config::Config;
use amends::detect::{Clock, Engine};
use amends::domain::{SourcePos, TouchpointEvent};
use amends::sim::{SimConfig, Simulator};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;

const EVENTS: usize = 300_000;

fn events(config: &Config) -> Vec<TouchpointEvent> {
    let decoder = Decoder::new(config);
    Simulator::new(SimConfig::for_events(EVENTS))
        .iter()
        .filter_map(|r| decoder.touchpoint(&r.payload).ok())
        .collect()
}

fn run(config: &Config, events: &[TouchpointEvent]) -> usize {
    let mut engine = Engine::new(config);
    let mut out = Vec::new();
    let mut src = SourcePos {
        topic: Arc::from("touchpoints"),
        partition: 0,
        offset: -1,
    };
    let mut outputs = 0;
    for e in events {
        src.offset += 1;
        engine.on_event(e, &src, Clock::Event, false, &mut out);
        outputs += out.len();
        out.clear();
    }
    outputs
}

fn engine(c: &mut Criterion) {
    let config = Config::defaults();
    let events = events(&config);
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("on_event", |b| b.iter(|| run(&config, &events)));
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);

//! Decoding simulator lines into validated events: `cargo bench --bench decode`.
//!
//! `decoder` is the production path (`Decoder::touchpoint`: size check, fast path, validation);
//! `serde_path` is the serde_json path every unusual payload falls back to, for comparison.

use amends::codec::{json, Decoder};
use amends::config::Config;
use amends::sim::{SimConfig, Simulator};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn lines() -> Vec<Vec<u8>> {
    Simulator::new(SimConfig::for_events(20_000))
        .iter()
        .map(|r| r.payload)
        .collect()
}

fn decode(c: &mut Criterion) {
    let config = Config::defaults();
    let decoder = Decoder::new(&config);
    let lines = lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decoder", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(decoder.touchpoint(black_box(l)));
            }
        })
    });
    g.bench_function("serde_path", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(json::decode_touchpoint_serde(
                    black_box(l),
                    &config.limits,
                    decoder.channels(),
                ));
            }
        })
    });
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("decoder_bytes", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(decoder.touchpoint(black_box(l)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);

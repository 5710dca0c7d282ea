//! Decode-only throughput over a JSON-lines file, the number `amends replay` is compared with:
//!
//! ```sh
//! cargo bench --bench decode_file -- /tmp/events-1m.jsonl [--runs 5]
//! ```
//!
//! Each run is one [`decode_only`] pass (reading included, as in a replay) with the embedded
//! default config; the median of the runs is printed last. Without a file it prints usage and
//! exits 0, so a plain `cargo bench` does not fail.

use amends::app::decode_bench::decode_only;
use amends::config::Config;
use std::fs::File;
use std::io::BufReader;

fn main() -> std::io::Result<()> {
    let mut runs = 5usize;
    let mut files = Vec::new();
    // Test runners list a target's tests first (`--list --format terse`): there are none.
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs),
            // `cargo bench` appends `--bench`; other harness flags mean nothing here.
            s if s.starts_with("--") => {}
            s => files.push(s.to_string()),
        }
    }
    if files.is_empty() {
        eprintln!("usage: cargo bench --bench decode_file -- FILE.jsonl [--runs N]");
        return Ok(());
    }
    let config = Config::defaults();
    for path in files {
        let bytes = std::fs::metadata(&path)?.len();
        let mut rates = Vec::with_capacity(runs);
        for run in 1..=runs.max(1) {
            // Same buffer size as `replay`.
            let reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
            let s = decode_only(&config, reader)?;
            println!(
                "{path} run {run}: {} records ({} ok, {} errors) in {:.3} s: {:.0} records/s, {:.0} MB/s",
                s.records,
                s.ok,
                s.errors,
                s.elapsed_s,
                s.records_per_second(),
                bytes as f64 / s.elapsed_s / 1e6
            );
            rates.push(s.records_per_second());
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{path}: median {:.0} records/s over {} runs",
            rates[rates.len() / 2],
            rates.len()
        );
    }
    Ok(())
}

//! Decode-only throughput: reads JSON lines exactly as `amends replay` does and runs only
//! [`Decoder::touchpoint`] on each, so a replay's events/s can be shown next to what decoding
//! alone costs on the same input. No detection, no outputs, nothing written.

use crate::codec::Decoder;
use crate::config::Config;
use std::io::BufRead;
use std::time::Instant;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct DecodeOnlySummary {
    /// Non-blank lines read (the records `replay` would process).
    pub records: u64,
    /// Records that decoded and validated.
    pub ok: u64,
    /// Records that `replay` would dead-letter (decode, validation or size errors).
    pub errors: u64,
    /// Wall time of the whole pass, reading included.
    pub elapsed_s: f64,
}

impl DecodeOnlySummary {
    pub fn records_per_second(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.records as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
}

/// Decodes every record of `reader` and counts the results. Line handling matches
/// `replay::replay_stream`: lines end at `\n`, trailing `\r`/`\n` bytes are dropped, and lines
/// of only ASCII whitespace are skipped (they are not records there either).
pub fn decode_only(
    config: &Config,
    mut reader: impl BufRead,
) -> std::io::Result<DecodeOnlySummary> {
    let started = Instant::now();
    let decoder = Decoder::new(config);
    let mut s = DecodeOnlySummary::default();
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        s.records += 1;
        // The event is dropped here on purpose: freeing it is part of what a replay pays too.
        match decoder.touchpoint(&line) {
            Ok(_) => s.ok += 1,
            Err(_) => s.errors += 1,
        }
    }
    s.elapsed_s = started.elapsed().as_secs_f64();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{PoisonKind, SimConfig, Simulator};

    #[test]
    fn counts_records_like_replay_and_splits_ok_from_errors() {
        let sim = Simulator::new(SimConfig {
            customers: 20,
            poison_every: 10,
            ..SimConfig::default()
        });
        let mut input = Vec::new();
        let mut expected_poison = 0;
        for r in sim.iter() {
            if r.poison.is_some() {
                expected_poison += 1;
            }
            input.extend_from_slice(&r.payload);
            input.extend_from_slice(b"\r\n");
            // Blank and whitespace-only lines are not records.
            input.extend_from_slice(b"\n  \t\r\n");
        }
        let config = Config::defaults();
        let s = decode_only(&config, input.as_slice()).unwrap();
        assert!(expected_poison > 0);
        assert_eq!(s.records, sim.len() as u64);
        assert_eq!(s.errors, expected_poison);
        assert_eq!(s.ok, s.records - s.errors);
        assert!(s.elapsed_s > 0.0);
        assert!(s.records_per_second() > 0.0);
    }

    #[test]
    fn last_line_without_newline_counts_and_bad_lines_are_errors() {
        let good = Simulator::new(SimConfig {
            customers: 1,
            ..SimConfig::default()
        })
        .iter()
        .next()
        .unwrap()
        .payload;
        let mut input = crate::sim::poison_payload(PoisonKind::UnknownEnum, 1);
        input.push(b'\n');
        input.extend_from_slice(&good);
        let s = decode_only(&Config::defaults(), input.as_slice()).unwrap();
        assert_eq!((s.records, s.ok, s.errors), (2, 1, 1));
        let empty = decode_only(&Config::defaults(), &b""[..]).unwrap();
        assert_eq!((empty.records, empty.records_per_second()), (0, 0.0));
    }
}

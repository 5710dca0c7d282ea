//! `amends replay`: the same processing as the service, over a JSON-lines file, writing
//! `recovery-tasks.jsonl` and `dead-letter.jsonl`. Deterministic: `emitted_at` is the event time
//! that caused the output (an event's `occurred_at`, a timer's deadline) and `dead_lettered_at`
//! the highest event time received so far, never the wall clock.

use crate::config::{Config, Format};
use crate::domain::EventTime;
use crate::pipeline::dead_letter::DeadLetterLine;
use crate::pipeline::{InboundRecord, OutboundKind, OutboundRecord, Processed, Processor};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReplaySummary {
    pub records: u64,
    pub events: u64,
    pub dead_letters: u64,
    pub tasks: u64,
    pub customers: usize,
    pub elapsed_s: f64,
}

impl ReplaySummary {
    pub fn events_per_second(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.records as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
}

pub fn replay(config: &Config, input: &Path, output_dir: &Path) -> std::io::Result<ReplaySummary> {
    std::fs::create_dir_all(output_dir)?;
    let reader = BufReader::with_capacity(1 << 20, File::open(input)?);
    let mut tasks = BufWriter::with_capacity(
        1 << 20,
        File::create(output_dir.join("recovery-tasks.jsonl"))?,
    );
    let mut dead = BufWriter::new(File::create(output_dir.join("dead-letter.jsonl"))?);
    let summary = replay_stream(config, reader, &mut tasks, &mut dead)?;
    tasks.flush()?;
    dead.flush()?;
    Ok(summary)
}

/// Replays JSON lines from `reader`; tasks and dead letters are written as JSON lines.
pub fn replay_stream(
    config: &Config,
    mut reader: impl BufRead,
    tasks: &mut impl Write,
    dead: &mut impl Write,
) -> std::io::Result<ReplaySummary> {
    let started = Instant::now();
    let mut p = Processor::new(config)
        .with_output_format(Format::Json)
        .with_event_clock();
    let topic: Arc<str> = Arc::from(
        config
            .input
            .touchpoints
            .topics
            .first()
            .map(String::as_str)
            .unwrap_or("touchpoints"),
    );
    let mut s = ReplaySummary::default();
    let mut line = Vec::with_capacity(4096);
    let mut outs: Vec<OutboundRecord> = Vec::new();
    let mut released: Vec<i64> = Vec::new();
    let mut now = EventTime::MIN;
    let mut offset: i64 = -1;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        // Offsets are line indexes (0-based), so evidence points at the line in the file.
        offset += 1;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        s.records += 1;
        let rec = InboundRecord {
            topic: topic.clone(),
            partition: 0,
            offset,
            key: None,
            payload: Some(std::mem::take(&mut line)),
            timestamp_ms: None,
        };
        let processed = p.process(&rec, now, &mut outs);
        p.take_released(&mut released);
        released.clear();
        line = rec.payload.unwrap_or_default();
        match processed {
            Processed::Event { event_time, .. } => {
                s.events += 1;
                if event_time > now {
                    now = event_time;
                }
            }
            Processed::DeadLettered(_) => s.dead_letters += 1,
            Processed::RecoveryOutcome => {}
        }
        write_outputs(&mut outs, tasks, dead, &mut s)?;
    }
    // At end of input, time advances to the last event time: the reorder buffer empties and
    // the timers due before it fire.
    p.flush(now, &mut outs);
    write_outputs(&mut outs, tasks, dead, &mut s)?;
    s.customers = p.engine().customers();
    s.elapsed_s = started.elapsed().as_secs_f64();
    Ok(s)
}

fn write_outputs(
    outs: &mut Vec<OutboundRecord>,
    tasks: &mut impl Write,
    dead: &mut impl Write,
    s: &mut ReplaySummary,
) -> std::io::Result<()> {
    for o in outs.drain(..) {
        match o.kind {
            OutboundKind::Task => {
                s.tasks += 1;
                tasks.write_all(&o.payload)?;
                tasks.write_all(b"\n")?;
            }
            OutboundKind::DeadLetter => {
                let line = DeadLetterLine::from_record(&o.headers, &o.payload);
                serde_json::to_writer(&mut *dead, &line).map_err(std::io::Error::other)?;
                dead.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

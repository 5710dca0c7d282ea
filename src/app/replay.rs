//! `amends replay`: the same processing as the service, over a JSON-lines file, writing
//! `recovery-tasks.jsonl`, `dead-letter.jsonl`, `trend-snapshots.jsonl` and
//! `trend-alerts.jsonl`. Deterministic: `emitted_at` is the event time that caused the output
//! (an event's `occurred_at`, a timer's deadline) and `dead_lettered_at` the highest event
//! time received so far, never the wall clock.
//!
//! The file is one trend source. Its partial aggregates go back into the same processor as
//! records of `output.trend_partials`, exactly as the service reads them back from Kafka, and
//! the merge turns them into snapshots and alerts.

use crate::config::{Config, Format};
use crate::detect::FiredBy;
use crate::domain::{EventTime, Millis};
use crate::pipeline::dead_letter::DeadLetterLine;
use crate::pipeline::{
    InboundRecord, OutboundKind, OutboundRecord, Processed, Processor, Watermarking,
};
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
    /// Recovery outcomes applied (`--outcomes`).
    pub outcomes: u64,
    /// Outcomes later than the last event, not applied.
    pub outcomes_after_events: u64,
    pub snapshots: u64,
    pub alerts: u64,
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

/// Replays `input` (touch-point events) and, if given, `outcomes` (recovery outcomes), both
/// JSON lines, into the four files in `output_dir`.
pub fn replay(
    config: &Config,
    input: &Path,
    outcomes: Option<&Path>,
    output_dir: &Path,
) -> std::io::Result<ReplaySummary> {
    let outcomes = match outcomes {
        Some(path) => read_outcomes(BufReader::new(File::open(path)?))?,
        None => Vec::new(),
    };
    std::fs::create_dir_all(output_dir)?;
    let reader = BufReader::with_capacity(1 << 20, File::open(input)?);
    let mut tasks = BufWriter::with_capacity(
        1 << 20,
        File::create(output_dir.join("recovery-tasks.jsonl"))?,
    );
    let mut dead = BufWriter::new(File::create(output_dir.join("dead-letter.jsonl"))?);
    let mut snapshots = BufWriter::new(File::create(output_dir.join("trend-snapshots.jsonl"))?);
    let mut alerts = BufWriter::new(File::create(output_dir.join("trend-alerts.jsonl"))?);
    let mut w = Writers {
        tasks: &mut tasks,
        dead: &mut dead,
        snapshots: &mut snapshots,
        alerts: &mut alerts,
    };
    let summary = replay_with_outcomes(config, reader, outcomes, &mut w)?;
    tasks.flush()?;
    dead.flush()?;
    snapshots.flush()?;
    alerts.flush()?;
    Ok(summary)
}

/// Where replay writes each kind of output, as JSON lines.
pub struct Writers<'a> {
    pub tasks: &'a mut dyn Write,
    pub dead: &'a mut dyn Write,
    pub snapshots: &'a mut dyn Write,
    pub alerts: &'a mut dyn Write,
}

/// Replays JSON lines from `reader` into `w`.
pub fn replay_stream(
    config: &Config,
    reader: impl BufRead,
    w: &mut Writers<'_>,
) -> std::io::Result<ReplaySummary> {
    replay_with_outcomes(config, reader, Vec::new(), w)
}

/// Recovery outcomes as JSON lines, in `occurred_at` order (a line whose time cannot be read
/// goes first, to be dead-lettered by the decoder with its reason).
pub fn read_outcomes(reader: impl BufRead) -> std::io::Result<Vec<(EventTime, Vec<u8>)>> {
    #[derive(serde::Deserialize)]
    struct At<'a> {
        #[serde(borrow)]
        occurred_at: Option<&'a str>,
    }
    let mut out = Vec::new();
    for line in reader.split(b'\n') {
        let mut line = line?;
        while matches!(line.last(), Some(b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = serde_json::from_slice::<At>(&line)
            .ok()
            .and_then(|a| a.occurred_at.and_then(|t| EventTime::parse(t).ok()))
            .unwrap_or(EventTime::MIN);
        out.push((at, line));
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out)
}

/// Replays touch-point events from `reader` with `outcomes` (from [`read_outcomes`]) merged
/// in by event time, as the service sees both topics: an outcome enters the reorder buffer
/// before the watermark passes its time, so it is applied in event-time order with the events.
pub fn replay_with_outcomes(
    config: &Config,
    mut reader: impl BufRead,
    outcomes: Vec<(EventTime, Vec<u8>)>,
    w: &mut Writers<'_>,
) -> std::io::Result<ReplaySummary> {
    let started = Instant::now();
    // The watermark is moved here rather than inside `process`, so outcomes due by then can
    // join the buffer first.
    let mut p = Processor::new(config)
        .with_output_format(Format::Json)
        .with_event_clock()
        .with_watermarking(Watermarking::External)
        .with_local_merge();
    let ooo = config.detect.out_of_orderness.millis();
    let outcomes_topic: Arc<str> = Arc::from(
        config
            .input
            .recovery_outcomes
            .topics
            .first()
            .map(String::as_str)
            .unwrap_or("recovery-outcomes"),
    );
    let mut outcomes = outcomes.into_iter().enumerate().peekable();
    let topic: Arc<str> = Arc::from(
        config
            .input
            .touchpoints
            .topics
            .first()
            .map(String::as_str)
            .unwrap_or("touchpoints"),
    );
    p.set_trend_source(format!("{topic}/0"));
    p.set_trend_sources(1);
    let mut s = ReplaySummary::default();
    let mut partials = LoopBack::default();
    let mut line = Vec::with_capacity(4096);
    let mut outs: Vec<OutboundRecord> = Vec::new();
    let mut released: Vec<crate::pipeline::Released> = Vec::new();
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
        line = rec.payload.unwrap_or_default();
        match processed {
            Processed::Event { event_time, .. } => {
                s.events += 1;
                if event_time > now {
                    now = event_time;
                }
            }
            Processed::DeadLettered(_) | Processed::RecoveryOutcome | Processed::TrendPartial => {}
        }
        while let Some((i, (_, payload))) = outcomes.next_if(|(_, (at, _))| *at <= now) {
            let o = InboundRecord {
                topic: outcomes_topic.clone(),
                partition: 0,
                offset: i as i64,
                key: None,
                payload: Some(payload),
                timestamp_ms: None,
            };
            s.outcomes += 1;
            p.process(&o, now, &mut outs);
        }
        if now > EventTime::MIN {
            p.advance(now.plus(Millis(-ooo.0)), now, FiredBy::EventTime, &mut outs);
        }
        p.take_released(&mut released);
        released.clear();
        partials.route(&mut p, &mut outs, w, &mut s)?;
    }
    // Time stops at the last event: an outcome after it is not applied (applying it would
    // move time past the end of the events, and every promise still open would look broken).
    // It is counted and reported.
    s.outcomes_after_events = outcomes.count() as u64;
    // At end of input, time advances to the last event time: the reorder buffer empties and
    // the timers due before it fire. The file is all there is, so every trend window closes.
    p.flush(now, &mut outs);
    p.close_trend_windows(&mut outs);
    partials.route(&mut p, &mut outs, w, &mut s)?;
    s.customers = p.engine().customers();
    s.elapsed_s = started.elapsed().as_secs_f64();
    Ok(s)
}

/// Feeds trend partials back into the processor as records of the partials topic, the way
/// the service reads them back from Kafka, and writes everything else.
#[derive(Default)]
struct LoopBack {
    offset: i64,
    more: Vec<OutboundRecord>,
}

impl LoopBack {
    fn route(
        &mut self,
        p: &mut Processor,
        outs: &mut Vec<OutboundRecord>,
        w: &mut Writers<'_>,
        s: &mut ReplaySummary,
    ) -> std::io::Result<()> {
        while !outs.is_empty() {
            for o in outs.drain(..) {
                let line_to = match o.kind {
                    OutboundKind::Task => {
                        s.tasks += 1;
                        &mut *w.tasks
                    }
                    OutboundKind::DeadLetter => {
                        s.dead_letters += 1;
                        let line = DeadLetterLine::from_record(&o.headers, &o.payload);
                        serde_json::to_writer(&mut *w.dead, &line)
                            .map_err(std::io::Error::other)?;
                        w.dead.write_all(b"\n")?;
                        continue;
                    }
                    OutboundKind::TrendPartial | OutboundKind::TrendClosed => {
                        let rec = o.read_back(0, self.offset);
                        self.offset += 1;
                        // The merge's wall clock never moves: with one source every window
                        // completes on its marker.
                        p.process(&rec, EventTime(0), &mut self.more);
                        continue;
                    }
                    OutboundKind::TrendSnapshot => {
                        s.snapshots += 1;
                        &mut *w.snapshots
                    }
                    OutboundKind::TrendAlert => {
                        s.alerts += 1;
                        &mut *w.alerts
                    }
                    // Only the service writes the changelog (replay never tracks changes).
                    OutboundKind::State => continue,
                };
                line_to.write_all(&o.payload)?;
                line_to.write_all(b"\n")?;
            }
            outs.append(&mut self.more);
        }
        Ok(())
    }
}

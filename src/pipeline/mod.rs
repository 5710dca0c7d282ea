//! The seam between Kafka and the engine. Plain [`InboundRecord`]s go in, plain
//! [`OutboundRecord`]s come out; nothing here names an rdkafka type, so the same processing
//! runs in the service, in `amends replay` and in tests with an in-memory sink.

pub mod dead_letter;

use crate::codec::{output::encode_task, DecodeError, Decoder};
use crate::config::{Config, Format};
use crate::detect::{Engine, Output};
use crate::domain::{EventTime, Outcome, RecoveryTask, SourcePos};
use std::sync::Arc;

/// One record as read from an input topic.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's Kafka timestamp in ms, if it has one.
    pub timestamp_ms: Option<i64>,
}

/// What an output record is, for metrics and for sinks that sort by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundKind {
    Task,
    DeadLetter,
}

/// One record to produce.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRecord {
    pub kind: OutboundKind,
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What processing one input record amounted to; the Kafka layer turns it into metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Processed {
    /// A touch-point event was applied to the engine.
    Event {
        channel: Arc<str>,
        outcome: Outcome,
        event_time: EventTime,
    },
    /// A recovery outcome was accepted (the closed loop consumes it in a later stage).
    RecoveryOutcome,
    /// The record went to the dead-letter topic.
    DeadLettered(DecodeError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InputKind {
    Touchpoint,
    Outcome,
}

/// Decode, validate, detect, dead-letter: everything between a consumed record and the
/// records to produce for it. One per partition worker.
pub struct Processor {
    decoder: Decoder,
    engine: Engine,
    touchpoint_topics: Vec<String>,
    tasks_topic: Arc<str>,
    dead_letter_topic: Arc<str>,
    output_format: Format,
    /// Stamp outputs with event time (the highest seen, including the current event)
    /// instead of the caller's `now`: deterministic output for replay and tests.
    event_clock: bool,
    events: Vec<Output>,
}

impl Processor {
    pub fn new(config: &Config) -> Processor {
        Processor {
            decoder: Decoder::new(config),
            engine: Engine::new(config),
            touchpoint_topics: config.input.touchpoints.topics.clone(),
            tasks_topic: Arc::from(config.output.recovery_tasks.as_str()),
            dead_letter_topic: Arc::from(config.output.dead_letter.as_str()),
            output_format: config.output.format,
            event_clock: false,
            events: Vec::new(),
        }
    }

    /// A processor around an existing engine, e.g. one restored from a snapshot.
    pub fn with_engine(config: &Config, engine: Engine) -> Processor {
        Processor {
            engine,
            ..Processor::new(config)
        }
    }

    /// Forces JSON outputs whatever the config says (replay writes JSON lines).
    pub fn with_output_format(mut self, format: Format) -> Processor {
        self.output_format = format;
        self
    }

    /// Uses event time as the processing clock (see `event_clock`).
    pub fn with_event_clock(mut self) -> Processor {
        self.event_clock = true;
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn kind(&self, topic: &str) -> InputKind {
        if self.touchpoint_topics.iter().any(|t| t == topic) {
            InputKind::Touchpoint
        } else {
            InputKind::Outcome
        }
    }

    /// Processes one record. `now` is stamped on outputs as `emitted_at` and on dead letters.
    /// Appends to `out` every record that must be acknowledged before this input's offset may
    /// be committed.
    pub fn process(
        &mut self,
        rec: &InboundRecord,
        now: EventTime,
        out: &mut Vec<OutboundRecord>,
    ) -> Processed {
        let now = if self.event_clock {
            self.engine.max_event_time()
        } else {
            now
        };
        let Some(payload) = rec.payload.as_deref() else {
            let err = DecodeError::decode(None, "record has no payload (tombstone)");
            out.push(dead_letter::record(&self.dead_letter_topic, rec, &err, now));
            return Processed::DeadLettered(err);
        };
        match self.kind(&rec.topic) {
            InputKind::Touchpoint => match self.decoder.touchpoint(payload) {
                Ok(event) => {
                    let src = SourcePos {
                        topic: rec.topic.clone(),
                        partition: rec.partition,
                        offset: rec.offset,
                    };
                    let now = if self.event_clock {
                        now.max(event.occurred_at)
                    } else {
                        now
                    };
                    self.events.clear();
                    self.engine.on_event(&event, &src, now, &mut self.events);
                    self.drain_outputs(out);
                    Processed::Event {
                        channel: event.channel.0.clone(),
                        outcome: event.outcome,
                        event_time: event.occurred_at,
                    }
                }
                Err(err) => {
                    out.push(dead_letter::record(&self.dead_letter_topic, rec, &err, now));
                    Processed::DeadLettered(err)
                }
            },
            InputKind::Outcome => match self.decoder.outcome(payload) {
                Ok(_) => Processed::RecoveryOutcome,
                Err(err) => {
                    out.push(dead_letter::record(&self.dead_letter_topic, rec, &err, now));
                    Processed::DeadLettered(err)
                }
            },
        }
    }

    /// Advances event time (state expiry, and timers once rules need them).
    pub fn advance(&mut self, watermark: EventTime, now: EventTime, out: &mut Vec<OutboundRecord>) {
        self.events.clear();
        self.engine.advance(watermark, now, &mut self.events);
        self.drain_outputs(out);
    }

    fn drain_outputs(&mut self, out: &mut Vec<OutboundRecord>) {
        for o in self.events.drain(..) {
            match o {
                Output::Task(task) => {
                    out.push(task_record(&self.tasks_topic, &task, self.output_format))
                }
            }
        }
    }
}

/// A task as an output record: keyed by customer so that a customer's tasks stay in order,
/// with the identity in headers so consumers can de-duplicate without decoding.
pub fn task_record(topic: &Arc<str>, task: &RecoveryTask, format: Format) -> OutboundRecord {
    OutboundRecord {
        kind: OutboundKind::Task,
        topic: topic.clone(),
        key: Some(task.customer_id.as_bytes().to_vec()),
        payload: encode_task(task, format),
        headers: vec![
            ("amends.task_id".into(), task.task_id.as_bytes().to_vec()),
            (
                "amends.revision".into(),
                task.revision.to_string().into_bytes(),
            ),
            ("amends.rule".into(), task.rule.as_bytes().to_vec()),
            (
                "amends.severity".into(),
                task.severity.as_str().as_bytes().to_vec(),
            ),
        ],
    }
}

/// Reads the `amends.rule` and `amends.severity` headers back (for metrics).
pub fn header<'a>(rec: &'a OutboundRecord, name: &str) -> Option<&'a str> {
    rec.headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests;

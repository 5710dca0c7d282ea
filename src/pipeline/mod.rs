//! The seam between Kafka and the engine. Plain [`InboundRecord`]s go in, plain
//! [`OutboundRecord`]s come out; nothing here names an rdkafka type, so the same processing
//! runs in the service, in `amends replay` and in tests with an in-memory sink.

pub mod changelog;
pub mod dead_letter;
pub mod trend;
pub mod watermark;

use crate::codec::{output::encode_task, DecodeError, Decoder, Reason};
use crate::config::{Config, Format};
use crate::detect::{Clock, Engine, FiredBy, LoopMeasure, OutcomeVerdict, Output, Verdict};
use crate::domain::{
    EventTime, Millis, Outcome, RecoveryOutcome, RecoveryTask, SourcePos, TouchpointEvent,
};
use std::collections::VecDeque;
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
    /// A partial trend aggregate, keyed by dimension.
    TrendPartial,
    /// A source's "windows closed" marker: goes to every partition of its topic.
    TrendClosed,
    TrendSnapshot,
    TrendAlert,
    /// A changelog record for the partition of the same number (`pipeline::changelog`); an
    /// empty payload is a tombstone.
    State,
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

impl OutboundRecord {
    /// The record as a consumer of its topic reads it back, at `partition` and `offset`
    /// (headers and broker timestamp aside): replay and tests feed trend partials back this
    /// way, as the service reads them from the partials topic.
    pub fn read_back(self, partition: i32, offset: i64) -> InboundRecord {
        InboundRecord {
            topic: self.topic,
            partition,
            offset,
            key: self.key,
            payload: Some(self.payload),
            timestamp_ms: None,
        }
    }
}

/// What processing one input record amounted to; the Kafka layer turns it into metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Processed {
    /// A touch-point event was accepted: applied to the engine, or held in the reorder buffer
    /// until the watermark passes it (`Processor::take_released` says which records were applied).
    Event {
        channel: Arc<str>,
        outcome: Outcome,
        event_time: EventTime,
    },
    /// A recovery outcome was accepted: applied to the engine (recorded on its task, or
    /// ignored as a repeat), or held in the reorder buffer until the watermark passes it, like
    /// an event. One for a task the partition's state does not hold is dead-lettered when it
    /// is applied: at once, as `DeadLettered`, when it was already behind the watermark; later
    /// as a dead-letter record among the outputs of the step that releases it. The engine's
    /// stats count every verdict (`outcomes`, `outcomes_unknown`, `outcomes_duplicate`).
    RecoveryOutcome,
    /// A partial trend aggregate or marker was merged.
    TrendPartial,
    /// The record went to the dead-letter topic. A `late` event also updated history.
    DeadLettered(DecodeError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InputKind {
    Touchpoint,
    Outcome,
    /// `output.trend_partials`, read back by the instance that merges a dimension.
    TrendPartial,
}

/// Where the processor's watermark comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watermarking {
    /// Its own: the highest event time it has received minus `detect.out_of_orderness`
    /// (replay, tests, anything with one partition).
    Local,
    /// The caller's, through [`Processor::advance`] (the service: the minimum over the
    /// instance's active partitions, advanced by the wall clock when all are idle).
    External,
}

/// A record done with (applied or dead-lettered): its topic and offset. The partition is
/// the processor's own.
pub type Released = (Arc<str>, i64);

/// An input waiting in the reorder buffer: ordered by event time, then events before outcomes
/// (an outcome reports on what happened, so detection at the same instant comes first), then
/// event id or task id (so inputs with the same time are applied in the same order whatever
/// order they arrived in), then arrival.
struct Pending {
    at: EventTime,
    seq: u64,
    src: SourcePos,
    item: Item,
}

// Events are nearly every input: they stay unboxed; the rare outcome is boxed.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(TouchpointEvent),
    /// A recovery outcome, with its record for the dead letter if its task is unknown.
    Outcome(Box<(RecoveryOutcome, InboundRecord)>),
}

impl Pending {
    fn key(&self) -> (EventTime, u8, &str, u64) {
        match &self.item {
            Item::Event(e) => (self.at, 0, &e.event_id, self.seq),
            Item::Outcome(o) => (self.at, 1, &o.0.task_id, self.seq),
        }
    }
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key().cmp(&o.key())
    }
}

/// Most closed-loop measures kept for [`Processor::take_loop_measures`]; beyond it new ones
/// are dropped and counted (`loop_measures_dropped`). The caller drains after every step, so
/// this only bounds memory while nothing drains them.
const MAX_LOOP_MEASURES: usize = 16_384;

/// Decode, validate, order, detect, dead-letter: everything between a consumed record and
/// the records to produce for it. One per partition worker.
///
/// Events are applied in event-time order: each waits in a reorder buffer until the
/// watermark passes it, and timers fire in the same order (a timer due at `d` fires after
/// the events at or before `d` and before those after it). Any reordering within
/// `detect.out_of_orderness` therefore leads to the same decisions. An event already behind
/// the watermark is applied at once; beyond `detect.allowed_lateness` it is late.
///
/// Recovery outcomes (records from `input.recovery_outcomes.topics`) go through the same
/// buffer, ordered by their `occurred_at`, so an outcome at or before a task's due time
/// always comes before its overdue timer. An outcome is never late: behind the watermark it
/// is applied at once, whatever its lateness (a case tool's report is still a fact). Its
/// time does not move `received_max` (or the local watermark): only events move time, so an
/// outcome ahead of the events waits in the buffer until they catch up.
pub struct Processor {
    decoder: Decoder,
    engine: Engine,
    touchpoint_topics: Vec<String>,
    partials_topic: Arc<str>,
    /// This partition's trend windows (touch-point partitions).
    trend: trend::TrendFeed,
    /// The merge of a partials-topic partition, made at its first record.
    merge: Option<trend::MergeStage>,
    /// Hand this processor's own partials to its merge directly (`amends replay`: one
    /// source, no Kafka), instead of as records for the partials topic.
    local_merge: bool,
    local_partials: Vec<crate::trend::PartialRecord>,
    /// Input partitions a trend window needs to hear from before it is complete.
    trend_sources: usize,
    config: Arc<Config>,
    tasks_topic: Arc<str>,
    dead_letter_topic: Arc<str>,
    output_format: Format,
    /// Stamp outputs with the event time that caused them instead of the caller's `now`:
    /// deterministic output for replay and tests.
    event_clock: bool,
    watermarking: Watermarking,
    out_of_orderness: Millis,
    allowed_lateness: Millis,
    /// Sorted by `Pending`'s order. Input is mostly in order, so an arriving event nearly
    /// always goes at the back, and events leave from the front: no event is moved around.
    buffer: VecDeque<Pending>,
    buffer_max: usize,
    seq: u64,
    /// Highest event time received (buffered or applied).
    received_max: EventTime,
    /// Records applied (or dead-lettered) since `take_released`: topic and offset.
    released: Vec<Released>,
    /// The merge stage's released offsets (all of the partials topic), before they are
    /// moved to `released`.
    merge_released: Vec<i64>,
    /// Events released early because the reorder buffer was full.
    forced: u64,
    events: Vec<Output>,
    /// Closed-loop measures since `take_loop_measures` (at most `MAX_LOOP_MEASURES`).
    loop_measures: Vec<LoopMeasure>,
    loop_measures_dropped: u64,
    /// For the detail of an unknown task's dead letter.
    incident_window: Millis,
    /// The last changelog checkpoint record written, without its sequence number and time
    /// (see `changelog`): a checkpoint that would repeat it is not written.
    last_checkpoint: Option<Vec<u8>>,
}

impl Processor {
    pub fn new(config: &Config) -> Processor {
        Processor {
            decoder: Decoder::new(config),
            engine: Engine::new(config),
            touchpoint_topics: config.input.touchpoints.topics.clone(),
            partials_topic: Arc::from(config.output.trend_partials.as_str()),
            trend: trend::TrendFeed::new(config),
            merge: None,
            local_merge: false,
            local_partials: Vec::new(),
            trend_sources: 1,
            config: Arc::new(config.clone()),
            tasks_topic: Arc::from(config.output.recovery_tasks.as_str()),
            dead_letter_topic: Arc::from(config.output.dead_letter.as_str()),
            output_format: config.output.format,
            event_clock: false,
            watermarking: Watermarking::Local,
            out_of_orderness: config.detect.out_of_orderness.millis(),
            allowed_lateness: config.detect.allowed_lateness.millis(),
            buffer: VecDeque::new(),
            buffer_max: config.pipeline.reorder_buffer_max,
            seq: 0,
            received_max: EventTime::MIN,
            released: Vec::new(),
            merge_released: Vec::new(),
            forced: 0,
            events: Vec::new(),
            loop_measures: Vec::new(),
            loop_measures_dropped: 0,
            incident_window: config.detect.incident_window.millis(),
            last_checkpoint: None,
        }
    }

    /// A processor around an existing engine, e.g. one restored from a snapshot.
    pub fn with_engine(config: &Config, engine: Engine) -> Processor {
        let received_max = engine.max_event_time();
        Processor {
            engine,
            received_max,
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

    /// Merges this processor's own trend partials into its snapshots and alerts directly,
    /// without encoding them as partials-topic records: for `amends replay`, where the file
    /// is the only source. The snapshots are the same as through the topic.
    pub fn with_local_merge(mut self) -> Processor {
        self.local_merge = true;
        self
    }

    pub fn with_watermarking(mut self, w: Watermarking) -> Processor {
        self.watermarking = w;
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Moves the records applied or dead-lettered since the last call into `into` (topic and
    /// offset), in the order applied. A record in the reorder buffer is not among them until
    /// the watermark releases it. The service feeds a touch-point partition's processor the
    /// co-partitioned outcome records too, and commits each topic's offsets on its own.
    pub fn take_released(&mut self, into: &mut Vec<Released>) {
        into.append(&mut self.released);
    }

    /// Moves the closed-loop measures (outcomes, double deviations, tasks opened) emitted
    /// since the last call into `into`, in the order emitted, for the trend stage. They are
    /// not produced to Kafka. Call it after every step: at most `MAX_LOOP_MEASURES` are kept.
    pub fn take_loop_measures(&mut self, into: &mut Vec<LoopMeasure>) {
        into.append(&mut self.loop_measures);
    }

    /// Measures dropped because nobody took them in time (see `take_loop_measures`).
    pub fn loop_measures_dropped(&self) -> u64 {
        self.loop_measures_dropped
    }

    pub fn set_watermarking(&mut self, w: Watermarking) {
        self.watermarking = w;
    }

    /// Offsets of the records still in the reorder buffer.
    pub fn buffered_offsets(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.buffer.iter().map(|p| p.src.offset).collect();
        v.sort_unstable();
        v
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Events released before the watermark reached them because the buffer was full.
    pub fn forced_releases(&self) -> u64 {
        self.forced
    }

    /// The highest event time received, buffered or applied.
    pub fn received_max(&self) -> EventTime {
        self.received_max
    }

    fn kind(&self, topic: &str) -> InputKind {
        if self.touchpoint_topics.iter().any(|t| t == topic) {
            InputKind::Touchpoint
        } else if *self.partials_topic == *topic {
            InputKind::TrendPartial
        } else {
            InputKind::Outcome
        }
    }

    /// Names this processor's partition as a trend source (`topic/partition`), which turns
    /// its trend windows on. Only touch-point partitions are sources.
    pub fn set_trend_source(&mut self, source: String) {
        self.trend.set_source(source);
    }

    /// How many sources (touch-point partitions) a trend window needs to be complete.
    pub fn set_trend_sources(&mut self, n: usize) {
        self.trend_sources = n.max(1);
        if let Some(m) = &mut self.merge {
            m.set_expected_sources(self.trend_sources);
        }
    }

    /// Trend windows this partition has open, and merged windows still waiting for sources.
    pub fn trend_windows(&self) -> (usize, usize) {
        (
            self.trend.open_windows(),
            self.merge.as_ref().map_or(0, |m| m.pending_windows()),
        )
    }

    fn clock(&self, now: EventTime) -> Clock {
        if self.event_clock {
            Clock::Event
        } else {
            Clock::Wall(now)
        }
    }

    /// Processes one record. `now` is the processing time (the wall clock in the service):
    /// `emitted_at` of outputs and `dead_lettered_at`, unless the event clock is on. Appends
    /// to `out` the records to produce; the records whose outputs they are: `take_released`.
    pub fn process(
        &mut self,
        rec: &InboundRecord,
        now: EventTime,
        out: &mut Vec<OutboundRecord>,
    ) -> Processed {
        let dead_at = if self.event_clock {
            self.received_max
        } else {
            now
        };
        let Some(payload) = rec.payload.as_deref() else {
            let err = DecodeError::decode(None, "record has no payload (tombstone)");
            return self.dead_letter(rec, err, dead_at, out);
        };
        let item = match self.kind(&rec.topic) {
            InputKind::Touchpoint => self.decoder.touchpoint(payload).map(Item::Event),
            InputKind::TrendPartial => {
                return match trend::decode_partial(rec) {
                    Ok(p) => {
                        let (config, n) = (&self.config, self.trend_sources);
                        let merge = self
                            .merge
                            .get_or_insert_with(|| trend::MergeStage::new(config, n));
                        merge.add(p, rec.offset, now, out, &mut self.merge_released);
                        let topic = &self.partials_topic;
                        self.released
                            .extend(self.merge_released.drain(..).map(|o| (topic.clone(), o)));
                        Processed::TrendPartial
                    }
                    Err(detail) => {
                        self.dead_letter(rec, DecodeError::decode(None, detail), dead_at, out)
                    }
                };
            }
            InputKind::Outcome => self
                .decoder
                .outcome(payload)
                .map(|o| Item::Outcome(Box::new((o, rec.clone())))),
        };
        let item = match item {
            Ok(i) => i,
            Err(err) => return self.dead_letter(rec, err, dead_at, out),
        };
        let (processed, at) = match &item {
            Item::Event(event) => (
                Processed::Event {
                    channel: event.channel.0.clone(),
                    outcome: event.outcome,
                    event_time: event.occurred_at,
                },
                event.occurred_at,
            ),
            Item::Outcome(o) => (Processed::RecoveryOutcome, o.0.occurred_at),
        };
        // Only events move time: an outcome is a report that may arrive ahead of the
        // touch points it is about (another topic, read at its own pace), and the service's
        // watermark comes from events alone.
        if at > self.received_max && matches!(item, Item::Event(_)) {
            self.received_max = at;
        }
        let src = SourcePos {
            topic: rec.topic.clone(),
            partition: rec.partition,
            offset: rec.offset,
        };
        let clock = self.clock(now);
        let wm = self.engine.watermark();
        let mut result = processed;
        if at <= wm {
            // Behind the watermark: it cannot be ordered in any more, so it is applied now.
            let event = match item {
                Item::Event(e) => e,
                Item::Outcome(o) => {
                    let (o, rec) = *o;
                    if let Some(err) = self.apply_outcome(&o, &rec, clock, out) {
                        result = Processed::DeadLettered(err);
                    }
                    return self.after_input(result, clock, out);
                }
            };
            let late = self.engine.is_late(at);
            self.events.clear();
            let verdict = self
                .engine
                .on_event(&event, &src, clock, late, &mut self.events);
            if verdict == Verdict::Applied && self.trend.is_on() {
                self.trend.event(&event, self.engine.last_failure_signal());
            }
            self.drain_outputs(out);
            self.released.push((rec.topic.clone(), rec.offset));
            if verdict == Verdict::Late {
                let err = DecodeError {
                    reason: Reason::Late,
                    field: Some("occurred_at".into()),
                    detail: format!(
                        "event time {at} is {} behind the watermark {wm}, more than detect.allowed_lateness ({}); it updated the customer's history but opens no task",
                        Millis(wm.0 - at.0).human(),
                        self.allowed_lateness.human()
                    ),
                };
                out.push(dead_letter::record(
                    &self.dead_letter_topic,
                    rec,
                    &err,
                    dead_at,
                ));
                result = Processed::DeadLettered(err);
            }
        } else {
            self.seq += 1;
            let p = Pending {
                at,
                seq: self.seq,
                src,
                item,
            };
            // After every buffered event it sorts at or after (the usual case), else in place.
            let pos = if self.buffer.back().is_none_or(|b| *b <= p) {
                self.buffer.len()
            } else {
                self.buffer.partition_point(|b| *b <= p)
            };
            self.buffer.insert(pos, p);
        }
        self.after_input(result, clock, out)
    }

    /// What follows every accepted input: the local watermark moves, and the buffer is held
    /// to its bound.
    fn after_input(
        &mut self,
        result: Processed,
        clock: Clock,
        out: &mut Vec<OutboundRecord>,
    ) -> Processed {
        if self.watermarking == Watermarking::Local {
            let wm = self.received_max.plus(Millis(-self.out_of_orderness.0));
            self.release(wm, FiredBy::EventTime, clock, out);
        }
        while self.buffer.len() > self.buffer_max {
            // Over the bound: the earliest event goes now, whatever the watermark says.
            self.forced += 1;
            let Some(p) = self.buffer.pop_front() else {
                break;
            };
            self.apply(p, clock, out);
        }
        result
    }

    /// Sends a record that cannot be processed to the dead-letter topic; it is done with.
    fn dead_letter(
        &mut self,
        rec: &InboundRecord,
        err: DecodeError,
        at: EventTime,
        out: &mut Vec<OutboundRecord>,
    ) -> Processed {
        out.push(dead_letter::record(&self.dead_letter_topic, rec, &err, at));
        self.released.push((rec.topic.clone(), rec.offset));
        Processed::DeadLettered(err)
    }

    /// Moves the watermark to `watermark` (never back): applies the buffered events and fires
    /// the timers it passes, in event-time order. `fired_by` says which clock moved it.
    pub fn advance(
        &mut self,
        watermark: EventTime,
        now: EventTime,
        fired_by: FiredBy,
        out: &mut Vec<OutboundRecord>,
    ) {
        let clock = self.clock(now);
        self.release(watermark, fired_by, clock, out);
        if let Some(m) = &mut self.merge {
            m.tick(now, out, &mut self.merge_released);
            let topic = &self.partials_topic;
            self.released
                .extend(self.merge_released.drain(..).map(|o| (topic.clone(), o)));
        }
    }

    /// End of a finite input (replay): closes every trend window, whatever the watermark.
    pub fn close_trend_windows(&mut self, out: &mut Vec<OutboundRecord>) {
        self.close_trends(EventTime(i64::MAX), out);
    }

    /// End of input (replay, restore, tests): everything received is applied and every timer
    /// due before the highest event time received fires. Outcomes later than every event
    /// are applied last, without moving time to them.
    pub fn flush(&mut self, now: EventTime, out: &mut Vec<OutboundRecord>) {
        let to = self.received_max;
        self.advance(to, now, FiredBy::EventTime, out);
        let clock = self.clock(now);
        while let Some(p) = self.buffer.pop_front() {
            self.apply(p, clock, out);
        }
    }

    fn release(
        &mut self,
        wm: EventTime,
        fired_by: FiredBy,
        clock: Clock,
        out: &mut Vec<OutboundRecord>,
    ) {
        loop {
            let next_event = self.buffer.front().map(|p| p.at).filter(|t| *t <= wm);
            let next_timer = self.engine.next_timer().filter(|d| *d < wm);
            match (next_event, next_timer) {
                // A timer due at `d` fires once time passes `d`: after events at `d`.
                (Some(t), Some(d)) if d < t => self.fire(clock, fired_by, out),
                (Some(_), _) => {
                    let Some(p) = self.buffer.pop_front() else {
                        break;
                    };
                    self.apply(p, clock, out);
                }
                (None, Some(_)) => self.fire(clock, fired_by, out),
                (None, None) => break,
            }
        }
        self.engine.set_watermark(wm);
        self.close_trends(wm, out);
    }

    /// Closes the trend windows `wm` passed: their partials go out as records, or straight
    /// into this processor's merge (`with_local_merge`), which then sees them as the topic
    /// would deliver them, at wall time 0 (one source: each window completes on its marker).
    fn close_trends(&mut self, wm: EventTime, out: &mut Vec<OutboundRecord>) {
        if !self.local_merge {
            self.trend.close(wm, out);
            return;
        }
        let mut partials = std::mem::take(&mut self.local_partials);
        self.trend.close_into(wm, &mut partials);
        if !partials.is_empty() {
            let (config, n) = (&self.config, self.trend_sources);
            let merge = self
                .merge
                .get_or_insert_with(|| trend::MergeStage::new(config, n));
            for p in partials.drain(..) {
                merge.add(p, 0, EventTime(0), out, &mut self.merge_released);
            }
            // No partials topic, so no offsets to release.
            self.merge_released.clear();
        }
        self.local_partials = partials;
    }

    fn fire(&mut self, clock: Clock, fired_by: FiredBy, out: &mut Vec<OutboundRecord>) {
        self.events.clear();
        self.engine.fire_next(clock, fired_by, &mut self.events);
        self.drain_outputs(out);
    }

    fn apply(&mut self, p: Pending, clock: Clock, out: &mut Vec<OutboundRecord>) {
        match p.item {
            Item::Event(event) => {
                self.events.clear();
                let verdict = self
                    .engine
                    .on_event(&event, &p.src, clock, false, &mut self.events);
                if verdict == Verdict::Applied && self.trend.is_on() {
                    self.trend.event(&event, self.engine.last_failure_signal());
                }
                self.drain_outputs(out);
                self.released.push((p.src.topic, p.src.offset));
            }
            Item::Outcome(o) => {
                let (o, rec) = *o;
                self.apply_outcome(&o, &rec, clock, out);
            }
        }
    }

    /// Applies a recovery outcome; one whose task the engine does not hold is dead-lettered
    /// (returned). Either way the record is done with.
    fn apply_outcome(
        &mut self,
        o: &RecoveryOutcome,
        rec: &InboundRecord,
        clock: Clock,
        out: &mut Vec<OutboundRecord>,
    ) -> Option<DecodeError> {
        self.events.clear();
        let verdict = self.engine.on_outcome(o, clock, &mut self.events);
        self.drain_outputs(out);
        self.released.push((rec.topic.clone(), rec.offset));
        if verdict != OutcomeVerdict::UnknownTask {
            return None;
        }
        let err = DecodeError {
            reason: Reason::Validation,
            field: Some("task_id".into()),
            detail: format!(
                "no task {} for this customer in this partition's state: never opened here, or \
                 forgotten detect.incident_window ({}) after its last failure (the outcomes \
                 topic must be keyed by customer_id and partitioned like the touch-points)",
                o.task_id,
                self.incident_window.human()
            ),
        };
        // Stamped like the outputs: the outcome's own time under the event clock.
        out.push(dead_letter::record(
            &self.dead_letter_topic,
            rec,
            &err,
            clock.at(o.occurred_at),
        ));
        Some(err)
    }

    fn drain_outputs(&mut self, out: &mut Vec<OutboundRecord>) {
        for o in self.events.drain(..) {
            match o {
                Output::Task(task) => {
                    out.push(task_record(&self.tasks_topic, &task, self.output_format))
                }
                // Tasks opened, recovery outcomes and double deviations count in the trend
                // windows; with trends off they are kept for `take_loop_measures`.
                Output::Loop(m) if self.trend.is_on() => self.trend.measure(&m),
                Output::Loop(m) => {
                    if self.loop_measures.len() < MAX_LOOP_MEASURES {
                        self.loop_measures.push(m);
                    } else {
                        self.loop_measures_dropped += 1;
                    }
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

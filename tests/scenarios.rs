//! Scenario tests: fixture files in `tests/fixtures/scenarios/*.json` drive the real
//! pipeline (`Processor`: decode, validate, detect, dead-letter) with no broker.
//!
//! A fixture has `description`, an optional `config` (TOML applied on top of the defaults),
//! `events` (touch-point events as JSON objects; `{"raw": "..."}`, `{"raw_base64": "..."}`
//! or `{"oversize": N}` for poison payloads), `expected_tasks` (every task revision emitted,
//! in order, in full), `expected_dead_letters` (`reason`, `field`, `offset`), optional
//! `checks` (hand-derived values with the arithmetic behind them, checked against
//! `expected_tasks` so that re-blessing cannot silently change them) and an optional
//! `known_bug` (`issue`, `paths`): the paths where the code is known to differ from the
//! correct expected value. Such a fixture passes only while exactly those paths differ.
//!
//! An entry with a `task_id` is a recovery outcome instead: a record of topic
//! `recovery-outcomes`, keyed and routed by its customer like the events (the co-partitioning
//! the closed loop needs).
//!
//! Event `i` is offset `i` of partition 0 of topic `touchpoints` (outcomes share the
//! partition's offset sequence, so a position names one input), keyed by its customer, and
//! is processed with `now` = its `occurred_at` (poison: the previous `now`), so `emitted_at`
//! is deterministic. Every scenario also runs split over 4 partitions (customers routed by a
//! stable hash): after mapping evidence and dead-letter positions back to the event index, and
//! ordering tasks by (`task_id`, `revision`), the outputs must be identical. And it runs
//! interrupted after every event: the engine's state is snapshotted, a new engine is restored
//! from the bytes and processes the rest; every record (topic, key, payload bytes, headers)
//! must be the uninterrupted run's, in the same order.
//!
//! `AMENDS_BLESS=1` rewrites `expected_tasks` from the actual output (keeping the values at
//! `known_bug` paths); review the diff, and never bless a fixture you have not checked by hand.
//! `AMENDS_SCENARIO=substring` runs only the matching fixtures.

use amends::config::Config;
use amends::detect::{Engine, FiredBy};
use amends::domain::{EventTime, RecoveryTask};
use amends::pipeline::{InboundRecord, OutboundKind, OutboundRecord, Processor};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TOPIC: &str = "touchpoints";
const OUTCOMES_TOPIC: &str = "recovery-outcomes";
const PARTITIONS: usize = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    description: String,
    #[serde(default)]
    config: Option<String>,
    events: Vec<Value>,
    expected_tasks: Vec<Value>,
    #[serde(default)]
    expected_dead_letters: Vec<DeadLetter>,
    #[serde(default)]
    checks: Vec<Check>,
    #[serde(default)]
    known_bug: Option<KnownBug>,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct DeadLetter {
    offset: i64,
    reason: String,
    field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    path: String,
    expect: Value,
    why: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownBug {
    issue: String,
    paths: Vec<String>,
}

/// One input record, before it is given a partition and offset; or, with `idle_until`, not
/// a record but the wall clock advancing every partition's watermark to that time (as when
/// the partitions are idle).
struct Input {
    idle_until: Option<EventTime>,
    /// `TOPIC`, or `OUTCOMES_TOPIC` for a recovery outcome.
    topic: &'static str,
    payload: Vec<u8>,
    customer: Option<String>,
    event_id: Option<String>,
    occurred_at: Option<EventTime>,
}

fn input(v: &Value) -> Result<Input, String> {
    let poison = |payload| Input {
        idle_until: None,
        topic: TOPIC,
        payload,
        customer: None,
        event_id: None,
        occurred_at: None,
    };
    if let Some(t) = v.get("idle_until") {
        let t = t.as_str().ok_or("`idle_until` must be a time")?;
        let mut i = poison(Vec::new());
        i.idle_until = Some(EventTime::parse(t).map_err(|e| format!("idle_until: {e}"))?);
        return Ok(i);
    }
    if let Some(raw) = v.get("raw") {
        return Ok(poison(
            raw.as_str()
                .ok_or("`raw` must be a string")?
                .as_bytes()
                .to_vec(),
        ));
    }
    if let Some(b64) = v.get("raw_base64") {
        let text = b64.as_str().ok_or("`raw_base64` must be a string")?;
        return base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(poison)
            .map_err(|e| format!("raw_base64: {e}"));
    }
    if let Some(n) = v.get("oversize") {
        // A well-formed object of exactly n bytes: only its size is wrong.
        let n = n.as_u64().ok_or("`oversize` must be a byte count")? as usize;
        let pad = n
            .checked_sub(r#"{"pad":""}"#.len())
            .ok_or("`oversize` is too small")?;
        return Ok(poison(
            format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad)).into_bytes(),
        ));
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    Ok(Input {
        idle_until: None,
        topic: if v.get("task_id").is_some() {
            OUTCOMES_TOPIC
        } else {
            TOPIC
        },
        payload: serde_json::to_vec(v).expect("a JSON value serializes"),
        customer: text("customer_id"),
        event_id: text("event_id"),
        occurred_at: text("occurred_at").and_then(|t| EventTime::parse(&t).ok()),
    })
}

/// FNV-1a: stable across runs and platforms, unlike std's hashers.
fn partition_of(customer: Option<&str>, partitions: usize) -> usize {
    let h = customer.unwrap_or("").bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h as usize % partitions
}

/// What a run produced, with every position mapped back to the event index.
#[derive(Debug, PartialEq)]
struct Outputs {
    tasks: Vec<Value>,
    dead_letters: Vec<DeadLetter>,
    records: Vec<OutboundRecord>,
}

/// One step of a run: a record for its partition, or every partition's watermark moving
/// to a time (by the wall clock for `idle_until`, by event time at the end of input).
enum Step<'a> {
    Record(&'a InboundRecord),
    Advance(EventTime, FiredBy),
}

fn processor(config: &Config) -> Processor {
    Processor::new(config).with_event_clock()
}

fn run(config: &Config, inputs: &[Input], partitions: usize) -> Result<Outputs, String> {
    let mut processors: Vec<Processor> = (0..partitions).map(|_| processor(config)).collect();
    drive(config, inputs, partitions, |_, step, out| {
        match step {
            Step::Record(rec) => {
                processors[rec.partition as usize].process(rec, EventTime(0), out);
            }
            Step::Advance(to, by) => {
                for p in &mut processors {
                    p.advance(to, EventTime(0), by, out);
                }
            }
        }
        Ok(())
    })
}

/// The single-partition run, with the engine snapshotted after `restart_at` inputs and
/// replaced by one restored from the snapshot's bytes.
fn run_restarted(config: &Config, inputs: &[Input], restart_at: usize) -> Result<Outputs, String> {
    let mut proc = Restartable::new(config);
    drive(config, inputs, 1, |i, step, out| {
        if i == restart_at {
            proc.restart(inputs, out)?;
        }
        proc.step(step, out);
        Ok(())
    })
}

/// The real `Processor`, which can be stopped and restarted from its engine's snapshot the
/// way the service restarts: the records still in the reorder buffer were not committed, so
/// they are consumed again.
struct Restartable {
    config: Config,
    proc: Processor,
}

impl Restartable {
    fn new(config: &Config) -> Restartable {
        Restartable {
            config: config.clone(),
            proc: processor(config),
        }
    }

    fn restart(&mut self, inputs: &[Input], out: &mut Vec<OutboundRecord>) -> Result<(), String> {
        let bytes = self.proc.engine().snapshot();
        let restored = Engine::restore(&self.config, &bytes)
            .map_err(|e| format!("restoring the snapshot: {e}"))?;
        if restored.snapshot() != bytes {
            return Err("snapshot -> restore -> snapshot changes the bytes".into());
        }
        let unreleased = self.proc.buffered_offsets();
        self.proc = Processor::with_engine(&self.config, restored).with_event_clock();
        // One partition: offset n is the n-th record; find its input.
        let records: Vec<&Input> = inputs.iter().filter(|i| i.idle_until.is_none()).collect();
        for offset in unreleased {
            let inp = records[offset as usize];
            let rec = record(inp, 0, offset);
            self.proc.process(&rec, EventTime(0), out);
        }
        Ok(())
    }

    fn step(&mut self, step: Step<'_>, out: &mut Vec<OutboundRecord>) {
        match step {
            Step::Record(rec) => {
                self.proc.process(rec, EventTime(0), out);
            }
            Step::Advance(to, by) => self.proc.advance(to, EventTime(0), by, out),
        }
    }
}

fn record(inp: &Input, partition: usize, offset: i64) -> InboundRecord {
    InboundRecord {
        topic: Arc::from(inp.topic),
        partition: partition as i32,
        offset,
        key: inp.customer.as_ref().map(|c| c.as_bytes().to_vec()),
        payload: Some(inp.payload.clone()),
        timestamp_ms: None,
    }
}

/// Feeds the inputs, routed to partitions and given offsets, to `process(index, step, out)`,
/// ends with every partition's watermark at the highest event time of the input, and maps
/// what comes out back to event indices.
fn drive(
    config: &Config,
    inputs: &[Input],
    partitions: usize,
    mut process: impl FnMut(usize, Step<'_>, &mut Vec<OutboundRecord>) -> Result<(), String>,
) -> Result<Outputs, String> {
    let mut next_offset = vec![0i64; partitions];
    let mut index_of: HashMap<(i32, i64), usize> = HashMap::new();
    let mut outputs = Outputs {
        tasks: Vec::new(),
        dead_letters: Vec::new(),
        records: Vec::new(),
    };
    let end = inputs
        .iter()
        .filter_map(|i| i.occurred_at.or(i.idle_until))
        .max()
        .unwrap_or(EventTime(0));
    for i in 0..=inputs.len() {
        let mut out = Vec::new();
        if let Some(inp) = inputs.get(i) {
            if let Some(to) = inp.idle_until {
                process(i, Step::Advance(to, FiredBy::WallClock), &mut out)
                    .map_err(|e| format!("event {i}: {e}"))?;
            } else {
                let p = partition_of(inp.customer.as_deref(), partitions);
                let rec = record(inp, p, next_offset[p]);
                next_offset[p] += 1;
                index_of.insert((rec.partition, rec.offset), i);
                process(i, Step::Record(&rec), &mut out).map_err(|e| format!("event {i}: {e}"))?;
            }
        } else {
            process(i, Step::Advance(end, FiredBy::EventTime), &mut out)
                .map_err(|e| format!("end of input: {e}"))?;
        }
        for o in out {
            match o.kind {
                OutboundKind::Task => outputs.tasks.push(
                    task(config, &o, inputs, &index_of).map_err(|e| format!("event {i}: {e}"))?,
                ),
                OutboundKind::DeadLetter => outputs
                    .dead_letters
                    .push(dead_letter(config, &o, inputs, &index_of)?),
                // Scenario processors name no trend source, so they have trends off.
                OutboundKind::TrendPartial
                | OutboundKind::TrendClosed
                | OutboundKind::TrendSnapshot
                | OutboundKind::TrendAlert => {
                    return Err(format!(
                        "event {i}: a trend record from a processor with trends off"
                    ))
                }
                // Processor::checkpoint returns its records; processing never emits them.
                OutboundKind::State => {
                    return Err(format!("event {i}: a changelog record among the outputs"))
                }
            }
            outputs.records.push(o);
        }
    }
    Ok(outputs)
}

fn header<'a>(o: &'a OutboundRecord, name: &str) -> Option<&'a str> {
    o.headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn task(
    config: &Config,
    o: &OutboundRecord,
    inputs: &[Input],
    index_of: &HashMap<(i32, i64), usize>,
) -> Result<Value, String> {
    let mut t: RecoveryTask =
        serde_json::from_slice(&o.payload).map_err(|e| format!("task does not decode: {e}"))?;
    let as_sent: Value = serde_json::from_slice(&o.payload).unwrap();
    if as_sent != serde_json::to_value(&t).unwrap() {
        return Err(format!(
            "task JSON has fields outside the contract: {as_sent}"
        ));
    }
    if &*o.topic != config.output.recovery_tasks.as_str()
        || o.key.as_deref() != Some(t.customer_id.as_bytes())
    {
        return Err(format!(
            "task {} went to {} with key {:?}",
            t.task_id, o.topic, o.key
        ));
    }
    let rev = t.revision.to_string();
    if header(o, "amends.task_id") != Some(t.task_id.as_str())
        || header(o, "amends.revision") != Some(rev.as_str())
    {
        return Err(format!(
            "task {} revision {rev}: identity headers disagree: {:?}",
            t.task_id, o.headers
        ));
    }
    for e in &mut t.evidence {
        let i = *index_of
            .get(&(e.partition, e.offset))
            .ok_or(format!("evidence {e:?} points at no input"))?;
        if inputs[i].event_id.as_deref() != Some(e.event_id.as_str()) || e.topic != TOPIC {
            return Err(format!(
                "evidence {e:?} points at event {i}, which is {:?}",
                inputs[i].event_id
            ));
        }
        (e.partition, e.offset) = (0, i as i64);
    }
    Ok(serde_json::to_value(&t).unwrap())
}

fn dead_letter(
    config: &Config,
    o: &OutboundRecord,
    inputs: &[Input],
    index_of: &HashMap<(i32, i64), usize>,
) -> Result<DeadLetter, String> {
    let num = |name| {
        header(o, name)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or(format!("dead letter without {name}"))
    };
    let (partition, offset) = (
        num("amends.source.partition")? as i32,
        num("amends.source.offset")?,
    );
    let i = *index_of
        .get(&(partition, offset))
        .ok_or("dead letter points at no input")?;
    let inp = &inputs[i];
    if &*o.topic != config.output.dead_letter.as_str()
        || o.payload != inp.payload
        || header(o, "amends.source.topic") != Some(inp.topic)
    {
        return Err(format!(
            "dead letter for event {i} is not the untouched original on {}",
            config.output.dead_letter
        ));
    }
    let reason = header(o, "amends.reason")
        .ok_or("dead letter without amends.reason")?
        .to_string();
    Ok(DeadLetter {
        offset: i as i64,
        reason,
        field: header(o, "amends.field").map(String::from),
    })
}

/// Field paths where `got` differs from `want`, e.g. `tasks[1].actions[3].compensation.amount`.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<(String, String)>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for k in w.keys().chain(g.keys().filter(|k| !w.contains_key(*k))) {
                diff(
                    &format!("{path}.{k}"),
                    w.get(k).unwrap_or(&Value::Null),
                    g.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for i in 0..w.len().max(g.len()) {
                diff(
                    &format!("{path}[{i}]"),
                    w.get(i).unwrap_or(&Value::Null),
                    g.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        _ if want == got => {}
        _ => out.push((
            path.to_string(),
            format!("{path}:\n      expected {want}\n      got      {got}"),
        )),
    }
}

/// The value at a `diff`-style path such as `tasks[0].actions[3].compensation`.
fn at<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = root;
    for (n, seg) in path.split('.').enumerate() {
        let (name, idx) = seg.split_once('[').unwrap_or((seg, ""));
        if n > 0 {
            // The first segment names the root (`tasks`) itself.
            cur = cur.get_mut(name)?;
        }
        for i in idx.split('[').filter(|s| !s.is_empty()) {
            cur = cur.get_mut(i.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

fn run_fixture(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let fx: Fixture = serde_json::from_str(&text).map_err(|e| format!("bad fixture: {e}"))?;
    let config = Config::from_toml_str(
        fx.config.as_deref().unwrap_or(""),
        "fixture config",
        std::iter::empty(),
    )
    .map_err(|e| e.to_string())?;
    let inputs = fx
        .events
        .iter()
        .enumerate()
        .map(|(i, v)| input(v).map_err(|e| format!("event {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut problems = Vec::new();

    let single = run(&config, &inputs, 1)?;
    let (mut want, got) = (
        Value::Array(fx.expected_tasks.clone()),
        Value::Array(single.tasks.clone()),
    );
    for c in &fx.checks {
        match at(&mut want, &c.path) {
            Some(v) if v.as_f64().is_some() && v.as_f64() == c.expect.as_f64() => {}
            Some(v) if *v == c.expect => {}
            v => problems.push(format!(
                "check {} ({}): expected_tasks has {v:?}, hand-derived {}",
                c.path, c.why, c.expect
            )),
        }
    }
    let mut diffs = Vec::new();
    diff("tasks", &want, &got, &mut diffs);
    let differing: BTreeSet<&str> = diffs.iter().map(|(p, _)| p.as_str()).collect();
    let known: BTreeSet<&str> = fx
        .known_bug
        .iter()
        .flat_map(|k| k.paths.iter().map(String::as_str))
        .collect();
    if let Some(k) = &fx.known_bug {
        if differing.is_empty() {
            problems.push(format!(
                "known bug no longer reproduces, remove `known_bug` ({})",
                k.issue
            ));
        } else if differing == known {
            eprintln!("{}: known bug still present: {}", path.display(), k.issue);
        }
    }
    if differing != known && !differing.is_empty() {
        if std::env::var("AMENDS_BLESS").as_deref() == Ok("1") {
            bless(path, &text, &want, &got, &known)?;
            eprintln!(
                "{}: blessed expected_tasks; review the diff",
                path.display()
            );
        } else {
            let mut msg = vec![format!(
                "{} task revisions expected, {} emitted; differences:",
                fx.expected_tasks.len(),
                single.tasks.len()
            )];
            msg.extend(
                diffs
                    .iter()
                    .filter(|(p, _)| !known.contains(p.as_str()))
                    .map(|(_, m)| format!("  {m}")),
            );
            msg.extend(
                known
                    .iter()
                    .filter(|p| !differing.contains(*p))
                    .map(|p| format!("  {p}: listed in known_bug but matches")),
            );
            problems.push(msg.join("\n"));
        }
    }
    if single.dead_letters != fx.expected_dead_letters {
        problems.push(format!(
            "dead letters:\n  expected {:?}\n  got      {:?}",
            fx.expected_dead_letters, single.dead_letters
        ));
    }

    // The same input split over partitions must produce the same tasks and dead letters.
    let split = run(&config, &inputs, PARTITIONS)?;
    let sorted = |o: &Outputs| {
        let mut t = o.tasks.clone();
        t.sort_by_key(|t| {
            (
                t["task_id"].as_str().unwrap_or_default().to_string(),
                t["revision"].as_u64(),
            )
        });
        let mut d = o.dead_letters.clone();
        d.sort();
        (t, d)
    };
    let ((single_tasks, single_dead), (split_tasks, split_dead)) =
        (sorted(&single), sorted(&split));
    if (&single_tasks, &single_dead) != (&split_tasks, &split_dead) {
        let mut d = Vec::new();
        diff(
            "tasks",
            &Value::Array(single_tasks),
            &Value::Array(split_tasks),
            &mut d,
        );
        let mut msg = vec![format!("split over {PARTITIONS} partitions (tasks ordered by task_id, revision), the output changes:")];
        msg.extend(d.into_iter().map(|(_, m)| format!("  {m}")));
        if single_dead != split_dead {
            msg.push(format!(
                "  dead letters {single_dead:?}\n  became       {split_dead:?}"
            ));
        }
        problems.push(msg.join("\n"));
    }

    // Interrupted after every event (the middle included): snapshot, restore into a new
    // engine, go on. Comparing records also checks that the output is deterministic (ids,
    // times, wording, record headers and bytes).
    for at in 1..=inputs.len() {
        let restarted = run_restarted(&config, &inputs, at)?;
        if restarted != single {
            let mut d = Vec::new();
            diff(
                "tasks",
                &Value::Array(single.tasks.clone()),
                &Value::Array(restarted.tasks.clone()),
                &mut d,
            );
            let mut msg = vec![format!(
                "restored from a snapshot taken after event {}, the output changes:",
                at - 1
            )];
            msg.extend(d.into_iter().map(|(_, m)| format!("  {m}")));
            if restarted.dead_letters != single.dead_letters {
                msg.push(format!(
                    "  dead letters {:?}\n  became       {:?}",
                    single.dead_letters, restarted.dead_letters
                ));
            }
            if msg.len() == 1 {
                msg.push("  (record bytes or headers differ)".into());
            }
            problems.push(msg.join("\n"));
            break;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("({})\n{}", fx.description, problems.join("\n")))
    }
}

/// Rewrites the `expected_tasks` array of the fixture text with `got`, keeping `want` at the
/// known-bug paths and leaving the rest of the file as it was written.
fn bless(
    path: &Path,
    text: &str,
    want: &Value,
    got: &Value,
    known: &BTreeSet<&str>,
) -> Result<(), String> {
    let mut new = got.clone();
    for p in known {
        if let (Some(slot), Some(v)) = (at(&mut new, p), at(&mut want.clone(), p)) {
            *slot = v.clone();
        }
    }
    // Through RecoveryTask, so fields come out in contract order rather than sorted.
    let tasks: Vec<RecoveryTask> =
        serde_json::from_value(new).map_err(|e| format!("cannot bless: {e}"))?;
    let json = serde_json::to_string_pretty(&tasks)
        .unwrap()
        .replace('\n', "\n  ");
    let key = text
        .find("\"expected_tasks\"")
        .ok_or("no expected_tasks key")?;
    let start = key + text[key..].find('[').ok_or("no expected_tasks array")?;
    let (mut depth, mut in_str, mut escaped, mut end) = (0i32, false, false, None);
    for (i, c) in text[start..].char_indices() {
        match (in_str, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') | (false, _, '"') => in_str = !in_str,
            (false, _, '[' | '{') => depth += 1,
            (false, _, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    end = Some(start + i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.ok_or("unterminated expected_tasks")?;
    std::fs::write(path, format!("{}{json}{}", &text[..start], &text[end..]))
        .map_err(|e| e.to_string())
}

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios");
    let filter = std::env::var("AMENDS_SCENARIO").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    files
}

#[test]
fn scenarios_produce_the_expected_tasks_and_dead_letters_however_they_are_partitioned() {
    let files = fixtures();
    if std::env::var("AMENDS_SCENARIO").is_err() {
        assert!(
            files.len() >= 30,
            "expected at least 30 scenarios, found {}",
            files.len()
        );
    }
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            run_fixture(f)
                .err()
                .map(|e| format!("{}:\n{e}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_partitioned_run_spreads_customers_over_partitions() {
    // Otherwise the split run would prove nothing.
    let used: BTreeSet<usize> = [
        "c-ship-1",
        "c-bill-1",
        "c-sales-1",
        "c-svc-1",
        "c-new",
        "c-est",
        "c-loyal",
        "c-unknown",
    ]
    .iter()
    .map(|c| partition_of(Some(c), PARTITIONS))
    .collect();
    assert!(used.len() >= 3, "{used:?}");
}

//! The merger: combines the partials of every source for the dimensions it owns into trend
//! [`Snapshot`]s on `amends.trend-snapshots`.
//!
//! Run one `Merger` per partition of the partials topic. A dimension's partials all land in
//! one partition (keyed by dimension), and every source's `Closed` marker is broadcast to
//! every partition after that source's partials, so within one partition a marker proves the
//! source has nothing more for the windows it covers. (A merger fed by two partitions could
//! see one partition's marker before the other's partials and call a window complete early.)
//!
//! Life of a window `(width, start)` here:
//! - **Pending**: partials are kept per source; a repeated partial from a source *replaces*
//!   its earlier one (a partition re-processed after a crash re-sends what it sent before),
//!   so nothing is counted twice.
//! - **Complete** once `expected_sources` distinct sources sent a marker covering it
//!   (`closed_before_ms > start`): one snapshot per dimension with data, `complete: true`,
//!   merged in source-name order (so float sums do not depend on arrival order).
//! - **Incomplete**: if still pending `complete_wait` (wall clock) after the window was first
//!   heard of, its snapshots go out with `complete: false`; later partials for it re-emit that
//!   dimension, and completion re-emits all, each as the next revision.
//! - **Abandoned**: still incomplete `24 × complete_wait` after that emission, it stops
//!   waiting (counted in [`Merger::abandoned`]); it is finished but `complete` stays false
//!   unless the missing markers do arrive while it is retained.
//!
//! Finished windows (complete or abandoned) are kept compactly for late updates: per source
//! the aggregate without its sketches plus a fingerprint, and one union of the sketches per
//! dimension. A partial arriving for a finished window (only possible after a crash/restore
//! upstream, or from a source that was given up on) is the **late-update path**: identical to
//! what that source sent before → nothing; changed or new → counts are replaced exactly, the
//! sketches are unioned (a union cannot count a customer twice, but keeps customers only the
//! replaced partial had), and the dimension is re-emitted as the next revision. A partition
//! that restarts *without* its persisted state re-sends smaller partials for windows it had
//! already closed, and they replace its earlier ones: persist `PartitionTrends` with the
//! input offsets so that replays are identical, and therefore silent. The newest
//! `retain_finished` finished windows per width are kept (default 36: 3 h of 5-minute
//! windows); records for windows older than an evicted one are dropped and counted in
//! [`Merger::ignored`], so they can never restart a snapshot id at revision 1.
//!
//! Every emission is deduplicated: a dimension is only re-emitted (revision + 1) if its
//! snapshot content changed. Snapshots of one call come out ordered by (start, width,
//! dimension key). Nothing here reads the clock: the host passes `now_wall` in.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sketch::xxh64;
use super::window::{Agg, Dimension, PartialRecord, SeverityCounts, WindowTotal};
use crate::domain::{EventTime, Millis};

/// Finished windows kept per width for late updates, unless changed.
pub const DEFAULT_RETAIN_FINISHED: usize = 36;
/// An incomplete window is abandoned this many `complete_wait`s after its incomplete emission.
const ABANDON_AFTER_WAITS: i64 = 24;

/// One trend snapshot: a dimension over one window, merged over sources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `{dimension_key}@{width_ms}@{start_ms}`; the same for every revision.
    pub snapshot_id: String,
    /// Starts at 1; the highest revision of a `snapshot_id` is the truth.
    pub revision: u32,
    pub dimension: Dimension,
    pub window_start: String,
    pub window_end: String,
    pub window_seconds: i64,
    /// Every expected source has closed the window (false: emitted after `complete_wait`).
    pub complete: bool,
    /// Sources whose Closed marker covers the window.
    pub sources_reported: u32,
    pub sources_expected: u32,
    /// For a failure-type dimension: all events in the window, of every source.
    pub events: u64,
    pub failures: u64,
    /// failures / events; 0 without events.
    pub failure_rate: f64,
    /// Distinct customers with an event (HyperLogLog, ±1.6 %); for a failure-type
    /// dimension, with that failure, like `customers_affected`.
    pub customers: u64,
    /// Distinct customers with a failure event.
    pub customers_affected: u64,
    pub severity_mix: SeverityCounts,
    pub tasks_opened: u64,
    pub tasks_by_rule: BTreeMap<String, u64>,
    pub value_at_risk: f64,
    pub outcomes: OutcomeMix,
    /// resolved / received; null without outcomes.
    pub recovery_success_rate: Option<f64>,
    pub double_deviations: u64,
    /// double_deviations / outcomes received; null without outcomes.
    pub double_deviation_rate: Option<f64>,
    /// At-or-above / measured; null when none was measured.
    pub paradox_rate: Option<f64>,
    /// Bucket midpoint of the median (±9.1 %); null without recovery times.
    pub median_time_to_recovery_seconds: Option<f64>,
    /// Filled in by the alert stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeMix {
    pub received: u64,
    pub resolved: u64,
    pub unresolved: u64,
    pub no_response: u64,
}

impl Snapshot {
    /// The Kafka key on `amends.trend-snapshots`: the dimension key.
    pub fn key(&self) -> String {
        self.dimension.key()
    }

    /// The snapshot of a merged aggregate, at revision 0 (set by the caller).
    pub fn build(
        dimension: &Dimension,
        width_ms: i64,
        start_ms: i64,
        agg: &Agg,
        complete: bool,
        sources_reported: usize,
        sources_expected: usize,
    ) -> Snapshot {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let o = agg.outcomes;
        let received = o.received();
        let s = agg.severity;
        Snapshot {
            snapshot_id: format!("{}@{width_ms}@{start_ms}", dimension.key()),
            revision: 0,
            dimension: dimension.clone(),
            window_start: EventTime(start_ms).to_rfc3339(),
            window_end: EventTime(start_ms.saturating_add(width_ms)).to_rfc3339(),
            window_seconds: width_ms / 1000,
            complete,
            sources_reported: u32::try_from(sources_reported).unwrap_or(u32::MAX),
            sources_expected: u32::try_from(sources_expected).unwrap_or(u32::MAX),
            events: agg.events,
            failures: agg.failures,
            failure_rate: ratio(agg.failures, agg.events).unwrap_or(0.0),
            customers: agg.customers.estimate(),
            customers_affected: agg.customers_affected.estimate(),
            severity_mix: s,
            tasks_opened: s.minor.saturating_add(s.major).saturating_add(s.critical),
            tasks_by_rule: agg.tasks_by_rule.clone(),
            value_at_risk: (agg.value_at_risk * 100.0).round() / 100.0,
            outcomes: OutcomeMix {
                received,
                resolved: o.resolved,
                unresolved: o.unresolved,
                no_response: o.no_response,
            },
            recovery_success_rate: ratio(o.resolved, received),
            double_deviations: agg.double_deviations,
            double_deviation_rate: ratio(agg.double_deviations, received),
            paradox_rate: ratio(agg.paradox_count, agg.paradox_measured),
            median_time_to_recovery_seconds: agg
                .recovery_times
                .median_ms()
                .map(|ms| ms as f64 / 1000.0),
            baseline: None,
        }
    }
}

/// Merges the partials of the dimensions routed to one partials-topic partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Merger {
    expected_sources: usize,
    complete_wait_ms: i64,
    retain_finished: usize,
    /// width → start → window.
    windows: BTreeMap<i64, BTreeMap<i64, Win>>,
    /// source → width → the source's `closed_before_ms`.
    marks: BTreeMap<String, BTreeMap<i64, Coverage>>,
    /// width → windows starting before this that are not in `windows` are finished and evicted.
    forgotten_before: BTreeMap<i64, i64>,
    abandoned: u64,
    ignored: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Win {
    first_seen_ms: i64,
    /// When the incomplete snapshots went out, if they did.
    incomplete_at_ms: Option<i64>,
    /// Complete or abandoned; parts are compacted.
    finished: bool,
    complete: bool,
    /// Source → its event total for the window, from its marker (failure-type denominators).
    totals: BTreeMap<String, u64>,
    /// Dimension key → state.
    dims: BTreeMap<String, DimState>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DimState {
    dimension: Dimension,
    /// Source → its partial (without sketches once the window is finished).
    parts: BTreeMap<String, Part>,
    /// Union of the parts' sketches, moved here when the window finishes.
    customers: super::sketch::Hll,
    customers_affected: super::sketch::Hll,
    revision: u32,
    /// Fingerprint of the last emitted snapshot content (revision excluded).
    last_fp: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Part {
    agg: Agg,
    /// Fingerprint of the partial as received, sketches included.
    fp: u64,
}

/// Which dimensions of a window an event may have changed.
#[derive(Clone, Copy)]
enum Which<'a> {
    All,
    Key(&'a str),
    /// A source's event total changed: only failure-type denominators depend on it.
    FailureTypes,
}

/// A snapshot with its ordering key, sorted before leaving a call.
type Emitted = (i64, i64, String, Snapshot);

fn fingerprint<T: Serialize>(v: &T) -> u64 {
    serde_json::to_vec(v).map(|b| xxh64(&b, 0)).unwrap_or(0)
}

fn window_ok(width: i64, start: i64) -> bool {
    width > 0 && start.rem_euclid(width) == 0 && start.checked_add(width).is_some()
}

/// Distinct sources whose marker covers window `(width, start)`.
fn reported(marks: &BTreeMap<String, BTreeMap<i64, Coverage>>, width: i64, start: i64) -> usize {
    marks
        .values()
        .filter(|m| m.get(&width).is_some_and(|c| c.covers(start)))
        .count()
}

/// The window starts a source has closed, as sorted, disjoint `[from, before)` ranges.
///
/// A marker speaks only for the windows its own close call closed, not for everything
/// before it: the host may deliver one close call's records while an earlier call's are still
/// in flight, so a later marker can arrive before an earlier call's partials. Successive
/// markers of a source are adjacent, so the ranges normally merge into one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage(Vec<(i64, i64)>);

impl Coverage {
    /// Adds `[from, before)`; `from = None` means from the beginning of time.
    pub fn add(&mut self, from: Option<i64>, before: i64) {
        let from = from.unwrap_or(i64::MIN);
        if from >= before {
            return;
        }
        self.0.push((from, before));
        self.0.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.0.len());
        for (f, b) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if f <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((f, b)),
            }
        }
        self.0 = merged;
    }

    pub fn covers(&self, start: i64) -> bool {
        self.0.iter().any(|&(f, b)| f <= start && start < b)
    }
}

impl DimState {
    fn merged(&self, totals: &BTreeMap<String, u64>) -> Agg {
        let mut acc = Agg::default();
        for p in self.parts.values() {
            acc.merge(&p.agg);
        }
        acc.customers.merge(&self.customers);
        acc.customers_affected.merge(&self.customers_affected);
        if self.dimension.is_failure_type() {
            // All traffic: every marker's total, plus a partial's own total for a source
            // whose marker has not arrived yet.
            let from_markers = totals.values().fold(0u64, |a, &n| a.saturating_add(n));
            let unmarked = self.parts.iter().filter(|(s, _)| !totals.contains_key(*s));
            acc.events = unmarked.fold(from_markers, |a, (_, p)| a.saturating_add(p.agg.events));
        }
        acc
    }

    /// Moves the parts' sketches into the dimension's union.
    fn compact(&mut self) {
        for p in self.parts.values_mut() {
            self.customers.merge(&std::mem::take(&mut p.agg.customers));
            self.customers_affected
                .merge(&std::mem::take(&mut p.agg.customers_affected));
        }
    }
}

impl Win {
    fn new(now: i64) -> Win {
        Win {
            first_seen_ms: now,
            incomplete_at_ms: None,
            finished: false,
            complete: false,
            totals: BTreeMap::new(),
            dims: BTreeMap::new(),
        }
    }

    fn finish(&mut self, complete: bool) {
        if !self.finished {
            self.finished = true;
            self.dims.values_mut().for_each(DimState::compact);
        }
        self.complete = complete;
    }

    /// Emits those of the `which` dimensions whose snapshot changed since last emitted.
    fn emit(
        &mut self,
        width: i64,
        start: i64,
        which: Which,
        reported: usize,
        expected: usize,
        out: &mut Vec<Emitted>,
    ) {
        for (key, dim) in &mut self.dims {
            let wanted = match which {
                Which::All => true,
                Which::Key(k) => k == key,
                Which::FailureTypes => dim.dimension.is_failure_type(),
            };
            if !wanted {
                continue;
            }
            let agg = dim.merged(&self.totals);
            let mut snap = Snapshot::build(
                &dim.dimension,
                width,
                start,
                &agg,
                self.complete,
                reported,
                expected,
            );
            let fp = fingerprint(&snap);
            if dim.last_fp == Some(fp) {
                continue;
            }
            dim.last_fp = Some(fp);
            dim.revision = dim.revision.saturating_add(1);
            snap.revision = dim.revision;
            out.push((start, width, key.clone(), snap));
        }
    }
}

impl Merger {
    pub fn new(expected_sources: usize, complete_wait: Millis) -> Merger {
        Merger {
            expected_sources,
            complete_wait_ms: complete_wait.0,
            retain_finished: DEFAULT_RETAIN_FINISHED,
            windows: BTreeMap::new(),
            marks: BTreeMap::new(),
            forgotten_before: BTreeMap::new(),
            abandoned: 0,
            ignored: 0,
        }
    }

    /// Sources a window needs to be complete (partitions were added). Takes effect for
    /// already-pending windows at the next [`Merger::tick`].
    pub fn set_expected_sources(&mut self, n: usize) {
        self.expected_sources = n;
    }

    /// Finished windows kept per width for late updates (at least 1).
    pub fn set_retain_finished(&mut self, n: usize) {
        self.retain_finished = n.max(1);
    }

    /// Windows given up on while incomplete (and that had data), since creation.
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// Records dropped: malformed windows, or windows already evicted after finishing.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Windows still waiting for sources (a gauge).
    pub fn pending_windows(&self) -> usize {
        self.windows
            .values()
            .flat_map(|w| w.values())
            .filter(|w| !w.finished)
            .count()
    }

    /// Whether window `(width_ms, start_ms)` is known and still waiting for sources (the
    /// host holds the commit of its partials until it is not).
    pub fn is_pending(&self, width_ms: i64, start_ms: i64) -> bool {
        self.windows
            .get(&width_ms)
            .and_then(|w| w.get(&start_ms))
            .is_some_and(|w| !w.finished)
    }

    /// Takes one record from the partials topic.
    pub fn add(&mut self, rec: PartialRecord, now_wall: EventTime, out: &mut Vec<Snapshot>) {
        let mut emitted = Vec::new();
        match rec {
            PartialRecord::Partial {
                source,
                width_ms,
                start_ms,
                dimension,
                agg,
            } => self.on_partial(
                source,
                width_ms,
                start_ms,
                dimension,
                *agg,
                now_wall.0,
                &mut emitted,
            ),
            PartialRecord::Closed {
                source,
                width_ms,
                closed_from_ms,
                closed_before_ms,
                totals,
            } => self.on_closed(
                source,
                width_ms,
                closed_from_ms,
                closed_before_ms,
                totals,
                now_wall.0,
                &mut emitted,
            ),
        }
        finish_call(emitted, out);
    }

    /// Time-driven work: completions after `set_expected_sources`, incomplete emissions after
    /// `complete_wait`, abandonment. Call it periodically (e.g. every second).
    pub fn tick(&mut self, now_wall: EventTime, out: &mut Vec<Snapshot>) {
        let now = now_wall.0;
        let expected = self.expected_sources;
        let wait = self.complete_wait_ms;
        let abandon_after = wait.max(0).saturating_mul(ABANDON_AFTER_WAITS);
        let mut emitted = Vec::new();
        for (&width, per_width) in &mut self.windows {
            for (&start, win) in per_width.iter_mut() {
                let reported = reported(&self.marks, width, start);
                if reported >= expected && !win.complete {
                    win.finish(true);
                    win.emit(width, start, Which::All, reported, expected, &mut emitted);
                } else if !win.finished {
                    match win.incomplete_at_ms {
                        None if now >= win.first_seen_ms.saturating_add(wait) => {
                            win.incomplete_at_ms = Some(now);
                            win.emit(width, start, Which::All, reported, expected, &mut emitted);
                        }
                        Some(at) if now >= at.saturating_add(abandon_after) => {
                            win.finish(false);
                            if !win.dims.is_empty() {
                                self.abandoned = self.abandoned.saturating_add(1);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let widths: Vec<i64> = self.windows.keys().copied().collect();
        widths.into_iter().for_each(|w| self.evict(w));
        finish_call(emitted, out);
    }

    /// The whole state as JSON, for persistence.
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Rebuilds the state saved by [`Merger::snapshot`].
    pub fn restore(bytes: &[u8]) -> Result<Merger, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The window, created if new and not already evicted.
    fn window(&mut self, width: i64, start: i64, now: i64) -> Option<&mut Win> {
        let forgotten = self.forgotten_before.get(&width).copied();
        match self.windows.entry(width).or_default().entry(start) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(_) if forgotten.is_some_and(|f| start < f) => None,
            Entry::Vacant(e) => Some(e.insert(Win::new(now))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_partial(
        &mut self,
        source: String,
        width: i64,
        start: i64,
        dimension: Dimension,
        mut agg: Agg,
        now: i64,
        out: &mut Vec<Emitted>,
    ) {
        if !window_ok(width, start) {
            self.ignored = self.ignored.saturating_add(1);
            return;
        }
        let key = dimension.key();
        let fp = fingerprint(&agg);
        let reported = reported(&self.marks, width, start);
        let expected = self.expected_sources;
        let Some(win) = self.window(width, start, now) else {
            self.ignored = self.ignored.saturating_add(1);
            return;
        };
        let dim = win.dims.entry(key.clone()).or_insert_with(|| DimState {
            dimension,
            parts: BTreeMap::new(),
            customers: Default::default(),
            customers_affected: Default::default(),
            revision: 0,
            last_fp: None,
        });
        if dim.parts.get(&source).is_some_and(|p| p.fp == fp) {
            // The same partial again. (Replacing it would change nothing, and the snapshot
            // dedup would emit nothing; this just skips the merge work.)
            return;
        }
        if win.finished {
            // Late update: keep one union of the sketches, not one copy per source.
            dim.customers.merge(&std::mem::take(&mut agg.customers));
            dim.customers_affected
                .merge(&std::mem::take(&mut agg.customers_affected));
        }
        dim.parts.insert(source, Part { agg, fp });
        if reported >= expected && !win.complete {
            win.finish(true);
            win.emit(width, start, Which::All, reported, expected, out);
            self.evict(width);
        } else if win.finished || win.incomplete_at_ms.is_some() {
            win.emit(width, start, Which::Key(&key), reported, expected, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_closed(
        &mut self,
        source: String,
        width: i64,
        closed_from: Option<i64>,
        closed_before: i64,
        totals: Vec<WindowTotal>,
        now: i64,
        out: &mut Vec<Emitted>,
    ) {
        if width <= 0 {
            self.ignored = self.ignored.saturating_add(1);
            return;
        }
        self.marks
            .entry(source.clone())
            .or_default()
            .entry(width)
            .or_default()
            .add(closed_from, closed_before);
        let mut changed = Vec::new();
        for t in totals {
            // A marker only speaks for the windows it closes.
            let from = closed_from.unwrap_or(i64::MIN);
            if t.start_ms >= closed_before || t.start_ms < from || !window_ok(width, t.start_ms) {
                continue;
            }
            if let Some(win) = self.window(width, t.start_ms, now) {
                let before = win.totals.insert(source.clone(), t.events);
                let emitted_before = win.finished || win.incomplete_at_ms.is_some();
                if emitted_before && before != Some(t.events) {
                    changed.push(t.start_ms);
                }
            }
        }
        let expected = self.expected_sources;
        if let Some(per_width) = self.windows.get_mut(&width) {
            for (&start, win) in per_width.range_mut(..closed_before) {
                let reported = reported(&self.marks, width, start);
                if reported >= expected && !win.complete {
                    win.finish(true);
                    win.emit(width, start, Which::All, reported, expected, out);
                } else if changed.contains(&start) {
                    win.emit(width, start, Which::FailureTypes, reported, expected, out);
                }
            }
        }
        self.evict(width);
    }

    /// Keeps the newest `retain_finished` finished windows of a width.
    fn evict(&mut self, width: i64) {
        let Some(per_width) = self.windows.get_mut(&width) else {
            return;
        };
        let finished: Vec<i64> = per_width
            .iter()
            .filter(|(_, w)| w.finished)
            .map(|(&s, _)| s)
            .collect();
        let excess = finished.len().saturating_sub(self.retain_finished);
        for &start in finished.iter().take(excess) {
            per_width.remove(&start);
            let floor = self.forgotten_before.entry(width).or_insert(i64::MIN);
            *floor = (*floor).max(start.saturating_add(width));
        }
    }
}

fn finish_call(mut emitted: Vec<Emitted>, out: &mut Vec<Snapshot>) {
    emitted.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    out.extend(emitted.into_iter().map(|(_, _, _, s)| s));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RecoveryStatus, Severity};
    use crate::trend::window::{Fact, PartitionTrends};

    const MIN: i64 = 60_000;
    const W: i64 = 5 * MIN;
    const WAIT: i64 = 30_000;

    fn ev<'a>(
        at: i64,
        customer_id: &'a str,
        channel: &'a str,
        failure: bool,
        ty: &'a str,
    ) -> Fact<'a> {
        Fact::Event {
            at: EventTime(at),
            customer_id,
            channel,
            touchpoint: "invoice",
            segment: None,
            failure,
            event_type: ty,
        }
    }

    /// What one partition sends after seeing `facts` and closing up to `watermark`.
    fn partition(source: &str, facts: &[Fact], watermark: i64) -> Vec<PartialRecord> {
        let mut p = PartitionTrends::new(vec![Millis(W)], Millis(0));
        for f in facts {
            p.record(f);
        }
        let mut out = Vec::new();
        p.close_until(EventTime(watermark), source, &mut out);
        out
    }

    fn feed(m: &mut Merger, recs: &[PartialRecord], now: i64) -> Vec<Snapshot> {
        let mut out = Vec::new();
        for r in recs {
            m.add(r.clone(), EventTime(now), &mut out);
        }
        out
    }

    fn tick(m: &mut Merger, now: i64) -> Vec<Snapshot> {
        let mut out = Vec::new();
        m.tick(EventTime(now), &mut out);
        out
    }

    fn by_key(snaps: &[Snapshot]) -> BTreeMap<String, Snapshot> {
        snaps.iter().map(|s| (s.key(), s.clone())).collect()
    }

    fn partial_of<'a>(recs: &'a [PartialRecord], key: &str) -> &'a PartialRecord {
        recs.iter()
            .find(|r| r.key() == key)
            .expect("the test produced this partial")
    }

    #[test]
    fn two_sources_merge_to_exact_sums_and_a_union_of_customers() {
        let a = partition(
            "p0",
            &[
                ev(1, "c1", "billing", true, "timeout"),
                ev(2, "c2", "billing", false, "view"),
            ],
            W,
        );
        let b = partition(
            "p1",
            &[
                ev(3, "c1", "billing", false, "view"),
                ev(4, "c3", "billing", true, "timeout"),
            ],
            W,
        );
        let mut m = Merger::new(2, Millis(WAIT));
        let mut out = feed(&mut m, &a, 0);
        assert!(out.is_empty(), "waits for the second source");
        out = feed(&mut m, &b, 0);
        let snaps = by_key(&out);
        assert_eq!(snaps.len(), 3, "channel, channel_touchpoint, failure_type");
        let s = &snaps["channel=billing"];
        assert_eq!((s.events, s.failures, s.failure_rate), (4, 2, 0.5));
        assert_eq!(s.customers, 3, "c1 in both sources counts once");
        assert_eq!(s.customers_affected, 2);
        assert_eq!(
            (
                s.revision,
                s.complete,
                s.sources_reported,
                s.sources_expected
            ),
            (1, true, 2, 2)
        );
        assert_eq!(s.snapshot_id, "channel=billing@300000@0");
        assert_eq!(
            (s.window_start.as_str(), s.window_end.as_str()),
            ("1970-01-01T00:00:00.000Z", "1970-01-01T00:05:00.000Z")
        );
        assert_eq!(s.window_seconds, 300);
        assert_eq!(snaps["failure_type=timeout"].customers, 2);
        assert_eq!(m.pending_windows(), 0);
    }

    #[test]
    fn a_window_waits_for_every_source_and_an_empty_window_emits_nothing() {
        let mut m = Merger::new(3, Millis(WAIT));
        let a = partition("p0", &[ev(1, "c1", "billing", false, "view")], W);
        assert!(feed(&mut m, &a, 0).is_empty());
        assert!(
            feed(&mut m, &partition("p1", &[], W), 0).is_empty(),
            "2 of 3 closed"
        );
        let again = partition("p1", &[], 2 * W);
        assert!(
            feed(&mut m, &again, 0).is_empty(),
            "the same source twice is still 2 of 3"
        );
        let out = feed(&mut m, &partition("p2", &[], W), 0);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|s| s.complete && s.sources_reported == 3 && s.events == 1));
        // Window [W, 2W) had no data anywhere: even once every source closed it, no snapshot.
        let mut out = feed(&mut m, &partition("p0", &[], 2 * W), 0);
        out.extend(feed(&mut m, &partition("p2", &[], 2 * W), 0));
        out.extend(tick(&mut m, 10 * WAIT));
        assert!(out.is_empty());
        assert_eq!(m.pending_windows(), 0);
    }

    #[test]
    fn a_marker_covers_only_windows_that_start_before_its_boundary() {
        let mut m = Merger::new(1, Millis(WAIT));
        let recs = partition("p0", &[ev(W + 1, "c", "web", false, "v")], 2 * W);
        let (marker, partials) = recs.split_last().expect("a marker");
        assert!(feed(&mut m, partials, 0).is_empty());
        let edge = PartialRecord::Closed {
            source: "p0".into(),
            width_ms: W,
            closed_from_ms: None,
            closed_before_ms: W,
            totals: vec![],
        };
        assert!(
            feed(&mut m, &[edge], 0).is_empty(),
            "closed_before == start: still open"
        );
        assert_eq!(feed(&mut m, std::slice::from_ref(marker), 0).len(), 2);
    }

    #[test]
    fn failure_type_rates_are_over_all_traffic_of_all_sources() {
        let mut a_facts = vec![
            ev(1, "x", "billing", true, "timeout"),
            ev(2, "y", "billing", true, "timeout"),
        ];
        a_facts.extend((0..8).map(|i| ev(3 + i, "z", "app", false, "view")));
        // The second source has traffic but no timeouts: it sends no timeout partial.
        let b_facts: Vec<_> = (0..10).map(|i| ev(i, "w", "app", false, "view")).collect();
        let mut m = Merger::new(2, Millis(WAIT));
        feed(&mut m, &partition("p0", &a_facts, W), 0);
        let snaps = by_key(&feed(&mut m, &partition("p1", &b_facts, W), 0));
        let t = &snaps["failure_type=timeout"];
        assert_eq!((t.failures, t.events, t.failure_rate), (2, 20, 0.1));
        let billing = &snaps["channel=billing"];
        assert_eq!(
            (billing.failures, billing.events, billing.failure_rate),
            (2, 2, 1.0)
        );
        assert_eq!(snaps["channel=app"].events, 18);
    }

    #[test]
    fn rates_counts_and_median_on_hand_computed_inputs() {
        let dims = ("billing", "invoice", Some("smb"), Some("timeout"));
        let outcome = |status, double_deviation, paradox, ttr_s: Option<i64>| Fact::Outcome {
            at: EventTime(10),
            channel: dims.0,
            touchpoint: dims.1,
            segment: dims.2,
            failure_type: dims.3,
            status,
            double_deviation,
            paradox,
            time_to_recovery: ttr_s.map(Millis::from_secs),
        };
        let task = |rule, severity, value_at_risk| Fact::TaskOpened {
            at: EventTime(5),
            channel: dims.0,
            touchpoint: dims.1,
            segment: dims.2,
            failure_type: dims.3,
            rule,
            severity,
            value_at_risk,
        };
        let facts = [
            task("repeat_failure", Severity::Major, 100.004),
            task("repeat_failure", Severity::Critical, 0.001),
            task("silent_churn", Severity::Minor, 25.5),
            outcome(RecoveryStatus::Resolved, false, Some(true), Some(10)),
            outcome(RecoveryStatus::Resolved, false, Some(false), Some(30)),
            outcome(RecoveryStatus::Unresolved, true, Some(false), Some(20)),
            outcome(RecoveryStatus::NoResponse, false, None, None),
            Fact::DoubleDeviation {
                at: EventTime(20),
                channel: dims.0,
                touchpoint: dims.1,
                segment: dims.2,
                failure_type: dims.3,
            },
        ];
        let mut m = Merger::new(1, Millis(WAIT));
        let snaps = by_key(&feed(&mut m, &partition("p0", &facts, W), 0));
        assert_eq!(snaps.len(), 4);
        let s = &snaps["segment=smb"];
        assert_eq!(
            s.severity_mix,
            SeverityCounts {
                minor: 1,
                major: 1,
                critical: 1
            }
        );
        assert_eq!(s.tasks_opened, 3);
        assert_eq!(
            s.tasks_by_rule,
            BTreeMap::from([("repeat_failure".into(), 2), ("silent_churn".into(), 1)])
        );
        assert_eq!(s.value_at_risk, 125.51);
        assert_eq!(
            s.outcomes,
            OutcomeMix {
                received: 4,
                resolved: 2,
                unresolved: 1,
                no_response: 1
            }
        );
        assert_eq!(s.recovery_success_rate, Some(0.5));
        assert_eq!(s.double_deviations, 2);
        assert_eq!(s.double_deviation_rate, Some(0.5));
        assert_eq!(s.paradox_rate, Some(1.0 / 3.0));
        // 10, 20, 30 s → median 20 s, reported as its bucket's midpoint 2^(17.5/4) s.
        assert_eq!(s.median_time_to_recovery_seconds, Some(20.749));
        assert_eq!((s.events, s.failure_rate, s.customers), (0, 0.0, 0));
        let empty = by_key(&feed(
            &mut Merger::new(1, Millis(WAIT)),
            &partition("p0", &facts[..1], W),
            0,
        ));
        let e = &empty["channel=billing"];
        assert_eq!(
            (
                e.recovery_success_rate,
                e.double_deviation_rate,
                e.paradox_rate
            ),
            (None, None, None)
        );
        assert_eq!(e.median_time_to_recovery_seconds, None);
    }

    #[test]
    fn snapshots_serialize_to_the_documented_shape_and_round_trip() {
        let facts = [ev(1, "c1", "billing", true, "timeout")];
        let mut out = feed(
            &mut Merger::new(1, Millis(WAIT)),
            &partition("p0", &facts, W),
            0,
        );
        let s = out.remove(1);
        assert_eq!(s.key(), "channel_touchpoint=billing/invoice");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["dimension"],
            serde_json::json!({"kind": "channel_touchpoint", "channel": "billing", "touchpoint": "invoice"})
        );
        assert_eq!(v["window_start"], "1970-01-01T00:00:00.000Z");
        assert_eq!(
            v["severity_mix"],
            serde_json::json!({"minor": 0, "major": 0, "critical": 0})
        );
        assert_eq!(v["outcomes"]["received"], 0);
        assert!(
            v["recovery_success_rate"].is_null() && v["median_time_to_recovery_seconds"].is_null()
        );
        assert!(v.get("baseline").is_none(), "skipped while unset");
        let back: Snapshot = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        let mut with_baseline = s.clone();
        with_baseline.baseline = Some(serde_json::json!({"failure_rate": 0.02}));
        let json = serde_json::to_string(&with_baseline).unwrap();
        assert_eq!(
            serde_json::from_str::<Snapshot>(&json).unwrap(),
            with_baseline
        );
    }

    #[test]
    fn incomplete_after_the_wait_then_revised_when_complete() {
        let mut m = Merger::new(2, Millis(WAIT));
        feed(
            &mut m,
            &partition("p0", &[ev(1, "c1", "billing", false, "view")], W),
            1_000,
        );
        assert!(tick(&mut m, 1_000 + WAIT - 1).is_empty());
        let first = tick(&mut m, 1_000 + WAIT);
        assert_eq!(first.len(), 2);
        for s in &first {
            assert_eq!(
                (
                    s.revision,
                    s.complete,
                    s.sources_reported,
                    s.sources_expected,
                    s.events
                ),
                (1, false, 1, 2, 1)
            );
        }
        assert!(
            tick(&mut m, 1_000 + 2 * WAIT).is_empty(),
            "emitted once per change"
        );
        // The late source had data too: each of its partials revises the dimension it
        // touches (still incomplete)...
        let late = partition(
            "p1",
            &[
                ev(2, "c2", "billing", false, "view"),
                ev(3, "c3", "app", false, "view"),
            ],
            W,
        );
        let (marker, partials) = late.split_last().expect("a marker");
        let revs = |out: &[Snapshot]| -> Vec<(String, u32, bool, u64)> {
            out.iter()
                .map(|s| (s.key(), s.revision, s.complete, s.events))
                .collect()
        };
        let out = feed(&mut m, partials, 90_000);
        assert_eq!(
            revs(&out),
            vec![
                ("channel=app".into(), 1, false, 1),
                ("channel=billing".into(), 2, false, 2),
                ("channel_touchpoint=app/invoice".into(), 1, false, 1),
                ("channel_touchpoint=billing/invoice".into(), 2, false, 2),
            ]
        );
        // ...and its marker completes the window: every dimension, next revision.
        let out = feed(&mut m, std::slice::from_ref(marker), 90_000);
        assert_eq!(
            revs(&out),
            vec![
                ("channel=app".into(), 2, true, 1),
                ("channel=billing".into(), 3, true, 2),
                ("channel_touchpoint=app/invoice".into(), 2, true, 1),
                ("channel_touchpoint=billing/invoice".into(), 3, true, 2),
            ]
        );
    }

    #[test]
    fn an_empty_late_source_completes_an_incomplete_window_as_revision_two() {
        let mut m = Merger::new(2, Millis(WAIT));
        feed(
            &mut m,
            &partition("p0", &[ev(1, "c1", "billing", false, "view")], W),
            0,
        );
        assert!(tick(&mut m, WAIT)
            .iter()
            .all(|s| s.revision == 1 && !s.complete));
        let out = feed(&mut m, &partition("p1", &[], W), WAIT + 5);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|s| s.revision == 2 && s.complete && s.sources_reported == 2 && s.events == 1));
    }

    #[test]
    fn re_sent_partials_replace_and_never_double_count() {
        let a = partition(
            "p0",
            &[
                ev(1, "c1", "billing", false, "view"),
                ev(2, "c2", "billing", true, "t"),
            ],
            W,
        );
        let b = partition("p1", &[ev(3, "c3", "billing", false, "view")], W);
        let mut m = Merger::new(2, Millis(WAIT));
        feed(&mut m, &a, 0);
        feed(&mut m, &a, 0); // a crashed partition re-sends everything before completion
        let first = by_key(&feed(&mut m, &b, 0));
        assert_eq!(
            (
                first["channel=billing"].events,
                first["channel=billing"].customers
            ),
            (3, 3)
        );
        // After completion an identical re-send is silent...
        assert!(feed(&mut m, &a, 10).is_empty());
        assert!(feed(&mut m, &b, 10).is_empty());
        // ...and a changed one (the partition re-processed more) is a late update: counts
        // replaced, not added.
        let a2 = partition(
            "p0",
            &[
                ev(1, "c1", "billing", false, "view"),
                ev(2, "c2", "billing", true, "t"),
                ev(4, "c4", "billing", false, "v"),
            ],
            W,
        );
        let out = feed(
            &mut m,
            std::slice::from_ref(partial_of(&a2, "channel=billing")),
            20,
        );
        assert_eq!(out.len(), 1);
        let s = &out[0];
        assert_eq!(
            (s.revision, s.complete, s.events, s.failures, s.customers),
            (2, true, 4, 1, 4)
        );
        // A changed partial that leaves the merged snapshot as it was (same counts, and its
        // customers already in the union) is not a new revision.
        let a3 = partition(
            "p0",
            &[
                ev(1, "c1", "billing", false, "view"),
                ev(2, "c2", "billing", true, "t"),
                ev(4, "c1", "billing", false, "v"),
            ],
            W,
        );
        assert!(feed(
            &mut m,
            std::slice::from_ref(partial_of(&a3, "channel=billing")),
            25
        )
        .is_empty());
        // A new source's partial for a finished window is added (a crash-restored merger state).
        let c = partition("p9", &[ev(1, "c1", "billing", false, "view")], W);
        let out = feed(
            &mut m,
            std::slice::from_ref(partial_of(&c, "channel=billing")),
            30,
        );
        assert_eq!(
            (out[0].revision, out[0].events, out[0].customers),
            (3, 5, 4)
        );
        // Its marker brings its event total: only failure-type denominators change.
        let rest: Vec<_> = feed(&mut m, &c, 30)
            .iter()
            .map(|s| (s.key(), s.revision, s.events))
            .collect();
        assert_eq!(
            rest,
            vec![
                // p0 re-sent only its channel partial: 2 (p0) + 1 (p1) + 1 (p9).
                ("channel_touchpoint=billing/invoice".into(), 2, 4),
                // Totals 2 (p0's marker) + 1 + 1: p9 had traffic but no such failure.
                ("failure_type=t".into(), 2, 4),
            ]
        );
    }

    #[test]
    fn same_inputs_in_any_arrival_order_give_identical_snapshots() {
        let sources: Vec<Vec<PartialRecord>> = (0..3)
            .map(|p| {
                let facts: Vec<Fact> = (0..40)
                    .map(|i| {
                        let at = (i * 17 + p * 5) % (2 * W);
                        let ch = ["billing", "app", "web"][(i % 3) as usize];
                        let ty = ["timeout", "declined"][(i % 2) as usize];
                        ev(
                            at,
                            ["c1", "c2", "c3", "c4", "c5", "c6", "c7"][(i % 7) as usize],
                            ch,
                            i % 4 == 0,
                            ty,
                        )
                    })
                    .chain([Fact::TaskOpened {
                        at: EventTime(p * 100),
                        channel: "billing",
                        touchpoint: "invoice",
                        segment: None,
                        failure_type: Some("timeout"),
                        rule: "r",
                        severity: Severity::Major,
                        value_at_risk: 0.1 + p as f64 * 0.7,
                    }])
                    .collect();
                partition(&format!("p{p}"), &facts, 3 * W)
            })
            .collect();
        let run = |order: &[usize]| {
            let mut m = Merger::new(3, Millis(WAIT));
            let mut out = Vec::new();
            let mut next = [0usize; 3];
            for &s in order {
                if let Some(r) = sources[s].get(next[s]) {
                    m.add(r.clone(), EventTime(0), &mut out);
                    next[s] += 1;
                }
            }
            serde_json::to_string(&out).unwrap()
        };
        let total: usize = sources.iter().map(Vec::len).sum();
        let blocks = |a: usize, b: usize, c: usize| -> Vec<usize> {
            [a, b, c]
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, sources[s].len()))
                .collect()
        };
        let reference = run(&blocks(0, 1, 2));
        assert!(reference.contains("\"complete\":true") && reference.len() > 1000);
        for (a, b, c) in [(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)] {
            assert_eq!(run(&blocks(a, b, c)), reference, "order {a}{b}{c}");
        }
        // Interleavings that keep each source's own order, from a fixed pseudo-random walk.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20 {
            let mut order = Vec::new();
            let mut left = [sources[0].len(), sources[1].len(), sources[2].len()];
            while order.len() < total {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = (x % 3) as usize;
                if left[s] > 0 {
                    left[s] -= 1;
                    order.push(s);
                }
            }
            assert_eq!(run(&order), reference);
        }
    }

    #[test]
    fn one_call_emits_in_start_width_key_order() {
        let mut p = PartitionTrends::new(vec![Millis(W), Millis(2 * W)], Millis(0));
        for at in [W + 1, 1] {
            p.record(&ev(at, "c", "web", false, "v"));
            p.record(&ev(at, "c", "app", false, "v"));
        }
        let mut recs = Vec::new();
        p.close_until(EventTime(2 * W), "p0", &mut recs);
        // Expecting two sources, nothing completes; dropping to one completes all three
        // windows (two widths) in one tick.
        let mut m = Merger::new(2, Millis(WAIT));
        assert!(feed(&mut m, &recs, 0).is_empty());
        m.set_expected_sources(1);
        let order: Vec<_> = tick(&mut m, 1).into_iter().map(|s| s.snapshot_id).collect();
        let mut expected = Vec::new();
        for (width, start) in [(W, 0), (2 * W, 0), (W, W)] {
            for key in [
                "channel=app",
                "channel=web",
                "channel_touchpoint=app/invoice",
                "channel_touchpoint=web/invoice",
            ] {
                expected.push(format!("{key}@{width}@{start}"));
            }
        }
        assert_eq!(order, expected);
    }

    #[test]
    fn more_expected_sources_wait_longer_and_fewer_complete_on_tick() {
        let mut m = Merger::new(1, Millis(WAIT));
        m.set_expected_sources(2);
        assert!(feed(
            &mut m,
            &partition("p0", &[ev(1, "c", "web", false, "v")], W),
            0
        )
        .is_empty());
        m.set_expected_sources(1);
        let out = tick(&mut m, 1);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.complete && s.sources_expected == 1));
    }

    #[test]
    fn abandoned_windows_are_counted_and_can_still_complete_while_retained() {
        let mut m = Merger::new(2, Millis(WAIT));
        // A window this merger only knows a traffic total for: given up on too, not counted.
        let totals_only = PartialRecord::Closed {
            source: "p0".into(),
            width_ms: W,
            closed_from_ms: None,
            closed_before_ms: 2 * W,
            totals: vec![WindowTotal {
                start_ms: W,
                events: 3,
            }],
        };
        feed(&mut m, &[totals_only], 0);
        feed(
            &mut m,
            &partition("p0", &[ev(1, "c", "web", false, "v")], W),
            0,
        );
        assert_eq!(tick(&mut m, WAIT).len(), 2);
        assert!(tick(&mut m, WAIT + 24 * WAIT - 1).is_empty());
        assert_eq!(m.abandoned(), 0);
        assert!(tick(&mut m, WAIT + 24 * WAIT).is_empty());
        assert_eq!((m.abandoned(), m.pending_windows()), (1, 0));
        // The missing source comes back with data: late update, then complete.
        let b = partition("p1", &[ev(2, "d", "web", false, "v")], W);
        let out = feed(&mut m, &b, 26 * WAIT);
        let revs: Vec<_> = out
            .iter()
            .map(|s| (s.key(), s.revision, s.complete, s.events, s.customers))
            .collect();
        assert_eq!(
            revs,
            vec![
                ("channel=web".into(), 2, false, 2, 2),
                ("channel_touchpoint=web/invoice".into(), 2, false, 2, 2),
                ("channel=web".into(), 3, true, 2, 2),
                ("channel_touchpoint=web/invoice".into(), 3, true, 2, 2),
            ]
        );
    }

    /// The host may deliver a later close call's records before an earlier one's (they are
    /// in flight at once): a marker must not complete windows whose partials it did not
    /// follow.
    #[test]
    fn a_later_marker_arriving_first_does_not_complete_earlier_windows() {
        let calls = |source: &str, customer: &'static str| {
            let mut p = PartitionTrends::new(vec![Millis(W)], Millis(0));
            p.record(&ev(1, customer, "web", true, "v"));
            let mut first = Vec::new();
            p.close_until(EventTime(W), source, &mut first);
            p.record(&ev(W + 1, customer, "web", false, "v"));
            let mut second = Vec::new();
            p.close_until(EventTime(2 * W), source, &mut second);
            (first, second)
        };
        let (a1, a2) = calls("p0", "a");
        let (b1, b2) = calls("p1", "b");
        let mut m = Merger::new(2, Millis(WAIT));
        let mut out = feed(&mut m, &a1, 0);
        out.extend(feed(&mut m, &a2, 0));
        // p1's second close call is delivered before its first.
        out.extend(feed(&mut m, &b2, 0));
        assert!(
            out.iter()
                .all(|s| s.window_start == EventTime(W).to_rfc3339()),
            "only the window both second calls closed is complete: {out:?}"
        );
        assert_eq!(out.len(), 2);
        assert!(
            m.is_pending(W, 0),
            "the first window waits for p1's partials"
        );
        let out = feed(&mut m, &b1, 0);
        assert_eq!(
            out.len(),
            3,
            "channel, channel x touch-point, failure type: {out:?}"
        );
        for s in &out {
            assert_eq!((s.failures, s.customers, s.revision), (2, 2, 1));
            assert!(s.complete);
        }
    }

    #[test]
    fn evicted_windows_ignore_late_records_instead_of_restarting_at_revision_one() {
        let mut m = Merger::new(1, Millis(WAIT));
        m.set_retain_finished(1);
        let first = partition("p0", &[ev(1, "c", "web", false, "v")], W);
        assert_eq!(feed(&mut m, &first, 0).len(), 2);
        let second = partition("p0", &[ev(W + 1, "c", "web", false, "v")], 2 * W);
        assert_eq!(feed(&mut m, &second, 0).len(), 2);
        let changed = partition(
            "p0",
            &[ev(1, "c", "web", false, "v"), ev(2, "d", "web", false, "v")],
            W,
        );
        assert!(feed(&mut m, &changed, 0).is_empty());
        assert_eq!(m.ignored(), 2, "both partials of the evicted window");
        // The retained window still takes late updates.
        let second_changed = partition(
            "p0",
            &[
                ev(W + 1, "c", "web", false, "v"),
                ev(W + 2, "e", "web", false, "v"),
            ],
            2 * W,
        );
        let out = feed(&mut m, &second_changed, 0);
        assert!(out.len() == 2 && out.iter().all(|s| s.revision == 2 && s.events == 2));
    }

    #[test]
    fn state_survives_snapshot_and_restore_mid_window() {
        let a = partition("p0", &[ev(1, "c1", "web", true, "t")], W);
        let b = partition("p1", &[ev(2, "c2", "web", false, "v")], W);
        let mut m = Merger::new(2, Millis(WAIT));
        feed(&mut m, &a, 0);
        tick(&mut m, WAIT);
        let mut restored = Merger::restore(&m.snapshot().unwrap()).unwrap();
        let (x, y) = (
            feed(&mut m, &b, WAIT + 1),
            feed(&mut restored, &b, WAIT + 1),
        );
        assert_eq!(x, y);
        let last = by_key(&x); // the highest revision per dimension
        assert!(last.values().all(|s| s.complete));
        let web = &last["channel=web"];
        assert_eq!((web.revision, web.events, web.customers), (3, 2, 2));
        let t = &last["failure_type=t"];
        assert_eq!((t.revision, t.events, t.failures), (2, 2, 1));
        assert!(
            feed(&mut restored, &a, WAIT + 2).is_empty(),
            "identical re-send after restore"
        );
        assert!(Merger::restore(b"[]").is_err());
    }

    #[test]
    fn malformed_records_are_ignored_without_panicking() {
        let mut m = Merger::new(0, Millis(-1));
        let agg = Box::<Agg>::default();
        let dimension = Dimension::Channel {
            channel: "web".to_string(),
        };
        let bad = [(0, 0), (-W, 0), (W, 7), (W, i64::MAX - 5)];
        let mut out = Vec::new();
        for (width_ms, start_ms) in bad {
            let rec = PartialRecord::Partial {
                source: "p".into(),
                width_ms,
                start_ms,
                dimension: dimension.clone(),
                agg: agg.clone(),
            };
            m.add(rec, EventTime(0), &mut out);
        }
        let closed = PartialRecord::Closed {
            source: "p".into(),
            width_ms: 0,
            closed_from_ms: None,
            closed_before_ms: 5,
            totals: vec![],
        };
        m.add(closed, EventTime(0), &mut out);
        assert_eq!((m.ignored(), out.len()), (5, 0));
        // With no sources expected, any valid partial is complete on arrival.
        let ok = PartialRecord::Partial {
            source: "p".into(),
            width_ms: W,
            start_ms: i64::MIN / W * W,
            dimension,
            agg,
        };
        m.add(ok, EventTime(i64::MAX), &mut out);
        m.tick(EventTime(i64::MIN), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].complete);
    }
}

//! Per-partition window aggregation: facts in, per-(window, dimension) partial aggregates and
//! "closed" markers out, as records for the internal `amends.trend-partials` topic.
//!
//! Windows are tumbling and aligned to the Unix epoch: a fact at `t` belongs, for each
//! configured width `w`, to `[floor(t / w)·w, floor(t / w)·w + w)` (end exclusive, so a fact
//! exactly on a boundary opens the next window). Facts may arrive out of order; a window
//! stays open until [`PartitionTrends::close_until`] is called with a watermark `wm` such that
//! `end + allowed_lateness <= wm` (`<=`: a watermark is the lowest event time still expected,
//! so a window ending at `wm - lateness` can receive nothing more). A fact for a window that
//! this partition already closed is not counted ([`Recorded`]): closed windows never reopen.
//!
//! Closing emits one [`PartialRecord::Partial`] per dimension with data, then per width one
//! [`PartialRecord::Closed`] marker: "every window of this width with start <
//! `closed_before_ms` is final for this source". A watermark-style marker costs one record
//! per width however far the watermark jumps, and it also covers windows this partition had
//! no data for, which is how a merger learns that an idle partition has nothing to add. So
//! the host must keep advancing the watermark of an idle partition too (from the wall clock,
//! say); otherwise the mergers only publish after their `complete_wait`, as incomplete.
//!
//! Failure-type dimensions: `failures` counts failures of that type, while `events` is the
//! partition's whole traffic in the window (filled in at close), so the failure rate reads as
//! "share of all traffic that failed this way". Because a partition with traffic but none of
//! those failures sends no partial for that dimension, every Closed marker also carries the
//! partition's per-window event totals, and the merger takes the denominator from them.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::sketch::{hash_id, Hll, RecoveryHistogram};
use crate::detect::ids::FastState;
use crate::domain::{EventTime, Millis, RecoveryStatus, Severity};

/// What the host tells the trend core about. Borrowed so recording allocates nothing for
/// dimensions and rules it has already seen.
#[derive(Clone, Copy, Debug)]
pub enum Fact<'a> {
    /// A touch-point event applied by the detection engine.
    Event {
        at: EventTime,
        customer_id: &'a str,
        channel: &'a str,
        touchpoint: &'a str,
        segment: Option<&'a str>,
        failure: bool,
        event_type: &'a str,
    },
    /// A recovery task opened (revision 1) at its detected_at.
    TaskOpened {
        at: EventTime,
        channel: &'a str,
        touchpoint: &'a str,
        segment: Option<&'a str>,
        failure_type: Option<&'a str>,
        rule: &'a str,
        severity: Severity,
        value_at_risk: f64,
    },
    /// A recovery outcome received for a task, with what the closed loop measured.
    Outcome {
        at: EventTime,
        channel: &'a str,
        touchpoint: &'a str,
        segment: Option<&'a str>,
        failure_type: Option<&'a str>,
        status: RecoveryStatus,
        double_deviation: bool,
        paradox: Option<bool>,
        time_to_recovery: Option<Millis>,
    },
    /// A new failure within the follow-up period after a recovery: a double deviation
    /// attributed to the original task's dimensions, counted in the window of `at`.
    DoubleDeviation {
        at: EventTime,
        channel: &'a str,
        touchpoint: &'a str,
        segment: Option<&'a str>,
        failure_type: Option<&'a str>,
    },
}

impl Fact<'_> {
    pub fn at(&self) -> EventTime {
        match *self {
            Fact::Event { at, .. }
            | Fact::TaskOpened { at, .. }
            | Fact::Outcome { at, .. }
            | Fact::DoubleDeviation { at, .. } => at,
        }
    }
}

/// A dimension a trend is cut by. Serialized as `{"kind":"channel_touchpoint","channel":…,
/// "touchpoint":…}`; [`Dimension::key`] is its stable string form (Kafka key, snapshot id).
/// `Dimension<&str>` is the borrowed form `record` uses, so that a cell already open for a
/// dimension is found without allocating.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dimension<S = String> {
    Channel { channel: S },
    ChannelTouchpoint { channel: S, touchpoint: S },
    Segment { segment: S },
    FailureType { failure_type: S },
}

impl<S: AsRef<str>> Dimension<S> {
    pub fn kind(&self) -> &'static str {
        match self {
            Dimension::Channel { .. } => "channel",
            Dimension::ChannelTouchpoint { .. } => "channel_touchpoint",
            Dimension::Segment { .. } => "segment",
            Dimension::FailureType { .. } => "failure_type",
        }
    }

    pub fn is_failure_type(&self) -> bool {
        matches!(self, Dimension::FailureType { .. })
    }

    /// `channel=billing`, `channel_touchpoint=billing/invoice`, `segment=smb`,
    /// `failure_type=payment_declined`. In values, `%`, `/` and `@` are percent-encoded
    /// (`%25`, `%2F`, `%40`), so a key, and `key@width@start`, names exactly one dimension.
    pub fn key(&self) -> String {
        let mut s = String::new();
        self.write_key(&mut s);
        s
    }

    fn write_key(&self, buf: &mut String) {
        buf.push_str(self.kind());
        buf.push('=');
        let (first, second) = match self {
            Dimension::Channel { channel: v }
            | Dimension::Segment { segment: v }
            | Dimension::FailureType { failure_type: v } => (v, None),
            Dimension::ChannelTouchpoint {
                channel,
                touchpoint,
            } => (channel, Some(touchpoint)),
        };
        for (i, v) in std::iter::once(first).chain(second).enumerate() {
            if i > 0 {
                buf.push('/');
            }
            for c in v.as_ref().chars() {
                match c {
                    '%' => buf.push_str("%25"),
                    '/' => buf.push_str("%2F"),
                    '@' => buf.push_str("%40"),
                    c => buf.push(c),
                }
            }
        }
    }

    pub fn to_owned_dimension(&self) -> Dimension {
        let o = |v: &S| v.as_ref().to_owned();
        match self {
            Dimension::Channel { channel } => Dimension::Channel {
                channel: o(channel),
            },
            Dimension::ChannelTouchpoint {
                channel,
                touchpoint,
            } => Dimension::ChannelTouchpoint {
                channel: o(channel),
                touchpoint: o(touchpoint),
            },
            Dimension::Segment { segment } => Dimension::Segment {
                segment: o(segment),
            },
            Dimension::FailureType { failure_type } => Dimension::FailureType {
                failure_type: o(failure_type),
            },
        }
    }
}

/// The dimensions a fact contributes to: channel, channel × touch-point, and segment and
/// failure type when the fact has them.
fn dims_of<'a>(
    channel: &'a str,
    touchpoint: &'a str,
    segment: Option<&'a str>,
    failure_type: Option<&'a str>,
) -> impl Iterator<Item = Dimension<&'a str>> {
    [
        Some(Dimension::Channel { channel }),
        Some(Dimension::ChannelTouchpoint {
            channel,
            touchpoint,
        }),
        segment.map(|segment| Dimension::Segment { segment }),
        failure_type.map(|failure_type| Dimension::FailureType { failure_type }),
    ]
    .into_iter()
    .flatten()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeverityCounts {
    pub minor: u64,
    pub major: u64,
    pub critical: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutcomeCounts {
    pub resolved: u64,
    pub unresolved: u64,
    pub no_response: u64,
}

impl OutcomeCounts {
    pub fn received(&self) -> u64 {
        self.resolved
            .saturating_add(self.unresolved)
            .saturating_add(self.no_response)
    }
}

/// The aggregate of one (window, dimension) cell. Everything in it merges by addition, except
/// the two sketches, which merge by union.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Agg {
    pub events: u64,
    pub failures: u64,
    /// Distinct customers with an event here. A failure-type cell only sees failure events,
    /// so there it equals `customers_affected`.
    pub customers: Hll,
    /// Distinct customers with a failure event here.
    pub customers_affected: Hll,
    /// Tasks opened, by severity.
    pub severity: SeverityCounts,
    pub tasks_by_rule: BTreeMap<String, u64>,
    pub value_at_risk: f64,
    pub outcomes: OutcomeCounts,
    /// Outcomes flagged `double_deviation` plus `DoubleDeviation` facts: the host reports
    /// each deviation one way only.
    pub double_deviations: u64,
    /// Outcomes that came with a paradox measurement, and how many of those were at or above.
    pub paradox_measured: u64,
    pub paradox_count: u64,
    pub recovery_times: RecoveryHistogram,
}

impl Agg {
    pub fn merge(&mut self, o: &Agg) {
        self.events = self.events.saturating_add(o.events);
        self.failures = self.failures.saturating_add(o.failures);
        self.customers.merge(&o.customers);
        self.customers_affected.merge(&o.customers_affected);
        let (s, t) = (&mut self.severity, &o.severity);
        s.minor = s.minor.saturating_add(t.minor);
        s.major = s.major.saturating_add(t.major);
        s.critical = s.critical.saturating_add(t.critical);
        for (rule, n) in &o.tasks_by_rule {
            add_rule(&mut self.tasks_by_rule, rule, *n);
        }
        self.add_value(o.value_at_risk);
        let (a, b) = (&mut self.outcomes, &o.outcomes);
        a.resolved = a.resolved.saturating_add(b.resolved);
        a.unresolved = a.unresolved.saturating_add(b.unresolved);
        a.no_response = a.no_response.saturating_add(b.no_response);
        self.double_deviations = self.double_deviations.saturating_add(o.double_deviations);
        self.paradox_measured = self.paradox_measured.saturating_add(o.paradox_measured);
        self.paradox_count = self.paradox_count.saturating_add(o.paradox_count);
        self.recovery_times.merge(&o.recovery_times);
    }

    /// Non-finite values would serialize as JSON `null` and poison every later sum: skipped.
    fn add_value(&mut self, v: f64) {
        let sum = self.value_at_risk + v;
        if sum.is_finite() {
            self.value_at_risk = sum;
        }
    }

    /// Applies one fact to this cell; `dim_is_failure_type` because there `events` is the
    /// window's whole traffic, set at close rather than counted here.
    fn apply(&mut self, fact: &Fact, customer: u64, dim_is_failure_type: bool) {
        match *fact {
            Fact::Event { failure, .. } => {
                if !dim_is_failure_type {
                    self.events = self.events.saturating_add(1);
                }
                self.customers.insert_hash(customer);
                if failure {
                    self.failures = self.failures.saturating_add(1);
                    self.customers_affected.insert_hash(customer);
                }
            }
            Fact::TaskOpened {
                rule,
                severity,
                value_at_risk,
                ..
            } => {
                let slot = match severity {
                    Severity::Minor => &mut self.severity.minor,
                    Severity::Major => &mut self.severity.major,
                    Severity::Critical => &mut self.severity.critical,
                };
                *slot = slot.saturating_add(1);
                add_rule(&mut self.tasks_by_rule, rule, 1);
                self.add_value(value_at_risk);
            }
            Fact::Outcome {
                status,
                double_deviation,
                paradox,
                time_to_recovery,
                ..
            } => {
                let slot = match status {
                    RecoveryStatus::Resolved => &mut self.outcomes.resolved,
                    RecoveryStatus::Unresolved => &mut self.outcomes.unresolved,
                    RecoveryStatus::NoResponse => &mut self.outcomes.no_response,
                };
                *slot = slot.saturating_add(1);
                if double_deviation {
                    self.double_deviations = self.double_deviations.saturating_add(1);
                }
                if let Some(above) = paradox {
                    self.paradox_measured = self.paradox_measured.saturating_add(1);
                    self.paradox_count = self.paradox_count.saturating_add(u64::from(above));
                }
                if let Some(d) = time_to_recovery {
                    self.recovery_times.record(d);
                }
            }
            Fact::DoubleDeviation { .. } => {
                self.double_deviations = self.double_deviations.saturating_add(1);
            }
        }
    }
}

fn add_rule(map: &mut BTreeMap<String, u64>, rule: &str, n: u64) {
    match map.get_mut(rule) {
        Some(c) => *c = c.saturating_add(n),
        None => {
            map.insert(rule.to_owned(), n);
        }
    }
}

/// Whether [`PartitionTrends::record`] counted a fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Counted in the window of every configured width.
    Counted,
    /// Late for some widths (their window had closed) but counted in the wider ones whose
    /// window is still open; the host should count it as late.
    PartlyCounted,
    /// Every window it belongs to has already closed (or its time is unrepresentable): not
    /// counted anywhere.
    WindowClosed,
}

/// A record on `amends.trend-partials`, JSON with a `kind` tag.
///
/// Routing: a `partial` is keyed by [`PartialRecord::key`] (the dimension key), so one merger
/// owns each dimension. A `closed` marker must reach every merger: the host sends it to each
/// partition of the partials topic explicitly, after that close's partials, from the same
/// producer (per-partition order is what guarantees a merger sees a source's partials for a
/// window before the marker closing it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartialRecord {
    /// What `source` aggregated for one dimension in window `[start_ms, start_ms + width_ms)`.
    Partial {
        source: String,
        width_ms: i64,
        start_ms: i64,
        dimension: Dimension,
        agg: Box<Agg>,
    },
    /// Every window of `width_ms` with `closed_from_ms <= start < closed_before_ms` is final
    /// for `source` (no `closed_from_ms`: every window before `closed_before_ms`): exactly the
    /// windows of the close call that sent it, whose partials went out before it. `totals`
    /// lists the source's event count for each window closed by this marker that had events
    /// (denominator of failure-type rates).
    Closed {
        source: String,
        width_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closed_from_ms: Option<i64>,
        closed_before_ms: i64,
        #[serde(default)]
        totals: Vec<WindowTotal>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowTotal {
    pub start_ms: i64,
    pub events: u64,
}

impl PartialRecord {
    /// The Kafka key: the dimension key for a partial; the source for a marker (which the
    /// host broadcasts to every partition rather than routing by key).
    pub fn key(&self) -> String {
        match self {
            PartialRecord::Partial { dimension, .. } => dimension.key(),
            PartialRecord::Closed { source, .. } => source.clone(),
        }
    }
}

/// Start of the window of width `w` holding `t`; `None` for a non-positive width or when the
/// window's bounds do not fit in an i64.
pub fn window_start(t: i64, w: i64) -> Option<i64> {
    if w <= 0 {
        return None;
    }
    let start = t.checked_sub(t.rem_euclid(w))?;
    start.checked_add(w).map(|_| start)
}

/// The windows of one partition (one source), for every configured width.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "TrendsWire")]
pub struct PartitionTrends {
    widths: Vec<WidthState>,
    lateness_ms: i64,
    /// Dimension ids of the cells in the open windows (rebuilt on restore).
    #[serde(skip)]
    keys: DimKeys,
}

/// The serialized form of [`PartitionTrends`]: a restored state has its dimensions indexed.
#[derive(Deserialize)]
struct TrendsWire {
    widths: Vec<WidthState>,
    lateness_ms: i64,
}

impl From<TrendsWire> for PartitionTrends {
    fn from(w: TrendsWire) -> PartitionTrends {
        let mut p = PartitionTrends {
            widths: w.widths,
            lateness_ms: w.lateness_ms,
            keys: DimKeys::default(),
        };
        p.reindex();
        p
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct WidthState {
    width_ms: i64,
    /// Every window with a start below this has been closed (and reported) by this source.
    closed_before_ms: Option<i64>,
    open: BTreeMap<i64, OpenWindow>,
}

/// One window's cells. A cell is named by its dimension key, as in the serialized form (a map
/// by key); in memory it is also found by the key's id in [`DimKeys`], so that recording a
/// fact neither builds the key string nor compares it.
#[derive(Clone, Debug, Default)]
struct OpenWindow {
    total_events: u64,
    /// In the order opened; sorted by key when the window closes.
    cells: Vec<Cell>,
    /// By dimension id: the position of its cell in `cells` plus one, or 0 for none.
    slots: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Cell {
    key: Arc<str>,
    id: u32,
    dim: DimAgg,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DimAgg {
    dimension: Dimension,
    agg: Agg,
}

impl OpenWindow {
    /// The cell of dimension `id`, opened (keyed `key`, for `d`) if the window has none.
    fn cell(&mut self, id: u32, key: impl FnOnce() -> Arc<str>, d: &Dimension<&str>) -> &mut Agg {
        let i = id as usize;
        let pos = match self.slots.get(i) {
            Some(&pos) if pos != 0 => pos as usize - 1,
            _ => {
                self.cells.push(Cell {
                    key: key(),
                    id,
                    dim: DimAgg {
                        dimension: d.to_owned_dimension(),
                        agg: Agg::default(),
                    },
                });
                self.set_slot(i, self.cells.len());
                self.cells.len() - 1
            }
        };
        &mut self.cells[pos].dim.agg
    }

    fn set_slot(&mut self, id: usize, pos_plus_one: usize) {
        if self.slots.len() <= id {
            self.slots.resize(id + 1, 0);
        }
        self.slots[id] = pos_plus_one as u32;
    }

    /// Gives every cell its id in `keys` (after a restore, or when `keys` was rebuilt).
    fn index(&mut self, keys: &mut DimKeys) {
        self.slots.clear();
        for pos in 0..self.cells.len() {
            let id = keys.id_of_key(&self.cells[pos].key);
            self.cells[pos].id = id;
            self.set_slot(id as usize, pos + 1);
        }
    }
}

// Serialized as before the cells had ids: `{"total_events":…,"dims":{key: cell,…}}`, by key.
impl Serialize for OpenWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Dims<'a>(&'a [Cell]);
        impl Serialize for Dims<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut cells: Vec<&Cell> = self.0.iter().collect();
                cells.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                s.collect_map(cells.into_iter().map(|c| (&*c.key, &c.dim)))
            }
        }
        let mut st = s.serialize_struct("OpenWindow", 2)?;
        st.serialize_field("total_events", &self.total_events)?;
        st.serialize_field("dims", &Dims(&self.cells))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for OpenWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OpenWindow, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "OpenWindow")]
        struct Wire {
            total_events: u64,
            dims: BTreeMap<String, DimAgg>,
        }
        let w = Wire::deserialize(d)?;
        // Ids are given by the owning `PartitionTrends` (`reindex`).
        let cells = w
            .dims
            .into_iter()
            .map(|(key, dim)| Cell {
                key: Arc::from(key),
                id: u32::MAX,
                dim,
            })
            .collect();
        Ok(OpenWindow {
            total_events: w.total_events,
            cells,
            slots: Vec::new(),
        })
    }
}

/// Above this many dimension ids, the ids are rebuilt from the open windows when windows
/// close, so dimensions that only closed windows had are forgotten (dimension values come
/// from producers: touch-points and failure types are open-ended).
const MAX_DIM_IDS: usize = 4096;

/// Small ids for the dimension keys of the open windows. An id stands for one key string,
/// which is what names a cell (as the map key did), and it is found from a fact's borrowed
/// dimension with one hash lookup, without building the key.
#[derive(Clone, Debug, Default)]
struct DimKeys {
    by_dim: HashMap<OwnedDim, u32, FastState>,
    by_key: HashMap<Arc<str>, u32, FastState>,
    /// By id.
    keys: Vec<Arc<str>>,
    /// Reused to build a key for a dimension not seen yet.
    buf: String,
}

impl DimKeys {
    /// The id of `d`'s key.
    #[inline]
    fn id(&mut self, d: &Dimension<&str>) -> u32 {
        if let Some(&id) = self.by_dim.get(d as &dyn DimView) {
            return id;
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        d.write_key(&mut buf);
        let id = self.id_of_key(&buf);
        self.buf = buf;
        self.by_dim.insert(OwnedDim(d.to_owned_dimension()), id);
        id
    }

    fn id_of_key(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.by_key.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        let key: Arc<str> = Arc::from(key);
        self.keys.push(key.clone());
        self.by_key.insert(key, id);
        id
    }

    fn key(&self, id: u32) -> Arc<str> {
        self.keys[id as usize].clone()
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// A dimension looked up without owning it: `Dimension<String>` keys the map, a fact's
/// `Dimension<&str>` finds its entry (both hash and compare through the borrowed form).
trait DimView {
    fn view(&self) -> Dimension<&str>;
}

impl<S: AsRef<str>> DimView for Dimension<S> {
    fn view(&self) -> Dimension<&str> {
        match self {
            Dimension::Channel { channel } => Dimension::Channel {
                channel: channel.as_ref(),
            },
            Dimension::ChannelTouchpoint {
                channel,
                touchpoint,
            } => Dimension::ChannelTouchpoint {
                channel: channel.as_ref(),
                touchpoint: touchpoint.as_ref(),
            },
            Dimension::Segment { segment } => Dimension::Segment {
                segment: segment.as_ref(),
            },
            Dimension::FailureType { failure_type } => Dimension::FailureType {
                failure_type: failure_type.as_ref(),
            },
        }
    }
}

impl Hash for dyn DimView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.view().hash(h);
    }
}

impl PartialEq for dyn DimView + '_ {
    fn eq(&self, o: &Self) -> bool {
        self.view() == o.view()
    }
}

impl Eq for dyn DimView + '_ {}

/// The owned key of [`DimKeys::by_dim`]: hashes and compares as its [`DimView`].
#[derive(Clone, Debug)]
struct OwnedDim(Dimension);

impl DimView for OwnedDim {
    fn view(&self) -> Dimension<&str> {
        self.0.view()
    }
}

impl Hash for OwnedDim {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.view().hash(h);
    }
}

impl PartialEq for OwnedDim {
    fn eq(&self, o: &Self) -> bool {
        self.view() == o.view()
    }
}

impl Eq for OwnedDim {}

impl<'a> Borrow<dyn DimView + 'a> for OwnedDim {
    fn borrow(&self) -> &(dyn DimView + 'a) {
        self
    }
}

impl PartitionTrends {
    /// Non-positive widths are ignored, duplicates collapse; negative lateness counts as zero.
    pub fn new(widths: Vec<Millis>, allowed_lateness: Millis) -> PartitionTrends {
        let mut ws: Vec<i64> = widths.into_iter().map(|w| w.0).filter(|&w| w > 0).collect();
        ws.sort_unstable();
        ws.dedup();
        PartitionTrends {
            widths: ws
                .into_iter()
                .map(|width_ms| WidthState {
                    width_ms,
                    closed_before_ms: None,
                    open: BTreeMap::new(),
                })
                .collect(),
            lateness_ms: allowed_lateness.0.max(0),
            keys: DimKeys::default(),
        }
    }

    /// Rebuilds the dimension ids from the cells of the open windows.
    fn reindex(&mut self) {
        self.keys = DimKeys::default();
        for w in &mut self.widths {
            for win in w.open.values_mut() {
                win.index(&mut self.keys);
            }
        }
    }

    /// Adds a fact to its window of every width, unless that window is already closed.
    pub fn record(&mut self, fact: &Fact) -> Recorded {
        let at = fact.at().0;
        // Hashed once, fed to every window and dimension the event counts in.
        let customer = match fact {
            Fact::Event { customer_id, .. } => hash_id(customer_id),
            _ => 0,
        };
        let (mut counted, mut late) = (0usize, 0usize);
        // The fact's dimensions and their ids, found once for every width.
        let mut dims: Option<Dims> = None;
        for w in &mut self.widths {
            let Some(start) = window_start(at, w.width_ms) else {
                late += 1;
                continue;
            };
            if w.closed_before_ms.is_some_and(|cb| start < cb) {
                late += 1;
                continue;
            }
            let win = w.open.entry(start).or_default();
            let dims = dims.get_or_insert_with(|| Dims::of(fact, &mut self.keys));
            apply_to_window(win, fact, customer, dims, &self.keys);
            counted += 1;
        }
        match (counted, late) {
            (_, 0) => Recorded::Counted,
            (0, _) => Recorded::WindowClosed,
            _ => Recorded::PartlyCounted,
        }
    }

    /// Closes every window with `end + allowed_lateness <= watermark`: appends its partials
    /// (by width, start, dimension key) and then, for each width whose closed boundary
    /// advanced, one `Closed` marker. A watermark that does not advance emits nothing.
    pub fn close_until(
        &mut self,
        watermark: EventTime,
        source: &str,
        out: &mut Vec<PartialRecord>,
    ) {
        let mut markers = Vec::new();
        for w in &mut self.widths {
            // end + L <= wm  <=>  start + w <= wm - L  <=>  start < align_down(wm - L).
            let Some(closed_before) =
                window_start(watermark.0.saturating_sub(self.lateness_ms), w.width_ms)
            else {
                continue;
            };
            if w.closed_before_ms.is_some_and(|prev| closed_before <= prev) {
                continue;
            }
            let still_open = w.open.split_off(&closed_before);
            let closing = std::mem::replace(&mut w.open, still_open);
            let mut totals = Vec::new();
            for (start_ms, win) in closing {
                if win.total_events > 0 {
                    totals.push(WindowTotal {
                        start_ms,
                        events: win.total_events,
                    });
                }
                let mut cells = win.cells;
                // In key order, as the map by key gave them.
                cells.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                for Cell {
                    dim: DimAgg { dimension, mut agg },
                    ..
                } in cells
                {
                    if dimension.is_failure_type() {
                        agg.events = win.total_events;
                    }
                    out.push(PartialRecord::Partial {
                        source: source.to_owned(),
                        width_ms: w.width_ms,
                        start_ms,
                        dimension,
                        agg: Box::new(agg),
                    });
                }
            }
            let closed_from = w.closed_before_ms.replace(closed_before);
            markers.push(PartialRecord::Closed {
                source: source.to_owned(),
                width_ms: w.width_ms,
                closed_from_ms: closed_from,
                closed_before_ms: closed_before,
                totals,
            });
        }
        out.extend(markers);
        if self.keys.len() >= MAX_DIM_IDS {
            self.reindex();
        }
    }

    /// Windows currently open, over all widths (a gauge for the host).
    pub fn open_windows(&self) -> usize {
        self.widths.iter().map(|w| w.open.len()).sum()
    }

    /// The whole state as JSON, for persistence.
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Rebuilds the state saved by [`PartitionTrends::snapshot`].
    pub fn restore(bytes: &[u8]) -> Result<PartitionTrends, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A fact's dimensions (at most four) with their ids.
struct Dims<'a> {
    dims: [(Dimension<&'a str>, u32); 4],
    len: usize,
}

impl<'a> Dims<'a> {
    fn of(fact: &Fact<'a>, keys: &mut DimKeys) -> Dims<'a> {
        let (channel, touchpoint, segment, failure_type) = match *fact {
            Fact::Event {
                channel,
                touchpoint,
                segment,
                failure,
                event_type,
                ..
            } => (channel, touchpoint, segment, failure.then_some(event_type)),
            Fact::TaskOpened {
                channel,
                touchpoint,
                segment,
                failure_type,
                ..
            }
            | Fact::Outcome {
                channel,
                touchpoint,
                segment,
                failure_type,
                ..
            }
            | Fact::DoubleDeviation {
                channel,
                touchpoint,
                segment,
                failure_type,
                ..
            } => (channel, touchpoint, segment, failure_type),
        };
        let mut out = Dims {
            dims: std::array::from_fn(|_| (Dimension::Channel { channel }, 0)),
            len: 0,
        };
        for d in dims_of(channel, touchpoint, segment, failure_type) {
            let id = keys.id(&d);
            out.dims[out.len] = (d, id);
            out.len += 1;
        }
        out
    }
}

fn apply_to_window(win: &mut OpenWindow, fact: &Fact, customer: u64, dims: &Dims, keys: &DimKeys) {
    if let Fact::Event { .. } = fact {
        win.total_events = win.total_events.saturating_add(1);
    }
    for (d, id) in &dims.dims[..dims.len] {
        let is_ft = d.is_failure_type();
        win.cell(*id, || keys.key(*id), d)
            .apply(fact, customer, is_ft);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn event<'a>(at: i64, customer_id: &'a str, failure: bool, event_type: &'a str) -> Fact<'a> {
        Fact::Event {
            at: EventTime(at),
            customer_id,
            channel: "billing",
            touchpoint: "invoice",
            segment: Some("smb"),
            failure,
            event_type,
        }
    }

    fn five_minutes() -> PartitionTrends {
        PartitionTrends::new(vec![Millis(5 * MIN)], Millis(MIN))
    }

    /// (width, start, dimension key) → agg of the partials in `out`.
    fn partials(out: &[PartialRecord]) -> BTreeMap<(i64, i64, String), Agg> {
        let mut m = BTreeMap::new();
        for r in out {
            if let PartialRecord::Partial {
                width_ms,
                start_ms,
                dimension,
                agg,
                ..
            } = r
            {
                m.insert((*width_ms, *start_ms, dimension.key()), (**agg).clone());
            }
        }
        m
    }

    fn markers(out: &[PartialRecord]) -> Vec<(i64, i64, Vec<WindowTotal>)> {
        out.iter()
            .filter_map(|r| match r {
                PartialRecord::Closed {
                    width_ms,
                    closed_before_ms,
                    totals,
                    ..
                } => Some((*width_ms, *closed_before_ms, totals.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn windows_align_to_the_epoch_and_a_boundary_opens_the_next_window() {
        assert_eq!(window_start(5 * MIN, 5 * MIN), Some(5 * MIN));
        assert_eq!(window_start(5 * MIN - 1, 5 * MIN), Some(0));
        assert_eq!(window_start(-1, 5 * MIN), Some(-5 * MIN));
        assert_eq!(window_start(7, 0), None);
        assert_eq!(
            window_start(i64::MAX, 5 * MIN),
            None,
            "its end would overflow"
        );

        let mut p = five_minutes();
        assert_eq!(
            p.record(&event(5 * MIN - 1, "a", false, "view")),
            Recorded::Counted
        );
        assert_eq!(
            p.record(&event(5 * MIN, "b", false, "view")),
            Recorded::Counted
        );
        assert_eq!(p.open_windows(), 2);
        let mut out = Vec::new();
        p.close_until(EventTime(20 * MIN), "p0", &mut out);
        let parts = partials(&out);
        assert_eq!(parts[&(5 * MIN, 0, "channel=billing".into())].events, 1);
        assert_eq!(
            parts[&(5 * MIN, 5 * MIN, "channel=billing".into())].events,
            1
        );
    }

    #[test]
    fn a_window_closes_when_the_watermark_reaches_end_plus_lateness() {
        let mut p = five_minutes();
        p.record(&event(MIN, "a", false, "view"));
        let mut out = Vec::new();
        // end (5 min) + lateness (1 min) = 6 min: one millisecond short keeps it open.
        p.close_until(EventTime(6 * MIN - 1), "p0", &mut out);
        assert!(partials(&out).is_empty());
        assert_eq!(markers(&out), vec![(5 * MIN, 0, vec![])]);
        assert_eq!(p.open_windows(), 1);
        out.clear();
        p.close_until(EventTime(6 * MIN), "p0", &mut out);
        assert_eq!(
            partials(&out).len(),
            3,
            "channel, channel_touchpoint, segment"
        );
        let total = WindowTotal {
            start_ms: 0,
            events: 1,
        };
        assert_eq!(markers(&out), vec![(5 * MIN, 5 * MIN, vec![total])]);
        assert!(
            matches!(out.last(), Some(PartialRecord::Closed { .. })),
            "marker last"
        );
        assert_eq!(p.open_windows(), 0);
        out.clear();
        p.close_until(EventTime(6 * MIN), "p0", &mut out);
        assert!(
            out.is_empty(),
            "a watermark that does not advance emits nothing"
        );
    }

    #[test]
    fn late_facts_are_rejected_and_do_not_reopen_a_window() {
        let mut p = PartitionTrends::new(vec![Millis(5 * MIN), Millis(60 * MIN)], Millis(MIN));
        p.record(&event(MIN, "a", false, "view"));
        let mut out = Vec::new();
        p.close_until(EventTime(6 * MIN), "p0", &mut out);
        // The 5-minute window is closed, the hour is still open.
        assert_eq!(
            p.record(&event(2 * MIN, "b", false, "view")),
            Recorded::PartlyCounted
        );
        p.close_until(EventTime(61 * MIN), "p0", &mut out);
        assert_eq!(
            p.record(&event(3 * MIN, "c", false, "view")),
            Recorded::WindowClosed
        );
        assert_eq!(p.open_windows(), 0);
        let parts = partials(&out);
        assert_eq!(parts[&(5 * MIN, 0, "channel=billing".into())].events, 1);
        assert_eq!(parts[&(60 * MIN, 0, "channel=billing".into())].events, 2);
        out.clear();
        p.close_until(EventTime(200 * MIN), "p0", &mut out);
        assert!(
            partials(&out).is_empty(),
            "the rejected fact was not kept anywhere"
        );
        assert_eq!(
            p.record(&event(i64::MAX, "d", false, "view")),
            Recorded::WindowClosed
        );
    }

    #[test]
    fn an_idle_partition_closes_with_one_marker_per_width_however_far_the_watermark_jumps() {
        let mut p = PartitionTrends::new(vec![Millis(60 * MIN), Millis(5 * MIN)], Millis(0));
        let mut out = Vec::new();
        p.close_until(EventTime(10 * 24 * 60 * MIN + 7 * MIN), "p3", &mut out);
        assert_eq!(
            markers(&out),
            vec![
                (5 * MIN, 10 * 24 * 60 * MIN + 5 * MIN, vec![]),
                (60 * MIN, 10 * 24 * 60 * MIN, vec![])
            ]
        );
        assert_eq!(out.len(), 2, "no partials for empty windows");
        for extreme in [i64::MIN, i64::MAX] {
            p.close_until(EventTime(extreme), "p3", &mut out);
        }
    }

    #[test]
    fn aggregates_count_what_each_dimension_saw() {
        let mut p = five_minutes();
        p.record(&event(0, "a", false, "view"));
        p.record(&event(1, "a", true, "payment_declined"));
        p.record(&event(2, "b", true, "payment_declined"));
        p.record(&event(3, "c", true, "timeout"));
        p.record(&Fact::Event {
            at: EventTime(4),
            customer_id: "d",
            channel: "app",
            touchpoint: "login",
            segment: None,
            failure: false,
            event_type: "login",
        });
        let task = |rule, severity, value_at_risk| Fact::TaskOpened {
            at: EventTime(5),
            channel: "billing",
            touchpoint: "invoice",
            segment: None,
            failure_type: Some("payment_declined"),
            rule,
            severity,
            value_at_risk,
        };
        p.record(&task("repeat", Severity::Major, 120.5));
        p.record(&task("repeat", Severity::Critical, 10.0));
        p.record(&task("first", Severity::Minor, f64::NAN));
        p.record(&Fact::Outcome {
            at: EventTime(6),
            channel: "billing",
            touchpoint: "invoice",
            segment: Some("smb"),
            failure_type: None,
            status: RecoveryStatus::Resolved,
            double_deviation: true,
            paradox: Some(true),
            time_to_recovery: Some(Millis(90_000)),
        });
        p.record(&Fact::DoubleDeviation {
            at: EventTime(7),
            channel: "billing",
            touchpoint: "invoice",
            segment: None,
            failure_type: Some("timeout"),
        });
        let mut out = Vec::new();
        p.close_until(EventTime(6 * MIN), "p0", &mut out);
        let parts = partials(&out);
        let get = |k: &str| &parts[&(5 * MIN, 0, k.to_string())];

        let billing = get("channel=billing");
        assert_eq!((billing.events, billing.failures), (4, 3));
        assert_eq!(
            (
                billing.customers.estimate(),
                billing.customers_affected.estimate()
            ),
            (3, 3)
        );
        assert_eq!(
            billing.severity,
            SeverityCounts {
                minor: 1,
                major: 1,
                critical: 1
            }
        );
        assert_eq!(
            billing.tasks_by_rule,
            BTreeMap::from([("first".into(), 1), ("repeat".into(), 2)])
        );
        assert_eq!(billing.value_at_risk, 130.5, "NaN skipped");
        assert_eq!(
            billing.outcomes,
            OutcomeCounts {
                resolved: 1,
                unresolved: 0,
                no_response: 0
            }
        );
        assert_eq!(
            billing.double_deviations, 2,
            "the outcome's flag and the fact"
        );
        assert_eq!((billing.paradox_measured, billing.paradox_count), (1, 1));
        assert_eq!(billing.recovery_times.count(), 1);
        assert_eq!(get("channel_touchpoint=billing/invoice"), billing);

        let smb = get("segment=smb");
        assert_eq!(
            (smb.events, smb.failures, smb.severity.major),
            (4, 3, 0),
            "tasks had no segment"
        );
        assert_eq!(smb.outcomes.resolved, 1);

        // Failure types: failures of the type over ALL the window's traffic (5 events).
        let declined = get("failure_type=payment_declined");
        assert_eq!((declined.events, declined.failures), (5, 2));
        assert_eq!(declined.customers.estimate(), 2);
        assert_eq!(declined.severity.critical, 1);
        let timeout = get("failure_type=timeout");
        assert_eq!(
            (timeout.events, timeout.failures, timeout.double_deviations),
            (5, 1, 1)
        );

        let app = get("channel=app");
        assert_eq!(
            (app.events, app.failures, app.customers_affected.estimate()),
            (1, 0, 0)
        );
        assert!(
            !parts.keys().any(|(_, _, k)| k == "failure_type=view"),
            "not a failure"
        );
        assert_eq!(
            markers(&out),
            vec![(
                5 * MIN,
                5 * MIN,
                vec![WindowTotal {
                    start_ms: 0,
                    events: 5
                }]
            )]
        );
    }

    #[test]
    fn dimension_keys_are_stable_and_unambiguous() {
        let ct = Dimension::ChannelTouchpoint {
            channel: "billing".to_string(),
            touchpoint: "invoice".into(),
        };
        assert_eq!(ct.key(), "channel_touchpoint=billing/invoice");
        assert_eq!(
            serde_json::to_value(&ct).unwrap(),
            serde_json::json!({"kind": "channel_touchpoint", "channel": "billing", "touchpoint": "invoice"})
        );
        let odd = Dimension::ChannelTouchpoint {
            channel: "a/b".to_string(),
            touchpoint: "c@d%".into(),
        };
        assert_eq!(odd.key(), "channel_touchpoint=a%2Fb/c%40d%25");
        let other = Dimension::ChannelTouchpoint {
            channel: "a".to_string(),
            touchpoint: "b/c@d%".into(),
        };
        assert_ne!(odd.key(), other.key());
        assert_eq!(
            Dimension::Segment {
                segment: "smb".to_string()
            }
            .key(),
            "segment=smb"
        );
        let ft = Dimension::FailureType {
            failure_type: "payment_declined",
        };
        assert_eq!(ft.key(), "failure_type=payment_declined");
        assert_eq!(ft.to_owned_dimension().key(), ft.key());
        assert_eq!(Dimension::Channel { channel: "x=y" }.key(), "channel=x=y");
    }

    #[test]
    fn partial_records_round_trip_through_json_with_a_kind_tag() {
        let mut p = five_minutes();
        for i in 0..700 {
            // Enough customers for a dense sketch in the channel cells.
            p.record(&event(i, &format!("c{i}"), i % 7 == 0, "timeout"));
        }
        p.record(&Fact::Outcome {
            at: EventTime(1),
            channel: "billing",
            touchpoint: "invoice",
            segment: None,
            failure_type: Some("timeout"),
            status: RecoveryStatus::NoResponse,
            double_deviation: false,
            paradox: Some(false),
            time_to_recovery: Some(Millis(3_600_000)),
        });
        let mut out = Vec::new();
        p.close_until(EventTime(6 * MIN), "amends.touchpoints/0", &mut out);
        assert_eq!(out.len(), 5);
        for rec in &out {
            let json = serde_json::to_string(rec).unwrap();
            let back: PartialRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, rec, "{json}");
        }
        let json = serde_json::to_string(&out).unwrap();
        assert!(
            json.contains(r#""dense":""#) && json.contains(r#""sparse":[["#),
            "both forms"
        );
        let first = serde_json::to_value(&out[0]).unwrap();
        assert_eq!(first["kind"], "partial");
        assert_eq!(first["dimension"]["kind"], "channel");
        assert_eq!(out[0].key(), "channel=billing");
        let last = serde_json::to_value(&out[4]).unwrap();
        assert_eq!(last["kind"], "closed");
        assert_eq!(last["closed_before_ms"], 5 * MIN);
        assert_eq!(out[4].key(), "amends.touchpoints/0");
    }

    #[test]
    fn state_survives_snapshot_and_restore() {
        let mut p = PartitionTrends::new(vec![Millis(5 * MIN), Millis(60 * MIN)], Millis(MIN));
        p.record(&event(MIN, "a", true, "timeout"));
        let mut out = Vec::new();
        p.close_until(EventTime(6 * MIN), "p0", &mut out);
        p.record(&event(7 * MIN, "b", false, "view"));
        let mut restored = PartitionTrends::restore(&p.snapshot().unwrap()).unwrap();
        assert_eq!(restored.open_windows(), p.open_windows());
        assert_eq!(
            restored.record(&event(2 * MIN, "c", false, "view")),
            Recorded::PartlyCounted
        );
        assert_eq!(
            p.record(&event(2 * MIN, "c", false, "view")),
            Recorded::PartlyCounted
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        p.close_until(EventTime(120 * MIN), "p0", &mut a);
        restored.close_until(EventTime(120 * MIN), "p0", &mut b);
        assert_eq!(a, b);
        assert!(PartitionTrends::restore(b"{not json").is_err());
    }

    #[test]
    fn bad_configuration_does_not_panic() {
        let mut p = PartitionTrends::new(
            vec![Millis(0), Millis(-5), Millis(MIN), Millis(MIN)],
            Millis(-3),
        );
        assert_eq!(
            p.record(&event(i64::MIN, "a", false, "v")),
            Recorded::WindowClosed
        );
        assert_eq!(p.record(&event(0, "a", false, "v")), Recorded::Counted);
        let mut out = Vec::new();
        p.close_until(EventTime(MIN), "p", &mut out);
        assert_eq!(
            markers(&out).len(),
            1,
            "one width after dropping invalid and duplicate ones"
        );
        // A restored state with a nonsensical width records nothing and closes nothing.
        let json =
            r#"{"widths":[{"width_ms":0,"closed_before_ms":null,"open":{}}],"lateness_ms":0}"#;
        let mut weird = PartitionTrends::restore(json.as_bytes()).unwrap();
        assert_eq!(
            weird.record(&event(0, "a", false, "v")),
            Recorded::WindowClosed
        );
        weird.close_until(EventTime(i64::MAX), "p", &mut out);
    }

    /// A fact on `channel`/`touchpoint`, no segment, at `at`.
    fn on<'a>(at: i64, channel: &'a str, touchpoint: &'a str) -> Fact<'a> {
        Fact::Event {
            at: EventTime(at),
            customer_id: "a",
            channel,
            touchpoint,
            segment: None,
            failure: false,
            event_type: "view",
        }
    }

    #[test]
    fn snapshots_keep_cells_by_key_and_a_restored_window_reuses_them() {
        let mut p = five_minutes();
        // Opened out of key order, and a key needing percent-encoding.
        p.record(&on(1, "web", "z"));
        p.record(&on(2, "app", "a/b"));
        let json: serde_json::Value = serde_json::from_slice(&p.snapshot().unwrap()).unwrap();
        let dims = &json["widths"][0]["open"]["0"]["dims"];
        let keys: Vec<&String> = dims.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "channel=app",
                "channel=web",
                "channel_touchpoint=app/a%2Fb",
                "channel_touchpoint=web/z"
            ]
        );
        assert_eq!(json["widths"][0]["open"]["0"]["total_events"], 2);
        assert_eq!(dims["channel=web"]["dimension"]["channel"], "web");

        let mut restored = PartitionTrends::restore(&p.snapshot().unwrap()).unwrap();
        for q in [&mut p, &mut restored] {
            q.record(&on(3, "app", "a/b"));
            q.record(&on(4, "web", "y"));
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        p.close_until(EventTime(6 * MIN), "p0", &mut a);
        restored.close_until(EventTime(6 * MIN), "p0", &mut b);
        assert_eq!(a, b);
        let parts = partials(&a);
        assert_eq!(parts.len(), 5, "one cell per dimension");
        assert_eq!(parts[&(5 * MIN, 0, "channel=app".into())].events, 2);
        assert_eq!(parts[&(5 * MIN, 0, "channel=web".into())].events, 2);
        let order: Vec<String> = a.iter().map(PartialRecord::key).collect();
        let mut sorted = order[..5].to_vec();
        sorted.sort();
        assert_eq!(order[..5], sorted[..], "partials by key");
    }

    #[test]
    fn dimension_ids_are_rebuilt_from_the_open_windows() {
        let mut p = five_minutes();
        for i in 0..MAX_DIM_IDS {
            p.record(&on(0, "web", &format!("t{i}")));
        }
        // One dimension lives on in an open window, and is recorded into again after the
        // ids are rebuilt.
        p.record(&on(10 * MIN, "web", "kept"));
        assert!(p.keys.len() > MAX_DIM_IDS);
        let mut out = Vec::new();
        p.close_until(EventTime(6 * MIN), "p0", &mut out);
        assert_eq!(partials(&out).len(), MAX_DIM_IDS + 1);
        assert_eq!(
            p.keys.len(),
            2,
            "channel=web and channel_touchpoint=web/kept"
        );
        p.record(&on(10 * MIN + 1, "web", "kept"));
        p.record(&on(10 * MIN + 2, "web", "new"));
        out.clear();
        p.close_until(EventTime(16 * MIN), "p0", &mut out);
        let parts = partials(&out);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[&(5 * MIN, 10 * MIN, "channel=web".into())].events, 3);
        let kept = "channel_touchpoint=web/kept".to_string();
        assert_eq!(parts[&(5 * MIN, 10 * MIN, kept)].events, 2);
    }
}

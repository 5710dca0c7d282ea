//! Failure-rate baselines for trend alerts: the rate a series (one dimension at one window
//! width) usually has, how much it usually varies, and how unlikely an observed count is.
//!
//! - **Recent** (`baseline_kind` `recent`): the last [`BaselineConfig::recent_windows`]
//!   windows with at least `min_events_for_baseline` events. Center = median of their rates,
//!   spread = MAD × 1.4826 (median absolute deviation, scaled to estimate σ). Available from
//!   `min_history` windows. The caller decides which windows may enter
//!   ([`SeriesBaseline::push_recent`]): the alerting core keeps breaching and firing windows
//!   out, so a spike never becomes its own baseline.
//! - **Seasonal** (hour of the week, `baseline_kind` `seasonal`): per hour of the week, that
//!   hour's rate in each of the last `seasonal_weeks` weeks. All windows starting in the hour
//!   are summed (events, failures) into one weekly rate, so twelve 5 min windows weigh as one
//!   hour and a quiet window counts less than a busy one. Center = the *lower* median of the
//!   weekly rates (with 2 weeks the smaller, with 4 the second smallest): an hour counts as
//!   usually high only if it was high in more than half the weeks seen, so one incident last
//!   Monday at 10:00 does not excuse the same rate this Monday. Spread = the lower median of
//!   the absolute deviations from that center × 1.4826, for the same reason: an incident week
//!   must not widen the tolerance either (with 2 weeks it is 0, and the recent spread rules).
//!   Available once `seasonal_min_weeks` (2) weeks of that hour exist within the last
//!   `seasonal_weeks`. Every window with enough volume feeds it, breaching or not: a weekly
//!   pattern breaches the first time it is seen and could never be learnt otherwise; the lower
//!   median is what keeps a single incident out.
//! - **Daily** (hour of the day, `baseline_kind` `daily`): the same per hour of the day (UTC,
//!   0–23) over the last `daily_days` days: each day's hour summed into one rate, center = the
//!   lower median over the days, spread = the lower median of the deviations × 1.4826, for the
//!   same reasons. Available for an hour once `daily_min_days` (1) earlier days have it with at
//!   least `min_events_for_baseline` events summed. It exists because the seasonal one needs
//!   two weeks while time of day is what moves touch-point failure rates most (none at night,
//!   a few percent while deliveries run). It too learns every window with enough volume,
//!   breaching or not, or a daily pattern would breach the first time and never be learnt; but
//!   only completed hours of earlier days count, so the hour in progress is never its own
//!   baseline. Limits: with one day known, that day's rate is the expectation, incident or not
//!   (from two days on the lower median keeps a single bad day out); and it cannot tell a
//!   Saturday from a Monday, so an hour whose rate depends on the weekday follows most of the
//!   last days until the seasonal baseline takes over.
//! - **Combined** ([`SeriesBaseline::baseline`]): expected = the seasonal center when
//!   available (the hour of the week knows the time of day and the weekday), else the daily
//!   center when available (it knows the time of day), else the recent median, but only with
//!   `require_seasonal = false`. Spread = the largest of the spreads available: the seasonal
//!   and daily ones, between hourly rates, miss the window-to-window noise the recent one sees,
//!   and a larger spread only makes a page less likely.
//! - **Warm-up** ([`BaselineConfig::require_seasonal`], default on): until a seasonal or daily
//!   baseline exists for the window's hour there is no baseline at all, and without one nothing
//!   breaches. The recent baseline alone mistakes the daily rhythm for breaks: after a night
//!   without failures its median is 0, so every morning's first ordinary failures "breach".
//!   A new series therefore alerts from its second day on, and an hour that lacked volume on
//!   each of the last `daily_days` days does not alert until it has some.
//!
//! **Hour of the week** is UTC, Monday-based: 0 = Monday 00:00–01:00, 167 = Sunday 23:00–24:00.
//! The epoch was a Thursday (hour 72), so `hour_of_week = (floor(ms / 3_600_000) + 72) mod 168`
//! and weeks count from Monday 1969-12-29. **Hour of the day** is `floor(ms / 3_600_000) mod
//! 24`, days count from 1970-01-01. Patterns that follow a local clock shift by an hour at
//! daylight-saving changes; the lower median absorbs the days or weeks this affects.
//!
//! **State** is counts, never rates: integers round-trip through JSON exactly, so a restored
//! baseline gives bit-identical results. Per series at most `recent_windows` + 168 ×
//! `seasonal_weeks` + 24 × `daily_days` entries, plus the hour being summed. State written
//! before the daily history existed reads with an empty one, which [`SeriesBaseline::trim`]
//! refills from the seasonal history (the same hour totals).

use crate::domain::time::HOUR_MS;
use crate::domain::EventTime;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Scales a median absolute deviation to estimate σ (1 / Φ⁻¹(3/4)).
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// How baselines are built (`AlertConfig::baseline`). Missing fields take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Recent qualifying windows kept (K). Default 12: an hour of 5 min windows.
    pub recent_windows: usize,
    /// A window (or, for the seasonal and daily histories, an hour) with fewer events says too
    /// little about the rate to enter a baseline. Default 20.
    pub min_events_for_baseline: u64,
    /// Qualifying windows needed before the recent baseline is used. Default 6.
    pub min_history: usize,
    /// Weeks kept per hour of the week. Default 4; 0 turns the seasonal baseline off.
    pub seasonal_weeks: usize,
    /// Weeks of an hour needed before its seasonal baseline is used. Default 2.
    pub seasonal_min_weeks: usize,
    /// Days kept per hour of the day. Default 7: a week of days, long enough for the lower
    /// median to outvote a bad day or two. 0 turns the daily baseline off.
    pub daily_days: usize,
    /// Earlier days of an hour needed before its daily baseline is used. Default 1: a day of
    /// history is what ends the warm-up.
    pub daily_min_days: usize,
    /// No breach before a seasonal or daily baseline exists for the window's hour (the recent
    /// baseline then only adds its spread). Default true: time of day is the largest source of
    /// variation in touch-point failure rates; until a day of history exists the recent
    /// baseline alone mistakes the daily rhythm for breaks. False: the recent median is the
    /// expectation while neither exists, as before the daily baseline.
    pub require_seasonal: bool,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            recent_windows: 12,
            min_events_for_baseline: 20,
            min_history: 6,
            seasonal_weeks: 4,
            seasonal_min_weeks: 2,
            daily_days: 7,
            daily_min_days: 1,
            require_seasonal: true,
        }
    }
}

impl BaselineConfig {
    /// Rejects settings under which a baseline could never exist.
    pub fn validate(&self) -> Result<(), String> {
        let (k, w, d) = (self.recent_windows, self.seasonal_weeks, self.daily_days);
        if self.min_history == 0 || self.min_history > k {
            return Err(format!(
                "baseline.min_history must be 1 to recent_windows ({k})"
            ));
        }
        if w > 0 && (self.seasonal_min_weeks == 0 || self.seasonal_min_weeks > w) {
            let m = "baseline.seasonal_min_weeks must be 1 to seasonal_weeks";
            return Err(format!("{m} ({w})"));
        }
        if d > 0 && (self.daily_min_days == 0 || self.daily_min_days > d) {
            let m = "baseline.daily_min_days must be 1 to daily_days";
            return Err(format!("{m} ({d})"));
        }
        if self.require_seasonal && w == 0 && d == 0 {
            let m = "baseline.require_seasonal needs seasonal_weeks or daily_days above 0";
            return Err(m.to_owned());
        }
        Ok(())
    }
}

/// Which history a baseline rate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineKind {
    /// The median of the last windows.
    Recent,
    /// This hour of the week in past weeks.
    Seasonal,
    /// This hour of the day on past days.
    Daily,
}

/// One robust estimate: a center rate and a σ-scaled spread around it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub center: f64,
    pub spread: f64,
    /// Windows (recent), weeks (seasonal) or days (daily) it rests on.
    pub samples: usize,
}

/// The expectation for one window: `rate` is the seasonal center if there is one, else the
/// daily center, else (only with `require_seasonal = false`) the recent median; `spread` is
/// the largest spread of the three available. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baseline {
    pub rate: f64,
    pub spread: f64,
    pub kind: BaselineKind,
    pub recent: Option<Estimate>,
    pub seasonal: Option<Estimate>,
    pub daily: Option<Estimate>,
}

/// Events and failures of a window or an hour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub failures: u64,
}

impl Counts {
    /// The failure rate; 0 without events. Failures above events count as all failing.
    pub fn rate(self) -> f64 {
        match self.events {
            0 => 0.0,
            e => self.failures.min(e) as f64 / e as f64,
        }
    }
}

/// The totals of one hour (counted since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Hour {
    hour: i64,
    #[serde(flatten)]
    counts: Counts,
}

/// Hours since the epoch (floor, also before 1970).
pub fn hour_index(t: EventTime) -> i64 {
    t.0.div_euclid(HOUR_MS)
}

/// Hour of the week, 0 = Monday 00:00–01:00 UTC … 167 = Sunday 23:00–24:00 UTC.
pub fn hour_of_week(t: EventTime) -> u8 {
    how(hour_index(t))
}

/// Hour of the day, 0 = 00:00–01:00 UTC … 23 = 23:00–24:00 UTC.
pub fn hour_of_day(t: EventTime) -> u8 {
    hod(hour_index(t))
}

/// Weeks since Monday 1969-12-29 00:00 UTC.
pub fn week_index(t: EventTime) -> i64 {
    week(hour_index(t))
}

// The epoch, Thursday 00:00 UTC, is hour 72 of a Monday-based week. rem_euclid keeps the hour
// of the week in 0..168 (of the day in 0..24), so the casts are lossless.
fn how(hour: i64) -> u8 {
    (hour + 72).rem_euclid(168) as u8
}

fn week(hour: i64) -> i64 {
    (hour + 72).div_euclid(168)
}

fn hod(hour: i64) -> u8 {
    hour.rem_euclid(24) as u8
}

fn day(hour: i64) -> i64 {
    hour.div_euclid(24)
}

/// The cycle a periodic history repeats over.
#[derive(Clone, Copy, Debug)]
enum Period {
    Week,
    Day,
}

impl Period {
    /// The hour's place in the cycle (hour of the week or of the day).
    fn slot(self, hour: i64) -> u8 {
        match self {
            Period::Week => how(hour),
            Period::Day => hod(hour),
        }
    }

    /// Which cycle the hour is in (weeks or days since the epoch).
    fn index(self, hour: i64) -> i64 {
        match self {
            Period::Week => week(hour),
            Period::Day => day(hour),
        }
    }
}

/// Slot of the cycle → that slot's hour in past cycles, oldest first.
type History = BTreeMap<u8, VecDeque<Hour>>;

/// The bounded history of one series. Windows must come in increasing start order (the
/// alerting core sees to it); one from an hour before the one being summed is left out of the
/// seasonal and daily histories rather than reopening a closed hour.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesBaseline {
    /// Qualifying windows, oldest first.
    recent: VecDeque<Counts>,
    /// Hour of the week → that hour in past weeks, oldest first.
    seasonal: History,
    /// Hour of the day → that hour on past days, oldest first. Absent from state written
    /// before it existed (version 1): empty then, until `trim` refills it.
    #[serde(default)]
    daily: History,
    /// The hour being summed; complete once a window of a later hour arrives.
    open: Option<Hour>,
}

impl SeriesBaseline {
    pub fn new() -> Self {
        Self::default()
    }

    /// The baseline a window starting at `start` is compared with, from history before it;
    /// `None` while there is none (see the combined rule and the warm-up in the module docs).
    pub fn baseline(&self, cfg: &BaselineConfig, start: EventTime) -> Option<Baseline> {
        let hour = hour_index(start);
        let recent = self.recent_estimate(cfg);
        let seasonal = self.periodic_estimate(
            cfg,
            &self.seasonal,
            Period::Week,
            hour,
            (cfg.seasonal_weeks, cfg.seasonal_min_weeks),
        );
        let daily = self.periodic_estimate(
            cfg,
            &self.daily,
            Period::Day,
            hour,
            (cfg.daily_days, cfg.daily_min_days),
        );
        let (rate, kind) = match (seasonal, daily, recent) {
            (Some(s), _, _) => (s.center, BaselineKind::Seasonal),
            (None, Some(d), _) => (d.center, BaselineKind::Daily),
            (None, None, Some(r)) if !cfg.require_seasonal => (r.center, BaselineKind::Recent),
            _ => return None,
        };
        let spread = [recent, seasonal, daily].into_iter().flatten();
        let spread = spread.map(|e| e.spread).fold(0.0, f64::max);
        Some(Baseline {
            rate,
            spread,
            kind,
            recent,
            seasonal,
            daily,
        })
    }

    /// Adds a window to the recent history if it has enough events. Whether it is normal
    /// enough to be history at all is the caller's call.
    pub fn push_recent(&mut self, cfg: &BaselineConfig, counts: Counts) {
        if counts.events >= cfg.min_events_for_baseline.max(1) {
            self.recent.push_back(counts);
            self.trim(cfg);
        }
    }

    /// Adds a window to its hour; a window of a later hour closes the open one and stores it
    /// in the seasonal and daily histories (if it has enough events).
    pub fn observe_seasonal(&mut self, cfg: &BaselineConfig, start: EventTime, counts: Counts) {
        let hour = hour_index(start);
        match self.open.as_mut() {
            Some(open) if open.hour == hour => {
                let c = &mut open.counts;
                c.events = c.events.saturating_add(counts.events);
                c.failures = c.failures.saturating_add(counts.failures);
            }
            Some(open) if open.hour > hour => {}
            _ => {
                let done = self.open.replace(Hour { hour, counts });
                if let Some(done) = done.filter(|d| d.counts.events >= min_events(cfg)) {
                    if cfg.seasonal_weeks > 0 {
                        let weeks = self.seasonal.entry(how(done.hour)).or_default();
                        weeks.push_back(done);
                    }
                    if cfg.daily_days > 0 {
                        self.daily
                            .entry(hod(done.hour))
                            .or_default()
                            .push_back(done);
                    }
                }
                self.trim(cfg);
            }
        }
    }

    /// Fits the history to the configuration (also after a restore): drops what it no longer
    /// allows, and refills an empty daily history from the seasonal one, which holds the same
    /// hour totals. That happens with state written before the daily history existed (or
    /// under `daily_days = 0`): without it, such a series would have no daily baseline, and
    /// with `require_seasonal` no alerts, for up to a day after an upgrade.
    pub fn trim(&mut self, cfg: &BaselineConfig) {
        while self.recent.len() > cfg.recent_windows {
            self.recent.pop_front();
        }
        keep_last(&mut self.seasonal, cfg.seasonal_weeks);
        if cfg.daily_days > 0 && self.daily.is_empty() && !self.seasonal.is_empty() {
            let mut hours: Vec<Hour> = self.seasonal.values().flatten().copied().collect();
            hours.sort_by_key(|h| h.hour);
            for h in hours {
                self.daily.entry(hod(h.hour)).or_default().push_back(h);
            }
        }
        keep_last(&mut self.daily, cfg.daily_days);
        if cfg.seasonal_weeks == 0 && cfg.daily_days == 0 {
            self.open = None;
        }
    }

    /// Windows in the recent history.
    pub fn recent_len(&self) -> usize {
        self.recent.len()
    }

    fn recent_estimate(&self, cfg: &BaselineConfig) -> Option<Estimate> {
        let skip = self.recent.len().saturating_sub(cfg.recent_windows);
        let rates = self.recent.iter().skip(skip).map(|c| c.rate()).collect();
        estimate(rates, cfg.min_history, median)
    }

    /// The seasonal (`Period::Week`) or daily (`Period::Day`) estimate for `hour`: the lower
    /// median over the last `keep` cycles before the current one, from `min` of them on.
    fn periodic_estimate(
        &self,
        cfg: &BaselineConfig,
        history: &History,
        period: Period,
        hour: i64,
        (keep, min): (usize, usize),
    ) -> Option<Estimate> {
        if keep == 0 {
            return None;
        }
        let (slot, now) = (period.slot(hour), period.index(hour));
        // An open hour that is over and is this slot of an earlier cycle is history too. The
        // hour in progress (`o.hour == hour`) is not: it would be its own baseline.
        let open = self.open.filter(|o| {
            o.hour < hour && period.slot(o.hour) == slot && o.counts.events >= min_events(cfg)
        });
        let stored = history.get(&slot).into_iter().flatten().copied();
        let all: Vec<Hour> = stored.chain(open).collect();
        // The last `keep` entries, and only from the last `keep` cycles before this one: a
        // series silent for months does not compare with last season.
        let last = all
            .get(all.len().saturating_sub(keep)..)
            .unwrap_or_default();
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let within = last.iter().filter(|e| {
            let ago = now - period.index(e.hour);
            ago > 0 && ago <= keep
        });
        let rates = within.map(|e| e.counts.rate()).collect();
        estimate(rates, min, lower_median)
    }
}

/// Keeps the last `n` entries of every slot, and only slots that have some.
fn keep_last(history: &mut History, n: usize) {
    history.retain(|_, cycles| {
        while cycles.len() > n {
            cycles.pop_front();
        }
        !cycles.is_empty()
    });
}

fn min_events(cfg: &BaselineConfig) -> u64 {
    cfg.min_events_for_baseline.max(1)
}

fn estimate(
    mut rates: Vec<f64>,
    min: usize,
    center: fn(&mut [f64]) -> Option<f64>,
) -> Option<Estimate> {
    if rates.len() < min.max(1) {
        return None;
    }
    let c = center(&mut rates)?;
    let spread = mad(&rates, c, center)? * MAD_TO_SIGMA;
    Some(Estimate {
        center: c,
        spread,
        samples: rates.len(),
    })
}

/// Median (mean of the two middle values for an even count). Sorts `xs`.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        return xs.get(n / 2).copied();
    }
    Some((xs.get(n.checked_sub(2)? / 2)? + xs.get(n / 2)?) / 2.0)
}

/// The lower of the two middle values for an even count, the median for an odd one.
pub fn lower_median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len().checked_sub(1)? / 2).copied()
}

/// The `middle` (median or lower median) of the absolute deviations of `xs` from `center`:
/// the MAD, unscaled.
pub fn mad(xs: &[f64], center: f64, middle: fn(&mut [f64]) -> Option<f64>) -> Option<f64> {
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - center).abs()).collect();
    middle(&mut dev)
}

/// P[X ≥ k] for X ~ Binomial(n, p): how likely at least `k` failures in `n` events would be
/// if the failure rate were `p`.
///
/// For n·p·(1−p) ≤ 10⁸ it is exact up to rounding: one term P[X = x] comes from Loader's
/// saddle-point form (the one behind R's `dbinom`: relative error ~1e-15 for any n, none of
/// the cancellation of ln-gamma differences), the tail is summed from there with the ratio
/// (n−i)/(i+1) · p/(1−p) until a term no longer changes the sum; at or below the mean the lower
/// tail is summed downwards and the answer is 1 minus it. About 9σ terms at most (≤ 10⁵).
/// Against 40-digit references the relative error is below 1e-13 (see the tests). Beyond
/// 10⁸ (over ~3·10⁹ events in a window) it is the normal approximation with continuity
/// correction: skewness is below 10⁻⁴ there and the relative error about 2e-4 at 4σ.
pub fn binomial_upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return if k <= n { 1.0 } else { 0.0 };
    }
    if k > n || p.is_nan() || p <= 0.0 {
        return 0.0;
    }
    let (nf, q) = (n as f64, 1.0 - p);
    if nf * p * q > 1e8 {
        let z = (k as f64 - 0.5 - nf * p) / (nf * p * q).sqrt();
        return (0.5 * erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0);
    }
    let odds = p / q;
    // Past the mean each next term is smaller; below it each previous one is.
    let above = k as f64 > nf * p;
    let mut i = if above { k } else { k - 1 };
    let mut term = binomial_pmf(n, i, p);
    let mut sum = term;
    while term > sum * 1e-17 && if above { i < n } else { i > 0 } {
        term *= if above {
            (n - i) as f64 / (i + 1) as f64 * odds
        } else {
            i as f64 / (n - i + 1) as f64 / odds
        };
        sum += term;
        i = if above { i + 1 } else { i - 1 };
    }
    if above {
        sum.min(1.0)
    } else {
        (1.0 - sum).clamp(0.0, 1.0)
    }
}

/// P[X = x] for X ~ Binomial(n, p), 0 < p < 1, x ≤ n (C. Loader, "Fast and accurate
/// computation of binomial probabilities", 2000).
fn binomial_pmf(n: u64, x: u64, p: f64) -> f64 {
    let (nf, xf, q) = (n as f64, x as f64, 1.0 - p);
    let lc = if x == 0 {
        if p < 0.1 {
            -bd0(nf, nf * q) - nf * p
        } else {
            nf * q.ln()
        }
    } else if x == n {
        if q < 0.1 {
            -bd0(nf, nf * p) - nf * q
        } else {
            nf * p.ln()
        }
    } else {
        let lc = stirlerr(nf) - stirlerr(xf) - stirlerr(nf - xf);
        let lf = 1.837_877_066_409_345_5 + xf.ln() + (-xf / nf).ln_1p(); // ln(2π x (n−x)/n)
        lc - bd0(xf, nf * p) - bd0(nf - xf, nf * q) - 0.5 * lf
    };
    lc.exp()
}

/// ln(n!) − ln(√(2πn)·(n/e)ⁿ), the error of Stirling's formula, for whole n ≥ 1.
fn stirlerr(n: f64) -> f64 {
    // Exact (40-digit) values where the series is not yet accurate enough.
    #[rustfmt::skip]
    const SMALL: [f64; 16] = [
        0.0, 0.081_061_466_795_327_26, 0.041_340_695_955_409_3, 0.027_677_925_684_998_34,
        0.020_790_672_103_765_093, 0.016_644_691_189_821_192, 0.013_876_128_823_070_748,
        0.011_896_709_945_891_77, 0.010_411_265_261_972_096, 0.009_255_462_182_712_733,
        0.008_330_563_433_362_87, 0.007_573_675_487_951_841, 0.006_942_840_107_209_53,
        0.006_408_994_188_004_207, 0.005_951_370_112_758_848, 0.005_554_733_551_962_801,
    ];
    if n <= 15.0 {
        // A whole number in 0..=15 here: the cast stays in the table.
        return SMALL.get(n.max(0.0) as usize).copied().unwrap_or(0.0);
    }
    // The asymptotic series 1/12n − 1/360n³ + 1/1260n⁵ − 1/1680n⁷ + 1/1188n⁹, cut where
    // further terms no longer matter.
    let terms = if n > 500.0 {
        2
    } else if n > 80.0 {
        3
    } else if n > 35.0 {
        4
    } else {
        5
    };
    let coef = [
        1.0 / 12.0,
        1.0 / 360.0,
        1.0 / 1260.0,
        1.0 / 1680.0,
        1.0 / 1188.0,
    ];
    let nn = n * n;
    let s = coef
        .iter()
        .take(terms)
        .rev()
        .fold(0.0, |acc, c| c - acc / nn);
    s / n
}

/// x·ln(x/np) + np − x, the deviance term, without cancellation when x is close to np.
fn bd0(x: f64, np: f64) -> f64 {
    if (x - np).abs() >= 0.1 * (x + np) {
        return x * (x / np).ln() + np - x;
    }
    let mut v = (x - np) / (x + np);
    let mut s = (x - np) * v;
    let mut ej = 2.0 * x * v;
    v *= v;
    for j in 1..1000 {
        ej *= v;
        let next = s + ej / f64::from(2 * j + 1);
        if next == s {
            break;
        }
        s = next;
    }
    s
}

/// Complementary error function, fractional error below 1.2e-7 (Chebyshev fit, Numerical
/// Recipes `erfcc`). Only the normal approximation uses it.
fn erfc(x: f64) -> f64 {
    #[rustfmt::skip]
    const C: [f64; 10] = [
        -1.265_512_23, 1.000_023_68, 0.374_091_96, 0.096_784_18, -0.186_288_06,
        0.278_868_07, -1.135_203_98, 1.488_515_87, -0.822_152_23, 0.170_872_77,
    ];
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = C.iter().rev().fold(0.0, |acc, c| c + t * acc);
    let ans = t * (-z * z + poly).exp();
    if x >= 0.0 {
        ans
    } else {
        2.0 - ans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::{DAY_MS, MINUTE_MS};

    fn c(events: u64, failures: u64) -> Counts {
        Counts { events, failures }
    }

    /// Monday 2026-11-23 00:00 UTC.
    const MONDAY: i64 = 1_795_392_000_000;

    #[test]
    fn hour_of_week_is_monday_based_utc() {
        assert_eq!(EventTime(MONDAY).to_rfc3339(), "2026-11-23T00:00:00.000Z");
        assert_eq!(hour_of_week(EventTime(MONDAY)), 0);
        assert_eq!(
            hour_of_week(EventTime(MONDAY + 10 * HOUR_MS + 59 * MINUTE_MS)),
            10
        );
        assert_eq!(hour_of_week(EventTime(MONDAY - 1)), 167); // Sunday 23:59:59.999
        assert_eq!(hour_of_week(EventTime(0)), 72); // the epoch: Thursday 00:00
        assert_eq!(hour_of_week(EventTime(-1)), 71); // Wednesday 23:59:59.999
        assert_eq!(
            week_index(EventTime(MONDAY + 7 * DAY_MS)),
            week_index(EventTime(MONDAY)) + 1
        );
        assert_eq!(
            week_index(EventTime(MONDAY - 1)),
            week_index(EventTime(MONDAY)) - 1
        );
        // No panic at the ends of time.
        let _ = (
            hour_of_week(EventTime::MIN),
            week_index(EventTime(i64::MAX)),
        );
    }

    #[test]
    fn hour_of_day_is_utc() {
        assert_eq!(hour_of_day(EventTime(MONDAY)), 0);
        let t = EventTime(MONDAY + 10 * HOUR_MS + 59 * MINUTE_MS);
        assert_eq!(hour_of_day(t), 10);
        assert_eq!(
            hour_of_day(EventTime(MONDAY + 3 * DAY_MS + 23 * HOUR_MS)),
            23
        );
        assert_eq!(hour_of_day(EventTime(MONDAY - 1)), 23);
        assert_eq!(hour_of_day(EventTime(0)), 0);
        assert_eq!(hour_of_day(EventTime(-1)), 23); // 1969-12-31 23:59:59.999
        assert_eq!(
            (
                day(hour_index(EventTime(-1))),
                day(hour_index(EventTime(0)))
            ),
            (-1, 0)
        );
        let _ = (
            hour_of_day(EventTime::MIN),
            hour_of_day(EventTime(i64::MAX)),
        );
    }

    #[test]
    fn medians_and_mad() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(lower_median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.0));
        assert_eq!(lower_median(&mut [0.2, 0.1]), Some(0.1));
        assert_eq!(lower_median(&mut [0.5]), Some(0.5));
        assert_eq!(lower_median(&mut []), None);
        // |x - 2| = 1, 1, 0, 2, 7 -> median 1.
        assert_eq!(mad(&[1.0, 3.0, 2.0, 4.0, 9.0], 2.0, median), Some(1.0));
        // |x - 1| = 0, 1, 2, 8 -> median 1.5, lower median 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 9.0], 1.0, median), Some(1.5));
        assert_eq!(mad(&[1.0, 2.0, 3.0, 9.0], 1.0, lower_median), Some(1.0));
    }

    #[test]
    fn recent_needs_min_history_of_qualifying_windows_and_keeps_k() {
        // The recent baseline alone is the expectation only without the warm-up, which the
        // defaults have (checked at the end): this test is about the recent history.
        let cfg = BaselineConfig {
            require_seasonal: false,
            ..BaselineConfig::default()
        };
        let mut b = SeriesBaseline::new();
        let t = EventTime(MONDAY);
        for _ in 0..5 {
            b.push_recent(&cfg, c(100, 3));
        }
        b.push_recent(&cfg, c(19, 19)); // below min_events_for_baseline: not history
        assert_eq!(b.recent_len(), 5);
        assert_eq!(b.baseline(&cfg, t), None);
        b.push_recent(&cfg, c(100, 5));
        let base = b.baseline(&cfg, t).expect("6 windows");
        assert_eq!(base.kind, BaselineKind::Recent);
        assert!((base.rate - 0.03).abs() < 1e-12);
        // Five of six at 3%: the MAD is 0, one outlier does not move it.
        assert_eq!(base.spread, 0.0);
        for i in 0..20 {
            b.push_recent(&cfg, c(1000, 40 + i % 3 * 10)); // 4%, 5%, 6%
        }
        assert_eq!(b.recent_len(), 12);
        let base = b.baseline(&cfg, t).expect("history");
        assert!((base.rate - 0.05).abs() < 1e-12, "{base:?}");
        assert!(
            (base.spread - 0.01 * MAD_TO_SIGMA).abs() < 1e-12,
            "{base:?}"
        );
        // With the warm-up (the default) there is no baseline without a seasonal or daily one.
        assert_eq!(b.baseline(&BaselineConfig::default(), t), None);
    }

    #[test]
    fn seasonal_sums_an_hour_of_small_windows_and_takes_the_lower_median() {
        let cfg = BaselineConfig::default();
        let mut b = SeriesBaseline::new();
        let five = 5 * MINUTE_MS;
        let ten = MONDAY + 10 * HOUR_MS;
        // Week 0, Monday 10:00: 11 windows of 10 events with 0 failures and one of 100 with
        // 60: the hour's rate is 60/210, not the mean of the window rates (5%).
        for i in 0..12 {
            let counts = if i == 11 { c(100, 60) } else { c(10, 0) };
            b.observe_seasonal(&cfg, EventTime(ten + i * five), counts);
        }
        // Week 1, Monday 10:00: 400 events, 40 failures in one window.
        let week = 7 * DAY_MS;
        b.observe_seasonal(&cfg, EventTime(ten + week), c(400, 40));
        // Week 2, Monday 10:00 asks. Week 1's hour is still open but over: it counts.
        let t = EventTime(ten + 2 * week);
        let base = b.baseline(&cfg, t).expect("two weeks of Monday 10:00");
        assert_eq!(base.kind, BaselineKind::Seasonal);
        assert!(
            (base.rate - 0.1).abs() < 1e-12,
            "lower of 0.1 and 0.2857: {base:?}"
        );
        let s = base.seasonal.expect("seasonal");
        assert_eq!(s.samples, 2);
        // Deviations 0 and 0.186: the lower median ignores the higher week, as the center does.
        assert_eq!(s.spread, 0.0, "{s:?}");
        // Another hour of the week has no seasonal history, and no recent one either.
        assert_eq!(b.baseline(&cfg, EventTime(ten + 2 * week + HOUR_MS)), None);
        // Closing the hour by moving on stores it; the answer does not change.
        b.observe_seasonal(&cfg, EventTime(ten + week + HOUR_MS), c(400, 4));
        assert_eq!(b.baseline(&cfg, t).map(|b| b.rate), Some(base.rate));
        // Five weeks later the history is too old to use.
        assert_eq!(b.baseline(&cfg, EventTime(ten + 6 * week)), None);
    }

    #[test]
    fn combined_baseline_prefers_seasonal_and_takes_the_larger_spread() {
        let cfg = BaselineConfig::default();
        let mut b = SeriesBaseline::new();
        let week = 7 * DAY_MS;
        let ten = MONDAY + 10 * HOUR_MS;
        // Monday 10:00 at 10%, 15%, 12% in weeks 0-2; Monday 11:00 at 3%.
        for (w, f) in [(0, 100), (1, 150), (2, 120)] {
            b.observe_seasonal(&cfg, EventTime(ten + w * week), c(1000, f));
            b.observe_seasonal(&cfg, EventTime(ten + w * week + HOUR_MS), c(1000, 30));
        }
        for r in [30, 30, 30, 40, 20, 30] {
            b.push_recent(&cfg, c(1000, r));
        }
        let base = b.baseline(&cfg, EventTime(ten + 3 * week)).expect("both");
        assert_eq!(base.kind, BaselineKind::Seasonal);
        assert!((base.rate - 0.12).abs() < 1e-12, "{base:?}");
        let (r, s) = (
            base.recent.expect("recent"),
            base.seasonal.expect("seasonal"),
        );
        assert!((r.center - 0.03).abs() < 1e-12);
        // Recent: deviations 0,0,0,0.01,0.01,0 -> 0. Seasonal: 0.02, 0.03, 0 -> 0.02.
        assert_eq!(r.spread, 0.0);
        assert!((s.spread - 0.02 * MAD_TO_SIGMA).abs() < 1e-12, "{s:?}");
        assert_eq!(base.spread, s.spread);
        // Monday 11:00 has three weeks at 3% (week 2's hour is still open but over).
        let next = b
            .baseline(&cfg, EventTime(ten + 3 * week + HOUR_MS))
            .expect("both");
        assert_eq!(next.kind, BaselineKind::Seasonal);
        assert!((next.rate - 0.03).abs() < 1e-12);
        // The daily baseline of Monday 10:00 in week 3 has one day: week 2's Monday, 7 days
        // before (weeks 0 and 1 are older than `daily_days`).
        let d = base.daily.expect("daily");
        assert_eq!((d.samples, d.spread), (1, 0.0));
        assert!((d.center - 0.12).abs() < 1e-12, "{d:?}");
        // Seasonal off: the daily center, and the larger spread of recent and daily (both 0).
        let off = BaselineConfig {
            seasonal_weeks: 0,
            ..cfg.clone()
        };
        let base = b.baseline(&off, EventTime(ten + 3 * week)).expect("daily");
        assert_eq!(base.kind, BaselineKind::Daily);
        assert!((base.rate - 0.12).abs() < 1e-12);
        assert_eq!((base.seasonal, base.spread), (None, 0.0));
        // Daily off too: no baseline under the warm-up (a setting `validate` refuses, but
        // evaluation must still cope), the recent median without it.
        let off = BaselineConfig {
            daily_days: 0,
            ..off
        };
        assert_eq!(b.baseline(&off, EventTime(ten + 3 * week)), None);
        let off = BaselineConfig {
            require_seasonal: false,
            ..off
        };
        let base = b.baseline(&off, EventTime(ten + 3 * week)).expect("recent");
        assert_eq!(base.kind, BaselineKind::Recent);
        assert!((base.rate - 0.03).abs() < 1e-12);
    }

    #[test]
    fn daily_learns_completed_hours_of_earlier_days_only() {
        let cfg = BaselineConfig::default();
        let mut b = SeriesBaseline::new();
        let five = 5 * MINUTE_MS;
        let eight = MONDAY + 8 * HOUR_MS;
        let at = |d: i64, t: i64| EventTime(t + d * DAY_MS);
        // Day 0, 08:00: twelve 5 min windows of 10 events, one failing: each window is too
        // small for a baseline, the hour (120 events, 10%) is not. 09:00: 12 events in all,
        // too few.
        for i in 0..24 {
            let counts = if i < 12 { c(10, 1) } else { c(1, 0) };
            b.observe_seasonal(&cfg, at(0, eight + i * five), counts);
        }
        // Day 1, 08:00: a day of history, and only that.
        let base = b.baseline(&cfg, at(1, eight)).expect("one day of 08:00");
        assert_eq!(base.kind, BaselineKind::Daily);
        assert!((base.rate - 0.1).abs() < 1e-12, "{base:?}");
        let d = base.daily.expect("daily");
        assert_eq!((d.samples, d.spread), (1, 0.0));
        assert_eq!((base.seasonal, base.recent), (None, None));
        assert_eq!(
            b.baseline(&cfg, at(1, eight + HOUR_MS)),
            None,
            "09:00 too small"
        );
        // Day 1, 08:00-08:25 at 50%: the hour in progress is not its own baseline.
        for i in 0..6 {
            b.observe_seasonal(&cfg, at(1, eight + i * five), c(10, 5));
        }
        let mid = b.baseline(&cfg, at(1, eight + 6 * five)).expect("day 0");
        assert_eq!(mid.rate, base.rate);
        assert_eq!(mid.daily.map(|d| d.samples), Some(1));
        // Once the hour is over it is history: day 2 sees days 0 and 1 (10% and 50%) and takes
        // the lower; the deviations (0 and 0.4) give a lower-median spread of 0.
        for i in 6..12 {
            b.observe_seasonal(&cfg, at(1, eight + i * five), c(10, 5));
        }
        let two = b.baseline(&cfg, at(2, eight)).expect("two days");
        let d = two.daily.expect("daily");
        assert_eq!((d.samples, d.spread), (2, 0.0));
        assert!((two.rate - 0.1).abs() < 1e-12, "{two:?}");
        // daily_min_days = 2: day 1 has too few days, day 2 enough.
        let strict = BaselineConfig {
            daily_min_days: 2,
            ..cfg.clone()
        };
        assert_eq!(b.baseline(&strict, at(1, eight)), None);
        assert!(b.baseline(&strict, at(2, eight)).is_some());
        // Day 8: day 1 is 7 days back, day 0 8 days: only day 1 (50%) counts. Day 9: none.
        let late = b.baseline(&cfg, at(8, eight)).expect("day 1");
        assert!((late.rate - 0.5).abs() < 1e-12, "{late:?}");
        assert_eq!(late.daily.map(|d| d.samples), Some(1));
        assert_eq!(b.baseline(&cfg, at(9, eight)), None);
        // One 1 h window: its hour stays open until the next window, a day later, and counts
        // then (it is over), but not for the window of its own hour.
        let mut h = SeriesBaseline::new();
        h.observe_seasonal(&cfg, at(0, eight), c(1000, 30));
        assert_eq!(h.baseline(&cfg, at(0, eight)), None);
        let next = h.baseline(&cfg, at(1, eight)).expect("open, over");
        assert_eq!(next.kind, BaselineKind::Daily);
        assert!((next.rate - 0.03).abs() < 1e-12);
        // Daily off: nothing kept, nothing used.
        let off = BaselineConfig {
            daily_days: 0,
            ..cfg.clone()
        };
        let mut o = SeriesBaseline::new();
        o.observe_seasonal(&off, at(0, eight), c(1000, 30));
        o.observe_seasonal(&off, at(0, eight + HOUR_MS), c(1000, 30));
        assert!(o.daily.is_empty());
        assert_eq!(o.baseline(&off, at(1, eight)), None);
    }

    #[test]
    fn seasonal_center_wins_over_daily_and_the_largest_spread_counts() {
        let cfg = BaselineConfig::default();
        let mut b = SeriesBaseline::new();
        let ten = MONDAY + 10 * HOUR_MS;
        // Monday 10:00 at 20% in weeks 0 and 1. Every other day at 10:00: 2%, 3%, 4%, 5%, 2%,
        // 3% (Tuesday to Sunday of week 1).
        b.observe_seasonal(&cfg, EventTime(ten), c(1000, 200));
        for (d, f) in [
            (7, 200),
            (8, 20),
            (9, 30),
            (10, 40),
            (11, 50),
            (12, 20),
            (13, 30),
        ] {
            b.observe_seasonal(&cfg, EventTime(ten + d * DAY_MS), c(1000, f));
        }
        // Monday of week 2: seasonal 20% (spread 0); daily over the last 7 days: 20, 2, 3, 4,
        // 5, 2, 3 -> lower median 3%, deviations 17, 1, 0, 1, 2, 1, 0 -> 1% -> spread 1.48%.
        let base = b
            .baseline(&cfg, EventTime(ten + 14 * DAY_MS))
            .expect("both");
        assert_eq!(base.kind, BaselineKind::Seasonal);
        assert!((base.rate - 0.2).abs() < 1e-12, "{base:?}");
        let (s, d) = (base.seasonal.expect("s"), base.daily.expect("d"));
        assert_eq!((s.samples, s.spread), (2, 0.0));
        assert_eq!(d.samples, 7);
        assert!((d.center - 0.03).abs() < 1e-12, "{d:?}");
        assert!((d.spread - 0.01 * MAD_TO_SIGMA).abs() < 1e-12, "{d:?}");
        assert_eq!(base.spread, d.spread);
        // Tuesday of week 2: no seasonal (one Tuesday); the daily, now without Monday's 20%.
        let tue = b
            .baseline(&cfg, EventTime(ten + 15 * DAY_MS))
            .expect("daily");
        assert_eq!(tue.kind, BaselineKind::Daily);
        assert_eq!(tue.daily.map(|d| d.samples), Some(6));
    }

    #[test]
    fn state_without_a_daily_history_gets_it_back_from_the_seasonal_one() {
        let cfg = BaselineConfig::default();
        let mut b = SeriesBaseline::new();
        // Ten days of hourly windows from Monday 00:00 (only one week: no seasonal baseline).
        let mut t = MONDAY;
        for i in 0..(10 * 24) {
            b.observe_seasonal(&cfg, EventTime(t), c(100 + i % 7, i % 11));
            t += HOUR_MS;
        }
        assert!(b.daily.values().all(|d| d.len() == 7));
        // State as version 1 wrote it: no `daily` field.
        let mut json = serde_json::to_value(&b).expect("json");
        let removed = json.as_object_mut().and_then(|o| o.remove("daily"));
        assert!(removed.is_some());
        let mut old: SeriesBaseline = serde_json::from_value(json).expect("reads");
        assert!(old.daily.is_empty());
        assert_eq!(old.baseline(&cfg, EventTime(t)), None);
        // The restore trims, which refills it: exactly the history learnt live.
        old.trim(&cfg);
        assert_eq!(old, b);
        assert_eq!(
            old.baseline(&cfg, EventTime(t)).map(|b| b.kind),
            Some(BaselineKind::Daily)
        );
    }

    #[test]
    fn bounded_and_round_trips_exactly() {
        let cfg = BaselineConfig::default();
        let mut b = SeriesBaseline::new();
        let mut t = MONDAY;
        // Ten weeks of hourly windows.
        for i in 0..(10 * 168) {
            b.observe_seasonal(&cfg, EventTime(t), c(100 + i % 7, i % 11));
            b.push_recent(&cfg, c(100 + i % 7, i % 11));
            t += HOUR_MS;
        }
        // K + 168 x seasonal_weeks + 24 x daily_days entries.
        assert_eq!(b.recent.len(), 12);
        assert_eq!(b.seasonal.len(), 168);
        assert!(b.seasonal.values().all(|w| w.len() == 4));
        assert_eq!(b.daily.len(), 24);
        assert!(b.daily.values().all(|d| d.len() == 7));
        let json = serde_json::to_string(&b).expect("serialize");
        let back: SeriesBaseline = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, b);
        assert_eq!(
            back.baseline(&cfg, EventTime(t)),
            b.baseline(&cfg, EventTime(t))
        );
        // A smaller configuration after a restore: trimmed.
        let small = BaselineConfig {
            recent_windows: 6,
            seasonal_weeks: 2,
            daily_days: 3,
            ..cfg
        };
        let mut back = back;
        back.trim(&small);
        assert_eq!(back.recent.len(), 6);
        assert!(back.seasonal.values().all(|w| w.len() == 2));
        assert!(back.daily.values().all(|d| d.len() == 3));
        assert!(back.open.is_some());
        // Both periodic histories off: the open hour goes too.
        back.trim(&BaselineConfig {
            seasonal_weeks: 0,
            daily_days: 0,
            ..small
        });
        assert!(back.seasonal.is_empty() && back.daily.is_empty() && back.open.is_none());
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    #[test]
    fn binomial_tail_matches_exact_values() {
        // (n, k, p, P[X >= k]) from exact rational sums or 40-digit arithmetic.
        let cases: [(u64, u64, f64, f64); 16] = [
            (10, 8, 0.5, 56.0 / 1024.0),
            (20, 5, 0.1, 0.043_174_495_284_463_381),
            (2, 2, 0.03, 0.0009),
            (500, 15, 0.03, 0.535_909_832_819_478),
            (500, 27, 0.03, 0.002_854_806_304_481_92),
            (500, 75, 0.03, 5.401_944_604_814_842e-30),
            (500, 10, 0.03, 0.933_071_439_189_227_4),
            (50, 10, 0.001, 9.905_340_359_574_423e-21),
            (1_000_000, 1100, 0.001, 0.000_957_466_970_028_539_7),
            (1_000_000, 1000, 0.001, 0.504_211_555_166_992),
            (5_000_000, 151_500, 0.03, 4.332_932_834_699_236e-5),
            (5_000_000, 150_000, 0.03, 0.500_359_082_750_644_9),
            (20_000_000, 200_000, 0.01, 0.500_301_840_560_667_3),
            (20_000_000, 201_000, 0.01, 0.012_392_805_840_965_002),
            // Normal branch (variance 2.9e9): 4σ above the mean.
            (
                100_000_000_000,
                3_000_215_777,
                0.03,
                3.167_995_895_320_752e-5,
            ),
            (100_000_000_000, 3_000_000_000, 0.03, 0.5),
        ];
        for (n, k, p, want) in cases {
            let got = binomial_upper_tail(n, k, p);
            let rel = if n * 3 / 100 > 100_000_000 {
                2e-3
            } else {
                1e-12
            };
            assert!(
                close(got, want, rel),
                "n={n} k={k} p={p}: got {got:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn binomial_tail_edges_and_symmetry() {
        assert_eq!(binomial_upper_tail(0, 0, 0.5), 1.0);
        assert_eq!(binomial_upper_tail(10, 0, 0.3), 1.0);
        assert_eq!(binomial_upper_tail(10, 11, 0.3), 0.0);
        assert_eq!(binomial_upper_tail(10, 1, 0.0), 0.0);
        assert_eq!(binomial_upper_tail(10, 10, 1.0), 1.0);
        assert_eq!(binomial_upper_tail(10, 1, f64::NAN), 0.0);
        assert_eq!(binomial_upper_tail(10, 1, -1.0), 0.0);
        assert!(close(binomial_upper_tail(10, 10, 0.5), 1.0 / 1024.0, 1e-14));
        assert!(close(
            binomial_upper_tail(10, 1, 0.5),
            1023.0 / 1024.0,
            1e-14
        ));
        // Far in the tail: underflows to 0, never NaN.
        assert_eq!(binomial_upper_tail(1_000_000, 900_000, 0.001), 0.0);
        assert!(close(
            binomial_upper_tail(u64::MAX, u64::MAX / 2, 0.5),
            0.5,
            1e-6
        ));
        // P[X >= k | n, p] + P[X >= n-k+1 | n, 1-p] = 1.
        for (n, k, p) in [(500, 20, 0.03), (1000, 700, 0.75), (40_000, 1250, 0.03)] {
            let s = binomial_upper_tail(n, k, p) + binomial_upper_tail(n, n - k + 1, 1.0 - p);
            assert!((s - 1.0).abs() < 1e-12, "n={n} k={k} p={p}: {s}");
        }
        // Monotone in k across both summation directions.
        let mut last = 1.0;
        for k in 0..=60 {
            let v = binomial_upper_tail(500, k, 0.03);
            assert!(v <= last && v >= 0.0, "k={k}: {v} after {last}");
            last = v;
        }
    }

    #[test]
    fn config_validation() {
        assert_eq!(BaselineConfig::default().validate(), Ok(()));
        let bad = BaselineConfig {
            min_history: 13,
            ..BaselineConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = BaselineConfig {
            seasonal_min_weeks: 5,
            ..BaselineConfig::default()
        };
        assert!(bad.validate().is_err());
        for (days, min) in [(7, 0), (7, 8)] {
            let bad = BaselineConfig {
                daily_days: days,
                daily_min_days: min,
                ..BaselineConfig::default()
            };
            assert!(bad.validate().is_err(), "{days} {min}");
        }
        // Daily off is fine while the seasonal baseline can end the warm-up; both off only
        // without the warm-up.
        let daily_off = BaselineConfig {
            daily_days: 0,
            daily_min_days: 0,
            ..BaselineConfig::default()
        };
        assert_eq!(daily_off.validate(), Ok(()));
        let both_off = BaselineConfig {
            seasonal_weeks: 0,
            ..daily_off
        };
        assert!(both_off.validate().is_err());
        let recent = BaselineConfig {
            require_seasonal: false,
            ..both_off
        };
        assert_eq!(recent.validate(), Ok(()));
        // Older configuration files without the new fields read with the defaults.
        let old: BaselineConfig =
            serde_json::from_str(r#"{"recent_windows":12,"seasonal_weeks":4}"#).expect("old");
        assert_eq!(old, BaselineConfig::default());
    }
}

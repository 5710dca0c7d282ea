//! Failure-rate baselines for trend alerts: the rate a series (one dimension at one window
//! width) usually has, how much it usually varies, and how unlikely an observed count is.
//!
//! - **Recent**: the last [`BaselineConfig::recent_windows`] windows with at least
//!   `min_events_for_baseline` events. Center = median of their rates, spread = MAD × 1.4826
//!   (median absolute deviation, scaled to estimate σ). Available from `min_history` windows.
//!   The caller decides which windows may enter ([`SeriesBaseline::push_recent`]): the
//!   alerting core keeps breaching and firing windows out, so a spike never becomes its own
//!   baseline.
//! - **Seasonal**: per hour of the week, that hour's rate in each of the last
//!   `seasonal_weeks` weeks. All windows starting in the hour are summed (events, failures)
//!   into one weekly rate, so twelve 5 min windows weigh as one hour and a quiet window counts
//!   less than a busy one. Center = the *lower* median of the weekly rates (with 2 weeks the
//!   smaller, with 4 the second smallest): an hour counts as usually high only if it was high
//!   in more than half the weeks seen, so one incident last Monday at 10:00 does not excuse the
//!   same rate this Monday. Spread = the lower median of the absolute deviations from that
//!   center × 1.4826, for the same reason: an incident week must not widen the tolerance
//!   either (with 2 weeks it is 0, and the recent spread rules). Available once
//!   `seasonal_min_weeks` (2) weeks of that hour exist within the last `seasonal_weeks`.
//!   Every window with enough volume feeds it, breaching or not: a weekly pattern breaches the
//!   first time it is seen and could never be learnt otherwise; the lower median is what keeps
//!   a single incident out.
//! - **Combined**: the seasonal center when available (this hour of the week is a better
//!   expectation than the last hour, which may be a different part of the day), else the
//!   recent one. Spread = the larger of those available: the seasonal one, between hourly
//!   rates, misses the window-to-window noise the recent one sees, and a larger spread only
//!   makes a page less likely.
//!
//! **Hour of the week** is UTC, Monday-based: 0 = Monday 00:00–01:00, 167 = Sunday 23:00–24:00.
//! The epoch was a Thursday (hour 72), so `hour_of_week = (floor(ms / 3_600_000) + 72) mod 168`
//! and weeks count from Monday 1969-12-29. Patterns that follow a local clock shift by an hour
//! at daylight-saving changes; the lower median absorbs the week or two this affects.
//!
//! **State** is counts, never rates: integers round-trip through JSON exactly, so a restored
//! baseline gives bit-identical results. Per series at most `recent_windows` + 168 ×
//! `seasonal_weeks` entries, plus the hour being summed.

use crate::domain::time::HOUR_MS;
use crate::domain::EventTime;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Scales a median absolute deviation to estimate σ (1 / Φ⁻¹(3/4)).
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// How baselines are built (`AlertConfig::baseline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Recent qualifying windows kept (K). Default 12: an hour of 5 min windows.
    pub recent_windows: usize,
    /// A window (or, for the seasonal history, an hour) with fewer events says too little
    /// about the rate to enter a baseline. Default 20.
    pub min_events_for_baseline: u64,
    /// Qualifying windows needed before the recent baseline is used. Default 6.
    pub min_history: usize,
    /// Weeks kept per hour of the week. Default 4; 0 turns the seasonal baseline off.
    pub seasonal_weeks: usize,
    /// Weeks of an hour needed before its seasonal baseline is used. Default 2.
    pub seasonal_min_weeks: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            recent_windows: 12,
            min_events_for_baseline: 20,
            min_history: 6,
            seasonal_weeks: 4,
            seasonal_min_weeks: 2,
        }
    }
}

impl BaselineConfig {
    /// Rejects settings under which a baseline could never exist.
    pub fn validate(&self) -> Result<(), String> {
        let (k, w) = (self.recent_windows, self.seasonal_weeks);
        if self.min_history == 0 || self.min_history > k {
            return Err(format!(
                "baseline.min_history must be 1 to recent_windows ({k})"
            ));
        }
        if w > 0 && (self.seasonal_min_weeks == 0 || self.seasonal_min_weeks > w) {
            let m = "baseline.seasonal_min_weeks must be 1 to seasonal_weeks";
            return Err(format!("{m} ({w})"));
        }
        Ok(())
    }
}

/// Which history a baseline rate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineKind {
    Recent,
    Seasonal,
}

/// One robust estimate: a center rate and a σ-scaled spread around it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub center: f64,
    pub spread: f64,
    /// Windows (recent) or weeks (seasonal) it rests on.
    pub samples: usize,
}

/// The expectation for one window, combined as the module docs say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baseline {
    pub rate: f64,
    pub spread: f64,
    pub kind: BaselineKind,
    pub recent: Option<Estimate>,
    pub seasonal: Option<Estimate>,
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

/// Weeks since Monday 1969-12-29 00:00 UTC.
pub fn week_index(t: EventTime) -> i64 {
    week(hour_index(t))
}

// The epoch, Thursday 00:00 UTC, is hour 72 of a Monday-based week. rem_euclid keeps the hour
// of the week in 0..168, so the cast is lossless.
fn how(hour: i64) -> u8 {
    (hour + 72).rem_euclid(168) as u8
}

fn week(hour: i64) -> i64 {
    (hour + 72).div_euclid(168)
}

/// The bounded history of one series. Windows must come in increasing start order (the
/// alerting core sees to it); one from an hour before the one being summed is left out of the
/// seasonal history rather than reopening a closed hour.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesBaseline {
    /// Qualifying windows, oldest first.
    recent: VecDeque<Counts>,
    /// Hour of the week → that hour in past weeks, oldest first.
    seasonal: BTreeMap<u8, VecDeque<Hour>>,
    /// The hour being summed; complete once a window of a later hour arrives.
    open: Option<Hour>,
}

impl SeriesBaseline {
    pub fn new() -> Self {
        Self::default()
    }

    /// The baseline a window starting at `start` is compared with, from history before it.
    pub fn baseline(&self, cfg: &BaselineConfig, start: EventTime) -> Option<Baseline> {
        let recent = self.recent_estimate(cfg);
        let seasonal = self.seasonal_estimate(cfg, start);
        let (rate, kind) = match (seasonal, recent) {
            (Some(s), _) => (s.center, BaselineKind::Seasonal),
            (None, Some(r)) => (r.center, BaselineKind::Recent),
            (None, None) => return None,
        };
        let spread = recent.iter().chain(&seasonal).map(|e| e.spread);
        let spread = spread.fold(0.0, f64::max);
        Some(Baseline {
            rate,
            spread,
            kind,
            recent,
            seasonal,
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

    /// Adds a window to its hour; a window of a later hour closes and stores the open one.
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
                    self.seasonal
                        .entry(how(done.hour))
                        .or_default()
                        .push_back(done);
                }
                self.trim(cfg);
            }
        }
    }

    /// Drops what the configuration no longer allows (also after a restore).
    pub fn trim(&mut self, cfg: &BaselineConfig) {
        while self.recent.len() > cfg.recent_windows {
            self.recent.pop_front();
        }
        self.seasonal.retain(|_, weeks| {
            while weeks.len() > cfg.seasonal_weeks {
                weeks.pop_front();
            }
            !weeks.is_empty()
        });
        if cfg.seasonal_weeks == 0 {
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

    fn seasonal_estimate(&self, cfg: &BaselineConfig, start: EventTime) -> Option<Estimate> {
        let (hour, w) = (hour_index(start), cfg.seasonal_weeks);
        let (h, now) = (how(hour), week(hour));
        // An open hour that is over and is this hour of an earlier week is history too.
        let open = self
            .open
            .filter(|o| o.hour < hour && how(o.hour) == h && o.counts.events >= min_events(cfg));
        let stored = self.seasonal.get(&h).into_iter().flatten().copied();
        let all: Vec<Hour> = stored.chain(open).collect();
        // The last `w` entries, and only from the last `w` weeks: a series silent for months
        // does not compare with last season.
        let last = all.get(all.len().saturating_sub(w)..).unwrap_or_default();
        let recent_weeks = last.iter().filter(|e| {
            week(e.hour) < now && now - week(e.hour) <= i64::try_from(w).unwrap_or(i64::MAX)
        });
        let rates = recent_weeks.map(|e| e.counts.rate()).collect();
        estimate(rates, cfg.seasonal_min_weeks, lower_median)
    }
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
        let cfg = BaselineConfig::default();
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
        // Seasonal off: the recent median.
        let off = BaselineConfig {
            seasonal_weeks: 0,
            ..cfg.clone()
        };
        let base = b.baseline(&off, EventTime(ten + 3 * week)).expect("recent");
        assert_eq!(base.kind, BaselineKind::Recent);
        assert!((base.rate - 0.03).abs() < 1e-12);
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
        assert_eq!(b.recent.len(), 12);
        assert_eq!(b.seasonal.len(), 168);
        assert!(b.seasonal.values().all(|w| w.len() == 4));
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
            ..cfg
        };
        let mut back = back;
        back.trim(&small);
        assert_eq!(back.recent.len(), 6);
        assert!(back.seasonal.values().all(|w| w.len() == 2));
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
    }
}

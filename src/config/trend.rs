//! `[trend]`: trend windows, how long the merge waits for every partition, and when a
//! failure rate is a trend alert.

use super::{invalid, ConfigError, Dur};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrendConfig {
    /// Tumbling event-time window widths, aligned to the Unix epoch. Each must divide a day,
    /// so windows line up across days and hours of the week.
    pub windows: Vec<Dur>,
    /// Wall-clock wait, after a window's first partial arrives, for every input partition to
    /// report it. After that its snapshots are emitted with `complete: false` and updated
    /// (a higher `revision`) when the missing partitions report.
    pub complete_wait: Dur,
    /// When a failure rate is an alert.
    pub alerts: AlertsConfig,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            windows: vec![Dur::mins(5), Dur::hours(1)],
            complete_wait: Dur::secs(60),
            alerts: AlertsConfig::default(),
        }
    }
}

/// Defaults follow Prometheus-style alerting: a breach has to last (`for_windows`), an
/// alert keeps firing through short dips (`keep_firing_for_windows`), and low volume never
/// pages (`min_events`, `min_failures`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// The observed failure rate must be at least this multiple of the baseline.
    pub ratio_threshold: f64,
    /// ...and at least this many failures in the window...
    pub min_failures: u64,
    /// ...out of at least this many events...
    pub min_events: u64,
    /// ...and this unlikely under the baseline (one-sided binomial tail probability).
    pub significance: f64,
    /// ...and above the baseline by more than this many robust standard deviations.
    pub mad_k: f64,
    /// Consecutive breaching windows before an alert fires.
    pub for_windows: u32,
    /// Non-breaching windows a firing alert waits before it resolves (against flapping).
    pub keep_firing_for_windows: u32,
    /// Windows in the recent baseline (median and MAD of their failure rates).
    pub recent_windows: usize,
    /// Windows with at least `min_events_for_baseline` events needed before the recent
    /// baseline is used.
    pub min_history: usize,
    /// A window with fewer events does not enter the baseline.
    pub min_events_for_baseline: u64,
    /// Weeks of same-hour-of-week history in the seasonal baseline.
    pub seasonal_weeks: usize,
    /// Days of same-hour-of-day history in the daily baseline (used until two weeks of
    /// hour-of-week history exist).
    pub daily_days: usize,
    /// Earlier days with that hour needed before the daily baseline is used.
    pub daily_min_days: usize,
    /// No alert until a seasonal (daily or weekly) baseline exists for the window's hour:
    /// time of day is the largest source of variation in touch-point failure rates, and the
    /// recent baseline alone mistakes the daily rhythm for breaks.
    pub require_seasonal: bool,
    /// Lowest baseline rate: a zero baseline cannot make any failure a breach.
    pub baseline_floor: f64,
}

/// The defaults are the trend core's ([`crate::trend::AlertConfig`]), so they are written
/// once.
impl Default for AlertsConfig {
    fn default() -> Self {
        let c = crate::trend::AlertConfig::default();
        let b = &c.baseline;
        AlertsConfig {
            ratio_threshold: c.ratio_threshold,
            min_failures: c.min_failures,
            min_events: c.min_events,
            significance: c.significance,
            mad_k: c.mad_k,
            for_windows: c.for_windows,
            keep_firing_for_windows: c.keep_firing_for_windows,
            recent_windows: b.recent_windows,
            min_history: b.min_history,
            min_events_for_baseline: b.min_events_for_baseline,
            seasonal_weeks: b.seasonal_weeks,
            daily_days: b.daily_days,
            daily_min_days: b.daily_min_days,
            require_seasonal: b.require_seasonal,
            baseline_floor: c.baseline_floor,
        }
    }
}

impl TrendConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.windows.is_empty() {
            return Err(invalid("trend.windows", "must list at least one width"));
        }
        let day = Dur::hours(24).millis().0;
        for (i, w) in self.windows.iter().enumerate() {
            let ms = w.millis().0;
            if ms < 60_000 || day % ms != 0 {
                return Err(invalid(
                    format!("trend.windows[{i}]"),
                    "must be at least 1m and divide a day evenly (e.g. 5m, 15m, 1h)",
                ));
            }
            if self.windows[..i].contains(w) {
                return Err(invalid(format!("trend.windows[{i}]"), "is listed twice"));
            }
        }
        if self.complete_wait.millis().0 <= 0 {
            return Err(invalid("trend.complete_wait", "must be longer than zero"));
        }
        let a = &self.alerts;
        let checks: [(&str, bool, &str); 11] = [
            (
                "trend.alerts.daily_days",
                a.daily_days >= 1,
                "must be at least 1",
            ),
            (
                "trend.alerts.daily_min_days",
                a.daily_min_days >= 1 && a.daily_min_days <= a.daily_days,
                "must be from 1 to trend.alerts.daily_days",
            ),
            (
                "trend.alerts.ratio_threshold",
                a.ratio_threshold.is_finite() && a.ratio_threshold >= 1.0,
                "must be a number of at least 1",
            ),
            (
                "trend.alerts.significance",
                a.significance > 0.0 && a.significance < 1.0,
                "must be a probability between 0 and 1",
            ),
            (
                "trend.alerts.mad_k",
                a.mad_k.is_finite() && a.mad_k >= 0.0,
                "must be a number of at least 0",
            ),
            (
                "trend.alerts.for_windows",
                a.for_windows >= 1,
                "must be at least 1",
            ),
            (
                "trend.alerts.recent_windows",
                a.recent_windows >= 1,
                "must be at least 1",
            ),
            (
                "trend.alerts.min_history",
                a.min_history >= 1 && a.min_history <= a.recent_windows,
                "must be from 1 to trend.alerts.recent_windows",
            ),
            (
                "trend.alerts.seasonal_weeks",
                a.seasonal_weeks >= 2,
                "must be at least 2",
            ),
            (
                "trend.alerts.baseline_floor",
                a.baseline_floor > 0.0 && a.baseline_floor < 1.0,
                "must be a rate between 0 and 1",
            ),
            (
                "trend.alerts.min_failures",
                a.min_failures >= 1,
                "must be at least 1",
            ),
        ];
        for (key, ok, reason) in checks {
            if !ok {
                return Err(invalid(key, reason));
            }
        }
        Ok(())
    }
}

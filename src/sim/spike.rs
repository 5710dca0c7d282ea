//! An injected failure spike: for a while, one channel's operational steps fail several times
//! as often as usual (a payment gateway degrading, a carrier's depot down). It gives trend
//! detection and alerting something real to find.
//!
//! A step's failure probability is `failure_rate` × the step's own factor (see `journey.rs`);
//! during the spike, a step of the spike's channel performed in `[start, start + duration)` fails
//! with `min(1, p × factor)` instead. The decision uses the same random draw as without a spike,
//! so everything a spike does not turn into a failure stays as it was, and a spike that touches
//! no step (a factor of 1, or a window outside the simulated period) changes no byte.

use super::event::Kind;
use crate::domain::{EventTime, Millis};
use std::fmt;
use std::str::FromStr;

/// The channels the simulator generates (the four default channels).
pub const SIM_CHANNELS: [&str; 4] = ["sales", "billing", "shipping", "service"];

/// A failure spike on one channel; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    pub start: EventTime,
    pub duration: Millis,
    /// One of [`SIM_CHANNELS`]; another name matches no step and so has no effect.
    pub channel: String,
    /// Multiplies the failure probability of the channel's steps in the window (result capped
    /// at 1). Finite and non-negative; below 1 it is a dip instead of a spike.
    pub factor: f64,
}

impl Spike {
    /// End of the window (exclusive).
    pub fn end(&self) -> EventTime {
        self.start.plus(Millis(self.duration.0.max(0)))
    }

    pub fn contains(&self, t: EventTime) -> bool {
        t >= self.start && t < self.end()
    }

    /// Whether the window shares any time with `[from, to)`.
    pub fn overlaps(&self, from: EventTime, to: EventTime) -> bool {
        self.start < to && self.end() > from && self.duration.0 > 0
    }

    /// Parses `START,DURATION,CHANNEL,FACTOR`, e.g. `2026-11-21T14:00:00Z,30m,billing,6`:
    /// START is RFC 3339, DURATION like `30m`, `2h` or `1h30m`.
    pub fn parse(s: &str) -> Result<Spike, String> {
        const FORM: &str =
            "START,DURATION,CHANNEL,FACTOR (e.g. 2026-11-21T14:00:00Z,30m,billing,6)";
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [start, duration, channel, factor] = parts[..] else {
            return Err(format!(
                "expected four comma-separated parts {FORM}, got `{s}`"
            ));
        };
        let start = EventTime::parse(start).map_err(|e| format!("START `{start}` is {e}"))?;
        let duration =
            Millis::parse(duration).map_err(|e| format!("DURATION `{duration}`: {e}"))?;
        if duration.0 <= 0 {
            return Err(format!("DURATION `{duration}` must be longer than zero"));
        }
        if !SIM_CHANNELS.contains(&channel) {
            return Err(format!(
                "CHANNEL `{channel}` is not a simulated channel (one of {})",
                SIM_CHANNELS.join(", ")
            ));
        }
        let factor_value: f64 = factor
            .parse()
            .map_err(|_| format!("FACTOR `{factor}` is not a number"))?;
        if !factor_value.is_finite() || factor_value < 0.0 {
            return Err(format!(
                "FACTOR `{factor}` must be a finite number of at least 0"
            ));
        }
        Ok(Spike {
            start,
            duration,
            channel: channel.to_string(),
            factor: factor_value,
        })
    }
}

impl FromStr for Spike {
    type Err = String;
    fn from_str(s: &str) -> Result<Spike, String> {
        Spike::parse(s)
    }
}

impl fmt::Display for Spike {
    /// The form [`Spike::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.start, self.duration, self.channel, self.factor
        )
    }
}

/// The spike as the generator uses it: plain numbers, `Copy`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpikeWindow {
    pub start: i64,
    pub end: i64,
    pub channel: &'static str,
    pub factor: f64,
}

impl SpikeWindow {
    /// `None` when the spike can touch no step (unknown channel, empty window).
    pub(crate) fn new(s: &Spike) -> Option<SpikeWindow> {
        let channel = SIM_CHANNELS.iter().find(|c| **c == s.channel)?;
        (s.duration.0 > 0).then_some(SpikeWindow {
            start: s.start.0,
            end: s.end().0,
            channel,
            factor: if s.factor.is_finite() {
                s.factor.max(0.0)
            } else {
                1.0
            },
        })
    }

    /// Whether a step producing (or, for a late step, fulfilling) `kind` at `t` is in the spike.
    pub(crate) fn covers(&self, kind: Kind, t: i64) -> bool {
        t >= self.start && t < self.end && kind.names().0 == self.channel
    }

    /// Whether `kind` at `t` is a failure the spike's window and channel contain (for
    /// `SimStats::spike_failures`).
    pub(crate) fn counts(&self, kind: Kind, t: i64) -> bool {
        kind.is_failure() && self.covers(kind, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form_and_names_what_is_wrong() {
        let s = Spike::parse("2026-11-21T14:00:00Z,30m,billing,6").unwrap();
        assert_eq!(s.start, EventTime::parse("2026-11-21T14:00:00Z").unwrap());
        assert_eq!(s.duration, Millis(30 * 60_000));
        assert_eq!((s.channel.as_str(), s.factor), ("billing", 6.0));
        assert_eq!(s.end(), EventTime::parse("2026-11-21T14:30:00Z").unwrap());
        assert_eq!(Spike::parse(&s.to_string()), Ok(s.clone()));
        assert_eq!(" 2026-11-21T14:00:00Z , 30m , billing , 6 ".parse(), Ok(s));
        assert_eq!(
            Spike::parse("2026-11-21T14:00:00Z,1h30m,service,0.5").map(|s| s.factor),
            Ok(0.5)
        );
        for (bad, says) in [
            (
                "2026-11-21T14:00:00Z,30m,billing",
                "four comma-separated parts",
            ),
            (
                "2026-11-21T14:00:00Z,30m,billing,6,7",
                "four comma-separated parts",
            ),
            ("", "four comma-separated parts"),
            ("21/11/2026,30m,billing,6", "START `21/11/2026`"),
            ("2026-11-21T14:00:00Z,30,billing,6", "DURATION `30`"),
            ("2026-11-21T14:00:00Z,0m,billing,6", "longer than zero"),
            (
                "2026-11-21T14:00:00Z,30m,marketing,6",
                "CHANNEL `marketing`",
            ),
            (
                "2026-11-21T14:00:00Z,30m,billing,six",
                "FACTOR `six` is not a number",
            ),
            ("2026-11-21T14:00:00Z,30m,billing,-2", "at least 0"),
            ("2026-11-21T14:00:00Z,30m,billing,inf", "at least 0"),
            ("2026-11-21T14:00:00Z,30m,billing,NaN", "at least 0"),
        ] {
            let err = Spike::parse(bad).expect_err(bad);
            assert!(err.contains(says), "`{bad}`: {err}");
        }
    }

    #[test]
    fn the_window_covers_its_channel_and_time_only() {
        let s = Spike::parse("2026-11-21T14:00:00Z,30m,billing,6").unwrap();
        let w = SpikeWindow::new(&s).unwrap();
        let t = s.start.0;
        assert!(w.covers(Kind::PaymentDeclined, t));
        assert!(w.covers(Kind::RefundFailed, s.end().0 - 1));
        assert!(!w.covers(Kind::PaymentDeclined, s.end().0));
        assert!(!w.covers(Kind::PaymentDeclined, t - 1));
        assert!(!w.covers(Kind::DeliveryFailed, t));
        assert!(w.counts(Kind::InvoiceDisputed, t) && !w.counts(Kind::InvoiceSent, t));
        let day = |d| EventTime::parse(d).unwrap();
        assert!(s.overlaps(day("2026-11-21"), day("2026-11-22")));
        assert!(!s.overlaps(day("2026-11-22"), day("2026-11-23")));
        assert!(!s.overlaps(day("2026-11-20"), day("2026-11-21")));
        let other = Spike {
            channel: "marketing".into(),
            ..s
        };
        assert!(SpikeWindow::new(&other).is_none());
    }
}

//! Event time: milliseconds since the Unix epoch, UTC, parsed from and printed as RFC 3339.
//!
//! Parsing is hand-written because it sits on the hot path of every decoded event and the
//! contract is narrow: `YYYY-MM-DD` optionally followed by `T` (or a space), `hh:mm:ss`,
//! optional fraction, and `Z` or a `±hh:mm` offset. Nothing here reads the wall clock.

use std::fmt;

/// A point in event time, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime(pub i64);

/// A span of time in milliseconds. Used for windows, SLAs and TTLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

impl EventTime {
    pub const MIN: EventTime = EventTime(i64::MIN);

    pub fn as_millis(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Millis) -> EventTime {
        EventTime(self.0.saturating_add(d.0))
    }

    pub fn minus(self, d: Millis) -> EventTime {
        EventTime(self.0.saturating_sub(d.0))
    }

    /// Parses RFC 3339 (`2026-11-22T10:15:03.120Z`, `2026-11-22T11:15:03+01:00`) or a bare
    /// date (`2019-03-01`, taken as midnight UTC). Fractions beyond milliseconds are truncated.
    pub fn parse(s: &str) -> Result<EventTime, TimeError> {
        parse_rfc3339(s.as_bytes())
    }

    /// Formats as RFC 3339 in UTC with millisecond precision, e.g. `2026-11-22T10:15:03.120Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl Millis {
    pub fn from_secs(s: i64) -> Millis {
        Millis(s * SECOND_MS)
    }
    pub fn from_hours(h: i64) -> Millis {
        Millis(h * HOUR_MS)
    }
    pub fn from_days(d: i64) -> Millis {
        Millis(d * DAY_MS)
    }
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
    /// Scales by a factor, rounding to the millisecond; used for "new customers get half the
    /// response time".
    pub fn scale(self, factor: f64) -> Millis {
        Millis((self.0 as f64 * factor).round() as i64)
    }

    /// Parses `500ms`, `30s`, `2m`, `4h`, `30d`, `2w`, or combinations such as `1h30m`.
    pub fn parse(s: &str) -> Result<Millis, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        let b = s.as_bytes();
        let mut i = 0;
        let mut total: i64 = 0;
        while i < b.len() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(format!(
                    "expected a number at `{}` in duration `{s}`",
                    &s[start..]
                ));
            }
            let n: i64 = s[start..i]
                .parse()
                .map_err(|_| format!("number too large in `{s}`"))?;
            let ustart = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = match &s[ustart..i] {
                "ms" => 1,
                "s" => SECOND_MS,
                "m" => MINUTE_MS,
                "h" => HOUR_MS,
                "d" => DAY_MS,
                "w" => 7 * DAY_MS,
                "" => {
                    return Err(format!(
                        "missing unit in duration `{s}` (use ms, s, m, h, d or w)"
                    ))
                }
                u => {
                    return Err(format!(
                        "unknown unit `{u}` in duration `{s}` (use ms, s, m, h, d or w)"
                    ))
                }
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("duration `{s}` is too large"))?;
        }
        Ok(Millis(total))
    }

    /// Human form used in explanations: `4 h`, `6 h 30 min`, `45 min`, `3 days`.
    pub fn human(self) -> String {
        let ms = self.0;
        if ms % DAY_MS == 0 && ms >= DAY_MS {
            let d = ms / DAY_MS;
            if d == 1 {
                "1 day".into()
            } else {
                format!("{d} days")
            }
        } else if ms >= HOUR_MS {
            let (h, m) = (ms / HOUR_MS, (ms % HOUR_MS) / MINUTE_MS);
            if m == 0 {
                format!("{h} h")
            } else {
                format!("{h} h {m} min")
            }
        } else if ms >= MINUTE_MS {
            format!("{} min", ms / MINUTE_MS)
        } else if ms >= SECOND_MS {
            format!("{} s", ms / SECOND_MS)
        } else {
            format!("{ms} ms")
        }
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, n) in [
            ("d", DAY_MS),
            ("h", HOUR_MS),
            ("m", MINUTE_MS),
            ("s", SECOND_MS),
        ] {
            if ms != 0 && ms % n == 0 {
                return write!(f, "{}{unit}", ms / n);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {reason}")]
pub struct TimeError {
    pub reason: &'static str,
}

fn err(reason: &'static str) -> TimeError {
    TimeError { reason }
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<i64, TimeError> {
    if b.len() < at + n {
        return Err(err("too short"));
    }
    let mut v = 0i64;
    for &c in &b[at..at + n] {
        if !c.is_ascii_digit() {
            return Err(err("expected a digit"));
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Ok(v)
}

fn expect(b: &[u8], at: usize, c: u8, reason: &'static str) -> Result<(), TimeError> {
    if b.get(at) == Some(&c) {
        Ok(())
    } else {
        Err(err(reason))
    }
}

fn parse_rfc3339(b: &[u8]) -> Result<EventTime, TimeError> {
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-', "expected `-` after the year")?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-', "expected `-` after the month")?;
    let day = digits(b, 8, 2)?;
    if !(1..=12).contains(&month) {
        return Err(err("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(err("day out of range"));
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Ok(EventTime(days * DAY_MS));
    }
    match b[10] {
        b'T' | b't' | b' ' => {}
        _ => return Err(err("expected `T` between date and time")),
    }
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b':', "expected `:` after the hour")?;
    let min = digits(b, 14, 2)?;
    expect(b, 16, b':', "expected `:` after the minutes")?;
    let sec = digits(b, 17, 2)?;
    // 60 admits a leap second, which is folded into the next second as most systems do.
    if hour > 23 || min > 59 || sec > 60 {
        return Err(err("time of day out of range"));
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(err("empty fraction of a second"));
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            expect(b, i + 3, b':', "expected `:` in the UTC offset")?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err(err("UTC offset out of range"));
            }
            i += 6;
            let o = oh * 60 + om;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        None => return Err(err("missing time zone (`Z` or `±hh:mm`)")),
        _ => return Err(err("unexpected character after the time")),
    };
    if i != b.len() {
        return Err(err("trailing characters"));
    }
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    Ok(EventTime(secs * 1000 + ms))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let t = EventTime::parse("2026-11-22T10:15:03.120Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T10:15:03.120Z");
        assert_eq!(
            EventTime::parse("1970-01-01T00:00:00Z").unwrap(),
            EventTime(0)
        );
        assert_eq!(
            EventTime::parse("2019-03-01").unwrap().to_string(),
            "2019-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn applies_offsets_and_fractions() {
        let a = EventTime::parse("2026-11-22T11:15:03.1+01:00").unwrap();
        let b = EventTime::parse("2026-11-22T10:15:03.100Z").unwrap();
        assert_eq!(a, b);
        let c = EventTime::parse("2026-11-22T10:15:03.123456789Z").unwrap();
        assert_eq!(c.0 % 1000, 123);
        assert_eq!(
            EventTime::parse("1969-12-31T23:59:59.999Z").unwrap(),
            EventTime(-1)
        );
        assert_eq!(EventTime(-1).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in [
            "",
            "2026-11-22T10:15:03",
            "22/11/2026",
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10:15:03.Z",
            "2026-11-22T10:15:03Zjunk",
            "1700000000",
            "2026-11-22T10:15:03+0100",
        ] {
            assert!(EventTime::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(EventTime::parse("2024-02-29").is_ok());
    }

    #[test]
    fn civil_days_agree_over_a_long_range() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(Millis::parse("48h").unwrap(), Millis::from_hours(48));
        assert_eq!(Millis::parse("1h30m").unwrap(), Millis(90 * MINUTE_MS));
        assert_eq!(Millis::parse("500ms").unwrap(), Millis(500));
        assert_eq!(Millis::parse("2w").unwrap(), Millis::from_days(14));
        assert!(Millis::parse("10").unwrap_err().contains("missing unit"));
        assert!(Millis::parse("3y").unwrap_err().contains("unknown unit"));
        assert_eq!(Millis::from_days(30).to_string(), "30d");
        assert_eq!(Millis(90 * MINUTE_MS).to_string(), "90m");
        assert_eq!(Millis::from_hours(4).human(), "4 h");
        assert_eq!(Millis(390 * MINUTE_MS).human(), "6 h 30 min");
        assert_eq!(Millis(45 * MINUTE_MS).human(), "45 min");
        assert_eq!(Millis::from_hours(72).human(), "3 days");
    }
}

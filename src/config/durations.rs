//! `Dur`: a duration written in config as a string such as `"48h"` or `"30d"`.

use crate::domain::Millis;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(Millis);

impl Dur {
    pub const fn millis_const(ms: i64) -> Dur {
        Dur(Millis(ms))
    }
    pub fn secs(s: i64) -> Dur {
        Dur(Millis::from_secs(s))
    }
    pub fn mins(m: i64) -> Dur {
        Dur(Millis::from_secs(60 * m))
    }
    pub fn hours(h: i64) -> Dur {
        Dur(Millis::from_hours(h))
    }
    pub fn days(d: i64) -> Dur {
        Dur(Millis::from_days(d))
    }
    pub fn millis(self) -> Millis {
        self.0
    }
    pub fn std(self) -> std::time::Duration {
        self.0.as_std()
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        let m = Millis::parse(&s).map_err(serde::de::Error::custom)?;
        if m.0 < 0 {
            return Err(serde::de::Error::custom("duration must not be negative"));
        }
        Ok(Dur(m))
    }
}

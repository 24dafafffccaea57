//! Rates: how many requests per period, and how many may arrive at once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The longest burst window (`burst x emission interval`) a [`Rate`] may describe:
/// 2^62 ns, about 146 years. Keeping it well below `u64::MAX` leaves room for the
/// limiter's time arithmetic.
pub const MAX_WINDOW_NANOS: u64 = 1 << 62;

/// A rate: `count` requests per `period`, with up to `burst` requests (cost units)
/// admitted at once. By default `burst == count`.
///
/// Parsed from strings such as `"100/s"`, `"6000/min"`, `"10/h"`, `"500/day"`,
/// `"5/10s"` or `"3/250ms"`, optionally followed by `" burst N"`. In serde it is either
/// that string or a table `{ rate = "100/s", burst = 150 }`.
///
/// # Units
/// `ms`; `s`, `sec`, `second(s)`; `m`, `min`, `minute(s)`; `h`, `hr`, `hour(s)`; `d`,
/// `day(s)`; `w`, `week(s)`; `y`, `year(s)` (365 days). Calendar months are not rates;
/// monthly quotas live in `tollgate-quota`.
///
/// # Examples
/// ```
/// use tollgate_core::Rate;
/// let r: Rate = "6000/min".parse().unwrap();
/// assert_eq!(r.count(), 6000);
/// assert_eq!(r.emission_interval_nanos(), 10_000_000); // one request per 10 ms
/// assert_eq!(r.burst(), 6000);
/// let r = r.with_burst(50).unwrap();
/// assert_eq!(r.to_string(), "6000/min burst 50");
/// assert!("0/s".parse::<Rate>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u64,
    period: u64,
    burst: u64,
}

/// Why a [`Rate`] is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateError {
    /// The text is not of the form `COUNT/PERIOD`.
    Syntax(String),
    /// The count is zero: a rate that admits nothing is a revocation, not a rate.
    ZeroCount,
    /// The period is zero.
    ZeroPeriod,
    /// The burst is zero: no request could ever pass.
    ZeroBurst,
    /// The period unit is not one tollgate knows.
    UnknownUnit(String),
    /// The period does not fit in `u64` nanoseconds (about 584 years).
    PeriodOverflow,
    /// More than one request per nanosecond: the limiter's resolution is one nanosecond.
    TooFine {
        /// The requested count.
        count: u64,
        /// The period in nanoseconds.
        period_nanos: u64,
    },
    /// `burst x emission interval` exceeds [`MAX_WINDOW_NANOS`].
    WindowOverflow,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::Syntax(s) => write!(
                f,
                "invalid rate {s:?}: expected COUNT/PERIOD such as \"100/s\", \"6000/min\", \"10/h\", \"500/day\" or \"5/10s\""
            ),
            RateError::ZeroCount => f.write_str("invalid rate: the count must be at least 1"),
            RateError::ZeroPeriod => f.write_str("invalid rate: the period must be longer than zero"),
            RateError::ZeroBurst => f.write_str("invalid rate: the burst must be at least 1"),
            RateError::UnknownUnit(u) => write!(
                f,
                "invalid rate: unknown period unit {u:?} (use ms, s, min, h, day, week or year)"
            ),
            RateError::PeriodOverflow => {
                f.write_str("invalid rate: the period is longer than 584 years")
            }
            RateError::TooFine { count, period_nanos } => write!(
                f,
                "invalid rate: {count} per {period_nanos} ns is finer than one request per nanosecond"
            ),
            RateError::WindowOverflow => f.write_str(
                "invalid rate: burst x emission interval is longer than 146 years",
            ),
        }
    }
}

impl std::error::Error for RateError {}

impl Rate {
    /// `count` requests per `period`, burst `count`.
    pub fn new(count: u64, period: Duration) -> Result<Self, RateError> {
        let period = u64::try_from(period.as_nanos()).map_err(|_| RateError::PeriodOverflow)?;
        Self::from_nanos(count, period, count)
    }

    /// `count` per `period_nanos` nanoseconds with the given burst.
    pub fn from_nanos(count: u64, period_nanos: u64, burst: u64) -> Result<Self, RateError> {
        if count == 0 {
            return Err(RateError::ZeroCount);
        }
        if period_nanos == 0 {
            return Err(RateError::ZeroPeriod);
        }
        if count > period_nanos {
            return Err(RateError::TooFine {
                count,
                period_nanos,
            });
        }
        let r = Rate {
            count,
            period: period_nanos,
            burst: 1,
        };
        r.with_burst(burst)
    }

    /// `count` per second.
    pub fn per_second(count: u64) -> Result<Self, RateError> {
        Self::from_nanos(count, NANOS_PER_SEC, count)
    }

    /// `count` per minute.
    pub fn per_minute(count: u64) -> Result<Self, RateError> {
        Self::from_nanos(count, 60 * NANOS_PER_SEC, count)
    }

    /// `count` per hour.
    pub fn per_hour(count: u64) -> Result<Self, RateError> {
        Self::from_nanos(count, 3600 * NANOS_PER_SEC, count)
    }

    /// `count` per day.
    pub fn per_day(count: u64) -> Result<Self, RateError> {
        Self::from_nanos(count, 86_400 * NANOS_PER_SEC, count)
    }

    /// The same rate with another burst (the most cost units admitted at once).
    pub fn with_burst(self, burst: u64) -> Result<Self, RateError> {
        if burst == 0 {
            return Err(RateError::ZeroBurst);
        }
        let window = u128::from(burst) * u128::from(self.emission_interval_nanos());
        if window > u128::from(MAX_WINDOW_NANOS) {
            return Err(RateError::WindowOverflow);
        }
        Ok(Rate { burst, ..self })
    }

    /// Requests per period.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The period in nanoseconds.
    pub fn period_nanos(&self) -> u64 {
        self.period
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period)
    }

    /// The most cost units admitted at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Nanoseconds between two requests at the steady rate: `period / count`, rounded
    /// **up** so the limiter never admits more than `count` per period (for `"3/s"` it is
    /// 333,333,334 ns).
    pub fn emission_interval_nanos(&self) -> u64 {
        self.period.div_ceil(self.count)
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 6] = [
            (365 * 86_400 * NANOS_PER_SEC, "year"),
            (86_400 * NANOS_PER_SEC, "day"),
            (3600 * NANOS_PER_SEC, "h"),
            (60 * NANOS_PER_SEC, "min"),
            (NANOS_PER_SEC, "s"),
            (1_000_000, "ms"),
        ];
        write!(f, "{}/", self.count)?;
        match UNITS.iter().find(|(n, _)| self.period.is_multiple_of(*n)) {
            Some((n, unit)) if self.period == *n => write!(f, "{unit}")?,
            Some((n, unit)) => write!(f, "{}{unit}", self.period / n)?,
            None => write!(f, "{}ns", self.period)?,
        }
        if self.burst != self.count {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "microsecond" | "microseconds" => 1_000,
        "ms" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => NANOS_PER_SEC,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * NANOS_PER_SEC,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600 * NANOS_PER_SEC,
        "d" | "day" | "days" => 86_400 * NANOS_PER_SEC,
        "w" | "week" | "weeks" => 7 * 86_400 * NANOS_PER_SEC,
        "y" | "year" | "years" => 365 * 86_400 * NANOS_PER_SEC,
        _ => return None,
    })
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || RateError::Syntax(text.to_owned());
        let (spec, burst) = match text.split_once("burst") {
            None => (text, None),
            Some((spec, n)) => {
                let n = n.trim();
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                (spec, Some(n.parse::<u64>().map_err(|_| syntax())?))
            }
        };
        let spec = spec.trim();
        let (count, period) = spec.split_once('/').ok_or_else(syntax)?;
        let count = count.trim();
        let count: u64 = count.trim().parse().map_err(|_| syntax())?;
        let period = period.trim();
        let digits = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (multiplier, unit) = period.split_at(digits);
        let multiplier: u64 = if multiplier.is_empty() {
            1
        } else {
            multiplier.parse().map_err(|_| RateError::PeriodOverflow)?
        };
        if unit.is_empty() {
            return Err(syntax());
        }
        let unit = unit_nanos(unit).ok_or_else(|| RateError::UnknownUnit(unit.to_owned()))?;
        let period = multiplier
            .checked_mul(unit)
            .ok_or(RateError::PeriodOverflow)?;
        Rate::from_nanos(count, period, burst.unwrap_or(count))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Table {
                rate: String,
                #[serde(default)]
                burst: Option<u64>,
            },
        }
        match Repr::deserialize(deserializer)? {
            Repr::Text(text) => text.parse().map_err(de::Error::custom),
            Repr::Table { rate, burst } => {
                let r: Rate = rate.parse().map_err(de::Error::custom)?;
                match burst {
                    Some(b) => r.with_burst(b).map_err(de::Error::custom),
                    None => Ok(r),
                }
            }
        }
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("100/s", 100, NANOS_PER_SEC),
            ("6000/min", 6000, 60 * NANOS_PER_SEC),
            ("10/h", 10, 3600 * NANOS_PER_SEC),
            ("500/day", 500, 86_400 * NANOS_PER_SEC),
            ("5/10s", 5, 10 * NANOS_PER_SEC),
            ("3/250ms", 3, 250_000_000),
            (" 7 / hour ", 7, 3600 * NANOS_PER_SEC),
            ("1/100y", 1, 100 * 365 * 86_400 * NANOS_PER_SEC),
        ];
        for (text, count, period) in cases {
            let r: Rate = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (r.count(), r.period_nanos(), r.burst()),
                (count, period, count)
            );
        }
        let r: Rate = "100/s burst 20".parse().unwrap();
        assert_eq!(r.burst(), 20);
    }

    #[test]
    fn rejects_bad_rates_with_clear_errors() {
        assert_eq!("0/s".parse::<Rate>(), Err(RateError::ZeroCount));
        assert_eq!("5/0s".parse::<Rate>(), Err(RateError::ZeroPeriod));
        assert_eq!("5/s burst 0".parse::<Rate>(), Err(RateError::ZeroBurst));
        assert_eq!(
            "5/fortnight".parse::<Rate>(),
            Err(RateError::UnknownUnit("fortnight".into()))
        );
        assert_eq!("5/600y".parse::<Rate>(), Err(RateError::PeriodOverflow));
        assert_eq!(
            "1/99999999999999999999s".parse::<Rate>(),
            Err(RateError::PeriodOverflow)
        );
        assert!(matches!(
            "2000/us".parse::<Rate>(),
            Err(RateError::TooFine { .. })
        ));
        assert_eq!(
            "1/100y burst 2".parse::<Rate>(),
            Err(RateError::WindowOverflow)
        );
        for bad in [
            "",
            "s",
            "100",
            "100/",
            "/s",
            "-1/s",
            "1.5/s",
            "100/s burst",
            "100/s x 2",
            "100/s burst -3",
            "1 00/s",
        ] {
            let e = bad.parse::<Rate>().unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        let e = "abc/s".parse::<Rate>().unwrap_err().to_string();
        assert!(e.contains("abc/s") && e.contains("COUNT/PERIOD"), "{e}");
    }

    #[test]
    fn emission_interval_rounds_up() {
        let r: Rate = "3/s".parse().unwrap();
        assert_eq!(r.emission_interval_nanos(), 333_333_334);
        assert!(r.emission_interval_nanos() * 3 >= NANOS_PER_SEC);
        let r: Rate = "1/ns".parse().unwrap();
        assert_eq!(r.emission_interval_nanos(), 1);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "100/s",
            "6000/min",
            "10/h",
            "500/day",
            "5/10s",
            "3/250ms",
            "3/7ns",
            "1/year",
            "9/s burst 3",
        ] {
            let r: Rate = text.parse().unwrap();
            assert_eq!(r.to_string().parse::<Rate>().unwrap(), r, "{text}");
        }
    }

    #[test]
    fn serde_accepts_text_and_table() {
        #[derive(Debug, Deserialize, Serialize)]
        struct Cfg {
            a: Rate,
            b: Rate,
        }
        let cfg: Cfg =
            toml::from_str("a = \"100/s\"\nb = { rate = \"10/min\", burst = 3 }\n").unwrap();
        assert_eq!(cfg.a, Rate::per_second(100).unwrap());
        assert_eq!(cfg.b, Rate::per_minute(10).unwrap().with_burst(3).unwrap());
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(json, r#"{"a":"100/s","b":"10/min burst 3"}"#);
        let err = toml::from_str::<Cfg>("a = \"0/s\"\nb = \"1/s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("count must be at least 1"), "{err}");
    }
}

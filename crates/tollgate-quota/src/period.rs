//! Calendar periods: the day, ISO week, month or year an instant falls in, in a given time
//! zone, with optional billing anchors for months.
//!
//! A quota such as "100,000 calls per calendar month" needs to know, for every call, which
//! month it belongs to and when that month ends. A [`PeriodSpec`] describes how time is cut
//! into periods (the [`PeriodKind`], the company's IANA time zone and, for months, an
//! optional anchor day); [`PeriodSpec::period_at`] gives the [`Period`] an instant falls in.
//! All calendar and time-zone arithmetic is done by [`jiff`] with its bundled time-zone
//! database, so results do not depend on the host's zone files.
//!
//! # Semantics
//!
//! * **Half-open.** A period is `[start, end)`: the instant exactly at `start` belongs to
//!   it, the instant exactly at `end` belongs to the next period. Consecutive periods
//!   tile the time line without gaps or overlaps: `spec.next(&p).start() == p.end()`.
//! * **Local midnight.** A period starts at 00:00 local time, in the spec's time zone, on
//!   its first day: the first of the month for months, Monday for weeks (ISO 8601), 1
//!   January for years. Boundaries are stored as UTC [`Timestamp`]s.
//! * **DST.** Because boundaries are local midnights, a period's length in real time
//!   follows the zone's offset changes: in `Europe/Berlin`, March 2026 is 31 days minus one
//!   hour long and October 2026 is 31 days plus one hour. Where local midnight does not
//!   exist (some zones, such as `America/Santiago` or `America/Havana`, spring forward at
//!   midnight), the period starts at the first instant after the gap, which is what jiff's
//!   `compatible` disambiguation gives for a gap that begins at midnight (01:00 local).
//!   Where midnight occurs twice (a fall-back at or across midnight), the period starts at
//!   the first occurrence. In short, a period starts at the *first instant whose local
//!   wall-clock time is at or after midnight of its first day*. If a whole day is skipped
//!   (`Pacific/Apia` skipped 30 December 2011), the day period for it would be empty and is
//!   never returned: [`PeriodSpec::next`] and [`PeriodSpec::prev`] step over it.
//! * **Anchored months.** With an anchor day `a` (1 to 31, months only) a period runs from
//!   day `a` of one month to day `a` of the next, each clamped to the last day of a
//!   shorter month. The clamp does not drift: with anchor 31 the periods start on
//!   31 January, 28 February (29 in leap years), 31 March, 30 April, and so on.
//! * **Labels.** Each period has a stable, human-readable [`label`](Period::label), also
//!   its [`Display`](fmt::Display) form: `"2026-11-22"` for a day, `"2026-W47"` for an ISO
//!   week (the ISO week-numbering year, which differs from the calendar year around New
//!   Year), `"2026-11"` for a month, `"2026-11-15"` (the first day) for an anchored month
//!   and `"2026"` for a year. A label identifies a period only together with its spec.
//!
//! Instants whose period would reach beyond jiff's supported range (the years -9999 and
//! 9999) have no period: the `try_` methods return [`PeriodError::TimestampOutOfRange`]
//! and the plain methods panic.
//!
//! # Example
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use tollgate_quota::period::{PeriodKind, PeriodSpec};
//!
//! // A company billed per calendar month in its own time zone.
//! let spec = PeriodSpec::new(PeriodKind::Month, "Europe/Berlin", None)?;
//! let now: Timestamp = "2026-03-15T12:00:00Z".parse()?;
//! let march = spec.period_at(now);
//! assert_eq!(march.label(), "2026-03");
//! assert_eq!(march.start().to_string(), "2026-02-28T23:00:00Z"); // 00:00 CET
//! assert_eq!(march.end().to_string(), "2026-03-31T22:00:00Z"); // 00:00 CEST
//! assert_eq!(march.length(), SignedDuration::from_hours(31 * 24 - 1));
//! assert!(march.contains(now));
//! assert_eq!(spec.next(&march).label(), "2026-04");
//!
//! // The same instant in UTC and in Tokyo falls in different months.
//! let t: Timestamp = "2026-11-30T23:30:00Z".parse()?;
//! assert_eq!(PeriodSpec::monthly_utc().period_at(t).label(), "2026-11");
//! let tokyo = PeriodSpec::new(PeriodKind::Month, "Asia/Tokyo", None)?;
//! assert_eq!(tokyo.period_at(t).label(), "2026-12");
//!
//! // Billing anchored on the 31st: February is clamped, March is back on the 31st.
//! let anchored = PeriodSpec::monthly_utc().with_anchor_day(31)?;
//! let p = anchored.period_at("2026-03-10T00:00:00Z".parse()?);
//! assert_eq!(p.label(), "2026-02-28");
//! assert_eq!(p.end().to_string(), "2026-03-31T00:00:00Z");
//!
//! // Engine timestamps are nanoseconds since the Unix epoch.
//! let p = spec.period_at_nanos(1_800_000_000_000_000_000)?;
//! assert_eq!(p.label(), "2027-01");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// The name of the default time zone of a [`PeriodSpec`].
const UTC_NAME: &str = "UTC";

/// How far [`PeriodSpec::try_period_at`], `try_next` and `try_prev` may step from their
/// first guess. One or two steps suffice for every zone in the time-zone database (a
/// fall-back across midnight, a skipped day); the bound only guards against looping.
const MAX_STEPS: usize = 8;

/// The length of the periods of a [`PeriodSpec`].
///
/// Serialized in lowercase: `"day"`, `"week"`, `"month"`, `"year"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    /// A calendar day, from local midnight to local midnight.
    Day,
    /// An ISO 8601 week, from Monday 00:00 to the next Monday 00:00.
    Week,
    /// A calendar month (or, with an anchor day, a billing month).
    Month,
    /// A calendar year, from 1 January to 1 January.
    Year,
}

impl PeriodKind {
    /// The kind's name as used in configuration: `"day"`, `"week"`, `"month"` or `"year"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Day => "day",
            PeriodKind::Week => "week",
            PeriodKind::Month => "month",
            PeriodKind::Year => "year",
        }
    }
}

impl fmt::Display for PeriodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`PeriodSpec`] could not be built or a [`Period`] could not be found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeriodError {
    /// The time-zone name is not in the IANA time-zone database.
    UnknownTimeZone {
        /// The name as given.
        name: String,
    },
    /// The anchor day is not in `1..=31`.
    AnchorDayOutOfRange {
        /// The anchor day as given.
        anchor_day: i64,
    },
    /// An anchor day was given for a kind other than [`PeriodKind::Month`].
    AnchorDayNotMonthly {
        /// The kind the anchor was given for.
        kind: PeriodKind,
        /// The anchor day as given.
        anchor_day: u8,
    },
    /// The instant, or the period it falls in, is outside the range jiff supports
    /// (the years -9999 to 9999).
    TimestampOutOfRange {
        /// The instant, in nanoseconds since the Unix epoch.
        unix_nanos: i128,
    },
}

impl fmt::Display for PeriodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeriodError::UnknownTimeZone { name } => write!(
                f,
                "unknown time zone {name:?}: expected an IANA time-zone name such as \
                 \"Europe/Berlin\" or \"UTC\""
            ),
            PeriodError::AnchorDayOutOfRange { anchor_day } => write!(
                f,
                "anchor day {anchor_day} is out of range: it must be a day of the month, 1 to 31"
            ),
            PeriodError::AnchorDayNotMonthly { kind, anchor_day } => write!(
                f,
                "anchor day {anchor_day} given for a {kind} period: anchor days apply to \
                 monthly periods only"
            ),
            PeriodError::TimestampOutOfRange { unix_nanos } => write!(
                f,
                "the instant {unix_nanos} ns since the Unix epoch, or its period, is outside \
                 the supported range (years -9999 to 9999)"
            ),
        }
    }
}

impl std::error::Error for PeriodError {}

/// How time is cut into [`Period`]s: the kind of period, the time zone whose local
/// midnights bound them, and for months an optional billing anchor day.
///
/// Deserializes from a table such as
/// `{ kind = "month", time_zone = "Europe/Berlin", anchor_day = 15 }`, where `time_zone`
/// defaults to `"UTC"`, `anchor_day` is optional and unknown fields are rejected. Two
/// specs are equal when their kind, time-zone name and anchor day are equal. See the
/// [module documentation](self) for the semantics.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "SpecRepr", into = "SpecRepr")]
pub struct PeriodSpec {
    kind: PeriodKind,
    time_zone: TimeZone,
    time_zone_name: String,
    anchor_day: Option<u8>,
}

impl PeriodSpec {
    /// Calendar months in UTC: the default.
    pub fn monthly_utc() -> Self {
        PeriodSpec {
            kind: PeriodKind::Month,
            time_zone: TimeZone::UTC,
            time_zone_name: UTC_NAME.to_owned(),
            anchor_day: None,
        }
    }

    /// Periods of `kind` in the IANA time zone `time_zone` (such as `"Europe/Berlin"`;
    /// looked up case-insensitively in jiff's bundled database and stored under its
    /// canonical spelling), anchored on `anchor_day` if given.
    ///
    /// # Errors
    ///
    /// [`PeriodError::UnknownTimeZone`] if the zone is not in the database,
    /// [`PeriodError::AnchorDayNotMonthly`] if an anchor day is given for a kind other than
    /// [`PeriodKind::Month`], [`PeriodError::AnchorDayOutOfRange`] if it is not in `1..=31`.
    pub fn new(
        kind: PeriodKind,
        time_zone: &str,
        anchor_day: Option<u8>,
    ) -> Result<Self, PeriodError> {
        check_anchor(kind, anchor_day)?;
        let tz = TimeZone::get(time_zone).map_err(|_| PeriodError::UnknownTimeZone {
            name: time_zone.to_owned(),
        })?;
        let time_zone_name = tz.iana_name().unwrap_or(time_zone).to_owned();
        Ok(PeriodSpec {
            kind,
            time_zone: tz,
            time_zone_name,
            anchor_day,
        })
    }

    /// This spec with its months anchored on `anchor_day` (1 to 31): each period runs
    /// from that day of one month to that day of the next, clamped to shorter months.
    ///
    /// # Errors
    ///
    /// [`PeriodError::AnchorDayNotMonthly`] if the spec is not monthly,
    /// [`PeriodError::AnchorDayOutOfRange`] if the day is not in `1..=31`.
    pub fn with_anchor_day(mut self, anchor_day: u8) -> Result<Self, PeriodError> {
        check_anchor(self.kind, Some(anchor_day))?;
        self.anchor_day = Some(anchor_day);
        Ok(self)
    }

    /// The kind of period.
    pub fn kind(&self) -> PeriodKind {
        self.kind
    }

    /// The time zone whose local midnights bound the periods.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The time zone's IANA name, such as `"Europe/Berlin"` or `"UTC"`.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// The billing anchor day of a monthly spec, if any.
    pub fn anchor_day(&self) -> Option<u8> {
        self.anchor_day
    }

    /// The period `t` falls in: `p.start() <= t < p.end()`.
    ///
    /// # Panics
    ///
    /// If the period reaches beyond jiff's supported range (instants in the years -9999
    /// or 9999); [`try_period_at`](Self::try_period_at) returns an error instead.
    pub fn period_at(&self, t: Timestamp) -> Period {
        self.try_period_at(t).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The period `t` falls in, or an error if it reaches beyond jiff's supported range.
    ///
    /// # Errors
    ///
    /// [`PeriodError::TimestampOutOfRange`] for instants whose period starts before
    /// [`Timestamp::MIN`] or ends after [`Timestamp::MAX`].
    pub fn try_period_at(&self, t: Timestamp) -> Result<Period, PeriodError> {
        let out_of_range = |_| PeriodError::TimestampOutOfRange {
            unix_nanos: t.as_nanosecond(),
        };
        let local = self.time_zone.to_datetime(t).date();
        let first_day = self.first_day_for(local).map_err(out_of_range)?;
        let mut p = self.period_from(first_day).map_err(out_of_range)?;
        // The local date is almost always right; it is off by one period only where
        // local time runs backwards across a boundary (a fall-back across midnight).
        for _ in 0..MAX_STEPS {
            if t < p.start {
                p = self.raw_prev(&p).map_err(out_of_range)?;
            } else if t >= p.end {
                p = self.raw_next(&p).map_err(out_of_range)?;
            } else {
                return Ok(p);
            }
        }
        Err(PeriodError::TimestampOutOfRange {
            unix_nanos: t.as_nanosecond(),
        })
    }

    /// The period the instant `unix_nanos` nanoseconds after the Unix epoch falls in:
    /// the engine's wall-clock form (a `u64` or `i64` converts with `.into()`).
    ///
    /// # Errors
    ///
    /// [`PeriodError::TimestampOutOfRange`] if the instant or its period is outside
    /// jiff's supported range.
    pub fn period_at_nanos(&self, unix_nanos: i128) -> Result<Period, PeriodError> {
        let t = Timestamp::from_nanosecond(unix_nanos)
            .map_err(|_| PeriodError::TimestampOutOfRange { unix_nanos })?;
        self.try_period_at(t)
    }

    /// The period after `period`, which starts where `period` ends.
    ///
    /// `period` must come from this spec. A period that would be empty (a skipped day)
    /// is stepped over.
    ///
    /// # Panics
    ///
    /// If the next period ends after [`Timestamp::MAX`]; see [`try_next`](Self::try_next).
    pub fn next(&self, period: &Period) -> Period {
        self.try_next(period).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The period after `period`, or an error past the end of jiff's supported range.
    ///
    /// # Errors
    ///
    /// [`PeriodError::TimestampOutOfRange`] if the next period ends after
    /// [`Timestamp::MAX`].
    pub fn try_next(&self, period: &Period) -> Result<Period, PeriodError> {
        let out_of_range = |_| PeriodError::TimestampOutOfRange {
            unix_nanos: period.end.as_nanosecond(),
        };
        let mut p = self.raw_next(period).map_err(out_of_range)?;
        for _ in 0..MAX_STEPS {
            if !p.is_empty() {
                return Ok(p);
            }
            p = self.raw_next(&p).map_err(out_of_range)?;
        }
        Err(PeriodError::TimestampOutOfRange {
            unix_nanos: period.end.as_nanosecond(),
        })
    }

    /// The period before `period`, which ends where `period` starts.
    ///
    /// `period` must come from this spec. A period that would be empty (a skipped day)
    /// is stepped over.
    ///
    /// # Panics
    ///
    /// If the previous period starts before [`Timestamp::MIN`]; see
    /// [`try_prev`](Self::try_prev).
    pub fn prev(&self, period: &Period) -> Period {
        self.try_prev(period).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The period before `period`, or an error before the start of jiff's supported
    /// range.
    ///
    /// # Errors
    ///
    /// [`PeriodError::TimestampOutOfRange`] if the previous period starts before
    /// [`Timestamp::MIN`].
    pub fn try_prev(&self, period: &Period) -> Result<Period, PeriodError> {
        let out_of_range = |_| PeriodError::TimestampOutOfRange {
            unix_nanos: period.start.as_nanosecond(),
        };
        let mut p = self.raw_prev(period).map_err(out_of_range)?;
        for _ in 0..MAX_STEPS {
            if !p.is_empty() {
                return Ok(p);
            }
            p = self.raw_prev(&p).map_err(out_of_range)?;
        }
        Err(PeriodError::TimestampOutOfRange {
            unix_nanos: period.start.as_nanosecond(),
        })
    }

    /// The following period, possibly empty.
    fn raw_next(&self, p: &Period) -> Result<Period, jiff::Error> {
        self.period_from(self.next_first_day(p.first_day)?)
    }

    /// The preceding period, possibly empty.
    fn raw_prev(&self, p: &Period) -> Result<Period, jiff::Error> {
        self.period_from(self.prev_first_day(p.first_day)?)
    }

    /// The period whose first civil day is `first_day` (possibly empty).
    fn period_from(&self, first_day: Date) -> Result<Period, jiff::Error> {
        let end_day = self.next_first_day(first_day)?;
        Ok(Period {
            start: self.boundary(first_day)?,
            end: self.boundary(end_day)?,
            kind: self.kind,
            first_day,
            anchored: self.anchor_day.is_some(),
        })
    }

    /// The first civil day of the period that contains the civil day `day`.
    fn first_day_for(&self, day: Date) -> Result<Date, jiff::Error> {
        match (self.kind, self.anchor_day) {
            (PeriodKind::Day, _) => Ok(day),
            (PeriodKind::Week, _) => Ok(day.iso_week_date().first_of_week()?.date()),
            (PeriodKind::Month, None) => Ok(day.first_of_month()),
            (PeriodKind::Month, Some(anchor)) => {
                let this_month = anchored_day(day.first_of_month(), anchor)?;
                if day >= this_month {
                    Ok(this_month)
                } else {
                    anchored_day(day.first_of_month().checked_sub(1.month())?, anchor)
                }
            }
            (PeriodKind::Year, _) => Ok(day.first_of_year()),
        }
    }

    /// The first civil day of the period after the one starting on `first_day`.
    fn next_first_day(&self, first_day: Date) -> Result<Date, jiff::Error> {
        match (self.kind, self.anchor_day) {
            (PeriodKind::Day, _) => first_day.tomorrow(),
            (PeriodKind::Week, _) => first_day.checked_add(1.week()),
            (PeriodKind::Month, None) => first_day.checked_add(1.month()),
            (PeriodKind::Month, Some(anchor)) => {
                // From the anchor, not from `first_day`: a clamped day must not drift.
                anchored_day(first_day.first_of_month().checked_add(1.month())?, anchor)
            }
            (PeriodKind::Year, _) => first_day.checked_add(1.year()),
        }
    }

    /// The first civil day of the period before the one starting on `first_day`.
    fn prev_first_day(&self, first_day: Date) -> Result<Date, jiff::Error> {
        match (self.kind, self.anchor_day) {
            (PeriodKind::Day, _) => first_day.yesterday(),
            (PeriodKind::Week, _) => first_day.checked_sub(1.week()),
            (PeriodKind::Month, None) => first_day.checked_sub(1.month()),
            (PeriodKind::Month, Some(anchor)) => {
                anchored_day(first_day.first_of_month().checked_sub(1.month())?, anchor)
            }
            (PeriodKind::Year, _) => first_day.checked_sub(1.year()),
        }
    }

    /// The instant a period starting on the civil day `day` starts: the first instant
    /// whose local wall-clock time is at or after midnight of `day`.
    fn boundary(&self, day: Date) -> Result<Timestamp, jiff::Error> {
        let midnight = day.to_datetime(Time::midnight());
        match self.time_zone.to_ambiguous_timestamp(midnight).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(midnight),
            // Midnight happens twice: the first time.
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(midnight),
            // Midnight is skipped: the first instant after the gap, i.e. the transition.
            // When the gap begins exactly at midnight (all present-day cases) this is
            // what `compatible` gives; when it merely contains midnight (Toronto
            // 1919: 23:30 -> 00:30) `compatible` would land as far past the gap as
            // midnight lies inside it.
            AmbiguousOffset::Gap { before, after } => {
                let compatible = before.to_timestamp(midnight)?;
                let before_gap = after.to_timestamp(midnight)?;
                Ok(self
                    .time_zone
                    .following(before_gap)
                    .next()
                    .map(|transition| transition.timestamp())
                    .filter(|&transition| transition <= compatible)
                    .unwrap_or(compatible))
            }
        }
    }
}

impl Default for PeriodSpec {
    /// [`PeriodSpec::monthly_utc`].
    fn default() -> Self {
        PeriodSpec::monthly_utc()
    }
}

impl PartialEq for PeriodSpec {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.time_zone_name == other.time_zone_name
            && self.anchor_day == other.anchor_day
    }
}

impl Eq for PeriodSpec {}

impl std::hash::Hash for PeriodSpec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.time_zone_name.hash(state);
        self.anchor_day.hash(state);
    }
}

impl fmt::Display for PeriodSpec {
    /// Such as `month in Europe/Berlin` or `month in UTC from day 15`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.kind, self.time_zone_name)?;
        if let Some(anchor) = self.anchor_day {
            write!(f, " from day {anchor}")?;
        }
        Ok(())
    }
}

/// Checks an anchor day against its kind and range.
fn check_anchor(kind: PeriodKind, anchor_day: Option<u8>) -> Result<(), PeriodError> {
    match anchor_day {
        None => Ok(()),
        Some(anchor_day) if kind != PeriodKind::Month => {
            Err(PeriodError::AnchorDayNotMonthly { kind, anchor_day })
        }
        Some(anchor_day) if !(1..=31).contains(&anchor_day) => {
            Err(PeriodError::AnchorDayOutOfRange {
                anchor_day: i64::from(anchor_day),
            })
        }
        Some(_) => Ok(()),
    }
}

/// Day `anchor` of the month starting on `first_of_month`, clamped to its last day.
fn anchored_day(first_of_month: Date, anchor: u8) -> Result<Date, jiff::Error> {
    let last = first_of_month.days_in_month();
    let day = i8::try_from(anchor).map_or(last, |anchor| anchor.min(last));
    first_of_month.with().day(day).build()
}

/// The serialized form of a [`PeriodSpec`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecRepr {
    kind: PeriodKind,
    #[serde(default = "utc_name")]
    time_zone: String,
    /// Wider than `u8` so that out-of-range values get [`PeriodError`]'s message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anchor_day: Option<i64>,
}

fn utc_name() -> String {
    UTC_NAME.to_owned()
}

impl TryFrom<SpecRepr> for PeriodSpec {
    type Error = PeriodError;

    fn try_from(repr: SpecRepr) -> Result<Self, PeriodError> {
        let anchor_day = repr
            .anchor_day
            .map(|anchor_day| {
                u8::try_from(anchor_day)
                    .map_err(|_| PeriodError::AnchorDayOutOfRange { anchor_day })
            })
            .transpose()?;
        PeriodSpec::new(repr.kind, &repr.time_zone, anchor_day)
    }
}

impl From<PeriodSpec> for SpecRepr {
    fn from(spec: PeriodSpec) -> Self {
        SpecRepr {
            kind: spec.kind,
            time_zone: spec.time_zone_name,
            anchor_day: spec.anchor_day.map(i64::from),
        }
    }
}

/// One period: the half-open interval `[start, end)` of instants, with the civil day it
/// starts on and a label.
///
/// Ordered by start (then end). Serializes as
/// `{ "label": "2026-11", "start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z" }`
/// with RFC 3339 timestamps in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    start: Timestamp,
    end: Timestamp,
    kind: PeriodKind,
    first_day: Date,
    anchored: bool,
}

impl Period {
    /// The first instant of the period (inclusive).
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The first instant after the period (exclusive): the next period's start.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// Whether `t` falls in the period: `start <= t < end`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The period's length in real (elapsed) time, which DST changes make differ from
    /// its calendar length.
    pub fn length(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }

    /// The kind of period.
    pub fn kind(&self) -> PeriodKind {
        self.kind
    }

    /// The civil day, in the spec's time zone, the period starts on.
    pub fn first_day(&self) -> Date {
        self.first_day
    }

    /// The stable label: `"2026-11-22"` (day), `"2026-W47"` (ISO week), `"2026-11"`
    /// (month), `"2026-11-15"` (anchored month, its first day) or `"2026"` (year).
    pub fn label(&self) -> String {
        self.to_string()
    }

    /// The period after this one in `spec`, which must be the spec it came from; see
    /// [`PeriodSpec::next`].
    pub fn next(&self, spec: &PeriodSpec) -> Period {
        spec.next(self)
    }

    /// The period before this one in `spec`, which must be the spec it came from; see
    /// [`PeriodSpec::prev`].
    pub fn prev(&self, spec: &PeriodSpec) -> Period {
        spec.prev(self)
    }

    fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// Writes a year as four digits, or in ISO 8601's expanded form (as jiff does) outside
/// 0 to 9999.
fn write_year(f: &mut fmt::Formatter<'_>, year: i16) -> fmt::Result {
    if (0..=9999).contains(&year) {
        write!(f, "{year:04}")
    } else {
        write!(f, "{year:+07}")
    }
}

impl fmt::Display for Period {
    /// Writes the [label](Period::label).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = self.first_day;
        match self.kind {
            PeriodKind::Day => write!(f, "{day}"),
            PeriodKind::Month if self.anchored => write!(f, "{day}"),
            PeriodKind::Week => {
                let week = day.iso_week_date();
                write_year(f, week.year())?;
                write!(f, "-W{:02}", week.week())
            }
            PeriodKind::Month => {
                write_year(f, day.year())?;
                write!(f, "-{:02}", day.month())
            }
            PeriodKind::Year => write_year(f, day.year()),
        }
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Period", 3)?;
        s.serialize_field("label", &self.label())?;
        s.serialize_field("start", &self.start)?;
        s.serialize_field("end", &self.end)?;
        s.end()
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    use jiff::civil::date;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(kind: PeriodKind, tz: &str) -> PeriodSpec {
        PeriodSpec::new(kind, tz, None).unwrap()
    }

    fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    fn days(d: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * d)
    }

    /// Checks everything that must hold for the period `t` falls in, and returns it.
    /// `max_shift` bounds how far the period's real length may differ from its calendar
    /// length (the offset changes inside it).
    fn check(spec: &PeriodSpec, t: Timestamp, max_shift: SignedDuration) -> Period {
        let p = spec.period_at(t);
        assert!(p.start() <= t && t < p.end(), "{t} not in {p} {p:?}");
        assert!(p.contains(t));
        assert!(!p.contains(p.end()));
        let next = spec.next(&p);
        let prev = spec.prev(&p);
        assert_eq!(next.start(), p.end(), "{p:?} -> {next:?}");
        assert_eq!(prev.end(), p.start(), "{prev:?} -> {p:?}");
        assert_eq!(spec.prev(&next), p);
        assert_eq!(spec.next(&prev), p);
        assert_eq!(spec.period_at(p.start()), p);
        assert_eq!(spec.period_at(p.end() - SignedDuration::from_nanos(1)), p);
        assert_eq!(spec.period_at(p.end()), next);
        assert_eq!(
            spec.period_at(p.start() - SignedDuration::from_nanos(1)),
            prev
        );
        assert!(prev < p && p < next);
        assert_eq!(p.kind(), spec.kind());

        // The first day is where the period starts locally (or, after a gap at midnight,
        // the day the gap ends on), and what the next period starts on in civil terms.
        let local_start = spec.time_zone().to_datetime(p.start());
        let midnight = p.first_day().to_datetime(Time::midnight());
        assert!(
            local_start >= midnight && local_start.duration_since(midnight) <= hours(2),
            "{p:?} starts at local {local_start}"
        );
        let calendar = next.first_day().duration_since(p.first_day());
        let (min_days, max_days) = match spec.kind() {
            PeriodKind::Day => (1, 2),
            PeriodKind::Week => (7, 7),
            PeriodKind::Month => (28, 31),
            PeriodKind::Year => (365, 366),
        };
        assert!(
            days(min_days) <= calendar && calendar <= days(max_days),
            "{p:?} -> {next:?}"
        );
        let shift = (p.length() - calendar).abs();
        assert!(shift <= max_shift, "{p:?}: length {}", p.length());
        assert!(p.length() > SignedDuration::ZERO);

        // Labels are distinct and round-trip through Display.
        assert_eq!(p.label(), p.to_string());
        assert_ne!(p.label(), next.label());
        p
    }

    #[test]
    fn month_lengths() {
        let s = PeriodSpec::monthly_utc();
        let cases = [
            ("2026-01-15T12:00:00Z", "2026-01", 31),
            ("2026-02-15T12:00:00Z", "2026-02", 28),
            ("2028-02-15T12:00:00Z", "2028-02", 29),
            ("2100-02-15T12:00:00Z", "2100-02", 28),
            ("2000-02-15T12:00:00Z", "2000-02", 29),
            ("2026-04-15T12:00:00Z", "2026-04", 30),
            ("2026-12-15T12:00:00Z", "2026-12", 31),
        ];
        for (at, label, len) in cases {
            let p = check(&s, ts(at), SignedDuration::ZERO);
            assert_eq!(p.label(), label);
            assert_eq!(p.length(), days(len), "{label}");
        }
        let feb = s.period_at(ts("2028-02-29T23:59:59Z"));
        assert_eq!(feb.start(), ts("2028-02-01T00:00:00Z"));
        assert_eq!(feb.end(), ts("2028-03-01T00:00:00Z"));
    }

    #[test]
    fn year_boundary_and_leap_years() {
        let s = PeriodSpec::monthly_utc();
        let dec = s.period_at(ts("2026-12-31T23:59:59.999999999Z"));
        assert_eq!(dec.label(), "2026-12");
        let jan = s.next(&dec);
        assert_eq!(jan.label(), "2027-01");
        assert_eq!(jan.start(), ts("2027-01-01T00:00:00Z"));
        assert_eq!(s.prev(&jan), dec);
        assert_eq!(dec.next(&s), jan);
        assert_eq!(jan.prev(&s), dec);

        let y = spec(PeriodKind::Year, "UTC");
        for (year, len) in [
            (2026, 365),
            (2028, 366),
            (2000, 366),
            (2100, 365),
            (1970, 365),
        ] {
            let p = check(
                &y,
                ts(&format!("{year}-06-01T00:00:00Z")),
                SignedDuration::ZERO,
            );
            assert_eq!(p.label(), year.to_string());
            assert_eq!(p.length(), days(len), "{year}");
            assert_eq!(p.first_day(), date(year, 1, 1));
        }

        let d = spec(PeriodKind::Day, "UTC");
        let leap_day = d.period_at(ts("2028-02-29T10:00:00Z"));
        assert_eq!(leap_day.label(), "2028-02-29");
        assert_eq!(d.next(&leap_day).label(), "2028-03-01");
        let no_leap = d.period_at(ts("2100-02-28T10:00:00Z"));
        assert_eq!(d.next(&no_leap).label(), "2100-03-01");
        let new_year = d.period_at(ts("2026-12-31T10:00:00Z"));
        assert_eq!(d.next(&new_year).label(), "2027-01-01");
    }

    #[test]
    fn boundary_instant_belongs_to_the_new_period() {
        let s = spec(PeriodKind::Month, "Europe/Berlin");
        // 00:00 CET on 1 November 2026.
        let boundary = ts("2026-10-31T23:00:00Z");
        let nov = s.period_at(boundary);
        assert_eq!(nov.label(), "2026-11");
        assert_eq!(nov.start(), boundary);
        let oct = s.period_at(boundary - SignedDuration::from_nanos(1));
        assert_eq!(oct.label(), "2026-10");
        assert_eq!(oct.end(), boundary);
        assert!(!oct.contains(boundary));
        assert!(nov.contains(boundary));

        let nanos = boundary.as_nanosecond();
        assert_eq!(s.period_at_nanos(nanos).unwrap(), nov);
        assert_eq!(s.period_at_nanos(nanos - 1).unwrap(), oct);
    }

    #[test]
    fn berlin_dst_months_and_days() {
        let s = spec(PeriodKind::Month, "Europe/Berlin");
        let march = check(&s, ts("2026-03-15T00:00:00Z"), hours(1));
        assert_eq!(march.start(), ts("2026-02-28T23:00:00Z"));
        assert_eq!(march.end(), ts("2026-03-31T22:00:00Z"));
        assert_eq!(march.length(), days(31) - hours(1));
        let october = check(&s, ts("2026-10-15T00:00:00Z"), hours(1));
        assert_eq!(october.start(), ts("2026-09-30T22:00:00Z"));
        assert_eq!(october.end(), ts("2026-10-31T23:00:00Z"));
        assert_eq!(october.length(), days(31) + hours(1));
        let june = check(&s, ts("2026-06-15T00:00:00Z"), hours(1));
        assert_eq!(june.length(), days(30));

        let d = spec(PeriodKind::Day, "Europe/Berlin");
        let spring = check(&d, ts("2026-03-29T12:00:00Z"), hours(1));
        assert_eq!(spring.label(), "2026-03-29");
        assert_eq!(spring.length(), hours(23));
        let autumn = check(&d, ts("2026-10-25T12:00:00Z"), hours(1));
        assert_eq!(autumn.label(), "2026-10-25");
        assert_eq!(autumn.length(), hours(25));
    }

    #[test]
    fn midnight_dst_gap_starts_after_the_gap() {
        // Chile springs forward at 24:00 on the first Saturday of September (2026-09-05):
        // local midnight of 6 September does not exist, the day starts at 01:00 -03.
        let d = spec(PeriodKind::Day, "America/Santiago");
        let sunday = check(&d, ts("2026-09-06T12:00:00Z"), hours(1));
        assert_eq!(sunday.label(), "2026-09-06");
        assert_eq!(sunday.start(), ts("2026-09-06T04:00:00Z"));
        assert_eq!(
            d.time_zone().to_datetime(sunday.start()),
            date(2026, 9, 6).at(1, 0, 0, 0)
        );
        assert_eq!(sunday.length(), hours(23));
        let saturday = d.prev(&sunday);
        assert_eq!(saturday.length(), hours(24));
        assert_eq!(saturday.end(), sunday.start());
        let just_before = d.period_at(ts("2026-09-06T03:59:59.999999999Z"));
        assert_eq!(just_before, saturday);

        // Cuba springs forward 00:00 -> 01:00 and falls back 01:00 -> 00:00, so midnight
        // is skipped in March and happens twice in November: the first one counts.
        let d = spec(PeriodKind::Day, "America/Havana");
        let spring = check(&d, ts("2026-03-08T12:00:00Z"), hours(1));
        assert_eq!(spring.start(), ts("2026-03-08T05:00:00Z"));
        assert_eq!(spring.length(), hours(23));
        let autumn = check(&d, ts("2026-11-01T12:00:00Z"), hours(1));
        assert_eq!(autumn.label(), "2026-11-01");
        assert_eq!(autumn.start(), ts("2026-11-01T04:00:00Z"));
        assert_eq!(autumn.length(), hours(25));
        // The second 00:30 of 1 November belongs to that day too.
        assert_eq!(d.period_at(ts("2026-11-01T05:30:00Z")), autumn);

        // A monthly period starting on such a day starts after the gap as well.
        let m = spec(PeriodKind::Month, "America/Havana");
        let nov = check(&m, ts("2026-11-15T00:00:00Z"), hours(1));
        assert_eq!(nov.start(), ts("2026-11-01T04:00:00Z"));
    }

    #[test]
    fn fall_back_across_midnight() {
        // St. John's fell back at 00:01 local from 1987 to 2010: 00:00:59 NDT was followed
        // by 23:01 NST of the previous day. Those repeated minutes of 6 November 2010
        // come after 7 November has started, so they belong to 7 November.
        let d = spec(PeriodKind::Day, "America/St_Johns");
        let seventh = check(&d, ts("2010-11-07T12:00:00Z"), hours(1));
        assert_eq!(seventh.start(), ts("2010-11-07T02:30:00Z")); // 00:00 NDT
        assert_eq!(seventh.length(), hours(25));
        let repeated = ts("2010-11-07T03:00:00Z");
        assert_eq!(
            d.time_zone().to_datetime(repeated),
            date(2010, 11, 6).at(23, 30, 0, 0)
        );
        assert_eq!(check(&d, repeated, hours(1)), seventh);
        let sixth = d.prev(&seventh);
        assert_eq!(sixth.label(), "2010-11-06");
        assert_eq!(sixth.length(), hours(24));
    }

    #[test]
    fn gap_containing_midnight_starts_at_the_transition() {
        // Toronto, 1919-03-30: 23:30 EST jumped to 00:30 EDT. 31 March starts at the first
        // instant after the gap (00:30 EDT), not at 01:00 EDT where jiff's `compatible`
        // would put a nonexistent 00:00.
        let d = spec(PeriodKind::Day, "America/Toronto");
        let p = check(&d, ts("1919-03-31T12:00:00Z"), hours(1));
        assert_eq!(p.label(), "1919-03-31");
        assert_eq!(p.start(), ts("1919-03-31T04:30:00Z"));
        assert_eq!(
            d.prev(&p).length(),
            hours(23) + SignedDuration::from_mins(30)
        );
        let compatible = d
            .time_zone()
            .to_ambiguous_timestamp(date(1919, 3, 31).at(0, 0, 0, 0))
            .compatible()
            .unwrap();
        assert_eq!(compatible, ts("1919-03-31T05:00:00Z"));
    }

    #[test]
    fn skipped_day_is_stepped_over() {
        // Samoa skipped 30 December 2011, going from -10 to +14.
        let d = spec(PeriodKind::Day, "Pacific/Apia");
        let before = d.period_at(ts("2011-12-30T09:59:59.999999999Z"));
        assert_eq!(before.label(), "2011-12-29");
        let after = d.next(&before);
        assert_eq!(after.label(), "2011-12-31");
        assert_eq!(after.start(), ts("2011-12-30T10:00:00Z"));
        assert_eq!(after.start(), before.end());
        assert_eq!(d.prev(&after), before);
        assert_eq!(d.period_at(ts("2011-12-30T10:00:00Z")), after);

        let w = spec(PeriodKind::Week, "Pacific/Apia");
        let week = w.period_at(ts("2011-12-30T12:00:00Z"));
        assert_eq!(week.label(), "2011-W52");
        assert_eq!(week.length(), days(6));
        let m = spec(PeriodKind::Month, "Pacific/Apia");
        assert_eq!(m.period_at(ts("2011-12-30T12:00:00Z")).length(), days(30));
        let y = spec(PeriodKind::Year, "Pacific/Apia");
        assert_eq!(y.period_at(ts("2011-12-30T12:00:00Z")).length(), days(364));

        // Every hour around the jump satisfies the invariants.
        let mut t = ts("2011-12-20T00:00:00Z");
        while t < ts("2012-01-10T00:00:00Z") {
            for s in [&d, &w, &m, &y] {
                check(s, t, hours(25));
            }
            t += hours(1);
        }
    }

    #[test]
    fn company_time_zone_versus_utc() {
        let t = ts("2026-11-30T23:30:00Z");
        let utc = PeriodSpec::monthly_utc().period_at(t);
        assert_eq!(utc.label(), "2026-11");
        let tokyo = spec(PeriodKind::Month, "Asia/Tokyo").period_at(t);
        assert_eq!(tokyo.label(), "2026-12");
        assert_eq!(tokyo.start(), ts("2026-11-30T15:00:00Z"));
        assert_ne!(utc, tokyo);
        let la = spec(PeriodKind::Month, "America/Los_Angeles");
        let p = la.period_at(ts("2026-12-01T03:00:00Z"));
        assert_eq!(p.label(), "2026-11");
        assert_eq!(p.end(), ts("2026-12-01T08:00:00Z"));
        assert_eq!(p.length(), days(30) + hours(1)); // PDT -> PST on 1 November
        let kathmandu = spec(PeriodKind::Day, "Asia/Kathmandu").period_at(t);
        assert_eq!(kathmandu.label(), "2026-12-01");
        assert_eq!(kathmandu.start(), ts("2026-11-30T18:15:00Z"));
    }

    #[test]
    fn anchored_months_clamp_without_drift() {
        let s = PeriodSpec::monthly_utc().with_anchor_day(31).unwrap();
        let p = check(&s, ts("2026-02-10T00:00:00Z"), SignedDuration::ZERO);
        assert_eq!(p.label(), "2026-01-31");
        assert_eq!(p.end(), ts("2026-02-28T00:00:00Z"));
        let mut p = s.period_at(ts("2026-01-31T00:00:00Z"));
        let mut starts = vec![p.first_day()];
        for _ in 0..13 {
            p = s.next(&p);
            starts.push(p.first_day());
        }
        let expected = [
            date(2026, 1, 31),
            date(2026, 2, 28),
            date(2026, 3, 31),
            date(2026, 4, 30),
            date(2026, 5, 31),
            date(2026, 6, 30),
            date(2026, 7, 31),
            date(2026, 8, 31),
            date(2026, 9, 30),
            date(2026, 10, 31),
            date(2026, 11, 30),
            date(2026, 12, 31),
            date(2027, 1, 31),
            date(2027, 2, 28),
        ];
        assert_eq!(starts, expected);
        // And back again.
        for want in expected.iter().rev().skip(1) {
            p = s.prev(&p);
            assert_eq!(p.first_day(), *want);
        }

        let s30 = PeriodSpec::new(PeriodKind::Month, "UTC", Some(30)).unwrap();
        let feb = check(&s30, ts("2026-03-01T00:00:00Z"), SignedDuration::ZERO);
        assert_eq!(feb.label(), "2026-02-28");
        assert_eq!(feb.end(), ts("2026-03-30T00:00:00Z"));
        assert_eq!(s30.prev(&feb).label(), "2026-01-30");
        assert_eq!(s30.prev(&feb).length(), days(29));

        let s29 = PeriodSpec::new(PeriodKind::Month, "UTC", Some(29)).unwrap();
        let leap = check(&s29, ts("2028-03-01T00:00:00Z"), SignedDuration::ZERO);
        assert_eq!(leap.label(), "2028-02-29");
        assert_eq!(leap.length(), days(29));
        let common = check(&s29, ts("2027-03-01T00:00:00Z"), SignedDuration::ZERO);
        assert_eq!(common.label(), "2027-02-28");
        assert_eq!(common.end(), ts("2027-03-29T00:00:00Z"));

        // An instant on the anchor day itself starts the new period; one just before
        // does not.
        let s15 = PeriodSpec::new(PeriodKind::Month, "Europe/Berlin", Some(15)).unwrap();
        let p = s15.period_at(ts("2026-11-14T23:00:00Z"));
        assert_eq!(p.label(), "2026-11-15");
        assert_eq!(p.start(), ts("2026-11-14T23:00:00Z"));
        assert_eq!(p.end(), ts("2026-12-14T23:00:00Z"));
        let before = s15.period_at(ts("2026-11-14T22:59:59.999999999Z"));
        assert_eq!(before.label(), "2026-10-15");
        assert_eq!(before.length(), days(31) + hours(1));
    }

    #[test]
    fn anchor_day_validation() {
        for bad in [0, 32, 255] {
            assert_eq!(
                PeriodSpec::new(PeriodKind::Month, "UTC", Some(bad)),
                Err(PeriodError::AnchorDayOutOfRange {
                    anchor_day: i64::from(bad)
                })
            );
            assert!(PeriodSpec::monthly_utc().with_anchor_day(bad).is_err());
        }
        for kind in [PeriodKind::Day, PeriodKind::Week, PeriodKind::Year] {
            assert_eq!(
                PeriodSpec::new(kind, "UTC", Some(5)),
                Err(PeriodError::AnchorDayNotMonthly {
                    kind,
                    anchor_day: 5
                })
            );
            assert_eq!(
                spec(kind, "UTC").with_anchor_day(5),
                Err(PeriodError::AnchorDayNotMonthly {
                    kind,
                    anchor_day: 5
                })
            );
        }
        let s = PeriodSpec::monthly_utc().with_anchor_day(1).unwrap();
        assert_eq!(s.anchor_day(), Some(1));
        // Anchor 1 gives calendar months, labelled by their first day.
        let p = s.period_at(ts("2026-11-20T00:00:00Z"));
        assert_eq!(p.label(), "2026-11-01");
        assert_eq!(p.start(), ts("2026-11-01T00:00:00Z"));
        assert_eq!(p.end(), ts("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn time_zone_names() {
        let err = PeriodSpec::new(PeriodKind::Month, "Mars/Olympus_Mons", None).unwrap_err();
        assert_eq!(
            err,
            PeriodError::UnknownTimeZone {
                name: "Mars/Olympus_Mons".into()
            }
        );
        assert!(err.to_string().contains("\"Mars/Olympus_Mons\""), "{err}");
        assert!(PeriodSpec::new(PeriodKind::Month, "", None).is_err());
        let s = PeriodSpec::new(PeriodKind::Month, "europe/berlin", None).unwrap();
        assert_eq!(s.time_zone_name(), "Europe/Berlin");
        assert_eq!(s, spec(PeriodKind::Month, "Europe/Berlin"));
        assert_eq!(s.to_string(), "month in Europe/Berlin");
        assert_eq!(PeriodSpec::default(), spec(PeriodKind::Month, "UTC"));
        assert_eq!(PeriodSpec::default().time_zone_name(), "UTC");
        assert_eq!(
            PeriodSpec::new(PeriodKind::Month, "UTC", Some(15))
                .unwrap()
                .to_string(),
            "month in UTC from day 15"
        );
        assert_ne!(
            spec(PeriodKind::Month, "UTC"),
            spec(PeriodKind::Month, "Etc/UTC")
        );
    }

    #[test]
    fn iso_weeks_across_year_end() {
        let w = spec(PeriodKind::Week, "UTC");
        let cases = [
            // 2026 starts on a Thursday, so it has 53 ISO weeks.
            ("2026-12-31T12:00:00Z", "2026-W53", date(2026, 12, 28)),
            ("2027-01-03T23:59:59Z", "2026-W53", date(2026, 12, 28)),
            ("2027-01-04T00:00:00Z", "2027-W01", date(2027, 1, 4)),
            // 30 December 2024 (a Monday) starts week 1 of 2025.
            ("2024-12-30T00:00:00Z", "2025-W01", date(2024, 12, 30)),
            ("2024-12-29T23:59:59Z", "2024-W52", date(2024, 12, 23)),
            ("2021-01-01T00:00:00Z", "2020-W53", date(2020, 12, 28)),
            ("2026-11-22T12:00:00Z", "2026-W47", date(2026, 11, 16)),
        ];
        for (at, label, monday) in cases {
            let p = check(&w, ts(at), SignedDuration::ZERO);
            assert_eq!(p.label(), label, "{at}");
            assert_eq!(p.first_day(), monday, "{at}");
            assert_eq!(p.length(), days(7));
        }
        let w53 = w.period_at(ts("2026-12-31T12:00:00Z"));
        assert_eq!(w.next(&w53).label(), "2027-W01");
        // Berlin weeks start at local midnight on Monday and change length with DST.
        let wb = spec(PeriodKind::Week, "Europe/Berlin");
        let p = check(&wb, ts("2026-03-29T12:00:00Z"), hours(1));
        assert_eq!(p.start(), ts("2026-03-22T23:00:00Z"));
        assert_eq!(p.length(), days(7) - hours(1));
    }

    #[test]
    fn labels() {
        let t = ts("2026-11-22T12:00:00Z");
        let cases = [
            (spec(PeriodKind::Day, "UTC"), "2026-11-22"),
            (spec(PeriodKind::Week, "UTC"), "2026-W47"),
            (spec(PeriodKind::Month, "UTC"), "2026-11"),
            (
                PeriodSpec::new(PeriodKind::Month, "UTC", Some(15)).unwrap(),
                "2026-11-15",
            ),
            (spec(PeriodKind::Year, "UTC"), "2026"),
        ];
        for (s, label) in cases {
            let p = s.period_at(t);
            assert_eq!(p.label(), label);
            assert_eq!(p.to_string(), label);
        }
        let early = spec(PeriodKind::Month, "UTC").period_at(ts("0042-03-04T00:00:00Z"));
        assert_eq!(early.label(), "0042-03");
        let bc = spec(PeriodKind::Year, "UTC").period_at(ts("-000044-03-15T00:00:00Z"));
        assert_eq!(bc.label(), "-000044");
        assert_eq!(PeriodKind::Week.to_string(), "week");
    }

    #[test]
    fn out_of_range() {
        let s = PeriodSpec::monthly_utc();
        assert_eq!(
            s.period_at_nanos(i128::MAX),
            Err(PeriodError::TimestampOutOfRange {
                unix_nanos: i128::MAX
            })
        );
        assert!(s.period_at_nanos(i128::MIN).is_err());
        // The last and first months are cut by jiff's range.
        assert!(s.try_period_at(Timestamp::MAX).is_err());
        assert!(s.try_period_at(Timestamp::MIN).is_err());
        let last = s.period_at(ts("9999-11-15T00:00:00Z"));
        assert_eq!(last.label(), "9999-11");
        assert!(s.try_next(&last).is_err());
        let first = s.period_at(ts("-009999-02-15T00:00:00Z"));
        assert!(s.try_prev(&first).is_err());
        assert!(s
            .try_period_at(Timestamp::MAX)
            .unwrap_err()
            .to_string()
            .contains("outside the supported range"));
        // Every u64 engine timestamp is fine.
        let p = s.period_at_nanos(u64::MAX.into()).unwrap();
        assert_eq!(p.label(), "2554-07");
        let p = s.period_at_nanos(0).unwrap();
        assert_eq!(p.label(), "1970-01");
        let p = s.period_at_nanos(i64::MIN.into()).unwrap();
        assert_eq!(p.label(), "1677-09");
    }

    #[test]
    fn error_messages() {
        let msgs = [
            PeriodError::AnchorDayOutOfRange { anchor_day: 32 }.to_string(),
            PeriodError::AnchorDayNotMonthly {
                kind: PeriodKind::Week,
                anchor_day: 3,
            }
            .to_string(),
        ];
        assert!(
            msgs[0].contains("32") && msgs[0].contains("1 to 31"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].contains("week") && msgs[1].contains("monthly"),
            "{}",
            msgs[1]
        );
        let boxed: Box<dyn std::error::Error> =
            Box::new(PeriodError::UnknownTimeZone { name: "X".into() });
        assert!(boxed.to_string().contains("unknown time zone"));
    }

    #[derive(Debug, Deserialize)]
    struct Config {
        period: PeriodSpec,
    }

    fn from_toml(s: &str) -> Result<PeriodSpec, String> {
        toml::from_str::<Config>(s)
            .map(|c| c.period)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn serde_toml() {
        let s = from_toml(
            r#"period = { kind = "month", time_zone = "Europe/Berlin", anchor_day = 15 }"#,
        )
        .unwrap();
        assert_eq!(
            s,
            PeriodSpec::new(PeriodKind::Month, "Europe/Berlin", Some(15)).unwrap()
        );
        let s = from_toml("[period]\nkind = \"week\"\n").unwrap();
        assert_eq!(s, spec(PeriodKind::Week, "UTC"));
        assert_eq!(s.anchor_day(), None);
        for kind in ["day", "week", "month", "year"] {
            let s = from_toml(&format!("period = {{ kind = \"{kind}\" }}")).unwrap();
            assert_eq!(s.kind().as_str(), kind);
        }

        let bad_zone = from_toml(r#"period = { kind = "month", time_zone = "Europe/Berlln" }"#);
        let msg = bad_zone.unwrap_err();
        assert!(msg.contains("unknown time zone \"Europe/Berlln\""), "{msg}");
        for anchor in ["0", "32", "-1", "300"] {
            let msg = from_toml(&format!(
                "period = {{ kind = \"month\", anchor_day = {anchor} }}"
            ))
            .unwrap_err();
            assert!(
                msg.contains(&format!("anchor day {anchor} is out of range")),
                "{msg}"
            );
        }
        let msg = from_toml(r#"period = { kind = "year", anchor_day = 3 }"#).unwrap_err();
        assert!(msg.contains("monthly periods only"), "{msg}");
        let msg = from_toml(r#"period = { kind = "month", timezone = "UTC" }"#).unwrap_err();
        assert!(msg.contains("unknown field"), "{msg}");
        let msg = from_toml(r#"period = { kind = "monthly" }"#).unwrap_err();
        assert!(msg.contains("unknown variant"), "{msg}");
        assert!(from_toml(r#"period = { time_zone = "UTC" }"#).is_err());
    }

    #[test]
    fn serde_json() {
        let s: PeriodSpec = serde_json::from_str(
            r#"{"kind": "month", "time_zone": "Asia/Tokyo", "anchor_day": 31}"#,
        )
        .unwrap();
        assert_eq!(s.time_zone_name(), "Asia/Tokyo");
        assert_eq!(s.anchor_day(), Some(31));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"month","time_zone":"Asia/Tokyo","anchor_day":31}"#
        );
        let back: PeriodSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            serde_json::to_string(&PeriodSpec::monthly_utc()).unwrap(),
            r#"{"kind":"month","time_zone":"UTC"}"#
        );
        let s: PeriodSpec = serde_json::from_str(r#"{"kind": "day"}"#).unwrap();
        assert_eq!(s, spec(PeriodKind::Day, "UTC"));

        let err = serde_json::from_str::<PeriodSpec>(r#"{"kind": "day", "time_zone": "Nowhere"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown time zone \"Nowhere\""), "{err}");
        let err = serde_json::from_str::<PeriodSpec>(r#"{"kind": "month", "anchor_day": 99}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("anchor day 99 is out of range"), "{err}");
        assert!(serde_json::from_str::<PeriodSpec>(r#"{"kind": "month", "extra": 1}"#).is_err());

        let p = PeriodSpec::monthly_utc().period_at(ts("2026-11-22T12:00:00Z"));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"label":"2026-11","start":"2026-11-01T00:00:00Z","end":"2026-12-01T00:00:00Z"}"#
        );
        let p = spec(PeriodKind::Month, "Europe/Berlin").period_at(ts("2026-11-22T12:00:00Z"));
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::json!({
                "label": "2026-11",
                "start": "2026-10-31T23:00:00Z",
                "end": "2026-11-30T23:00:00Z",
            })
        );
    }

    const ZONES: &[&str] = &[
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/St_Johns",
        "America/Santiago",
        "America/Havana",
        "America/Sao_Paulo",
        "Asia/Tokyo",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Africa/Casablanca",
        "Europe/Moscow",
    ];

    fn arb_spec() -> impl Strategy<Value = PeriodSpec> {
        let kind = prop_oneof![
            Just(PeriodKind::Day),
            Just(PeriodKind::Week),
            Just(PeriodKind::Month),
            Just(PeriodKind::Year),
        ];
        (kind, prop::sample::select(ZONES), 0u8..=31).prop_map(|(kind, zone, anchor)| {
            let anchor = (kind == PeriodKind::Month && anchor > 0).then_some(anchor);
            PeriodSpec::new(kind, zone, anchor).unwrap()
        })
    }

    proptest! {
        #[test]
        fn period_invariants(
            spec in arb_spec(),
            secs in ts("1970-01-01T00:00:00Z").as_second()..ts("2200-01-01T00:00:00Z").as_second(),
            nanos in 0i32..1_000_000_000,
        ) {
            let t = Timestamp::new(secs, nanos).unwrap();
            // No zone in the list changes its offset by more than two hours at once
            // (St. John's double daylight time in 1988) within 1970..2200.
            let p = check(&spec, t, hours(2));
            prop_assert_eq!(spec.period_at_nanos(t.as_nanosecond()).unwrap(), p);
        }
    }
}

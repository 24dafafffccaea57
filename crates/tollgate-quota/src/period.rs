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
        self.step(period, period.end, Self::raw_next)
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
        self.step(period, period.start, Self::raw_prev)
    }

    /// The first non-empty period `raw` steps to from `period` (stepping over at most
    /// `MAX_STEPS` empty ones); out of range at `at` otherwise.
    fn step(
        &self,
        period: &Period,
        at: Timestamp,
        raw: impl Fn(&Self, &Period) -> Result<Period, jiff::Error>,
    ) -> Result<Period, PeriodError> {
        let out_of_range = |_| PeriodError::TimestampOutOfRange {
            unix_nanos: at.as_nanosecond(),
        };
        let mut p = raw(self, period).map_err(out_of_range)?;
        for _ in 0..MAX_STEPS {
            if !p.is_empty() {
                return Ok(p);
            }
            p = raw(self, &p).map_err(out_of_range)?;
        }
        Err(PeriodError::TimestampOutOfRange {
            unix_nanos: at.as_nanosecond(),
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
mod tests;

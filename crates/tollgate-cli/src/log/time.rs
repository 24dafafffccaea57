//! Log times to Unix nanoseconds: RFC 3339 (JSON lines), `dd/Mon/yyyy:HH:MM:SS ±hhmm`
//! (combined logs) and numbers of epoch units. Both text layouts go through one parse
//! ([`parse_time`]) with one cache of the last day and hour ([`DayCache`]) and one
//! same-hour fast path ([`DayCache::same_hour`]); a [`Layout`] says where a format puts
//! the date, the hour and the offset.
use jiff::civil::{Date, Time};
use jiff::tz::Offset;
use jiff::Timestamp;

use super::error::{excerpt, LineError, LineErrorKind};
use super::mapping::EpochUnit;

/// The calendar part of the last time parsed: date text and UTC offset → the Unix second
/// of that day's local midnight.
#[derive(Clone, Debug, Default)]
pub(super) struct DayCache {
    /// The date text (its first 10 or 11 bytes).
    pub(super) date: [u8; 11],
    offset: i32,
    /// The date as [`date_key`] packs it (0 before the first date), so that a
    /// date compares in two instructions.
    key: u128,
    /// The Unix time of the day's local midnight in nanoseconds.
    midnight_nanos: i128,
    /// Whether every time of that day is within jiff's range (so that a time of it
    /// needs no range check).
    in_range: bool,
    /// The last hour parsed, when its day is in range: the text up to its minutes (the
    /// date, the hour and the separators, as a number with their length in the top
    /// byte), its UTC offset and its Unix time in nanoseconds. A time of the same hour
    /// only adds its minutes and seconds.
    hour_valid: bool,
    hour_key: u128,
    hour_offset: i32,
    hour_nanos: i128,
}

/// The first `n` (at most 15) bytes of `b` as a number, with `n` in the top byte; `None`
/// if `b` is shorter than 16 bytes.
#[inline(always)]
fn prefix_key(b: &[u8], n: usize) -> Option<u128> {
    let head: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let mask = u128::MAX >> (128 - 8 * n.min(15));
    Some(u128::from_le_bytes(head) & mask | (n as u128) << 120)
}

/// A date of up to 15 bytes as a little-endian number, with its length in the top byte.
#[inline(always)]
fn date_key(date: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    if let Some(head) = bytes.get_mut(..date.len().min(15)) {
        head.copy_from_slice(&date[..head.len()]);
    }
    u128::from_le_bytes(bytes) | ((date.len() as u128) << 120)
}

impl DayCache {
    /// The time of `b`, a time in layout `L`, if it is in the hour remembered last (its
    /// text up to the minutes is the same) at the same UTC offset: then only its minutes,
    /// seconds and fraction are read. `None` sends the caller to the full parse
    /// ([`parse_time`]), which gives the same time or the error.
    #[inline(always)]
    pub(super) fn same_hour<L: Layout>(&self, b: &[u8]) -> Option<i128> {
        let minute = L::HOUR + 3;
        if !self.hour_valid || b.get(minute + 2) != Some(&b':') {
            return None;
        }
        let (m, s) = (d2(b, minute)?, d2(b, minute + 3)?);
        let mut i = minute + 5;
        let mut nanos = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            nanos = fraction(b, &mut i)?;
        }
        let offset = L::offset(b, &mut i).ok()?;
        if i != b.len() || m > 59 || s > 60 {
            return None;
        }
        (prefix_key(b, minute)? == self.hour_key && offset == self.hour_offset).then(|| {
            self.hour_nanos
                + i128::from(i64::from(m * 60 + s.min(59)) * 1_000_000_000 + i64::from(nanos))
        })
    }

    /// Remembers the hour of `b` (see [`DayCache::same_hour`]), whose first `prefix` bytes
    /// give its date and hour, at UTC `offset`: hour `h` of the day last looked up with
    /// [`DayCache::midnight`].
    #[inline]
    fn remember_hour(&mut self, b: &[u8], prefix: usize, offset: i32, h: i32) {
        if let Some(key) = prefix_key(b, prefix) {
            self.hour_valid = self.in_range;
            self.hour_key = key;
            self.hour_offset = offset;
            self.hour_nanos = self.midnight_nanos + i128::from(h * 3600) * 1_000_000_000;
        }
    }

    /// The local midnight of `date` at UTC `offset` in nanoseconds, and whether every
    /// time of that day is in range; `compute` gives its Unix second on a cache miss.
    #[inline(always)]
    fn midnight(
        &mut self,
        date: &[u8],
        offset: i32,
        compute: impl FnOnce() -> Result<i64, &'static str>,
    ) -> Result<(i128, bool), &'static str> {
        let key = date_key(date);
        if self.key == key && self.offset == offset {
            return Ok((self.midnight_nanos, self.in_range));
        }
        self.fill(date, key, offset, compute()?);
        Ok((self.midnight_nanos, self.in_range))
    }

    #[cold]
    fn fill(&mut self, date: &[u8], key: u128, offset: i32, midnight: i64) {
        let midnight_nanos = i128::from(midnight) * 1_000_000_000;
        let in_range = midnight_nanos >= Timestamp::MIN.as_nanosecond()
            && midnight_nanos + 86_400 * 1_000_000_000 <= Timestamp::MAX.as_nanosecond();
        if let Some(slot) = self.date.get_mut(..date.len()) {
            slot.copy_from_slice(date);
            *self = DayCache {
                date: self.date,
                offset,
                key,
                midnight_nanos,
                in_range,
                hour_valid: false,
                ..*self
            };
        } else {
            // Not cached (no date is this long); only the answer is kept.
            self.key = 0;
            self.midnight_nanos = midnight_nanos;
            self.in_range = in_range;
        }
    }
}

/// How a format writes a time: a date of [`Layout::DATE`] bytes, then the hour at
/// [`Layout::HOUR`] as `HH:MM:SS`, an optional `.fraction`, and a UTC offset that ends
/// the text.
pub(super) trait Layout {
    /// The length of the date text, which keys the [`DayCache`].
    const DATE: usize;
    /// Where the two digits of the hour start.
    const HOUR: usize;
    /// The length of the shortest text in this layout.
    const MIN_LEN: usize;
    /// What an error says of a text that is not in this layout.
    const NOT: &'static str;

    /// Whether the separators of the date, and the one before the hour, are in place in
    /// `b` (at least [`Layout::MIN_LEN`] bytes).
    fn separators(b: &[u8]) -> bool;

    /// The UTC offset at `b[*i]` in seconds; moves `i` past it.
    fn offset(b: &[u8], i: &mut usize) -> Result<i32, &'static str>;

    /// The Unix second of local midnight on the date of `b` at UTC `offset` (on a miss of
    /// the [`DayCache`]).
    fn midnight(b: &[u8], offset: i32) -> Result<i64, &'static str>;
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|±HH:MM|±HHMM)`.
pub(super) struct Rfc3339;

const NOT_RFC3339: &str = "is not RFC 3339";

impl Layout for Rfc3339 {
    const DATE: usize = 10;
    const HOUR: usize = 11;
    const MIN_LEN: usize = 19;
    const NOT: &'static str = NOT_RFC3339;

    #[inline(always)]
    fn separators(b: &[u8]) -> bool {
        b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't' | b' ')
    }

    #[inline(always)]
    fn offset(b: &[u8], i: &mut usize) -> Result<i32, &'static str> {
        match b.get(*i) {
            Some(b'Z' | b'z') => {
                *i += 1;
                Ok(0)
            }
            Some(&sign @ (b'+' | b'-')) => {
                let oh = d2(b, *i + 1).ok_or(NOT_RFC3339)?;
                *i += 3;
                if b.get(*i) == Some(&b':') {
                    *i += 1;
                }
                let om = d2(b, *i).ok_or(NOT_RFC3339)?;
                *i += 2;
                if om > 59 {
                    return Err(NOT_RFC3339);
                }
                let secs = oh * 3600 + om * 60;
                Ok(if sign == b'-' { -secs } else { secs })
            }
            _ => Err("has no UTC offset (RFC 3339 needs Z or ±HH:MM)"),
        }
    }

    fn midnight(b: &[u8], offset: i32) -> Result<i64, &'static str> {
        let year = d2(b, 0).zip(d2(b, 2)).ok_or(NOT_RFC3339)?;
        let month = d2(b, 5).ok_or(NOT_RFC3339)?;
        let dom = d2(b, 8).ok_or(NOT_RFC3339)?;
        midnight_at(year.0 * 100 + year.1, month, dom, offset)
    }
}

/// `dd/Mon/yyyy:HH:MM:SS[.frac] ±hhmm` (`±hh:mm` too), the time of a combined log.
pub(super) struct ClfTime;

const NOT_CLF: &str = "is not dd/Mon/yyyy:HH:MM:SS ±hhmm";

impl Layout for ClfTime {
    const DATE: usize = 11;
    const HOUR: usize = 12;
    const MIN_LEN: usize = 26;
    const NOT: &'static str = NOT_CLF;

    #[inline(always)]
    fn separators(b: &[u8]) -> bool {
        b[2] == b'/' && b[6] == b'/' && b[11] == b':'
    }

    #[inline(always)]
    fn offset(b: &[u8], i: &mut usize) -> Result<i32, &'static str> {
        if b.get(*i) != Some(&b' ') {
            return Err(NOT_CLF);
        }
        let sign = match b.get(*i + 1) {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(NOT_CLF),
        };
        let oh = d2(b, *i + 2).ok_or(NOT_CLF)?;
        *i += 4;
        if b.get(*i) == Some(&b':') {
            *i += 1;
        }
        let om = d2(b, *i).ok_or(NOT_CLF)?;
        *i += 2;
        if om > 59 {
            return Err(NOT_CLF);
        }
        Ok(sign * (oh * 3600 + om * 60))
    }

    fn midnight(b: &[u8], offset: i32) -> Result<i64, &'static str> {
        let dom = d2(b, 0).ok_or(NOT_CLF)?;
        let month = month_number(&b[3..6]).ok_or(NOT_CLF)?;
        let year = d2(b, 7).zip(d2(b, 9)).ok_or(NOT_CLF)?;
        midnight_at(year.0 * 100 + year.1, month, dom, offset)
    }
}

/// The time of `b`, a text in layout `L`, in Unix nanoseconds; on an error, why (to
/// follow the quoted text in a message).
#[inline]
pub(super) fn parse_time<L: Layout>(day: &mut DayCache, b: &[u8]) -> Result<i128, &'static str> {
    if let Some(t) = day.same_hour::<L>(b) {
        return Ok(t);
    }
    let hour = L::HOUR;
    if b.len() < L::MIN_LEN || !L::separators(b) || b[hour + 2] != b':' || b[hour + 5] != b':' {
        return Err(L::NOT);
    }
    let (Some(h), Some(m), Some(s)) = (d2(b, hour), d2(b, hour + 3), d2(b, hour + 6)) else {
        return Err(L::NOT);
    };
    let mut i = hour + 8;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        nanos = fraction(b, &mut i).ok_or(L::NOT)?;
    }
    let offset = L::offset(b, &mut i)?;
    if i != b.len() || h > 23 || m > 59 || s > 60 {
        return Err(L::NOT);
    }
    let midnight = day.midnight(&b[..L::DATE], offset, || L::midnight(b, offset))?;
    // jiff reads a leap second as the second before it.
    let t = at_time_of_day(midnight, h, m, s.min(59), nanos)?;
    day.remember_hour(b, hour + 3, offset, h);
    Ok(t)
}

/// A JSON time string: RFC 3339, or a number of `unit`s since the epoch.
#[inline]
pub(super) fn parse_text_time(
    day: &mut DayCache,
    text: &str,
    unit: EpochUnit,
) -> Result<i128, LineError> {
    let b = text.as_bytes();
    if b.len() >= 10 && b[4] == b'-' {
        return parse_time::<Rfc3339>(day, b).map_err(|why| time_error(text, why));
    }
    parse_epoch(text, unit).ok_or_else(|| time_error(text, NOT_RFC3339))
}

/// The bracketed time of a combined line.
#[inline]
pub(super) fn parse_clf_time(day: &mut DayCache, text: &str) -> Result<i128, LineError> {
    parse_time::<ClfTime>(day, text.as_bytes()).map_err(|why| time_error(text, why))
}

fn time_error(text: &str, why: &str) -> LineError {
    LineError::new(
        LineErrorKind::InvalidTime,
        format!("time {:?} {why}", excerpt(text)),
    )
}

/// Two ASCII digits at `b[i..i + 2]`.
#[inline(always)]
fn d2(b: &[u8], i: usize) -> Option<i32> {
    match b.get(i..i + 2)? {
        [h @ b'0'..=b'9', l @ b'0'..=b'9'] => Some(i32::from(h - b'0') * 10 + i32::from(l - b'0')),
        _ => None,
    }
}

/// A fraction of a second after the `.` at `b[*i - 1]`: at least one digit; digits past
/// the ninth are read and ignored.
#[inline(always)]
fn fraction(b: &[u8], i: &mut usize) -> Option<i32> {
    const SCALE: [i32; 10] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
    ];
    let start = *i;
    let mut nanos = 0;
    let mut digits = 0;
    while let Some(&d) = b.get(*i).filter(|d| d.is_ascii_digit()) {
        if digits < 9 {
            nanos = nanos * 10 + i32::from(d - b'0');
            digits += 1;
        }
        *i += 1;
    }
    (*i > start).then(|| nanos * SCALE[9 - digits])
}

/// Unix seconds of local midnight on `year-month-day` at UTC offset `offset` seconds.
fn midnight_at(year: i32, month: i32, day: i32, offset: i32) -> Result<i64, &'static str> {
    let date = match (i16::try_from(year), i8::try_from(month), i8::try_from(day)) {
        (Ok(y), Ok(m), Ok(d)) => Date::new(y, m, d).map_err(|_| "is not a calendar date")?,
        _ => return Err("is not a calendar date"),
    };
    let offset = Offset::from_seconds(offset).map_err(|_| "has an out-of-range UTC offset")?;
    let midnight = offset
        .to_timestamp(date.to_datetime(Time::midnight()))
        .map_err(|_| "is out of range")?;
    Ok(midnight.as_second())
}

/// Adds the time of day to a midnight in nanoseconds (from [`DayCache::midnight`]) and
/// checks the result against jiff's range unless the whole day is in it.
#[inline(always)]
fn at_time_of_day(
    (midnight, in_range): (i128, bool),
    h: i32,
    m: i32,
    s: i32,
    nanos: i32,
) -> Result<i128, &'static str> {
    let t =
        midnight + i128::from(i64::from(h * 3600 + m * 60 + s) * 1_000_000_000 + i64::from(nanos));
    if !in_range && (t < Timestamp::MIN.as_nanosecond() || t > Timestamp::MAX.as_nanosecond()) {
        return Err("is out of range");
    }
    Ok(t)
}

fn month_number(name: &[u8]) -> Option<i32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let lower = [
        name.first()?.to_ascii_lowercase(),
        name.get(1)?.to_ascii_lowercase(),
        name.get(2)?.to_ascii_lowercase(),
    ];
    MONTHS
        .iter()
        .position(|m| **m == lower)
        .and_then(|n| i32::try_from(n + 1).ok())
}

/// A decimal number of `unit`s since the epoch (`-`, digits, optional fraction and
/// exponent) in nanoseconds, truncated toward zero; `None` if malformed or outside
/// jiff's range.
pub(super) fn parse_epoch(text: &str, unit: EpochUnit) -> Option<i128> {
    // At most this many significant digits are kept; later ones are dropped (27 digits
    // of seconds are far below a nanosecond), so `digits * unit` cannot overflow.
    const KEEP: u32 = 27;
    let b = text.as_bytes();
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i = 1;
    }
    let mut digits: i128 = 0;
    let mut kept = 0u32;
    let mut exp: i64 = 0;
    let mut any = false;
    while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        any = true;
        if kept < KEEP {
            digits = digits * 10 + i128::from(d - b'0');
            kept += u32::from(digits != 0);
        } else {
            exp += 1;
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if kept < KEEP {
                digits = digits * 10 + i128::from(d - b'0');
                kept += u32::from(digits != 0);
                exp -= 1;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let negative_exp = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i64 = 0;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            e = (e * 10 + i64::from(d - b'0')).min(100_000);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if negative_exp { -e } else { e };
    }
    if i != b.len() {
        return None;
    }
    let mut nanos = digits * unit.nanos();
    if exp >= 0 {
        for _ in 0..exp {
            if nanos == 0 {
                break;
            }
            nanos = nanos.checked_mul(10)?;
        }
    } else if exp < -38 {
        nanos = 0;
    } else {
        nanos /= 10i128.pow(u32::try_from(-exp).ok()?);
    }
    if negative {
        nanos = -nanos;
    }
    let range = Timestamp::MIN.as_nanosecond()..=Timestamp::MAX.as_nanosecond();
    range.contains(&nanos).then_some(nanos)
}

//! Usage counters of one company or user, per period: the periods counted so far, the
//! current one found by index on the hot path, rollover, and restoring them from the
//! journal.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use jiff::Timestamp;

use crate::counter::Counter;
use crate::journal::NoticeKind;
use crate::period::{Period, PeriodError, PeriodSpec};

/// Journaled usage of one company or user: `(period_start, used)` pairs.
pub(super) type RestoredRows = Vec<(i64, u64)>;

/// Journaled notices of one company: `(period label, kind)`.
pub(super) type RaisedNotices = HashSet<(String, NoticeKind)>;

/// One period's counter.
#[derive(Debug)]
pub(super) struct PeriodUsage {
    pub(super) period: Period,
    /// The period's bounds in Unix nanoseconds, `[start, end)`, for the hot path.
    start_ns: i128,
    end_ns: i128,
    pub(super) counter: Counter,
    /// The usage the journal has been handed so far (only the journal's writer thread
    /// changes it, under the journal's lock).
    pub(super) journaled: AtomicU64,
    /// The company's limit in force at the end of this period, once the period has
    /// ended and the limit changed since ([`NO_LIMIT_RECORDED`] until then: the limit in
    /// force now is the period's). Company periods only; journaled in `period_limits`
    /// by the collector and restored from it.
    pub(super) limit: AtomicU64,
    /// The limit the journal holds for this period ([`NO_LIMIT_RECORDED`]: none yet);
    /// company periods only, changed by the journal's collector.
    pub(super) limit_journaled: AtomicU64,
}

/// [`PeriodUsage::limit`] before a limit was recorded for the period.
pub(super) const NO_LIMIT_RECORDED: u64 = u64::MAX;

impl PeriodUsage {
    fn new(period: Period) -> Self {
        PeriodUsage::restored(period, Counter::new(), 0)
    }

    fn restored(period: Period, counter: Counter, journaled: u64) -> Self {
        PeriodUsage {
            start_ns: period.start().as_nanosecond(),
            end_ns: period.end().as_nanosecond(),
            period,
            counter,
            journaled: AtomicU64::new(journaled),
            limit: AtomicU64::new(NO_LIMIT_RECORDED),
            limit_journaled: AtomicU64::new(NO_LIMIT_RECORDED),
        }
    }

    /// The limit in force for this period, given the company's limit now: the one
    /// recorded when it changed after the period ended, else `current`.
    pub(super) fn limit_in_force(&self, current: u64) -> u64 {
        self.statement_limit(current)
    }

    /// Puts back the limit the journal holds for this period (`period_limits`): the
    /// statement limit of a period that ended by `now`.
    pub(super) fn restore_limit(&self, limit: u64, now: i128) {
        self.limit_journaled.store(limit, Ordering::Relaxed);
        if self.end_ns <= now {
            self.limit.store(limit, Ordering::Relaxed);
        }
    }

    pub(super) fn contains(&self, now: i128) -> bool {
        self.start_ns <= now && now < self.end_ns
    }

    /// The limit of this period's statement: the one recorded when the limit changed
    /// after the period ended, else `current` (the limit in force now).
    pub(super) fn statement_limit(&self, current: u64) -> u64 {
        match self.limit.load(Ordering::Relaxed) {
            NO_LIMIT_RECORDED => current,
            l => l,
        }
    }
}

/// Counters of one company or user: every period counted so far. Periods are never
/// removed (they stay for reports), so the hot path reads the current one by index,
/// without reference counting.
#[derive(Debug)]
pub(super) struct Usage {
    /// Every period counted, in the order they were created.
    pub(super) periods: boxcar::Vec<PeriodUsage>,
    /// Index in `periods` of the current (latest) period.
    current: AtomicUsize,
    /// Serializes the creation of periods.
    roll: Mutex<()>,
}

impl Usage {
    pub(super) fn new(period: Period) -> Self {
        let periods = boxcar::Vec::new();
        let current = periods.push(PeriodUsage::new(period));
        Usage {
            periods,
            current: AtomicUsize::new(current),
            roll: Mutex::new(()),
        }
    }

    /// The latest period counted (the current one unless the company has been idle
    /// since a rollover).
    pub(super) fn latest(&self) -> &PeriodUsage {
        self.period(self.current.load(Ordering::Acquire))
    }

    pub(super) fn period(&self, index: usize) -> &PeriodUsage {
        // Indices come from `push`: the entry exists.
        &self.periods[index]
    }

    /// The counter of the period `now` (Unix nanoseconds) falls in and its index,
    /// rolling over (or finding an old one) if needed; `spec` is asked only then.
    #[inline]
    pub(super) fn counter_at(
        &self,
        spec: impl FnOnce() -> PeriodSpec,
        now: i128,
    ) -> Result<(usize, &PeriodUsage), PeriodError> {
        let i = self.current.load(Ordering::Acquire);
        let cur = self.period(i);
        if cur.contains(now) {
            return Ok((i, cur));
        }
        self.counter_at_slow(spec(), now)
    }

    #[cold]
    fn counter_at_slow(
        &self,
        spec: PeriodSpec,
        now: i128,
    ) -> Result<(usize, &PeriodUsage), PeriodError> {
        let t = timestamp_of(now)?;
        let _roll = self.roll.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((i, u)) = self.periods.iter().find(|(_, u)| u.contains(now)) {
            // The current period (another thread rolled over first), or a finished one
            // (a late or replayed call counts there).
            return Ok((i, u));
        }
        let period = spec.try_period_at(t)?;
        let cur = self.period(self.current.load(Ordering::Acquire));
        let later = period.start() >= cur.period.end();
        let i = self.periods.push(PeriodUsage::new(period));
        if later {
            self.current.store(i, Ordering::Release);
        }
        Ok((i, self.period(i)))
    }

    /// Usage restored from journaled rows (`(period_start, used)`), current at `t`.
    pub(super) fn restore(
        spec: &PeriodSpec,
        t: Timestamp,
        rows: &[(i64, u64)],
        notices: &RaisedNotices,
    ) -> Result<Self, PeriodError> {
        let current_period = spec.try_period_at(t)?;
        let periods = boxcar::Vec::new();
        let mut current = None;
        for &(start, used) in rows {
            let at =
                Timestamp::from_second(start).map_err(|_| PeriodError::TimestampOutOfRange {
                    unix_nanos: i128::from(start) * 1_000_000_000,
                })?;
            let period = spec.try_period_at(at)?;
            let label = period.label();
            let counter = Counter::restored(
                used,
                notices.contains(&(label.clone(), NoticeKind::Warning)),
                notices.contains(&(label, NoticeKind::Overage)),
            );
            let i = periods.push(PeriodUsage::restored(period, counter, used));
            if period == current_period {
                current = Some(i);
            }
        }
        let current = current.unwrap_or_else(|| periods.push(PeriodUsage::new(current_period)));
        Ok(Usage {
            periods,
            current: AtomicUsize::new(current),
            roll: Mutex::new(()),
        })
    }

    /// Every period, oldest first.
    /// Records `limit` (the limit in force until `now`) as the statement limit of every
    /// period that ended by `now` and has none yet: called before the limit changes, so
    /// that a period's statement keeps the limit in force during it.
    pub(super) fn freeze_ended(&self, limit: u64, now: i128) {
        for (_, p) in self.periods.iter() {
            if p.end_ns <= now {
                let _ = p.limit.compare_exchange(
                    NO_LIMIT_RECORDED,
                    limit,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    pub(super) fn periods(&self) -> Vec<&PeriodUsage> {
        let mut all: Vec<_> = self.periods.iter().map(|(_, u)| u).collect();
        all.sort_by_key(|u| u.period.start());
        all
    }
}

/// The instant `nanos` (Unix nanoseconds), or the error for one out of range.
pub(super) fn timestamp_of(nanos: i128) -> Result<Timestamp, PeriodError> {
    Timestamp::from_nanosecond(nanos)
        .map_err(|_| PeriodError::TimestampOutOfRange { unix_nanos: nanos })
}

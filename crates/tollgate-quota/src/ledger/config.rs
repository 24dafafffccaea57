//! The ledger's configuration, and the thresholds it gives one company's period: the
//! early warning, the limit and the hard cap, and the rules that apply them to a charge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::counter::{Counter, Crossings};
use crate::period::PeriodSpec;
use crate::plan::Plans;

use super::decision::Outcome;

/// How the ledger treats usage: plans, periods, thresholds.
#[derive(Clone, Debug)]
pub struct QuotaConfig {
    /// The plans companies get their limits from.
    pub plans: Plans,
    /// How time is cut into periods (calendar month in UTC by default); a company may
    /// override the time zone.
    pub period: PeriodSpec,
    /// Early warning at this percentage of the limit (e.g. 80), once per period.
    pub warning_percent: Option<u32>,
    /// Service stops above this percentage of the limit (e.g. 150): "excessive overuse".
    /// `None`: never refuse, only notify.
    pub hard_cap_percent: Option<u32>,
    /// How long a notice [taken](crate::Outbox::take) from the outbox and not
    /// acknowledged waits before it is offered again (5 minutes by default).
    pub notice_redeliver_after: Duration,
}

/// The default [`QuotaConfig::notice_redeliver_after`]: 5 minutes.
pub const DEFAULT_NOTICE_REDELIVER_AFTER: Duration = Duration::from_secs(300);

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            plans: Plans::standard(),
            period: PeriodSpec::monthly_utc(),
            warning_percent: Some(80),
            hard_cap_percent: Some(150),
            notice_redeliver_after: DEFAULT_NOTICE_REDELIVER_AFTER,
        }
    }
}

impl QuotaConfig {
    /// The two percentages in one word, for [`LivePercents`].
    fn packed_percents(&self) -> u64 {
        let one = |p: Option<u32>| u64::from(p.map_or(u32::MAX, |p| p.min(u32::MAX - 1)));
        (one(self.warning_percent) << 32) | one(self.hard_cap_percent)
    }
}

/// The warning and hard-cap percentages a running ledger applies, in one atomic word
/// (each half `u32::MAX` for "none"), so that a reconfiguration changes both at once and
/// the hot path reads them with one relaxed load.
#[derive(Debug)]
pub(crate) struct LivePercents(AtomicU64);

impl LivePercents {
    pub(crate) fn new(config: &QuotaConfig) -> Self {
        LivePercents(AtomicU64::new(config.packed_percents()))
    }

    pub(crate) fn set(&self, config: &QuotaConfig) {
        self.0.store(config.packed_percents(), Ordering::Relaxed);
    }

    /// The thresholds of a period whose limit is `limit`.
    #[inline]
    pub(crate) fn thresholds(&self, limit: u64) -> Thresholds {
        let w = self.0.load(Ordering::Relaxed);
        let half = |h: u64| {
            let h = h as u32;
            (h != u32::MAX).then_some(h)
        };
        Thresholds {
            limit,
            warning_percent: half(w >> 32),
            hard_cap_percent: half(w & u64::from(u32::MAX)),
        }
    }
}

/// The thresholds of one company's period: its limit, and the configured percentages of
/// it for the early warning and the hard cap (computed only when asked, off the hot
/// path's common case).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Thresholds {
    /// The company's limit for the period.
    pub(crate) limit: u64,
    warning_percent: Option<u32>,
    hard_cap_percent: Option<u32>,
}

impl Thresholds {
    /// Usage above which calls are refused (`None`: never refused).
    #[inline]
    pub(crate) fn hard_cap(&self) -> Option<u64> {
        self.hard_cap_percent.map(|p| percent_of(self.limit, p))
    }

    /// Usage at which the early warning is raised, if configured.
    #[inline]
    pub(crate) fn warning(&self) -> Option<u64> {
        self.warning_percent.map(|w| percent_of(self.limit, w))
    }

    /// The verdict on a counted call that took usage to `used`.
    #[inline]
    pub(crate) fn outcome(&self, used: u64) -> Outcome {
        if used > self.limit {
            Outcome::OverLimit
        } else {
            Outcome::Within
        }
    }

    /// The notices a move of usage from `prev` to `used` raises (a counted call, or a
    /// settlement that raised usage), taking the flags of `counter` (the company's
    /// counter for the period, whose flags make each notice once): see
    /// [`Counter::crossing`]. A move that jumps past the warning and the limit at once
    /// raises both.
    ///
    /// With `shared`, `prev` and `used` are a shared counter's, and only the move that
    /// took the *shared* count across a threshold notifies: the other ledgers sharing
    /// the counter see it already crossed.
    #[inline]
    pub(crate) fn crossing(
        &self,
        counter: &Counter,
        prev: u64,
        used: u64,
        shared: bool,
    ) -> Crossings {
        let warning = self.warning();
        if shared {
            return counter.take(Crossings {
                warning: warning.is_some_and(|w| prev < w && used >= w),
                overage: prev <= self.limit && used > self.limit,
            });
        }
        counter.crossing(prev, used, self.limit, warning)
    }
}

#[inline]
fn percent_of(limit: u64, percent: u32) -> u64 {
    // The u64 form divides by a constant (a multiplication); u128 only when it overflows.
    match limit.checked_mul(u64::from(percent)) {
        Some(x) => x / 100,
        None => u64::try_from(u128::from(limit) * u128::from(percent) / 100).unwrap_or(u64::MAX),
    }
}

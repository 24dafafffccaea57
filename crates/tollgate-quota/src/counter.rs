//! One period's counter: usage and the notice flags, two atomics, no lock.
//!
//! The ledger keeps one [`Counter`] per company and period (and one per user and
//! period). Everything that must hold under concurrency lives here, small enough for loom
//! to check every interleaving (`src/loom_tests.rs`):
//! * [`Counter::charge`] adds a cost unless that would pass the hard cap ([`admit`], the
//!   rule shared counters are decided by too), in one compare-exchange loop, so the cap
//!   is never exceeded and a refused call counts nothing;
//! * [`Counter::add`] and [`Counter::settle`] move usage without a cap (a user's counter,
//!   a settlement), in compare-exchange loops too;
//! * [`Counter::take`] tells which notices a move raises; a flag bit taken with
//!   `fetch_or` makes each notice exactly once per counter, whatever the number of
//!   threads and even if the limit changes during the period.
//!
//! # No arithmetic wraps
//! Usage is a `u64` that never wraps: every change saturates at [`MAX_USAGE`] (`i64::MAX`,
//! the largest count the journal's SQLite `INTEGER` and a Redis counter hold) on the way
//! up and at 0 on the way down. A charge, an addition or a settlement returns the usage
//! before and after it (what it actually moved), so a reservation gives back exactly what
//! it took and the notice rule sees the move as it happened.

use crate::sync::{AtomicU64, AtomicU8, Ordering};

const WARNED: u8 = 1;
const NOTICED: u8 = 2;

/// The largest usage a counter holds: `i64::MAX`, the largest count the journal's
/// SQLite `INTEGER` column and a Redis counter can hold. Usage saturates there instead
/// of wrapping (about 9.2e18 calls: no real period reaches it; only absurd costs do).
pub const MAX_USAGE: u64 = i64::MAX as u64;

/// A notice a charge raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// Usage reached the early-warning threshold.
    Warning,
    /// Usage went over the limit.
    Overage,
}

/// The notices one move of usage raises: none, one or both (a move that jumps past the
/// warning and the limit at once raises both, the warning first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Crossings {
    /// The early warning.
    pub(crate) warning: bool,
    /// The overage.
    pub(crate) overage: bool,
}

impl Crossings {
    /// No notice.
    pub(crate) const NONE: Crossings = Crossings {
        warning: false,
        overage: false,
    };

    /// Whether there is no notice.
    #[inline]
    pub(crate) fn is_none(self) -> bool {
        !self.warning && !self.overage
    }

    /// The notices, warning first.
    pub(crate) fn iter(self) -> impl Iterator<Item = Crossing> {
        [
            self.warning.then_some(Crossing::Warning),
            self.overage.then_some(Crossing::Overage),
        ]
        .into_iter()
        .flatten()
    }
}

/// What a counter decided for one call: counted, or refused because counting it would
/// pass the hard cap. The ledger's own counters and a counter shared with other ledgers
/// (see [`Ledger::record_shared`](crate::Ledger::record_shared)) answer the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedCharge {
    /// The call was counted: the shared usage went from `prev` to `used`.
    Counted {
        /// Shared usage before the call.
        prev: u64,
        /// Shared usage after the call.
        used: u64,
    },
    /// The call was refused (over the hard cap) and counted nothing.
    Refused {
        /// Shared usage.
        used: u64,
    },
}

/// The result of a charge on this ledger's own counter (the same type: a shared counter
/// decides as a local one does).
pub(crate) type Charge = SharedCharge;

/// `used + n`, saturating at [`MAX_USAGE`] (a usage already above it, which only a
/// shared counter can report, stays as it is: a move up never goes down).
#[inline]
pub(crate) fn add_usage(used: u64, n: u64) -> u64 {
    used.saturating_add(n).min(MAX_USAGE.max(used))
}

/// The admission rule, the one place the hard cap is applied: a counter at `used`
/// counts a call of `cost` (to `used + cost`, saturating at [`MAX_USAGE`]) unless that
/// would exceed `cap`. [`Counter::charge`] applies it in its compare-exchange loop, and
/// [`QuotaTarget::admit`](crate::QuotaTarget::admit) to a shared counter's usage. The
/// cap is compared with the exact sum, so a cost that saturates is refused by any cap.
#[inline]
pub(crate) fn admit(used: u64, cost: u64, cap: Option<u64>) -> Charge {
    if cap.is_some_and(|cap| u128::from(used) + u128::from(cost) > u128::from(cap)) {
        Charge::Refused { used }
    } else {
        Charge::Counted {
            prev: used,
            used: add_usage(used, cost),
        }
    }
}

/// Usage and notice flags of one period.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    used: AtomicU64,
    flags: AtomicU8,
}

impl Counter {
    pub(crate) fn new() -> Self {
        Counter {
            used: AtomicU64::new(0),
            flags: AtomicU8::new(0),
        }
    }

    /// A counter restored from the journal: `used` units (at most [`MAX_USAGE`]), and
    /// the notices already raised.
    pub(crate) fn restored(used: u64, warned: bool, noticed: bool) -> Self {
        let flags = if warned { WARNED } else { 0 } | if noticed { NOTICED } else { 0 };
        Counter {
            used: AtomicU64::new(used.min(MAX_USAGE)),
            flags: AtomicU8::new(flags),
        }
    }

    /// Which notices were raised: `(warning, overage)`.
    pub(crate) fn raised(&self) -> (bool, bool) {
        let flags = self.flags.load(Ordering::Relaxed);
        (flags & WARNED != 0, flags & NOTICED != 0)
    }

    /// Current usage.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Replaces usage by `step(usage)` atomically; returns `(before, after)`.
    #[inline]
    fn update(&self, step: impl Fn(u64) -> u64) -> (u64, u64) {
        let mut prev = self.used.load(Ordering::Relaxed);
        loop {
            let next = step(prev);
            if next == prev {
                return (prev, next);
            }
            match self
                .used
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (prev, next),
                Err(actual) => prev = actual,
            }
        }
    }

    /// Adds `cost` unless the result would exceed `cap` ([`admit`]).
    pub(crate) fn charge(&self, cost: u64, cap: Option<u64>) -> Charge {
        let mut prev = self.used.load(Ordering::Relaxed);
        loop {
            let charge = admit(prev, cost, cap);
            let Charge::Counted { used: next, .. } = charge else {
                return charge;
            };
            match self
                .used
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return charge,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Adds `n` without a cap (user counters, calls a shared counter decided),
    /// saturating at [`MAX_USAGE`]; returns `(before, after)`.
    pub(crate) fn add(&self, n: u64) -> (u64, u64) {
        self.update(|u| add_usage(u, n))
    }

    /// Replaces a hold of `held` units by `settle` units: adds `settle - held`
    /// (saturating at [`MAX_USAGE`]) or takes `held - settle` away (never below 0).
    /// Returns `(before, after)`.
    pub(crate) fn settle(&self, held: u64, settle: u64) -> (u64, u64) {
        if settle >= held {
            let up = settle - held;
            self.update(|u| add_usage(u, up))
        } else {
            let back = held - settle;
            self.update(|u| u.saturating_sub(back))
        }
    }

    /// Takes the flags of the notices in `candidates` that are not raised yet and
    /// returns those this caller raised: each notice once per counter, whatever the
    /// number of threads. A flag is read before it is written, so once a notice is out
    /// the calls that would raise it again do not write.
    #[inline]
    pub(crate) fn take(&self, candidates: Crossings) -> Crossings {
        let mut raised = Crossings::NONE;
        if candidates.is_none() {
            return raised;
        }
        let take = |bit: u8| {
            self.flags.load(Ordering::Relaxed) & bit == 0
                && self.flags.fetch_or(bit, Ordering::Relaxed) & bit == 0
        };
        raised.warning = candidates.warning && take(WARNED);
        raised.overage = candidates.overage && take(NOTICED);
        raised
    }

    /// The notices a move of this counter from `prev` to `used` raises, if this caller
    /// is the first to cross: an overage when usage is above `limit` and no overage was
    /// raised yet in this period; a warning when usage reached `warning` (and was below
    /// it before) and no warning was raised yet. A move that jumps past both raises both.
    pub(crate) fn crossing(
        &self,
        prev: u64,
        used: u64,
        limit: u64,
        warning: Option<u64>,
    ) -> Crossings {
        self.take(Crossings {
            warning: warning.is_some_and(|w| prev < w && used >= w),
            overage: used > limit,
        })
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    const W: Crossings = Crossings {
        warning: true,
        overage: false,
    };
    const O: Crossings = Crossings {
        warning: false,
        overage: true,
    };
    const BOTH: Crossings = Crossings {
        warning: true,
        overage: true,
    };

    #[test]
    fn charge_respects_the_cap_and_counts_nothing_when_refused() {
        let c = Counter::new();
        assert_eq!(c.charge(4, Some(5)), Charge::Counted { prev: 0, used: 4 });
        assert_eq!(c.charge(2, Some(5)), Charge::Refused { used: 4 });
        assert_eq!(c.charge(1, Some(5)), Charge::Counted { prev: 4, used: 5 });
        assert_eq!(
            c.charge(u64::MAX, Some(u64::MAX)),
            Charge::Refused { used: 5 }
        );
        assert_eq!(
            c.charge(u64::MAX, None),
            Charge::Counted {
                prev: 5,
                used: MAX_USAGE
            }
        );
        assert_eq!(c.used(), MAX_USAGE, "saturates instead of wrapping");
    }

    #[test]
    fn settle_up_and_down() {
        let c = Counter::new();
        assert_eq!(c.add(10), (0, 10));
        assert_eq!(c.settle(4, 1), (10, 7));
        assert_eq!(c.settle(1, 5), (7, 11));
        assert_eq!(c.settle(100, 0), (11, 0), "never below zero");
    }

    #[test]
    fn no_move_wraps() {
        let c = Counter::new();
        c.add(10);
        assert_eq!(c.add(u64::MAX), (10, MAX_USAGE));
        assert_eq!(c.add(u64::MAX), (MAX_USAGE, MAX_USAGE));
        assert_eq!(c.settle(0, u64::MAX), (MAX_USAGE, MAX_USAGE));
        assert_eq!(c.settle(u64::MAX, 0), (MAX_USAGE, 0));
        let r = Counter::restored(u64::MAX, false, false);
        assert_eq!(r.used(), MAX_USAGE, "a restored count is clamped too");
        assert_eq!(
            admit(u64::MAX, 1, None),
            Charge::Counted {
                prev: u64::MAX,
                used: u64::MAX
            }
        );
    }

    #[test]
    fn each_notice_once() {
        let c = Counter::new();
        assert_eq!(c.crossing(0, 8, 10, Some(8)), W);
        assert_eq!(c.crossing(8, 9, 10, Some(8)), Crossings::NONE);
        assert_eq!(c.crossing(9, 11, 10, Some(8)), O);
        assert_eq!(c.crossing(11, 12, 10, Some(8)), Crossings::NONE);
        // The limit rises, usage crosses again: still no second notice.
        assert_eq!(c.crossing(12, 21, 20, Some(16)), Crossings::NONE);
        // A move that jumps past both thresholds raises both.
        let jump = Counter::new();
        assert_eq!(jump.crossing(0, 50, 10, Some(8)), BOTH);
        assert_eq!(jump.crossing(50, 51, 100, Some(8)), Crossings::NONE);
        assert_eq!(
            BOTH.iter().collect::<Vec<_>>(),
            [Crossing::Warning, Crossing::Overage]
        );
    }
}

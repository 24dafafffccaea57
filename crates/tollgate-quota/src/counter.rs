//! One period's counter: usage and the notice flags, two atomics, no lock.
//!
//! The ledger keeps one [`Counter`] per company and period (and one per user and
//! period). Everything that must hold under concurrency lives here, small enough for loom
//! to check every interleaving (`src/loom_tests.rs`):
//! * [`Counter::charge`] adds a cost unless that would pass the hard cap ([`admit`], the
//!   rule shared counters are decided by too), in one compare-exchange loop, so the cap
//!   is never exceeded and a refused call counts nothing;
//! * [`Counter::crossing`] tells which notice, if any, a charge raises; a flag bit taken
//!   with `fetch_or` makes each notice exactly once per counter, whatever the number of
//!   threads and even if the limit changes during the period.

use crate::sync::{AtomicU64, AtomicU8, Ordering};

const WARNED: u8 = 1;
const NOTICED: u8 = 2;

/// A notice a charge raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// Usage reached the early-warning threshold.
    Warning,
    /// Usage went over the limit.
    Overage,
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

/// The admission rule, the one place the hard cap is applied: a counter at `used`
/// counts a call of `cost` (to `used + cost`, saturating) unless that would exceed `cap`.
/// [`Counter::charge`] applies it in its compare-exchange loop, and
/// [`QuotaTarget::admit`](crate::QuotaTarget::admit) to a shared counter's usage.
#[inline]
pub(crate) fn admit(used: u64, cost: u64, cap: Option<u64>) -> Charge {
    let next = used.saturating_add(cost);
    if cap.is_some_and(|cap| next > cap) {
        Charge::Refused { used }
    } else {
        Charge::Counted {
            prev: used,
            used: next,
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

    /// A counter restored from the journal: `used` units, and the notices already raised.
    pub(crate) fn restored(used: u64, warned: bool, noticed: bool) -> Self {
        let flags = if warned { WARNED } else { 0 } | if noticed { NOTICED } else { 0 };
        Counter {
            used: AtomicU64::new(used),
            flags: AtomicU8::new(flags),
        }
    }

    /// Current usage.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Adds `cost` unless the result would exceed `cap`.
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

    /// Adds `n` without a cap (user counters).
    pub(crate) fn add(&self, n: u64) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    /// Replaces a hold of `held` units by `settle` units.
    pub(crate) fn settle(&self, held: u64, settle: u64) {
        if settle >= held {
            self.used.fetch_add(settle - held, Ordering::Relaxed);
        } else {
            let back = held - settle;
            let mut cur = self.used.load(Ordering::Relaxed);
            loop {
                let next = cur.saturating_sub(back);
                match self.used.compare_exchange_weak(
                    cur,
                    next,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(actual) => cur = actual,
                }
            }
        }
    }

    /// The notice the move from `prev` to `used` raises, if this caller is the first to
    /// cross: an overage when usage is above `limit` and no overage was raised yet in this
    /// period; otherwise a warning when usage reached `warning` (and was below it before)
    /// and no warning was raised yet. A charge that jumps past both raises the overage
    /// only.
    pub(crate) fn crossing(
        &self,
        prev: u64,
        used: u64,
        limit: u64,
        warning: Option<u64>,
    ) -> Option<Crossing> {
        if used > limit {
            // Read first: once the notice is out, calls over the limit do not write.
            if self.flags.load(Ordering::Relaxed) & NOTICED == 0
                && self.flags.fetch_or(NOTICED, Ordering::Relaxed) & NOTICED == 0
            {
                return Some(Crossing::Overage);
            }
            return None;
        }
        match warning {
            Some(w)
                if used >= w
                    && prev < w
                    && self.flags.load(Ordering::Relaxed) & WARNED == 0
                    && self.flags.fetch_or(WARNED, Ordering::Relaxed) & WARNED == 0 =>
            {
                Some(Crossing::Warning)
            }
            _ => None,
        }
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn charge_respects_the_cap_and_counts_nothing_when_refused() {
        let c = Counter::new();
        assert_eq!(c.charge(4, Some(5)), Charge::Counted { prev: 0, used: 4 });
        assert_eq!(c.charge(2, Some(5)), Charge::Refused { used: 4 });
        assert_eq!(c.charge(1, Some(5)), Charge::Counted { prev: 4, used: 5 });
        assert_eq!(
            c.charge(u64::MAX, None),
            Charge::Counted {
                prev: 5,
                used: u64::MAX
            }
        );
        assert_eq!(c.used(), u64::MAX, "saturates instead of wrapping");
    }

    #[test]
    fn settle_up_and_down() {
        let c = Counter::new();
        c.add(10);
        c.settle(4, 1);
        assert_eq!(c.used(), 7);
        c.settle(1, 5);
        assert_eq!(c.used(), 11);
        c.settle(100, 0);
        assert_eq!(c.used(), 0, "never below zero");
    }

    #[test]
    fn each_notice_once() {
        let c = Counter::new();
        assert_eq!(c.crossing(0, 8, 10, Some(8)), Some(Crossing::Warning));
        assert_eq!(c.crossing(8, 9, 10, Some(8)), None);
        assert_eq!(c.crossing(9, 11, 10, Some(8)), Some(Crossing::Overage));
        assert_eq!(c.crossing(11, 12, 10, Some(8)), None);
        // The limit rises, usage crosses again: still no second notice.
        assert_eq!(c.crossing(12, 21, 20, Some(16)), None);
        let jump = Counter::new();
        assert_eq!(jump.crossing(0, 50, 10, Some(8)), Some(Crossing::Overage));
        assert_eq!(jump.crossing(50, 51, 100, Some(8)), None);
    }
}

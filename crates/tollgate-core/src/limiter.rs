//! A single (unkeyed) limiter: one algorithm, one atomic word of state.

use crossbeam_utils::CachePadded;

use crate::algorithm::{Algorithm, FRESH};
use crate::clock::{Clock, DefaultClock};
use crate::sync::{AtomicU64, Ordering};
use crate::{Decision, Gcra, InsufficientCapacity, SlidingWindow};

/// A limiter for one stream of requests (one key): the algorithm's state in a single
/// cache-padded `AtomicU64`, updated by a compare-exchange loop. No lock, no allocation.
///
/// Every method has an `_at` form that takes `now` (nanoseconds on the limiter's clock)
/// instead of reading the clock.
///
/// # Orderings
/// The whole state is one atomic word and nothing else is published through it, so the
/// modification order of that word alone makes every check linearizable: a
/// compare-exchange computed from value `v` succeeds only if `v` is still the latest
/// value. `Relaxed` is therefore enough for every access (on x86 all forms compile to the
/// same `lock cmpxchg`). The loom test `cas_update_is_linearizable` checks this.
///
/// # Examples
/// ```
/// use tollgate_core::{GcraLimiter, ManualClock, Rate};
/// let clock = ManualClock::new(0);
/// let limiter = GcraLimiter::with_clock(Rate::per_second(2).unwrap().into(), clock.clone());
/// assert!(limiter.check().allowed());
/// assert!(limiter.check().allowed());
/// let denied = limiter.check();
/// assert!(!denied.allowed());
/// assert_eq!(denied.retry_after, 500_000_000);
/// clock.advance(std::time::Duration::from_millis(500));
/// assert!(limiter.check().allowed());
/// ```
#[derive(Debug)]
pub struct RateLimiter<A: Algorithm, C: Clock = DefaultClock> {
    state: CachePadded<AtomicU64>,
    alg: A,
    clock: C,
}

/// A GCRA limiter.
pub type GcraLimiter<C = DefaultClock> = RateLimiter<Gcra, C>;

/// A sliding-window counter limiter.
pub type SlidingWindowLimiter<C = DefaultClock> = RateLimiter<SlidingWindow, C>;

/// Runs the decision of `alg` on `atom` in a compare-exchange loop: only the admission
/// test runs between the read and the write; the decision is computed afterwards from the
/// state the write was based on.
#[inline]
pub(crate) fn update<A: Algorithm>(atom: &AtomicU64, alg: &A, now: u64, cost: u64) -> Decision {
    let mut cur = atom.load(Ordering::Relaxed);
    while let Some(next) = alg.admit(cur, now, cost) {
        match atom.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
    alg.decide(cur, now, cost).0
}

/// Gives `cost` back on `atom`.
#[inline]
pub(crate) fn refund<A: Algorithm>(atom: &AtomicU64, alg: &A, now: u64, cost: u64) {
    let mut cur = atom.load(Ordering::Relaxed);
    loop {
        let next = alg.refund(cur, now, cost);
        if next == cur {
            return;
        }
        match atom.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

#[inline]
pub(crate) fn check_cost<A: Algorithm>(alg: &A, cost: u64) -> Result<(), InsufficientCapacity> {
    InsufficientCapacity::check(cost, alg.capacity())
}

impl<A: Algorithm> RateLimiter<A, DefaultClock> {
    /// A limiter on the default clock.
    pub fn new(alg: A) -> Self {
        Self::with_clock(alg, DefaultClock::new())
    }
}

impl<A: Algorithm, C: Clock> RateLimiter<A, C> {
    /// A limiter reading `clock`.
    pub fn with_clock(alg: A, clock: C) -> Self {
        RateLimiter {
            state: CachePadded::new(AtomicU64::new(FRESH)),
            alg,
            clock,
        }
    }

    /// The algorithm's parameters.
    pub fn algorithm(&self) -> &A {
        &self.alg
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Decides a request of cost 1 now. Cost 1 always fits a valid limit, so this never
    /// fails.
    #[inline]
    pub fn check(&self) -> Decision {
        self.check_at(self.clock.now())
    }

    /// Decides a request of cost 1 at `now`.
    #[inline]
    pub fn check_at(&self, now: u64) -> Decision {
        update(&self.state, &self.alg, now, 1)
    }

    /// Decides a request of weight `cost` now. A cost above the limit's capacity is an
    /// error: it could never pass.
    #[inline]
    pub fn check_n(&self, cost: u64) -> Result<Decision, InsufficientCapacity> {
        self.check_n_at(cost, self.clock.now())
    }

    /// Decides a request of weight `cost` at `now`.
    #[inline]
    pub fn check_n_at(&self, cost: u64, now: u64) -> Result<Decision, InsufficientCapacity> {
        check_cost(&self.alg, cost)?;
        Ok(update(&self.state, &self.alg, now, cost))
    }

    /// What [`check_n`](Self::check_n) would answer, without consuming anything.
    pub fn peek(&self, cost: u64) -> Result<Decision, InsufficientCapacity> {
        self.peek_at(cost, self.clock.now())
    }

    /// What [`check_n_at`](Self::check_n_at) would answer at `now`, without consuming.
    pub fn peek_at(&self, cost: u64, now: u64) -> Result<Decision, InsufficientCapacity> {
        check_cost(&self.alg, cost)?;
        Ok(self
            .alg
            .decide(self.state.load(Ordering::Relaxed), now, cost)
            .0)
    }

    /// Gives back `cost` units of an allowed request that was not served. Capacity never
    /// grows beyond that of a fresh limiter.
    pub fn refund(&self, cost: u64) {
        self.refund_at(cost, self.clock.now());
    }

    /// [`refund`](Self::refund) at `now`.
    pub fn refund_at(&self, cost: u64, now: u64) {
        refund(&self.state, &self.alg, now, cost);
    }

    /// Forgets all history: the limiter answers as if new.
    pub fn reset(&self) {
        self.state.store(FRESH, Ordering::Relaxed);
    }

    /// The raw state word (for diagnostics and tests).
    pub fn state(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;
    use crate::{ManualClock, Rate};

    #[test]
    fn too_costly_is_an_error_not_a_denial() {
        let l = GcraLimiter::with_clock(Rate::per_second(5).unwrap().into(), ManualClock::new(0));
        let e = l.check_n(6).unwrap_err();
        assert_eq!(
            e,
            InsufficientCapacity {
                cost: 6,
                capacity: 5
            }
        );
        assert_eq!(l.state(), FRESH, "the error consumed nothing");
        assert!(l.check_n(5).unwrap().allowed());
        assert!(l.peek(u64::MAX).is_err());
    }

    #[test]
    fn peek_refund_reset() {
        let clock = ManualClock::new(1_000);
        let l = GcraLimiter::with_clock(Rate::per_second(2).unwrap().into(), clock);
        assert!(l.peek(2).unwrap().allowed());
        assert_eq!(l.state(), FRESH);
        assert!(l.check_n(2).unwrap().allowed());
        assert!(!l.peek(1).unwrap().allowed());
        l.refund(1);
        assert!(l.check().allowed());
        assert!(!l.check().allowed());
        l.reset();
        assert_eq!(l.check_n(2).unwrap().remaining, 0);
    }

    #[test]
    fn sliding_window_limiter() {
        let clock = ManualClock::new(0);
        let sw = SlidingWindow::new("3/s".parse().unwrap()).unwrap();
        let l = SlidingWindowLimiter::with_clock(sw, clock.clone());
        assert!(l.check_n(3).unwrap().allowed());
        assert!(!l.check().allowed());
        clock.advance(std::time::Duration::from_secs(2));
        assert!(l.check_n(3).unwrap().allowed());
    }

    #[test]
    fn concurrent_checks_never_exceed_the_burst() {
        let l = std::sync::Arc::new(GcraLimiter::with_clock(
            Rate::per_hour(1000).unwrap().into(),
            ManualClock::new(0),
        ));
        let allowed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if l.check().allowed() {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 1000);
    }
}

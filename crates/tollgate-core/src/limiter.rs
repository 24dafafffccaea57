//! A single (unkeyed) limiter: one algorithm, one atomic word of state.

use crossbeam_utils::CachePadded;

use crate::algorithm::{Algorithm, FRESH};
use crate::clock::{Clock, DefaultClock};
use crate::sync::{AtomicU64, Ordering};
use crate::{
    Decision, Gcra, Grant, InsufficientCapacity, Keep, Rate, Reservation, ReserveError,
    SlidingWindow,
};

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

/// Applies `f` to `atom` in a compare-exchange loop: `f` gets the current state and
/// returns a result and, if the state should change, the new state; only the call whose
/// state was installed counts.
#[inline]
pub(crate) fn transform<R>(atom: &AtomicU64, mut f: impl FnMut(u64) -> (R, Option<u64>)) -> R {
    let mut cur = atom.load(Ordering::Relaxed);
    loop {
        let (r, next) = f(cur);
        let Some(next) = next.filter(|n| *n != cur) else {
            return r;
        };
        match atom.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return r,
            Err(actual) => cur = actual,
        }
    }
}

/// The reservation closure shared by the direct and keyed limiters: the result and the
/// state to write.
#[inline]
pub(crate) fn reserve_step(
    alg: &Gcra,
    state: u64,
    now: u64,
    cost: u64,
    max_wait: u64,
) -> (Result<Reservation, ReserveError>, Option<u64>) {
    match alg.reserve(state, now, cost, max_wait) {
        Ok(r) => {
            let decision = alg.reserved_decision(&r);
            let res = Reservation::new(cost, &r, decision);
            (Ok(res), r.next)
        }
        Err(wait) => (Err(ReserveError::TooLong { wait, max_wait }), None),
    }
}

/// The decision reported with a partial grant of `granted` of `max` units decided on
/// `state`.
#[inline]
pub(crate) fn grant_decision(alg: &Gcra, state: u64, now: u64, max: u64, granted: u64) -> Grant {
    let cost = if granted > 0 { granted } else { max.min(1) };
    Grant {
        granted,
        decision: alg.decide(state, now, cost).0,
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

impl<A: Algorithm, C: Clock> RateLimiter<A, C> {
    /// Replaces the algorithm's parameters at `now`, keeping the state as `keep` says
    /// (see [`Algorithm::carry_state`]). Returns `false` when the state could not be
    /// carried over and the limiter starts fresh. Taking `&mut self` keeps every check
    /// free of any synchronisation with a change; a limiter shared between threads is
    /// changed by building its successor from this one's state, as the engine's reload
    /// does with [`Gcra::carry`].
    pub fn set_algorithm_at(&mut self, alg: A, keep: Keep, now: u64) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        let carried = self.alg.carry_state(state, now, &alg, keep);
        self.state
            .store(carried.unwrap_or(FRESH), Ordering::Relaxed);
        self.alg = alg;
        carried.is_some()
    }
}

/// Reservations, partial grants and live rate changes: see the [`reserve`](crate::reserve)
/// module for their semantics.
impl<C: Clock> RateLimiter<Gcra, C> {
    /// Reserves `cost` units now, waiting at most `max_wait` nanoseconds. See
    /// [`reserve_n_at`](Self::reserve_n_at).
    pub fn reserve_n(&self, cost: u64, max_wait: u64) -> Result<Reservation, ReserveError> {
        self.reserve_n_at(cost, self.clock.now(), max_wait)
    }

    /// Reserves `cost` units at `now` (x/time/rate's `ReserveN`): the units are taken now
    /// and the request may act after [`Reservation::delay`]; later reservations queue
    /// behind it. Refused, taking nothing, when the delay would exceed `max_wait`
    /// nanoseconds (`u64::MAX`: no bound; 0: only at once, like a check) or the cost is
    /// above the burst.
    ///
    /// ```
    /// use tollgate_core::{GcraLimiter, ManualClock, Rate, ReserveError};
    /// let l = GcraLimiter::with_clock(Rate::per_second(1).unwrap().into(), ManualClock::new(0));
    /// assert_eq!(l.reserve_n_at(1, 0, 0).unwrap().delay(), 0);
    /// let r = l.reserve_n_at(1, 0, u64::MAX).unwrap();
    /// assert_eq!((r.delay(), r.act_at()), (1_000_000_000, 1_000_000_000));
    /// assert!(!l.check_at(0).allowed(), "the reserved unit is taken");
    /// assert!(matches!(l.reserve_n_at(2, 0, u64::MAX), Err(ReserveError::InsufficientCapacity(_))));
    /// ```
    pub fn reserve_n_at(
        &self,
        cost: u64,
        now: u64,
        max_wait: u64,
    ) -> Result<Reservation, ReserveError> {
        check_cost(&self.alg, cost)?;
        let alg = &self.alg;
        transform(&self.state, |state| {
            reserve_step(alg, state, now, cost, max_wait)
        })
    }

    /// Cancels `reservation` now. See [`cancel_at`](Self::cancel_at).
    pub fn cancel(&self, reservation: Reservation) {
        self.cancel_at(reservation, self.clock.now());
    }

    /// Cancels `reservation` at `now` (x/time/rate's `CancelAt`): gives back its units
    /// less those later reservations depend on; nothing once its time to act is before
    /// `now`. The reservation must come from this limiter.
    pub fn cancel_at(&self, reservation: Reservation, now: u64) {
        let alg = &self.alg;
        let r = &reservation;
        transform(&self.state, |state| {
            ((), Some(alg.cancel(state, now, r.cost(), r.act_at())))
        });
    }

    /// Grants up to `max` units now. See [`grant_at_most_at`](Self::grant_at_most_at).
    pub fn grant_at_most(&self, max: u64) -> Grant {
        self.grant_at_most_at(max, self.clock.now())
    }

    /// Grants as many whole units as are left at `now`, at most `max` (redis_rate's
    /// `AllowAtMost`). Any `max` is accepted: a request above the burst gets what there
    /// is.
    ///
    /// ```
    /// use tollgate_core::{GcraLimiter, ManualClock, Rate};
    /// let l = GcraLimiter::with_clock(Rate::per_second(10).unwrap().into(), ManualClock::new(0));
    /// assert_eq!(l.grant_at_most_at(3, 0).granted, 3);
    /// let g = l.grant_at_most_at(100, 0);
    /// assert_eq!((g.granted, g.decision.remaining), (7, 0));
    /// let g = l.grant_at_most_at(100, 0);
    /// assert_eq!((g.granted, g.decision.retry_after), (0, 100_000_000));
    /// ```
    pub fn grant_at_most_at(&self, max: u64, now: u64) -> Grant {
        let alg = &self.alg;
        let (before, granted) = transform(&self.state, |state| {
            let (granted, next) = alg.grant(state, now, max);
            ((state, granted), next)
        });
        grant_decision(alg, before, now, max, granted)
    }

    /// Changes the rate and burst now. See [`set_rate_at`](Self::set_rate_at).
    pub fn set_rate(&mut self, rate: Rate, keep: Keep) {
        let now = self.clock.now();
        self.set_rate_at(rate, keep, now);
    }

    /// Changes the rate and burst at `now`, keeping the state as `keep` says
    /// ([`Keep::Tokens`]: x/time/rate's `SetLimitAt` / `SetBurstAt`; [`Keep::Used`]:
    /// tollgate's reload rule). See [`Gcra::carry`].
    pub fn set_rate_at(&mut self, rate: Rate, keep: Keep, now: u64) {
        self.set_algorithm_at(Gcra::new(rate), keep, now);
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;
    use crate::ManualClock;

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

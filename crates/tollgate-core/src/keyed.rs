//! Limiters keyed by any hashable value: one algorithm, one clock, one [`KeyedStore`].

use std::fmt;
use std::hash::Hash;

use crate::algorithm::Algorithm;
use crate::clock::{Clock, DefaultClock};
use crate::limiter::{check_cost, grant_decision, reserve_step};
use crate::{
    Decision, Gcra, Grant, Keep, KeyedError, KeyedStore, Rate, Reservation, ReserveError,
    SlidingWindow, StoreFull, FRESH,
};

/// Many independent limits, one per key (a token and tenant pair, a company id, a client
/// address), sharing one algorithm and clock. Each key behaves exactly like its own
/// [`crate::RateLimiter`]; keys whose state has gone back to fresh are evicted
/// automatically, which never changes a decision.
///
/// ```
/// use tollgate_core::{KeyedGcraLimiter, Rate};
/// let limiter = KeyedGcraLimiter::<str>::new(Rate::per_second(1).unwrap().into(), 10_000);
/// assert!(limiter.check_at("token-a:tenant-1", 0).unwrap().allowed());
/// assert!(!limiter.check_at("token-a:tenant-1", 1).unwrap().allowed());
/// assert!(limiter.check_at("token-a:tenant-2", 1).unwrap().allowed());
/// ```
pub struct KeyedRateLimiter<K: ?Sized, A: Algorithm, C: Clock = DefaultClock> {
    store: KeyedStore<K>,
    alg: A,
    clock: C,
}

/// A keyed GCRA limiter.
pub type KeyedGcraLimiter<K, C = DefaultClock> = KeyedRateLimiter<K, Gcra, C>;

/// A keyed sliding-window limiter.
pub type KeyedSlidingWindowLimiter<K, C = DefaultClock> = KeyedRateLimiter<K, SlidingWindow, C>;

impl<K: ?Sized, A: Algorithm, C: Clock + fmt::Debug> fmt::Debug for KeyedRateLimiter<K, A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("alg", &self.alg)
            .field("store", &self.store)
            .field("clock", &self.clock)
            .finish()
    }
}

impl<K: Hash + ?Sized, A: Algorithm> KeyedRateLimiter<K, A, DefaultClock> {
    /// A limiter for up to `capacity` keys on the default clock.
    pub fn new(alg: A, capacity: usize) -> Self {
        Self::with_clock(alg, capacity, DefaultClock::new())
    }
}

impl<K: Hash + ?Sized, A: Algorithm, C: Clock> KeyedRateLimiter<K, A, C> {
    /// A limiter for up to `capacity` keys reading `clock`.
    pub fn with_clock(alg: A, capacity: usize, clock: C) -> Self {
        KeyedRateLimiter {
            store: KeyedStore::with_capacity(capacity),
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

    /// The underlying store (capacity, length, memory, evictions).
    pub fn store(&self) -> &KeyedStore<K> {
        &self.store
    }

    /// Decides a request of cost 1 for `key` now.
    #[inline]
    pub fn check(&self, key: &K) -> Result<Decision, KeyedError> {
        self.check_n_at(key, 1, self.clock.now())
    }

    /// Decides a request of cost 1 for `key` at `now`.
    #[inline]
    pub fn check_at(&self, key: &K, now: u64) -> Result<Decision, KeyedError> {
        self.check_n_at(key, 1, now)
    }

    /// Decides a request of weight `cost` for `key` now.
    #[inline]
    pub fn check_n(&self, key: &K, cost: u64) -> Result<Decision, KeyedError> {
        self.check_n_at(key, cost, self.clock.now())
    }

    /// Decides a request of weight `cost` for `key` at `now`. Errors: the cost can never
    /// pass, or the key is new and the store is full (see [`KeyedStore`]).
    #[inline]
    pub fn check_n_at(&self, key: &K, cost: u64, now: u64) -> Result<Decision, KeyedError> {
        check_cost(&self.alg, cost)?;
        let alg = &self.alg;
        // The closure returns the state it decided on; the decision is computed once,
        // after the write.
        let based_on = self.store.update(
            key,
            now,
            |s, t| alg.is_fresh(s, t),
            |state| (state, alg.admit(state, now, cost)),
        )?;
        Ok(alg.decide(based_on, now, cost).0)
    }

    /// What [`check_n_at`](Self::check_n_at) would answer, consuming nothing and never
    /// inserting the key.
    pub fn peek_at(&self, key: &K, cost: u64, now: u64) -> Result<Decision, KeyedError> {
        check_cost(&self.alg, cost)?;
        let state = self.store.get(key).unwrap_or(crate::FRESH);
        Ok(self.alg.decide(state, now, cost).0)
    }

    /// Gives back `cost` units for `key` now.
    pub fn refund(&self, key: &K, cost: u64) {
        self.refund_at(key, cost, self.clock.now());
    }

    /// Gives back `cost` units of an allowed request for `key` that was not served. An
    /// absent key is already at full capacity, so nothing is stored for it.
    pub fn refund_at(&self, key: &K, cost: u64, now: u64) {
        let alg = self.alg;
        let _ = self.store.update(
            key,
            now,
            move |s, t| alg.is_fresh(s, t),
            |state| {
                let next = alg.refund(state, now, cost);
                ((), (next != state).then_some(next))
            },
        );
    }

    /// Forgets `key`'s history.
    pub fn reset(&self, key: &K) {
        self.store.reset(key);
    }

    /// Keys stored (including fresh ones not yet evicted).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Evicts every key that is fresh at `now`; returns how many. Optional: eviction
    /// also happens automatically as keys are inserted.
    pub fn evict_fresh_at(&self, now: u64) -> usize {
        let alg = self.alg;
        self.store.evict_fresh(now, move |s, t| alg.is_fresh(s, t))
    }
}

impl<K: Hash + ?Sized, A: Algorithm, C: Clock> KeyedRateLimiter<K, A, C> {
    /// Replaces the algorithm's parameters for every key at `now`, keeping each key's
    /// state as `keep` says (see [`Algorithm::carry_state`]); returns `false` when the
    /// states could not be carried over and every key starts fresh.
    ///
    /// **What a change means for a key.** A key with no recorded use (a key never seen,
    /// an evicted one, or one whose state is full again) has the new burst at once under
    /// either `keep`: such keys are not stored, so they cannot keep an old burst of
    /// tokens. Every other key carries its state as for a single limiter: under
    /// [`Keep::Used`] the capacity it used (raising the burst takes effect at once,
    /// lowering it never hands out a fresh burst), under [`Keep::Tokens`] the tokens it
    /// has left, clamped to the new burst. From then on every key accrues at the new rate.
    /// Waiting reservations stay in line: a key's debt is carried like any used capacity.
    ///
    /// Taking `&mut self` keeps every check free of any synchronisation with a change;
    /// a store shared between threads is changed in place with [`KeyedStore::remap`]
    /// and [`Algorithm::carry_state`] while the new parameters are published by the
    /// caller, as the engine's reload does.
    pub fn set_algorithm_at(&mut self, alg: A, keep: Keep, now: u64) -> bool {
        let old = self.alg;
        let carries = old.carry_state(FRESH, now, &alg, keep).is_some();
        self.store.remap(|state| {
            if !carries {
                FRESH
            } else if old.is_fresh(state, now) {
                state
            } else {
                old.carry_state(state, now, &alg, keep).unwrap_or(FRESH)
            }
        });
        self.alg = alg;
        carries
    }
}

/// Reservations, partial grants and live rate changes, per key: see the
/// [`reserve`](crate::reserve) module for their semantics. Each key behaves exactly like
/// its own [`crate::GcraLimiter`].
///
/// ```
/// use tollgate_core::{KeyedGcraLimiter, ManualClock, Rate};
/// let l = KeyedGcraLimiter::<str, _>::with_clock(Rate::per_second(2).unwrap().into(), 1_000, ManualClock::new(0));
/// let first = l.reserve_n_at("alice", 2, 0, u64::MAX).unwrap();
/// let next = l.reserve_n_at("alice", 1, 0, u64::MAX).unwrap();
/// assert_eq!((first.delay(), next.delay()), (0, 500_000_000));
/// l.cancel_at("alice", next, 0); // the last in line: its unit comes back
/// assert_eq!(l.grant_at_most_at("alice", 9, 500_000_000).unwrap().granted, 1);
/// assert_eq!(l.grant_at_most_at("bob", 9, 0).unwrap().granted, 2);
/// ```
impl<K: Hash + ?Sized, C: Clock> KeyedRateLimiter<K, Gcra, C> {
    /// Reserves `cost` units for `key` now. See [`reserve_n_at`](Self::reserve_n_at).
    pub fn reserve_n(
        &self,
        key: &K,
        cost: u64,
        max_wait: u64,
    ) -> Result<Reservation, ReserveError> {
        self.reserve_n_at(key, cost, self.clock.now(), max_wait)
    }

    /// Reserves `cost` units for `key` at `now`, waiting at most `max_wait` nanoseconds
    /// (see [`crate::GcraLimiter::reserve_n_at`]). Errors, taking nothing: the cost is
    /// above the burst, the wait would be too long, or the key is new and the store is
    /// full.
    pub fn reserve_n_at(
        &self,
        key: &K,
        cost: u64,
        now: u64,
        max_wait: u64,
    ) -> Result<Reservation, ReserveError> {
        check_cost(&self.alg, cost)?;
        let alg = &self.alg;
        self.store.update(
            key,
            now,
            |s, t| alg.is_fresh(s, t),
            |state| reserve_step(alg, state, now, cost, max_wait),
        )?
    }

    /// Cancels `key`'s `reservation` now. See [`cancel_at`](Self::cancel_at).
    pub fn cancel(&self, key: &K, reservation: Reservation) {
        self.cancel_at(key, reservation, self.clock.now());
    }

    /// Cancels `key`'s `reservation` at `now` (see [`crate::GcraLimiter::cancel_at`]).
    /// The reservation must come from this limiter and this key. A key no longer stored
    /// is full, and had nothing to give back.
    pub fn cancel_at(&self, key: &K, reservation: Reservation, now: u64) {
        let alg = &self.alg;
        let r = &reservation;
        let _ = self.store.update(
            key,
            now,
            |s, t| alg.is_fresh(s, t),
            |state| {
                let next = alg.cancel(state, now, r.cost(), r.act_at());
                ((), (next != state).then_some(next))
            },
        );
    }

    /// Grants up to `max` units for `key` now. See
    /// [`grant_at_most_at`](Self::grant_at_most_at).
    pub fn grant_at_most(&self, key: &K, max: u64) -> Result<Grant, StoreFull> {
        self.grant_at_most_at(key, max, self.clock.now())
    }

    /// Grants as many whole units as `key` has left at `now`, at most `max` (see
    /// [`crate::GcraLimiter::grant_at_most_at`]). The only error: the key is new and the
    /// store is full.
    pub fn grant_at_most_at(&self, key: &K, max: u64, now: u64) -> Result<Grant, StoreFull> {
        let alg = &self.alg;
        let (before, granted) = self.store.update(
            key,
            now,
            |s, t| alg.is_fresh(s, t),
            |state| {
                let (granted, next) = alg.grant(state, now, max);
                ((state, granted), next)
            },
        )?;
        Ok(grant_decision(alg, before, now, max, granted))
    }

    /// Changes the rate and burst of every key now. See [`set_rate_at`](Self::set_rate_at).
    pub fn set_rate(&mut self, rate: Rate, keep: Keep) {
        let now = self.clock.now();
        self.set_rate_at(rate, keep, now);
    }

    /// Changes the rate and burst of every key at `now`, keeping each key's state as
    /// `keep` says; see [`set_algorithm_at`](Self::set_algorithm_at) for what that means
    /// for keys with no recorded use.
    pub fn set_rate_at(&mut self, rate: Rate, keep: Keep, now: u64) {
        self.set_algorithm_at(Gcra::new(rate), keep, now);
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn keys_are_independent_and_errors_are_clear() {
        let l = KeyedGcraLimiter::<(u64, u64), _>::with_clock(
            Rate::per_minute(2).unwrap().into(),
            100,
            ManualClock::new(0),
        );
        assert!(l.check(&(1, 1)).unwrap().allowed());
        assert!(l.check(&(1, 1)).unwrap().allowed());
        assert!(!l.check(&(1, 1)).unwrap().allowed());
        assert!(l.check(&(1, 2)).unwrap().allowed());
        assert!(matches!(
            l.check_n(&(1, 3), 3),
            Err(KeyedError::InsufficientCapacity(_))
        ));
        assert_eq!(l.peek_at(&(9, 9), 2, 0).unwrap().remaining, 0);
        assert_eq!(l.len(), 2, "peek and errors insert nothing");
        l.refund(&(1, 1), 1);
        assert!(l.check(&(1, 1)).unwrap().allowed());
        l.reset(&(1, 1));
        assert_eq!(l.check(&(1, 1)).unwrap().remaining, 1);
        l.refund(&(7, 7), 1);
        assert_eq!(l.len(), 2, "refunding an absent key stores nothing");
    }

    #[test]
    fn store_full_is_reported_and_recovers() {
        let clock = ManualClock::new(0);
        let l = KeyedGcraLimiter::<u64, _>::with_clock(
            Rate::per_second(1).unwrap().into(),
            8,
            clock.clone(),
        );
        let slots = l.store().slots() as u64;
        for k in 0..slots {
            assert!(l.check(&k).unwrap().allowed());
        }
        assert!(matches!(l.check(&1000), Err(KeyedError::StoreFull(_))));
        assert!(matches!(
            l.reserve_n(&1000, 1, u64::MAX),
            Err(ReserveError::StoreFull(_))
        ));
        assert!(l.grant_at_most(&1000, 1).is_err());
        assert!(
            l.grant_at_most(&1000, 0).is_ok(),
            "a probe needs no room: nothing is stored"
        );
        clock.advance(std::time::Duration::from_secs(1));
        assert!(l.check(&1000).unwrap().allowed(), "fresh keys make room");
    }
}

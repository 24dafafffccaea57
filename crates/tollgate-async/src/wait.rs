//! Waiting for a limiter of tollgate-core: [`UntilReady`] (one limit) and
//! [`KeyedUntilReady`] (one limit per key), with optional [`Jitter`]; and the crate's
//! retry loop, which [`Gate`](crate::Gate) uses.
//!
//! # How a GCRA limiter waits: a reservation
//! `until_ready` on a GCRA limiter (direct or keyed) makes one reservation
//! (tollgate-core's `reserve_n`, x/time/rate's `ReserveN`): the units are taken at once
//! and the reservation says when the request may act; the waiter sleeps exactly until
//! then (plus the jitter, if any) and returns. One decision per waiter, never a retry.
//! Waiters are therefore served in the order they arrived (first come, first served): a
//! heavy request is not overtaken by lighter ones that arrive after it, and waiters never
//! wake up together to compete for the same unit.
//!
//! # How a sliding-window limiter waits: a retry loop
//! A sliding window cannot reserve the future, so its waiters decide, sleep exactly the
//! denial's `retry_after` (plus the jitter) and decide again; a waiter makes one decision
//! per wake-up, and wakes up more than once only when others took the capacity it waited
//! for. Order between its waiters is not guaranteed.
//!
//! Either way a request that can never pass (its cost is above the limit's capacity) is
//! an error at once, as is a full key store.
//!
//! # Cancellation
//! A future dropped before its first poll did nothing. A GCRA waiter dropped while it
//! sleeps (its task cancelled, a `timeout` elapsed, a `select!` took another branch)
//! cancels its reservation (x/time/rate's `Cancel`): its units come back, less any that
//! waiters queued behind it depend on (those keep their place and their time). A
//! sliding-window waiter takes capacity only in the poll that returns, so dropping it
//! earlier consumed nothing.
//!
//! # Which clock
//! The limiter's clock and tokio's timer must advance together: in production any clock
//! of tollgate-core does; under tokio's paused time use [`TokioClock`](crate::TokioClock),
//! which reads tokio's time. Tokio's timer has millisecond resolution and never fires
//! early, so a waiter may wake up to 1 ms after its time.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use tollgate::core::{
    Clock, Decision, Gcra, InsufficientCapacity, KeyedError, KeyedRateLimiter, RateLimiter,
    Reservation, ReserveError, SlidingWindow,
};

use crate::clock::nanos;

/// A random extra wait added to every sleep, to spread out waiters that would otherwise
/// wake up together (a thundering herd of callers denied at the same moment). The default
/// is no jitter.
///
/// ```
/// use std::time::Duration;
/// use tollgate_async::Jitter;
///
/// let j = Jitter::up_to(Duration::from_millis(20));
/// for _ in 0..100 {
///     assert!(j.sample() <= Duration::from_millis(20));
/// }
/// assert_eq!(Jitter::NONE.sample(), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Jitter {
    min: Duration,
    max: Duration,
}

impl Jitter {
    /// No jitter: wait exactly `retry_after`.
    pub const NONE: Jitter = Jitter {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// A uniformly random extra wait in `[min, max]` (`max` below `min` counts as `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        Jitter {
            min,
            max: max.max(min),
        }
    }

    /// A uniformly random extra wait in `[0, max]`.
    pub fn up_to(max: Duration) -> Self {
        Jitter::new(Duration::ZERO, max)
    }

    /// One random extra wait.
    pub fn sample(&self) -> Duration {
        let span = nanos(self.max - self.min);
        if span == 0 {
            return self.min;
        }
        // std's RandomState is randomly keyed per process and per instance: its hash of
        // nothing is a uniformly distributed u64, and it needs no dependency.
        let r = RandomState::new().hash_one(());
        let extra = if span == u64::MAX { r } else { r % (span + 1) };
        self.min + Duration::from_nanos(extra)
    }

    /// How long to sleep for a denial that said `retry_after` nanoseconds.
    pub(crate) fn wait(&self, retry_after: u64) -> Duration {
        Duration::from_nanos(retry_after).saturating_add(self.sample())
    }
}

/// What one decision of a waiter says: done, or try again after a wait.
pub(crate) enum Attempt<T> {
    /// Allowed: the waiter returns this.
    Ready(T),
    /// Denied: decide again after this many nanoseconds (plus the jitter).
    RetryAfter(u64),
}

impl Attempt<Decision> {
    /// A core limiter's decision: ready when it allows, else its `retry_after`.
    fn of(d: Decision) -> Self {
        if d.allowed() {
            Attempt::Ready(d)
        } else {
            Attempt::RetryAfter(d.retry_after)
        }
    }
}

/// The one waiting loop of the crate: one decision (`attempt`); if it denies, one
/// `tokio::time::sleep` of exactly its wait plus `jitter`; then one decision again.
/// An error of `attempt` ends the wait at once. Only the returning poll has decided
/// `Ready`, so a future dropped earlier took nothing.
pub(crate) async fn retry<T, E>(
    jitter: Jitter,
    mut attempt: impl FnMut() -> Result<Attempt<T>, E>,
) -> Result<T, E> {
    loop {
        match attempt()? {
            Attempt::Ready(t) => return Ok(t),
            Attempt::RetryAfter(ns) => tokio::time::sleep(jitter.wait(ns)).await,
        }
    }
}

/// Waiting for a single [`RateLimiter`] (`GcraLimiter`, `SlidingWindowLimiter`). See
/// the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use tollgate::core::{GcraLimiter, Rate};
/// use tollgate_async::{TokioClock, UntilReady};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rate = Rate::per_second(10)?.with_burst(1)?;
/// let limiter = GcraLimiter::with_clock(rate.into(), TokioClock::starting_at(0));
/// let start = tokio::time::Instant::now();
/// limiter.until_ready(1).await?; // the burst of 1 is free
/// limiter.until_ready(1).await?; // then one every 100 ms
/// assert_eq!(start.elapsed(), Duration::from_millis(100));
/// assert!(limiter.until_ready(2).await.is_err(), "above the burst: an error at once");
/// # Ok(()) }
/// ```
pub trait UntilReady {
    /// Waits until a request of `cost` is allowed, and takes it. Errors at once when
    /// `cost` exceeds the limit's capacity.
    fn until_ready(
        &self,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, InsufficientCapacity>> + Send + '_ {
        self.until_ready_with_jitter(cost, Jitter::NONE)
    }

    /// [`until_ready`](Self::until_ready), adding `jitter` to every sleep.
    fn until_ready_with_jitter(
        &self,
        cost: u64,
        jitter: Jitter,
    ) -> impl Future<Output = Result<Decision, InsufficientCapacity>> + Send + '_;
}

/// Cancels a reservation unless the waiter that holds it got to act: dropping a
/// sleeping waiter gives its units back.
struct CancelOnDrop<F: FnMut(Reservation)> {
    reservation: Option<Reservation>,
    cancel: F,
}

impl<F: FnMut(Reservation)> CancelOnDrop<F> {
    /// The waiter acts: the reservation is kept.
    fn acted(mut self) -> Decision {
        let r = self.reservation.take().expect("acted once");
        r.decision()
    }
}

impl<F: FnMut(Reservation)> Drop for CancelOnDrop<F> {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            (self.cancel)(r);
        }
    }
}

/// Sleeps until `reservation` may act (plus `jitter`), cancelling it with `cancel` if the
/// future is dropped first; returns the decision it acts with.
async fn act(
    reservation: Reservation,
    jitter: Jitter,
    cancel: impl FnMut(Reservation),
) -> Decision {
    let delay = reservation.delay();
    let guard = CancelOnDrop {
        reservation: Some(reservation),
        cancel,
    };
    if delay > 0 || jitter != Jitter::NONE {
        tokio::time::sleep(jitter.wait(delay)).await;
    }
    guard.acted()
}

impl<C: Clock> UntilReady for RateLimiter<Gcra, C> {
    /// One reservation, one sleep until it may act; FIFO; a dropped waiter cancels it.
    async fn until_ready_with_jitter(
        &self,
        cost: u64,
        jitter: Jitter,
    ) -> Result<Decision, InsufficientCapacity> {
        match self.reserve_n(cost, u64::MAX) {
            Ok(r) => Ok(act(r, jitter, |r| self.cancel(r)).await),
            Err(ReserveError::InsufficientCapacity(e)) => Err(e),
            // Only a wait past the end of the clock's range (some 584 years): the retry
            // loop sleeps that long.
            Err(_) => retry(jitter, || Ok(Attempt::of(self.check_n(cost)?))).await,
        }
    }
}

impl<C: Clock> UntilReady for RateLimiter<SlidingWindow, C> {
    /// The retry loop: decide, sleep `retry_after`, decide again.
    async fn until_ready_with_jitter(
        &self,
        cost: u64,
        jitter: Jitter,
    ) -> Result<Decision, InsufficientCapacity> {
        retry(jitter, || Ok(Attempt::of(self.check_n(cost)?))).await
    }
}

/// Waiting for one key of a [`KeyedRateLimiter`]. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use tollgate::core::{KeyedGcraLimiter, Rate};
/// use tollgate_async::{KeyedUntilReady, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rate = Rate::per_second(2)?;
/// let limiter = KeyedGcraLimiter::<str, _>::with_clock(rate.into(), 1_000, TokioClock::starting_at(0));
/// let start = tokio::time::Instant::now();
/// limiter.until_ready("alice", 2).await?; // the whole burst
/// limiter.until_ready("alice", 1).await?; // waits 500 ms
/// assert_eq!(start.elapsed(), Duration::from_millis(500));
/// limiter.until_ready("bob", 2).await?; // another key: at once
/// assert_eq!(start.elapsed(), Duration::from_millis(500));
/// # Ok(()) }
/// ```
pub trait KeyedUntilReady<K: ?Sized> {
    /// Waits until a request of `cost` for `key` is allowed, and takes it. Errors at
    /// once when `cost` exceeds the limit's capacity or the key is new and the store is
    /// full.
    fn until_ready<'a>(
        &'a self,
        key: &'a K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, KeyedError>> + Send + 'a {
        self.until_ready_with_jitter(key, cost, Jitter::NONE)
    }

    /// [`until_ready`](Self::until_ready), adding `jitter` to every sleep.
    fn until_ready_with_jitter<'a>(
        &'a self,
        key: &'a K,
        cost: u64,
        jitter: Jitter,
    ) -> impl Future<Output = Result<Decision, KeyedError>> + Send + 'a;
}

impl<K, C> KeyedUntilReady<K> for KeyedRateLimiter<K, Gcra, C>
where
    K: Hash + Sync + ?Sized,
    C: Clock,
{
    /// One reservation for the key, one sleep until it may act; FIFO per key; a dropped
    /// waiter cancels it.
    async fn until_ready_with_jitter<'a>(
        &'a self,
        key: &'a K,
        cost: u64,
        jitter: Jitter,
    ) -> Result<Decision, KeyedError> {
        match self.reserve_n(key, cost, u64::MAX) {
            Ok(r) => Ok(act(r, jitter, |r| self.cancel(key, r)).await),
            Err(ReserveError::InsufficientCapacity(e)) => Err(e.into()),
            Err(ReserveError::StoreFull(e)) => Err(e.into()),
            // Only a wait past the end of the clock's range: the retry loop sleeps that long.
            Err(ReserveError::TooLong { .. }) => {
                retry(jitter, || Ok(Attempt::of(self.check_n(key, cost)?))).await
            }
        }
    }
}

impl<K, C> KeyedUntilReady<K> for KeyedRateLimiter<K, SlidingWindow, C>
where
    K: Hash + Sync + ?Sized,
    C: Clock,
{
    /// The retry loop: decide, sleep `retry_after`, decide again.
    async fn until_ready_with_jitter<'a>(
        &'a self,
        key: &'a K,
        cost: u64,
        jitter: Jitter,
    ) -> Result<Decision, KeyedError> {
        retry(jitter, || Ok(Attempt::of(self.check_n(key, cost)?))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_its_range_and_varies() {
        let j = Jitter::new(Duration::from_millis(5), Duration::from_millis(10));
        let samples: Vec<Duration> = (0..200).map(|_| j.sample()).collect();
        assert!(samples
            .iter()
            .all(|s| (Duration::from_millis(5)..=Duration::from_millis(10)).contains(s)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(
            distinct.len() > 100,
            "random, not constant: {}",
            distinct.len()
        );
        assert_eq!(
            Jitter::new(Duration::from_secs(2), Duration::from_secs(1)).sample(),
            Duration::from_secs(2)
        );
        assert_eq!(Jitter::NONE.wait(5), Duration::from_nanos(5));
        assert_eq!(Jitter::NONE.wait(u64::MAX), Duration::from_nanos(u64::MAX));
    }
}

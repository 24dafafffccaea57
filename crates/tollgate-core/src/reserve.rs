//! Reservations, partial grants and live rate changes of the GCRA limiters, in the
//! semantics of Go's `golang.org/x/time/rate` and `redis_rate`.
//!
//! # Reservations
//! [`GcraLimiter::reserve_n_at`](crate::RateLimiter::reserve_n_at) (and the keyed
//! [`reserve_n_at`](crate::KeyedRateLimiter::reserve_n_at)) takes `cost` units *now* and
//! says when the request may act: at once when the limit has them, else after the delay
//! the limit needs to earn them. The state advances either way, so reservations queue up
//! in the order they were made (first come, first served) and a plain check made while
//! they wait is denied. `max_wait` refuses, taking nothing, a reservation that would wait
//! longer; a cost above the burst is an error, as for a check.
//!
//! [`cancel_at`](crate::RateLimiter::cancel_at) gives a reservation's units back, less
//! those later reservations depend on (x/time/rate's `CancelAt`): a reservation whose time
//! to act has passed gives nothing back; otherwise its units come back minus the units
//! later reservations reach past its time to act. The limit tracks that reach in its one
//! word of state (the time to act of the last reservation is `tat - tau`), so a cancel of a
//! later reservation frees its share for an earlier one, as in x/time/rate. (Where
//! x/time/rate remembers only the last event, cancelling a reservation in the middle of
//! the queue and then an earlier one can give the earlier one more back here, never more
//! than its own units; and a clock that goes backwards never re-accrues capacity.)
//!
//! # Partial grants
//! [`grant_at_most_at`](crate::RateLimiter::grant_at_most_at) grants as many whole units
//! as the limit has left, up to `max` (redis_rate's `AllowAtMost`), and says how many in a
//! [`Grant`]. A request may ask for more than the burst: it gets what is there.
//!
//! # Live rate and burst changes
//! [`set_rate_at`](crate::RateLimiter::set_rate_at) replaces a limiter's rate and burst
//! and keeps its state as [`Keep`](crate::Keep) says ([`Gcra::carry`](crate::Gcra::carry) is the
//! arithmetic, for callers that keep the state themselves).
//!
//! ```
//! use tollgate_core::{GcraLimiter, Keep, ManualClock, Rate};
//! let ms = 1_000_000;
//! let rate = Rate::per_second(10).unwrap().with_burst(2).unwrap();
//! let mut l = GcraLimiter::with_clock(rate.into(), ManualClock::new(0));
//! // The burst of 2 at once, then one every 100 ms, each later one in line.
//! let a = l.reserve_n_at(2, 0, u64::MAX).unwrap();
//! let b = l.reserve_n_at(1, 0, u64::MAX).unwrap();
//! let c = l.reserve_n_at(1, 0, u64::MAX).unwrap();
//! assert_eq!((a.delay(), b.delay(), c.delay()), (0, 100 * ms, 200 * ms));
//! // Waiting at most 250 ms: refused, nothing taken.
//! assert!(l.reserve_n_at(1, 0, 250 * ms).is_err());
//! // b gives up: c still depends on its unit, so nothing comes back...
//! l.cancel_at(b, 0);
//! assert_eq!(l.reserve_n_at(1, 0, u64::MAX).unwrap().delay(), 300 * ms);
//! // At 1 s every reservation has acted and the limit is full: 2 of 5 are granted.
//! let g = l.grant_at_most_at(5, 1_000 * ms);
//! assert_eq!((g.granted, g.decision.remaining), (2, 0));
//! // Doubling the rate keeps the tokens left (none) and accrues twice as fast.
//! l.set_rate_at(Rate::per_second(20).unwrap().with_burst(2).unwrap(), Keep::Tokens, 1_000 * ms);
//! assert!(l.check_at(1_050 * ms).allowed());
//! ```

use std::fmt;

use crate::gcra::Reserved;
use crate::{Decision, InsufficientCapacity, StoreFull};

/// Units taken by a reservation: when the request may act, and what it needs to be
/// cancelled. Made by `reserve_n_at`; give it back with `cancel_at` on the limiter (the
/// same limiter, and for a keyed limiter the same key) if the request will not act.
/// Consumed by the cancel, so it cannot be cancelled twice.
#[must_use = "a reservation has taken its units: act after its delay, or cancel it"]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Reservation {
    cost: u64,
    made_at: u64,
    act_at: u64,
    decision: Decision,
}

impl Reservation {
    pub(crate) fn new(cost: u64, r: &Reserved, decision: Decision) -> Self {
        Reservation {
            cost,
            made_at: r.now,
            act_at: r.act_at,
            decision,
        }
    }

    /// The units reserved.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// The instant (nanoseconds on the limiter's clock) the reservation was made at.
    pub fn made_at(&self) -> u64 {
        self.made_at
    }

    /// The instant the request may act (x/time/rate's `timeToAct`).
    pub fn act_at(&self) -> u64 {
        self.act_at
    }

    /// How long the request must wait from when it was reserved: `act_at - made_at`
    /// (0 when the limit had the units).
    pub fn delay(&self) -> u64 {
        self.act_at - self.made_at
    }

    /// How long the request must still wait at `now` (0 once `act_at` is reached).
    pub fn delay_from(&self, now: u64) -> u64 {
        self.act_at.saturating_sub(now)
    }

    /// The decision the request gets when it acts, with times relative to
    /// [`act_at`](Self::act_at): allowed, the units left then and how long until the
    /// limit is full again (assuming no other traffic). For a reservation with no delay
    /// it is exactly what `check_n_at` would have answered.
    pub fn decision(&self) -> Decision {
        self.decision
    }
}

/// Why a reservation was refused. Nothing was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReserveError {
    /// The cost is above the burst: it can never be reserved.
    InsufficientCapacity(InsufficientCapacity),
    /// The request would have to wait longer than it allows.
    TooLong {
        /// How long it would have waited (`u64::MAX`: past the end of the clock's range).
        wait: u64,
        /// The longest wait it allowed.
        max_wait: u64,
    },
    /// The key is new and the keyed store has no room for it.
    StoreFull(StoreFull),
}

impl fmt::Display for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReserveError::InsufficientCapacity(e) => e.fmt(f),
            ReserveError::TooLong { wait, max_wait } if *wait == u64::MAX => write!(
                f,
                "the reservation would wait past the end of the clock's range (at most {max_wait} ns allowed)"
            ),
            ReserveError::TooLong { wait, max_wait } => write!(
                f,
                "the reservation would wait {wait} ns, more than the {max_wait} ns allowed"
            ),
            ReserveError::StoreFull(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReserveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReserveError::InsufficientCapacity(e) => Some(e),
            ReserveError::StoreFull(e) => Some(e),
            ReserveError::TooLong { .. } => None,
        }
    }
}

impl From<InsufficientCapacity> for ReserveError {
    fn from(e: InsufficientCapacity) -> Self {
        ReserveError::InsufficientCapacity(e)
    }
}

impl From<StoreFull> for ReserveError {
    fn from(e: StoreFull) -> Self {
        ReserveError::StoreFull(e)
    }
}

/// The answer to a partial grant (redis_rate's `AllowAtMost`): how many units were
/// granted, and the decision as the other calls report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Units granted: at most what was asked for, 0 when the limit had none left.
    pub granted: u64,
    /// When units were granted, the decision for that many (allowed; `remaining` after
    /// them). When none were granted for a request of at least one, the denial of one
    /// unit (`retry_after` is when one unit is left). For a request of 0, a probe.
    pub decision: Decision,
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;
    use crate::{GcraLimiter, Keep, KeyedGcraLimiter, ManualClock, Rate, RateError};

    /// x/time/rate's test unit: `d = 100 ms`, `t_k = k * d`.
    const D: u64 = 100_000_000;
    const INF: u64 = u64::MAX;

    fn t(k: u64) -> u64 {
        k * D
    }

    /// x/time/rate's `NewLimiter(per_second, burst)`.
    fn limiter(per_second: u64, burst: u64) -> GcraLimiter<ManualClock> {
        let rate = Rate::per_second(per_second)
            .unwrap()
            .with_burst(burst)
            .unwrap();
        GcraLimiter::with_clock(rate.into(), ManualClock::new(0))
    }

    /// `runReserve`: reserves `n` at `at`, expecting to act at `act` (`None`: refused).
    #[track_caller]
    fn reserve(l: &GcraLimiter<ManualClock>, at: u64, n: u64, act: Option<u64>) -> Reservation {
        reserve_max(l, at, n, act, INF).expect("reservation refused")
    }

    #[track_caller]
    fn reserve_max(
        l: &GcraLimiter<ManualClock>,
        at: u64,
        n: u64,
        act: Option<u64>,
        max_wait: u64,
    ) -> Option<Reservation> {
        let before = l.state();
        let r = l.reserve_n_at(n, at, max_wait);
        match (&r, act) {
            (Ok(r), Some(act)) => assert_eq!(r.act_at(), act, "reserve {n} at {at}"),
            (Err(_), None) => assert_eq!(l.state(), before, "a refusal takes nothing"),
            (r, act) => panic!("reserve {n} at {at}: {r:?}, expected to act at {act:?}"),
        }
        r.ok()
    }

    /// x/time/rate's `TokensAt` of a GCRA state: `burst - backlog / T`, as a fraction
    /// `(numerator, T)`.
    fn tokens(l: &GcraLimiter<ManualClock>, at: u64) -> (i128, u64) {
        let g = l.algorithm();
        let t = g.emission_interval();
        let backlog = l.state().saturating_sub(at);
        (
            i128::from(g.burst()) * i128::from(t) - i128::from(backlog),
            t,
        )
    }

    fn whole(n: i128, l: &GcraLimiter<ManualClock>) -> (i128, u64) {
        let t = l.algorithm().emission_interval();
        (n * i128::from(t), t)
    }

    #[test]
    fn simple_reserve() {
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let _ = reserve(&l, t(0), 2, Some(t(2)));
        let _ = reserve(&l, t(3), 2, Some(t(4)));
    }

    #[test]
    fn mix_of_reservations_and_checks() {
        let l = limiter(10, 2);
        assert_eq!(
            l.reserve_n_at(3, t(0), INF),
            Err(ReserveError::InsufficientCapacity(InsufficientCapacity {
                cost: 3,
                capacity: 2
            })),
            "n > burst is never possible"
        );
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        assert_eq!(tokens(&l, t(1)), whole(1, &l));
        assert!(
            !l.check_n_at(2, t(1)).unwrap().allowed(),
            "not enough tokens"
        );
        let _ = reserve(&l, t(1), 2, Some(t(2)));
        assert_eq!(tokens(&l, t(1)), whole(-1, &l), "negative tokens");
        let d = l.check_at(t(1));
        assert!(!d.allowed());
        assert_eq!(d.retry_after, 2 * D, "the waiting reservation comes first");
        assert_eq!(tokens(&l, t(3)), whole(1, &l));
        assert!(l.check_at(t(3)).allowed());
    }

    #[test]
    fn cancelling_a_refused_reservation_is_impossible_and_it_took_nothing() {
        // TestCancelInvalid: the refused reservation is an error, so there is nothing
        // to cancel, and no extra tokens appear.
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        assert!(reserve_max(&l, t(0), 3, None, INF).is_none());
        let _ = reserve(&l, t(0), 2, Some(t(2)));
    }

    #[test]
    fn cancel_last_restores_all() {
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let r = reserve(&l, t(0), 2, Some(t(2)));
        l.cancel_at(r, t(1));
        let _ = reserve(&l, t(1), 2, Some(t(2)));
    }

    #[test]
    fn cancel_too_late_restores_nothing() {
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let r = reserve(&l, t(0), 2, Some(t(2)));
        l.cancel_at(r, t(3));
        let _ = reserve(&l, t(3), 2, Some(t(4)));
        // At its time to act exactly, it still comes back (x/time/rate: `timeToAct.Before(t)`).
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let r = reserve(&l, t(0), 2, Some(t(2)));
        l.cancel_at(r, t(2));
        let _ = reserve(&l, t(2), 2, Some(t(2)));
    }

    #[test]
    fn cancel_after_a_later_reservation_restores_only_what_it_did_not_consume() {
        // TestCancel0Tokens: the later reservations took the cancelled unit's place.
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let r = reserve(&l, t(0), 1, Some(t(1)));
        let _ = reserve(&l, t(0), 1, Some(t(2)));
        l.cancel_at(r, t(0));
        let _ = reserve(&l, t(0), 1, Some(t(3)));
        // TestCancel1Token: one of its two units is depended on, one comes back.
        let l = limiter(10, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let r = reserve(&l, t(0), 2, Some(t(2)));
        let _ = reserve(&l, t(0), 1, Some(t(3)));
        l.cancel_at(r, t(2));
        let _ = reserve(&l, t(2), 2, Some(t(4)));
    }

    #[test]
    fn cancel_multi_frees_an_earlier_reservation_from_a_cancelled_later_one() {
        let l = limiter(10, 4);
        let _ = reserve(&l, t(0), 4, Some(t(0)));
        let a = reserve(&l, t(0), 3, Some(t(3)));
        let _ = reserve(&l, t(0), 1, Some(t(4)));
        let c = reserve(&l, t(0), 1, Some(t(5)));
        l.cancel_at(c, t(1)); // 1 back
        l.cancel_at(a, t(1)); // 2 back, as if c had never been reserved
        let _ = reserve(&l, t(1), 3, Some(t(5)));
    }

    #[test]
    fn cancels_after_x_time_rate_loses_track() {
        // burst 5, 1 per 100 ms, all at t0: r1 takes 3 at once, a grant 1 more, r2 takes
        // 2 and waits for one of them (acts at t1). Cancel r2: its 2 come back. x/time/rate
        // would keep t1 as its last event (r2's "previous event", t1 - 2 units, lies before
        // now), so cancelling r1 would then give back only 3 - 1 = 2 units. No reservation
        // stands after r1 any more, so all 3 come back here.
        let l = limiter(10, 5);
        let r1 = reserve(&l, t(0), 3, Some(t(0)));
        assert_eq!(l.grant_at_most_at(1, t(0)).granted, 1);
        let r2 = reserve(&l, t(0), 2, Some(t(1)));
        l.cancel_at(r2, t(0));
        assert_eq!(tokens(&l, t(0)), whole(1, &l));
        l.cancel_at(r1, t(0));
        assert_eq!(tokens(&l, t(0)), whole(4, &l));
        // Never more than its own units.
        let r = reserve(&l, t(0), 1, Some(t(0)));
        l.cancel_at(r, t(0));
        assert_eq!(tokens(&l, t(0)), whole(4, &l));
    }

    #[test]
    fn refused_reservations_change_nothing() {
        // TestReserveJumpBack without the jump back: a request above the burst, and one
        // that would wait longer than allowed, leave the state as it was.
        let l = limiter(10, 2);
        let _ = reserve(&l, t(1), 2, Some(t(1)));
        let _ = reserve(&l, t(1), 1, Some(t(2)));
        assert!(reserve_max(&l, t(1), 3, None, INF).is_none());
        assert!(reserve_max(&l, t(1), 2, None, D).is_none());
        assert_eq!(
            l.reserve_n_at(2, t(1), D),
            Err(ReserveError::TooLong {
                wait: 3 * D,
                max_wait: D
            })
        );
        let _ = reserve(&l, t(1), 1, Some(t(3)));
    }

    #[test]
    fn a_clock_going_back_never_re_accrues() {
        // x/time/rate moves `last` back when the clock does, so a cancel at t0 followed
        // by a reservation at t1 earns the interval [t0, t1] twice (its
        // TestReserveJumpBackCancel expects t4 below). A GCRA state is an instant, not a
        // count with a timestamp: the earlier time finds it further ahead, and the later
        // reservation acts at t5, as if the clock had never gone back.
        let l = limiter(10, 2);
        let _ = reserve(&l, t(1), 2, Some(t(1)));
        let r = reserve(&l, t(1), 2, Some(t(3)));
        let _ = reserve(&l, t(1), 1, Some(t(4)));
        l.cancel_at(r, t(0)); // 1 back
        let _ = reserve(&l, t(1), 2, Some(t(5)));
    }

    #[test]
    fn max_wait_refuses_and_takes_nothing() {
        let l = limiter(10, 2);
        assert!(reserve_max(&l, t(0), 2, Some(t(0)), D).is_some());
        assert!(
            reserve_max(&l, t(0), 1, Some(t(1)), D).is_some(),
            "within max_wait"
        );
        assert!(reserve_max(&l, t(0), 1, None, D).is_none(), "too far");
        assert!(
            reserve_max(&l, t(0), 1, Some(t(2)), 2 * D).is_some(),
            "a wait of exactly max_wait is accepted"
        );
        // max_wait 0 is a check.
        assert!(reserve_max(&l, t(4), 2, Some(t(4)), 0).is_some());
        assert!(reserve_max(&l, t(4), 1, None, 0).is_none());
    }

    #[test]
    fn reserve_then_set_limit() {
        // TestReserveSetLimit: at 5/s the second pair acts at t4; at t2 the rate doubles
        // with -1 token: one more unit acts at t4 again.
        let mut l = limiter(5, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let _ = reserve(&l, t(0), 2, Some(t(4)));
        l.set_rate_at(
            Rate::per_second(10).unwrap().with_burst(2).unwrap(),
            Keep::Tokens,
            t(2),
        );
        assert_eq!(tokens(&l, t(2)), whole(-1, &l));
        let _ = reserve(&l, t(2), 1, Some(t(4)));
    }

    #[test]
    fn reserve_then_set_burst() {
        // TestReserveSetBurst at t3 (x/time/rate reserves at t0 after the change, an earlier
        // time it re-accrues from; see a_clock_going_back_never_re_accrues): -0.5 tokens
        // kept, 4 more at 5/s act 900 ms later.
        let mut l = limiter(5, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let _ = reserve(&l, t(0), 2, Some(t(4)));
        l.set_rate_at(
            Rate::per_second(5).unwrap().with_burst(4).unwrap(),
            Keep::Tokens,
            t(3),
        );
        assert_eq!(tokens(&l, t(3)), (-100_000_000, 200_000_000), "-0.5 tokens");
        let _ = reserve(&l, t(3), 4, Some(t(12)));
    }

    #[test]
    fn reserve_set_limit_then_cancel() {
        let mut l = limiter(5, 2);
        let _ = reserve(&l, t(0), 2, Some(t(0)));
        let r = reserve(&l, t(0), 2, Some(t(4)));
        l.set_rate_at(
            Rate::per_second(10).unwrap().with_burst(2).unwrap(),
            Keep::Tokens,
            t(2),
        );
        l.cancel_at(r, t(2)); // 2 tokens back
        assert_eq!(tokens(&l, t(2)), whole(1, &l));
        let _ = reserve(&l, t(2), 2, Some(t(3)));
    }

    #[test]
    fn burst_limits_checks_as_x_time_rate() {
        // TestLimiterBurst1 and TestLimiterBurst3, with TokensAt before each AllowN.
        type Step = (u64, i128, u64, bool);
        let cases: [(u64, &[Step]); 2] = [
            (
                1,
                &[
                    (0, 1, 1, true),
                    (0, 0, 1, false),
                    (0, 0, 1, false),
                    (1, 1, 1, true),
                    (1, 0, 1, false),
                    (1, 0, 1, false),
                    (2, 1, 1, true),
                    (2, 0, 1, false),
                ],
            ),
            (
                3,
                &[
                    (0, 3, 2, true),
                    (0, 1, 2, false),
                    (0, 1, 1, true),
                    (0, 0, 1, false),
                    (2, 2, 1, true),
                    (3, 2, 1, true),
                    (4, 2, 1, true),
                    (4, 1, 1, true),
                    (4, 0, 1, false),
                    (9, 3, 3, true),
                    (9, 0, 0, true),
                ],
            ),
        ];
        for (burst, steps) in cases {
            let l = limiter(10, burst);
            for &(k, toks, n, ok) in steps {
                assert_eq!(tokens(&l, t(k)), whole(toks, &l), "burst {burst} at t{k}");
                assert_eq!(
                    l.check_n_at(n, t(k)).unwrap().allowed(),
                    ok,
                    "burst {burst} t{k} n {n}"
                );
            }
            // n > burst always fails, as an error.
            assert!(l.check_n_at(burst + 1, t(20)).is_err());
        }
    }

    #[test]
    fn zero_costs_and_zero_bursts() {
        // A burst of 0 (x/time/rate's NewLimiter(r, 0), which admits nothing but n = 0)
        // is a configuration error here: a rate that admits nothing is a revocation.
        assert_eq!(
            Rate::per_second(10).unwrap().with_burst(0),
            Err(RateError::ZeroBurst)
        );
        assert_eq!("10/s burst 0".parse::<Rate>(), Err(RateError::ZeroBurst));
        let l = limiter(10, 1);
        // A reservation of 0 units takes nothing and acts at once while tokens are not
        // negative...
        let r = l.reserve_n_at(0, t(0), INF).unwrap();
        assert_eq!((r.delay(), l.state()), (0, 0));
        let _ = reserve(&l, t(0), 1, Some(t(0)));
        let _ = reserve(&l, t(0), 1, Some(t(1)));
        // ...and waits for the debt while they are (x/time/rate: ReserveN(t, 0) with
        // negative tokens), still taking nothing.
        let before = l.state();
        let r = l.reserve_n_at(0, t(0), INF).unwrap();
        assert_eq!((r.delay(), l.state()), (D, before));
        assert!(
            l.reserve_n_at(0, t(0), 0).is_err(),
            "AllowN(t, 0) in debt is false"
        );
        l.cancel_at(r, t(0));
        assert_eq!(l.state(), before, "cancelling 0 units gives back nothing");
        // Partial grants of 0 are probes.
        let g = l.grant_at_most_at(0, t(5));
        assert_eq!((g.granted, g.decision.allowed()), (0, true));
        assert_eq!(g.decision.remaining, 1);
    }

    #[test]
    fn the_reservation_decision_is_the_check_decision_or_the_one_at_act_time() {
        let l = limiter(10, 4);
        let check = limiter(10, 4);
        let r = l.reserve_n_at(3, t(0), INF).unwrap();
        assert_eq!(r.decision(), check.check_n_at(3, t(0)).unwrap());
        let r = l.reserve_n_at(3, t(0), INF).unwrap();
        assert_eq!(r.delay(), 2 * D);
        let d = r.decision();
        assert!(d.allowed());
        assert_eq!((d.remaining, d.reset_after), (0, 4 * D));
        assert_eq!(r.delay_from(t(1)), D);
        assert_eq!(r.delay_from(t(3)), 0);
        assert_eq!(r.made_at(), 0);
        assert_eq!(r.cost(), 3);
    }

    #[test]
    fn allow_at_most_as_redis_rate() {
        // redis_rate's TestAllowAtMost, 10/s, at one instant (redis_rate's clock moves a
        // little between calls; here time stands still).
        let l = limiter(10, 10);
        let ms = 1_000_000;
        let d = l.check_at(0);
        assert_eq!((d.remaining, d.reset_after), (9, 100 * ms));
        let g = l.grant_at_most_at(2, 0);
        assert_eq!(
            (g.granted, g.decision.remaining, g.decision.retry_after),
            (2, 7, 0)
        );
        assert_eq!(g.decision.reset_after, 300 * ms);
        let g = l.grant_at_most_at(10, 0);
        assert_eq!((g.granted, g.decision.remaining), (7, 0));
        assert_eq!(g.decision.reset_after, 1000 * ms);
        let g = l.grant_at_most_at(1000, 0);
        assert_eq!((g.granted, g.decision.remaining), (0, 0));
        assert_eq!(g.decision.retry_after, 100 * ms, "until one unit is back");
        assert!(!g.decision.allowed());
        // A check of 1000 is an error here (above the burst), where redis_rate answers
        // a retry_after of 99 s.
        assert!(l.check_n_at(1000, 0).is_err());
        // Partly back: 3.5 units earned grant 3.
        let g = l.grant_at_most_at(5, 350 * ms);
        assert_eq!((g.granted, g.decision.remaining), (3, 0));
        assert_eq!(g.decision.reset_after, 1000 * ms - 50 * ms);
        // TestAllowAtMost_IncrementZero: a probe of an unseen limit.
        let l = limiter(10, 10);
        let g = l.grant_at_most_at(0, 0);
        assert_eq!(
            (g.granted, g.decision.remaining, g.decision.reset_after),
            (0, 10, 0)
        );
        assert_eq!(l.state(), 0);
        let _ = l.check_at(0);
        let g = l.grant_at_most_at(0, 0);
        assert_eq!(
            (g.granted, g.decision.remaining, g.decision.reset_after),
            (0, 9, 100 * ms)
        );
    }

    #[test]
    fn partial_grants_wait_behind_reservations() {
        let l = limiter(10, 3);
        let _ = reserve(&l, t(0), 3, Some(t(0)));
        let _ = reserve(&l, t(0), 2, Some(t(2)));
        let g = l.grant_at_most_at(3, t(1));
        assert_eq!((g.granted, g.decision.retry_after), (0, 2 * D));
        let g = l.grant_at_most_at(3, t(5));
        assert_eq!(g.granted, 3);
    }

    #[test]
    fn live_changes_keep_tokens_or_used_capacity() {
        let rate = |text: &str| text.parse::<Rate>().unwrap();
        // Keep::Tokens (SetBurstAt): tokens kept, clamped to the new burst.
        let mut l = limiter(10, 10);
        assert!(l.check_n_at(4, 0).unwrap().allowed());
        l.set_rate_at(rate("10/s burst 20"), Keep::Tokens, 0);
        assert_eq!(tokens(&l, 0), whole(6, &l), "a raise adds nothing at once");
        assert_eq!(tokens(&l, t(14)), whole(20, &l), "it accrues");
        l.set_rate_at(rate("10/s burst 3"), Keep::Tokens, t(14));
        assert_eq!(tokens(&l, t(14)), whole(3, &l), "a lowering clamps");
        // Keep::Used (the reload rule).
        let mut l = limiter(10, 10);
        assert!(l.check_n_at(4, 0).unwrap().allowed());
        l.set_rate_at(rate("10/s burst 20"), Keep::Used, 0);
        assert_eq!(tokens(&l, 0), whole(16, &l), "a raise takes effect at once");
        l.set_rate_at(rate("10/s burst 3"), Keep::Used, 0);
        assert_eq!(
            tokens(&l, 0),
            whole(-1, &l),
            "a lowering hands out no fresh burst"
        );
        assert_eq!(l.check_at(0).retry_after, 2 * D);
        // A rate change with the burst unchanged: both keep the same state, and future
        // accrual is at the new rate (x/time/rate's SetLimitAt).
        for keep in [Keep::Tokens, Keep::Used] {
            let mut l = limiter(10, 10);
            assert!(l.check_n_at(10, 0).unwrap().allowed());
            l.set_rate_at(rate("20/s burst 10"), keep, t(5));
            assert_eq!(tokens(&l, t(5)), (5 * 50_000_000, 50_000_000), "{keep:?}");
            assert_eq!(tokens(&l, t(6)), (7 * 50_000_000, 50_000_000), "{keep:?}");
        }
        // A full limit stays full under Used; keeps its tokens under Tokens.
        let mut l = limiter(10, 2);
        l.set_rate_at(rate("1/s burst 5"), Keep::Used, 0);
        assert_eq!(l.state(), 0);
        let mut l = limiter(10, 2);
        l.set_rate_at(rate("1/s burst 5"), Keep::Tokens, 0);
        assert_eq!(tokens(&l, 0), whole(2, &l));
        assert_eq!(tokens(&l, 3_000_000_000), whole(5, &l));
    }

    #[test]
    fn keyed_reservations_grants_and_changes_are_per_key() {
        let rate = |text: &str| text.parse::<Rate>().unwrap();
        let mut l = KeyedGcraLimiter::<str, _>::with_clock(
            rate("10/s burst 2").into(),
            64,
            ManualClock::new(0),
        );
        let _ = l.reserve_n_at("a", 2, 0, INF).unwrap();
        let r = l.reserve_n_at("a", 2, 0, INF).unwrap();
        assert_eq!(r.act_at(), t(2));
        assert_eq!(
            l.reserve_n_at("b", 2, 0, 0).unwrap().delay(),
            0,
            "b is its own"
        );
        assert!(matches!(
            l.reserve_n_at("a", 1, 0, D),
            Err(ReserveError::TooLong { wait, .. }) if wait == 3 * D
        ));
        assert!(matches!(
            l.reserve_n_at("a", 3, 0, INF),
            Err(ReserveError::InsufficientCapacity(_))
        ));
        l.cancel_at("a", r, t(1));
        assert_eq!(l.reserve_n_at("a", 2, t(1), INF).unwrap().act_at(), t(2));
        assert_eq!(l.grant_at_most_at("c", 5, 0).unwrap().granted, 2);
        assert_eq!(l.grant_at_most_at("c", 5, 0).unwrap().granted, 0);
        assert_eq!(l.len(), 3);
        // A key never seen reserves, grants and cancels like a fresh limiter; a probe
        // grant stores nothing.
        assert_eq!(l.grant_at_most_at("z", 0, 0).unwrap().granted, 0);
        assert_eq!(l.len(), 3);
        // Live change, Keep::Used: "a" used 2 (4 ns of backlog past t(1)... at t(2) it has
        // used 2), "c" used 2; "d" never seen; all get burst 4.
        l.set_rate_at(rate("10/s burst 4"), Keep::Used, t(2));
        assert_eq!(l.peek_at("a", 0, t(2)).unwrap().remaining, 2);
        assert_eq!(
            l.peek_at("c", 0, t(2)).unwrap().remaining,
            4,
            "c is full again at t2"
        );
        assert_eq!(l.peek_at("d", 0, t(2)).unwrap().remaining, 4);
        // Keep::Tokens: tokens kept, but a key with no recorded use has the new burst.
        l.set_rate_at(rate("10/s burst 8"), Keep::Tokens, t(2));
        assert_eq!(l.peek_at("a", 0, t(2)).unwrap().remaining, 2, "tokens kept");
        assert_eq!(
            l.peek_at("c", 0, t(2)).unwrap().remaining,
            8,
            "full: the new burst"
        );
        assert_eq!(l.peek_at("d", 0, t(2)).unwrap().remaining, 8);
    }

    #[test]
    fn sliding_windows_carry_counts_only_for_the_same_window() {
        use crate::{SlidingWindow, SlidingWindowLimiter};
        let sw = |text: &str| SlidingWindow::new(text.parse().unwrap()).unwrap();
        let mut l = SlidingWindowLimiter::with_clock(sw("4/s"), ManualClock::new(0));
        assert!(l.check_n_at(3, 0).unwrap().allowed());
        assert!(l.set_algorithm_at(sw("8/s"), Keep::Used, 0));
        assert_eq!(l.peek_at(0, 0).unwrap().remaining, 5);
        assert!(
            !l.set_algorithm_at(sw("8/min"), Keep::Used, 0),
            "another window"
        );
        assert_eq!(l.peek_at(0, 0).unwrap().remaining, 8, "fresh");
        assert!(!l.set_algorithm_at(sw("9/min"), Keep::Tokens, 0));
    }
}

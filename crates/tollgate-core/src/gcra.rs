//! The generic cell rate algorithm (GCRA) in its virtual-scheduling form.
//!
//! The state is the *theoretical arrival time* (TAT): the time at which the bucket would
//! be empty again if no more requests came. With emission interval `T` and burst `B`
//! (so a tolerance `tau = B * T`), a request of cost `n` at `now` is allowed when
//!
//! ```text
//! new_tat = max(tat, now) + n * T   <=   now + tau
//! ```
//!
//! and then `tat := new_tat`. A TAT at or before `now` means a full bucket: the same as a
//! key never seen, which is why eviction and `FRESH == 0` work.
//!
//! A *reservation* ([`crate::reserve`]) takes its units even when they do not fit yet:
//! `tat := max(tat, now) + n * T` unconditionally, and the request may act at
//! `new_tat - tau`. The TAT then runs ahead of `now + tau` by the queue's debt; checks
//! are denied until the queue has acted, and the state's time to act, `tat - tau`, is
//! how far the standing reservations reach (which is what a cancel needs to know).
//!
//! Nothing overflows: products and sums are taken in `u128`, and time ends `tau` before
//! the clock's 584-year range does ([`Gcra::end`]; a later `now` decides as at the end),
//! so every TAT a request may leave fits in a `u64` (a reservation is refused when it
//! would act after the end, so its TAT is at most `end + tau == u64::MAX`). Near the top of the range a fresh
//! key is therefore admitted like anywhere else, and a key is refused with
//! `retry_after == u64::MAX` (never) only when its wait would pass the end of time. A
//! clock that goes backwards finds a TAT further ahead: the key waits as one that spent
//! that much more, never less.

use crate::algorithm::Algorithm;
use crate::{Decision, Rate};

/// GCRA parameters derived from a [`Rate`]. Cheap to copy; holds no state.
///
/// ```
/// use tollgate_core::{Algorithm, Gcra, Rate};
/// let gcra = Gcra::new(Rate::per_second(10).unwrap().with_burst(2).unwrap());
/// let (d, tat) = gcra.decide(0, 0, 1);
/// assert!(d.allowed());
/// assert_eq!((d.remaining, tat), (1, Some(100_000_000)));
/// let (d, _) = gcra.decide(200_000_000, 0, 1);
/// assert!(!d.allowed());
/// assert_eq!(d.retry_after, 100_000_000); // waiting exactly 100 ms is enough
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gcra {
    t: u64,
    burst: u64,
    tau: u64,
    div_t: Divider,
}

impl Gcra {
    /// GCRA for `rate`: emission interval `rate.emission_interval_nanos()`, burst
    /// `rate.burst()`.
    pub fn new(rate: Rate) -> Self {
        let t = rate.emission_interval_nanos();
        let burst = rate.burst();
        // Rate guarantees burst * t <= MAX_WINDOW_NANOS < u64::MAX.
        let tau = t * burst;
        Gcra {
            t,
            burst,
            tau,
            div_t: Divider::new(t),
        }
    }

    /// The emission interval `T` in nanoseconds.
    pub fn emission_interval(&self) -> u64 {
        self.t
    }

    /// The tolerance `tau = burst * T` in nanoseconds: how long a full bucket takes to
    /// refill from empty.
    pub fn tolerance(&self) -> u64 {
        self.tau
    }

    /// How long until a key at `tat` is fresh at `now` (at most `end()`): `u64::MAX`
    /// when that is past the end of time.
    #[inline]
    fn until_fresh(&self, tat: u64, now: u64) -> u64 {
        if tat > self.end() {
            u64::MAX
        } else {
            tat.saturating_sub(now)
        }
    }

    /// The last instant this GCRA distinguishes: `u64::MAX - tau`. A later `now`
    /// decides as at this instant (about 584 years after the epoch, less one window),
    /// so that every state a request leaves fits in a u64.
    #[inline]
    pub fn end(&self) -> u64 {
        u64::MAX - self.tau
    }
}

/// The result of [`Gcra::reserve`]: the state to write and when the request may act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reserved {
    /// The new state, `None` when it does not change (a cost of 0).
    pub(crate) next: Option<u64>,
    /// The TAT after the reservation (the state, written or not).
    pub(crate) tat: u64,
    /// The instant the request may act: `max(now, tat - tau)`.
    pub(crate) act_at: u64,
    /// The `now` the reservation was decided at (clamped to [`Gcra::end`]).
    pub(crate) now: u64,
}

/// Which part of a limit's state a live rate or burst change keeps (see
/// [`Gcra::carry`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Keep {
    /// The tokens left are kept, clamped to the new burst, and accrue at the new rate from
    /// now on: golang.org/x/time/rate's `SetLimitAt` / `SetBurstAt`. Raising the burst
    /// adds nothing at once (the extra capacity accrues at the new rate); lowering it
    /// leaves at most the new burst.
    #[default]
    Tokens,
    /// The capacity used is kept: tollgate's reload rule. Raising the burst takes effect
    /// at once (a key that used 10 of 10 has 10 of 20 left after a raise to 20); lowering
    /// it never hands out a fresh burst (a key that used 8 of 10 is 3 over a new burst of
    /// 5 and waits for them).
    Used,
}

impl Gcra {
    /// The most cost units admitted at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Reserves `cost` units at `now` (x/time/rate's `reserveN`): the TAT advances by
    /// `cost * T` even when the request has to wait, and the request may act at
    /// `max(now, new_tat - tau)`. `Err(wait)` (nothing taken) when that is more than
    /// `max_wait` after `now`; `wait` is `u64::MAX` when the instant would pass the end of
    /// time. The cost must fit the burst (the callers check).
    #[inline]
    pub(crate) fn reserve(
        &self,
        state: u64,
        now: u64,
        cost: u64,
        max_wait: u64,
    ) -> Result<Reserved, u64> {
        let now = now.min(self.end());
        let tat = state.max(now);
        let new_tat = u128::from(tat) + u128::from(cost) * u128::from(self.t);
        let act_at = new_tat
            .saturating_sub(u128::from(self.tau))
            .max(u128::from(now));
        if act_at > u128::from(self.end()) {
            return Err(u64::MAX);
        }
        // act_at <= end, so new_tat <= act_at + tau <= u64::MAX, and both fit.
        let (new_tat, act_at) = (new_tat as u64, act_at as u64);
        let wait = act_at - now;
        if wait > max_wait {
            return Err(wait);
        }
        Ok(Reserved {
            next: (cost > 0).then_some(new_tat),
            tat: new_tat,
            act_at,
            now,
        })
    }

    /// The decision a reservation gets when it acts, with times relative to its
    /// `act_at`: what is left then (assuming no other traffic) and how long until the
    /// limit is full again.
    pub(crate) fn reserved_decision(&self, r: &Reserved) -> Decision {
        let line = r.act_at + self.tau;
        Decision {
            limit: self.burst,
            // line - tat <= tau <= 2^62 (act_at >= tat - tau).
            remaining: self.div_t.div(line.saturating_sub(r.tat)),
            retry_after: 0,
            reset_after: self.until_fresh(r.tat, r.act_at),
        }
    }

    /// The state after cancelling a reservation of `cost` units that was to act at
    /// `act_at` (x/time/rate's `CancelAt`). Nothing comes back once `act_at` is before
    /// `now` (the request has acted) or for a cost of 0. Otherwise the reservation's units
    /// come back less those that later reservations depend on: the state's time to act
    /// (`tat - tau`) reaches past `act_at` by exactly the units reserved after this one
    /// and still standing, and those stay taken. The limit never becomes fuller than a
    /// fresh one.
    #[inline]
    pub(crate) fn cancel(&self, state: u64, now: u64, cost: u64, act_at: u64) -> u64 {
        let now = now.min(self.end());
        if cost == 0 || act_at < now {
            return state;
        }
        let later = state.saturating_sub(self.tau).saturating_sub(act_at);
        let own = u128::from(cost) * u128::from(self.t);
        let Some(back) = own.checked_sub(u128::from(later)).filter(|b| *b > 0) else {
            return state;
        };
        // back <= cost * t <= tau (the cost fit the burst when it was reserved).
        let back = u64::try_from(back).unwrap_or(u64::MAX);
        state.saturating_sub(back).max(state.min(now))
    }

    /// Grants up to `max` units at `now` (redis_rate's `AllowAtMost`): as many whole units
    /// as the state has left, at most `max`. Returns the units granted and the new state
    /// (`None` when nothing was granted).
    #[inline]
    pub(crate) fn grant(&self, state: u64, now: u64, max: u64) -> (u64, Option<u64>) {
        let now = now.min(self.end());
        let line = now + self.tau;
        let tat = state.max(now);
        if tat >= line || max == 0 {
            return (0, None);
        }
        // line - tat <= tau <= 2^62, as the divider requires.
        let granted = self.div_t.div(line - tat).min(max);
        if granted == 0 {
            return (0, None);
        }
        // granted * t <= line - tat: the sum fits.
        (granted, Some(tat + granted * self.t))
    }

    /// `state`, a state of this GCRA, re-expressed for the GCRA `to` at `now`, keeping
    /// what `keep` says (x/time/rate's `SetLimitAt` / `SetBurstAt` for [`Keep::Tokens`],
    /// tollgate's reload rule for [`Keep::Used`]).
    ///
    /// The capacity used at `now` is the backlog `tat - now` in units of this GCRA's
    /// interval (a fraction, kept exactly: the conversion is computed in `u128` and
    /// rounded up to the nanosecond, so a change never hands out more than the rule
    /// says). Under [`Keep::Used`] the backlog is re-expressed in the new interval; under
    /// [`Keep::Tokens`] the tokens left (`burst - used`, negative when reservations are
    /// waiting) are kept, clamped to the new burst. A full limit stays as it is under
    /// [`Keep::Used`]; under [`Keep::Tokens`] it keeps its old burst of tokens. From then
    /// on capacity accrues at the new rate.
    ///
    /// ```
    /// use tollgate_core::{Algorithm, Gcra, Keep, Rate};
    /// let old = Gcra::new("10/s".parse::<Rate>().unwrap());
    /// let new = Gcra::new("20/s".parse::<Rate>().unwrap());
    /// let tat = old.decide(0, 0, 10).1.unwrap(); // all 10 used
    /// // Tokens: 0 left of 10, now accruing at 20/s: 0 left of 20.
    /// let kept = old.carry(tat, 0, &new, Keep::Tokens);
    /// assert_eq!(new.decide(kept, 0, 0).0.remaining, 0);
    /// // Used: 10 used, now of 20: 10 left.
    /// let kept = old.carry(tat, 0, &new, Keep::Used);
    /// assert_eq!(new.decide(kept, 0, 0).0.remaining, 10);
    /// ```
    pub fn carry(&self, state: u64, now: u64, to: &Gcra, keep: Keep) -> u64 {
        let now = now.min(self.end());
        let backlog = u128::from(state.saturating_sub(now));
        let (t_old, t_new) = (u128::from(self.t), u128::from(to.t));
        // The new backlog in old-interval nanoseconds (used units * t_old).
        let scaled = match keep {
            Keep::Used => {
                if backlog == 0 {
                    return state;
                }
                backlog
            }
            // used' = burst' - min(burst - used, burst') = max(0, burst' - burst + used).
            Keep::Tokens => {
                (u128::from(to.burst) * t_old + backlog).saturating_sub(u128::from(self.tau))
            }
        };
        if scaled == 0 {
            return state.min(now);
        }
        let backlog = (scaled * t_new).div_ceil(t_old);
        u64::try_from(u128::from(now) + backlog).unwrap_or(u64::MAX)
    }
}

impl From<Rate> for Gcra {
    fn from(rate: Rate) -> Self {
        Gcra::new(rate)
    }
}

impl Algorithm for Gcra {
    #[inline]
    fn capacity(&self) -> u64 {
        self.burst
    }

    #[inline]
    fn decide(&self, state: u64, now: u64, cost: u64) -> (Decision, Option<u64>) {
        // Time ends `tau` before the clock's range does, so that every TAT a request
        // may leave (`<= now + tau`) fits in a u64: a later `now` decides as at the end.
        // Products and sums are taken in u128, so nothing overflows for any cost.
        let now = now.min(self.end());
        let line = now + self.tau;
        let tat = state.max(now);
        let new_tat = u128::from(tat) + u128::from(cost) * u128::from(self.t);
        if new_tat <= u128::from(line) {
            // new_tat <= line: it fits in a u64.
            let new_tat = new_tat as u64;
            let d = Decision {
                limit: self.burst,
                // line - new_tat <= tau <= 2^62, as the divider requires.
                remaining: self.div_t.div(line - new_tat),
                retry_after: 0,
                reset_after: self.until_fresh(new_tat, now),
            };
            let next = if cost == 0 { None } else { Some(new_tat) };
            (d, next)
        } else {
            let wait = new_tat - u128::from(line);
            let d = Decision {
                limit: self.burst,
                remaining: self.div_t.div(line.saturating_sub(tat)),
                // How much later `now` must be for the request to fit; `u64::MAX`
                // (never) for a cost above capacity or a wait past the end of time.
                retry_after: match u64::try_from(wait) {
                    Ok(w)
                        if cost <= self.burst
                            && now.checked_add(w).is_some_and(|t| t <= self.end()) =>
                    {
                        w
                    }
                    _ => u64::MAX,
                },
                reset_after: self.until_fresh(tat, now),
            };
            (d, None)
        }
    }

    #[inline]
    fn admit(&self, state: u64, now: u64, cost: u64) -> Option<u64> {
        let now = now.min(self.end());
        let line = now + self.tau;
        let new_tat = u128::from(state.max(now)) + u128::from(cost) * u128::from(self.t);
        // new_tat <= line: it fits in a u64.
        (cost > 0 && new_tat <= u128::from(line)).then_some(new_tat as u64)
    }

    #[inline]
    fn refund(&self, state: u64, now: u64, cost: u64) -> u64 {
        let back = u64::try_from(u128::from(cost) * u128::from(self.t)).unwrap_or(u64::MAX);
        state.saturating_sub(back).max(state.min(now))
    }

    #[inline]
    fn is_fresh(&self, state: u64, now: u64) -> bool {
        state <= now.min(self.end())
    }

    /// [`Gcra::carry`]: a GCRA carries every change.
    #[inline]
    fn carry_state(&self, state: u64, now: u64, to: &Self, keep: Keep) -> Option<u64> {
        Some(self.carry(state, now, to, keep))
    }

    /// The backlog `tat - now` in nanoseconds; `None` once less than one unit is left.
    #[inline]
    fn debt(&self, state: u64, now: u64) -> Option<u64> {
        let backlog = state.saturating_sub(now.min(self.end()));
        (backlog.saturating_add(self.t) <= self.tau).then_some(backlog)
    }
}

/// Division by a constant `d` of dividends below 2^62, by one multiplication: `x / d ==
/// (x * m) >> k` with `k = 62 + ceil(log2 d)` and `m = ceil(2^k / d)`. The error of `m` is
/// below `1`, so the error of `x * m / 2^k` is below `x / 2^k < 2^-ceil(log2 d) <= 1/d`, too
/// small to reach the next integer. (A hardware 64-bit division costs 10-40 cycles on the
/// hot path; this costs one `mul`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Divider {
    m: u64,
    k: u32,
}

impl Divider {
    /// The largest dividend supported.
    const MAX_DIVIDEND: u64 = 1 << 62;

    fn new(d: u64) -> Self {
        assert!(d > 0 && d <= Self::MAX_DIVIDEND, "divisor out of range");
        let k = 62 + (64 - (d - 1).leading_zeros());
        let m = (1u128 << k).div_ceil(u128::from(d));
        Divider {
            m: u64::try_from(m).expect("m < 2^64 for d <= 2^62"),
            k,
        }
    }

    #[inline]
    fn div(&self, x: u64) -> u64 {
        debug_assert!(x <= Self::MAX_DIVIDEND);
        ((u128::from(x) * u128::from(self.m)) >> self.k) as u64
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    fn gcra(text: &str) -> Gcra {
        Gcra::new(text.parse().unwrap())
    }

    #[test]
    fn admits_a_full_burst_then_the_steady_rate() {
        let g = gcra("10/s burst 3");
        let ms = 1_000_000;
        let mut tat = 0;
        for left in [2, 1, 0] {
            let (d, next) = g.decide(tat, 0, 1);
            assert!(d.allowed());
            assert_eq!(d.remaining, left);
            tat = next.unwrap();
        }
        let (d, next) = g.decide(tat, 0, 1);
        assert!(!d.allowed() && next.is_none());
        assert_eq!(d.retry_after, 100 * ms);
        assert_eq!(d.reset_after, 300 * ms);
        // Waiting exactly retry_after is enough; one nanosecond less is not.
        assert!(!g.decide(tat, 100 * ms - 1, 1).0.allowed());
        assert!(g.decide(tat, 100 * ms, 1).0.allowed());
    }

    #[test]
    fn weighted_costs() {
        let g = gcra("10/s");
        let (d, tat) = g.decide(0, 0, 10);
        assert!(d.allowed());
        assert_eq!(d.remaining, 0);
        let (d, _) = g.decide(tat.unwrap(), 0, 4);
        assert!(!d.allowed());
        assert_eq!(d.retry_after, 400_000_000);
    }

    #[test]
    fn cost_zero_changes_nothing() {
        let g = gcra("1/s burst 1");
        let (d, next) = g.decide(0, 5, 0);
        assert!(d.allowed() && next.is_none());
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn burst_one() {
        let g = gcra("2/s burst 1");
        let (d, tat) = g.decide(0, 0, 1);
        assert!(d.allowed());
        assert_eq!(d.remaining, 0);
        let tat = tat.unwrap();
        let (d, _) = g.decide(tat, 1, 1);
        assert!(!d.allowed());
        assert_eq!(d.retry_after, 500_000_000 - 1);
    }

    #[test]
    fn refund_gives_back_but_never_beyond_fresh() {
        let g = gcra("10/s");
        let (_, tat) = g.decide(0, 1_000, 5);
        let tat = tat.unwrap();
        assert_eq!(g.refund(tat, 1_000, 2), tat - 200_000_000);
        assert_eq!(
            g.refund(tat, 1_000, 50),
            1_000,
            "over-refund stops at a full bucket"
        );
        assert_eq!(g.refund(500, 1_000, 1), 500, "a fresh state stays as it is");
        assert_eq!(g.refund(tat, 1_000, u64::MAX), 1_000);
    }

    #[test]
    fn clock_going_backwards_never_admits_more() {
        let g = gcra("10/s burst 2");
        let (_, tat) = g.decide(0, 1_000_000_000, 2);
        let tat = tat.unwrap();
        for now in [0, 1, 999_999_999] {
            let (d, next) = g.decide(tat, now, 1);
            assert!(!d.allowed(), "at {now}");
            assert!(next.is_none());
            assert!(d.retry_after > 0);
        }
    }

    #[test]
    fn u64_extremes() {
        // Issue 15, item 10: within one emission interval of u64::MAX a fresh key used to
        // be refused (the TAT overflowed and read as a denial). Now it is admitted as a
        // fresh key anywhere, and time ends at `end()`.
        let g = gcra("1/s");
        for now in [u64::MAX, u64::MAX - 1, u64::MAX - 500_000_000, g.end()] {
            let (d, next) = g.decide(0, now, 1);
            assert!(d.allowed(), "a fresh key at {now}: {d:?}");
            assert_eq!(d.remaining, 0);
            assert_eq!(next, Some(u64::MAX), "the TAT is end + T, which fits");
            assert_eq!(g.admit(0, now, 1), next);
            // The key just used: refused, and the wait passes the end of time.
            let (d, next) = g.decide(u64::MAX, now, 1);
            assert!(!d.allowed() && next.is_none());
            assert_eq!(d.retry_after, u64::MAX);
        }
        assert_eq!(g.decide(0, u64::MAX, 1), g.decide(0, g.end(), 1));
        let g = gcra("1/s burst 2");
        let now = g.end() - 2_500_000_000;
        let tat = g.decide(0, now, 2).1.unwrap();
        let (d, _) = g.decide(tat, now, 1);
        assert!(!d.allowed());
        assert_eq!(
            d.retry_after, 1_000_000_000,
            "the wait ends before time does"
        );
        assert!(g.decide(tat, now + d.retry_after, 1).0.allowed());
        let (d, _) = g.decide(u64::MAX, g.end(), 1);
        assert_eq!(
            (d.allowed(), d.retry_after, d.remaining),
            (false, u64::MAX, 0)
        );
        // Any cost, any time: no overflow.
        let (d, next) = g.decide(u64::MAX, u64::MAX, u64::MAX);
        assert!(!d.allowed() && next.is_none() && d.retry_after == u64::MAX);
        assert!(g.is_fresh(0, 0) && g.is_fresh(g.end(), u64::MAX));
        assert!(!g.is_fresh(u64::MAX, u64::MAX), "time ends before that TAT");
    }

    use proptest::prelude::*;

    proptest! {
        /// The algorithm against a plain u128 reference of the same formula, over the
        /// whole u64 range of states, times and costs (the top of the clock included):
        /// before `end()` they agree exactly; after it, time stands at `end()`; a fresh
        /// key is admitted whenever the cost fits the burst.
        #[test]
        fn matches_a_u128_reference(
            rate in prop::sample::select(vec!["1/s", "10/s burst 3", "5/min burst 2", "1000000/s burst 7"]),
            state in prop_oneof![any::<u64>(), (0u64..4_000_000_000).prop_map(|d| u64::MAX - d)],
            now in prop_oneof![any::<u64>(), (0u64..4_000_000_000).prop_map(|d| u64::MAX - d)],
            cost in prop_oneof![0u64..9, any::<u64>()],
        ) {
            let g = gcra(rate);
            let at = now.min(g.end());
            let (t, tau) = (u128::from(g.emission_interval()), u128::from(g.tolerance()));
            let tat = u128::from(state.max(at));
            let new_tat = tat + u128::from(cost) * t;
            let allowed = new_tat <= u128::from(at) + tau;
            let (d, next) = g.decide(state, now, cost);
            prop_assert_eq!(d.allowed(), allowed);
            prop_assert_eq!(g.admit(state, now, cost), next);
            if allowed {
                let until = if new_tat > u128::from(g.end()) { u128::from(u64::MAX) } else { new_tat - u128::from(at) };
                prop_assert_eq!(u128::from(d.reset_after), until);
                prop_assert_eq!(u128::from(d.remaining), (u128::from(at) + tau - new_tat) / t);
                prop_assert_eq!(next.map(u128::from), (cost > 0).then_some(new_tat));
            } else {
                prop_assert!(next.is_none());
                let wait = new_tat - (u128::from(at) + tau);
                if d.retry_after != u64::MAX {
                    prop_assert_eq!(u128::from(d.retry_after), wait);
                } else {
                    prop_assert!(cost > g.capacity() || u128::from(at) + wait > u128::from(g.end()));
                }
            }
            if cost <= g.capacity() {
                prop_assert!(g.decide(0, now, cost).0.allowed(), "a fresh key is admitted");
            }
        }
    }

    proptest! {
        /// Reservations, cancels, partial grants and live changes over the whole u64
        /// range of states, times and costs: no overflow, no panic; a reservation never
        /// acts after the end of time and its state fits; a cancel never moves the state
        /// forward nor back by more than the reservation's units; a grant never exceeds
        /// what was asked nor what a check of that many would admit.
        #[test]
        fn extremes_of_the_new_operations(
            rates in (prop::sample::select(vec!["1/s", "10/s burst 3", "5/min burst 2", "1000000/s burst 7", "1/100y"]),
                      prop::sample::select(vec!["1/s", "3/s burst 9", "1/h", "1/ns burst 1"])),
            state in prop_oneof![any::<u64>(), (0u64..4_000_000_000).prop_map(|d| u64::MAX - d)],
            now in prop_oneof![any::<u64>(), (0u64..4_000_000_000).prop_map(|d| u64::MAX - d)],
            cost in prop_oneof![0u64..9, any::<u64>()],
            max_wait in prop_oneof![Just(u64::MAX), Just(0u64), any::<u64>()],
            keep in prop_oneof![Just(Keep::Tokens), Just(Keep::Used)],
        ) {
            let (g, to) = (gcra(rates.0), gcra(rates.1));
            let cost_ok = cost.min(g.capacity());
            match g.reserve(state, now, cost_ok, max_wait) {
                Ok(r) => {
                    prop_assert!(r.act_at <= g.end() && r.act_at >= r.now);
                    prop_assert!(r.act_at - r.now <= max_wait);
                    prop_assert_eq!(r.next.is_some(), cost_ok > 0);
                    let d = g.reserved_decision(&r);
                    prop_assert!(d.allowed() && d.remaining <= g.capacity());
                    if r.act_at == r.now {
                        prop_assert_eq!(d, g.decide(state, now, cost_ok).0, "an immediate reservation is a check");
                    }
                    let after = r.next.unwrap_or(state);
                    let back = g.cancel(after, now, cost_ok, r.act_at);
                    prop_assert!(back <= after);
                    prop_assert!(u128::from(after - back) <= u128::from(cost_ok) * u128::from(g.emission_interval()));
                }
                Err(wait) => prop_assert!(wait > max_wait || wait == u64::MAX, "past the end of time"),
            }
            let (granted, next) = g.grant(state, now, cost);
            prop_assert!(granted <= cost && granted <= g.capacity());
            prop_assert_eq!(next, if granted > 0 { g.admit(state, now, granted) } else { None });
            let carried = g.carry(state, now, &to, keep);
            if keep == Keep::Used && state <= now.min(g.end()) {
                prop_assert_eq!(carried, state, "a full limit stays full");
            }
        }
    }

    #[test]
    fn a_reservation_past_the_end_of_time_is_refused() {
        let g = gcra("1/s burst 2");
        let now = g.end() - 500_000_000;
        let (_, tat) = g.decide(0, now, 2);
        let tat = tat.unwrap();
        assert_eq!(g.reserve(tat, now, 1, u64::MAX), Err(u64::MAX));
        assert_eq!(g.reserve(u64::MAX, u64::MAX, 2, u64::MAX), Err(u64::MAX));
        let r = g.reserve(0, u64::MAX, 2, 0).unwrap();
        assert_eq!((r.act_at, r.next), (g.end(), Some(u64::MAX)));
    }

    #[test]
    fn divider_matches_hardware_division() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let max = Divider::MAX_DIVIDEND;
        let mut divisors = vec![1, 2, 3, 7, 10, 1_000_000_000, max - 1, max, (1 << 61) + 1];
        divisors.extend((0..2_000).map(|i| 1 + next() % (max >> (i % 62))));
        for d in divisors {
            let div = Divider::new(d);
            let mut xs = vec![
                0,
                1,
                d - 1,
                d,
                d + 1,
                max - 1,
                max,
                max / d * d,
                (max / d * d).saturating_sub(1),
            ];
            xs.extend((0..200).map(|_| next() % (max + 1)));
            for x in xs.into_iter().filter(|x| *x <= max) {
                assert_eq!(div.div(x), x / d, "{x} / {d}");
            }
        }
    }

    #[test]
    fn periods_of_years() {
        let g = gcra("1/100y");
        let hundred_years = 100 * 365 * 86_400 * 1_000_000_000u64;
        let (d, tat) = g.decide(0, 0, 1);
        assert!(d.allowed());
        assert_eq!(d.reset_after, hundred_years);
        let (d, _) = g.decide(tat.unwrap(), 1, 1);
        assert!(!d.allowed());
        assert_eq!(d.retry_after, hundred_years - 1);
    }
}

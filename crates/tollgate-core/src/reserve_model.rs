//! Model tests: the GCRA limiter's reservations, cancels, partial grants, checks and live
//! rate changes against a plain reference — golang.org/x/time/rate's token bucket
//! (`tokens`, `last`, `lastEvent`, the same update rules) in exact rational arithmetic,
//! with redis_rate's `AllowAtMost` for partial grants.
//!
//! Sequences of operations are random; after every one, the limiter and the model must
//! agree exactly: on every answer (admitted or not, time to act, units granted, remaining,
//! retry-after) and on the tokens left, as a fraction.
//!
//! Two documented differences are kept out of the sequences: time never goes backwards
//! (x/time/rate re-accrues after a jump back; a GCRA does not), and once x/time/rate's
//! single `lastEvent` no longer describes the queue no further cancels are compared: after
//! a cancel from the middle of the queue, a cancel of the last reservation whose
//! predecessor has already acted (x/time/rate then keeps the cancelled one's time as the
//! last event), or a rate change. There the GCRA, whose state reaches exactly as far as
//! the standing reservations do, may give an earlier reservation more back than
//! x/time/rate, never more than its own units (the unit test
//! `cancels_after_x_time_rate_loses_track` shows one such case).
//! The one rounding rule of a live change is modelled as documented: the new debt, in
//! time, is rounded up to the nanosecond.

use proptest::prelude::*;

use crate::{GcraLimiter, Keep, ManualClock, Rate, Reservation};

/// A fraction `n / d`, `d > 0`, in lowest terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Q {
    n: i128,
    d: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl Q {
    fn new(n: i128, d: i128) -> Q {
        assert!(d != 0);
        let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
        let g = gcd(n, d);
        Q { n: n / g, d: d / g }
    }
    fn int(n: i128) -> Q {
        Q { n, d: 1 }
    }
    fn add(self, o: Q) -> Q {
        Q::new(self.n * o.d + o.n * self.d, self.d * o.d)
    }
    fn sub(self, o: Q) -> Q {
        self.add(Q::new(-o.n, o.d))
    }
    fn mul(self, o: Q) -> Q {
        Q::new(self.n * o.n, self.d * o.d)
    }
    fn lt(self, o: Q) -> bool {
        self.n * o.d < o.n * self.d
    }
    fn min(self, o: Q) -> Q {
        if o.lt(self) {
            o
        } else {
            self
        }
    }
    fn floor(self) -> i128 {
        self.n.div_euclid(self.d)
    }
    fn ceil(self) -> i128 {
        -(-self.n).div_euclid(self.d)
    }
    /// The value, which must be a whole number.
    fn whole(self) -> i128 {
        assert_eq!(self.d, 1, "{self:?} is not whole");
        self.n
    }
}

/// x/time/rate's `Limiter`, with the limit as an emission interval `t` (ns per token).
#[derive(Debug)]
struct Model {
    t: i128,
    burst: i128,
    tokens: Q,
    last: u64,
    last_event: u64,
}

/// x/time/rate's `Reservation` (the limit it was made at is `Model::t` then).
#[derive(Debug, Clone, Copy)]
struct ModelReservation {
    tokens: i128,
    act: u64,
    t: i128,
}

impl Model {
    fn new(t: u64, burst: u64) -> Self {
        Model {
            t: t.into(),
            burst: burst.into(),
            tokens: Q::int(burst.into()),
            last: 0,
            last_event: 0,
        }
    }

    /// `advance`: the tokens at `now`.
    fn advance(&self, now: u64) -> Q {
        let elapsed = i128::from(now.saturating_sub(self.last));
        self.tokens
            .add(Q::new(elapsed, self.t))
            .min(Q::int(self.burst))
    }

    /// `reserveN`: `None` when not ok.
    fn reserve(&mut self, now: u64, n: u64, max_wait: u64) -> Option<ModelReservation> {
        let n = i128::from(n);
        let tokens = self.advance(now).sub(Q::int(n));
        let wait = if tokens.lt(Q::int(0)) {
            Q::int(0).sub(tokens).mul(Q::int(self.t)).whole()
        } else {
            0
        };
        if n > self.burst || wait > i128::from(max_wait) {
            return None;
        }
        let act = now + u64::try_from(wait).unwrap();
        self.last = now;
        self.tokens = tokens;
        self.last_event = act;
        Some(ModelReservation {
            tokens: n,
            act,
            t: self.t,
        })
    }

    /// redis_rate's `AllowAtMost`: whole tokens, at most `max`; an immediate
    /// reservation of what it grants.
    fn grant(&mut self, now: u64, max: u64) -> u64 {
        let avail = self.advance(now);
        if avail.lt(Q::int(1)) || max == 0 {
            return 0;
        }
        let g = avail.floor().min(i128::from(max));
        self.tokens = avail.sub(Q::int(g));
        self.last = now;
        self.last_event = now;
        u64::try_from(g).unwrap()
    }

    /// `CancelAt`. Returns `false` when it leaves `lastEvent` stale: the cancelled
    /// reservation was the last event but the one before it lies in the past, so
    /// x/time/rate keeps the cancelled reservation's time as the last event.
    fn cancel(&mut self, r: ModelReservation, now: u64) -> bool {
        if r.tokens == 0 || r.act < now {
            return true;
        }
        let after = i128::from(self.last_event) - i128::from(r.act);
        let restore = Q::int(r.tokens).sub(Q::new(after, r.t));
        if !Q::int(0).lt(restore) {
            return true;
        }
        self.tokens = self.advance(now).add(restore).min(Q::int(self.burst));
        self.last = now;
        if r.act == self.last_event {
            let prev = i128::from(r.act) - r.tokens * r.t;
            if prev >= i128::from(now) {
                self.last_event = u64::try_from(prev).unwrap();
            } else {
                return false;
            }
        }
        true
    }

    /// `SetLimitAt` + `SetBurstAt` ([`Keep::Tokens`]) or the reload rule ([`Keep::Used`]),
    /// with the new debt in time rounded up to the nanosecond.
    fn set_rate(&mut self, now: u64, t: u64, burst: u64, keep: Keep) {
        let (t, burst) = (i128::from(t), i128::from(burst));
        let tokens = self.advance(now);
        let kept = match keep {
            Keep::Tokens => tokens.min(Q::int(burst)),
            Keep::Used => Q::int(burst).sub(Q::int(self.burst).sub(tokens)),
        };
        let debt = Q::int(burst).sub(kept).mul(Q::int(t)).ceil();
        self.tokens = Q::int(burst).sub(Q::new(debt, t));
        self.last = now;
        self.t = t;
        self.burst = burst;
    }
}

/// x/time/rate's `TokensAt` of the limiter's GCRA state.
fn tokens_of(l: &GcraLimiter<ManualClock>, now: u64) -> Q {
    let g = l.algorithm();
    let backlog = i128::from(l.state().saturating_sub(now));
    let t = i128::from(g.emission_interval());
    Q::new(i128::from(g.burst()) * t - backlog, t)
}

#[derive(Clone, Debug)]
enum Op {
    Wait(u64),
    Reserve(u64, Option<u64>),
    Check(u64),
    Grant(u64),
    CancelLast,
    CancelNth(usize),
    SetRate(u64, u64, Keep),
}

const INTERVALS: [u64; 4] = [1_000, 3_000, 7_000, 10_000];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..25_000).prop_map(Op::Wait),
        4 => (0u64..8, prop::option::of(0u64..40_000)).prop_map(|(n, m)| Op::Reserve(n, m)),
        2 => (0u64..8).prop_map(Op::Check),
        2 => prop_oneof![0u64..8, Just(u64::MAX)].prop_map(Op::Grant),
        2 => Just(Op::CancelLast),
        1 => any::<usize>().prop_map(Op::CancelNth),
        1 => (prop::sample::select(INTERVALS.to_vec()), 1u64..7, prop_oneof![Just(Keep::Tokens), Just(Keep::Used)])
            .prop_map(|(t, b, k)| Op::SetRate(t, b, k)),
    ]
}

fn rate(t: u64, burst: u64) -> Rate {
    Rate::from_nanos(1, t, burst).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn gcra_limiter_matches_x_time_rate(
        t in prop::sample::select(INTERVALS.to_vec()),
        burst in 1u64..7,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut l = GcraLimiter::with_clock(rate(t, burst).into(), ManualClock::new(0));
        let mut m = Model::new(t, burst);
        let mut now = 0u64;
        let mut queue: Vec<(Reservation, ModelReservation)> = Vec::new();
        let mut cancels_comparable = true;
        for op in ops {
            match op {
                Op::Wait(dt) => now += dt,
                Op::Reserve(n, max_wait) => {
                    let max_wait = max_wait.unwrap_or(u64::MAX);
                    let got = l.reserve_n_at(n, now, max_wait);
                    let want = m.reserve(now, n, max_wait);
                    match (got, want) {
                        (Ok(r), Some(mr)) => {
                            prop_assert_eq!(r.act_at(), mr.act, "reserve {} at {}", n, now);
                            prop_assert_eq!(r.delay(), mr.act - now);
                            let left = m.advance(mr.act);
                            let d = r.decision();
                            prop_assert!(d.allowed());
                            prop_assert_eq!(i128::from(d.remaining), left.floor().max(0));
                            queue.push((r, mr));
                        }
                        (Err(_), None) => {}
                        (got, want) => prop_assert!(false, "reserve {} at {}: {:?} vs {:?}", n, now, got, want),
                    }
                }
                Op::Check(n) => {
                    let got = l.check_n_at(n, now).ok().map(|d| (d.allowed(), d.remaining));
                    let want = m.reserve(now, n, 0).is_some();
                    let want = (n <= burst_of(&l)).then(|| (want, m.advance(now).floor().max(0) as u64));
                    prop_assert_eq!(got, want, "check {} at {}", n, now);
                }
                Op::Grant(max) => {
                    let g = l.grant_at_most_at(max, now);
                    let want = m.grant(now, max);
                    prop_assert_eq!(g.granted, want, "grant {} at {}", max, now);
                    let left = m.advance(now);
                    prop_assert_eq!(g.decision.remaining as i128, left.floor().max(0));
                    if want == 0 && max > 0 {
                        // Denied: until one whole token.
                        let wait = Q::int(1).sub(left).mul(Q::int(m.t)).ceil();
                        prop_assert_eq!(i128::from(g.decision.retry_after), wait);
                    } else if want > 0 {
                        prop_assert!(g.decision.allowed());
                    }
                }
                Op::CancelLast | Op::CancelNth(_) if !cancels_comparable || queue.is_empty() => {}
                Op::CancelLast => {
                    let (r, mr) = queue.pop().unwrap();
                    l.cancel_at(r, now);
                    cancels_comparable = m.cancel(mr, now);
                }
                Op::CancelNth(i) => {
                    let i = i % queue.len();
                    let last = i + 1 == queue.len();
                    let (r, mr) = queue.remove(i);
                    l.cancel_at(r, now);
                    cancels_comparable = m.cancel(mr, now) && last;
                }
                Op::SetRate(t, b, keep) => {
                    l.set_rate_at(rate(t, b), keep, now);
                    m.set_rate(now, t, b, keep);
                    queue.clear();
                }
            }
            prop_assert_eq!(tokens_of(&l, now), m.advance(now), "tokens at {}", now);
        }
    }
}

fn burst_of(l: &GcraLimiter<ManualClock>) -> u64 {
    l.algorithm().burst()
}

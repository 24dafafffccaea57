//! GCRA against a plain reference model.
//!
//! [`GcraRef`] is written from the documentation (`gcra.rs`, `algorithm.rs`,
//! `decision.rs`), not from the crate's code: everything in `u128`, the TAT compared
//! directly, and `retry_after` derived from the conformance condition (and checked by
//! the model itself). Proptest then replays random operation sequences (time mostly
//! forward, sometimes still, occasionally backwards or jumping anywhere on the `u64`
//! clock; costs from 0 to far beyond the burst; check, peek, refund, reset) against the
//! crate's direct `GcraLimiter` and against a tiny `KeyedGcraLimiter` whose store must
//! evict and sometimes fills up.

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

use tollgate_core::{Decision, Gcra, InsufficientCapacity, Rate};
use tollgate_tests::model::{run_direct, run_keyed, Model, Op, Stats, Time, Timeline};
use tollgate_tests::util::{sample, to_u64};

const SEC: u64 = 1_000_000_000;
const YEAR: u64 = 365 * 86_400 * SEC;
/// The last instant of the clock, as `u128`.
const CLOCK_END: u128 = u64::MAX as u128;

/// The GCRA as documented: theoretical arrival time `tat`, emission interval
/// `T = ceil(period / count)`, tolerance `tau = burst * T`. A request of `cost` at `now`
/// conforms when `max(tat, now) + cost * T <= now + tau`. Time ends at
/// `u64::MAX - tau` (a later `now` is that instant), so every TAT fits the `u64` clock;
/// a wait past the end is `u64::MAX`. State 0 is a key never seen.
#[derive(Clone, Debug)]
struct GcraRef {
    t: u128,
    burst: u128,
    tau: u128,
    tat: u128,
}

impl GcraRef {
    fn new(rate: Rate) -> Self {
        let period = u128::from(rate.period_nanos());
        let count = u128::from(rate.count());
        let t = period.div_ceil(count);
        let burst = u128::from(rate.burst());
        GcraRef {
            t,
            burst,
            tau: burst * t,
            tat: 0,
        }
    }

    /// The last instant the GCRA distinguishes.
    fn end(&self) -> u128 {
        CLOCK_END - self.tau
    }

    /// Whether a request of `cost` at `now` (at most `end()`) is admitted from `tat`.
    fn admits(&self, tat: u128, now: u128, cost: u128) -> bool {
        tat.max(now) + cost * self.t <= now + self.tau
    }

    /// The earliest time `>= now` at which a request of `cost` is admitted from the
    /// current state, if any.
    fn earliest(&self, now: u128, cost: u128) -> Option<u128> {
        // Conformance: max(tat, s) + cost*T <= s + tau. For s >= tat that is
        // cost*T <= tau, true since cost <= burst; for s < tat it is
        // s >= tat + cost*T - tau. So exactly the s >= tat + cost*T - tau conform.
        let s = now.max((self.tat + cost * self.t).saturating_sub(self.tau));
        // A time past the end never comes.
        let found = (s <= self.end() && self.admits(self.tat, s, cost)).then_some(s);
        if let Some(s) = found {
            assert!(
                s == now || !self.admits(self.tat, s - 1, cost),
                "model: {s} is not the earliest admitting time"
            );
        }
        found
    }

    /// The decision and, if allowed, the TAT after it.
    fn decide(&self, now: u64, cost: u64) -> Result<(Decision, u128), InsufficientCapacity> {
        if u128::from(cost) > self.burst {
            return Err(InsufficientCapacity {
                cost,
                capacity: self.burst as u64,
            });
        }
        let now_w = u128::from(now).min(self.end());
        let n = u128::from(cost);
        let allowed = self.admits(self.tat, now_w, n);
        let tat = if allowed {
            self.tat.max(now_w) + n * self.t
        } else {
            self.tat
        };
        // Remaining: the largest k such that a request of k would be admitted now from
        // the state after this decision.
        let top = now_w + self.tau;
        let remaining = top.saturating_sub(tat.max(now_w)) / self.t;
        let retry_after = if allowed {
            0
        } else {
            match self.earliest(now_w, n) {
                Some(s) => to_u64(s - now_w),
                None => u64::MAX,
            }
        };
        let d = Decision {
            limit: self.burst as u64,
            remaining: to_u64(remaining),
            retry_after,
            // The state is fresh again once the TAT is not after the clock.
            reset_after: if tat > self.end() {
                u64::MAX
            } else {
                to_u64(tat.saturating_sub(now_w))
            },
        };
        // The crate derives `allowed` from `retry_after == 0`; the model decides it on its
        // own, so check the two agree.
        assert_eq!(
            d.allowed(),
            allowed,
            "model: allowed must mean retry_after == 0"
        );
        Ok((d, tat))
    }
}

impl Model for GcraRef {
    fn check(&mut self, now: u64, cost: u64) -> Result<Decision, InsufficientCapacity> {
        let (d, tat) = self.decide(now, cost)?;
        // A zero cost is a probe: it records nothing.
        if d.allowed() && cost > 0 {
            self.tat = tat;
        }
        Ok(d)
    }

    fn peek(&self, now: u64, cost: u64) -> Result<Decision, InsufficientCapacity> {
        self.decide(now, cost).map(|(d, _)| d)
    }

    fn refund(&mut self, now: u64, cost: u64) {
        // Give back cost * T, but never more capacity than a fresh key (a TAT of now).
        let now = u128::from(now);
        if self.tat > now {
            self.tat = self.tat.saturating_sub(u128::from(cost) * self.t).max(now);
        }
    }

    fn reset(&mut self) {
        self.tat = 0;
    }

    fn is_fresh(&self, now: u64) -> bool {
        // Time stands at the end: a TAT past it is never fresh.
        self.tat <= u128::from(now).min(self.end())
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// Rates from one per nanosecond to one per 146 years, bursts from 1 to the largest the
/// crate accepts (2^62 / T).
fn rate() -> impl Strategy<Value = Rate> {
    let period = prop_oneof![
        Just(1u64),
        2u64..1_000,
        Just(1_000_000),
        Just(SEC),
        Just(60 * SEC),
        Just(3_600 * SEC),
        Just(86_400 * SEC),
        Just(YEAR),
        Just(100 * YEAR),
        Just(146 * YEAR),
        1u64..=1 << 62,
    ];
    (period, 0u8..4, any::<u64>(), 0u8..5, any::<u64>()).prop_map(
        |(period, count_kind, c, burst_kind, b)| {
            let count = match count_kind {
                0 => 1,
                1 => 1 + c % 10,
                2 => 1 + c % period,
                _ => period,
            }
            .min(period);
            let t = period.div_ceil(count);
            let max_burst = (1u64 << 62) / t;
            let burst = match burst_kind {
                0 => 1,
                1 => 1 + b % 10,
                2 => count,
                3 => max_burst,
                _ => 1 + b % max_burst,
            }
            .clamp(1, max_burst);
            Rate::from_nanos(count, period, burst).expect("generated rate is valid")
        },
    )
}

/// Costs: mostly within capacity, plus 0, the capacity, one more, far more, u64::MAX.
fn cost(cap: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(1u64),
        1 => Just(0),
        2 => Just(cap),
        1 => Just(cap.saturating_add(1)),
        1 => Just(u64::MAX),
        4 => 0..=cap,
        1 => cap..=cap.saturating_mul(3),
    ]
}

fn op(cap: u64, keys: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Check { key, cost }),
        3 => (0..keys).prop_map(|key| Op::CheckOne { key }),
        2 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Peek { key, cost }),
        2 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Refund { key, cost }),
        1 => (0..keys).prop_map(|key| Op::Reset { key }),
        1 => Just(Op::EvictFresh),
    ]
}

/// Time steps scaled to the rate: within an emission interval, within a few tolerances,
/// still, backwards, and anywhere at all.
fn step(t: u64, tau: u64) -> impl Strategy<Value = Time> {
    prop_oneof![
        6 => (0..=t.saturating_mul(2)).prop_map(Time::Forward),
        3 => (0..=tau.saturating_mul(2)).prop_map(Time::Forward),
        3 => Just(Time::Stay),
        2 => (0..=tau.saturating_mul(2)).prop_map(Time::Back),
        1 => any::<u64>().prop_map(Time::Jump),
        1 => any::<u64>().prop_map(Time::Forward),
    ]
}

/// First instant: zero, anywhere, or in the last few tolerances of the clock.
fn start(tau: u64) -> impl Strategy<Value = u64> {
    let near_end = tau.saturating_mul(4).saturating_add(16);
    prop_oneof![
        3 => Just(0u64),
        3 => any::<u64>(),
        2 => (0..=near_end).prop_map(move |d| u64::MAX - d),
    ]
}

/// First instant for the keyed comparison: time only moves forward there, so a start
/// near the clock's end is rarer.
fn keyed_start(tau: u64) -> impl Strategy<Value = u64> {
    let near_end = tau.saturating_mul(4).saturating_add(16);
    prop_oneof![
        4 => Just(0u64),
        4 => any::<u64>(),
        1 => (0..=near_end).prop_map(move |d| u64::MAX - d),
    ]
}

/// Time steps for the keyed comparison (which never goes back): mostly still or short,
/// so that many keys are live at once and the tiny store fills up, sometimes long
/// enough for keys to go fresh and be evicted.
fn keyed_step(t: u64, tau: u64) -> impl Strategy<Value = Time> {
    prop_oneof![
        8 => Just(Time::Stay),
        4 => (0..=t.min(tau / 16)).prop_map(Time::Forward),
        2 => (0..=tau).prop_map(Time::Forward),
        1 => (0..=tau.saturating_mul(4)).prop_map(Time::Forward),
        1 => any::<u64>().prop_map(Time::Jump),
    ]
}

/// Keyed operations: mostly checks, so that keys get stored.
fn keyed_op(cap: u64, keys: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Check { key, cost }),
        6 => (0..keys).prop_map(|key| Op::CheckOne { key }),
        2 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Peek { key, cost }),
        1 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Refund { key, cost }),
        1 => (0..keys).prop_map(|key| Op::Reset { key }),
        1 => Just(Op::EvictFresh),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    rate: Rate,
    start: u64,
    steps: Vec<(Time, Op)>,
}

fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    rate().prop_flat_map(move |rate| {
        let g = Gcra::new(rate);
        let (t, tau) = (g.emission_interval(), g.tolerance());
        (
            Just(rate),
            start(tau),
            prop::collection::vec((step(t, tau), op(rate.burst(), 1)), 1..max_steps),
        )
            .prop_map(|(rate, start, steps)| Case { rate, start, steps })
    })
}

/// A keyed case: a store for 4 to 16 keys (8 to 20 slots) and 24 keys in play.
fn keyed_case() -> impl Strategy<Value = (usize, Case)> {
    let case = rate().prop_flat_map(move |rate| {
        let g = Gcra::new(rate);
        let (t, tau) = (g.emission_interval(), g.tolerance());
        (
            Just(rate),
            keyed_start(tau),
            prop::collection::vec((keyed_step(t, tau), keyed_op(rate.burst(), 24)), 1..160),
        )
            .prop_map(|(rate, start, steps)| Case { rate, start, steps })
    });
    (4usize..=16, case)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

fn direct(c: &Case) -> Result<Stats, String> {
    run_direct(
        Gcra::new(c.rate),
        GcraRef::new(c.rate),
        Timeline::full(c.start),
        &c.steps,
    )
}

fn keyed(capacity: usize, c: &Case) -> Result<Stats, String> {
    run_keyed(
        Gcra::new(c.rate),
        GcraRef::new(c.rate),
        capacity,
        Timeline::full(c.start),
        &c.steps,
    )
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn direct_gcra_matches_the_model(c in case(64)) {
        direct(&c).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn keyed_gcra_matches_one_model_per_key((capacity, c) in keyed_case()) {
        keyed(capacity, &c).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------
// The generators reach what they are meant to reach.

#[test]
fn generators_exercise_denials_errors_backwards_time_and_the_clock_end() {
    let mut total = Stats::default();
    for c in sample(case(64), 300) {
        total.add(&direct(&c).unwrap_or_else(|e| panic!("{e}")));
    }
    println!("direct GCRA, 300 sampled cases: {total:?}");
    assert!(total.allowed > 1_000 && total.denied > 500, "{total:?}");
    assert!(total.too_costly > 100 && total.backwards > 100, "{total:?}");
    assert!(total.never > 0, "no request at the clock's end: {total:?}");
}

#[test]
fn keyed_generators_exercise_eviction_and_a_full_store() {
    let mut total = Stats::default();
    for (capacity, c) in sample(keyed_case(), 300) {
        total.add(&keyed(capacity, &c).unwrap_or_else(|e| panic!("{e}")));
    }
    println!("keyed GCRA, 300 sampled cases: {total:?}");
    assert!(total.evictions > 100, "{total:?}");
    assert!(total.store_full > 10, "{total:?}");
}

// ---------------------------------------------------------------------------------------
// Deterministic cases.

#[test]
fn a_tiny_store_evicts_fresh_keys_and_decides_as_if_nothing_was_evicted() {
    // 4 requests per second, burst 2 (T = 250 ms, tau = 500 ms); a store for 4 keys
    // (8 slots).
    let rate = Rate::per_second(4).unwrap().with_burst(2).unwrap();
    let ms = 1_000_000;
    let mut steps = Vec::new();
    for round in 0..3u8 {
        // 60 keys in turn, 100 ms apart: each stays live for 250 to 500 ms, so about five
        // are live at a time and every insert reuses the slot of a key gone fresh.
        for key in 0..60u8 {
            steps.push((Time::Forward(100 * ms), Op::Check { key, cost: 1 }));
            if key % 3 == round {
                steps.push((Time::Stay, Op::Check { key, cost: 2 }));
                steps.push((Time::Stay, Op::Check { key, cost: 1 }));
            }
        }
        // 20 keys at once: the store fills and refuses the rest...
        for key in 100..120u8 {
            steps.push((Time::Forward(1), Op::CheckOne { key }));
        }
        // ...until they go fresh.
        steps.push((Time::Forward(500 * ms), Op::CheckOne { key: 119 }));
        if round == 1 {
            steps.push((Time::Forward(1), Op::EvictFresh));
        }
    }
    let stats = run_keyed(
        Gcra::new(rate),
        GcraRef::new(rate),
        4,
        Timeline::full(0),
        &steps,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(stats.evictions > 100, "{stats:?}");
    assert!(stats.store_full >= 30, "{stats:?}");
    assert!(stats.denied > 0, "{stats:?}");
}

#[test]
fn model_sanity() {
    // The documented examples, answered by the model.
    let mut m = GcraRef::new("10/s burst 3".parse().unwrap());
    for left in [2, 1, 0] {
        assert_eq!(m.check(0, 1).unwrap().remaining, left);
    }
    let d = m.check(0, 1).unwrap();
    assert!(!d.allowed());
    assert_eq!((d.retry_after, d.reset_after), (100_000_000, 300_000_000));
    let mut m = GcraRef::new("1/100y".parse().unwrap());
    assert_eq!(m.check(0, 1).unwrap().reset_after, 100 * YEAR);
    assert_eq!(m.check(1, 1).unwrap().retry_after, 100 * YEAR - 1);
    // At the top of the clock a fresh key is admitted; the next request would have to
    // wait past the end of time.
    let mut m = GcraRef::new("1/s".parse().unwrap());
    assert!(m.check(u64::MAX, 1).unwrap().allowed());
    let d = m.check(u64::MAX, 1).unwrap();
    assert!(!d.allowed() && d.retry_after == u64::MAX);
}

//! The sliding-window counter against a plain reference model.
//!
//! [`WindowRef`] is written from the documentation of `window.rs` (and `algorithm.rs`,
//! `decision.rs`), not from the crate's code: full window numbers in `u128` (no packing,
//! no wrap-around), the exact integer admission test
//! `prev * (W - elapsed) + (cur + cost) * W <= limit * W`, `retry_after` found by a
//! binary search over time for the earliest admitting instant (admission only becomes
//! easier as time passes), refunds taken from the current window's count first, and the
//! documented rule for a clock that goes back: "the request is decided as if it came at
//! the start of the window the state last saw".
//!
//! The crate keeps the window number modulo 2^32 and tells a clock that went back from
//! one that moved forward by which is nearer, so each generated sequence keeps all its
//! times within 2^31 - 8 windows of each other (68 years for a 1 s window; no limit
//! from 9 s windows on). That band may lie anywhere on the `u64` clock, including its
//! very end.

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

use tollgate_core::{
    Decision, InsufficientCapacity, ManualClock, Rate, SlidingWindow, SlidingWindowLimiter,
};
use tollgate_tests::model::{run_direct, run_keyed, Model, Op, Stats, Time, Timeline};
use tollgate_tests::util::{sample, to_u64};

const SEC: u64 = 1_000_000_000;
const YEAR: u64 = 365 * 86_400 * SEC;

/// The sliding-window counter as documented, for one key.
#[derive(Clone, Debug)]
struct WindowRef {
    limit: u128,
    /// Window length `W` in nanoseconds.
    w: u128,
    /// The window number (`time / W`) the state last saw; 0 for a key never seen.
    seen: u128,
    /// Count of window `seen - 1`.
    prev: u128,
    /// Count of window `seen`.
    cur: u128,
}

/// The state as it applies at some instant.
#[derive(Clone, Copy, Debug)]
struct View {
    window: u128,
    elapsed: u128,
    prev: u128,
    cur: u128,
}

impl WindowRef {
    fn new(rate: Rate) -> Self {
        WindowRef {
            limit: u128::from(rate.count()),
            w: u128::from(rate.period_nanos()),
            seen: 0,
            prev: 0,
            cur: 0,
        }
    }

    /// The state seen from `now` (a `u128` so that the search for the earliest admitting
    /// instant may look past the end of the `u64` clock).
    fn view(&self, now: u128) -> View {
        let (window, elapsed) = (now / self.w, now % self.w);
        if window < self.seen {
            // The clock went back: decide as at the start of the window last seen.
            View {
                window: self.seen,
                elapsed: 0,
                prev: self.prev,
                cur: self.cur,
            }
        } else if window == self.seen {
            View {
                window,
                elapsed,
                prev: self.prev,
                cur: self.cur,
            }
        } else if window == self.seen + 1 {
            View {
                window,
                elapsed,
                prev: self.cur,
                cur: 0,
            }
        } else {
            View {
                window,
                elapsed,
                prev: 0,
                cur: 0,
            }
        }
    }

    /// The weighted count of the sliding window, times `W`.
    fn used(&self, v: &View, cur: u128) -> u128 {
        v.prev * (self.w - v.elapsed) + cur * self.w
    }

    fn admits(&self, v: &View, cost: u128) -> bool {
        self.used(v, v.cur + cost) <= self.limit * self.w
    }

    /// The decision and the view it was made on.
    fn decide(&self, now: u64, cost: u64) -> Result<(Decision, View), InsufficientCapacity> {
        if u128::from(cost) > self.limit {
            return Err(InsufficientCapacity {
                cost,
                capacity: self.limit as u64,
            });
        }
        let now_w = u128::from(now);
        let n = u128::from(cost);
        let v = self.view(now_w);
        let allowed = self.admits(&v, n);
        let cur = if allowed { v.cur + n } else { v.cur };
        let remaining = (self.limit * self.w).saturating_sub(self.used(&v, cur)) / self.w;
        // Back to a key never seen once no count is in the current or previous window.
        let fresh_at = if cur > 0 {
            (v.window + 2) * self.w
        } else if v.prev > 0 {
            (v.window + 1) * self.w
        } else {
            now_w
        };
        let retry_after = if allowed {
            0
        } else {
            // Admission from a fixed state only gets easier with time (the previous
            // window's weight decays, then the current count becomes the previous one,
            // then both are gone), so the admitting instants form a ray: binary search
            // its start between `now` (denied) and the start of window `v.window + 2`
            // (both counts gone, and cost <= limit).
            let (mut lo, mut hi) = (now_w, (v.window + 2) * self.w);
            assert!(
                self.admits(&self.view(hi), n),
                "model: not admitted at {hi}"
            );
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.admits(&self.view(mid), n) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            to_u64(hi - now_w)
        };
        let d = Decision {
            limit: self.limit as u64,
            remaining: to_u64(remaining),
            retry_after,
            reset_after: to_u64(fresh_at.saturating_sub(now_w)),
        };
        // The crate derives `allowed` from `retry_after == 0`; the model decides it on its
        // own, so check the two agree.
        assert_eq!(
            d.allowed(),
            allowed,
            "model: allowed must mean retry_after == 0"
        );
        Ok((d, v))
    }
}

impl Model for WindowRef {
    fn check(&mut self, now: u64, cost: u64) -> Result<Decision, InsufficientCapacity> {
        let (d, v) = self.decide(now, cost)?;
        if d.allowed() && cost > 0 {
            self.seen = v.window;
            self.prev = v.prev;
            self.cur = v.cur + u128::from(cost);
        }
        Ok(d)
    }

    fn peek(&self, now: u64, cost: u64) -> Result<Decision, InsufficientCapacity> {
        self.decide(now, cost).map(|(d, _)| d)
    }

    fn refund(&mut self, now: u64, cost: u64) {
        let v = self.view(u128::from(now));
        if v.prev == 0 && v.cur == 0 {
            return;
        }
        // From the current window's count first, then the previous one's.
        let cost = u128::from(cost);
        let from_cur = v.cur.min(cost);
        let from_prev = v.prev.min(cost - from_cur);
        self.seen = v.window;
        self.prev = v.prev - from_prev;
        self.cur = v.cur - from_cur;
    }

    fn reset(&mut self) {
        self.seen = 0;
        self.prev = 0;
        self.cur = 0;
    }

    fn is_fresh(&self, now: u64) -> bool {
        let v = self.view(u128::from(now));
        v.prev == 0 && v.cur == 0
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// Windows from 1 s (the shortest accepted) to the whole clock, limits from 1 to 65,535.
fn rate() -> impl Strategy<Value = Rate> {
    let period = prop_oneof![
        Just(SEC),
        Just(2 * SEC),
        Just(5 * SEC),
        Just(7 * SEC),
        Just(60 * SEC),
        Just(3_600 * SEC),
        Just(86_400 * SEC),
        Just(YEAR),
        Just(100 * YEAR),
        Just(500 * YEAR),
        Just(u64::MAX),
        SEC..=u64::MAX,
    ];
    let count = prop_oneof![Just(1u64), 1u64..=10, Just(65_535), 1u64..=65_535];
    (period, count).prop_map(|(period, count)| {
        // A Rate needs burst x emission interval <= 2^62 ns even though the sliding
        // window ignores the burst: use burst 1 and, for windows beyond 146 years, a
        // count large enough.
        let count = count.max(period.div_ceil(1 << 62));
        let rate = Rate::from_nanos(count, period, 1).expect("generated rate is valid");
        assert!(SlidingWindow::new(rate).is_ok());
        rate
    })
}

fn cost(cap: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(1u64),
        1 => Just(0),
        2 => Just(cap),
        1 => Just(cap + 1),
        1 => Just(u64::MAX),
        4 => 0..=cap,
        1 => cap..=cap * 3,
    ]
}

fn op(cap: u64, keys: u8, check_weight: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        check_weight => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Check { key, cost }),
        3 => (0..keys).prop_map(|key| Op::CheckOne { key }),
        2 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Peek { key, cost }),
        2 => (0..keys, cost(cap)).prop_map(|(key, cost)| Op::Refund { key, cost }),
        1 => (0..keys).prop_map(|key| Op::Reset { key }),
        1 => Just(Op::EvictFresh),
    ]
}

/// Time steps scaled to the window: a fraction of it, a few windows, still, backwards,
/// and anywhere in the band.
fn step(w: u64) -> impl Strategy<Value = Time> {
    prop_oneof![
        5 => (0..=w / 4).prop_map(Time::Forward),
        4 => (0..=w.saturating_mul(3)).prop_map(Time::Forward),
        3 => Just(Time::Stay),
        2 => (0..=w.saturating_mul(2)).prop_map(Time::Back),
        1 => any::<u64>().prop_map(Time::Jump),
        1 => any::<u64>().prop_map(Time::Forward),
    ]
}

/// Forward-only steps for the keyed comparison, short enough that the store fills.
fn keyed_step(w: u64) -> impl Strategy<Value = Time> {
    prop_oneof![
        8 => Just(Time::Stay),
        4 => (0..=w / 16).prop_map(Time::Forward),
        2 => (0..=w).prop_map(Time::Forward),
        1 => (0..=w.saturating_mul(3)).prop_map(Time::Forward),
        1 => any::<u64>().prop_map(Time::Jump),
    ]
}

/// The width of the band of times one sequence uses (see the module docs).
fn band_width(w: u64) -> u64 {
    ((1u64 << 31) - 8).saturating_mul(w)
}

fn start(w: u64) -> impl Strategy<Value = u64> {
    let near_end = w.saturating_mul(4);
    prop_oneof![
        Just(0u64),
        any::<u64>(),
        (0..=near_end).prop_map(|d| u64::MAX - d),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    rate: Rate,
    start: u64,
    steps: Vec<(Time, Op)>,
}

impl Case {
    fn timeline(&self) -> Timeline {
        Timeline::band(self.start, band_width(self.rate.period_nanos()))
    }
}

fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    rate().prop_flat_map(move |rate| {
        let w = rate.period_nanos();
        let steps = (step(w), op(rate.count(), 1, 6));
        (
            Just(rate),
            start(w),
            prop::collection::vec(steps, 1..max_steps),
        )
            .prop_map(|(rate, start, steps)| Case { rate, start, steps })
    })
}

fn keyed_case() -> impl Strategy<Value = (usize, Case)> {
    let case = rate().prop_flat_map(move |rate| {
        let w = rate.period_nanos();
        let steps = (keyed_step(w), op(rate.count(), 24, 12));
        (Just(rate), start(w), prop::collection::vec(steps, 1..160))
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
        SlidingWindow::new(c.rate).unwrap(),
        WindowRef::new(c.rate),
        c.timeline(),
        &c.steps,
    )
}

fn keyed(capacity: usize, c: &Case) -> Result<Stats, String> {
    run_keyed(
        SlidingWindow::new(c.rate).unwrap(),
        WindowRef::new(c.rate),
        capacity,
        c.timeline(),
        &c.steps,
    )
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn direct_sliding_window_matches_the_model(c in case(64)) {
        direct(&c).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn keyed_sliding_window_matches_one_model_per_key((capacity, c) in keyed_case()) {
        keyed(capacity, &c).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------
// The generators reach what they are meant to reach.

#[test]
fn generators_exercise_denials_errors_and_backwards_time() {
    let mut total = Stats::default();
    for c in sample(case(64), 300) {
        total.add(&direct(&c).unwrap_or_else(|e| panic!("{e}")));
    }
    println!("direct sliding window, 300 sampled cases: {total:?}");
    assert!(total.allowed > 1_000 && total.denied > 500, "{total:?}");
    assert!(total.too_costly > 100 && total.backwards > 100, "{total:?}");
}

#[test]
fn keyed_generators_exercise_eviction_and_a_full_store() {
    let mut total = Stats::default();
    for (capacity, c) in sample(keyed_case(), 300) {
        total.add(&keyed(capacity, &c).unwrap_or_else(|e| panic!("{e}")));
    }
    println!("keyed sliding window, 300 sampled cases: {total:?}");
    assert!(total.evictions > 100, "{total:?}");
    assert!(total.store_full > 10, "{total:?}");
}

// ---------------------------------------------------------------------------------------
// Deterministic cases.

#[test]
fn a_tiny_store_evicts_fresh_keys_and_decides_as_if_nothing_was_evicted() {
    // 2 per second; a store for 4 keys (8 slots). A key's counts are gone two window
    // starts after its last request, so with a new key every 300 ms about seven are live.
    let rate = Rate::per_second(2).unwrap();
    let ms = 1_000_000;
    let mut steps = Vec::new();
    for round in 0..3u8 {
        for key in 0..60u8 {
            steps.push((Time::Forward(300 * ms), Op::Check { key, cost: 1 }));
            if key % 3 == round {
                steps.push((Time::Stay, Op::Check { key, cost: 2 }));
                steps.push((Time::Stay, Op::Refund { key, cost: 1 }));
                steps.push((Time::Stay, Op::CheckOne { key }));
            }
        }
        for key in 100..120u8 {
            steps.push((Time::Forward(1), Op::CheckOne { key }));
        }
        steps.push((Time::Forward(2 * SEC), Op::CheckOne { key: 119 }));
        if round == 1 {
            steps.push((Time::Forward(1), Op::EvictFresh));
        }
    }
    let stats = run_keyed(
        SlidingWindow::new(rate).unwrap(),
        WindowRef::new(rate),
        4,
        Timeline::full(0),
        &steps,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(stats.evictions > 100, "{stats:?}");
    assert!(stats.store_full >= 30, "{stats:?}");
    assert!(stats.denied > 0, "{stats:?}");
}

/// A key never seen must be decided as a fresh one at any time, and two requests
/// seconds apart must see the window they fall in. Fails while the crate reads the
/// fresh state (window number 0, no counts) as a window "ahead" of `now` whenever
/// `(now / W) mod 2^32 > 2^31`; for a 1 s window with Unix-epoch nanoseconds that is
/// from 2038-01-19 03:14:09 UTC on.
#[test]
fn a_fresh_key_is_fresh_at_any_time() {
    let cases = [
        ("1/s", ((1u64 << 31) + 1) * SEC),
        ("10/s", ((1u64 << 32) - 5) * SEC),
        ("2/5s", u64::MAX - 20 * SEC),
    ];
    for (rate, now) in cases {
        let rate: Rate = rate.parse().unwrap();
        let limiter = SlidingWindowLimiter::with_clock(
            SlidingWindow::new(rate).unwrap(),
            ManualClock::new(0),
        );
        let mut model = WindowRef::new(rate);
        for at in [now, now, now + 3 * rate.period_nanos()] {
            assert_eq!(
                Ok(limiter.check_at(at)),
                model.check(at, 1),
                "{rate} at {at} ns (window {} mod 2^32 = {})",
                at / rate.period_nanos(),
                (at / rate.period_nanos()) as u32
            );
        }
    }
}

#[test]
fn model_sanity() {
    // The documented examples, answered by the model.
    let mut m = WindowRef::new("4/s".parse().unwrap());
    for _ in 0..4 {
        assert!(m.check(0, 1).unwrap().allowed());
    }
    assert!(!m.peek(0, 1).unwrap().allowed());
    assert!(m.peek(1_250_000_000, 1).unwrap().allowed());
    assert!(!m.peek(1_249_999_999, 1).unwrap().allowed());
    let d = m.peek(SEC + SEC / 10, 1).unwrap();
    assert_eq!(d.retry_after, SEC / 4 - SEC / 10);

    let mut m = WindowRef::new("3/10s".parse().unwrap());
    for left in [2, 1, 0] {
        let d = m.check(2 * SEC, 1).unwrap();
        assert_eq!((d.remaining, d.reset_after), (left, 18 * SEC));
    }
    let d = m.check(3 * SEC, 1).unwrap();
    let at = 10 * SEC + (10 * SEC - (2 * 10 * SEC) / 3);
    assert_eq!(d.retry_after, at - 3 * SEC);

    // The clock going back keeps the counts.
    let mut m = WindowRef::new("2/s".parse().unwrap());
    assert!(m.check(5 * SEC + 10, 2).unwrap().allowed());
    let d = m.check(4 * SEC, 1).unwrap();
    assert!(!d.allowed() && d.retry_after > SEC);
    assert!(!m.is_fresh(0));
}

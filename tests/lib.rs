//! Shared helpers for the integration tests (the tests live beside this file).
//!
//! * [`rng::SplitMix64`]: a tiny deterministic generator for traffic and stress tests, so
//!   every run sees the same requests.
//! * [`model`]: the contract a sequential reference model implements, and the drivers that
//!   replay one sequence of operations against a crate limiter (direct or keyed) and the
//!   model side by side, requiring every answer to be identical.

pub mod rng {
    //! A deterministic pseudo-random generator (SplitMix64): good enough statistics for
    //! generating traffic, no dependency, and the same sequence on every platform.

    /// SplitMix64 (Steele, Lea, Flood 2014).
    #[derive(Clone, Debug)]
    pub struct SplitMix64 {
        state: u64,
    }

    impl SplitMix64 {
        /// A generator seeded with `seed`.
        pub fn new(seed: u64) -> Self {
            SplitMix64 { state: seed }
        }

        /// The next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant for tests).
        pub fn below(&mut self, n: u64) -> u64 {
            assert!(n > 0, "below(0)");
            self.next_u64() % n
        }

        /// Uniform in `[0, 1)` with 53 bits of precision.
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// An exponentially distributed delay with the given mean (Poisson arrivals),
        /// rounded to whole nanoseconds.
        pub fn exponential(&mut self, mean: f64) -> u64 {
            // 1 - unit() is in (0, 1], so the logarithm is finite.
            let u = 1.0 - self.unit();
            (-u.ln() * mean).round() as u64
        }

        /// True with probability `p`.
        pub fn chance(&mut self, p: f64) -> bool {
            self.unit() < p
        }
    }
}

pub mod model {
    //! Replaying operations against a crate limiter and a reference model.
    //!
    //! A model is a plain sequential implementation of one algorithm's documented
    //! semantics for **one** key. The drivers here feed the same operations to the crate
    //! and to the model and fail (with the step, the time and the model's state) at the
    //! first answer that differs, so they can run inside proptest, which shrinks the
    //! sequence.

    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use tollgate_core::{
        Algorithm, Decision, InsufficientCapacity, KeyedError, KeyedRateLimiter, ManualClock,
        RateLimiter,
    };

    /// A sequential reference for one key.
    pub trait Model: Clone + Debug {
        /// Decides a request of `cost` at `now` and records it if allowed.
        fn check(&mut self, now: u64, cost: u64) -> Result<Decision, InsufficientCapacity>;
        /// What `check` would answer, changing nothing.
        fn peek(&self, now: u64, cost: u64) -> Result<Decision, InsufficientCapacity>;
        /// Gives back `cost` units at `now`.
        fn refund(&mut self, now: u64, cost: u64);
        /// Forgets all history.
        fn reset(&mut self);
        /// Whether the state decides every request at `now` or later (time not going
        /// back) exactly as a key never seen would.
        fn is_fresh(&self, now: u64) -> bool;
    }

    /// How the clock moves before an operation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Time {
        /// Same time as the previous operation.
        Stay,
        /// Forward by this many nanoseconds (clamped to the timeline).
        Forward(u64),
        /// Backwards by this many nanoseconds (clamped to the timeline).
        Back(u64),
        /// To `lo + x % (hi - lo + 1)`: anywhere on the timeline.
        Jump(u64),
    }

    /// One operation on one key (the direct limiter ignores the key).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Op {
        /// `check_n_at(cost, now)`.
        Check {
            /// The key.
            key: u8,
            /// The cost.
            cost: u64,
        },
        /// `check_at(now)` (cost 1, the form that cannot fail).
        CheckOne {
            /// The key.
            key: u8,
        },
        /// `peek_at(cost, now)`.
        Peek {
            /// The key.
            key: u8,
            /// The cost.
            cost: u64,
        },
        /// `refund_at(cost, now)`.
        Refund {
            /// The key.
            key: u8,
            /// The cost given back.
            cost: u64,
        },
        /// `reset()`.
        Reset {
            /// The key.
            key: u8,
        },
        /// `evict_fresh_at(now)` on a keyed limiter (nothing on a direct one).
        EvictFresh,
    }

    /// The range of times one sequence may use: `[lo, hi]`, starting at `start`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Timeline {
        /// Earliest time.
        pub lo: u64,
        /// Latest time.
        pub hi: u64,
        /// Time of the first operation (before its step).
        pub start: u64,
    }

    impl Timeline {
        /// The whole `u64` clock, starting at `start`.
        pub fn full(start: u64) -> Self {
            Timeline {
                lo: 0,
                hi: u64::MAX,
                start,
            }
        }

        /// A band of `width` nanoseconds that contains `start`, as close to `start` as
        /// the clock's range allows.
        pub fn band(start: u64, width: u64) -> Self {
            let lo = start.min(u64::MAX - width);
            Timeline {
                lo,
                hi: lo + width,
                start,
            }
        }

        /// The time after `step` from `now`.
        pub fn apply(&self, now: u64, step: Time) -> u64 {
            match step {
                Time::Stay => now,
                Time::Forward(d) => now.saturating_add(d).min(self.hi),
                Time::Back(d) => now.saturating_sub(d).max(self.lo),
                Time::Jump(x) => {
                    let span = u128::from(self.hi - self.lo) + 1;
                    self.lo + (u128::from(x) % span) as u64
                }
            }
        }
    }

    /// What a replay exercised, so tests can check that the generators reach the
    /// interesting cases.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Stats {
        /// Checks allowed.
        pub allowed: u64,
        /// Checks denied.
        pub denied: u64,
        /// Checks refused with `InsufficientCapacity`.
        pub too_costly: u64,
        /// Keyed checks refused with `StoreFull` (validated against the model).
        pub store_full: u64,
        /// Keys evicted by the store during the replay.
        pub evictions: u64,
        /// Steps on which the clock went backwards.
        pub backwards: u64,
        /// Denials whose `retry_after` was `u64::MAX` (the request can never pass).
        pub never: u64,
    }

    impl Stats {
        /// Adds another replay's counts to these.
        pub fn add(&mut self, o: &Stats) {
            self.allowed += o.allowed;
            self.denied += o.denied;
            self.too_costly += o.too_costly;
            self.store_full += o.store_full;
            self.evictions += o.evictions;
            self.backwards += o.backwards;
            self.never += o.never;
        }

        fn count(&mut self, r: &Result<Decision, InsufficientCapacity>) {
            match r {
                Ok(d) if d.allowed() => self.allowed += 1,
                Ok(d) => {
                    self.denied += 1;
                    if d.retry_after == u64::MAX {
                        self.never += 1;
                    }
                }
                Err(_) => self.too_costly += 1,
            }
        }
    }

    /// Fails the replay with `msg` unless `cond` holds.
    macro_rules! ensure {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(format!($($msg)+));
            }
        };
    }

    fn same<T: PartialEq + Debug>(
        what: &str,
        got: T,
        want: T,
        i: usize,
        now: u64,
        step: &(Time, Op),
        before: &dyn Debug,
    ) -> Result<(), String> {
        ensure!(
            got == want,
            "{what} differs at step {i} ({step:?}, now = {now}):\n  crate: {got:?}\n  model: {want:?}\n  model state before the step: {before:?}"
        );
        Ok(())
    }

    /// Replays `steps` against a direct [`RateLimiter`] (through its `_at` forms) and
    /// `model`, requiring identical answers, including a zero-cost probe after every
    /// step (which exposes a diverging state at once). Time follows `timeline` and may go
    /// backwards. The error describes the first difference.
    pub fn run_direct<A: Algorithm, M: Model>(
        alg: A,
        mut model: M,
        timeline: Timeline,
        steps: &[(Time, Op)],
    ) -> Result<Stats, String> {
        let limiter = RateLimiter::with_clock(alg, ManualClock::new(0));
        let mut stats = Stats::default();
        let mut now = timeline.start;
        for (i, step) in steps.iter().enumerate() {
            let next = timeline.apply(now, step.0);
            if next < now {
                stats.backwards += 1;
            }
            now = next;
            let before = model.clone();
            match step.1 {
                Op::Check { cost, .. } => {
                    let got = limiter.check_n_at(cost, now);
                    let want = model.check(now, cost);
                    stats.count(&want);
                    same("check_n_at", got, want, i, now, step, &before)?;
                }
                Op::CheckOne { .. } => {
                    let got = Ok(limiter.check_at(now));
                    let want = model.check(now, 1);
                    stats.count(&want);
                    same("check_at", got, want, i, now, step, &before)?;
                }
                Op::Peek { cost, .. } => {
                    let got = limiter.peek_at(cost, now);
                    let want = model.peek(now, cost);
                    same("peek_at", got, want, i, now, step, &before)?;
                }
                Op::Refund { cost, .. } => {
                    limiter.refund_at(cost, now);
                    model.refund(now, cost);
                }
                Op::Reset { .. } => {
                    limiter.reset();
                    model.reset();
                }
                Op::EvictFresh => {}
            }
            let got = limiter.peek_at(0, now);
            let want = model.peek(now, 0);
            same("probe after the step", got, want, i, now, step, &before)?;
        }
        Ok(stats)
    }

    /// Replays `steps` against a [`KeyedRateLimiter`] for up to `capacity` keys and one
    /// model per key (each starting as `fresh`), requiring identical answers. The error
    /// describes the first difference.
    ///
    /// Time never goes backwards here (a backwards step counts as `Stay`, a jump only
    /// ever moves forward): evicting a fresh key is invisible only for a clock that does
    /// not go back. A `StoreFull` answer is checked, not compared: the key must be absent
    /// (fresh in its model), the request one that would have stored state, and every
    /// slot of the store taken by a key whose model is still live. The models are then
    /// left unchanged, as the store is.
    ///
    /// The `StoreFull` check assumes a store small enough to be probed whole (one shard,
    /// at most 512 slots), which every capacity up to a few hundred keys gives.
    pub fn run_keyed<A: Algorithm, M: Model>(
        alg: A,
        fresh: M,
        capacity: usize,
        timeline: Timeline,
        steps: &[(Time, Op)],
    ) -> Result<Stats, String> {
        let limiter =
            KeyedRateLimiter::<u8, A, ManualClock>::with_clock(alg, capacity, ManualClock::new(0));
        let slots = limiter.store().slots();
        assert!(slots <= 512, "run_keyed needs a store probed whole");
        let mut models: BTreeMap<u8, M> = BTreeMap::new();
        let mut stats = Stats::default();
        let mut now = timeline.start;
        for (i, step) in steps.iter().enumerate() {
            now = timeline.apply(now, step.0).max(now);
            let before: Option<M> = match step.1 {
                Op::Check { key, .. }
                | Op::CheckOne { key }
                | Op::Peek { key, .. }
                | Op::Refund { key, .. }
                | Op::Reset { key } => models.get(&key).cloned(),
                Op::EvictFresh => None,
            };
            let mut probe_key = None;
            match step.1 {
                Op::Check { key, .. } | Op::CheckOne { key } => {
                    let (cost, got) = match step.1 {
                        Op::Check { cost, .. } => (cost, limiter.check_n_at(&key, cost, now)),
                        _ => (1, limiter.check_at(&key, now)),
                    };
                    if let Err(KeyedError::StoreFull(full)) = got {
                        stats.store_full += 1;
                        ensure!(
                            full.capacity == capacity.max(1),
                            "step {i}: StoreFull reports capacity {}",
                            full.capacity
                        );
                        ensure!(
                            before.as_ref().is_none_or(|m| m.is_fresh(now)),
                            "step {i} ({step:?}, now = {now}): StoreFull for a key whose \
                             model is live, so it must have been stored: {before:?}"
                        );
                        let would = fresh.peek(now, cost);
                        ensure!(
                            cost > 0 && matches!(would, Ok(d) if d.allowed()),
                            "step {i} ({step:?}, now = {now}): StoreFull for a request that \
                             would not store anything: {would:?}"
                        );
                        let live = models.values().filter(|m| !m.is_fresh(now)).count();
                        ensure!(
                            limiter.store().len() == slots,
                            "step {i} ({step:?}, now = {now}): StoreFull with free slots \
                             ({live} keys live in the models)"
                        );
                        ensure!(
                            live >= slots,
                            "step {i} ({step:?}, now = {now}): StoreFull but only {live} of \
                             the models are live for {slots} slots: {models:?}"
                        );
                    } else {
                        let model = models.entry(key).or_insert_with(|| fresh.clone());
                        let want = model.check(now, cost);
                        stats.count(&want);
                        let before: &dyn Debug = &before;
                        same(
                            "keyed check",
                            got,
                            want.map_err(KeyedError::from),
                            i,
                            now,
                            step,
                            before,
                        )?;
                    }
                    probe_key = Some(key);
                }
                Op::Peek { key, cost } => {
                    let got = limiter.peek_at(&key, cost, now);
                    let want = models.get(&key).unwrap_or(&fresh).peek(now, cost);
                    let before: &dyn Debug = &before;
                    same(
                        "keyed peek_at",
                        got,
                        want.map_err(KeyedError::from),
                        i,
                        now,
                        step,
                        before,
                    )?;
                }
                Op::Refund { key, cost } => {
                    limiter.refund_at(&key, cost, now);
                    if let Some(m) = models.get_mut(&key) {
                        m.refund(now, cost);
                    }
                    probe_key = Some(key);
                }
                Op::Reset { key } => {
                    limiter.reset(&key);
                    if let Some(m) = models.get_mut(&key) {
                        m.reset();
                    }
                    probe_key = Some(key);
                }
                Op::EvictFresh => {
                    let evicted = limiter.evict_fresh_at(now);
                    let live = models.values().filter(|m| !m.is_fresh(now)).count();
                    ensure!(
                        limiter.len() >= live && evicted <= slots,
                        "step {i}: evict_fresh_at evicted {evicted}, leaving {} keys for {live} live",
                        limiter.len()
                    );
                }
            }
            ensure!(limiter.len() <= slots, "step {i}: more keys than slots");
            // A zero-cost probe of the key just used, and of every key now and then.
            let every = i % 8 == 7 || i + 1 == steps.len();
            for (&key, model) in &models {
                if every || probe_key == Some(key) {
                    let got = limiter.peek_at(&key, 0, now);
                    let want = model.peek(now, 0).map_err(KeyedError::from);
                    ensure!(
                        got == want,
                        "probe of key {key} differs after step {i} ({step:?}, now = {now}):\n  crate: {got:?}\n  model: {want:?}\n  model: {model:?}"
                    );
                }
            }
        }
        stats.evictions = limiter.store().evictions();
        Ok(stats)
    }
}

/// Small helpers shared by the model tests.
pub mod util {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    /// `v` as a `u64`, saturating at `u64::MAX` (reference models compute in `u128`).
    pub fn to_u64(v: u128) -> u64 {
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// `n` values drawn deterministically from `s`, to check what the generators reach.
    pub fn sample<T: std::fmt::Debug>(s: impl Strategy<Value = T>, n: usize) -> Vec<T> {
        let mut runner = TestRunner::deterministic();
        (0..n)
            .map(|_| s.new_tree(&mut runner).expect("generate").current())
            .collect()
    }
}

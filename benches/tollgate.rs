//! Criterion benches: tollgate and governor side by side, in the same groups, in the same
//! run, with the same quota (tollgate's `Rate` and governor's `Quota` describe the same
//! emission interval and burst, and both implement GCRA with the same admission rule).
//! Every group reports `Throughput::Elements(1)`: one decision per iteration.
//!
//! | group | scenario | tollgate | governor |
//! |---|---|---|---|
//! | `direct_allowed_fake_time` | 1. direct, allowed, time +1 µs per check (1,000,000/s, burst 1,000) | `check_at(now)`, `now += 1 µs` (no clock object); and `ManualClock`: `advance(1 µs)` + `check()` | `FakeRelativeClock`: `advance(1 µs)` + `check()` |
//! | `direct_allowed_default_clock` | 2. direct, allowed, real time (1/ns, burst 1,000) | `GcraLimiter::new`: `MonotonicClock` (quanta TSC); and `StdClock` (`Instant`), for information | `RateLimiter::direct`: `QuantaClock` (quanta) |
//! | `direct_denied` | 3. direct, denied, time frozen (1/h, burst 1, exhausted before timing) | `check_at(fixed now)`; and a frozen `ManualClock` + `check()` | frozen `FakeRelativeClock` + `check()` |
//! | `keyed_uniform` | 4. keyed, 1 / 10,000 / 1,000,000 `u64` keys, uniform random access, allowed, time frozen (1/ns, burst `u32::MAX`) | `KeyedGcraLimiter::<u64>` with capacity = keys, `check_at(&key, fixed now)` | `dashmap_with_clock(FakeRelativeClock)`, `check_key(&key)` on a frozen clock |
//! | `threads2_direct`, `threads2_keyed` | 5. two threads: one direct limiter, one key, or 2 × 5,000 disjoint keys; allowed, time frozen (1/ns, burst `u32::MAX`) | `check_at(fixed now)`; plus, for information only, the disjoint keys in a store sized for 1M keys (`disjoint_2x5000_capacity_1M`) | frozen `FakeRelativeClock` |
//!
//! Scenario 6 (resident bytes per key at one million keys) is the separate target
//! `benches/resident.rs`.
//!
//! Every benchmark asserts once before timing that its limiter is on the intended path
//! (allowed or denied); the keyed and threaded ones also assert after each sample that
//! every timed check was allowed. Each module's docs say exactly what one iteration does
//! on each side; the whole return value of every check goes through
//! `std::hint::black_box`.
//!
//! Run: `cargo bench -p tollgate-benches --bench tollgate` (add `-- --quick`, or
//! `-- keyed_uniform` to filter).

use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{criterion_group, criterion_main};
use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;
use tollgate_core::{Gcra, Rate};

mod direct;
mod keyed;
mod threads;

/// tollgate's start time for clock-free (`check_at`) benches: 1 s, away from zero.
pub(crate) const START_NANOS: u64 = 1_000_000_000;

/// How far both clocks jump between two samples of a frozen-time bench (untimed): far
/// more than any sample can consume, so every key starts each sample with a full burst.
pub(crate) const SAMPLE_GAP: Duration = Duration::from_secs(10);

/// governor's keyed limiter on a `DashMap` with the fake clock.
pub(crate) type GovernorKeyed = governor::RateLimiter<
    u64,
    DashMapStateStore<u64>,
    FakeRelativeClock,
    NoOpMiddleware<<FakeRelativeClock as governor::clock::Clock>::Instant>,
>;

/// The quota of the frozen-time scenarios (keyed and two-thread): one per nanosecond,
/// burst `u32::MAX` (governor's largest), so one key admits 4,294,967,295 checks at a
/// frozen instant before its first denial; tollgate's and governor's forms of it.
pub(crate) fn frozen_time_quota() -> (Gcra, Quota) {
    let burst = u64::from(u32::MAX);
    let rate = Rate::from_nanos(1, 1, burst).expect("valid rate");
    let quota = Quota::with_period(Duration::from_nanos(1))
        .expect("non-zero period")
        .allow_burst(nonzero(burst));
    assert_eq!(
        quota.replenish_interval().as_nanos(),
        u128::from(rate.emission_interval_nanos())
    );
    assert_eq!(u64::from(quota.burst_size().get()), rate.burst());
    (Gcra::new(rate), quota)
}

/// `n` as a governor burst.
pub(crate) fn nonzero(n: u64) -> NonZeroU32 {
    u32::try_from(n)
        .ok()
        .and_then(NonZeroU32::new)
        .expect("a non-zero u32")
}

criterion_group!(
    benches,
    direct::bench_all,
    keyed::bench_all,
    threads::bench_all
);
criterion_main!(benches);

//! Direct (unkeyed) limiters, one thread: scenarios 1–3.
//!
//! Every measured call passes the contender's whole return value to
//! `std::hint::black_box` (tollgate's `Decision`, governor's `Result<(), NotUntil>`), so
//! each side does all the work its API answers with and nothing can be optimised away.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use governor::clock::FakeRelativeClock;
use governor::Quota;
use tollgate_core::{GcraLimiter, ManualClock, Rate, StdClock};

use crate::nonzero;

/// Scenario 1 quota: 1,000,000 per second (emission interval 1 µs), burst 1,000.
/// Time advances by exactly one emission interval per check, so every check is allowed
/// (the bucket stays full less one cell).
const FAKE_RATE_PER_SEC: u64 = 1_000_000;
const FAKE_BURST: u64 = 1_000;
const FAKE_STEP: Duration = Duration::from_micros(1);

/// Scenario 2 quota: one per nanosecond, burst 1,000. A check reads a real clock and takes
/// well over a nanosecond, so the limiter can never fall behind: always allowed.
const REAL_PERIOD_NANOS: u64 = 1;
const REAL_BURST: u64 = 1_000;

/// Scenario 3 quota: one per hour, burst 1. One check exhausts it and time does not move,
/// so every timed check is denied.
const DENIED_BURST: u64 = 1;

/// tollgate's start time for the clock-free (`check_at`) lines: 1 s, away from zero.
const START_NANOS: u64 = 1_000_000_000;

pub(crate) fn bench_all(c: &mut Criterion) {
    allowed_fake_time(c);
    allowed_default_clock(c);
    denied(c);
}

/// Scenario 1: the allowed path with both sides given the same timestamps.
///
/// Per iteration:
/// * `tollgate/check_at`: `now += 1 µs` (a register add), then `check_at(now)`. No clock
///   object at all: this is how a caller that already holds a timestamp uses tollgate.
///   It does *less* clock work than governor (no atomic), so read it together with
/// * `tollgate/ManualClock`: `clock.advance(1 µs)` then `check()`. `ManualClock` is an
///   `Arc<AtomicU64>` advanced by a load + compare-exchange loop and read by one relaxed
///   load: the *same* clock work, instruction for instruction, as
/// * `governor/FakeRelativeClock`: `clock.advance(1 µs)` (an `Arc<AtomicU64>`, load +
///   compare-exchange loop) then `check()` (reads the clock with one relaxed load).
///
/// Each side's timestamps go 1 µs, 2 µs, ... after its own start, so both see exactly the
/// same sequence of (state, now) pairs.
fn allowed_fake_time(c: &mut Criterion) {
    let rate = Rate::per_second(FAKE_RATE_PER_SEC)
        .and_then(|r| r.with_burst(FAKE_BURST))
        .expect("valid rate");
    let quota = Quota::per_second(nonzero(FAKE_RATE_PER_SEC)).allow_burst(nonzero(FAKE_BURST));
    assert_eq!(quota.replenish_interval(), FAKE_STEP);
    assert_eq!(rate.emission_interval_nanos(), FAKE_STEP.as_nanos() as u64);
    let step = FAKE_STEP.as_nanos() as u64;

    let mut group = c.benchmark_group("direct_allowed_fake_time");
    group.throughput(Throughput::Elements(1));

    let tg = GcraLimiter::new(rate.into());
    let mut now = START_NANOS;
    for _ in 0..2 * FAKE_BURST {
        now += step;
        assert!(
            tg.check_at(now).allowed(),
            "tollgate/check_at must stay allowed"
        );
    }
    group.bench_function(BenchmarkId::new("tollgate", "check_at"), |b| {
        b.iter(|| {
            now += step;
            black_box(tg.check_at(now))
        })
    });

    let tg_clock = ManualClock::new(START_NANOS);
    let tg = GcraLimiter::with_clock(rate.into(), tg_clock.clone());
    for _ in 0..2 * FAKE_BURST {
        tg_clock.advance(FAKE_STEP);
        assert!(
            tg.check().allowed(),
            "tollgate/ManualClock must stay allowed"
        );
    }
    group.bench_function(BenchmarkId::new("tollgate", "ManualClock"), |b| {
        b.iter(|| {
            tg_clock.advance(FAKE_STEP);
            black_box(tg.check())
        })
    });

    let gv_clock = FakeRelativeClock::default();
    let gv = governor::RateLimiter::direct_with_clock(quota, gv_clock.clone());
    for _ in 0..2 * FAKE_BURST {
        gv_clock.advance(FAKE_STEP);
        assert!(gv.check().is_ok(), "governor must stay allowed");
    }
    group.bench_function(BenchmarkId::new("governor", "FakeRelativeClock"), |b| {
        b.iter(|| {
            gv_clock.advance(FAKE_STEP);
            black_box(gv.check())
        })
    });

    group.finish();
}

/// Scenario 2: the allowed path, each side reading its default real-time clock.
///
/// * `tollgate/MonotonicClock`: `GcraLimiter::new` (tollgate's default clock: `quanta`
///   raw TSC read, converted to nanoseconds since the limiter was built), `check()`.
/// * `governor/QuantaClock`: `RateLimiter::direct` (governor's default clock:
///   `quanta::Clock::now()`), `check()`.
/// * `tollgate/StdClock`, for information: `std::time::Instant::elapsed()` per check.
fn allowed_default_clock(c: &mut Criterion) {
    let rate = Rate::from_nanos(1, REAL_PERIOD_NANOS, REAL_BURST).expect("valid rate");
    let quota = Quota::with_period(Duration::from_nanos(REAL_PERIOD_NANOS))
        .expect("non-zero period")
        .allow_burst(nonzero(REAL_BURST));

    let mut group = c.benchmark_group("direct_allowed_default_clock");
    group.throughput(Throughput::Elements(1));

    let tg = GcraLimiter::new(rate.into());
    for _ in 0..10 * REAL_BURST {
        assert!(
            tg.check().allowed(),
            "tollgate/MonotonicClock must stay allowed"
        );
    }
    group.bench_function(BenchmarkId::new("tollgate", "MonotonicClock"), |b| {
        b.iter(|| black_box(tg.check()))
    });

    let gv = governor::RateLimiter::direct(quota);
    for _ in 0..10 * REAL_BURST {
        assert!(gv.check().is_ok(), "governor/QuantaClock must stay allowed");
    }
    group.bench_function(BenchmarkId::new("governor", "QuantaClock"), |b| {
        b.iter(|| black_box(gv.check()))
    });

    let tg = GcraLimiter::with_clock(rate.into(), StdClock::new());
    for _ in 0..10 * REAL_BURST {
        assert!(tg.check().allowed(), "tollgate/StdClock must stay allowed");
    }
    group.bench_function(BenchmarkId::new("tollgate", "StdClock"), |b| {
        b.iter(|| black_box(tg.check()))
    });

    group.finish();
}

/// Scenario 3: the denied path. Each limiter is exhausted by one check before timing and
/// time never moves.
///
/// Per iteration:
/// * `tollgate/check_at`: `check_at(now)` with a fixed `now` (through `black_box`, so it is
///   not a compile-time constant);
/// * `tollgate/ManualClock`: `check()` on a `ManualClock` that is never advanced (one
///   relaxed load, the same clock work as governor's);
/// * `governor/FakeRelativeClock`: `check()` on a `FakeRelativeClock` that is never
///   advanced (one relaxed load).
fn denied(c: &mut Criterion) {
    let rate = Rate::per_hour(1)
        .and_then(|r| r.with_burst(DENIED_BURST))
        .expect("valid rate");
    let quota = Quota::per_hour(nonzero(1)).allow_burst(nonzero(DENIED_BURST));
    assert_eq!(
        quota.replenish_interval().as_nanos(),
        u128::from(rate.emission_interval_nanos())
    );

    let mut group = c.benchmark_group("direct_denied");
    group.throughput(Throughput::Elements(1));

    let tg = GcraLimiter::new(rate.into());
    assert!(tg.check_at(START_NANOS).allowed());
    assert!(
        !tg.check_at(START_NANOS).allowed(),
        "tollgate must be denied"
    );
    group.bench_function(BenchmarkId::new("tollgate", "check_at"), |b| {
        b.iter(|| black_box(tg.check_at(black_box(START_NANOS))))
    });

    let tg = GcraLimiter::with_clock(rate.into(), ManualClock::new(START_NANOS));
    assert!(tg.check().allowed());
    assert!(!tg.check().allowed(), "tollgate/ManualClock must be denied");
    group.bench_function(BenchmarkId::new("tollgate", "ManualClock"), |b| {
        b.iter(|| black_box(tg.check()))
    });

    let gv = governor::RateLimiter::direct_with_clock(quota, FakeRelativeClock::default());
    assert!(gv.check().is_ok());
    assert!(gv.check().is_err(), "governor must be denied");
    group.bench_function(BenchmarkId::new("governor", "FakeRelativeClock"), |b| {
        b.iter(|| black_box(gv.check()))
    });

    group.finish();
}

//! Keyed limiters, one thread: scenario 4.
//!
//! 1, 10,000 and 1,000,000 `u64` keys (`0..n`), every key checked once before timing
//! (this prefill is also the check that the quota admits them), then checks on keys drawn
//! uniformly from `0..n` by a precomputed splitmix64 sequence of 4 Mi keys walked
//! cyclically, the same sequence for both contenders.
//!
//! Quota and clock: [`crate::frozen_time_quota`] (one per nanosecond, burst
//! `u32::MAX`, so a key admits 4.29e9 checks before its first denial) with time frozen
//! during a sample: **every timed check is allowed**, on both sides. Between samples
//! (untimed) both clocks jump ahead by [`crate::SAMPLE_GAP`], which refills every key,
//! so no sample can exhaust one; each sample asserts afterwards that all its checks were
//! allowed.
//!
//! Per iteration, besides reading the next key from the sequence and counting the
//! allowed answer (identical on both sides):
//! * `tollgate`: `KeyedGcraLimiter::<u64>::check_at(&key, now)`, `now` a fixed timestamp
//!   passed through `black_box` (no clock object);
//! * `governor`: `RateLimiter::dashmap_with_clock(quota, FakeRelativeClock)` and
//!   `check_key(&key)`, which reads the never-advanced fake clock (one relaxed load of an
//!   L1-resident word).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use governor::clock::FakeRelativeClock;
use tollgate_benches::{uniform_keys, SEQ_MASK};
use tollgate_core::KeyedGcraLimiter;

use crate::{frozen_time_quota, GovernorKeyed, SAMPLE_GAP, START_NANOS};

const KEY_COUNTS: [u64; 3] = [1, 10_000, 1_000_000];

pub(crate) fn bench_all(c: &mut Criterion) {
    let (gcra, quota) = frozen_time_quota();
    let gap = SAMPLE_GAP.as_nanos() as u64;

    let mut group = c.benchmark_group("keyed_uniform");
    group.throughput(Throughput::Elements(1));

    for n in KEY_COUNTS {
        let seq = uniform_keys(0, n, 0x5EED_0000 ^ n);

        // tollgate: capacity = number of keys.
        {
            let tg = KeyedGcraLimiter::<u64>::new(gcra, n as usize);
            let mut now = START_NANOS;
            for key in 0..n {
                let d = tg.check_at(&key, now).expect("room for every key");
                assert!(d.allowed(), "tollgate: prefill must be allowed");
            }
            assert_eq!(tg.len() as u64, n);
            group.bench_function(BenchmarkId::new("tollgate", n), |b| {
                b.iter_custom(|iters| {
                    now += gap;
                    let mut allowed = 0u64;
                    let start = Instant::now();
                    for i in 0..iters {
                        let key = seq[i as usize & SEQ_MASK];
                        let d = black_box(tg.check_at(&key, black_box(now)));
                        allowed += u64::from(matches!(d, Ok(d) if d.allowed()));
                    }
                    let elapsed = start.elapsed();
                    assert_eq!(allowed, iters, "tollgate: every timed check is allowed");
                    elapsed
                })
            });
        }

        // governor: DashMap state store, fake clock.
        {
            let clock = FakeRelativeClock::default();
            let gv: GovernorKeyed = governor::RateLimiter::dashmap_with_clock(quota, clock.clone());
            for key in 0..n {
                assert!(
                    gv.check_key(&key).is_ok(),
                    "governor: prefill must be allowed"
                );
            }
            assert_eq!(gv.len() as u64, n);
            group.bench_function(BenchmarkId::new("governor", n), |b| {
                b.iter_custom(|iters| {
                    clock.advance(Duration::from_nanos(gap));
                    let mut allowed = 0u64;
                    let start = Instant::now();
                    for i in 0..iters {
                        let key = seq[i as usize & SEQ_MASK];
                        let r = black_box(gv.check_key(&key));
                        allowed += u64::from(r.is_ok());
                    }
                    let elapsed = start.elapsed();
                    assert_eq!(allowed, iters, "governor: every timed check is allowed");
                    elapsed
                })
            });
        }
    }

    group.finish();
}

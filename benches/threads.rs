//! Two threads at once: scenario 5.
//!
//! * `threads2_direct`: both threads check one direct limiter
//!   (`GcraLimiter::check_at(now)` / governor `direct_with_clock(.., FakeRelativeClock)`).
//! * `threads2_keyed/*/one_key`: both threads check the same key of a keyed limiter.
//! * `threads2_keyed/*/disjoint_2x5000`: thread 0 checks keys `0..5000`, thread 1 keys
//!   `5000..10000`, each drawn uniformly from its set by its own precomputed sequence (the
//!   same sequences for both contenders); all 10,000 keys are checked once before timing.
//!
//! Quota and clock as in the keyed scenario: [`crate::frozen_time_quota`], time frozen
//! during a sample (tollgate: a fixed `now` through `black_box`; governor: a
//! `FakeRelativeClock` that is never advanced inside a sample, one relaxed load per
//! check), both clocks jumped ahead by [`crate::SAMPLE_GAP`] between samples, so **every
//! timed check is allowed**; each thread counts its allowed answers and the sample
//! asserts afterwards that all were.
//!
//! # Timing convention
//! Criterion's `iter_custom(iters)` runs **each** of the two threads for `iters` checks
//! (`2 * iters` decisions in all). The threads are spawned, meet at a barrier, and each
//! records when it starts and finishes; the wall time is last finish − first start
//! (thread spawn and join are not timed). The closure returns **wall time / 2**, so the
//! time criterion reports is wall time per decision across both threads and, with
//! `Throughput::Elements(1)`, the reported throughput is the **total decisions per
//! second of both threads together**. It is not the latency of one check (that is about
//! twice the reported time when the two threads really run in parallel).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use governor::clock::FakeRelativeClock;
use tollgate_benches::{timed_threads, uniform_keys, wall_per_thread, SEQ_MASK};
use tollgate_core::{GcraLimiter, KeyedGcraLimiter};

use crate::{frozen_time_quota, GovernorKeyed, SAMPLE_GAP, START_NANOS};

const THREADS: usize = 2;
const KEYS_PER_THREAD: u64 = 5_000;
/// The key both threads share in the one-key case.
const SHARED_KEY: u64 = 42;

/// Runs `work(thread_index, iters)` on [`THREADS`] threads started together; `work`
/// returns how many of its checks were allowed. Returns the wall time divided by the
/// number of threads (see the module docs).
fn run_threads<F>(iters: u64, who: &str, work: F) -> Duration
where
    F: Fn(usize, u64) -> u64 + Sync,
{
    let spans = timed_threads(THREADS, |t| work(t, iters));
    for (t, &(_, _, allowed)) in spans.iter().enumerate() {
        assert_eq!(
            allowed, iters,
            "{who}, thread {t}: every timed check is allowed"
        );
    }
    wall_per_thread(&spans)
}

pub(crate) fn bench_all(c: &mut Criterion) {
    direct(c);
    keyed(c);
}

fn direct(c: &mut Criterion) {
    let (gcra, quota) = frozen_time_quota();
    let gap = SAMPLE_GAP.as_nanos() as u64;

    let mut group = c.benchmark_group("threads2_direct");
    group.throughput(Throughput::Elements(1));

    let tg = GcraLimiter::new(gcra);
    let mut now = START_NANOS;
    assert!(tg.check_at(now).allowed(), "tollgate must be allowed");
    group.bench_function(BenchmarkId::new("tollgate", "one_limiter"), |b| {
        b.iter_custom(|iters| {
            now += gap;
            let now = now;
            run_threads(iters, "tollgate", |_, iters| {
                let mut allowed = 0u64;
                for _ in 0..iters {
                    let d = black_box(tg.check_at(black_box(now)));
                    allowed += u64::from(d.allowed());
                }
                allowed
            })
        })
    });

    let clock = FakeRelativeClock::default();
    let gv = governor::RateLimiter::direct_with_clock(quota, clock.clone());
    assert!(gv.check().is_ok(), "governor must be allowed");
    group.bench_function(BenchmarkId::new("governor", "one_limiter"), |b| {
        b.iter_custom(|iters| {
            clock.advance(SAMPLE_GAP);
            run_threads(iters, "governor", |_, iters| {
                let mut allowed = 0u64;
                for _ in 0..iters {
                    let r = black_box(gv.check());
                    allowed += u64::from(r.is_ok());
                }
                allowed
            })
        })
    });

    group.finish();
}

fn keyed(c: &mut Criterion) {
    let (gcra, quota) = frozen_time_quota();
    let gap = SAMPLE_GAP.as_nanos() as u64;

    let mut group = c.benchmark_group("threads2_keyed");
    group.throughput(Throughput::Elements(1));

    // Both threads on one key.
    {
        let tg = KeyedGcraLimiter::<u64>::new(gcra, 1);
        let mut now = START_NANOS;
        assert!(tg.check_at(&SHARED_KEY, now).expect("room").allowed());
        group.bench_function(BenchmarkId::new("tollgate", "one_key"), |b| {
            b.iter_custom(|iters| {
                now += gap;
                let now = now;
                run_threads(iters, "tollgate", |_, iters| {
                    let mut allowed = 0u64;
                    for _ in 0..iters {
                        let d = black_box(tg.check_at(&SHARED_KEY, black_box(now)));
                        allowed += u64::from(matches!(d, Ok(d) if d.allowed()));
                    }
                    allowed
                })
            })
        });

        let clock = FakeRelativeClock::default();
        let gv: GovernorKeyed = governor::RateLimiter::dashmap_with_clock(quota, clock.clone());
        assert!(gv.check_key(&SHARED_KEY).is_ok());
        group.bench_function(BenchmarkId::new("governor", "one_key"), |b| {
            b.iter_custom(|iters| {
                clock.advance(SAMPLE_GAP);
                run_threads(iters, "governor", |_, iters| {
                    let mut allowed = 0u64;
                    for _ in 0..iters {
                        let r = black_box(gv.check_key(&SHARED_KEY));
                        allowed += u64::from(r.is_ok());
                    }
                    allowed
                })
            })
        });
    }

    // Each thread on its own 5,000 keys.
    {
        let seqs: Vec<Vec<u64>> = (0..THREADS as u64)
            .map(|t| uniform_keys(t * KEYS_PER_THREAD, KEYS_PER_THREAD, 0xD15_0000 + t))
            .collect();
        let total_keys = THREADS as u64 * KEYS_PER_THREAD;

        // The dense store is the like-for-like line. The second, for information only, holds
        // the same keys in a store sized for a million keys (20 MB): its keys rarely share a
        // cache line, so it shows how much of the dense line is false sharing between the
        // two threads' keys (four slots per cache line) rather than the store's own
        // synchronisation.
        let mut now = START_NANOS;
        for (name, capacity) in [
            ("disjoint_2x5000", total_keys as usize),
            ("disjoint_2x5000_capacity_1M", 1_000_000),
        ] {
            let tg = KeyedGcraLimiter::<u64>::new(gcra, capacity);
            for key in 0..total_keys {
                assert!(tg.check_at(&key, now).expect("room").allowed());
            }
            group.bench_function(BenchmarkId::new("tollgate", name), |b| {
                b.iter_custom(|iters| {
                    now += gap;
                    let now = now;
                    run_threads(iters, "tollgate", |t, iters| {
                        let seq = &seqs[t];
                        let mut allowed = 0u64;
                        for i in 0..iters {
                            let key = seq[i as usize & SEQ_MASK];
                            let d = black_box(tg.check_at(&key, black_box(now)));
                            allowed += u64::from(matches!(d, Ok(d) if d.allowed()));
                        }
                        allowed
                    })
                })
            });
        }

        let clock = FakeRelativeClock::default();
        let gv: GovernorKeyed = governor::RateLimiter::dashmap_with_clock(quota, clock.clone());
        for key in 0..total_keys {
            assert!(gv.check_key(&key).is_ok());
        }
        group.bench_function(BenchmarkId::new("governor", "disjoint_2x5000"), |b| {
            b.iter_custom(|iters| {
                clock.advance(SAMPLE_GAP);
                run_threads(iters, "governor", |t, iters| {
                    let seq = &seqs[t];
                    let mut allowed = 0u64;
                    for i in 0..iters {
                        let key = seq[i as usize & SEQ_MASK];
                        let r = black_box(gv.check_key(&key));
                        allowed += u64::from(r.is_ok());
                    }
                    allowed
                })
            })
        });
    }

    group.finish();
}

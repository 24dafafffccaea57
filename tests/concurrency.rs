//! Stress tests with std threads: many threads on one limiter, on overlapping keys, with
//! refunds racing checks, and inserting into a tiny keyed store while keys go fresh.
//!
//! No timing is asserted: the clock is a `ManualClock`, frozen while threads run (and
//! moved only between phases, when no thread is checking), so every count below is exact
//! whatever the interleaving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;

use tollgate_core::{
    Algorithm, Gcra, GcraLimiter, KeyedError, KeyedGcraLimiter, KeyedRateLimiter,
    KeyedSlidingWindowLimiter, ManualClock, Rate, RateLimiter, SlidingWindow, SlidingWindowLimiter,
};
use tollgate_tests::rng::SplitMix64;

const SEC: u64 = 1_000_000_000;
/// How many times the short races are run (each on a new limiter).
const REPEAT: usize = 10;

fn threads() -> usize {
    thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(4, 16)
}

/// `threads` threads each attempt `attempts` checks of cost 1 at a frozen instant;
/// returns the total allowed.
fn hammer<A: Algorithm>(limiter: &RateLimiter<A, ManualClock>, attempts: usize) -> u64 {
    let n = threads();
    let start = Barrier::new(n);
    let allowed = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                start.wait();
                let mut mine = 0;
                let mut last_remaining = u64::MAX;
                for _ in 0..attempts {
                    let d = limiter.check();
                    if d.allowed() {
                        mine += 1;
                        // Time is frozen: capacity only shrinks.
                        assert!(d.remaining < last_remaining);
                        last_remaining = d.remaining;
                    } else {
                        assert!(d.retry_after > 0);
                    }
                }
                allowed.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    allowed.into_inner()
}

#[test]
fn frozen_clock_direct_gcra_admits_exactly_the_burst() {
    let rate = Rate::per_hour(1_000).unwrap().with_burst(5_000).unwrap();
    for _ in 0..REPEAT {
        let limiter = GcraLimiter::with_clock(Gcra::new(rate), ManualClock::new(7 * SEC));
        assert_eq!(hammer(&limiter, 4_000), 5_000);
        assert!(!limiter.check().allowed());
    }
}

#[test]
fn frozen_clock_direct_sliding_window_admits_exactly_the_limit() {
    let alg = SlidingWindow::new(Rate::per_minute(3_000).unwrap()).unwrap();
    for _ in 0..REPEAT {
        let limiter = SlidingWindowLimiter::with_clock(alg, ManualClock::new(0));
        assert_eq!(hammer(&limiter, 2_000), 3_000);
    }
}

#[test]
fn frozen_clock_weighted_costs_never_exceed_the_burst() {
    // Costs 1 to 7: the allowed costs plus what is left add up to the burst exactly.
    let burst = 10_007;
    let rate = Rate::per_day(100).unwrap().with_burst(burst).unwrap();
    let limiter = GcraLimiter::with_clock(Gcra::new(rate), ManualClock::new(SEC));
    let n = threads();
    let start = Barrier::new(n);
    let used = AtomicU64::new(0);
    thread::scope(|s| {
        for i in 0..n {
            let (start, used, limiter) = (&start, &used, &limiter);
            s.spawn(move || {
                let mut rng = SplitMix64::new(i as u64);
                start.wait();
                for _ in 0..3_000 {
                    let cost = 1 + rng.below(7);
                    let d = limiter.check_n(cost).unwrap();
                    if d.allowed() {
                        used.fetch_add(cost, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let left = limiter.peek(0).unwrap().remaining;
    assert_eq!(used.into_inner() + left, burst);
    assert!(left < 7, "{left} units left after {n} x 3000 attempts");
}

/// Many threads over overlapping key sets of a keyed limiter, at a frozen instant: each
/// key ends up with exactly its limit admitted.
fn overlapping_keys<A: Algorithm>(limiter: KeyedRateLimiter<u32, A, ManualClock>, limit: u64) {
    const KEYS: usize = 240;
    let n = threads();
    let allowed: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let start = Barrier::new(n);
    thread::scope(|s| {
        for i in 0..n {
            let (start, allowed, limiter) = (&start, &allowed, &limiter);
            s.spawn(move || {
                // Thread i works on half of the keys, starting at its own offset, so
                // every key is shared by about half of the threads.
                let first = i * KEYS / n;
                start.wait();
                for round in 0..(4 * limit as usize) {
                    for j in 0..KEYS / 2 {
                        // Walk the keys in a different order each round.
                        let key = (first + (j * 7 + round) % (KEYS / 2)) % KEYS;
                        match limiter.check(&(key as u32)) {
                            Ok(d) if d.allowed() => {
                                allowed[key].fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(e) => panic!("key {key}: {e}"),
                        }
                    }
                }
            });
        }
    });
    for (key, a) in allowed.iter().enumerate() {
        assert_eq!(a.load(Ordering::Relaxed), limit, "key {key}");
    }
    assert_eq!(limiter.len(), KEYS);
}

#[test]
fn overlapping_keys_each_get_exactly_their_burst() {
    let rate = Rate::per_hour(10).unwrap().with_burst(25).unwrap();
    let limiter = KeyedGcraLimiter::with_clock(Gcra::new(rate), 1_000, ManualClock::new(SEC));
    overlapping_keys(limiter, 25);
}

#[test]
fn overlapping_keys_each_get_exactly_their_window_limit() {
    let rate = Rate::per_minute(30).unwrap();
    let alg = SlidingWindow::new(rate).unwrap();
    let limiter = KeyedSlidingWindowLimiter::with_clock(alg, 1_000, ManualClock::new(SEC));
    overlapping_keys(limiter, 30);
}

/// Threads check and give back some of what they were allowed (as a caller does for a
/// request it did not serve), at a frozen instant. Every refund returns exactly one unit,
/// so once the limiter is drained, allowed = capacity + refunds.
fn refunds_race_checks<A: Algorithm>(limiter: &RateLimiter<A, ManualClock>, capacity: u64) {
    let n = threads();
    let start = Barrier::new(n);
    let allowed = AtomicU64::new(0);
    let refunds = AtomicU64::new(0);
    thread::scope(|s| {
        for i in 0..n {
            let (start, allowed, refunds) = (&start, &allowed, &refunds);
            s.spawn(move || {
                let mut rng = SplitMix64::new(100 + i as u64);
                start.wait();
                for _ in 0..5_000 {
                    if limiter.check().allowed() {
                        allowed.fetch_add(1, Ordering::Relaxed);
                        if rng.chance(0.3) {
                            limiter.refund(1);
                            refunds.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    // Drain what is left (refunds made late in the race may have left some).
    let mut allowed = allowed.into_inner();
    while limiter.check().allowed() {
        allowed += 1;
    }
    let refunds = refunds.into_inner();
    assert!(refunds > 100, "only {refunds} refunds");
    assert_eq!(allowed, capacity + refunds);
    assert_eq!(limiter.peek(0).unwrap().remaining, 0);
}

#[test]
fn refunds_racing_checks_gcra() {
    let rate = Rate::per_hour(60).unwrap().with_burst(2_000).unwrap();
    for _ in 0..REPEAT {
        let limiter = GcraLimiter::with_clock(Gcra::new(rate), ManualClock::new(3 * SEC));
        refunds_race_checks(&limiter, 2_000);
    }
}

#[test]
fn refunds_racing_checks_sliding_window() {
    let alg = SlidingWindow::new(Rate::per_hour(2_000).unwrap()).unwrap();
    for _ in 0..REPEAT {
        let limiter = SlidingWindowLimiter::with_clock(alg, ManualClock::new(0));
        refunds_race_checks(&limiter, 2_000);
    }
}

#[test]
fn refunds_racing_checks_on_keys() {
    const KEYS: u32 = 8;
    let rate = Rate::per_hour(60).unwrap().with_burst(300).unwrap();
    let limiter = KeyedGcraLimiter::with_clock(Gcra::new(rate), 64, ManualClock::new(SEC));
    let n = threads();
    let start = Barrier::new(n);
    let allowed: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let refunds: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    thread::scope(|s| {
        for i in 0..n {
            let (start, allowed, refunds, limiter) = (&start, &allowed, &refunds, &limiter);
            s.spawn(move || {
                let mut rng = SplitMix64::new(200 + i as u64);
                start.wait();
                for _ in 0..4_000 {
                    let key = rng.below(u64::from(KEYS)) as u32;
                    if limiter.check(&key).unwrap().allowed() {
                        allowed[key as usize].fetch_add(1, Ordering::Relaxed);
                        if rng.chance(0.25) {
                            limiter.refund(&key, 1);
                            refunds[key as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    for key in 0..KEYS {
        let mut a = allowed[key as usize].load(Ordering::Relaxed);
        while limiter.check(&key).unwrap().allowed() {
            a += 1;
        }
        let r = refunds[key as usize].load(Ordering::Relaxed);
        assert_eq!(a, 300 + r, "key {key}");
    }
}

/// Per phase (a frozen instant) and key: how many checks were allowed.
struct Phases {
    times: Vec<u64>,
    allowed: Vec<Vec<u64>>,
    store_full: u64,
    evictions: u64,
}

/// Threads check random keys of a set much larger than a tiny store, in phases: during a
/// phase the clock is frozen and every thread checks; between phases (all threads
/// waiting at a barrier) the clock moves on by one of `steps`, letting some or all keys go
/// fresh, so inserts race with the reuse of fresh slots.
///
/// The clock never moves while a check is in flight: a thread that read the clock before
/// a move and checked after it would be a clock going backwards, for which evicting a
/// fresh key may legitimately change a decision (see `store.rs`).
fn tiny_store_phases<A: Algorithm>(alg: A, steps: &[u64]) -> Phases {
    const KEYS: usize = 64;
    const PHASES: usize = 60;
    let mut rng = SplitMix64::new(42);
    let mut times = vec![5 * SEC];
    while times.len() < PHASES {
        let step = steps[rng.below(steps.len() as u64) as usize];
        times.push(times[times.len() - 1] + step);
    }
    let clock = ManualClock::new(times[0]);
    let limiter = KeyedRateLimiter::<u32, A, _>::with_clock(alg, 16, clock.clone());
    assert!(limiter.store().slots() < KEYS / 2);
    let n = threads();
    let barrier = Barrier::new(n);
    let allowed: Vec<Vec<AtomicU64>> = (0..PHASES)
        .map(|_| (0..KEYS).map(|_| AtomicU64::new(0)).collect())
        .collect();
    let store_full = AtomicU64::new(0);
    thread::scope(|s| {
        for i in 0..n {
            let (barrier, allowed, store_full, limiter, clock, times) =
                (&barrier, &allowed, &store_full, &limiter, &clock, &times);
            s.spawn(move || {
                let mut rng = SplitMix64::new(300 + i as u64);
                for (p, &t) in times.iter().enumerate() {
                    // Thread 0 moves the clock while every other thread waits.
                    if i == 0 {
                        clock.set(t);
                    }
                    barrier.wait();
                    for _ in 0..150 {
                        let key = rng.below(KEYS as u64) as u32;
                        match limiter.check(&key) {
                            Ok(d) if d.allowed() => {
                                allowed[p][key as usize].fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(KeyedError::StoreFull(_)) => {
                                store_full.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    barrier.wait();
                }
            });
        }
    });
    Phases {
        times,
        allowed: allowed
            .into_iter()
            .map(|v| v.into_iter().map(AtomicU64::into_inner).collect())
            .collect(),
        store_full: store_full.into_inner(),
        evictions: limiter.store().evictions(),
    }
}

#[test]
fn tiny_store_gcra_never_admits_a_key_beyond_its_rate() {
    // Burst 3, one per second (tau = 3 s); phases 0.4 s apart (keys stay live, the store
    // fills) or 3 to 5 s apart (keys go fresh and slots are reused).
    let (burst, t) = (3, SEC);
    let rate = Rate::per_second(1).unwrap().with_burst(burst).unwrap();
    let r = tiny_store_phases(
        Gcra::new(rate),
        &[SEC * 4 / 10, SEC * 4 / 10, SEC * 4 / 10, 3 * SEC, 5 * SEC],
    );
    // GCRA conformance, per key: the checks allowed at instants t_p..=t_q number at most
    // burst + (t_q - t_p) / T. With p == q: never more than the burst at one instant.
    let phases = r.times.len();
    let keys = r.allowed[0].len();
    let mut total = 0;
    for key in 0..keys {
        for p in 0..phases {
            let mut sum = 0;
            for q in p..phases {
                sum += r.allowed[q][key];
                let bound = burst + (r.times[q] - r.times[p]) / t;
                assert!(
                    sum <= bound,
                    "key {key}: {sum} allowed between {} and {} ns, at most {bound}",
                    r.times[p],
                    r.times[q]
                );
            }
            total += r.allowed[p][key];
        }
    }
    assert!(total > 0);
    assert!(r.store_full > 0, "the store never filled up");
    assert!(r.evictions > 0, "no key was ever evicted");
    println!(
        "tiny store, GCRA: {total} allowed, {} StoreFull, {} evictions",
        r.store_full, r.evictions
    );
}

#[test]
fn tiny_store_sliding_window_never_admits_a_key_beyond_its_window() {
    // 3 per second; phases 0.3 s apart or 2 to 3 s apart (counts gone).
    let (limit, w) = (3u64, SEC);
    let alg = SlidingWindow::new(Rate::per_second(limit).unwrap()).unwrap();
    let r = tiny_store_phases(alg, &[SEC * 3 / 10, SEC * 3 / 10, 2 * SEC, 3 * SEC]);
    let keys = r.allowed[0].len();
    let mut total = 0;
    for key in 0..keys {
        // Counts per fixed window, accumulated phase by phase: after each phase the
        // admitted weighted estimate prev * (W - elapsed) / W + cur is within the limit,
        // so in particular no fixed window ever holds more than the limit.
        let mut per_window = std::collections::BTreeMap::<u64, u64>::new();
        for (p, &t) in r.times.iter().enumerate() {
            let (k, elapsed) = (t / w, t % w);
            let a = r.allowed[p][key];
            total += a;
            let cur = *per_window.entry(k).and_modify(|c| *c += a).or_insert(a);
            let prev = k
                .checked_sub(1)
                .and_then(|j| per_window.get(&j))
                .copied()
                .unwrap_or(0);
            assert!(
                u128::from(prev) * u128::from(w - elapsed) + u128::from(cur) * u128::from(w)
                    <= u128::from(limit) * u128::from(w),
                "key {key}: window {k} holds {cur} after {prev} in the previous one, at {elapsed} ns into it"
            );
        }
    }
    assert!(total > 0);
    assert!(r.store_full > 0, "the store never filled up");
    assert!(r.evictions > 0, "no key was ever evicted");
    println!(
        "tiny store, sliding window: {total} allowed, {} StoreFull, {} evictions",
        r.store_full, r.evictions
    );
}

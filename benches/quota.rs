//! The quota ledger's hot path: `Ledger::record` against a bare atomic increment plus the
//! company lookup, on one and two threads, in memory and journaled to SQLite in both
//! durability modes; and the cost of making calls durable (`Ledger::sync`).
//!
//! | group | what one iteration does |
//! |---|---|
//! | `quota_record_1thread`, `quota_record_2threads` | one call of cost 1 by one of 1,000 API keys (100 companies x 10 users), drawn uniformly from a precomputed sequence, all stamped in one month |
//! | `quota_record_sync` | the same call followed by `Ledger::sync()` (the call is durable when it returns), 1 and 2 threads |
//! | `quota_flush` | `Ledger::sync()` after 1 or 1,000 users each recorded one call (the recording is not timed) |
//!
//! Contenders in the record groups:
//! * `baseline_lookup_fetch_add`: the floor the issue sets: a `std` `HashMap<String,
//!   Arc<AtomicU64>>` from API key to its company's counter, hashed with `ahash` like the
//!   ledger's key map, one lookup and one `fetch_add` (no lock: the map never changes);
//! * `ledger_memory`: `Ledger::new`, no journal;
//! * `ledger_bounded_loss`: journaled, `Durability::BoundedLoss { max_delay: 100 ms }`
//!   (the default); the writer thread commits in the background during the measurement;
//! * `ledger_strict`: journaled, `Durability::Strict`, without waiting for durability.
//!
//! Two threads: `iter_custom(iters)` runs each thread for `iters` calls and reports wall
//! time / 2 (total calls per second of both threads), as in `threads.rs`.
//!
//! Run: `cargo bench -p tollgate-benches --bench quota`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tollgate_benches::{timed_threads, wall_per_thread, SplitMix64};
use tollgate_quota::journal::{Durability, Journal};
use tollgate_quota::{Company, Ledger, Outcome, Plans, QuotaConfig};

const COMPANIES: usize = 100;
const USERS_PER_COMPANY: usize = 10;
const KEYS: usize = COMPANIES * USERS_PER_COMPANY;
/// 2026-11-15T00:00:00Z: every call falls in one period.
const NOW: i128 = 1_794_700_800 * 1_000_000_000;
const SEQ: usize = 1 << 16;

fn key(i: usize) -> String {
    format!("{i:08x}-5b7d-4e21-9a0b-6c8d2f1e4a77")
}

/// The key indices each thread walks, uniform over all keys.
fn sequence(seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    (0..SEQ).map(|_| rng.below(KEYS as u64) as usize).collect()
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Memory,
    BoundedLoss,
    Strict,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Memory => "ledger_memory",
            Mode::BoundedLoss => "ledger_bounded_loss",
            Mode::Strict => "ledger_strict",
        }
    }
}

/// A ledger with the bench's companies, users and keys; its journal lives in the
/// returned directory.
fn ledger(mode: Mode) -> (Arc<Ledger>, Option<tempfile::TempDir>) {
    let config = QuotaConfig {
        plans: Plans::standard(),
        ..QuotaConfig::default()
    };
    let (ledger, dir) = match mode {
        Mode::Memory => (Ledger::new(config), None),
        Mode::BoundedLoss | Mode::Strict => {
            let dir = tempfile::tempdir().expect("temp dir");
            let durability = match mode {
                Mode::Strict => Durability::Strict,
                _ => Durability::default(),
            };
            let (j, snap) =
                Journal::open(dir.path().join("usage.db"), durability).expect("open the journal");
            (Ledger::with_journal(config, j, snap), Some(dir))
        }
    };
    for c in 0..COMPANIES {
        let company = format!("company-{c}");
        // A limit no bench reaches: every call is within it.
        ledger
            .upsert_company(Company::new(&company).with_override(1 << 50), None, NOW)
            .expect("company");
        for u in 0..USERS_PER_COMPANY {
            let i = c * USERS_PER_COMPANY + u;
            let user = format!("user-{i}");
            ledger.add_user(&user, &company, NOW).expect("user");
            ledger.add_key(&key(i), &user).expect("key");
        }
    }
    (Arc::new(ledger), dir)
}

/// The floor: API key -> its company's counter, one lookup and one increment.
fn baseline() -> HashMap<String, Arc<AtomicU64>, ahash::RandomState> {
    let counters: Vec<_> = (0..COMPANIES)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    (0..KEYS)
        .map(|i| (key(i), Arc::clone(&counters[i / USERS_PER_COMPANY])))
        .collect()
}

fn record(ledger: &Ledger, key: &str) {
    let d = ledger
        .record(black_box(key), 1, black_box(NOW))
        .expect("known key");
    debug_assert_eq!(d.outcome, Outcome::Within);
    black_box(d);
}

fn bench_record(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let seqs = [sequence(1), sequence(2)];

    let mut g = c.benchmark_group("quota_record_1thread");
    g.throughput(Throughput::Elements(1));
    let map = baseline();
    g.bench_function("baseline_lookup_fetch_add", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let k = &keys[seqs[0][i & (SEQ - 1)]];
            black_box(
                map.get(black_box(k.as_str()))
                    .expect("key")
                    .fetch_add(1, Ordering::Relaxed),
            )
        })
    });
    for mode in [Mode::Memory, Mode::BoundedLoss, Mode::Strict] {
        let (l, _dir) = ledger(mode);
        g.bench_function(mode.name(), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                record(&l, &keys[seqs[0][i & (SEQ - 1)]]);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("quota_record_2threads");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_lookup_fetch_add", |b| {
        b.iter_custom(|iters| {
            let spans = timed_threads(2, |t| {
                for i in 0..iters as usize {
                    let k = &keys[seqs[t][i & (SEQ - 1)]];
                    black_box(
                        map.get(black_box(k.as_str()))
                            .expect("key")
                            .fetch_add(1, Ordering::Relaxed),
                    );
                }
                iters
            });
            wall_per_thread(&spans)
        })
    });
    for mode in [Mode::Memory, Mode::BoundedLoss, Mode::Strict] {
        let (l, _dir) = ledger(mode);
        g.bench_function(mode.name(), |b| {
            b.iter_custom(|iters| {
                let spans = timed_threads(2, |t| {
                    for i in 0..iters as usize {
                        record(&l, &keys[seqs[t][i & (SEQ - 1)]]);
                    }
                    iters
                });
                wall_per_thread(&spans)
            })
        });
    }
    g.finish();

    // Durable before answering: one disk sync per group of concurrent callers.
    let mut g = c.benchmark_group("quota_record_sync");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for mode in [Mode::BoundedLoss, Mode::Strict] {
        let (l, _dir) = ledger(mode);
        for threads in [1, 2] {
            g.bench_function(
                BenchmarkId::new(mode.name(), format!("{threads}_threads")),
                |b| {
                    b.iter_custom(|iters| {
                        let spans = timed_threads(threads, |t| {
                            for i in 0..iters as usize {
                                record(&l, &keys[seqs[t][i & (SEQ - 1)]]);
                                l.sync().expect("sync");
                            }
                            iters
                        });
                        wall_per_thread(&spans)
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_flush(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let mut g = c.benchmark_group("quota_flush");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for mode in [Mode::BoundedLoss, Mode::Strict] {
        let (l, _dir) = ledger(mode);
        for dirty in [1, KEYS] {
            g.bench_function(
                BenchmarkId::new(mode.name(), format!("{dirty}_users_changed")),
                |b| {
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            for k in &keys[..dirty] {
                                record(&l, k);
                            }
                            let start = Instant::now();
                            l.sync().expect("sync");
                            spent += start.elapsed();
                        }
                        spent
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_record, bench_flush);
criterion_main!(benches);

//! Decisions per second through Redis against the in-memory engine, in the same run.
//!
//! One `redis-server` on loopback (started by the bench; skipped with a message when
//! it is not installed). The policy: two limits (per token and tenant; per company) and
//! the monthly quota, 1,000 API keys over 100 companies.
//!
//! * `memory`: the in-memory engine (limits and quota in process);
//! * `redis`: both limits and the quota on Redis, decided by one script (one round trip
//!   per decision; see `tollgate_redis::combined`);
//! * `redis_one_by_one`: the same with `RedisFactory::combine(false)`: one script call
//!   per limit and one for the quota (three round trips);
//! * `redis_over_limit_cache`: `redis` with the over-limit cache;
//! * `redis_batched_quota`: the quota's increments batched (flushed every 100 ms per
//!   company): one script call for the two limits, the quota decided locally;
//! * `*_2_engines`: two engines (two instances) deciding in parallel on two threads, on
//!   one Redis; time per decision = wall time / decisions of both;
//! * `over_limit/*`: abusive traffic: every token is over its limit (5 per day), with
//!   and without the over-limit cache.
//!
//! Every allowed-traffic limit is far from its capacity, so those decisions are allowed
//! (asserted before timing).
//!
//! Run: `cargo bench -p tollgate-benches --bench redis`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::{Engine, Policy, Request};
use tollgate_benches::{bench_quota_toml, bench_token, SplitMix64};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{LimitOptions, QuotaOptions, RedisFactory, RedisQuota, RedisStore};

const KEYS: usize = 1_000;
const COMPANIES: usize = 100;
const SEQ: usize = 1 << 16;

fn policy(backend: &str, rate: &str) -> Policy {
    let mut text = format!(
        "version = 1\n\
         [[limit]]\nname = \"per-token-tenant\"\nrate = \"{rate}\"\nbackend = \"{backend}\"\n\
         [[limit]]\nname = \"per-company\"\nkey = [\"company\"]\nrate = \"1000000000/s burst 1000000000000\"\nbackend = \"{backend}\"\n"
    );
    text.push_str(&bench_quota_toml(KEYS, COMPANIES));
    Policy::from_toml(&text).expect("bench policy").0
}

const FAST: &str = "1000000000/s burst 1000000000000";

#[derive(Clone, Copy)]
struct Setup {
    redis: bool,
    cache: bool,
    batch: bool,
    combine: bool,
}

fn engine(store: &Arc<RedisStore>, s: Setup, rate: &str, instance: &str) -> Engine {
    let p = policy(if s.redis { "redis" } else { "memory" }, rate);
    let mut b = Engine::builder(p);
    if s.redis {
        let factory = RedisFactory::new(Arc::clone(store))
            .options(LimitOptions {
                over_limit_cache: s.cache,
                ..LimitOptions::default()
            })
            .combine(s.combine);
        let quota = RedisQuota::new(
            Arc::clone(store),
            instance,
            QuotaOptions {
                batch: s.batch.then_some(Duration::from_millis(100)),
                ..QuotaOptions::default()
            },
        );
        b = b
            .backend("redis", Arc::new(factory))
            .quota_store(Arc::new(quota));
    }
    b.build().expect("engine")
}

struct Workload {
    tokens: Vec<String>,
    companies: Vec<String>,
    seq: Vec<usize>,
}

impl Workload {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        Workload {
            tokens: (0..KEYS).map(bench_token).collect(),
            companies: (0..COMPANIES).map(|c| format!("c{c}")).collect(),
            seq: (0..SEQ).map(|_| rng.below(KEYS as u64) as usize).collect(),
        }
    }

    fn request(&self, i: usize) -> Request<'_> {
        let k = self.seq[i & (SEQ - 1)];
        Request::new()
            .token(&self.tokens[k])
            .tenant("tenant-1")
            .company(&self.companies[k / (KEYS / COMPANIES)])
            .method("GET")
    }
}

fn bench(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("redis bench skipped: no redis-server");
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).expect("store");
    let work = Arc::new(Workload::new(7));

    let mut g = c.benchmark_group("redis_decision");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    let setups = [
        (
            "memory",
            Setup {
                redis: false,
                cache: false,
                batch: false,
                combine: true,
            },
        ),
        (
            "redis",
            Setup {
                redis: true,
                cache: false,
                batch: false,
                combine: true,
            },
        ),
        (
            "redis_one_by_one",
            Setup {
                redis: true,
                cache: false,
                batch: false,
                combine: false,
            },
        ),
        (
            "redis_over_limit_cache",
            Setup {
                redis: true,
                cache: true,
                batch: false,
                combine: true,
            },
        ),
        (
            "redis_batched_quota",
            Setup {
                redis: true,
                cache: false,
                batch: true,
                combine: true,
            },
        ),
    ];
    for (name, setup) in setups {
        let e = engine(&store, setup, FAST, "bench-1");
        assert!(e.decide(&work.request(0)).allowed(), "{name}");
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(e.decide(black_box(&work.request(i))))
            })
        });
    }
    for (name, setup) in [
        ("memory_2_engines", setups[0].1),
        ("redis_2_engines", setups[1].1),
        ("redis_one_by_one_2_engines", setups[2].1),
        ("redis_batched_quota_2_engines", setups[4].1),
    ] {
        let engines: Vec<Arc<Engine>> = ["bench-a", "bench-b"]
            .iter()
            .map(|inst| Arc::new(engine(&store, setup, FAST, inst)))
            .collect();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let handles: Vec<_> = engines
                    .iter()
                    .enumerate()
                    .map(|(t, e)| {
                        let (e, work) = (Arc::clone(e), Arc::clone(&work));
                        std::thread::spawn(move || {
                            for i in 0..iters.div_ceil(2) as usize {
                                black_box(e.decide(black_box(&work.request(i * 2 + t))));
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().expect("bench thread");
                }
                start.elapsed()
            })
        });
    }
    g.finish();

    // Abusive traffic: every token over its limit.
    let mut g = c.benchmark_group("redis_over_limit");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, setup) in [
        ("memory", setups[0].1),
        ("redis", setups[1].1),
        ("redis_one_by_one", setups[2].1),
        ("redis_over_limit_cache", setups[3].1),
    ] {
        let e = engine(&store, setup, "5/day", "bench-abuse");
        for i in 0..KEYS {
            for _ in 0..6 {
                e.decide(&work.request(0).token(&work.tokens[i]));
            }
        }
        assert!(!e.decide(&work.request(0)).allowed(), "{name}");
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(e.decide(black_box(&work.request(i))))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Measures the accuracy trade-off of the two options, on a real redis-server that this
//! example starts (it needs `redis-server` installed):
//!
//! 1. the over-limit cache: two engines (two instances) on one Redis hammer 8 keys of a
//!    `50/s burst 10` limit from two threads for 2 s; allowed decisions and calls that
//!    reached Redis, without and with the cache;
//! 2. batched quota increments: two engines call one company whose hard cap is 2,000
//!    calls, each paced at 20,000 calls/s, until each has been refused 200 times; calls
//!    served beyond the cap, exact mode and batches of 1, 10 and 100 ms.
//!
//! Run: `cargo run --release -p tollgate-redis --example accuracy`.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{LimitOptions, QuotaOptions, RedisFactory, RedisQuota, RedisStore};

const LIMIT: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "50/s burst 10"
backend = "redis"
"#;

const QUOTA: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000000/s"
[quota]
hard_cap_percent = 100
[[quota.plans]]
name = "flat"
calls = 2000
default = true
[[quota.companies]]
id = "acme"
users = [{ id = "ann", keys = ["key-ann"] }, { id = "bob", keys = ["key-bob"] }]
"#;

/// Runs `f` on two threads at once; returns what each returned.
fn pair<T: Send + 'static>(f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                f(t)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn cache_run(server: &RedisServer, cache: bool, run: usize) -> (u64, u64, u64) {
    let store =
        RedisStore::new(tollgate_redis::testing::config(server.url()).prefix(format!("acc{run}")))
            .unwrap();
    let engines: Vec<Arc<Engine>> = (0..2)
        .map(|_| {
            let factory = RedisFactory::new(Arc::clone(&store)).options(LimitOptions {
                over_limit_cache: cache,
                ..LimitOptions::default()
            });
            Arc::new(
                Engine::builder(Policy::from_toml(LIMIT).unwrap().0)
                    .backend("redis", Arc::new(factory))
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let tokens: Vec<String> = (0..8).map(|i| format!("tok-{i}")).collect();
    let tokens = Arc::new(tokens);
    let engines2 = engines.clone();
    let results = pair(move |t| {
        let e = &engines2[t];
        let start = Instant::now();
        let (mut allowed, mut decisions, mut i) = (0u64, 0u64, t);
        while start.elapsed() < Duration::from_secs(2) {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let tok = &tokens[(i >> 33) % 8];
            allowed += u64::from(e.decide(&Request::new().token(tok)).allowed());
            decisions += 1;
        }
        (allowed, decisions)
    });
    let allowed = results.iter().map(|r| r.0).sum();
    let decisions = results.iter().map(|r| r.1).sum();
    (allowed, decisions, store.stats().network_calls)
}

fn quota_run(server: &RedisServer, batch: Option<Duration>, run: usize) -> u64 {
    let store =
        RedisStore::new(tollgate_redis::testing::config(server.url()).prefix(format!("q{run}")))
            .unwrap();
    let engines: Vec<Arc<(Engine, Arc<RedisQuota>)>> = ["gw-1", "gw-2"]
        .iter()
        .map(|name| {
            let q = Arc::new(RedisQuota::new(
                Arc::clone(&store),
                *name,
                QuotaOptions {
                    batch,
                    ..QuotaOptions::default()
                },
            ));
            let e = Engine::builder(Policy::from_toml(QUOTA).unwrap().0)
                .quota_store(Arc::clone(&q) as Arc<dyn tollgate::QuotaStore>)
                .build()
                .unwrap();
            Arc::new((e, q))
        })
        .collect();
    let engines2 = engines.clone();
    let served: Vec<u64> = pair(move |t| {
        let (e, q) = &*engines2[t];
        let key = ["key-ann", "key-bob"][t];
        let (mut served, mut refused) = (0u64, 0u64);
        let mut next = Instant::now();
        while refused < 200 {
            // Paced: one call per 50 us per instance (20,000 calls/s each).
            next += Duration::from_micros(50);
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            match e.decide(&Request::new().token(key)).reason {
                Reason::Allowed => served += 1,
                _ => refused += 1,
            }
        }
        q.flush(e.ledger().unwrap());
        served
    });
    served.iter().sum()
}

fn main() {
    let Some(server) = RedisServer::start() else {
        eprintln!("this example needs redis-server");
        return;
    };
    println!("over-limit cache: two engines, 8 keys of 50/s burst 10, 2 threads for 2 s");
    println!("| cache | decisions | allowed | allowed/s | calls to Redis | calls per decision |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (run, cache) in [false, true, false, true].into_iter().enumerate() {
        let (allowed, decisions, calls) = cache_run(&server, cache, run);
        println!(
            "| {} | {decisions} | {allowed} | {:.1} | {calls} | {:.3} |",
            if cache { "on" } else { "off" },
            allowed as f64 / 2.0,
            calls as f64 / decisions as f64
        );
    }
    println!();
    println!("batched quota: two engines at 20,000 calls/s each, hard cap 2,000, until each is refused 200 times");
    println!("| mode | served | over the cap |");
    println!("|---|---:|---:|");
    for (run, batch) in [None, Some(1), Some(10), Some(100)].into_iter().enumerate() {
        let served = quota_run(&server, batch.map(Duration::from_millis), run);
        let mode = batch.map_or("exact".to_string(), |ms| format!("batch {ms} ms"));
        println!("| {mode} | {served} | {} |", served.saturating_sub(2000));
    }
}

//! A full engine decision against a bare core check, in the same run.
//!
//! * `core_keyed_check`: `KeyedGcraLimiter::<u64>::check_at` on one of 1,000 keys (the
//!   floor: one hash, one probe, one compare-exchange);
//! * `engine_two_limits`: `Engine::decide` with two limits (per token and tenant; per
//!   company), 1,000 tokens over 100 companies, reads;
//! * `engine_two_limits_quota`: the same plus the monthly quota (1,000 API keys in the
//!   ledger), the policy a provider runs;
//! * `engine_two_limits_write`: the two limits with a write (cost 3 under the first).
//!
//! * `governor_two_limits`: the same two limits as a user would hand-build them from
//!   governor: ahash the attributes into `u64` keys, two `governor` keyed limiters with
//!   their default clock (issue 18's baseline);
//! * `governor_two_limits_quota`: that plus a `DashMap<String, AtomicU64>` company
//!   counter checked against its cap (the hand-built monthly quota);
//! * `engine_two_limits_clock` / `engine_two_limits_quota_clock`: the engine reading its
//!   own clock, as governor does (the others pass the time explicitly).
//!
//! Every limit is far from its capacity (1e9/s, burst 1e12 per key), so every decision
//! is allowed (asserted before timing); time is passed explicitly (`Request::at`).
//!
//! Run: `cargo bench -p tollgate-benches --bench engine`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::{Engine, Policy, Request};
use tollgate_benches::{bench_quota_toml, bench_token, SplitMix64};
use tollgate_core::{KeyedGcraLimiter, Rate};

const KEYS: usize = 1_000;
const COMPANIES: usize = 100;
const SEQ: usize = 1 << 16;
/// 2027-01-15T08:00:00Z.
const NOW: u64 = 1_800_000_000_000_000_000;

fn policy(quota: bool) -> Policy {
    let mut text = String::from(
        "version = 1\n\
         [[limit]]\nname = \"per-token-tenant\"\nrate = \"1000000000/s burst 1000000000000\"\ncost = { write = 3 }\n\
         [[limit]]\nname = \"per-company\"\nkey = [\"company\"]\nrate = \"1000000000/s burst 1000000000000\"\n",
    );
    if quota {
        text.push_str(&bench_quota_toml(KEYS, COMPANIES));
    }
    Policy::from_toml(&text).expect("bench policy").0
}

fn bench(c: &mut Criterion) {
    let tokens: Vec<String> = (0..KEYS).map(bench_token).collect();
    let companies: Vec<String> = (0..COMPANIES).map(|c| format!("c{c}")).collect();
    let mut rng = SplitMix64::new(7);
    let seq: Vec<usize> = (0..SEQ).map(|_| rng.below(KEYS as u64) as usize).collect();
    let request = |i: usize, method: &'static str| {
        let k = seq[i & (SEQ - 1)];
        Request::new()
            .token(&tokens[k])
            .tenant("tenant-1")
            .company(&companies[k / (KEYS / COMPANIES)])
            .method(method)
            .at(NOW)
    };

    let mut g = c.benchmark_group("engine_decision");
    g.throughput(Throughput::Elements(1));

    let core = KeyedGcraLimiter::<u64>::new(
        tollgate_core::Gcra::new(Rate::from_nanos(1, 1, 1_000_000_000_000).expect("rate")),
        KEYS,
    );
    assert!(core.check_at(&1, NOW).expect("fits").allowed());
    g.bench_function("core_keyed_check", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(core.check_at(black_box(&(seq[i & (SEQ - 1)] as u64)), NOW))
        })
    });

    for (name, quota, method) in [
        ("engine_two_limits", false, "GET"),
        ("engine_two_limits_quota", true, "GET"),
        ("engine_two_limits_write", false, "POST"),
    ] {
        let e = Engine::new(policy(quota)).expect("engine");
        assert!(e.decide(&request(0, method)).allowed(), "{name}");
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let d = e.decide(black_box(&request(i, method)));
                debug_assert!(d.allowed());
                black_box(d)
            })
        });
    }
    for (name, quota) in [
        ("engine_two_limits_clock", false),
        ("engine_two_limits_quota_clock", true),
    ] {
        let e = Engine::new(policy(quota)).expect("engine");
        let now_request = |i: usize| {
            let k = seq[i & (SEQ - 1)];
            Request::new()
                .token(&tokens[k])
                .tenant("tenant-1")
                .company(&companies[k / (KEYS / COMPANIES)])
                .method("GET")
        };
        assert!(e.decide(&now_request(0)).allowed(), "{name}");
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let d = e.decide(black_box(&now_request(i)));
                debug_assert!(d.allowed());
                black_box(d)
            })
        });
    }

    // The same two limits hand-built from governor, as issue 18 describes: the
    // attributes ahashed into u64 keys, two keyed limiters with the default clock, and
    // for the quota a company counter in a DashMap checked against its cap.
    let quota = governor::Quota::per_second(NonZeroU32::new(1_000_000_000).expect("rate"))
        .allow_burst(NonZeroU32::new(u32::MAX).expect("burst"));
    let per_token_tenant = governor::RateLimiter::<u64, _, _>::dashmap(quota);
    let per_company = governor::RateLimiter::<u64, _, _>::dashmap(quota);
    let hasher = ahash::RandomState::new();
    let counters: dashmap::DashMap<String, AtomicU64> = companies
        .iter()
        .map(|c| (c.clone(), AtomicU64::new(0)))
        .collect();
    let cap = u64::MAX / 2;
    let hand_built = |i: usize, with_quota: bool| -> bool {
        let k = seq[i & (SEQ - 1)];
        let company = &companies[k / (KEYS / COMPANIES)];
        let tt = hasher.hash_one((&tokens[k], "tenant-1"));
        let ck = hasher.hash_one(company);
        if per_token_tenant.check_key(&tt).is_err() || per_company.check_key(&ck).is_err() {
            return false;
        }
        if with_quota {
            let Some(c) = counters.get(company) else {
                return false;
            };
            if c.fetch_add(1, Ordering::Relaxed) >= cap {
                return false;
            }
        }
        true
    };
    for (name, with_quota) in [
        ("governor_two_limits", false),
        ("governor_two_limits_quota", true),
    ] {
        assert!(hand_built(0, with_quota), "{name}");
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(hand_built(black_box(i), with_quota))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

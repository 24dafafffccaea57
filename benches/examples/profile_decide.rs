//! The decisions of `benches/engine.rs`, in a loop, for instruction counts under
//! callgrind (steadier than time on a shared machine):
//!
//! ```text
//! cargo build --release -p tollgate-benches --example profile_decide
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/profile_decide engine_two_limits 200000
//! callgrind_annotate /tmp/cg.out | head -40
//! ```
//!
//! Cases: `engine_two_limits`, `engine_two_limits_quota`, `governor_two_limits`,
//! `governor_two_limits_quota`, `core_keyed_check`, `none` (the set-up alone: subtract
//! it). Prints the number of allowed decisions (so nothing is optimized away).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use tollgate::{Engine, Policy, Request};
use tollgate_benches::{bench_quota_toml, bench_token, SplitMix64};
use tollgate_core::{KeyedGcraLimiter, Rate};

const KEYS: usize = 1_000;
const COMPANIES: usize = 100;
const SEQ: usize = 1 << 16;
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

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "engine_two_limits".into());
    let n: usize = args.next().map_or(200_000, |s| s.parse().expect("count"));
    let tokens: Vec<String> = (0..KEYS).map(bench_token).collect();
    let companies: Vec<String> = (0..COMPANIES).map(|c| format!("c{c}")).collect();
    let mut rng = SplitMix64::new(7);
    let seq: Vec<usize> = (0..SEQ).map(|_| rng.below(KEYS as u64) as usize).collect();
    let request = |i: usize| {
        let k = seq[i & (SEQ - 1)];
        Request::new()
            .token(&tokens[k])
            .tenant("tenant-1")
            .company(&companies[k / (KEYS / COMPANIES)])
            .method("GET")
            .at(NOW)
    };
    let mut allowed = 0usize;
    match case.as_str() {
        "none" => {}
        "engine_two_limits" | "engine_two_limits_quota" => {
            let e = Engine::new(policy(case.ends_with("quota"))).expect("engine");
            for i in 0..n {
                allowed += usize::from(e.decide(black_box(&request(i))).allowed());
            }
        }
        "core_keyed_check" => {
            let core = KeyedGcraLimiter::<u64>::new(
                tollgate_core::Gcra::new(Rate::from_nanos(1, 1, 1_000_000_000_000).expect("rate")),
                KEYS,
            );
            for i in 0..n {
                let k = seq[i & (SEQ - 1)] as u64;
                allowed += usize::from(core.check_at(black_box(&k), NOW).expect("fits").allowed());
            }
        }
        "governor_two_limits" | "governor_two_limits_quota" => {
            let with_quota = case.ends_with("quota");
            let quota = governor::Quota::per_second(NonZeroU32::new(1_000_000_000).expect("rate"))
                .allow_burst(NonZeroU32::new(u32::MAX).expect("burst"));
            let per_token_tenant = governor::RateLimiter::<u64, _, _>::dashmap(quota);
            let per_company = governor::RateLimiter::<u64, _, _>::dashmap(quota);
            let hasher = ahash::RandomState::new();
            let counters: dashmap::DashMap<String, AtomicU64> = companies
                .iter()
                .map(|c| (c.clone(), AtomicU64::new(0)))
                .collect();
            for i in 0..n {
                let k = seq[i & (SEQ - 1)];
                let company = &companies[k / (KEYS / COMPANIES)];
                let tt = hasher.hash_one((&tokens[k], "tenant-1"));
                let ck = hasher.hash_one(company);
                if per_token_tenant.check_key(&tt).is_err() || per_company.check_key(&ck).is_err() {
                    continue;
                }
                if with_quota {
                    let Some(c) = counters.get(company) else {
                        continue;
                    };
                    if c.fetch_add(1, Ordering::Relaxed) >= u64::MAX / 2 {
                        continue;
                    }
                }
                allowed += 1;
            }
        }
        other => panic!("unknown case {other}"),
    }
    println!("{case}: {allowed} of {n} allowed");
}

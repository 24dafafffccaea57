//! The decisions of `benches/shared.rs` (and the engine on `[state] shared`), in a loop,
//! for instruction counts under callgrind (issue #19's 1.2x target):
//!
//! ```text
//! cargo build --release -p tollgate-benches --example profile_shared
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/profile_shared core_shared 200000
//! ```
//!
//! Cases: `core_private`, `core_shared` (10,000 u64 keys, `KeyedGcraLimiter` against
//! `SharedKeyed`), `engine_private`, `engine_shared` (one limit per token and tenant,
//! 1,000 tokens), `none`. Run each case at two counts and subtract: the difference over
//! the count difference is the cost of one decision.

use std::hint::black_box;

use tollgate::{Engine, Policy, Request};
use tollgate_benches::{bench_token, SplitMix64};
use tollgate_core::{Gcra, KeyedGcraLimiter, Rate, SharedKeyed};

const KEYS: u64 = 10_000;
const TOKENS: usize = 1_000;
const SEQ: usize = 1 << 16;
const NOW: u64 = 1_800_000_000_000_000_000;

fn rate() -> Rate {
    Rate::from_nanos(1, 1, 1_000_000_000_000).expect("rate")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "core_shared".into());
    let n: usize = args.next().map_or(200_000, |s| s.parse().expect("count"));
    let mut rng = SplitMix64::new(7);
    let seq: Vec<u64> = (0..SEQ).map(|_| rng.below(KEYS)).collect();
    let dir = std::env::temp_dir().join(format!("tollgate-profile-shared-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut allowed = 0usize;
    match case.as_str() {
        "none" => {}
        "core_private" | "core_shared" => {
            let private = KeyedGcraLimiter::<u64>::new(Gcra::new(rate()), KEYS as usize);
            let shared: SharedKeyed<u64, Gcra> =
                SharedKeyed::open(dir.join("core"), Gcra::new(rate()), KEYS as usize)
                    .expect("region");
            for k in 0..KEYS {
                private.check_at(&k, NOW).expect("fits");
                shared.check_at(&k, NOW).expect("fits");
            }
            for i in 0..n {
                let k = seq[i & (SEQ - 1)];
                let d = if case == "core_shared" {
                    shared.check_at(black_box(&k), NOW)
                } else {
                    private.check_at(black_box(&k), NOW)
                };
                allowed += usize::from(d.expect("fits").allowed());
            }
        }
        "engine_private" | "engine_shared" => {
            let mut text = String::from("version = 1\n");
            if case == "engine_shared" {
                text.push_str(&format!(
                    "[state]\nshared = {:?}\n",
                    dir.join("gw").display().to_string()
                ));
            }
            text.push_str(
                "[[limit]]\nname = \"per-token-tenant\"\nrate = \"1000000000/s burst 1000000000000\"\n",
            );
            let e = Engine::new(Policy::from_toml(&text).expect("policy").0).expect("engine");
            let tokens: Vec<String> = (0..TOKENS).map(bench_token).collect();
            for i in 0..n {
                let t = &tokens[seq[i & (SEQ - 1)] as usize % TOKENS];
                let r = Request::new()
                    .token(t)
                    .tenant("tenant-1")
                    .method("GET")
                    .at(NOW);
                allowed += usize::from(e.decide(black_box(&r)).allowed());
            }
        }
        other => panic!("unknown case {other}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{case}: {allowed} of {n} allowed");
}

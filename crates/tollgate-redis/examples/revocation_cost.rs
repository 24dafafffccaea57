//! What sharing revocations through Redis costs a decision: `decide` on one thread,
//! 1,024 tokens in turn, without a sync and with `RedisRevocations` (its thread polling
//! a local redis-server), with nothing and with one token revoked; then tokens that all
//! share the revoked one's filter bit, so every decision looks the set up (the fleet
//! fingerprint is a SipHash-128, the engine's own hash is cheaper).
//!
//! `REDIS_SERVER=/usr/bin/redis-server cargo run --release -p tollgate-redis --example revocation_cost`

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::{Engine, Policy, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{RedisRevocations, RedisStore, RevocationOptions};

const POLICY: &str =
    "version = 1\n[[limit]]\nname = \"t\"\nkey = [\"token\"]\nrate = \"1000000000/s\"\n";

fn run(e: &Engine, tokens: &[String], label: &str) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let n = 2_000_000;
        let t = Instant::now();
        for i in 0..n {
            std::hint::black_box(e.decide(&Request::new().token(&tokens[i & 1023])));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("{label}: {best:.1} ns/decision (best of 5)");
}

fn main() {
    let Some(server) = RedisServer::start() else {
        eprintln!("no redis-server (set REDIS_SERVER)");
        return;
    };
    // Distinct first bytes: distinct filter bits, as real tokens have.
    let spread: Vec<String> = (0..1024).map(|i| format!("{i:08}-tok-{i:08}")).collect();
    // One length, one head, one tail: one filter bit for all.
    let same_bit: Vec<String> = (0..1024).map(|i| format!("tok-{i:08}-abcdefgh")).collect();
    let (policy, _) = Policy::from_toml(POLICY).unwrap();
    let fleet = || {
        let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
        let sync = RedisRevocations::new(
            store,
            RevocationOptions::default().poll(Duration::from_millis(100)),
        );
        Engine::builder(policy.clone())
            .revocation_sync(sync as Arc<dyn tollgate::RevocationSync>)
            .build()
            .unwrap()
    };
    for (tokens, what) in [(&spread, "distinct bits"), (&same_bit, "one bit")] {
        let plain = Engine::new(policy.clone()).unwrap();
        run(&plain, tokens, &format!("{what}, no sync, nothing revoked"));
        plain.revoke(&tokens[1]);
        run(&plain, tokens, &format!("{what}, no sync, one revoked"));
        let e = fleet();
        run(&e, tokens, &format!("{what}, redis sync, nothing revoked"));
        e.revoke(&tokens[1]);
        run(&e, tokens, &format!("{what}, redis sync, one revoked"));
    }
}

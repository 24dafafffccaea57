//! Scenario 6: resident memory per key at one million `u64` keys, tollgate and governor.
//!
//! The parent process re-executes this binary once per contender (the environment
//! variable [`CONTENDER_VAR`] names it), so the two limiters' allocations never share a
//! heap. Each child reads `VmRSS` from `/proc/self/status`, builds its keyed limiter,
//! inserts the keys `0..1_000_000` (one allowed check each), reads `VmRSS` again and
//! prints the difference. The parent prints a markdown table of bytes per key, plus
//! tollgate's own accounting (`store().memory_bytes()`) for comparison.
//!
//! * tollgate: `KeyedGcraLimiter::<u64>` with capacity 1,000,000, `check_at(&key, now)`.
//! * governor: `RateLimiter::dashmap_with_clock(quota, FakeRelativeClock)` (the default
//!   `DashMap` store and hasher), `check_key(&key)`.
//!
//! Quota (irrelevant to memory, but the same on both sides): one per nanosecond, burst
//! 1,000, time frozen, so every insertion is an allowed check.
//!
//! `VmRSS` counts pages, so the figure includes what each allocator keeps resident.
//! For governor that is the `DashMap` shards' spare capacity after their last growth:
//! each shard is a hashbrown table of 16-byte entries plus one control byte, grown by
//! doubling at 7/8 load, so its bytes per key moves between about 19 and 39 depending on
//! where the key count falls between two doublings (1,000,000 keys on 8 shards, as on a
//! 2-core machine, lands just after one: 262,144 buckets per shard). tollgate's table is
//! sized once from the capacity, so its figure does not move with the key count.
//!
//! Run: `cargo bench -p tollgate-benches --bench resident` (Linux only).

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;
use tollgate_benches::vm_rss_bytes;
use tollgate_core::{Gcra, KeyedGcraLimiter, Rate};

/// Names the contender a child process measures.
const CONTENDER_VAR: &str = "TOLLGATE_RESIDENT_CONTENDER";
const KEYS: u64 = 1_000_000;
const BURST: u32 = 1_000;
/// tollgate's frozen timestamp: 1 s.
const NOW: u64 = 1_000_000_000;

const CONTENDERS: [&str; 2] = ["tollgate", "governor"];

type GovernorKeyed = governor::RateLimiter<
    u64,
    DashMapStateStore<u64>,
    FakeRelativeClock,
    NoOpMiddleware<<FakeRelativeClock as governor::clock::Clock>::Instant>,
>;

/// What one child measured.
#[derive(Debug, Default)]
struct Measured {
    rss_delta_bytes: u64,
    memory_bytes: Option<u64>,
}

fn main() {
    match std::env::var(CONTENDER_VAR) {
        Ok(contender) => child(&contender),
        Err(_) => parent(),
    }
}

fn child(contender: &str) {
    let before = vm_rss_bytes().expect("VmRSS in /proc/self/status (Linux only)");
    match contender {
        "tollgate" => {
            let rate = Rate::from_nanos(1, 1, u64::from(BURST)).expect("valid rate");
            let limiter = KeyedGcraLimiter::<u64>::new(Gcra::new(rate), KEYS as usize);
            for key in 0..KEYS {
                let d = limiter.check_at(&key, NOW).expect("room for every key");
                assert!(d.allowed());
            }
            assert_eq!(limiter.len() as u64, KEYS);
            let after = vm_rss_bytes().expect("VmRSS");
            println!("rss_delta_bytes={}", after.saturating_sub(before));
            println!("memory_bytes={}", limiter.store().memory_bytes());
            black_box(&limiter);
        }
        "governor" => {
            let quota = Quota::with_period(Duration::from_nanos(1))
                .expect("non-zero period")
                .allow_burst(std::num::NonZeroU32::new(BURST).expect("non-zero"));
            let limiter: GovernorKeyed =
                governor::RateLimiter::dashmap_with_clock(quota, FakeRelativeClock::default());
            for key in 0..KEYS {
                assert!(limiter.check_key(&key).is_ok());
            }
            assert_eq!(limiter.len() as u64, KEYS);
            let after = vm_rss_bytes().expect("VmRSS");
            println!("rss_delta_bytes={}", after.saturating_sub(before));
            black_box(&limiter);
        }
        other => panic!("{CONTENDER_VAR}={other}: expected one of {CONTENDERS:?}"),
    }
}

fn parent() {
    let exe = std::env::current_exe().expect("path of this bench binary");
    let results: Vec<(&str, Measured)> = CONTENDERS
        .iter()
        .map(|&name| {
            let out = Command::new(&exe)
                .env(CONTENDER_VAR, name)
                .output()
                .expect("re-execute the bench binary");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name} child failed ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            (name, parse(&stdout))
        })
        .collect();

    let per_key = |bytes: u64| bytes as f64 / KEYS as f64;
    let governor = results
        .iter()
        .find(|(name, _)| *name == "governor")
        .map(|(_, m)| per_key(m.rss_delta_bytes))
        .expect("governor measured");

    println!("Resident memory at {KEYS} u64 keys (VmRSS delta / keys, one process each):");
    println!();
    println!("| contender | resident bytes/key | ratio vs governor |");
    println!("|---|---:|---:|");
    for (name, m) in &results {
        let b = per_key(m.rss_delta_bytes);
        println!("| {name} | {b:.1} | {:.2}x |", b / governor);
    }
    println!();
    for (name, m) in &results {
        if let Some(bytes) = m.memory_bytes {
            println!(
                "{name} store().memory_bytes(): {bytes} bytes = {:.1} bytes/key",
                per_key(bytes)
            );
        }
    }
}

fn parse(stdout: &str) -> Measured {
    let mut m = Measured::default();
    let mut seen_rss = false;
    for line in stdout.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v: u64 = v.trim().parse().expect("a number");
        match k.trim() {
            "rss_delta_bytes" => {
                m.rss_delta_bytes = v;
                seen_rss = true;
            }
            "memory_bytes" => m.memory_bytes = Some(v),
            _ => {}
        }
    }
    assert!(seen_rss, "child printed no rss_delta_bytes:\n{stdout}");
    m
}

//! Helpers shared by the bench targets of this package:
//!
//! * `tollgate.rs` — the criterion entry point (direct, keyed and two-thread checks,
//!   tollgate and governor side by side; see its top-level docs);
//! * `resident.rs` — resident bytes per key at one million `u64` keys, one child
//!   process per contender;
//! * `quota.rs` — the quota ledger's `record` against a bare atomic increment plus the
//!   company lookup, in memory and with its SQLite journal in both durability modes.
//!
//! Nothing here is timed: key sequences are generated before a benchmark starts.

/// The splitmix64 generator: tiny, fast, and good enough to spread keys uniformly.
/// Deterministic for a given seed, so every run (and both contenders) sees the same keys.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (Lemire's multiply-shift; the bias is below `n / 2^64`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Length of every precomputed key sequence: 4 Mi entries (32 MiB), a power of two so a
/// benchmark indexes it cyclically with a mask.
pub const SEQ_LEN: usize = 1 << 22;

/// `SEQ_LEN - 1`: `seq[i & SEQ_MASK]` walks a sequence cyclically.
pub const SEQ_MASK: usize = SEQ_LEN - 1;

/// `SEQ_LEN` keys drawn uniformly from `base..base + n_keys`.
pub fn uniform_keys(base: u64, n_keys: u64, seed: u64) -> Vec<u64> {
    assert!(n_keys > 0, "need at least one key");
    let mut rng = SplitMix64::new(seed);
    (0..SEQ_LEN).map(|_| base + rng.below(n_keys)).collect()
}

/// This process's resident set size in bytes (`VmRSS` of `/proc/self/status`), or `None`
/// where that file does not exist (not Linux).
pub fn vm_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    let unit = fields.next().unwrap_or("kB");
    match unit {
        "kB" => Some(value * 1024),
        "B" => Some(value),
        _ => None,
    }
}

/// Runs `work(thread_index)` on `threads` threads that start together (they meet at a
/// barrier) and returns, per thread, when it started, when it finished and what `work`
/// returned. Spawning and joining are not inside any span.
pub fn timed_threads<F>(
    threads: usize,
    work: F,
) -> Vec<(std::time::Instant, std::time::Instant, u64)>
where
    F: Fn(usize) -> u64 + Sync,
{
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    let start = std::time::Instant::now();
                    let out = work(t);
                    (start, std::time::Instant::now(), out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    })
}

/// The wall time of `spans` (last finish minus first start) divided by the number of
/// threads: time per operation across all threads when each ran the same count.
pub fn wall_per_thread(
    spans: &[(std::time::Instant, std::time::Instant, u64)],
) -> std::time::Duration {
    let first_start = spans.iter().map(|s| s.0).min().expect("threads ran");
    let last_end = spans.iter().map(|s| s.1).max().expect("threads ran");
    (last_end - first_start) / u32::try_from(spans.len()).expect("few threads")
}

/// The API key of user `i` in the engine benches: shaped like a UUID, as real keys are.
pub fn bench_token(i: usize) -> String {
    format!("{i:08x}-5b7d-4e21-9a0b-6c8d2f1e4a77")
}

/// The `[quota]` section of the engine benches: a default plan too large to reach (the
/// benches measure the hard-cap check, not refusals) and `keys` API keys over
/// `companies` companies `c0`, `c1`, ..., user `u{i}` holding [`bench_token`]`(i)`.
pub fn bench_quota_toml(keys: usize, companies: usize) -> String {
    let mut text = String::from(
        "[quota]\nhard_cap_percent = 150\n[[quota.plans]]\nname = \"big\"\ncalls = 1000000000000000\ndefault = true\n",
    );
    for c in 0..companies {
        text.push_str(&format!("[[quota.companies]]\nid = \"c{c}\"\nusers = ["));
        for u in 0..keys / companies {
            let i = c * (keys / companies) + u;
            text.push_str(&format!(
                "{{ id = \"u{i}\", keys = [\"{}\"] }},",
                bench_token(i)
            ));
        }
        text.push_str("]\n");
    }
    text
}

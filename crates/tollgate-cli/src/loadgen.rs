//! `tollgate bench`: the performance team's load generator.
//!
//! Threads x keys x algorithm x key distribution: every thread decides requests through
//! one shared [`Engine`] whose single limit keys on the token, drawing tokens from a
//! precomputed sequence (uniform, or Zipf with exponent `s` over the keys), for a fixed
//! duration. Reports ns per decision (wall time / decisions, per thread), decisions per
//! second (all threads), and the p50 / p99 latency of individually timed decisions (one
//! decision in 64 is timed, so timing does not dominate).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use tollgate::engine::Request;
use tollgate::policy::{AlgorithmKind, Attr, LimitSpec, Policy};
use tollgate::Engine;

/// How tokens are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Key of rank k with probability proportional to 1 / k^s.
    Zipf(f64),
}

/// A load to generate.
#[derive(Clone, Debug)]
pub struct Load {
    /// Threads deciding at once.
    pub threads: usize,
    /// Distinct keys (tokens).
    pub keys: usize,
    /// The limit's algorithm.
    pub algorithm: AlgorithmKind,
    /// The key distribution.
    pub distribution: Distribution,
    /// How long to run.
    pub duration: Duration,
    /// The limit's rate, e.g. "1000/s".
    pub rate: String,
}

/// What a run measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// Threads.
    pub threads: usize,
    /// Keys.
    pub keys: usize,
    /// Algorithm name.
    pub algorithm: String,
    /// Distribution, e.g. "uniform" or "zipf(1.1)".
    pub distribution: String,
    /// Decisions made.
    pub decisions: u64,
    /// Of which allowed.
    pub allowed: u64,
    /// Seconds of wall time.
    pub seconds: f64,
    /// Decisions per second, all threads.
    pub decisions_per_second: f64,
    /// Wall nanoseconds per decision and thread.
    pub ns_per_decision: f64,
    /// Median latency of timed decisions, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
}

const SEQ: usize = 1 << 20;

/// A splitmix64 step.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `SEQ` key indices drawn from `dist` over `keys` keys.
fn sequence(dist: Distribution, keys: usize, seed: u64) -> Vec<u32> {
    let mut s = seed;
    let uniform = |s: &mut u64| (next(s) >> 11) as f64 / (1u64 << 53) as f64;
    match dist {
        Distribution::Uniform => (0..SEQ)
            .map(|_| ((u128::from(next(&mut s)) * keys as u128) >> 64) as u32)
            .collect(),
        Distribution::Zipf(exp) => {
            let mut cdf = Vec::with_capacity(keys);
            let mut total = 0.0;
            for k in 1..=keys {
                total += 1.0 / (k as f64).powf(exp);
                cdf.push(total);
            }
            (0..SEQ)
                .map(|_| {
                    let u = uniform(&mut s) * total;
                    cdf.partition_point(|&c| c < u).min(keys - 1) as u32
                })
                .collect()
        }
    }
}

/// Runs the load.
pub fn run(load: &Load) -> Result<LoadReport, String> {
    if load.threads == 0 || load.keys == 0 {
        return Err("threads and keys must be at least 1".into());
    }
    let rate = load
        .rate
        .parse()
        .map_err(|e| format!("--rate {:?}: {e}", load.rate))?;
    let mut limit = LimitSpec::new("bench", rate);
    limit.key = vec![Attr::Token];
    limit.algorithm = load.algorithm;
    limit.capacity = load.keys;
    let policy = Policy {
        limits: vec![limit],
        ..Policy::default()
    };
    let engine = Engine::new(policy).map_err(|e| e.to_string())?;
    let tokens: Vec<String> = (0..load.keys).map(|i| format!("token-{i:08}")).collect();
    let sequences: Vec<Vec<u32>> = (0..load.threads)
        .map(|t| sequence(load.distribution, load.keys, 0x5EED + t as u64))
        .collect();
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(load.threads + 1);
    let results: Vec<(u64, u64, Vec<u64>, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..load.threads)
            .map(|t| {
                let (engine, tokens, seq, stop, barrier) =
                    (&engine, &tokens, &sequences[t], &stop, &barrier);
                s.spawn(move || {
                    let mut samples = Vec::with_capacity(1 << 16);
                    let (mut n, mut allowed) = (0u64, 0u64);
                    barrier.wait();
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            let k = seq[n as usize & (SEQ - 1)] as usize;
                            let r = Request::new().token(&tokens[k]);
                            let timed = n % 64 == 0;
                            let t0 = timed.then(Instant::now);
                            let d = engine.decide(&r);
                            if let Some(t0) = t0 {
                                samples.push(t0.elapsed().as_nanos() as u64);
                            }
                            allowed += u64::from(d.allowed());
                            n += 1;
                        }
                    }
                    (n, allowed, samples, start.elapsed())
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(load.duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let decisions: u64 = results.iter().map(|r| r.0).sum();
    let allowed: u64 = results.iter().map(|r| r.1).sum();
    let seconds = results
        .iter()
        .map(|r| r.3.as_secs_f64())
        .fold(0.0, f64::max);
    let mut samples: Vec<u64> = results.into_iter().flat_map(|r| r.2).collect();
    samples.sort_unstable();
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(LoadReport {
        threads: load.threads,
        keys: load.keys,
        algorithm: match load.algorithm {
            AlgorithmKind::Gcra => "gcra".into(),
            AlgorithmKind::SlidingWindow => "sliding_window".into(),
        },
        distribution: match load.distribution {
            Distribution::Uniform => "uniform".into(),
            Distribution::Zipf(s) => format!("zipf({s})"),
        },
        decisions,
        allowed,
        seconds,
        decisions_per_second: decisions as f64 / seconds.max(1e-9),
        ns_per_decision: seconds * 1e9 * load.threads as f64 / decisions.max(1) as f64,
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_and_uniform_spreads() {
        let z = sequence(Distribution::Zipf(1.1), 1000, 1);
        let head = z.iter().filter(|&&k| k < 10).count();
        assert!(head > SEQ / 3, "{head}");
        assert!(z.iter().all(|&k| k < 1000));
        let u = sequence(Distribution::Uniform, 1000, 1);
        let head = u.iter().filter(|&&k| k < 10).count();
        assert!(head < SEQ / 50, "{head}");
    }

    #[test]
    fn a_short_run_reports_consistent_numbers() {
        let r = run(&Load {
            threads: 2,
            keys: 100,
            algorithm: AlgorithmKind::SlidingWindow,
            distribution: Distribution::Zipf(1.0),
            duration: Duration::from_millis(100),
            rate: "10/s".into(),
        })
        .unwrap();
        assert!(r.decisions > 0 && r.allowed <= r.decisions);
        // 100 keys x 10 per second window: at most 100 x 10 x (1 + elapsed) allowed.
        assert!(r.allowed <= 100 * 10 * 2, "{r:?}");
        assert!(r.p50_ns <= r.p99_ns);
    }
}

//! `tollgate bench`: the performance team's load generator.
//!
//! Threads decide requests through one shared [`Engine`] (usually the engine of the
//! team's own policy, built with what-if semantics: no journal, no remote backend) for a
//! fixed duration or a fixed number of requests.
//!
//! # Requests
//!
//! [`plan`] lists the attributes the policy's limits (and its quota) are keyed on and
//! gives each a set of values and a [`Distribution`]:
//!
//! * the attribute the quota is keyed on takes the policy's own users' keys
//!   (`quota.companies[..].users[..].keys`, disabled users left out), so that the ledger
//!   knows them; `--keys token=N` takes the first `N` of them;
//! * any other attribute takes `N` generated values (`tenant-000000`, ...), `N` from
//!   [`KeySpec`] (`--keys 1000,tenant=100,client=50000`; default [`DEFAULT_KEYS`]).
//!
//! Each thread draws every attribute independently from a precomputed sequence of
//! indices ([`SEQ`] long, a different seed per thread and attribute), uniform or Zipf
//! (rank `k` with probability proportional to `1 / k^s`). Requests use the engine's
//! clock, so rate limits, revocations and the quota act as they would in production:
//! the report's outcomes say how many requests each refused.
//!
//! # Latency
//!
//! Reading the clock costs about as much as a decision (tens of nanoseconds), so timing
//! every decision would measure the clock. Instead each thread times **batches** of `B`
//! consecutive decisions (`--batch`, default [`DEFAULT_BATCH`]), subtracts the clock's
//! own overhead (the median of 10,001 back-to-back readings, measured at start and
//! reported), and records the batch's mean per-decision time `B` times in an HDR
//! histogram (the `hdrhistogram` crate: 3 significant digits from 1 ns to an hour, in
//! constant memory, and mergeable across threads). The percentiles are thus of
//! per-decision times averaged over `B` decisions: a single slow decision shows
//! diluted by `B`. `--batch 1` times every decision on its own (overhead still
//! subtracted; the clock's resolution then limits precision). The timed region covers
//! building the [`Request`] from precomputed values and [`Engine::decide`]; the
//! histogram is written outside it.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tollgate::engine::Request;
use tollgate::policy::{Attr, Field, Policy};
use tollgate::Engine;

use crate::replay::{outcome_index, Outcomes, OUTCOMES};

/// The version of the [`LoadReport`] JSON schema: it changes when a field is removed
/// or changes meaning; fields may be added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// Generated values per attribute when [`KeySpec`] names no count.
pub const DEFAULT_KEYS: usize = 10_000;

/// The most values one attribute may have.
pub const MAX_KEYS: usize = 10_000_000;

/// Decisions timed together by default.
pub const DEFAULT_BATCH: usize = 32;

/// The length of each precomputed index sequence (a power of two).
pub const SEQ: usize = 1 << 18;

/// The shape of a distribution, as `--distribution` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DistributionKind {
    /// Every value equally likely.
    Uniform,
    /// A few hot values: rank k with probability proportional to 1 / k^s
    /// (s: --zipf-exponent).
    Zipf,
}

impl FromStr for DistributionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(DistributionKind::Uniform),
            "zipf" => Ok(DistributionKind::Zipf),
            _ => Err(format!(
                "unknown distribution {s:?} (expected uniform or zipf)"
            )),
        }
    }
}

/// How values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Every value equally likely.
    Uniform,
    /// Value of rank k with probability proportional to 1 / k^s.
    Zipf(f64),
}

impl Distribution {
    /// `kind` with the Zipf exponent `s` (positive and finite).
    pub fn new(kind: DistributionKind, s: f64) -> Result<Self, String> {
        match kind {
            DistributionKind::Uniform => Ok(Distribution::Uniform),
            DistributionKind::Zipf if s > 0.0 && s.is_finite() && s <= 100.0 => {
                Ok(Distribution::Zipf(s))
            }
            DistributionKind::Zipf => Err(format!(
                "the Zipf exponent must be above 0 and at most 100, not {s}"
            )),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => f.write_str("uniform"),
            Distribution::Zipf(s) => write!(f, "zipf({s})"),
        }
    }
}

/// Value counts per attribute, as `--keys` writes them: comma-separated items, each
/// `N` (the count of every attribute not named), `ATTR=N`, or `ATTR=N:DIST` (DIST
/// `uniform` or `zipf`, for that attribute only). Example: `1000,token=30:zipf,client=50000`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// The count of attributes not named.
    pub default: Option<usize>,
    /// Per attribute: name, count, distribution.
    pub attrs: Vec<(String, usize, Option<DistributionKind>)>,
}

fn count(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a count of keys"))?;
    if n == 0 || n > MAX_KEYS {
        return Err(format!("{n} keys: a count is 1 to {MAX_KEYS}"));
    }
    Ok(n)
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut spec = KeySpec::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                None => {
                    if spec.default.replace(count(item)?).is_some() {
                        return Err("more than one default count".into());
                    }
                }
                Some((name, rest)) => {
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(format!("{item:?}: no attribute name before '='"));
                    }
                    if spec.attrs.iter().any(|(n, _, _)| n == name) {
                        return Err(format!("attribute {name:?} named twice"));
                    }
                    let (n, dist) = match rest.split_once(':') {
                        Some((n, d)) => (count(n)?, Some(d.trim().parse()?)),
                        None => (count(rest)?, None),
                    };
                    spec.attrs.push((name.to_owned(), n, dist));
                }
            }
        }
        Ok(spec)
    }
}

/// One attribute of the generated requests.
#[derive(Clone, Debug)]
pub struct AttrLoad {
    /// The attribute.
    pub attr: Attr,
    /// Its values.
    pub values: Vec<String>,
    /// How they are drawn.
    pub distribution: Distribution,
    /// Whether the values are the policy's own keys (the quota's attribute).
    pub from_policy: bool,
}

/// The attributes to generate for `policy`: every attribute a limit or the quota is
/// keyed on except `method` (see [`Load::method`]), in policy order; counts from
/// `keys`, each drawn from `distribution` unless `keys` names another (with exponent
/// `zipf_exponent`).
pub fn plan(
    policy: &Policy,
    keys: &KeySpec,
    distribution: DistributionKind,
    zipf_exponent: f64,
) -> Result<Vec<AttrLoad>, String> {
    let mut attrs: Vec<Attr> = Vec::new();
    let quota_key = policy.quota.as_ref().map(|q| q.key.clone());
    for a in policy
        .limits
        .iter()
        .flat_map(|l| l.key.iter().cloned())
        .chain(quota_key.clone())
    {
        if a != Attr::Method && !attrs.contains(&a) {
            attrs.push(a);
        }
    }
    for (name, _, _) in &keys.attrs {
        if !attrs.iter().any(|a| a.to_string() == *name) {
            let known: Vec<String> = attrs.iter().map(ToString::to_string).collect();
            return Err(format!(
                "--keys: no limit or quota of the policy is keyed on {name:?} (they are keyed on: {})",
                if known.is_empty() { "nothing".to_owned() } else { known.join(", ") }
            ));
        }
    }
    let policy_keys: Vec<&str> = policy
        .quota
        .iter()
        .flat_map(|q| &q.companies)
        .flat_map(|c| &c.users)
        .filter(|u| !u.disabled)
        .flat_map(|u| u.keys.iter().map(String::as_str))
        .collect();
    attrs
        .into_iter()
        .map(|attr| {
            let name = attr.to_string();
            let named = keys.attrs.iter().find(|(n, _, _)| *n == name);
            let kind = named.and_then(|(_, _, d)| *d).unwrap_or(distribution);
            let distribution = Distribution::new(kind, zipf_exponent)?;
            let asked = named.map(|(_, n, _)| *n);
            let (values, from_policy) =
                if Some(&attr) == quota_key.as_ref() && !policy_keys.is_empty() {
                    let n = asked.unwrap_or(policy_keys.len());
                    if n > policy_keys.len() {
                        return Err(format!(
                        "--keys {name}={n}: the quota is keyed on {name} and the policy's users \
                         have {} keys; the ledger refuses or ignores any other",
                        policy_keys.len()
                    ));
                    }
                    (
                        policy_keys[..n].iter().map(|k| (*k).to_owned()).collect(),
                        true,
                    )
                } else {
                    let n = asked.or(keys.default).unwrap_or(DEFAULT_KEYS);
                    ((0..n).map(|i| format!("{name}-{i:06}")).collect(), false)
                };
            Ok(AttrLoad {
                attr,
                values,
                distribution,
                from_policy,
            })
        })
        .collect()
}

/// When a run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many decisions in all (shared among the threads).
    Requests(u64),
}

/// A load to generate.
#[derive(Clone, Debug)]
pub struct Load {
    /// Threads deciding at once.
    pub threads: usize,
    /// The attributes of the requests.
    pub attributes: Vec<AttrLoad>,
    /// The HTTP method of every request (it picks the class and so the cost).
    pub method: Option<String>,
    /// When to stop.
    pub stop: Stop,
    /// Decisions timed together.
    pub batch: usize,
}

/// One attribute, as reported.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AttrReport {
    /// The attribute's name.
    pub attribute: String,
    /// Distinct values.
    pub keys: usize,
    /// `uniform` or `zipf(S)`.
    pub distribution: String,
    /// `policy` (the policy's own keys) or `generated`.
    pub values: &'static str,
}

/// Per-decision latency, nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Latency {
    /// The smallest batch mean.
    pub min: u64,
    /// The mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// The largest batch mean.
    pub max: u64,
}

/// What a run measured. Fields serialize in this order.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The policy file, if the load ran on one.
    pub policy: Option<String>,
    /// Threads.
    pub threads: usize,
    /// The method of every request.
    pub method: Option<String>,
    /// The requests' attributes.
    pub attributes: Vec<AttrReport>,
    /// Decisions made, all threads.
    pub decisions: u64,
    /// Decisions by outcome.
    pub outcomes: Outcomes,
    /// Wall seconds (the slowest thread's).
    pub seconds: f64,
    /// Decisions per second, all threads.
    pub decisions_per_second: f64,
    /// Decisions timed together (see the [module docs](self#latency)).
    pub batch: usize,
    /// The clock overhead subtracted from every timed batch, ns.
    pub clock_overhead_ns: u64,
    /// Per-decision latency: batch means, one sample per decision.
    pub latency_ns: Latency,
}

/// A splitmix64 step.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `SEQ` indices drawn from `dist` over `keys` values.
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

/// The median cost of reading the clock, ns: what one timed interval adds.
pub fn clock_overhead() -> u64 {
    let mut d: Vec<u64> = (0..10_001)
        .map(|_| {
            let t0 = Instant::now();
            let t1 = Instant::now();
            t1.duration_since(t0).as_nanos() as u64
        })
        .collect();
    let mid = d.len() / 2;
    *d.select_nth_unstable(mid).1
}

/// What one thread measured.
struct ThreadResult {
    decisions: u64,
    outcomes: [u64; OUTCOMES.len()],
    histogram: Histogram<u64>,
    elapsed: Duration,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs `load` against `engine`.
pub fn run(engine: &Engine, load: &Load) -> Result<LoadReport, String> {
    if load.threads == 0 || load.threads > 1024 {
        return Err("--threads: 1 to 1024".into());
    }
    if load.batch == 0 || load.batch > 1_000_000 {
        return Err("--batch: 1 to 1000000".into());
    }
    if load.attributes.iter().any(|a| a.values.is_empty()) {
        return Err("an attribute has no values".into());
    }
    // Per attribute: the engine field it sets, or its name among the host attributes.
    let slots: Vec<(Option<Field>, String)> = load
        .attributes
        .iter()
        .map(|a| {
            let name = a.attr.to_string();
            (Field::named(name.as_bytes()), name)
        })
        .collect();
    let hosts = slots.iter().filter(|s| s.0.is_none()).count();
    let sequences: Vec<Vec<Vec<u32>>> = (0..load.threads)
        .map(|t| {
            load.attributes
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let seed = 0x5EED ^ ((t as u64) << 32) ^ (i as u64).wrapping_mul(0x9E37_79B9);
                    sequence(a.distribution, a.values.len(), seed)
                })
                .collect()
        })
        .collect();
    let overhead = clock_overhead();
    let share = |t: usize| match load.stop {
        Stop::Requests(n) => {
            let (q, r) = (n / load.threads as u64, n % load.threads as u64);
            q + u64::from((t as u64) < r)
        }
        Stop::After(_) => u64::MAX,
    };
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(load.threads + 1);
    let method = load.method.as_deref();
    let results: Vec<ThreadResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..load.threads)
            .map(|t| {
                let (seqs, stop, barrier, slots) = (&sequences[t], &stop, &barrier, &slots);
                let quota = share(t);
                s.spawn(move || {
                    let mut hist = histogram();
                    let mut outcomes = [0u64; OUTCOMES.len()];
                    let mut host: Vec<(&str, &str)> = Vec::with_capacity(hosts);
                    let mut n = 0u64;
                    barrier.wait();
                    let start = Instant::now();
                    while n < quota && !stop.load(Ordering::Relaxed) {
                        let b = (quota - n).min(load.batch as u64);
                        let t0 = Instant::now();
                        for _ in 0..b {
                            let at = n as usize & (SEQ - 1);
                            let mut r = Request::new();
                            r.method = method;
                            host.clear();
                            for ((a, seq), (field, name)) in
                                load.attributes.iter().zip(seqs).zip(slots)
                            {
                                let v = a.values[seq[at] as usize].as_str();
                                match field {
                                    Some(f) => r.set_field(*f, v),
                                    None => host.push((name.as_str(), v)),
                                }
                            }
                            r.attrs = &host;
                            let d = engine.decide(&r);
                            outcomes[outcome_index(d.reason)] += 1;
                            n += 1;
                        }
                        let took = (t0.elapsed().as_nanos() as u64).saturating_sub(overhead);
                        hist.saturating_record_n((took + b / 2) / b, b);
                    }
                    ThreadResult {
                        decisions: n,
                        outcomes,
                        histogram: hist,
                        elapsed: start.elapsed(),
                    }
                })
            })
            .collect();
        barrier.wait();
        if let Stop::After(d) = load.stop {
            // Sleep in short steps so that a run whose threads all finish early (they
            // cannot, without a request count) is not held up, and drain the engine's
            // events so its channel does not stay full.
            let end = Instant::now() + d;
            while let Some(left) = end.checked_duration_since(Instant::now()) {
                std::thread::sleep(left.min(Duration::from_millis(50)));
                let _ = engine.drain_events();
                if left.is_zero() {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let _ = engine.drain_events();
    let mut hist = histogram();
    let mut outcomes = [0u64; OUTCOMES.len()];
    let mut decisions = 0;
    let mut seconds: f64 = 0.0;
    for r in &results {
        hist.add(&r.histogram).map_err(|e| e.to_string())?;
        for (o, n) in outcomes.iter_mut().zip(r.outcomes) {
            *o += n;
        }
        decisions += r.decisions;
        seconds = seconds.max(r.elapsed.as_secs_f64());
    }
    Ok(LoadReport {
        schema_version: SCHEMA_VERSION,
        policy: None,
        threads: load.threads,
        method: load.method.clone(),
        attributes: load
            .attributes
            .iter()
            .map(|a| AttrReport {
                attribute: a.attr.to_string(),
                keys: a.values.len(),
                distribution: a.distribution.to_string(),
                values: if a.from_policy { "policy" } else { "generated" },
            })
            .collect(),
        decisions,
        outcomes: Outcomes::from_counts(&outcomes),
        seconds,
        decisions_per_second: decisions as f64 / seconds.max(1e-9),
        batch: load.batch,
        clock_overhead_ns: overhead,
        latency_ns: Latency {
            min: hist.min(),
            mean: hist.mean(),
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            p99_9: hist.value_at_quantile(0.999),
            max: hist.max(),
        },
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
    fn key_specs_parse_and_refuse_nonsense() {
        let k: KeySpec = "1000, token=30:zipf,client=50_000".parse().unwrap();
        assert_eq!(k.default, Some(1000));
        assert_eq!(
            k.attrs,
            vec![
                ("token".into(), 30, Some(DistributionKind::Zipf)),
                ("client".into(), 50_000, None)
            ]
        );
        for bad in [
            "0",
            "x=1",
            "token=",
            "=5",
            "token=5:pareto",
            "1,2",
            "a=1,a=2",
            "20000000",
        ] {
            let r = bad.parse::<KeySpec>();
            if bad == "x=1" {
                assert!(r.is_ok(), "{bad}: names are checked against the policy");
            } else {
                assert!(r.is_err(), "{bad}");
            }
        }
    }

    const POLICY: &str = r#"
version = 1
host_attributes = ["plan"]
[[limit]]
name = "per-token-tenant"
key = ["token", "tenant"]
rate = "10/s"
[[limit]]
name = "per-plan"
key = ["plan", "method"]
rate = "1000000/s"
[quota]
[[quota.plans]]
name = "free"
calls = 1000000
default = true
[[quota.companies]]
id = "acme"
users = [{ id = "a", keys = ["k-a1", "k-a2"] }, { id = "b", keys = ["k-b1"], disabled = true }]
"#;

    #[test]
    fn the_plan_takes_the_quota_keys_from_the_policy_and_generates_the_rest() {
        let (p, _) = Policy::from_toml(POLICY).unwrap();
        let keys: KeySpec = "50,plan=3:zipf".parse().unwrap();
        let a = plan(&p, &keys, DistributionKind::Uniform, 1.2).unwrap();
        let names: Vec<String> = a.iter().map(|a| a.attr.to_string()).collect();
        assert_eq!(names, ["token", "tenant", "plan"], "method is --method's");
        assert_eq!(a[0].values, ["k-a1", "k-a2"], "enabled users' keys only");
        assert!(a[0].from_policy);
        assert_eq!(a[1].values.len(), 50);
        assert_eq!(a[1].distribution, Distribution::Uniform);
        assert_eq!(a[2].values, ["plan-000000", "plan-000001", "plan-000002"]);
        assert_eq!(a[2].distribution, Distribution::Zipf(1.2));
        let err = plan(
            &p,
            &"token=3".parse().unwrap(),
            DistributionKind::Uniform,
            1.0,
        );
        assert!(err.unwrap_err().contains("2 keys"));
        let err = plan(
            &p,
            &"route=3".parse().unwrap(),
            DistributionKind::Uniform,
            1.0,
        );
        assert!(err.unwrap_err().contains("token, tenant, plan"));
    }

    #[test]
    fn a_counted_run_makes_exactly_that_many_decisions_with_host_attributes() {
        let (p, _) = Policy::from_toml(POLICY).unwrap();
        let attributes = plan(
            &p,
            &"tenant=5".parse().unwrap(),
            DistributionKind::Zipf,
            1.0,
        )
        .unwrap();
        let engine = Engine::new(p).unwrap();
        let r = run(
            &engine,
            &Load {
                threads: 3,
                attributes,
                method: Some("GET".into()),
                stop: Stop::Requests(10_001),
                batch: 7,
            },
        )
        .unwrap();
        assert_eq!(r.decisions, 10_001);
        let o = r.outcomes;
        assert_eq!(
            o.allowed
                + o.limited
                + o.revoked
                + o.quota_exceeded
                + o.unknown_key
                + o.cannot_pass
                + o.unavailable,
            10_001
        );
        assert_eq!(o.unknown_key, 0, "the quota's keys come from the policy");
        // Every key's first request passes (the limit's burst is 10); what passes
        // later depends on the clock, which this test does not assert on.
        assert!(o.allowed >= 10 && o.allowed + o.limited == 10_001, "{r:?}");
        assert!(
            engine.metrics().limits[1].allowed > 0,
            "the host attribute `plan` reached the second limit"
        );
        let l = r.latency_ns;
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9);
        assert!(l.p99_9 <= l.max && l.max > 0, "{l:?}");
        assert_eq!(r.attributes[2].values, "generated");
    }
}

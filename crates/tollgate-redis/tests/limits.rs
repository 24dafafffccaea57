//! Rate limits on a real redis-server: the scripts against tollgate-core's in-memory
//! algorithms (model tests), EVALSHA/NOSCRIPT, the server clock, the key layout, the
//! engine integration (all or nothing across a memory and a Redis limit) and two
//! engines sharing one Redis.

use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use tollgate::backend::{LimitBackend, LimitKey, MemoryBackend};
use tollgate::core::Rate;
use tollgate::policy::{AlgorithmKind, Attr, LimitSpec};
use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{ClockSource, RedisFactory, RedisStore};

/// 2027-01-15T08:00:00Z in Unix nanoseconds (a whole number of seconds).
const T0: u64 = 1_800_000_000_000_000_000;

fn store(server: &RedisServer, clock: ClockSource) -> Arc<RedisStore> {
    RedisStore::new(tollgate_redis::testing::config(server.url()).clock(clock)).unwrap()
}

fn key<'a>(parts: &'a [&'a str]) -> LimitKey<'a> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(parts);
    LimitKey {
        hash: u128::from(h),
        parts,
    }
}

/// One step of a model run: `dt_us` later, on key `k`, acquire (and maybe undo) or peek.
#[derive(Clone, Debug)]
struct Step {
    dt_us: u64,
    k: usize,
    cost: u64,
    op: u8,
}

fn steps(max_cost: u64, max_dt_us: u64) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..max_dt_us, 0..3usize, 0..=max_cost, 0..4u8).prop_map(|(dt_us, k, cost, op)| Step {
            dt_us,
            k,
            cost,
            op,
        }),
        1..60,
    )
}

/// Runs `steps` through Redis (caller's clock) and the in-memory backend side by side;
/// every answer must match (`retry_slack_ns`: how much later Redis may say to retry,
/// from its microsecond rounding).
fn model_run(
    server: &RedisServer,
    kind: AlgorithmKind,
    rate: Rate,
    run: u64,
    steps: &[Step],
    retry_slack_ns: u64,
) -> Result<(), TestCaseError> {
    let mut spec = LimitSpec::new(format!("model-{run}"), rate);
    spec.algorithm = kind;
    let redis = RedisFactory::new(store(server, ClockSource::Caller))
        .backend(&spec, rate)
        .unwrap();
    let memory = MemoryBackend::new(kind, rate, 1024).unwrap();
    let names = ["a", "b", "c"];
    let mut now = T0;
    for (i, s) in steps.iter().enumerate() {
        now += s.dt_us * 1000;
        let parts = [names[s.k]];
        let k = key(&parts);
        let (r, m) = if s.op == 0 {
            (
                redis.peek(&k, s.cost, now).map(|d| (d, None)),
                memory.peek(&k, s.cost, now).map(|d| (d, None)),
            )
        } else {
            (
                redis.acquire(&k, s.cost, now),
                memory.acquire(&k, s.cost, now),
            )
        };
        let ((rd, ru), (md, mu)) = match (r, m) {
            (Ok(r), Ok(m)) => (r, m),
            (r, m) => {
                // A cost above capacity: the same error on both sides.
                prop_assert_eq!(r.map(|_| ()), m.map(|_| ()), "step {}", i);
                continue;
            }
        };
        prop_assert_eq!(
            rd.allowed(),
            md.allowed(),
            "step {}: {:?} vs {:?}",
            i,
            rd,
            md
        );
        prop_assert_eq!(rd.remaining, md.remaining, "step {}", i);
        prop_assert_eq!(rd.reset_after, md.reset_after, "step {}", i);
        prop_assert!(
            rd.retry_after >= md.retry_after && rd.retry_after - md.retry_after <= retry_slack_ns,
            "step {}: retry {} vs {}",
            i,
            rd.retry_after,
            md.retry_after
        );
        prop_assert_eq!(ru.is_some(), mu.is_some(), "step {}", i);
        if s.op == 3 {
            if let (Some(ru), Some(mu)) = (ru, mu) {
                // Undo, either at once (exact restore) or after another key moved.
                redis.undo(&k, ru, now);
                memory.undo(&k, mu, now);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// GCRA on Redis answers exactly like tollgate-core's GCRA (a rate whose emission
    /// interval is a whole number of microseconds: 20 ms), acquire, peek and undo.
    #[test]
    fn gcra_script_matches_the_in_memory_gcra(steps in steps(6, 60_000), run in 0..u64::MAX) {
        let Some(server) = RedisServer::start() else { return Ok(()) };
        let rate = "50/s".parse::<Rate>().unwrap().with_burst(5).unwrap();
        model_run(&server, AlgorithmKind::Gcra, rate, run, &steps, 0)?;
    }

    /// The sliding window on Redis answers like tollgate-core's (retry_after rounded up
    /// to the microsecond).
    #[test]
    fn window_script_matches_the_in_memory_window(steps in steps(5, 700_000), run in 0..u64::MAX) {
        let Some(server) = RedisServer::start() else { return Ok(()) };
        let rate: Rate = "7/s".parse().unwrap();
        model_run(&server, AlgorithmKind::SlidingWindow, rate, run, &steps, 999)?;
    }
}

#[test]
fn an_undo_after_other_traffic_refunds_and_an_exact_one_restores() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rate = "10/s".parse::<Rate>().unwrap();
    let spec = LimitSpec::new("undo", rate);
    let b = RedisFactory::new(store(&server, ClockSource::Caller))
        .backend(&spec, rate)
        .unwrap();
    let k = key(&["x"]);
    let mut c = server.connection();
    let state = |c: &mut redis::Connection| -> Option<String> {
        redis::cmd("GET").arg(b.key_of(&k)).query(c).unwrap()
    };
    let (_, u1) = b.acquire(&k, 3, T0).unwrap();
    let after_first = state(&mut c);
    let (_, u2) = b.acquire(&k, 2, T0).unwrap();
    b.undo(&k, u2.unwrap(), T0);
    assert_eq!(state(&mut c), after_first, "exactly as before");
    b.undo(&k, u1.unwrap(), T0);
    assert_eq!(state(&mut c), None, "back to a fresh key");
    let (_, u1) = b.acquire(&k, 4, T0).unwrap();
    b.acquire(&k, 4, T0).unwrap();
    b.undo(&k, u1.unwrap(), T0);
    assert!(b.peek(&k, 6, T0).unwrap().allowed());
    assert!(!b.peek(&k, 7, T0).unwrap().allowed());
}

#[test]
fn scripts_are_reloaded_after_script_flush() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, ClockSource::Server);
    let rate = "5/h".parse::<Rate>().unwrap();
    let b = RedisFactory::new(Arc::clone(&s))
        .backend(&LimitSpec::new("noscript", rate), rate)
        .unwrap();
    let k = key(&["k"]);
    assert!(b.acquire(&k, 1, 0).unwrap().0.allowed());
    let mut c = server.connection();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut c)
        .unwrap();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(redis::Script::new(tollgate_redis::store::scripts::GCRA).get_hash())
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, [false]);
    let d = b.acquire(&k, 1, 0).unwrap().0;
    assert!(d.allowed());
    assert_eq!(
        d.remaining, 3,
        "the state survived, the script was loaded again"
    );
    assert_eq!(s.stats().errors, 0, "NOSCRIPT is not a failure");
}

#[test]
fn on_the_server_clock_a_burst_passes_then_the_rate_holds() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rate = "5/h".parse::<Rate>().unwrap();
    let b = RedisFactory::new(store(&server, ClockSource::Server))
        .backend(&LimitSpec::new("server-clock", rate), rate)
        .unwrap();
    let k = key(&["k"]);
    // The caller's `now` is ignored: wildly different clocks decide the same.
    for (i, now) in [0, u64::MAX / 2, 5, T0, 1].into_iter().enumerate() {
        let (d, _) = b.acquire(&k, 1, now).unwrap();
        assert!(d.allowed());
        assert_eq!(d.remaining, 4 - i as u64);
    }
    let (d, u) = b.acquire(&k, 1, 0).unwrap();
    assert!(!d.allowed() && u.is_none());
    // Waiting one emission interval (720 s) is enough, minus what elapsed on the server.
    assert!(d.retry_after <= 720_000_000_000 && d.retry_after > 700_000_000_000);
    let mut c = server.connection();
    let ttl: i64 = redis::cmd("PTTL").arg(b.key_of(&k)).query(&mut c).unwrap();
    assert!(
        ttl > 0 && ttl <= 3_600_001,
        "the key expires when its TAT passes: {ttl}"
    );
}

#[test]
fn key_names_hold_no_value_and_the_secret_decides_who_shares() {
    // Issue 15, item 7: key names held the full token, twice.
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rate = "5/s".parse::<Rate>().unwrap();
    let mut spec = LimitSpec::new("per-user", rate);
    spec.key = vec![Attr::User, Attr::Company];
    let mut token_spec = LimitSpec::new("window-token", rate);
    token_spec.key = vec![Attr::Token];
    let a = store(&server, ClockSource::Server);
    let by_user = RedisFactory::new(Arc::clone(&a))
        .backend(&spec, rate)
        .unwrap();
    let by_token = RedisFactory::new(Arc::clone(&a))
        .backend(&token_spec, rate)
        .unwrap();
    let secrets = ["bob:1", "evil}{c:victim", "sk_live_51HxQ2eZvKYlo2C9", "k1"];
    by_user.acquire(&key(&secrets[..2]), 1, 0).unwrap();
    by_token.acquire(&key(&secrets[2..3]), 1, 0).unwrap();
    by_token.acquire(&key(&secrets[3..4]), 1, 0).unwrap();
    let mut c = server.connection();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.sort();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for k in &keys {
        for v in secrets
            .iter()
            .flat_map(|s| s.split([':', '{', '}']))
            .filter(|p| p.len() >= 2)
        {
            assert!(!k.contains(v), "{k} shows {v:?}");
        }
        assert!(k.len() < 90, "{k}");
    }
    let company_tagged = a
        .namer()
        .limit_key("tg", "per-user", &secrets[..2], Some(1));
    assert!(keys.contains(&company_tagged), "{keys:?}");
    // Another store with the same secret shares the count; another secret does not.
    let same = store(&server, ClockSource::Server);
    let shared = RedisFactory::new(same).backend(&token_spec, rate).unwrap();
    let d = shared.acquire(&key(&secrets[2..3]), 1, 0).unwrap().0;
    assert_eq!(d.remaining, 3, "the same key: one used before");
    let other = RedisStore::new(
        tollgate_redis::RedisConfig::new(server.url())
            .key_secret("another fleet's secret, 16+ bytes")
            .unwrap(),
    )
    .unwrap();
    let apart = RedisFactory::new(other).backend(&token_spec, rate).unwrap();
    let d = apart.acquire(&key(&secrets[2..3]), 1, 0).unwrap().0;
    assert_eq!(d.remaining, 4, "another secret names another key");
    // No secret: refused with a message that says how to set one.
    std::env::remove_var("TOLLGATE_REDIS_KEY_SECRET");
    let e = RedisStore::new(tollgate_redis::RedisConfig::new(server.url())).unwrap_err();
    assert!(e.to_string().contains("TOLLGATE_REDIS_KEY_SECRET"), "{e}");
}

const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "100/h"
backend = "redis"
[[limit]]
name = "per-company"
key = ["company"]
rate = "3/h"
"#;

fn engine(policy: &str, store: &Arc<RedisStore>) -> Engine {
    let (policy, _) = Policy::from_toml(policy).unwrap();
    Engine::builder(policy)
        .backend("redis", Arc::new(RedisFactory::new(Arc::clone(store))))
        .build()
        .unwrap()
}

#[test]
fn the_engine_decides_with_a_redis_limit_all_or_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, ClockSource::Server);
    let e = engine(POLICY, &s);
    let r = Request::new().token("tok").company("acme");
    for _ in 0..3 {
        assert!(e.decide(&r).allowed());
    }
    // The in-memory company limit denies: the Redis limit gives back what it took.
    let d = e.decide(&r);
    assert_eq!(d.reason, Reason::Limited);
    assert_eq!(d.decided_by, Some(1));
    let peek = e.peek(&r);
    assert_eq!(peek[0].0, "per-token");
    assert_eq!(
        peek[0].1.as_ref().unwrap().remaining,
        96,
        "3 taken, 1 given back"
    );
    assert_eq!(s.stats().errors, 0);
}

/// Two engines (two instances of a service) sharing one Redis, each hammered by its own
/// thread on the same key: their combined allowed count never exceeds the limit, over
/// many runs.
#[test]
fn two_engines_sharing_one_redis_never_exceed_the_limit() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    const LIMIT: u64 = 40;
    const RUNS: usize = 25;
    let policy = r#"
version = 1
[[limit]]
name = "shared"
key = ["company"]
rate = "40/day"
backend = "redis"
"#;
    let s1 = store(&server, ClockSource::Server);
    let s2 = store(&server, ClockSource::Server);
    let (e1, e2) = (Arc::new(engine(policy, &s1)), Arc::new(engine(policy, &s2)));
    let mut totals = Vec::new();
    for run in 0..RUNS {
        let company = format!("company-{run}");
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [&e1, &e2]
            .into_iter()
            .map(|e| {
                let (e, barrier, company) = (Arc::clone(e), Arc::clone(&barrier), company.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..60)
                        .filter(|_| e.decide(&Request::new().company(&company)).allowed())
                        .count() as u64
                })
            })
            .collect();
        let allowed: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        totals.push(allowed.iter().sum::<u64>());
    }
    // 120 requests for 40 units per day, in well under the 36 minutes a unit takes to
    // come back: exactly the limit, never more.
    assert!(
        totals.iter().all(|&t| t == LIMIT),
        "combined allowed per run: {totals:?}"
    );
    assert_eq!(s1.stats().errors + s2.stats().errors, 0);
}

/// The over-limit cache answers denials locally until Redis's retry time, never allows
/// what Redis would deny, and lets cheaper requests through to Redis.
#[test]
fn the_over_limit_cache_denies_locally_and_never_allows() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rate = "5/h".parse::<Rate>().unwrap();
    let spec = LimitSpec::new("cached", rate);
    let cached_store = store(&server, ClockSource::Server);
    let plain_store = store(&server, ClockSource::Server);
    let cached =
        RedisFactory::new(Arc::clone(&cached_store)).options(tollgate_redis::LimitOptions {
            over_limit_cache: true,
            ..Default::default()
        });
    let plain = RedisFactory::new(Arc::clone(&plain_store));
    let (cb, pb) = (
        cached.backend(&spec, rate).unwrap(),
        plain.backend(&LimitSpec::new("plain", rate), rate).unwrap(),
    );
    let k = key(&["k"]);
    let (mut allowed_cached, mut allowed_plain) = (0, 0);
    for _ in 0..100 {
        allowed_cached += u64::from(cb.acquire(&k, 1, 0).unwrap().0.allowed());
        allowed_plain += u64::from(pb.acquire(&k, 1, 0).unwrap().0.allowed());
    }
    assert_eq!((allowed_cached, allowed_plain), (5, 5));
    // 5 allowed + the first denial reached Redis; 94 denials were answered locally.
    assert_eq!(cached_store.stats().network_calls, 6);
    assert_eq!(cached.stats().cache_hits, 94);
    assert_eq!(plain_store.stats().network_calls, 100);
    // A denied answer from the cache carries a retry time no later than Redis's.
    let from_cache = cb.acquire(&k, 1, 0).unwrap().0;
    let from_redis = pb.acquire(&k, 1, 0).unwrap().0;
    assert!(!from_cache.allowed() && from_cache.retry_after <= from_redis.retry_after + 1_000_000);

    // Cheaper requests are not denied by a costlier request's entry.
    let k2 = key(&["k2"]);
    assert!(cb.acquire(&k2, 4, 0).unwrap().0.allowed());
    assert!(!cb.acquire(&k2, 2, 0).unwrap().0.allowed());
    let before = cached_store.stats().network_calls;
    assert!(cb.acquire(&k2, 1, 0).unwrap().0.allowed(), "went to Redis");
    assert_eq!(cached_store.stats().network_calls, before + 1);
    // A reset forgets the cached denial.
    cb.reset(&k2);
    assert!(cb.acquire(&k2, 5, 0).unwrap().0.allowed());
}

/// A reload that changes a Redis limit's rate keeps each key's used capacity, exactly
/// like the in-memory backend: raising it takes effect at once, lowering it leaves
/// correspondingly less; a sliding window whose length changes starts fresh.
#[test]
fn a_reload_keeps_used_capacity_like_the_memory_backend() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, ClockSource::Server);
    let policy = |backend: &str, rate: &str, alg: &str| {
        format!(
            "version = 1\n[[limit]]\nname = \"l\"\nkey = [\"company\"]\nrate = \"{rate}\"\n\
             algorithm = \"{alg}\"\nbackend = \"{backend}\"\n"
        )
    };
    for alg in ["gcra", "sliding_window"] {
        let run = |backend: &str| -> Vec<bool> {
            let e = engine(&policy(backend, "3/h", alg), &s);
            let company = format!("{backend}-{alg}");
            let r = Request::new().company(&company);
            let mut out: Vec<bool> = (0..4).map(|_| e.decide(&r).allowed()).collect();
            for rate in ["6/h", "2/h", "6/h", "10/2h"] {
                e.reload(Policy::from_toml(&policy(backend, rate, alg)).unwrap().0)
                    .unwrap();
                out.extend((0..4).map(|_| e.decide(&r).allowed()));
            }
            out
        };
        let (redis, memory) = (run("redis"), run("memory"));
        assert_eq!(redis, memory, "{alg}");
        // 3 of 3, then 3 more of 6, none of 2, none of 6 again (6 used); then 10 per
        // 2 h: GCRA has 4 of 10 left, the window (a new length) starts fresh.
        assert_eq!(
            redis[..16],
            [
                true, true, true, false, true, true, true, false, false, false, false, false,
                false, false, false, false
            ],
            "{alg}"
        );
        assert_eq!(redis[16..], [true; 4], "{alg}");
    }
}

//! One round trip per request (`tollgate_redis::combined`) on a real redis-server and
//! a 3-node cluster: the combined script decides exactly as the limits and the quota
//! one by one (proptest against an engine with `combine(false)`), writes nothing for a
//! refused request, keeps two engines within the limits, answers by the failure
//! policies with one attempt when Redis is down, lets a lost quota counter be re-seeded,
//! and on the cluster combines only keys that share a hash tag.

use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use tollgate::{Engine, EngineDecision, Policy, Reason, Request};
use tollgate_redis::testing::{RedisCluster, RedisServer};
use tollgate_redis::{
    BreakerConfig, ClockSource, FailurePolicy, QuotaOptions, RedisConfig, RedisFactory, RedisQuota,
    RedisStore,
};

/// 2027-01-15T08:00:00Z in Unix nanoseconds.
const T0: u64 = 1_800_000_000_000_000_000;

/// Three Redis limits (GCRA per company, a sliding window per token, a shadow GCRA per
/// token) and acme's quota: 12 calls a month, refused above 18.
const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "6/s burst 4"
backend = "redis"
[[limit]]
name = "per-token"
key = ["token"]
rate = "5/s"
algorithm = "sliding_window"
backend = "redis"
[[limit]]
name = "shadow-per-token"
key = ["token"]
rate = "2/s"
shadow = true
backend = "redis"
[quota]
hard_cap_percent = 150
[[quota.plans]]
name = "free"
calls_per_unit = 12
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  { id = "ann", keys = ["key-ann"] },
  { id = "bob", keys = ["key-bob"] },
]
"#;

struct Instance {
    engine: Engine,
    store: Arc<RedisStore>,
    quota: Arc<RedisQuota>,
}

fn instance(config: RedisConfig, policy: &str, name: &str, combine: bool) -> Instance {
    instance_with(
        config,
        policy,
        name,
        combine,
        FailurePolicy::Fallback,
        QuotaOptions::default(),
    )
}

fn instance_with(
    config: RedisConfig,
    policy: &str,
    name: &str,
    combine: bool,
    failure: FailurePolicy,
    quota_options: QuotaOptions,
) -> Instance {
    let store = RedisStore::new(config).unwrap();
    let quota = Arc::new(RedisQuota::new(Arc::clone(&store), name, quota_options));
    let factory = RedisFactory::new(Arc::clone(&store))
        .options(tollgate_redis::LimitOptions {
            failure,
            ..Default::default()
        })
        .combine(combine);
    let engine = Engine::builder(Policy::from_toml(policy).unwrap().0)
        .backend("redis", Arc::new(factory))
        .quota_store(Arc::clone(&quota) as Arc<dyn tollgate::QuotaStore>)
        .build()
        .unwrap();
    Instance {
        engine,
        store,
        quota,
    }
}

fn request<'a>(token: &'a str, cost: Option<u64>, now: u64) -> Request<'a> {
    let mut r = Request::new().token(token).company("acme").at(now);
    if let Some(c) = cost {
        r = r.cost(c);
    }
    r
}

/// Round trips of one decision.
fn round_trips(i: &Instance, r: &Request<'_>) -> (EngineDecision, u64) {
    let before = i.store.stats().network_calls;
    let d = i.engine.decide(r);
    (d, i.store.stats().network_calls - before)
}

#[derive(Clone, Debug)]
struct Step {
    ann: bool,
    cost: Option<u64>,
    dt_ms: u64,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            any::<bool>(),
            prop_oneof![4 => Just(None), 2 => (0u64..4).prop_map(Some), 1 => Just(Some(9))],
            prop_oneof![Just(0u64), 0u64..400, 0u64..3_000],
        )
            .prop_map(|(ann, cost, dt_ms)| Step { ann, cost, dt_ms }),
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same requests, on the caller's clock, to an engine whose requests go in one
    /// script and to one that calls the scripts one by one (keys under two prefixes):
    /// every decision is the same (reason, limit, remaining, waits, quota usage), and the
    /// combined engine makes no more round trips (see the next test for how many).
    #[test]
    fn one_script_decides_as_the_scripts_one_by_one(steps in steps(), run in 0..u64::MAX) {
        let Some(server) = SERVER.with(|s| s.as_ref().map(RedisServer::url)) else {
            return Ok(());
        };
        let config = |p: &str| tollgate_redis::testing::config(&server)
            .clock(ClockSource::Caller)
            .prefix(format!("{p}{run}"));
        let one = instance(config("one"), POLICY, "gw", true);
        let many = instance(config("many"), POLICY, "gw", false);
        let mut now = T0;
        for s in &steps {
            now += s.dt_ms * 1_000_000;
            let token = if s.ann { "key-ann" } else { "key-bob" };
            let r = request(token, s.cost, now);
            let (a, b) = (one.engine.decide(&r), many.engine.decide(&r));
            prop_assert_eq!(a, b, "{:?}", s);
        }
        let (calls_one, calls_many) = (one.store.stats().network_calls, many.store.stats().network_calls);
        // The first call of the period costs the combined engine one more round trip
        // (the script finds the quota share missing and the share is seeded one by one).
        prop_assert!(calls_one <= calls_many + 1, "{calls_one} vs {calls_many}");
        prop_assert_eq!(one.store.stats().errors + many.store.stats().errors, 0);
        prop_assert_eq!(one.quota.stats().remote, many.quota.stats().remote);
    }
}

thread_local! {
    /// One server for the proptest's cases.
    static SERVER: Option<RedisServer> = RedisServer::start();
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.connection())
        .unwrap()
}

/// After the first call of a period (which seeds this instance's share of the quota
/// counter), every decision is one round trip; a refused request writes nothing and
/// needs no undo.
#[test]
fn one_round_trip_per_decision_and_a_refusal_writes_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Four an hour per company: the fifth request is refused however slow the machine.
    let policy = POLICY.replace("rate = \"6/s burst 4\"", "rate = \"4/h\"");
    let i = instance(
        tollgate_redis::testing::config(server.url()),
        &policy,
        "gw",
        true,
    );
    let r = Request::new().token("key-ann").company("acme");
    assert!(
        i.engine.decide(&r).allowed(),
        "the first call seeds the share"
    );
    for _ in 0..3 {
        let (d, trips) = round_trips(&i, &r);
        assert!(d.allowed());
        assert_eq!(trips, 1, "limits and quota in one script");
    }
    // per-company's burst of 4 is spent: refused by it, one round trip, nothing written.
    let namer = i.store.namer();
    let company_key = &namer.limit_key("tg", "per-company", &["acme"], Some(0));
    let token_key = &namer.limit_key("tg", "per-token", &["key-ann"], None);
    let before = (get(&server, company_key), get(&server, token_key));
    assert!(before.0.is_some() && before.1.is_some());
    let used = server.quota_used("tg");
    let (d, trips) = round_trips(&i, &r);
    assert_eq!(
        (d.reason, d.decided_by, trips),
        (Reason::Limited, Some(0), 1)
    );
    assert_eq!((get(&server, company_key), get(&server, token_key)), before);
    assert_eq!(server.quota_used("tg"), used);
    assert_eq!(used, 4);
    assert_eq!(i.store.stats().errors, 0);
}

/// A request the quota refuses (over the hard cap) takes nothing from its limits.
#[test]
fn a_quota_refusal_takes_nothing_from_the_limits() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let policy = POLICY.replace("rate = \"6/s burst 4\"", "rate = \"1000/s burst 100\"");
    let i = instance(
        tollgate_redis::testing::config(server.url()).clock(ClockSource::Caller),
        &policy,
        "gw",
        true,
    );
    let mut now = T0;
    let mut served = 0;
    while served < 18 {
        now += 1_000_000_000; // one second: the per-token window never denies
        let d = i.engine.decide(&request("key-ann", None, now));
        assert!(d.allowed(), "{d:?}");
        served += 1;
    }
    let company_key = &i
        .store
        .namer()
        .limit_key("tg", "per-company", &["acme"], Some(0));
    let before = get(&server, company_key);
    let (d, trips) = round_trips(&i, &request("key-ann", None, now));
    assert_eq!((d.reason, trips), (Reason::QuotaExceeded, 1));
    assert_eq!(get(&server, company_key), before, "nothing taken");
    assert_eq!(server.quota_used("tg"), 18);
}

/// Two engines sharing one Redis, two threads each, on one company: whichever of the
/// company limit and the quota's hard cap is tighter, the fleet's allowed total is
/// exactly it, over many runs.
#[test]
fn two_engines_combined_never_exceed_the_limit_or_the_cap() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    const RUNS: usize = 10;
    // (company limit per day, hard cap percent of 30 calls) -> the tighter one.
    for (limit, cap_percent, expected) in [(20u64, 200u64, 20u64), (100, 100, 30)] {
        let policy = format!(
            r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "{limit}/day"
backend = "redis"
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/day"
backend = "redis"
[quota]
hard_cap_percent = {cap_percent}
[[quota.plans]]
name = "free"
calls_per_unit = 30
default = true
{companies}
"#,
            companies = (0..RUNS)
                .map(|r| format!(
                    "[[quota.companies]]\nid = \"co-{r}\"\nmachines = 1\nusers = [{{ id = \"u-{r}\", keys = [\"key-{r}\"] }}]\n"
                ))
                .collect::<String>()
        );
        let prefix = format!("tg{limit}");
        let e1 = Arc::new(instance(
            tollgate_redis::testing::config(server.url()).prefix(&prefix),
            &policy,
            "gw-1",
            true,
        ));
        let e2 = Arc::new(instance(
            tollgate_redis::testing::config(server.url()).prefix(&prefix),
            &policy,
            "gw-2",
            true,
        ));
        let mut totals = Vec::new();
        for run in 0..RUNS {
            let barrier = Arc::new(Barrier::new(4));
            let handles: Vec<_> = [&e1, &e1, &e2, &e2]
                .into_iter()
                .map(|i| {
                    let (i, barrier) = (Arc::clone(i), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        let (company, token) = (format!("co-{run}"), format!("key-{run}"));
                        barrier.wait();
                        (0..30)
                            .filter(|_| {
                                i.engine
                                    .decide(&Request::new().company(&company).token(&token))
                                    .allowed()
                            })
                            .count() as u64
                    })
                })
                .collect();
            totals.push(handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>());
        }
        assert!(
            totals.iter().all(|&t| t == expected),
            "limit {limit}, cap {cap_percent}%: allowed per run {totals:?}"
        );
        assert_eq!(e1.store.stats().errors + e2.store.stats().errors, 0);
    }
}

/// Redis down: each limit's failure policy and the quota's answer after one failed
/// attempt per request (not one per limit); the calls served meanwhile are counted
/// locally, and the first request after Redis returns flushes them before it is
/// decided: no count lost.
#[test]
fn redis_down_the_failure_policies_answer_after_one_attempt() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let config = tollgate_redis::testing::config(server.url()).breaker(BreakerConfig {
        failures: 1_000,
        cooldown: std::time::Duration::ZERO,
        first_cooldown: std::time::Duration::ZERO,
    });
    // Rates high enough that the fallback limiters (which start each key where Redis
    // left it) allow every request.
    let policy = POLICY
        .replace("rate = \"6/s burst 4\"", "rate = \"1000/s burst 100\"")
        .replace("rate = \"5/s\"", "rate = \"1000/s\"");
    let i = instance(config, &policy, "gw", true);
    let r = Request::new().token("key-ann").company("acme");
    for _ in 0..3 {
        assert!(i.engine.decide(&r).allowed());
    }
    server.kill();
    let mut errors = 0;
    for n in 1..=4 {
        let (d, trips) = round_trips(&i, &r);
        assert!(d.allowed(), "the local fallback limiter allows: {d:?}");
        // The three limits and the quota in one failed attempt; once calls are pending,
        // the quota tries to flush them first (one more attempt), as one by one.
        let expected = if n == 1 { 1 } else { 2 };
        errors += expected;
        assert_eq!(
            (trips, i.store.stats().errors),
            (expected, errors),
            "request {n}"
        );
    }
    assert_eq!(i.quota.unsent(), 4);
    server.restart();
    assert!(i.engine.decide(&r).allowed());
    assert_eq!(i.quota.unsent(), 0);
    assert_eq!(
        server.quota_used("tg"),
        8,
        "3 + 4 served during the outage + 1"
    );
}

/// Redis restarted empty: the combined script finds this instance's share of the quota
/// counter missing, writes nothing, and the quota store re-seeds the share from the
/// ledger; the count goes on from the ledger's, not from zero.
#[test]
fn a_lost_quota_counter_is_reseeded_not_restarted() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let policy = POLICY.replace("rate = \"6/s burst 4\"", "rate = \"1000/s burst 100\"");
    let i = instance(
        tollgate_redis::testing::config(server.url()),
        &policy,
        "gw",
        true,
    );
    let r = Request::new().token("key-ann").company("acme");
    for _ in 0..5 {
        assert!(i.engine.decide(&r).allowed());
    }
    server.kill();
    server.restart();
    // The pooled connections died with the server (the first call on one would fail
    // and be decided by the failure policy: see tests/faults.rs).
    i.store.drop_idle();
    let (d, trips) = round_trips(&i, &r);
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.quota.map(|q| q.used), Some(6), "five before the restart");
    // The script (nothing written), the three limits, the quota call finding the share
    // missing, the seed, the quota call again.
    assert_eq!(trips, 7);
    assert_eq!(server.quota_used("tg"), 6);
    assert_eq!(i.quota.reseeded().len(), 1);
    assert_eq!(i.store.stats().errors, 0);
    let (d, trips) = round_trips(&i, &r);
    assert_eq!((d.quota.map(|q| q.used), trips), (Some(7), 1));
}

/// On a cluster, one script may only touch one slot: limits keyed by company share
/// their company's hash tag with its quota counter and are decided with it in one round
/// trip; a limit keyed by token is in another slot, so those requests go one by one,
/// and decide alike.
#[test]
fn on_a_cluster_only_keys_sharing_a_hash_tag_are_combined() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let company_only = POLICY
        .split("[[limit]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[limit]]")
        + &POLICY[POLICY.find("[quota]").unwrap()..];
    for (policy, per_decision) in [(company_only.as_str(), 1), (POLICY, 4)] {
        let policy = policy
            .replace("rate = \"6/s burst 4\"", "rate = \"1000/s burst 100\"")
            .replace("rate = \"5/s\"", "rate = \"100/s\"");
        let i = instance(
            tollgate_redis::testing::cluster_config(cluster.urls())
                .prefix(format!("tg{per_decision}")),
            &policy,
            "gw",
            true,
        );
        let r = Request::new().token("key-ann").company("acme");
        assert!(i.engine.decide(&r).allowed(), "seeds the share");
        for n in 2..=6 {
            let (d, trips) = round_trips(&i, &r);
            assert!(d.allowed(), "{d:?}");
            assert_eq!(d.quota.map(|q| q.used), Some(n));
            assert_eq!(trips, per_decision, "{policy}");
        }
        assert_eq!(i.store.stats().errors, 0);
    }
}

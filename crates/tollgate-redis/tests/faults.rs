//! Redis killed and restarted mid-run: each failure policy (local fallback, open,
//! closed), the circuit breaker (calls that reach the network are counted, no clock is
//! read), and no quota count lost (accumulated locally, flushed on return, a vanished
//! counter re-seeded).

use std::sync::Arc;
use std::time::Duration;

use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{
    BreakerConfig, BreakerState, FailurePolicy, LimitOptions, QuotaOptions, RedisFactory,
    RedisQuota, RedisStore,
};

const LIMITS: &str = r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "3/h"
backend = "redis"
"#;

fn store(server: &RedisServer, breaker: BreakerConfig) -> Arc<RedisStore> {
    RedisStore::new(tollgate_redis::testing::config(server.url()).breaker(breaker)).unwrap()
}

fn engine(store: &Arc<RedisStore>, failure: FailurePolicy) -> (Engine, Arc<RedisFactory>) {
    let factory = Arc::new(RedisFactory::new(Arc::clone(store)).options(LimitOptions {
        failure,
        ..LimitOptions::default()
    }));
    let (policy, _) = Policy::from_toml(LIMITS).unwrap();
    let e = Engine::builder(policy)
        .backend(
            "redis",
            Arc::clone(&factory) as Arc<dyn tollgate::BackendFactory>,
        )
        .build()
        .unwrap();
    (e, factory)
}

fn decide(e: &Engine, company: &str) -> Reason {
    e.decide(&Request::new().company(company)).reason
}

/// A breaker that never lets a probe through during the test.
const LONG: BreakerConfig = BreakerConfig {
    failures: 3,
    cooldown: Duration::from_secs(3600),
    first_cooldown: Duration::from_secs(3600),
};

/// A breaker that lets a probe through at once (every call while Redis is down).
const PROBE_ALWAYS: BreakerConfig = BreakerConfig {
    failures: 1,
    cooldown: Duration::ZERO,
    first_cooldown: Duration::ZERO,
};

#[test]
fn fallback_to_the_local_limiter_then_back_to_redis() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, PROBE_ALWAYS);
    let (e, f) = engine(&s, FailurePolicy::Fallback);
    assert_eq!(decide(&e, "acme"), Reason::Allowed);
    assert_eq!(decide(&e, "acme"), Reason::Allowed);
    server.kill();
    // The fallback limiter starts the key where Redis last left it (2 of 3 used), not
    // with a fresh burst (issue #16: before, 3 more were allowed), and the engine flags
    // its decisions degraded.
    let r = Request::new().company("acme");
    let local: Vec<(Reason, bool)> = (0..5)
        .map(|_| {
            let d = e.decide(&r);
            (d.reason, d.degraded)
        })
        .collect();
    assert_eq!(
        local,
        [
            (Reason::Allowed, true),
            (Reason::Limited, true),
            (Reason::Limited, true),
            (Reason::Limited, true),
            (Reason::Limited, true)
        ]
    );
    // A company Redis never answered for starts with the whole limit.
    let fresh: Vec<Reason> = (0..4).map(|_| decide(&e, "fresh-co")).collect();
    assert_eq!(
        fresh,
        [
            Reason::Allowed,
            Reason::Allowed,
            Reason::Allowed,
            Reason::Limited
        ]
    );
    assert_eq!(f.stats().fallback, 9);
    server.restart();
    // Redis is back (empty: no persistence): it decides again.
    let back: Vec<Reason> = (0..4).map(|_| decide(&e, "acme")).collect();
    assert_eq!(
        back,
        [
            Reason::Allowed,
            Reason::Allowed,
            Reason::Allowed,
            Reason::Limited
        ]
    );
    assert_eq!(f.stats().fallback, 9);
    assert_eq!(s.breaker_state(), BreakerState::Closed);
}

#[test]
fn fail_open_allows_and_fail_closed_refuses() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, PROBE_ALWAYS);
    let (open, fo) = engine(&s, FailurePolicy::Open);
    let (closed, fc) = engine(&s, FailurePolicy::Closed);
    for _ in 0..3 {
        assert_eq!(decide(&open, "a"), Reason::Allowed);
        assert_eq!(decide(&closed, "b"), Reason::Allowed);
    }
    assert_eq!(decide(&open, "a"), Reason::Limited);
    assert_eq!(decide(&closed, "b"), Reason::Limited);
    server.kill();
    for _ in 0..10 {
        assert_eq!(decide(&open, "a"), Reason::Allowed);
        assert_eq!(decide(&closed, "b"), Reason::Unavailable);
    }
    assert_eq!((fo.stats().failures, fc.stats().failures), (10, 10));
    server.restart();
    assert_eq!(decide(&open, "a"), Reason::Allowed, "Redis restarted empty");
    assert_eq!(decide(&closed, "b"), Reason::Allowed);
}

#[test]
fn the_breaker_keeps_an_outage_off_the_network() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, LONG);
    let (e, f) = engine(&s, FailurePolicy::Fallback);
    assert_eq!(decide(&e, "acme"), Reason::Allowed);
    let before = s.stats();
    server.kill();
    for i in 0..500 {
        decide(&e, &format!("c{i}"));
    }
    let after = s.stats();
    // Three failures open the breaker; the other 497 decisions never reach the network
    // (and so never wait for a timeout).
    assert_eq!(after.network_calls - before.network_calls, 3);
    assert_eq!(after.errors - before.errors, 3);
    assert_eq!(after.short_circuited - before.short_circuited, 497);
    assert_eq!(f.stats().fallback, 500);
    assert_eq!(s.breaker_state(), BreakerState::Open);
}

#[test]
fn after_the_cooldown_one_probe_closes_the_breaker() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(
        &server,
        BreakerConfig {
            failures: 2,
            cooldown: Duration::from_millis(100),
            first_cooldown: Duration::from_millis(100),
        },
    );
    let (e, f) = engine(&s, FailurePolicy::Fallback);
    server.kill();
    decide(&e, "x");
    decide(&e, "x");
    assert_eq!(s.breaker_state(), BreakerState::Open);
    server.restart();
    // Wait for the cool-down to pass (bounded; no time is asserted).
    let mut tries = 0;
    while s.breaker_state() != BreakerState::Closed {
        assert!(tries < 500, "the breaker never closed");
        std::thread::sleep(Duration::from_millis(10));
        decide(&e, "y");
        tries += 1;
    }
    let remote = f.stats().remote;
    assert_eq!(decide(&e, "z"), Reason::Allowed);
    assert_eq!(f.stats().remote, remote + 1, "decided by Redis again");
}

const QUOTA: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/h"
[quota]
hard_cap_percent = 150
[[quota.plans]]
name = "free"
calls_per_unit = 100
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  { id = "ann", keys = ["key-ann"] },
  { id = "bob", keys = ["key-bob"] },
]
"#;

fn quota_engine(
    store: &Arc<RedisStore>,
    name: &str,
    failure: FailurePolicy,
) -> (Engine, Arc<RedisQuota>) {
    let q = Arc::new(RedisQuota::new(
        Arc::clone(store),
        name,
        QuotaOptions {
            failure,
            ..QuotaOptions::default()
        },
    ));
    let (policy, _) = Policy::from_toml(QUOTA).unwrap();
    let e = Engine::builder(policy)
        .quota_store(Arc::clone(&q) as Arc<dyn tollgate::QuotaStore>)
        .build()
        .unwrap();
    (e, q)
}

fn ledger_total(e: &Engine) -> u64 {
    e.ledger()
        .unwrap()
        .company_usage()
        .iter()
        .map(|r| r.used)
        .sum()
}

/// Redis killed mid-run and restarted empty: the calls served meanwhile were counted
/// locally and flushed on its return, the lost counter was re-seeded from both
/// instances' ledgers, and the final count is every call served, none lost.
#[test]
fn no_quota_count_is_lost_across_a_redis_restart() {
    for persistent in [false, true] {
        let Some(mut server) = RedisServer::start_persistent(persistent) else {
            return;
        };
        let s = store(&server, PROBE_ALWAYS);
        let (gw1, q1) = quota_engine(&s, "gw-1", FailurePolicy::Fallback);
        let (gw2, q2) = quota_engine(&s, "gw-2", FailurePolicy::Fallback);
        let call = |e: &Engine, key: &str| e.decide(&Request::new().token(key)).reason;
        let mut served = 0;
        for _ in 0..5 {
            assert_eq!(call(&gw1, "key-ann"), Reason::Allowed);
            assert_eq!(call(&gw2, "key-bob"), Reason::Allowed);
            served += 2;
        }
        assert_eq!(server.quota_used("tg"), 10);
        server.kill();
        for _ in 0..7 {
            assert_eq!(call(&gw1, "key-ann"), Reason::Allowed, "decided locally");
            served += 1;
        }
        assert_eq!(q1.unsent(), 7);
        server.restart();
        // gw-1's next call flushes its 7 (re-seeding its share first if Redis lost it).
        assert_eq!(call(&gw1, "key-ann"), Reason::Allowed);
        served += 1;
        assert_eq!(q1.unsent(), 0);
        // gw-2 had nothing unsent; its next call re-seeds its share if it was lost.
        assert_eq!(call(&gw2, "key-bob"), Reason::Allowed);
        served += 1;
        assert_eq!(server.quota_used("tg"), served, "persistent: {persistent}");
        assert_eq!(ledger_total(&gw1) + ledger_total(&gw2), served);
        let reseeded = q1.reseeded().len() + q2.reseeded().len();
        assert_eq!(
            reseeded,
            if persistent { 0 } else { 2 },
            "persistent: {persistent}"
        );
    }
}

#[test]
fn quota_fail_closed_refuses_and_counts_nothing() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, PROBE_ALWAYS);
    let (e, q) = quota_engine(&s, "gw-1", FailurePolicy::Closed);
    let call = || e.decide(&Request::new().token("key-ann")).reason;
    assert_eq!(call(), Reason::Allowed);
    server.kill();
    for _ in 0..5 {
        assert_eq!(call(), Reason::Unavailable);
    }
    assert_eq!(q.unsent(), 0);
    assert_eq!(q.stats().refused_unavailable, 5);
    assert_eq!(ledger_total(&e), 1);
    // The per-token limit gave back what it took for the refused calls: of 1000, the
    // served call holds 1 and the peek's own request 1 more.
    let left = e.peek(&Request::new().token("key-ann"))[0]
        .1
        .clone()
        .unwrap()
        .remaining;
    assert_eq!(left, 998);
}

/// After a restart every pooled connection is stale: the first failure drops them all,
/// so the restart costs one failed call, not one per pooled connection (which would open
/// the breaker while Redis is up).
#[test]
fn a_restart_costs_one_failure_not_one_per_pooled_connection() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, LONG);
    let (e, f) = engine(&s, FailurePolicy::Fallback);
    let e = Arc::new(e);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (e, barrier) = (Arc::clone(&e), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..200 {
                    decide(&e, &format!("warm-{t}-{i}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let idle = s.idle_connections();
    assert!(
        idle >= 3,
        "the scenario needs several pooled connections: {idle}"
    );
    server.restart();
    let before = s.stats();
    for i in 0..20 {
        assert_eq!(decide(&e, &format!("after-{i}")), Reason::Allowed);
    }
    assert_eq!(s.stats().errors - before.errors, 1);
    assert_eq!(s.breaker_state(), BreakerState::Closed);
    assert_eq!(
        f.stats().fallback,
        1,
        "only the call on the stale connection"
    );
}

/// During an outage the local fallback takes part in all-or-nothing decisions: a later
/// limit's denial gives back what the fallback took, to the local limiter.
#[test]
fn an_undo_of_a_fallback_decision_goes_to_the_local_limiter() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, LONG);
    let factory = Arc::new(RedisFactory::new(Arc::clone(&s)));
    let (policy, _) = Policy::from_toml(
        r#"
version = 1
[[limit]]
name = "on-redis"
key = ["company"]
rate = "3/h"
backend = "redis"
[[limit]]
name = "in-memory"
key = ["company"]
rate = "1/h"
"#,
    )
    .unwrap();
    let e = Engine::builder(policy)
        .backend(
            "redis",
            Arc::clone(&factory) as Arc<dyn tollgate::BackendFactory>,
        )
        .build()
        .unwrap();
    server.kill();
    let r = Request::new().company("acme");
    assert_eq!(e.decide(&r).reason, Reason::Allowed);
    // The in-memory limit denies: the fallback's unit comes back.
    assert_eq!(e.decide(&r).reason, Reason::Limited);
    assert_eq!(e.decide(&r).reason, Reason::Limited);
    let left = e.peek(&r)[0].1.clone().unwrap().remaining;
    assert_eq!(left, 1, "3 - 1 taken - the peek's own unit");
    assert_eq!(factory.stats().lost_undos, 0);
}

/// The policy file's `on_failure` for a limit wins over the factory's options: the
/// engine applies it, and counts it per limit.
#[test]
fn the_policy_files_on_failure_wins_over_the_options() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let s = store(&server, LONG);
    let factory = Arc::new(RedisFactory::new(Arc::clone(&s)).options(LimitOptions {
        failure: FailurePolicy::Fallback,
        ..LimitOptions::default()
    }));
    let (policy, _) = Policy::from_toml(&LIMITS.replace(
        "backend = \"redis\"",
        "backend = \"redis\"\non_failure = \"closed\"",
    ))
    .unwrap();
    let e = Engine::builder(policy)
        .backend(
            "redis",
            Arc::clone(&factory) as Arc<dyn tollgate::BackendFactory>,
        )
        .build()
        .unwrap();
    assert_eq!(decide(&e, "acme"), Reason::Allowed);
    server.kill();
    for _ in 0..3 {
        assert_eq!(decide(&e, "acme"), Reason::Unavailable);
    }
    assert_eq!((factory.stats().failures, factory.stats().fallback), (3, 0));
}

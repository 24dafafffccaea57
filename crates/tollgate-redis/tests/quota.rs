//! Monthly quotas on a real redis-server: engines of a fleet sharing a company's
//! counter, a counter that vanished re-seeded from the ledgers (also from a journal
//! after the instance itself restarted), idempotent flushes, batching.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tollgate::quota::{CommitOutcome, Ledger, Outcome};
use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{QuotaOptions, RedisQuota, RedisStore};

const KEY_A: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";
const KEY_B: &str = "77aa0000-1111-2222-3333-444455556666";

/// Acme: 10 calls a month (1 machine x 10), refused above 15.
fn policy(journal: Option<&std::path::Path>) -> Policy {
    let journal = journal.map_or(String::new(), |p| format!("journal = {:?}\n", p));
    let toml = format!(
        r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/s"
[quota]
warning_percent = 80
hard_cap_percent = 150
{journal}
[[quota.plans]]
name = "free"
calls_per_unit = 10
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  {{ id = "ann", keys = ["{KEY_A}"] }},
  {{ id = "bob", keys = ["{KEY_B}"] }},
]
"#
    );
    Policy::from_toml(&toml).unwrap().0
}

struct Instance {
    engine: Engine,
    quota: Arc<RedisQuota>,
}

fn instance(
    store: &Arc<RedisStore>,
    name: &str,
    options: QuotaOptions,
    journal: Option<&std::path::Path>,
) -> Instance {
    let quota = Arc::new(RedisQuota::new(Arc::clone(store), name, options));
    let engine = Engine::builder(policy(journal))
        .quota_store(Arc::clone(&quota) as Arc<dyn tollgate::QuotaStore>)
        .build()
        .unwrap();
    Instance { engine, quota }
}

fn ledger(i: &Instance) -> &Ledger {
    i.engine.ledger().unwrap()
}

/// This instance's own count for acme this period.
fn share(i: &Instance) -> u64 {
    ledger(i)
        .company_usage()
        .iter()
        .filter(|r| r.company == "acme")
        .map(|r| r.used)
        .sum()
}

/// The counter's fields in Redis: (used, i:gw-1, i:gw-2).
fn counter(server: &RedisServer) -> (u64, u64, u64) {
    let mut c = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("tg:*:q:*").query(&mut c).unwrap();
    if keys.is_empty() {
        return (0, 0, 0);
    }
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("tg:{c:") && !keys[0].contains("acme"),
        "{keys:?}"
    );
    let get = |c: &mut redis::Connection, f: &str| -> u64 {
        redis::cmd("HGET")
            .arg(&keys[0])
            .arg(f)
            .query::<Option<u64>>(c)
            .unwrap()
            .unwrap_or(0)
    };
    (
        get(&mut c, "used"),
        get(&mut c, "i:gw-1"),
        get(&mut c, "i:gw-2"),
    )
}

fn call(i: &Instance, key: &str) -> Reason {
    i.engine.decide(&Request::new().token(key)).reason
}

#[test]
fn two_instances_share_one_company_quota() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    let gw1 = Arc::new(instance(&store, "gw-1", QuotaOptions::default(), None));
    let gw2 = Arc::new(instance(&store, "gw-2", QuotaOptions::default(), None));
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = [(&gw1, KEY_A), (&gw2, KEY_B)]
        .into_iter()
        .map(|(gw, key)| {
            let (gw, barrier) = (Arc::clone(gw), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                (0..40)
                    .filter(|_| call(&gw, key) == Reason::Allowed)
                    .count() as u64
            })
        })
        .collect();
    let served: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // The hard cap (15) holds for the fleet, not per instance.
    assert_eq!(served.iter().sum::<u64>(), 15, "{served:?}");
    let (used, s1, s2) = counter(&server);
    assert_eq!((used, s1, s2), (15, served[0], served[1]));
    // Each instance's ledger holds exactly its share.
    assert_eq!((share(&gw1), share(&gw2)), (s1, s2));
    // The warning and the overage were raised once for the fleet.
    let events = gw1.engine.drain_events().len() + gw2.engine.drain_events().len();
    assert_eq!(events, 2);
    assert!(gw1.quota.reseeded().is_empty() && gw2.quota.reseeded().is_empty());
}

#[test]
fn a_vanished_counter_is_reported_and_reseeded_never_restarted_at_zero() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    let gw1 = instance(&store, "gw-1", QuotaOptions::default(), None);
    let gw2 = instance(&store, "gw-2", QuotaOptions::default(), None);
    for _ in 0..4 {
        assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    }
    for _ in 0..3 {
        assert_eq!(call(&gw2, KEY_B), Reason::Allowed);
    }
    assert_eq!(counter(&server), (7, 4, 3));
    // Redis loses everything (a restart without persistence, a failover).
    let mut c = server.connection();
    redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    // gw-1 re-seeded its 4 and counted its call: 5, not 1.
    assert_eq!(counter(&server), (5, 5, 0));
    let r = gw1.quota.reseeded();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].company.as_str(), r[0].seeded, r[0].used),
        ("acme", 4, 4)
    );
    assert_eq!(call(&gw2, KEY_B), Reason::Allowed);
    assert_eq!(counter(&server), (9, 5, 4));
    assert_eq!(gw2.quota.reseeded().len(), 1);
    // Back to exact: 9 + 6 = 15 served, the 16th refused.
    for _ in 0..6 {
        assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    }
    assert_eq!(call(&gw2, KEY_B), Reason::QuotaExceeded);
    assert_eq!(counter(&server).0, 15);
    assert_eq!(share(&gw1) + share(&gw2), 15);
}

#[test]
fn an_instance_restarted_from_its_journal_reseeds_its_durable_share() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("usage.db");
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    {
        let gw1 = instance(&store, "gw-1", QuotaOptions::default(), Some(&journal));
        for _ in 0..6 {
            assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
        }
        ledger(&gw1).sync().unwrap();
    }
    // The instance and Redis both restart; the instance's journal has its 6 calls.
    let mut c = server.connection();
    redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    let gw1 = instance(&store, "gw-1", QuotaOptions::default(), Some(&journal));
    assert_eq!(share(&gw1), 6, "restored from the journal");
    assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    assert_eq!(counter(&server), (7, 7, 0));
    let r = gw1.quota.reseeded();
    assert_eq!(
        r.len(),
        1,
        "a non-zero share missing from Redis is reported"
    );
    assert_eq!(r[0].seeded, 6);
    // Restarted again, Redis intact: its share is there, nothing is added twice.
    drop(gw1);
    let gw1 = instance(&store, "gw-1", QuotaOptions::default(), Some(&journal));
    assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    assert_eq!(counter(&server), (8, 8, 0));
    assert!(gw1.quota.reseeded().is_empty());
}

#[test]
fn a_retried_flush_is_counted_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut c = server.connection();
    let k = "tg:{c:acme}:q:0";
    let flush = redis::Script::new(tollgate_redis::store::scripts::QUOTA_FLUSH);
    // A batch of `calls` with id `batch`, no notice thresholds, no lost replies.
    let flush_batch = |c: &mut redis::Connection, inst: &str, batch: u64, calls: u64| {
        flush
            .key(k)
            .key("tg:{c:acme}:n:w")
            .key("tg:{c:acme}:n:o")
            .arg(inst)
            .arg(batch)
            .arg(calls)
            .arg(-1)
            .arg(i64::MAX)
            .arg(4_000_000_000u64)
            .arg(format!("{inst}:b{batch}"))
            .arg(3600)
            .arg(0)
            .invoke::<Vec<i64>>(c)
            .unwrap()
    };
    let seed = redis::Script::new(tollgate_redis::store::scripts::QUOTA_SEED);
    let r: Vec<i64> = flush_batch(&mut c, "gw-1", 77, 5);
    assert_eq!(
        r,
        [-1, 0, 0, 0],
        "a missing counter is reported, not created at 5"
    );
    let r: Vec<i64> = seed
        .key(k)
        .arg("gw-1")
        .arg(10)
        .arg(4_000_000_000u64)
        .invoke(&mut c)
        .unwrap();
    assert_eq!(r, [1, 10, 0]);
    let r: Vec<i64> = seed
        .key(k)
        .arg("gw-1")
        .arg(10)
        .arg(4_000_000_000u64)
        .invoke(&mut c)
        .unwrap();
    assert_eq!(r, [0, 10, 1], "a retried seed counts once");
    let r: Vec<i64> = flush_batch(&mut c, "gw-1", 77, 5);
    assert_eq!(r, [1, 15, 0, 0]);
    let r: Vec<i64> = flush_batch(&mut c, "gw-1", 77, 5);
    assert_eq!(r, [2, 15, 0, 0], "the same batch again: counted once");
    let r: Vec<i64> = flush_batch(&mut c, "gw-1", 78, 1);
    assert_eq!(r, [1, 16, 0, 0]);
    let r: Vec<i64> = flush_batch(&mut c, "gw-2", 78, 1);
    assert_eq!(
        r,
        [-2, 16, 0, 0],
        "another instance without its share seeds first"
    );
}

#[test]
fn batched_increments_reach_redis_and_their_overshoot_is_bounded() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    let options = QuotaOptions {
        batch: Some(Duration::from_secs(3600)),
        ..QuotaOptions::default()
    };
    let gw1 = instance(&store, "gw-1", options, None);
    let gw2 = instance(&store, "gw-2", options, None);
    // Within one flush interval neither instance sees the other's calls: each serves
    // up to the hard cap on its own.
    let served1 = (0..20)
        .filter(|_| call(&gw1, KEY_A) == Reason::Allowed)
        .count() as u64;
    let served2 = (0..20)
        .filter(|_| call(&gw2, KEY_B) == Reason::Allowed)
        .count() as u64;
    assert_eq!((served1, served2), (15, 15));
    assert_eq!(store.stats().network_calls, 0, "nothing sent yet");
    assert_eq!(gw1.quota.flush(ledger(&gw1)), 0);
    assert_eq!(gw2.quota.flush(ledger(&gw2)), 0);
    // Every call counted once, each instance's share in its field.
    assert_eq!(counter(&server), (30, 15, 15));
    // The accuracy trade-off: the fleet served 30 against a hard cap of 15, at most
    // what each instance can serve in one interval. After the flush the last instance
    // to flush sees the fleet's usage.
    assert_eq!(call(&gw2, KEY_B), Reason::QuotaExceeded);
    assert_eq!(call(&gw1, KEY_A), Reason::QuotaExceeded);
    let again = gw1.quota.flush(ledger(&gw1));
    assert_eq!(again, 0);
    assert_eq!(counter(&server).0, 30);
}

#[test]
fn the_flusher_thread_sends_batched_calls_without_further_calls() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    let options = QuotaOptions {
        batch: Some(Duration::from_millis(20)),
        ..QuotaOptions::default()
    };
    let gw1 = instance(&store, "gw-1", options, None);
    let flusher = gw1.quota.spawn_flusher(
        Arc::clone(gw1.engine.ledger().unwrap()),
        Duration::from_millis(20),
    );
    for _ in 0..9 {
        assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    }
    // No call comes after: the thread flushes (bounded wait; no time is asserted).
    // Redis shows the count before the thread has read the reply and cleared its
    // batch in flight, so wait for both.
    let mut tries = 0;
    while counter(&server).0 != 9 || gw1.quota.unsent() != 0 {
        assert!(
            tries < 1000,
            "never flushed: {:?}, unsent {}",
            counter(&server),
            gw1.quota.unsent()
        );
        std::thread::sleep(Duration::from_millis(10));
        tries += 1;
    }
    assert_eq!(counter(&server).0, 9);
    // Dropping the handle flushes what is left and stops the thread.
    assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
    drop(flusher);
    assert_eq!(counter(&server), (10, 10, 0));
}

/// Reservations go through the shared counter: the fleet sees a reservation at once, a
/// commit replaces the held cost by the final one once per idempotency key across the
/// fleet (a commit with the same key on another instance only releases its hold), a
/// refund releases the hold, a reservation over the hard cap holds nothing, and each
/// instance's ledger keeps exactly its share.
#[test]
fn reservations_are_shared_by_the_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    let gw1 = instance(&store, "gw-1", QuotaOptions::default(), None);
    let gw2 = instance(&store, "gw-2", QuotaOptions::default(), None);
    let r1 = gw1.engine.reserve_quota(KEY_A, 5, None).unwrap().unwrap();
    assert_eq!((r1.decision.used, r1.held()), (5, 5));
    assert_eq!(counter(&server), (5, 5, 0));
    // gw-2 sees the reservation.
    let d = gw2.engine.decide(&Request::new().token(KEY_B));
    assert_eq!(d.quota.map(|q| q.used), Some(6));
    assert_eq!(
        gw1.engine.commit_quota(r1, 3, "req-1"),
        Some(CommitOutcome::Committed)
    );
    assert_eq!(counter(&server), (4, 3, 1));
    // The same idempotency key on the other instance: the hold is released, nothing
    // counted.
    let r2 = gw2.engine.reserve_quota(KEY_B, 2, None).unwrap().unwrap();
    assert_eq!(counter(&server), (6, 3, 3));
    assert_eq!(
        gw2.engine.commit_quota(r2, 2, "req-1"),
        Some(CommitOutcome::Duplicate)
    );
    assert_eq!(counter(&server), (4, 3, 1));
    // A refund releases the hold.
    let r3 = gw2.engine.reserve_quota(KEY_B, 4, None).unwrap().unwrap();
    assert_eq!(counter(&server).0, 8);
    gw2.engine.refund_quota(r3);
    assert_eq!(counter(&server), (4, 3, 1));
    // Over the hard cap (15): refused, holds nothing.
    let r4 = gw1.engine.reserve_quota(KEY_A, 12, None).unwrap().unwrap();
    assert_eq!((r4.decision.outcome, r4.held()), (Outcome::Refused, 0));
    gw1.engine.refund_quota(r4);
    assert_eq!(counter(&server), (4, 3, 1));
    assert_eq!((share(&gw1), share(&gw2)), (3, 1));
    assert_eq!(store.stats().errors, 0);
}

/// A commit and a refund made while Redis is down settle in the instance's ledger at
/// once and reach Redis, once, when it returns: with persistence the counter keeps the
/// holds and the settlements replace them; without it, the share is re-seeded from the
/// ledger (which already holds the settlements) and nothing is counted twice.
#[test]
fn settlements_during_an_outage_reach_redis_once() {
    for persistent in [true, false] {
        let Some(mut server) = RedisServer::start_persistent(persistent) else {
            return;
        };
        let store = RedisStore::new(tollgate_redis::testing::config(server.url()).breaker(
            tollgate_redis::BreakerConfig {
                failures: 1,
                cooldown: Duration::ZERO,
                first_cooldown: Duration::ZERO,
            },
        ))
        .unwrap();
        let gw1 = instance(&store, "gw-1", QuotaOptions::default(), None);
        assert_eq!(call(&gw1, KEY_A), Reason::Allowed);
        let r1 = gw1.engine.reserve_quota(KEY_A, 5, None).unwrap().unwrap();
        let r2 = gw1.engine.reserve_quota(KEY_A, 3, None).unwrap().unwrap();
        assert_eq!(counter(&server).0, 9);
        server.kill();
        assert_eq!(
            gw1.engine.commit_quota(r1, 2, "req-1"),
            Some(CommitOutcome::Committed)
        );
        gw1.engine.refund_quota(r2);
        assert_eq!(share(&gw1), 3, "the ledger settled at once");
        server.restart();
        store.drop_idle();
        assert_eq!(gw1.quota.flush(ledger(&gw1)), 0);
        assert_eq!(counter(&server), (3, 3, 0), "persistent: {persistent}");
        // Sent once: flushing again, or a retried commit key, changes nothing.
        gw1.quota.flush(ledger(&gw1));
        let r3 = gw1.engine.reserve_quota(KEY_A, 1, None).unwrap().unwrap();
        assert_eq!(
            gw1.engine.commit_quota(r3, 1, "req-1"),
            Some(CommitOutcome::Duplicate)
        );
        assert_eq!(counter(&server), (3, 3, 0), "persistent: {persistent}");
        assert_eq!(share(&gw1), 3);
        assert_eq!(
            gw1.quota.reseeded().len(),
            usize::from(!persistent),
            "persistent: {persistent}"
        );
    }
}

/// The settle script applies a settlement once: sent again with the same id (a retry
/// after a lost reply), it changes nothing; a second commit with the same idempotency
/// key only releases its hold; huge final costs go through as integers.
#[test]
fn the_settle_script_applies_each_settlement_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut c = server.connection();
    let k = "tg:{c:acme}:q:0";
    redis::cmd("HSET")
        .arg(k)
        .arg("used")
        .arg(10)
        .arg("i:gw")
        .arg(10)
        .query::<()>(&mut c)
        .unwrap();
    let settle = redis::Script::new(tollgate_redis::store::scripts::QUOTA_SETTLE);
    let mut run = |id: u64, held: u64, commit: Option<(&str, &str)>| -> Vec<i64> {
        let (cost, key) = commit.unwrap_or(("", ""));
        settle
            .key(k)
            .arg("gw")
            .arg(id)
            .arg(held)
            .arg(cost)
            .arg(key)
            .invoke(&mut c)
            .unwrap()
    };
    assert_eq!(run(1, 4, Some(("7", "req"))), vec![1, 13]);
    assert_eq!(run(1, 4, Some(("7", "req"))), vec![3, 13], "a retry");
    assert_eq!(run(2, 4, Some(("7", "req"))), vec![2, 9], "a duplicate key");
    assert_eq!(run(3, 5, None), vec![1, 4], "a refund");
    assert_eq!(run(3, 5, None), vec![3, 4]);
    let huge = (1u64 << 62).to_string();
    assert_eq!(run(4, 0, Some((&huge, "big"))), vec![1, 4 + (1 << 62)]);
    assert_eq!(run(9, 1, None), vec![1, 3 + (1 << 62)]);
    // Without this instance's share the script asks for a seed and applies nothing.
    redis::cmd("HDEL")
        .arg(k)
        .arg("i:gw")
        .query::<()>(&mut server.connection())
        .unwrap();
    assert_eq!(run(5, 1, None)[0], -2);
}

/// Unix nanoseconds of call `m` of a call a month: 31 days apart from 2027-01-15, so
/// each falls in a later month than the one before.
fn month_call(m: u64) -> u64 {
    const START: u64 = 1_800_000_000; // 2027-01-15
    (START + m * 31 * 86_400) * 1_000_000_000
}

#[test]
fn counters_of_ended_periods_are_dropped_once_nothing_waits() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::config(server.url())).unwrap();
    let decide = |i: &Instance, m: u64| {
        let d = i
            .engine
            .decide(&Request::new().token(KEY_A).at(month_call(m)));
        assert_eq!(d.reason, Reason::Allowed, "month {m}");
    };
    // A call a month for 600 months: without sweeping, 600 counters would stay.
    let gw1 = instance(&store, "gw-1", QuotaOptions::default(), None);
    for m in 0..600 {
        decide(&gw1, m);
    }
    let tracked = gw1.quota.stats().tracked;
    assert!((1..=256).contains(&tracked), "{tracked} counters held");
    assert_eq!(server.quota_used("tg"), 600);

    // Batched calls wait to be sent: their counters stay until the flush sends them.
    let options = QuotaOptions {
        batch: Some(Duration::from_secs(3600)),
        ..QuotaOptions::default()
    };
    let gw2 = instance(&store, "gw-2", options, None);
    for m in 0..300 {
        decide(&gw2, m);
    }
    assert_eq!(gw2.quota.stats().tracked, 300);
    assert_eq!(gw2.quota.unsent(), 300);
    assert_eq!(gw2.quota.flush(ledger(&gw2)), 0);
    assert_eq!(
        server.quota_used("tg"),
        900,
        "every batched call reached Redis"
    );
    // Sent, the flush dropped all but the newest period's.
    assert_eq!(gw2.quota.stats().tracked, 1);
    // A late call into a dropped period (the quota store asked directly: the engine's
    // in-memory limit would refuse a time 50 years back) is still counted on its
    // counter in Redis, with the fleet's usage.
    let late = tollgate::QuotaStore::record(&*gw1.quota, ledger(&gw1), KEY_A, 1, month_call(0));
    let late = late.unwrap();
    // Month 0's counter held a call of each instance.
    assert_eq!((late.outcome, late.used), (Outcome::Within, 3));
    assert_eq!(gw1.quota.flush(ledger(&gw1)), 0);
    assert_eq!(server.quota_used("tg"), 901);
}

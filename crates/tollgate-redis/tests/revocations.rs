//! Revocations shared by a fleet through Redis ([`RedisRevocations`]): engines on one
//! real redis-server, each with its own store (as separate instances would be). A
//! change on one refuses (or frees) the token on the others within
//! [`RedisRevocations::delay_bound`] (checked with a bounded loop, plus slack for a
//! loaded test machine); a later instance starts from the fleet's set; a revocation
//! made while Redis is down reaches the others when it returns; no token is ever in
//! Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisServer;
use tollgate_redis::{
    BreakerConfig, RedisRevocations, RedisStore, RevocationOptions, RevocationStats,
};

const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/s"
"#;

const AUTO: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "2/h"
[revocation]
denials = 1
window = "1m"
"#;

/// Extra time over the documented bound for a loaded machine (threads scheduled late).
const SLACK: Duration = Duration::from_secs(2);

/// A breaker that lets a probe through at once, so a restarted Redis is used at once.
const PROBE_ALWAYS: BreakerConfig = BreakerConfig {
    failures: 1,
    cooldown: Duration::ZERO,
    first_cooldown: Duration::ZERO,
};

struct Instance {
    engine: Engine,
    sync: Arc<RedisRevocations>,
}

fn instance(server: &RedisServer, policy: &str) -> Instance {
    let store = RedisStore::new(
        tollgate_redis::testing::config(server.url())
            .breaker(PROBE_ALWAYS)
            .timeouts(Duration::from_millis(200), Duration::from_millis(200)),
    )
    .unwrap();
    let sync = RedisRevocations::new(
        store,
        RevocationOptions::default().poll(Duration::from_millis(50)),
    );
    let (policy, _) = Policy::from_toml(policy).unwrap();
    let engine = Engine::builder(policy)
        .revocation_sync(Arc::clone(&sync) as Arc<dyn tollgate::RevocationSync>)
        .build()
        .unwrap();
    Instance { engine, sync }
}

fn reason(e: &Engine, token: &str) -> Reason {
    e.decide(&Request::new().token(token)).reason
}

/// Decides `token` on `e` until its reason is `want`, at most `bound` + [`SLACK`];
/// returns how long it took.
fn until_reason(e: &Engine, token: &str, want: Reason, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = reason(e, token);
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound + SLACK,
            "{token}: still {got:?} after {:?} (bound {bound:?} + slack)",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every key name and every value under the server's keys, as text.
fn redis_dump(server: &RedisServer) -> String {
    let mut c = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    let mut out = String::new();
    for k in keys {
        out.push_str(&k);
        out.push('\n');
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
        let v: redis::Value = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap(),
            "stream" => redis::cmd("XRANGE")
                .arg(&k)
                .arg("-")
                .arg("+")
                .query(&mut c)
                .unwrap(),
            "string" => redis::cmd("GET").arg(&k).query(&mut c).unwrap(),
            other => panic!("unexpected key type {other} of {k}"),
        };
        out.push_str(&format!("{v:?}\n"));
    }
    out
}

/// The key names `redis-cli --scan` lists and each key's values as `redis-cli --raw`
/// shows them (`HGETALL`, `XRANGE`, `GET`): what an operator would see. `None` without
/// redis-cli.
fn redis_cli_dump(server: &RedisServer) -> Option<String> {
    let cli = tollgate_redis::testing::find_binary("redis-cli")?;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&cli)
            .arg("-p")
            .arg(server.port().to_string())
            .arg("--raw")
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = run(&["--scan"]);
    let mut all = keys.clone();
    for k in keys.lines().filter(|k| !k.is_empty()) {
        let kind = run(&["TYPE", k]);
        match kind.trim() {
            "hash" => all.push_str(&run(&["HGETALL", k])),
            "stream" => all.push_str(&run(&["XRANGE", k, "-", "+"])),
            "string" => all.push_str(&run(&["GET", k])),
            other => panic!("unexpected key type {other} of {k}"),
        }
    }
    Some(all)
}

/// Neither the token nor a long piece of it appears in a key name or value (read with
/// the redis crate, and with `redis-cli --scan` when it is installed).
fn assert_not_in_redis(server: &RedisServer, tokens: &[&str]) {
    let mut dump = redis_dump(server);
    if let Some(cli) = redis_cli_dump(server) {
        assert!(cli.contains(":{rev}:log"), "{cli}");
        dump.push_str(&cli);
    }
    assert!(dump.contains(":{rev}:log"), "{dump}");
    for t in tokens {
        for piece in [&t[..], &t[..8], &t[t.len() - 8..]] {
            assert!(
                !dump.contains(piece),
                "{piece:?} of a token is in Redis:\n{dump}"
            );
        }
        // Nor its bytes as the redis crate's Debug shows them.
        assert!(
            !dump.contains(&format!("{:?}", t.as_bytes())[1..20]),
            "{dump}"
        );
    }
}

#[test]
fn a_revocation_on_one_instance_refuses_the_token_on_another_and_a_restore_frees_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = instance(&server, POLICY);
    let b = instance(&server, POLICY);
    let bound = a.sync.delay_bound();
    let token = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    assert_eq!(reason(&b.engine, token), Reason::Allowed);

    assert!(a.engine.admin().revoke(token));
    assert_eq!(reason(&a.engine, token), Reason::Revoked);
    let took = until_reason(&b.engine, token, Reason::Revoked, bound);
    eprintln!("revocation A -> B: {took:?} (bound {bound:?})");
    assert!(b.engine.is_revoked(token));
    assert_eq!(b.engine.revoked(), a.engine.revoked(), "same key reference");
    assert_eq!(a.engine.revocations_unshared(), Some(0));

    // Restored on B: A serves it again.
    assert!(b.engine.admin().restore(token));
    assert_eq!(reason(&b.engine, token), Reason::Allowed);
    let took = until_reason(&a.engine, token, Reason::Allowed, bound);
    eprintln!("restoration B -> A: {took:?}");
    assert!(!a.engine.is_revoked(token));
    assert!(a.engine.revoked().is_empty());
    // Another token was never touched on either.
    assert_eq!(
        reason(&b.engine, "sk_live_other_token_000000"),
        Reason::Allowed
    );
    assert_not_in_redis(&server, &[token]);
    let stats: RevocationStats = b.sync.stats();
    assert!(stats.written >= 1 && stats.received >= 1, "{stats:?}");
}

#[test]
fn a_suspension_ends_on_both_instances() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = instance(&server, POLICY);
    let b = instance(&server, POLICY);
    let bound = a.sync.delay_bound();
    let token = "tok_suspended_9f8e7d6c5b4a3928";
    let length = Duration::from_millis(1500);
    let suspended = Instant::now();
    assert!(a.engine.admin().suspend_token(token, length));
    until_reason(&b.engine, token, Reason::Revoked, bound);
    // Served again on both once it ended (on A's clock, shared as an end time), with
    // no further change made by anyone.
    until_reason(&b.engine, token, Reason::Allowed, length + bound);
    until_reason(&a.engine, token, Reason::Allowed, length + bound);
    assert!(suspended.elapsed() >= length - Duration::from_millis(50));
    assert!(!b.engine.is_revoked(token) && !a.engine.is_revoked(token));
    assert_not_in_redis(&server, &[token]);
}

#[test]
fn an_instance_started_later_starts_with_the_fleet_set() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = instance(&server, POLICY);
    let revoked = "sk_live_revoked_long_ago_12345678";
    let suspended = "sk_live_suspended_for_a_while_00";
    let restored = "sk_live_restored_again_87654321";
    assert!(a.engine.admin().revoke(revoked));
    assert!(a
        .engine
        .admin()
        .suspend_token(suspended, Duration::from_secs(3600)));
    assert!(a.engine.admin().revoke(restored));
    assert!(a.engine.admin().restore(restored));
    // Wait until A's changes are written.
    let start = Instant::now();
    while a.engine.revocations_unshared() != Some(0) {
        assert!(start.elapsed() < a.sync.delay_bound() + SLACK);
        std::thread::sleep(Duration::from_millis(5));
    }
    // A new instance's first decision already refuses them: build read the set.
    let c = instance(&server, POLICY);
    assert_eq!(reason(&c.engine, revoked), Reason::Revoked);
    assert_eq!(reason(&c.engine, suspended), Reason::Revoked);
    assert_eq!(reason(&c.engine, restored), Reason::Allowed);
    assert_eq!(c.engine.revoked().len(), 2);
    assert_eq!(c.sync.stats().full_reads, 1);
    assert_not_in_redis(&server, &[revoked, suspended, restored]);
}

#[test]
fn an_automatic_revocation_is_shared() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = instance(&server, AUTO);
    let b = instance(&server, AUTO);
    let token = "tok_misbehaving_client_abcdef12";
    // 2/h, one denial revokes: the third request on A is denied and revokes.
    assert_eq!(reason(&a.engine, token), Reason::Allowed);
    assert_eq!(reason(&a.engine, token), Reason::Allowed);
    assert_eq!(reason(&a.engine, token), Reason::Limited);
    assert!(a.engine.is_revoked(token));
    // B never saw the token's traffic (memory limits): refused as revoked anyway.
    until_reason(&b.engine, token, Reason::Revoked, a.sync.delay_bound());
    assert_not_in_redis(&server, &[token]);
}

#[test]
fn a_revocation_made_while_redis_is_down_reaches_the_other_instance_when_it_returns() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = instance(&server, POLICY);
    let b = instance(&server, POLICY);
    let bound = a.sync.delay_bound();
    let before = "sk_live_revoked_before_outage_01";
    let during = "sk_live_revoked_during_outage_02";
    assert!(b.engine.admin().revoke(before));
    until_reason(&a.engine, before, Reason::Revoked, bound);

    // Redis killed (without persistence: it comes back empty).
    server.kill();
    assert!(a.engine.admin().revoke(during));
    // Applied locally at once; not shared yet.
    assert_eq!(reason(&a.engine, during), Reason::Revoked);
    std::thread::sleep(bound);
    assert_eq!(reason(&b.engine, during), Reason::Allowed);
    assert_eq!(a.engine.revocations_unshared(), Some(1));
    // Both still refuse what was shared before the outage.
    assert_eq!(reason(&a.engine, before), Reason::Revoked);
    assert_eq!(reason(&b.engine, before), Reason::Revoked);

    server.restart();
    let took = until_reason(&b.engine, during, Reason::Revoked, bound);
    eprintln!("revocation made during the outage reached B {took:?} after Redis returned");
    assert_eq!(reason(&b.engine, before), Reason::Revoked);
    // Redis lost its state: each instance wrote its set back, so a later instance
    // starts with both revocations.
    let start = Instant::now();
    while a.engine.revocations_unshared() != Some(0) || b.engine.revocations_unshared() != Some(0) {
        assert!(start.elapsed() < bound + SLACK);
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = instance(&server, POLICY);
    assert_eq!(reason(&c.engine, before), Reason::Revoked);
    assert_eq!(reason(&c.engine, during), Reason::Revoked);
    assert!(a.sync.stats().errors > 0);
    assert!(a.sync.stats().epochs_lost + b.sync.stats().epochs_lost >= 1);
    assert_not_in_redis(&server, &[before, during]);
}

#[test]
fn a_persistent_redis_restart_keeps_the_set_and_the_log_position() {
    let Some(mut server) = RedisServer::start_persistent(true) else {
        return;
    };
    let a = instance(&server, POLICY);
    let b = instance(&server, POLICY);
    let bound = a.sync.delay_bound();
    let token = "sk_live_kept_across_restart_0003";
    server.kill();
    assert!(a.engine.admin().revoke(token));
    server.restart();
    until_reason(&b.engine, token, Reason::Revoked, bound);
    // Nothing was lost: no instance had to write its set back.
    assert_eq!(a.sync.stats().epochs_lost + b.sync.stats().epochs_lost, 0);
    assert_not_in_redis(&server, &[token]);
}

/// An instance whose quota journal keeps its revocations (keyed by the fleet's
/// fingerprint when a sync is set).
fn journaled(server: &RedisServer, journal: &std::path::Path) -> Instance {
    let policy = format!(
        "version = 1\n[quota]\n[quota.journal]\npath = {:?}\n\
         [[quota.plans]]\nname = \"free\"\ncalls_per_unit = 1000\ndefault = true\n\
         [[quota.companies]]\nid = \"acme\"\nmachines = 1\n\
         users = [{{ id = \"ann\", keys = [\"ann-key-0001\"] }}]\n",
        journal.display().to_string()
    );
    instance(server, &policy)
}

#[test]
fn with_a_journal_a_restart_while_redis_is_down_keeps_the_fleet_set_and_shares_it_back() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let a = journaled(&server, &path);
    let b = instance(&server, POLICY);
    let bound = a.sync.delay_bound();
    let from_b = "sk_live_revoked_by_b_0000000001";
    let from_a = "sk_live_revoked_by_a_0000000002";
    assert!(b.engine.admin().revoke(from_b));
    until_reason(&a.engine, from_b, Reason::Revoked, bound);
    assert!(a.engine.admin().revoke(from_a));
    until_reason(&b.engine, from_a, Reason::Revoked, bound);
    drop(a);

    // A restarts while Redis is down: its journal's rows (its own revocation and the
    // one it received) match the tokens, keyed by the fleet's fingerprint.
    server.kill();
    let a = journaled(&server, &path);
    assert_eq!(reason(&a.engine, from_a), Reason::Revoked);
    assert_eq!(reason(&a.engine, from_b), Reason::Revoked);

    // Redis returns empty: both write their sets back; a new instance sees both.
    server.restart();
    let start = Instant::now();
    let c = loop {
        let c = instance(&server, POLICY);
        if reason(&c.engine, from_a) == Reason::Revoked
            && reason(&c.engine, from_b) == Reason::Revoked
        {
            break c;
        }
        assert!(start.elapsed() < bound + SLACK, "not written back in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(c.engine.revoked().len(), 2);
    assert_not_in_redis(&server, &[from_a, from_b]);
    let bytes = std::fs::read(&path).unwrap();
    for t in [from_a, from_b] {
        assert!(!bytes.windows(t.len()).any(|w| w == t.as_bytes()));
    }
}

#[test]
fn on_a_redis_cluster_the_three_keys_share_a_slot_and_changes_travel() {
    let Some(cluster) = tollgate_redis::testing::RedisCluster::start() else {
        return;
    };
    let make = || {
        let store = RedisStore::new(
            tollgate_redis::testing::cluster_config(cluster.urls())
                .timeouts(Duration::from_millis(200), Duration::from_millis(200)),
        )
        .unwrap();
        let sync = RedisRevocations::new(store, RevocationOptions::default());
        let (policy, _) = Policy::from_toml(POLICY).unwrap();
        let engine = Engine::builder(policy)
            .revocation_sync(Arc::clone(&sync) as Arc<dyn tollgate::RevocationSync>)
            .build()
            .unwrap();
        Instance { engine, sync }
    };
    let a = make();
    let b = make();
    let tags: std::collections::HashSet<&str> = a
        .sync
        .keys()
        .iter()
        .map(|k| tollgate_redis::keys::hash_tag(k))
        .collect();
    assert_eq!(tags.len(), 1, "{:?}", a.sync.keys());
    let token = "sk_live_cluster_token_0000000004";
    assert!(a.engine.admin().revoke(token));
    until_reason(&b.engine, token, Reason::Revoked, a.sync.delay_bound());
    assert!(b.engine.admin().restore(token));
    until_reason(&a.engine, token, Reason::Allowed, a.sync.delay_bound());
    assert_eq!(a.sync.stats().errors + b.sync.stats().errors, 0);
}

#[test]
fn an_instance_that_fell_behind_a_trimmed_log_reads_the_whole_set() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = |s: &RedisServer| {
        RedisStore::new(
            tollgate_redis::testing::config(s.url())
                .timeouts(Duration::from_millis(200), Duration::from_millis(200)),
        )
        .unwrap()
    };
    let build = |sync: &Arc<RedisRevocations>| {
        let (policy, _) = Policy::from_toml(POLICY).unwrap();
        Engine::builder(policy)
            .revocation_sync(Arc::clone(sync) as Arc<dyn tollgate::RevocationSync>)
            .build()
            .unwrap()
    };
    let opts = RevocationOptions::default().log_len(100);
    let a_sync = RedisRevocations::new(store(&server), opts.poll(Duration::from_millis(20)));
    let a = build(&a_sync);
    // B reads every 3 s: A's 600 changes meanwhile overflow the log (about 100 kept).
    let b_sync = RedisRevocations::new(store(&server), opts.poll(Duration::from_secs(3)));
    let b = build(&b_sync);
    let tokens: Vec<String> = (0..300).map(|i| format!("sk_live_trim_{i:08}_x")).collect();
    let early = "sk_live_restored_in_the_gap_0005";
    assert!(b.admin().revoke(early));
    let start = Instant::now();
    while !a.is_revoked(early) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "B's write not seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(a.admin().restore(early));
    for t in &tokens {
        assert!(a.admin().revoke(t));
        assert!(a.admin().restore(t));
        assert!(a.admin().revoke(t));
    }
    let start = Instant::now();
    while a.revocations_unshared() != Some(0) {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut c = server.connection();
    let len: u64 = redis::cmd("XLEN")
        .arg(&a_sync.keys()[1])
        .query(&mut c)
        .unwrap();
    assert!(len < 901, "the log was trimmed: {len}");
    let fulls = b_sync.stats().full_reads;
    let bound = b_sync.delay_bound();
    until_reason(&b, &tokens[0], Reason::Revoked, bound);
    for t in &tokens {
        assert_eq!(reason(&b, t), Reason::Revoked, "{t}");
    }
    // The restoration made while B fell behind is in force on B too.
    assert_eq!(reason(&b, early), Reason::Allowed);
    assert_eq!(b.revoked().len(), tokens.len());
    assert_eq!(b_sync.stats().full_reads, fulls + 1, "{:?}", b_sync.stats());
}

#[test]
fn dropping_the_engine_stops_its_thread() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let i = instance(&server, POLICY);
    let sync = Arc::clone(&i.sync);
    std::thread::sleep(Duration::from_millis(200));
    assert!(sync.stats().polls >= 2, "{:?}", sync.stats());
    drop(i);
    // The thread notices at its next wake (one poll) and exits.
    std::thread::sleep(Duration::from_millis(200));
    let polls = sync.stats().polls;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sync.stats().polls, polls);
}

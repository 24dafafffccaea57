//! Revocation that cannot be turned against honest users (issue 15, items 2 and 3): a
//! flood of other tokens' denials never revokes a token, the revoked set stays within
//! its bound, suspensions end, and only a token's own denials revoke it. Real traffic
//! through `Engine::decide`, with explicit times.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use tollgate::{Engine, Event, Policy, Reason, Request};

const T0: u64 = 1_800_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn engine(revocation: &str) -> Engine {
    let text = format!(
        "version = 1\n[[limit]]\nname = \"per-client\"\nkey = [\"client\"]\nrate = \"10/h\"\n\
         [revocation]\n{revocation}\n"
    );
    Engine::new(Policy::from_toml(&text).unwrap().0).unwrap()
}

/// How many attacker tokens the flood tests send (`TOLLGATE_FLOOD_TOKENS` for a longer
/// campaign; the suite's default keeps a debug run within seconds).
fn flood_tokens() -> usize {
    std::env::var("TOLLGATE_FLOOD_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// The client's 10 requests of the hour, then `n` denied requests with random tokens.
fn flood(e: &Engine, n: usize, now: u64) {
    for i in 0..10 {
        let t = format!("warm-{i}");
        assert!(e
            .decide(&Request::new().token(&t).client("10.0.0.1").at(now))
            .allowed());
    }
    attack(e, n, now);
}

/// `n` denied requests with random tokens from the client that used its hour.
fn attack(e: &Engine, n: usize, now: u64) {
    for i in 0..n {
        let t = format!("attacker-{i:08x}-{}", i.wrapping_mul(0x9E37_79B9));
        let d = e.decide(&Request::new().token(&t).client("10.0.0.1").at(now));
        assert_eq!(d.reason, Reason::Limited);
    }
}

#[test]
fn a_flood_of_other_tokens_denials_never_revokes_an_honest_token() {
    let e = engine("denials = 5\nwindow = \"1h\"");
    // A real offender before the flood is tracked and revoked as before.
    flood(&e, 0, T0);
    for _ in 0..5 {
        e.decide(&Request::new().token("offender").client("10.0.0.1").at(T0));
    }
    assert!(e.is_revoked("offender"));
    attack(&e, flood_tokens(), T0);
    // The honest token is denied once (its client is over its limit): not revoked.
    let d = e.decide(&Request::new().token("honest").client("10.0.0.1").at(T0));
    assert_eq!(d.reason, Reason::Limited);
    assert!(!e.is_revoked("honest"), "revoked on its first denial");
    let d = e.decide(&Request::new().token("honest").client("10.0.0.2").at(T0));
    assert!(d.allowed(), "{d:?}");
    // The flood's entries displace one another in the offender table (each has one
    // denial: the least to lose) or go uncounted; none is counted against another.
    let m = e.metrics();
    assert_eq!(m.revocations, 1, "only the offender: {m:?}");
}

#[test]
fn the_revoked_set_stays_within_its_bound() {
    // Every denial revokes: the attacker's tokens would all be revoked.
    let e = engine("denials = 1\nwindow = \"1h\"\nmax_revoked = 1000");
    let n = flood_tokens();
    let rss = || {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096)
    };
    let before = rss();
    flood(&e, n, T0);
    let grown = rss().saturating_sub(before);
    assert_eq!(e.revoked_len(), 1000);
    let m = e.metrics();
    assert_eq!(m.revocations, 1000);
    assert_eq!(m.revocations_refused, n as u64 - 1000);
    assert_eq!((m.revoked_entries, m.revoked_capacity), (1000, 1000));
    println!(
        "{n} attacker tokens: revoked set {} entries, RSS +{grown} bytes",
        e.revoked_len()
    );
    // An operator's revocation is recorded even when the set is full.
    assert!(e.revoke("by-hand"));
    assert!(e.is_revoked("by-hand"));
    let d = e.decide(&Request::new().token("by-hand").client("10.0.0.9").at(T0));
    assert_eq!(d.reason, Reason::Revoked);
}

#[test]
fn suspensions_end_and_free_their_place() {
    let e = engine("denials = 1\nwindow = \"1h\"\nsuspend = \"10m\"\nmax_revoked = 3");
    flood(&e, 3, T0);
    assert_eq!(e.metrics().revocations, 3);
    let events = e.drain_events();
    let suspended = events
        .iter()
        .filter(|ev| matches!(ev, Event::Suspended { until_unix_ns, automatic: true, .. } if *until_unix_ns == T0 + 600 * SEC))
        .count();
    assert_eq!(suspended, 3, "{events:?}");
    let attacker = format!("attacker-{:08x}-{}", 0, 0);
    let r = Request::new().token(&attacker).client("10.0.0.7");
    assert_eq!(e.decide(&r.at(T0 + 599 * SEC)).reason, Reason::Revoked);
    assert!(
        e.decide(&r.at(T0 + 600 * SEC)).allowed(),
        "the suspension ended"
    );
    // The set was full; the ended suspensions make room for a new one. (The client
    // has earned one request back by now: it uses it first.)
    let t = T0 + 601 * SEC;
    assert!(e
        .decide(&Request::new().token("early").client("10.0.0.1").at(t))
        .allowed());
    let d = e.decide(&Request::new().token("late").client("10.0.0.1").at(t));
    assert_eq!(d.reason, Reason::Limited);
    assert_eq!(e.metrics().revocations, 4);
    assert_eq!(e.metrics().revocations_refused, 0);
}

#[test]
fn revoke_and_suspend_work_without_a_revocation_section() {
    let e = Engine::new(
        Policy::from_toml(
            "version = 1\n[[limit]]\nname = \"l\"\nkey = [\"token\"]\nrate = \"10/s\"\n",
        )
        .unwrap()
        .0,
    )
    .unwrap();
    assert!(e.revoke("tok-a"));
    let d = e.decide(&Request::new().token("tok-a"));
    assert_eq!(
        d.reason,
        Reason::Revoked,
        "revoke() is enforced without [revocation]"
    );
    assert!(e.suspend("tok-b", Duration::from_secs(3600)));
    assert_eq!(
        e.decide(&Request::new().token("tok-b")).reason,
        Reason::Revoked
    );
    let later = e.now() + 3601 * SEC;
    assert!(e.decide(&Request::new().token("tok-b").at(later)).allowed());
    assert!(e.restore("tok-a"));
    assert!(e.decide(&Request::new().token("tok-a")).allowed());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against an exact reference (every token's denial times): whenever the engine
    /// revokes a token, that token itself was denied `denials` times within `window`.
    /// Other tokens' denials, however many, never count for it.
    #[test]
    fn only_a_tokens_own_denials_revoke_it(
        steps in prop::collection::vec((0usize..6, prop::sample::select(vec![0u64, 1, 5, 20, 61])), 1..200),
    ) {
        let window = 60 * SEC;
        let denials = 3;
        let e = Engine::new(
            Policy::from_toml(&format!(
                "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"1/h\"\n\
                 [revocation]\ndenials = {denials}\nwindow = \"1m\"\n"
            ))
            .unwrap()
            .0,
        )
        .unwrap();
        let mut now = T0;
        let mut denied: HashMap<usize, Vec<u64>> = HashMap::new();
        for (token, dt) in steps {
            now += dt * SEC;
            let name = format!("t{token}");
            let d = e.decide(&Request::new().token(&name).at(now));
            if d.reason == Reason::Limited {
                denied.entry(token).or_default().push(now);
            }
            for ev in e.drain_events() {
                if let Event::Revoked { key, .. } = ev {
                    let who = (0..6).find(|t| key == tollgate::quota::KeyRef::of(&format!("t{t}"))).unwrap();
                    prop_assert_eq!(who, token, "revoked by another token's request");
                    let own = denied.get(&who).map_or(0, |v| v.iter().filter(|&&t| t + window > now).count());
                    prop_assert!(own >= denials as usize, "t{} revoked after {} denials in the window", who, own);
                }
            }
        }
    }
}

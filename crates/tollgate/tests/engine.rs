//! The engine end to end: classes and costs, all or nothing, shadow limits, overrides,
//! revocation, the quota in the same decision, hot reload, headers, metrics, events.

use std::sync::Arc;

use tollgate::quota::QuotaEvent;
use tollgate::{Engine, Event, Policy, Reason, Request};

/// 2027-01-15T08:00:00Z in Unix nanoseconds: one month for every quota test.
const T: u64 = 1_800_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn engine(toml: &str) -> Engine {
    let (policy, warnings) = Policy::from_toml(toml).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    Engine::new(policy).unwrap()
}

fn req<'a>(token: &'a str, method: &'a str) -> Request<'a> {
    Request::new()
        .token(token)
        .tenant("t1")
        .method(method)
        .company("acme")
        .at(T)
}

const TWO_LIMITS: &str = r#"
version = 1
[[limit]]
name = "per-token-tenant"
rate = "10/s"
cost = { write = 3 }
[[limit]]
name = "per-company"
key = ["company"]
rate = "4/s"
"#;

#[test]
fn a_denied_request_takes_nothing_from_the_other_limits() {
    let e = engine(TWO_LIMITS);
    for _ in 0..4 {
        assert!(e.decide(&req("a", "GET")).allowed());
    }
    // per-token-tenant has 6 left; per-company 0: denied by the second limit...
    let d = e.decide(&req("a", "GET"));
    assert_eq!((d.reason, d.decided_by), (Reason::Limited, Some(1)));
    // ...and the first limit kept its 6.
    let peek = e.peek(&req("a", "GET").cost(6));
    assert!(peek[0].1.as_ref().unwrap().allowed(), "{peek:?}");
    assert!(!e.peek(&req("a", "GET").cost(7))[0]
        .1
        .as_ref()
        .unwrap()
        .allowed());
    let m = e.metrics();
    assert_eq!((m.allowed, m.limited), (4, 1));
    assert_eq!((m.limits[0].allowed, m.limits[1].denied), (4, 1));
}

#[test]
fn writes_cost_more_and_classes_pick_limits() {
    let e = engine(
        r#"
version = 1
[classes]
read = ["GET"]
default = "write"
[[limit]]
name = "all"
rate = "10/s"
cost = { write = 5 }
[[limit]]
name = "writes-only"
classes = ["write"]
rate = "1/s"
"#,
    );
    let d = e.decide(&req("a", "POST"));
    assert!(d.allowed());
    // The most restrictive limit reports: writes-only has 0 left.
    assert_eq!((d.decided_by, d.remaining), (Some(1), 0));
    let d = e.decide(&req("a", "DELETE"));
    assert_eq!((d.reason, d.decided_by), (Reason::Limited, Some(1)));
    // Reads are not subject to writes-only; "all" has 5 left.
    for _ in 0..5 {
        assert!(e.decide(&req("a", "get")).allowed());
    }
    assert!(!e.decide(&req("a", "GET")).allowed());
    // A cost above a limit's capacity can never pass: said at once, nothing taken.
    let d = e.decide(&req("b", "GET").cost(11));
    assert_eq!(d.reason, Reason::CannotPass);
    assert!(e.decide(&req("b", "GET").cost(10)).allowed());
}

#[test]
fn shadow_limits_report_but_do_not_refuse() {
    let e = engine(
        r#"
version = 1
[[limit]]
name = "enforced"
rate = "100/s"
[[limit]]
name = "trial"
rate = "2/s"
shadow = true
"#,
    );
    let results: Vec<_> = (0..4).map(|_| e.decide(&req("a", "GET"))).collect();
    assert!(results.iter().all(|d| d.allowed()));
    assert_eq!(
        results.iter().map(|d| d.shadow_denied).collect::<Vec<_>>(),
        [false, false, true, true]
    );
    // The reported limit is the enforced one.
    assert_eq!(results[3].decided_by, Some(0));
    let m = e.metrics();
    assert_eq!(m.limits[1].shadow_denied, 2);
    assert!(m.limits[1].shadow);
}

#[test]
fn overrides_give_one_key_its_own_rate() {
    let e = engine(
        r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "1/s"
[[limit.override]]
match = { company = "vip" }
rate = "5/s"
"#,
    );
    let vip = Request::new().company("vip").at(T);
    let other = Request::new().company("other").at(T);
    assert_eq!((0..10).filter(|_| e.decide(&vip).allowed()).count(), 5);
    assert_eq!((0..10).filter(|_| e.decide(&other).allowed()).count(), 1);
    let h = e.headers(&e.decide(&other));
    assert_eq!(h.policy.as_deref(), Some("\"per-company\";q=1;w=1"));
    assert_eq!(h.ratelimit.as_deref(), Some("\"per-company\";r=0;t=1"));
    assert_eq!(h.retry_after.as_deref(), Some("1"));
}

/// One request a second per token; three denials within a minute revoke the token.
const ONE_PER_SECOND_REVOKE_AFTER_3: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1/s"
[revocation]
denials = 3
window = "1m"
"#;

#[test]
fn repeat_offenders_are_revoked_and_restored() {
    let e = engine(ONE_PER_SECOND_REVOKE_AFTER_3);
    let r = Request::new().token("bad-token-123456").at(T);
    assert!(e.decide(&r).allowed());
    // Three denials within the window revoke the token.
    for _ in 0..3 {
        assert_eq!(e.decide(&r).reason, Reason::Limited);
    }
    assert!(e.is_revoked("bad-token-123456"));
    let later = r.at(T + 3600 * SEC);
    let d = e.decide(&later);
    assert_eq!(d.reason, Reason::Revoked);
    assert_eq!(d.retry_after_secs(), None, "waiting does not help");
    let events = e.drain_events();
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        Event::Revoked {
            attribute,
            key,
            automatic,
        } => {
            assert_eq!((attribute.as_str(), *automatic), ("token", true));
            // The token never appears in full.
            assert_eq!(*key, tollgate::quota::KeyRef::of("bad-token-123456"));
            assert!(!key.to_string().contains("bad"), "{key}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{e:?}{:?}", e.revoked()).contains("bad-token-123456"));
    // Restored by support staff: served again, denials forgotten.
    assert!(e.restore("bad-token-123456"));
    assert!(e.decide(&later).allowed());
    assert!(matches!(e.drain_events()[..], [Event::Restored { .. }]));
    // Manual revocation.
    assert!(e.revoke("other-token"));
    assert!(!e.revoke("other-token"));
    assert_eq!(
        e.decide(&Request::new().token("other-token").at(T)).reason,
        Reason::Revoked
    );
    // Occasional denials spread out do not revoke.
    let slow = Request::new().token("slow");
    for i in 0..20 {
        let d = e.decide(&slow.at(T + i * 30 * SEC));
        assert!(d.allowed());
        e.decide(&slow.at(T + i * 30 * SEC));
    }
    assert!(!e.is_revoked("slow"));
    assert_eq!(e.metrics().revocations, 1);
    assert_eq!(
        e.metrics().limits[0].revoked,
        1,
        "the denial that revoked is the limit's"
    );
}

const KEY_A: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";
const KEY_B: &str = "77aa0000-1111-2222-3333-444455556666";

const QUOTA: &str = r#"
version = 1
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/s"
[quota]
warning_percent = 80
hard_cap_percent = 150
[[quota.plans]]
name = "free"
calls_per_unit = 10
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [
  { id = "ann", keys = ["3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"] },
  { id = "bob", keys = ["77aa0000-1111-2222-3333-444455556666"], disabled = true },
]
"#;

#[test]
fn the_quota_takes_part_in_the_decision() {
    let e = engine(QUOTA);
    let a = Request::new().token(KEY_A).at(T);
    let mut outcomes = Vec::new();
    for _ in 0..16 {
        let d = e.decide(&a);
        outcomes.push((d.reason, d.quota.map(|q| q.used)));
    }
    // Limit 10, hard cap 15: 15 served (the last 5 over the limit), then refused.
    assert!(outcomes[..15].iter().all(|(r, _)| *r == Reason::Allowed));
    assert_eq!(outcomes[14].1, Some(15));
    assert_eq!(outcomes[15], (Reason::QuotaExceeded, Some(15)));
    // A refused call took nothing from the rate limit: 1000 - 15 left.
    let peek = e.peek(&a.cost(985));
    assert!(peek[0].1.as_ref().unwrap().allowed());
    assert!(!e.peek(&a.cost(986))[0].1.as_ref().unwrap().allowed());
    // Refused until the month ends (2027-02-01).
    let d = e.decide(&a);
    let feb_1 = 1_801_440_000 * SEC; // 2027-02-01T00:00:00Z
    assert_eq!(d.retry_after, feb_1 - T);
    let h = e.headers(&d);
    assert_eq!(h.policy.as_deref(), Some("\"quota\";q=10"));
    assert_eq!(h.retry_after, Some(((feb_1 - T) / SEC).to_string()));
    let events = e.drain_events();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::Quota(QuotaEvent::Warning { .. }) => "warning",
            Event::Quota(QuotaEvent::Overage { .. }) => "overage",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["warning", "overage"]);
    // A disabled user's key is refused as revoked; an unknown key as unknown.
    assert_eq!(
        e.decide(&Request::new().token(KEY_B).at(T)).reason,
        Reason::Revoked
    );
    assert_eq!(
        e.decide(&Request::new().token("nobody").at(T)).reason,
        Reason::UnknownKey
    );
    assert_eq!(e.decide(&Request::new().at(T)).reason, Reason::UnknownKey);
    let m = e.metrics();
    assert_eq!(
        (m.allowed, m.quota_refused, m.revoked, m.unknown_key),
        (15, 2, 1, 2)
    );
}

#[test]
fn a_call_denied_by_a_limit_never_eats_quota() {
    let e = engine(&QUOTA.replace("1000/s", "2/s"));
    let a = Request::new().token(KEY_A).at(T);
    assert!(e.decide(&a).allowed());
    assert!(e.decide(&a).allowed());
    for _ in 0..5 {
        assert_eq!(e.decide(&a).reason, Reason::Limited);
    }
    let used: u64 = e
        .ledger()
        .unwrap()
        .company_usage()
        .iter()
        .map(|r| r.used)
        .sum();
    assert_eq!(used, 2);
}

#[test]
fn unknown_keys_may_be_served_uncounted() {
    let e = engine(&QUOTA.replace("[quota]", "[quota]\nunknown_key = \"allow\""));
    assert!(e.decide(&Request::new().token("nobody").at(T)).allowed());
}

#[test]
fn hot_reload_keeps_unchanged_limits_and_carries_changed_ones() {
    let e = engine(TWO_LIMITS);
    let a = req("a", "GET");
    for _ in 0..4 {
        assert!(e.decide(&a).allowed());
    }
    assert!(!e.decide(&a).allowed(), "per-company exhausted");
    // Raise per-company from 4/s to 8/s: takes effect at once (4 used of 8).
    let (raised, _) = Policy::from_toml(&TWO_LIMITS.replace("4/s", "8/s")).unwrap();
    let report = e.reload(raised).unwrap();
    assert_eq!(report.kept, ["per-token-tenant"]);
    assert_eq!(report.carried, ["per-company"]);
    assert!(report.fresh.is_empty() && report.removed.is_empty());
    let d = e.decide(&a);
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.generation, 2);
    // per-token-tenant kept its state: 10 - 5 = 5 left, so 4 more cost-1 calls are
    // still fine and its counters continued.
    assert_eq!(e.metrics().limits[0].allowed, 5);
    assert_eq!(e.metrics().limits[1].denied, 1, "metrics follow the name");
    // Switch per-company to a sliding window and drop per-token-tenant.
    let (switched, _) = Policy::from_toml(
        "version = 1\n[[limit]]\nname = \"per-company\"\nkey = [\"company\"]\nrate = \"8/s\"\nalgorithm = \"sliding_window\"\n",
    )
    .unwrap();
    let report = e.reload(switched).unwrap();
    assert_eq!(report.fresh, ["per-company"]);
    assert_eq!(report.removed, ["per-token-tenant"]);
    assert_eq!((0..10).filter(|_| e.decide(&a).allowed()).count(), 8);
    // A broken policy changes nothing.
    let mut bad = e.policy();
    bad.limits[0].cost.insert("nope".into(), 2);
    assert!(e.reload(bad).is_err());
    assert_eq!(e.limit_names(), ["per-company"]);
}

#[test]
fn reload_racing_decisions_never_over_admits_a_kept_limit() {
    // "steady" never changes across reloads; "flapping" changes every time. With time
    // frozen, the steady limit admits exactly its burst, whatever the reloads do.
    let steady = r#"
version = 1
[[limit]]
name = "steady"
key = ["tenant"]
rate = "1/h burst 5000"
"#;
    let e = Arc::new(engine(steady));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reloader = {
        let (e, stop) = (Arc::clone(&e), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let flapping = format!(
                    "{steady}\n[[limit]]\nname = \"flapping\"\nkey = [\"token\"]\nrate = \"{}/s\"\n",
                    1_000_000 + n % 7
                );
                e.reload(Policy::from_toml(&flapping).unwrap().0).unwrap();
            }
            n
        })
    };
    let allowed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let e = &e;
                s.spawn(move || {
                    let token = format!("tok{t}");
                    (0..6000)
                        .filter(|_| {
                            e.decide(&Request::new().tenant("x").token(&token).at(T))
                                .allowed()
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reloads = reloader.join().unwrap();
    assert!(reloads > 0);
    assert_eq!(allowed, 5000, "after {reloads} reloads");
}

#[test]
fn prometheus_text_and_events_never_block() {
    let (policy, _) = Policy::from_toml(
        "version = 1\n[[limit]]\nname = \"x\"\nkey = [\"token\"]\nrate = \"1/s\"\n[revocation]\ndenials = 1\nwindow = \"1m\"\n",
    )
    .unwrap();
    let e = Engine::builder(policy).event_capacity(2).build().unwrap();
    // Ten tokens revoked, nobody draining: two events kept, eight dropped and counted.
    for i in 0..10 {
        let token = format!("token-{i}");
        let r = Request::new().token(&token).at(T);
        e.decide(&r);
        e.decide(&r);
        assert!(e.is_revoked(&token));
    }
    assert_eq!(e.drain_events().len(), 2);
    let text = e.prometheus();
    assert!(text.contains("tollgate_events_dropped_total 8\n"), "{text}");
    assert!(text.contains(
        "tollgate_limit_decisions_total{limit=\"x\",shadow=\"false\",outcome=\"denied\"} 10\n"
    ));
    assert!(text.contains("tollgate_limit_revocations_total{limit=\"x\"} 10\n"));
    assert!(text.contains("tollgate_revocations_total{origin=\"automatic\"} 10\n"));
    assert!(text.contains("tollgate_events_pending 0\n"), "drained");
    assert!(text.contains("tollgate_events_capacity 2\n"));
}

#[test]
fn a_waiters_denials_never_revoke() {
    let e = engine(ONE_PER_SECOND_REVOKE_AFTER_3);
    let r = Request::new().token("patient").at(T);
    assert!(e.decide_waiting(&r).allowed());
    for _ in 0..10 {
        let d = e.decide_waiting(&r);
        assert_eq!(d.reason, Reason::Limited);
        assert_eq!(d.retry_after, SEC);
    }
    assert!(!e.is_revoked("patient"));
    assert!(e.decide_waiting(&r.at(T + SEC)).allowed());
    // The same denials through `decide` do revoke.
    for _ in 0..3 {
        assert_eq!(e.decide(&r.at(T + SEC)).reason, Reason::Limited);
    }
    assert!(e.is_revoked("patient"));
    assert_eq!(e.decide_waiting(&r.at(T + SEC)).reason, Reason::Revoked);
}

#[test]
fn hold_delays_every_enforced_limit_of_the_request() {
    let e = engine(
        r#"
version = 1
host_attributes = ["host"]
[classes]
read = ["GET"]
default = "write"
[[limit]]
name = "per-host"
key = ["host"]
rate = "10/s burst 10"
[[limit]]
name = "writes-per-host"
key = ["host"]
classes = ["write"]
rate = "5/s"
[[limit]]
name = "shadow"
key = ["host"]
rate = "1/s"
shadow = true
[[limit]]
name = "window"
key = ["host"]
rate = "100/s"
algorithm = "sliding_window"
"#,
    );
    let api = [("host", "api.example")];
    let get = Request::new().attrs(&api).method("GET").at(T);
    let post = Request::new().attrs(&api).method("POST").at(T);
    // A GET holds only the limits of its class that can be held: per-host.
    assert_eq!(e.hold(&get, T + 2 * SEC), 1);
    let d = e.decide(&get);
    assert_eq!(d.reason, Reason::Limited);
    assert_eq!(d.retry_after, 2 * SEC, "exactly until the hold ends");
    assert!(e.decide(&get.at(T + 2 * SEC)).allowed());
    // A POST holds per-host and writes-per-host.
    assert_eq!(e.hold(&post, T + 5 * SEC), 2);
    assert_eq!(e.decide(&post.at(T + 4 * SEC)).retry_after, SEC);
    // Another host is untouched.
    let other = [("host", "other.example")];
    assert!(e
        .decide(&Request::new().attrs(&other).method("POST").at(T))
        .allowed());
}

/// A quota store shared by several engines: one counter per company and period behind a
/// mutex, the way a Redis counter is shared by a fleet. `down` makes it unavailable.
#[derive(Debug, Default)]
struct SharedCounter {
    counts: std::sync::Mutex<std::collections::HashMap<(String, i64), u64>>,
    down: std::sync::atomic::AtomicBool,
}

impl tollgate::QuotaStore for SharedCounter {
    fn record(
        &self,
        ledger: &tollgate::quota::Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<tollgate::quota::QuotaDecision, tollgate::quota::QuotaError> {
        use tollgate::quota::{QuotaError, SharedCharge};
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(QuotaError::Unavailable("down".into()));
        }
        let t = ledger.target(key, i128::from(now))?;
        let mut counts = self.counts.lock().unwrap();
        let used = counts.entry((t.company, t.period_start)).or_default();
        let charge = if t.hard_cap.is_some_and(|cap| *used + cost > cap) {
            SharedCharge::Refused { used: *used }
        } else {
            *used += cost;
            SharedCharge::Counted {
                prev: *used - cost,
                used: *used,
            }
        };
        drop(counts);
        ledger.record_shared(key, cost, i128::from(now), charge)
    }
}

#[test]
fn a_quota_store_shared_by_two_engines_decides_their_combined_calls() {
    let store = Arc::new(SharedCounter::default());
    let build = || {
        let (policy, _) = Policy::from_toml(QUOTA).unwrap();
        Engine::builder(policy)
            .quota_store(Arc::clone(&store) as Arc<dyn tollgate::QuotaStore>)
            .build()
            .unwrap()
    };
    let (e1, e2) = (build(), build());
    let a = Request::new().token(KEY_A).at(T);
    let mut served = [0u64; 2];
    let mut refused = 0;
    // Limit 10, hard cap 15 for the company: shared by both engines.
    for i in 0..20 {
        let (e, n) = if i % 2 == 0 { (&e1, 0) } else { (&e2, 1) };
        let d = e.decide(&a);
        match d.reason {
            Reason::Allowed => served[n] += 1,
            Reason::QuotaExceeded => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(served, [8, 7]);
    assert_eq!(refused, 5);
    // Each engine's ledger holds its own share: together the shared count.
    let share = |e: &Engine| -> u64 {
        e.ledger()
            .unwrap()
            .company_usage()
            .iter()
            .map(|r| r.used)
            .sum()
    };
    assert_eq!((share(&e1), share(&e2)), (8, 7));
    // The warning (at 8) and the overage (at 11) were each raised by one engine.
    let events: Vec<_> = e1
        .drain_events()
        .into_iter()
        .chain(e2.drain_events())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    // A store that cannot decide: refused as unavailable, and the limit gives back.
    store.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let before = e1.peek(&a)[0].1.clone().unwrap().remaining;
    assert_eq!(e1.decide(&a).reason, Reason::Unavailable);
    assert_eq!(e1.peek(&a)[0].1.clone().unwrap().remaining, before);
}

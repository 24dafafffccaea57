//! The policies in `examples/` parse, build, and mean what their comments say.

use tollgate::{Engine, Policy, Reason, Request};

fn load(name: &str) -> Engine {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let (policy, warnings) = Policy::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    Engine::new(policy).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_api_policy() {
    let e = load("policy.toml");
    assert_eq!(
        e.limit_names(),
        ["per-token-tenant", "per-client", "writes-per-company"]
    );
    let ledger = e.ledger().unwrap();
    let t = 1_794_700_800_000_000_000; // 2026-11-15
                                       // 12 companies of 3 users; acme has 2 machines + 2 apps = 400,000 calls a month and
                                       // globex the paid plan.
    let limits: Vec<_> = ledger
        .statements()
        .into_iter()
        .map(|s| (s.company, s.limit))
        .collect();
    assert_eq!(limits.len(), 12);
    assert!(limits.contains(&("acme".into(), 400_000)));
    assert!(limits.contains(&("globex".into(), 1_000_000)));
    // globex's sync token has the raised limit: 800 at once.
    let sync = Request::new()
        .token("41ce0fe8-fa85-403c-98b7-b577b4041e5a")
        .tenant("eu-1")
        .client("10.1.0.13")
        .company("globex")
        .method("GET")
        .at(t);
    assert_eq!((0..1000).filter(|_| e.decide(&sync).allowed()).count(), 600);
    // ...capped at 600 by per-client. An unknown token is refused.
    let d = e.decide(&Request::new().token("nope").method("GET").at(t));
    assert_eq!(d.reason, Reason::UnknownKey);
}

#[test]
fn the_notifications_policy() {
    let e = load("notifications.toml");
    let attrs = [("recipient", "ann"), ("sender", "bot")];
    let r = Request::new()
        .method("PUSH")
        .attrs(&attrs)
        .at(1_795_334_400_000_000_000);
    let allowed = (0..10).filter(|_| e.decide(&r).allowed()).count();
    assert_eq!(allowed, 3, "three a minute per recipient");
    // An SMS costs 5 of the day's 20.
    let bob = [("recipient", "bob"), ("sender", "pager")];
    let sms = Request::new().method("SMS").attrs(&bob);
    let mut sent = 0;
    for minute in 0..60u64 {
        if e.decide(&sms.at(1_795_334_400_000_000_000 + minute * 60_000_000_000))
            .allowed()
        {
            sent += 1;
        }
    }
    assert_eq!(sent, 4);
}

//! The usage hook end to end: an engine built with `EngineBuilder::usage_sink` and a
//! `PgLedgerSink` feeds every counted call, commit and refund to the ledger, and the
//! ledger's totals equal the engine's own usage, per company and per user.
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{Engine, Policy, Request};
use tollgate_postgres::{PgLedger, PgLedgerSink, SinkConfig};

const KEYS: [(&str, &str, &str); 3] = [
    ("acme", "ann", "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"),
    ("acme", "bob", "77aa0000-1111-2222-3333-444455556666"),
    ("globex", "gus", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"),
];

fn policy() -> Policy {
    let text = format!(
        r#"
        version = 1
        [quota]
        hard_cap_percent = 150
        [[quota.companies]]
        id = "acme"
        limit_override = 40
        users = [{{ id = "ann", keys = ["{}"] }}, {{ id = "bob", keys = ["{}"] }}]
        [[quota.companies]]
        id = "globex"
        limit_override = 1000
        users = [{{ id = "gus", keys = ["{}"] }}]
        "#,
        KEYS[0].2, KEYS[1].2, KEYS[2].2
    );
    Policy::from_toml(&text).unwrap().0
}

/// 2026-11-02T00:00:00Z in Unix nanoseconds.
const NOV_2: u64 = 1_793_577_600 * 1_000_000_000;

#[test]
fn an_engine_with_the_sink_puts_every_counted_move_in_the_ledger() {
    let pg = cluster_or_skip!();
    let sink = Arc::new(PgLedgerSink::spawn(&pg.url, "gw1", SinkConfig::default()));
    let engine = Engine::builder(policy())
        .usage_sink(sink.clone())
        .build()
        .unwrap();
    let mut served = BTreeMap::<(&str, &str), i64>::new();
    let mut refused = 0;
    for i in 0..300u64 {
        let (c, u, key) = KEYS[(i % 3) as usize];
        let at = NOV_2 + i * 1_000_000_000;
        if engine.decide(&Request::new().token(key).at(at)).allowed() {
            *served.entry((c, u)).or_default() += 1;
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0, "acme passed its hard cap of 60");
    // A reservation committed at 3 and one refunded: units move, calls +1 each.
    let ledger = engine.ledger().unwrap();
    let at = i128::from(NOV_2);
    let r = ledger.reserve(KEYS[2].2, 1, at).unwrap();
    ledger.commit(r, 3, "job-1");
    let r = ledger.reserve(KEYS[2].2, 2, at).unwrap();
    ledger.refund(r);
    assert!(sink.flush(Duration::from_secs(60)), "{:?}", sink.stats());
    assert_eq!(sink.stats().dropped, 0);

    let mut l = PgLedger::connect(&pg.url, "reader").unwrap();
    let users: BTreeMap<(String, String), (i64, i64)> = l
        .totals(None, Some("2026-11"), true)
        .unwrap()
        .into_iter()
        .map(|t| ((t.company, t.user.unwrap()), (t.calls, t.units)))
        .collect();
    for ((c, u), n) in &served {
        let extra = if *u == "gus" { (2, 3) } else { (0, 0) };
        assert_eq!(
            users[&(c.to_string(), u.to_string())],
            (n + extra.0, n + extra.1),
            "{c}/{u}"
        );
    }
    // The ledger's units per company are the engine's own usage.
    let companies: BTreeMap<String, i64> = l
        .totals(None, Some("2026-11"), false)
        .unwrap()
        .into_iter()
        .map(|t| (t.company, t.units))
        .collect();
    for row in ledger
        .company_usage()
        .iter()
        .filter(|r| r.period == "2026-11")
    {
        assert_eq!(companies[&row.company], row.used as i64, "{row:?}");
    }
    assert_eq!(companies.len(), 2);
}

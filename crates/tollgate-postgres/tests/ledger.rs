//! PgLedger against a real private PostgreSQL cluster.
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use tollgate_postgres::{PgError, PgLedger, UsageDelta, SCHEMA_VERSION};
use tollgate_quota::NoticeKind;

fn delta(company: &str, user: Option<&str>, period: &str, calls: i64) -> UsageDelta {
    UsageDelta {
        company: company.into(),
        user: user.map(str::to_owned),
        period: period.into(),
        period_start: if period == "2026-11" {
            1_793_491_200
        } else {
            1_796_083_200
        },
        calls,
        units: calls * 2,
    }
}

fn raw(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

#[test]
fn migrations_twice_and_concurrently_leave_one_schema() {
    let pg = cluster_or_skip!();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (url, b) = (pg.url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                b.wait();
                PgLedger::connect(&url, &format!("i{i}")).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("join").expect("concurrent migration");
    }
    // A third and fourth connect on the migrated database.
    PgLedger::connect(&pg.url, "i0").expect("migrate again");
    PgLedger::connect(&pg.url, "i2").expect("migrate again");
    let mut c = raw(&pg.url);
    let rows = c
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .expect("versions");
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 8, "schema_migrations + 7 ledger tables");
    let instances: i64 = c
        .query_one("SELECT count(*) FROM instances", &[])
        .expect("instances")
        .get(0);
    assert_eq!(instances, 3);
}

#[test]
fn a_newer_schema_is_refused() {
    let pg = cluster_or_skip!();
    PgLedger::connect(&pg.url, "a").expect("migrate");
    raw(&pg.url)
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .expect("fake a newer build");
    match PgLedger::connect(&pg.url, "a") {
        Err(PgError::NewerSchema { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn a_retried_batch_counts_once_also_from_two_connections_at_once() {
    let pg = cluster_or_skip!();
    let mut a = PgLedger::connect(&pg.url, "gw1").expect("connect");
    let batch = vec![
        delta("acme", Some("u1"), "2026-11", 3),
        delta("acme", None, "2026-11", 4),
    ];
    assert!(a.write_batch("run-1", &batch).expect("first"));
    assert!(!a.write_batch("run-1", &batch).expect("retry"));
    // Two connections of the same instance racing on one new batch id, 20 rounds.
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (url, b, batch) = (pg.url.clone(), Arc::clone(&barrier), batch.clone());
            std::thread::spawn(move || {
                let mut l = PgLedger::connect(&url, "gw1").expect("connect");
                let mut won = 0;
                for round in 0..20 {
                    b.wait();
                    if l.write_batch(&format!("race-{round}"), &batch)
                        .expect("write")
                    {
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let won: i32 = handles.into_iter().map(|h| h.join().expect("join")).sum();
    assert_eq!(won, 20, "each raced batch committed exactly once");
    // The same batch id from another instance is a different batch.
    let mut b = PgLedger::connect(&pg.url, "gw2").expect("connect");
    assert!(b.write_batch("run-1", &batch).expect("other instance"));
    let t = a
        .totals(Some("acme"), Some("2026-11"), false)
        .expect("totals");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].calls, 7 * 22);
    assert_eq!(t[0].units, 14 * 22);
    let u = a.totals(Some("acme"), None, true).expect("user totals");
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].user.as_deref(), u[0].calls), (Some("u1"), 3 * 22));
}

#[test]
fn totals_per_company_and_user_equal_the_sum_of_deltas_written() {
    let pg = cluster_or_skip!();
    let mut l = PgLedger::connect(&pg.url, "gw1").expect("connect");
    let mut want_c: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut want_u: BTreeMap<(String, String, String), (i64, i64)> = BTreeMap::new();
    let companies = ["acme", "globex", "initech"];
    let users = [None, Some("u1"), Some("u2"), Some("u3")];
    let periods = ["2026-11", "2026-12"];
    let mut n = 0u64;
    for b in 0..30 {
        let mut batch = Vec::new();
        for i in 0..17 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let c = companies[(n >> 33) as usize % 3];
            let u = users[(n >> 40) as usize % 4];
            let p = periods[(n >> 50) as usize % 2];
            let calls = 1 + (i % 5) as i64;
            let d = delta(c, u, p, calls);
            let e = want_c.entry((c.into(), p.into())).or_default();
            e.0 += d.calls;
            e.1 += d.units;
            if let Some(u) = u {
                let e = want_u.entry((c.into(), u.into(), p.into())).or_default();
                e.0 += d.calls;
                e.1 += d.units;
            }
            batch.push(d);
        }
        assert!(l.write_batch(&format!("b{b}"), &batch).expect("write"));
    }
    let got_c: BTreeMap<_, _> = l
        .totals(None, None, false)
        .expect("totals")
        .into_iter()
        .map(|t| {
            assert_eq!(t.user, None);
            ((t.company, t.period), (t.calls, t.units))
        })
        .collect();
    assert_eq!(got_c, want_c);
    let got_u: BTreeMap<_, _> = l
        .totals(None, None, true)
        .expect("totals")
        .into_iter()
        .map(|t| {
            (
                (t.company, t.user.expect("user row"), t.period),
                (t.calls, t.units),
            )
        })
        .collect();
    assert_eq!(got_u, want_u);
    // Filters.
    let acme_nov = l.totals(Some("acme"), Some("2026-11"), false).expect("one");
    assert_eq!(acme_nov.len(), 1);
    assert_eq!(
        (acme_nov[0].calls, acme_nov[0].units),
        want_c[&("acme".to_string(), "2026-11".to_string())]
    );
    // The deltas table holds every delta once.
    let rows: i64 = raw(&pg.url)
        .query_one("SELECT count(*) FROM usage_deltas", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, 30 * 17);
}

#[test]
fn claim_notice_has_exactly_one_winner_among_n_threads() {
    let pg = cluster_or_skip!();
    PgLedger::connect(&pg.url, "setup").expect("migrate");
    const N: usize = 8;
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (url, b) = (pg.url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut l = PgLedger::connect(&url, &format!("gw{i}")).expect("connect");
                let mut wins = [0u32; 3];
                for round in 0..10 {
                    b.wait();
                    let p = format!("2026-{:02}", round + 1);
                    for (k, (company, kind)) in [
                        ("acme", NoticeKind::Warning),
                        ("acme", NoticeKind::Overage),
                        ("globex", NoticeKind::Warning),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        if l.claim_notice(company, &p, kind, 90, 100, Some("pro"))
                            .expect("claim")
                        {
                            wins[k] += 1;
                        }
                    }
                }
                wins
            })
        })
        .collect();
    let mut total = [0u32; 3];
    for h in handles {
        let w = h.join().expect("join");
        for k in 0..3 {
            total[k] += w[k];
        }
    }
    assert_eq!(
        total,
        [10, 10, 10],
        "one winner per (company, period, kind)"
    );
    let rows: i64 = raw(&pg.url)
        .query_one("SELECT count(*) FROM notices", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, 30);
}

#[test]
fn close_period_writes_the_statement_with_the_limit_in_force() {
    let pg = cluster_or_skip!();
    let mut l = PgLedger::connect(&pg.url, "gw1").expect("connect");
    l.write_batch("b1", &[delta("acme", Some("u1"), "2026-11", 60)])
        .expect("write");
    // units = 120 against a limit of 100 in force during November.
    let s = l
        .close_period("acme", "2026-11", 100, Some("basic"), Some("pro"))
        .expect("close");
    assert_eq!((s.used, s.limit, s.overage), (120, 100, 20));
    assert_eq!(s.plan.as_deref(), Some("basic"));
    assert_eq!(s.suggested_plan.as_deref(), Some("pro"));
    // A later close with today's (changed) limit does not rewrite the past statement.
    let again = l
        .close_period("acme", "2026-11", 1000, Some("pro"), None)
        .expect("close again");
    assert_eq!(again, s);
    // Under the limit, and a company with no usage at all.
    let under = l
        .close_period("globex", "2026-11", 50, None, None)
        .expect("close");
    assert_eq!((under.used, under.limit, under.overage), (0, 50, 0));
    let all = l.statements(None, Some("2026-11")).expect("statements");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], s);
    assert_eq!(l.statements(Some("acme"), None).expect("one"), vec![s]);
}

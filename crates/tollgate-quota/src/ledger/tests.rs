//! Tests of the ledger: decisions, notices, periods, keys, reservations, journaling, reports.

use std::sync::Arc;

use jiff::Timestamp;

use super::*;
use crate::plan::{Company, Plans};

const KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";
const KEY2: &str = "77aa0000-1111-2222-3333-444455556666";

fn ns(rfc3339: &str) -> i128 {
    rfc3339.parse::<Timestamp>().unwrap().as_nanosecond()
}

/// Company "acme" with `units` machines, one user "alice" with KEY.
fn ledger(units: u64, config: QuotaConfig) -> Ledger {
    let l = Ledger::new(config);
    let now = ns("2026-11-01T00:00:00Z");
    l.upsert_company(Company::new("acme").with_units(units, 0), None, now)
        .unwrap();
    l.add_user("alice", "acme", now).unwrap();
    l.add_key(KEY, "alice").unwrap();
    l
}

fn small_limits() -> QuotaConfig {
    let plans: Plans = toml::from_str(
        "[[plans]]\nname = \"free\"\ncalls_per_unit = 10\ndefault = true\n\
         [[plans]]\nname = \"API Access\"\ncalls = 100\n",
    )
    .unwrap();
    QuotaConfig {
        plans,
        ..QuotaConfig::default()
    }
}

#[test]
fn target_and_record_shared_follow_the_shared_count() {
    let config = QuotaConfig {
        warning_percent: Some(80),
        hard_cap_percent: Some(150),
        ..QuotaConfig::default()
    };
    let l = ledger(1, config);
    let now = ns("2026-11-10T00:00:00Z");
    let t = l.target(KEY, now).unwrap();
    assert_eq!((t.company.as_str(), t.user.as_str()), ("acme", "alice"));
    assert_eq!(t.period, "2026-11");
    assert_eq!(t.limit, 100_000);
    assert_eq!(t.hard_cap, Some(150_000));
    assert_eq!(t.local_used, 0);
    assert_eq!(
        t.period_start,
        ns("2026-11-01T00:00:00Z") as i64 / 1_000_000_000
    );
    assert_eq!(
        t.period_end,
        ns("2026-12-01T00:00:00Z") as i64 / 1_000_000_000
    );
    // Other instances took the shared count to 79,999: this call crosses 80%.
    let d = l
        .record_shared(
            KEY,
            2,
            now,
            SharedCharge::Counted {
                prev: 79_999,
                used: 80_001,
            },
        )
        .unwrap();
    assert_eq!((d.outcome, d.used), (Outcome::Within, 80_001));
    assert!(matches!(
        d.event.as_deref(),
        Some(QuotaEvent::Warning { used: 80_001, .. })
    ));
    // Only this ledger's share is counted locally.
    assert_eq!(l.target(KEY, now).unwrap().local_used, 2);
    let d = l
        .record_shared(
            KEY,
            1,
            now,
            SharedCharge::Counted {
                prev: 100_000,
                used: 100_001,
            },
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::OverLimit);
    assert!(matches!(
        d.event.as_deref(),
        Some(QuotaEvent::Overage { .. })
    ));
    // The notice is raised once per ledger.
    let d = l
        .record_shared(
            KEY,
            1,
            now,
            SharedCharge::Counted {
                prev: 100_001,
                used: 100_002,
            },
        )
        .unwrap();
    assert!(d.event.is_none());
    let d = l
        .record_shared(KEY, 1, now, SharedCharge::Refused { used: 150_000 })
        .unwrap();
    assert_eq!((d.outcome, d.used), (Outcome::Refused, 150_000));
    assert_eq!(
        l.target(KEY, now).unwrap().local_used,
        4,
        "a refusal counts nothing"
    );
    assert_eq!(l.drain_events().len(), 2);
    // Another ledger sharing the counter, whose first call comes after both
    // crossings, raises nothing: the crossings were not its calls'.
    let other = ledger(1, QuotaConfig::default());
    let d = other
        .record_shared(
            KEY,
            1,
            now,
            SharedCharge::Counted {
                prev: 100_005,
                used: 100_006,
            },
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::OverLimit);
    assert!(d.event.is_none() && other.drain_events().is_empty());
    assert!(matches!(
        l.target("nope", now),
        Err(QuotaError::UnknownKey(_))
    ));
    l.set_user_disabled("alice", true).unwrap();
    assert!(matches!(
        l.target(KEY, now),
        Err(QuotaError::DisabledUser { .. })
    ));
}

#[test]
fn within_over_refused_with_one_notice_each() {
    // limit 10, warning at 8, hard cap 15.
    let l = ledger(1, small_limits());
    let t = ns("2026-11-10T12:00:00Z");
    let mut outcomes = vec![];
    let mut events = vec![];
    for _ in 0..20 {
        let d = l.record(KEY, 1, t).unwrap();
        outcomes.push(d.outcome);
        events.extend(d.event.map(|e| *e));
        assert_eq!(d.limit, 10);
        assert_eq!(d.resets_at.to_string(), "2026-12-01T00:00:00Z");
    }
    assert!(outcomes[..10].iter().all(|o| *o == Outcome::Within));
    assert!(outcomes[10..15].iter().all(|o| *o == Outcome::OverLimit));
    assert!(outcomes[15..].iter().all(|o| *o == Outcome::Refused));
    assert_eq!(
        events,
        vec![
            QuotaEvent::Warning {
                company: "acme".into(),
                period: "2026-11".into(),
                used: 8,
                limit: 10
            },
            QuotaEvent::Overage {
                company: "acme".into(),
                period: "2026-11".into(),
                used: 11,
                limit: 10,
                suggested_plan: Some("API Access".into())
            },
        ]
    );
    assert_eq!(l.drain_events(), events);
    assert!(l.drain_events().is_empty());
    assert_eq!(l.company_usage()[0].used, 15, "refused calls count nothing");
}

#[test]
fn notices_are_raised_exactly_once_under_contention() {
    for _ in 0..20 {
        let l = ledger(1, small_limits());
        let t = ns("2026-11-10T12:00:00Z");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10 {
                        l.record(KEY, 1, t).unwrap();
                    }
                });
            }
        });
        let events = l.drain_events();
        let overages = events
            .iter()
            .filter(|e| matches!(e, QuotaEvent::Overage { .. }))
            .count();
        let warnings = events.len() - overages;
        assert_eq!((overages, warnings), (1, 1), "{events:?}");
        assert_eq!(l.company_usage()[0].used, 15, "the hard cap holds exactly");
    }
}

#[test]
fn periods_roll_over_and_old_totals_stay() {
    let l = ledger(1, small_limits());
    l.record(KEY, 4, ns("2026-11-30T23:59:59.999999999Z"))
        .unwrap();
    let d = l.record(KEY, 3, ns("2026-12-01T00:00:00Z")).unwrap();
    assert_eq!(d.used, 3, "a new period starts at zero");
    assert_eq!(d.resets_at.to_string(), "2027-01-01T00:00:00Z");
    // A late call stamped in November still counts in November.
    l.record(KEY, 1, ns("2026-11-15T00:00:00Z")).unwrap();
    let rows = l.company_usage();
    let got: Vec<(&str, u64)> = rows.iter().map(|r| (r.period.as_str(), r.used)).collect();
    assert_eq!(got, vec![("2026-11", 5), ("2026-12", 3)]);
    let users = l.user_usage();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].user.as_deref(), Some("alice"));
}

#[test]
fn company_time_zone_decides_the_month() {
    let l = Ledger::new(small_limits());
    let now = ns("2026-11-01T00:00:00Z");
    l.upsert_company(
        Company::new("tokyo").with_units(1, 0),
        Some("Asia/Tokyo"),
        now,
    )
    .unwrap();
    l.add_user("u", "tokyo", now).unwrap();
    l.add_key(KEY, "u").unwrap();
    let d = l.record(KEY, 1, ns("2026-11-30T23:30:00Z")).unwrap();
    assert_eq!(d.used, 1);
    let rows = l.company_usage();
    let used: Vec<_> = rows.iter().filter(|r| r.used > 0).collect();
    assert_eq!(used.len(), 1);
    assert_eq!(
        used[0].period, "2026-12",
        "23:30 UTC on 30 November is December in Tokyo"
    );
    assert!(Ledger::new(small_limits())
        .upsert_company(Company::new("x"), Some("Mars/Olympus"), now)
        .is_err());
}

#[test]
fn a_machine_added_mid_month_raises_the_limit_at_once() {
    let l = ledger(1, small_limits());
    let t = ns("2026-11-10T00:00:00Z");
    for _ in 0..12 {
        l.record(KEY, 1, t).unwrap();
    }
    assert_eq!(l.record(KEY, 1, t).unwrap().outcome, Outcome::OverLimit);
    let limit = l
        .upsert_company(Company::new("acme").with_units(2, 0), None, t)
        .unwrap();
    assert_eq!(limit.calls, 20);
    let d = l.record(KEY, 1, t).unwrap();
    assert_eq!((d.outcome, d.used, d.limit), (Outcome::Within, 14, 20));
    // One overage notice per period, even though the limit changed.
    for _ in 0..10 {
        l.record(KEY, 1, t).unwrap();
    }
    let overages = l
        .drain_events()
        .into_iter()
        .filter(|e| matches!(e, QuotaEvent::Overage { .. }))
        .count();
    assert_eq!(overages, 1);
}

#[test]
fn keys_users_and_secrets() {
    let l = ledger(1, small_limits());
    let t = ns("2026-11-10T00:00:00Z");
    let e = l.record("not-a-key-0123456789", 1, t).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("unknown API key {}", KeyRef::of("not-a-key-0123456789"))
    );
    assert!(!e.to_string().contains("not-a"), "{e}");
    assert!(!format!("{e:?}").contains("0123456789"));
    l.record(KEY, 2, t).unwrap();
    // Rotation: the new key counts for the same user.
    l.add_key(KEY2, "alice").unwrap();
    assert!(l.remove_key(KEY));
    assert!(matches!(
        l.record(KEY, 1, t),
        Err(QuotaError::UnknownKey(_))
    ));
    assert_eq!(l.record(KEY2, 1, t).unwrap().used, 3);
    let e = l.add_key(KEY2, "alice").unwrap_err().to_string();
    assert!(
        e.contains(&KeyRef::of(KEY2).to_string()) && !e.contains("77aa"),
        "{e}"
    );
    l.set_user_disabled("alice", true).unwrap();
    assert_eq!(
        l.record(KEY2, 1, t),
        Err(QuotaError::DisabledUser {
            user: "alice".into()
        })
    );
    l.set_user_disabled("alice", false).unwrap();
    assert!(l.record(KEY2, 1, t).is_ok());
    assert!(l.add_user("bob", "nobody", t).is_err());
    assert!(l.add_key("k", "nobody").is_err());
}

#[test]
fn reserve_commit_refund_and_idempotency() {
    let l = ledger(1, small_limits());
    let t = ns("2026-11-10T00:00:00Z");
    let r = l.reserve(KEY, 5, t).unwrap();
    assert_eq!(r.decision.used, 5);
    assert_eq!(l.commit(r, 2, "req-1"), CommitOutcome::Committed);
    assert_eq!(l.company_usage()[0].used, 2);
    // A retried commit of the same request counts once.
    let r = l.reserve(KEY, 5, t).unwrap();
    assert_eq!(l.commit(r, 2, "req-1"), CommitOutcome::Duplicate);
    assert_eq!(l.company_usage()[0].used, 2);
    // A failed request is not billed.
    let r = l.reserve(KEY, 3, t).unwrap();
    l.refund(r);
    assert_eq!(l.company_usage()[0].used, 2);
    assert_eq!(l.user_usage()[0].used, 2);
    // A cost found to be higher than reserved is counted in full.
    let r = l.reserve(KEY, 1, t).unwrap();
    assert_eq!(l.commit(r, 4, "req-2"), CommitOutcome::Committed);
    assert_eq!(l.company_usage()[0].used, 6);
    // A refused reservation holds nothing.
    let r = l.reserve(KEY, 100, t).unwrap();
    assert_eq!(r.decision.outcome, Outcome::Refused);
    l.refund(r);
    assert_eq!(l.company_usage()[0].used, 6);
}

#[test]
fn a_journaled_ledger_carries_on_after_a_restart() {
    use crate::journal::{Durability, Journal};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let t = ns("2026-11-10T00:00:00Z");
    let register = |l: &Ledger| {
        l.upsert_company(Company::new("acme").with_units(1, 0), None, t)
            .unwrap();
        l.add_user("alice", "acme", t).unwrap();
        l.add_key(KEY, "alice").unwrap();
    };
    {
        let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
        let l = Ledger::with_journal(small_limits(), j, snap);
        register(&l);
        for _ in 0..11 {
            l.record(KEY, 1, t).unwrap();
        }
        let r = l.reserve(KEY, 3, t).unwrap();
        assert_eq!(l.commit(r, 1, "req-1"), CommitOutcome::Committed);
        let r = l.reserve(KEY, 2, t).unwrap();
        l.refund(r);
        assert_eq!(l.drain_events().len(), 2, "warning and overage");
        l.journal().unwrap().flush().unwrap();
    }
    let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
    assert_eq!(snap.notices.len(), 2);
    let l = Ledger::with_journal(small_limits(), j, snap);
    register(&l);
    assert_eq!(l.company_usage()[0].used, 12, "usage survives the restart");
    assert_eq!(l.user_usage()[0].used, 12);
    let d = l.record(KEY, 1, t).unwrap();
    assert_eq!((d.outcome, d.used), (Outcome::OverLimit, 13));
    assert!(
        l.drain_events().is_empty(),
        "no notice is raised twice across restarts"
    );
    // The committed idempotency key survives too.
    let r = l.reserve(KEY, 1, t).unwrap();
    assert_eq!(l.commit(r, 1, "req-1"), CommitOutcome::Duplicate);
    assert_eq!(l.company_usage()[0].used, 13);
    assert_eq!(l.journal_errors(), 0);
}

#[test]
fn sync_makes_this_threads_calls_durable_at_once() {
    use crate::journal::{Durability, Journal};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let t = ns("2026-11-10T00:00:00Z");
    // A loss window far longer than the test: only sync (or a ticket) commits.
    let slow = Durability::BoundedLoss {
        max_delay: std::time::Duration::from_secs(600),
    };
    let (j, snap) = Journal::open(&path, slow).unwrap();
    let l = Arc::new(Ledger::with_journal(small_limits(), j, snap));
    l.upsert_company(Company::new("acme").with_override(10_000), None, t)
        .unwrap();
    l.add_user("alice", "acme", t).unwrap();
    l.add_user("bob", "acme", t).unwrap();
    l.add_key(KEY, "alice").unwrap();
    l.add_key(KEY2, "bob").unwrap();
    let journaled = |user: &str| -> i64 {
        let rows = l.journal().unwrap().usage_report().unwrap();
        rows.iter()
            .filter(|r| r.user.as_deref() == Some(user))
            .map(|r| r.calls)
            .sum()
    };
    l.record(KEY, 3, t).unwrap();
    assert_eq!(journaled("alice"), 0, "nothing is written per call");
    l.sync().unwrap();
    assert_eq!(journaled("alice"), 3);
    // Two threads; each one's ticket covers its own calls.
    let handles: Vec<_> = [KEY, KEY2]
        .into_iter()
        .map(|key| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    l.record(key, 1, t).unwrap();
                    let ticket = l.ticket().unwrap();
                    l.journal().unwrap().wait(ticket).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(journaled("alice"), 103);
    assert_eq!(journaled("bob"), 100);
    // A reservation held, then settled: the journal follows the counters.
    let r = l.reserve(KEY, 5, t).unwrap();
    l.sync().unwrap();
    assert_eq!(journaled("alice"), 108);
    assert_eq!(l.commit(r, 2, "req-1"), CommitOutcome::Committed);
    l.sync().unwrap();
    assert_eq!(journaled("alice"), 105);
    let r = l.reserve(KEY, 4, t).unwrap();
    l.refund(r);
    l.sync().unwrap();
    assert_eq!(journaled("alice"), 105);
    // Without a journal there is nothing to wait for.
    assert!(ledger(1, small_limits()).sync().is_ok());
    assert!(ledger(1, small_limits()).ticket().is_none());
}

#[test]
fn racing_rollovers_count_every_call_in_its_own_period() {
    let l = ledger(
        1,
        QuotaConfig {
            hard_cap_percent: None,
            ..small_limits()
        },
    );
    let months = [
        ns("2026-10-31T23:59:59Z"),
        ns("2026-11-01T00:00:00Z"),
        ns("2026-12-01T00:00:00Z"),
    ];
    std::thread::scope(|s| {
        for t in 0..4 {
            let l = &l;
            s.spawn(move || {
                for i in 0..3000 {
                    // Each thread walks the months in its own order, so rollovers,
                    // late calls and new periods race.
                    l.record(KEY, 1, months[(i + t) % 3]).unwrap();
                }
            });
        }
    });
    let got: Vec<_> = l
        .company_usage()
        .into_iter()
        .map(|r| (r.period, r.used))
        .collect();
    let want = ["2026-10", "2026-11", "2026-12"].map(|p| (p.to_owned(), 4000));
    assert_eq!(got, want);
    assert_eq!(
        l.user_usage().iter().map(|r| r.used).collect::<Vec<_>>(),
        [4000; 3]
    );
}

#[test]
fn many_keys_resolve_to_their_own_users() {
    let l = ledger(
        1,
        QuotaConfig {
            hard_cap_percent: None,
            ..small_limits()
        },
    );
    let t = ns("2026-11-10T00:00:00Z");
    for u in 0..50 {
        l.add_user(&format!("u{u}"), "acme", t).unwrap();
    }
    let key = |i: usize| format!("{i:08x}-0000-4000-8000-{i:012x}");
    for i in 0..5000 {
        l.add_key(&key(i), &format!("u{}", i % 50)).unwrap();
    }
    assert!(matches!(
        l.add_key(&key(7), "u1"),
        Err(QuotaError::DuplicateKey(_))
    ));
    for i in 0..5000 {
        l.record(&key(i), 1, t).unwrap();
    }
    for r in l
        .user_usage()
        .iter()
        .filter(|r| r.user.as_deref() != Some("alice"))
    {
        assert_eq!(r.used, 100, "{r:?}");
    }
    assert!(l.remove_key(&key(3)));
    assert!(!l.remove_key(&key(3)));
    assert!(matches!(
        l.record(&key(3), 1, t),
        Err(QuotaError::UnknownKey(_))
    ));
    // The ledger keeps no key: its debug output names none.
    assert!(!format!("{l:?}").contains(&key(4)));
}

#[test]
fn reports_as_json_and_csv() {
    let l = ledger(1, small_limits());
    l.record(KEY, 12, ns("2026-11-10T00:00:00Z")).unwrap();
    let st = l.statements();
    assert_eq!(
        st,
        vec![Statement {
            company: "acme".into(),
            period: "2026-11".into(),
            used: 12,
            limit: 10,
            overage: 2
        }]
    );
    let json = serde_json::to_string(&st).unwrap();
    assert_eq!(
        json,
        r#"[{"company":"acme","period":"2026-11","used":12,"limit":10,"overage":2}]"#
    );
    let csv = Ledger::usage_csv(&l.user_usage());
    assert_eq!(csv, "company,user,period,used\nacme,alice,2026-11,12\n");
    let tricky = [UsageRow {
        company: "a,\"b\"".into(),
        user: None,
        period: "2026-11".into(),
        used: 1,
    }];
    assert_eq!(
        Ledger::usage_csv(&tricky),
        "company,user,period,used\n\"a,\"\"b\"\"\",,2026-11,1\n"
    );
    assert!(!Ledger::usage_csv(&l.user_usage()).contains(KEY));
}

/// Issue 17, item 3: a past period's statement keeps the limit in force during it. A
/// November overage of 20,000 stays 20,000 when machines are added in December.
#[test]
fn a_past_statement_keeps_the_limit_of_its_period() {
    let l = ledger(1, QuotaConfig::default()); // 100,000 calls per machine
    l.record(KEY, 120_000, ns("2026-11-20T00:00:00Z")).unwrap();
    l.record(KEY, 1, ns("2026-12-02T00:00:00Z")).unwrap();
    l.upsert_company(
        Company::new("acme").with_units(3, 0),
        None,
        ns("2026-12-03T00:00:00Z"),
    )
    .unwrap();
    let st = l.statements();
    let nov = st.iter().find(|s| s.period == "2026-11").unwrap();
    assert_eq!(
        (nov.used, nov.limit, nov.overage),
        (120_000, 100_000, 20_000)
    );
    let dec = st.iter().find(|s| s.period == "2026-12").unwrap();
    assert_eq!(
        (dec.used, dec.limit),
        (1, 300_000),
        "the current period takes the new limit"
    );
    // A second change keeps November's, and freezes nothing else that has not ended.
    l.upsert_company(
        Company::new("acme").with_units(5, 0),
        None,
        ns("2026-12-10T00:00:00Z"),
    )
    .unwrap();
    let st = l.statements();
    assert_eq!(
        st.iter().find(|s| s.period == "2026-11").unwrap().limit,
        100_000
    );
    assert_eq!(
        st.iter().find(|s| s.period == "2026-12").unwrap().limit,
        500_000
    );
}

/// Issue 17, item 3, across restarts: the journal keeps each period's limit
/// (`period_limits`, schema 4). Before, a restart recomputed November's statement with
/// the limit in force at start: a November overage of 20,000 became 0 once machines
/// were added in December, whether at run time or in the policy file for the restart.
#[test]
fn a_past_statement_keeps_its_limit_across_restarts() {
    use crate::journal::{Durability, Journal};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let open = |units: u64, now: i128| {
        let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
        let l = Ledger::with_journal(QuotaConfig::default(), j, snap);
        l.upsert_company(Company::new("acme").with_units(units, 0), None, now)
            .unwrap();
        l.add_user("alice", "acme", now).unwrap();
        l.add_key(KEY, "alice").unwrap();
        l
    };
    let nov = |l: &Ledger| {
        let st = l.statements();
        let s = st.iter().find(|s| s.period == "2026-11").unwrap();
        (s.used, s.limit, s.overage)
    };
    {
        let l = open(1, ns("2026-11-01T00:00:00Z")); // 100,000 calls
        l.record(KEY, 120_000, ns("2026-11-20T00:00:00Z")).unwrap();
        l.journal().unwrap().flush().unwrap();
    }
    {
        // Restarted in December with 3 machines in the policy file.
        let l = open(3, ns("2026-12-02T00:00:00Z"));
        assert_eq!(nov(&l), (120_000, 100_000, 20_000));
        l.record(KEY, 1, ns("2026-12-02T00:00:00Z")).unwrap();
        // And 5 at run time.
        l.upsert_company(
            Company::new("acme").with_units(5, 0),
            None,
            ns("2026-12-03T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(nov(&l), (120_000, 100_000, 20_000));
        l.journal().unwrap().flush().unwrap();
    }
    // January: December's statement has the limit in force at its end (5 machines),
    // November's its own.
    let l = open(1, ns("2027-01-02T00:00:00Z"));
    assert_eq!(nov(&l), (120_000, 100_000, 20_000));
    let st = l.statements();
    let dec = st.iter().find(|s| s.period == "2026-12").unwrap();
    assert_eq!((dec.used, dec.limit), (1, 500_000));
    let rows = Journal::read_period_limits(&path).unwrap();
    assert!(
        rows.iter()
            .any(|r| r.period == "2026-11" && r.limit == 100_000),
        "{rows:?}"
    );
}

/// A rotated key is honoured until its grace ends, then unknown, and may be added again.
#[test]
fn a_rotated_keys_grace_ends_and_it_can_be_added_again() {
    let l = ledger(1, QuotaConfig::default());
    let t = ns("2026-11-02T00:00:00Z");
    l.rotate_key(KEY, KEY2, Some(std::time::Duration::from_secs(3600)), t)
        .unwrap();
    assert!(l.record(KEY, 1, t + 1).is_ok(), "in its grace period");
    assert!(l.record(KEY2, 1, t + 1).is_ok());
    let later = t + 3_600_000_000_001;
    assert!(matches!(
        l.record(KEY, 1, later),
        Err(QuotaError::UnknownKey(_))
    ));
    assert_eq!(
        l.keys_of("alice").len(),
        2,
        "until swept by the next change"
    );
    l.add_key(KEY, "alice")
        .expect("the ended key may be added again");
    assert!(l.record(KEY, 1, later).is_ok());
    // Usage followed the user across the keys.
    assert_eq!(l.user_usage()[0].used, 3);
}

/// A removed company's keys are refused as unknown at once, its usage stays; registering
/// it again makes it active (its users must be added again), unless it was terminated.
#[test]
fn a_removed_company_keeps_its_usage_and_a_terminated_one_stays_terminated() {
    let l = ledger(1, QuotaConfig::default());
    let t = ns("2026-11-02T00:00:00Z");
    l.record(KEY, 7, t).unwrap();
    l.remove_company("acme").unwrap();
    assert!(matches!(
        l.record(KEY, 1, t),
        Err(QuotaError::UnknownKey(_))
    ));
    assert_eq!(l.statements()[0].used, 7);
    assert_eq!(l.company_status("acme"), Some(CompanyStatus::Removed));
    l.upsert_company(Company::new("acme").with_units(1, 0), None, t)
        .unwrap();
    assert_eq!(l.company_status("acme"), Some(CompanyStatus::Active));
    assert!(matches!(
        l.record(KEY, 1, t),
        Err(QuotaError::UnknownKey(_))
    ));
    l.add_user("alice", "acme", t).unwrap();
    l.add_key(KEY, "alice").unwrap();
    assert_eq!(l.record(KEY, 1, t).unwrap().used, 8, "usage carried on");
    l.set_company_status("acme", CompanyStatus::Terminated)
        .unwrap();
    assert!(matches!(
        l.record(KEY, 1, t),
        Err(QuotaError::CompanyTerminated { .. })
    ));
    l.remove_company("acme").unwrap();
    l.upsert_company(Company::new("acme"), None, t).unwrap();
    assert_eq!(l.company_status("acme"), Some(CompanyStatus::Terminated));
    assert!(l.set_company_status("acme", CompanyStatus::Active).is_err());
}

/// `reconfigure` changes plans and thresholds at once for the current period, keeps a
/// past period's limit, and changes nothing when a company's plan would be gone.
#[test]
fn reconfigure_is_live_and_atomic() {
    let l = ledger(1, small_limits());
    l.upsert_company(
        Company::new("globex").with_subscription("API Access"),
        None,
        ns("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    let oct = ns("2026-10-20T00:00:00Z");
    let nov = ns("2026-11-20T00:00:00Z");
    for _ in 0..12 {
        l.record(KEY, 1, oct).unwrap();
    }
    let d = l.record(KEY, 1, nov).unwrap();
    assert_eq!(d.limit, 10);
    // Plans without "API Access": refused, nothing changed.
    let without: Plans =
        toml::from_str("[[plans]]\nname = \"free\"\ncalls_per_unit = 20\ndefault = true\n")
            .unwrap();
    let err = l
        .reconfigure(
            QuotaConfig {
                plans: without,
                ..small_limits()
            },
            nov,
        )
        .unwrap_err();
    assert!(matches!(err, QuotaError::Plan(_)), "{err}");
    assert_eq!(l.record(KEY, 1, nov).unwrap().limit, 10);
    // Twice the calls per unit, no hard cap, warning at 50 %.
    let doubled: Plans = toml::from_str(
        "[[plans]]\nname = \"free\"\ncalls_per_unit = 20\ndefault = true\n\
         [[plans]]\nname = \"API Access\"\ncalls = 100\n",
    )
    .unwrap();
    let changed = l
        .reconfigure(
            QuotaConfig {
                plans: doubled,
                warning_percent: Some(50),
                hard_cap_percent: None,
                ..QuotaConfig::default()
            },
            nov,
        )
        .unwrap();
    assert_eq!(changed, vec!["acme".to_owned()]);
    let d = l.record(KEY, 1, nov).unwrap();
    assert_eq!((d.used, d.limit), (3, 20));
    assert_eq!(l.target(KEY, nov).unwrap().hard_cap, None);
    // October's statement keeps the limit of October.
    let oct_statement = l
        .statements()
        .into_iter()
        .find(|s| s.company == "acme" && s.period == "2026-10")
        .unwrap();
    assert_eq!((oct_statement.used, oct_statement.limit), (12, 10));
}

//! The notice outbox: offered until acknowledged, again after the redelivery timeout and
//! after a restart, acknowledged once (twice is harmless), one per company, period and
//! kind ever; the journal's migration from schema version 1; crossings journaled without
//! their notice recovered at start.

use std::time::Duration;

use tollgate_quota::journal::{Durability, Entry, Journal, SCHEMA_VERSION};
use tollgate_quota::{Company, Ledger, NoticeKind, Plans, QuotaConfig};

/// 2026-11-15T00:00:00Z in Unix nanoseconds.
const NOW: i128 = 1_794_700_800 * 1_000_000_000;
/// 2026-11-01T00:00:00Z, the period's start, Unix seconds.
const NOV: i64 = 1_793_491_200;
const MIN: i128 = 60 * 1_000_000_000;
const KEY: &str = "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77";

fn config() -> QuotaConfig {
    QuotaConfig {
        plans: Plans::standard(),
        warning_percent: Some(80),
        hard_cap_percent: None,
        notice_redeliver_after: Duration::from_secs(300),
        ..QuotaConfig::default()
    }
}

/// A journaled ledger on `path` with company "acme" (limit 10) and one key.
fn open(path: &std::path::Path) -> Ledger {
    let (journal, snapshot) = Journal::open(path, Durability::Strict).unwrap();
    let l = Ledger::with_journal(config(), journal, snapshot);
    register(&l);
    l
}

fn register(l: &Ledger) {
    l.upsert_company(Company::new("acme").with_override(10), None, NOW)
        .unwrap();
    l.add_user("alice", "acme", NOW).unwrap();
    l.add_key(KEY, "alice").unwrap();
}

fn kinds(notices: &[tollgate_quota::Notice]) -> Vec<NoticeKind> {
    notices.iter().map(|n| n.kind).collect()
}

#[test]
fn notices_wait_until_acknowledged_and_twice_is_harmless() {
    let l = Ledger::new(config());
    register(&l);
    for _ in 0..11 {
        l.record(KEY, 1, NOW).unwrap();
    }
    let outbox = l.outbox();
    assert!(!outbox.is_durable());
    let taken = outbox.take(10, NOW);
    assert_eq!(kinds(&taken), [NoticeKind::Warning, NoticeKind::Overage]);
    let overage = &taken[1];
    assert_eq!(
        (
            overage.company.as_str(),
            overage.period.as_str(),
            overage.used,
            overage.limit
        ),
        ("acme", "2026-11", 11, 10)
    );
    // The free plan applies already: the paid one is proposed.
    assert_eq!(overage.suggested_plan.as_deref(), Some("API Access"));
    assert_eq!(overage.crossed_at.as_second(), 1_794_700_800);
    assert_eq!(overage.attempt, 1);
    // No key and no user in what the host gets.
    let json = serde_json::to_string(&taken).unwrap();
    assert!(!json.contains(KEY) && !json.contains("alice"), "{json}");
    // Taken and not acknowledged: not offered again before the timeout...
    assert!(outbox.take(10, NOW + 4 * MIN).is_empty());
    assert_eq!(outbox.stats(NOW).in_flight, 2);
    // ...and again after it.
    let again = outbox.take(10, NOW + 5 * MIN);
    assert_eq!(kinds(&again), kinds(&taken));
    assert_eq!(again[0].id, taken[0].id);
    assert_eq!(again[0].attempt, 2);
    // Acknowledged: never again; twice, or an unknown id, is harmless.
    assert!(outbox.ack(taken[0].id, NOW).unwrap());
    assert!(!outbox.ack(taken[0].id, NOW).unwrap());
    assert!(!outbox.ack(9_999, NOW).unwrap());
    // Released: offered again at once.
    assert!(outbox.release(taken[1].id));
    assert_eq!(
        kinds(&outbox.take(10, NOW + 5 * MIN)),
        [NoticeKind::Overage]
    );
    assert!(outbox.ack(taken[1].id, NOW).unwrap());
    assert!(!outbox.release(taken[1].id));
    assert!(outbox.take(10, NOW + 60 * MIN).is_empty());
    assert!(outbox.pending().is_empty());
    // More calls over the limit raise nothing more.
    l.record(KEY, 5, NOW).unwrap();
    assert!(outbox.take(10, NOW + 60 * MIN).is_empty());
    let s = outbox.stats(NOW);
    assert_eq!((s.pending, s.raised, s.acknowledged), (0, 2, 2));
}

#[test]
fn take_offers_at_most_max() {
    let l = Ledger::new(config());
    register(&l);
    l.record(KEY, 11, NOW).unwrap(); // both at once
    let outbox = l.outbox();
    assert_eq!(kinds(&outbox.take(1, NOW)), [NoticeKind::Warning]);
    assert_eq!(kinds(&outbox.take(1, NOW)), [NoticeKind::Overage]);
    assert!(outbox.take(1, NOW).is_empty());
    assert!(outbox.take(0, NOW + 10 * MIN).is_empty());
}

#[test]
fn a_restart_offers_unacknowledged_notices_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (warning, overage) = {
        let l = open(&path);
        assert!(l.outbox().is_durable());
        for _ in 0..11 {
            l.record(KEY, 1, NOW).unwrap();
        }
        let taken = l.outbox().take(10, NOW);
        assert_eq!(kinds(&taken), [NoticeKind::Warning, NoticeKind::Overage]);
        // The host acted on the warning only, then the process stopped.
        assert!(l.outbox().ack(taken[0].id, NOW).unwrap());
        (taken[0].clone(), taken[1].clone())
    };
    {
        let l = open(&path);
        let pending = l.outbox().pending();
        assert_eq!(pending.len(), 1, "{pending:?}");
        let taken = l.outbox().take(10, NOW);
        assert_eq!(taken.len(), 1);
        let n = &taken[0];
        // The same notice, with the same id, as the email needs it.
        assert_eq!(
            (
                n.id,
                n.kind,
                &n.company,
                &n.period,
                n.used,
                n.limit,
                &n.suggested_plan,
                n.crossed_at
            ),
            (
                overage.id,
                overage.kind,
                &overage.company,
                &overage.period,
                overage.used,
                overage.limit,
                &overage.suggested_plan,
                overage.crossed_at
            )
        );
        // The id acknowledged before the restart stays harmless.
        assert!(!l.outbox().ack(warning.id, NOW).unwrap());
        // More calls raise nothing new.
        l.record(KEY, 3, NOW).unwrap();
        assert_eq!(l.outbox().pending().len(), 1);
        assert!(l.outbox().ack(n.id, NOW).unwrap());
    }
    {
        let l = open(&path);
        assert!(l.outbox().pending().is_empty());
        l.record(KEY, 1, NOW).unwrap();
        assert!(l.outbox().take(10, NOW).is_empty());
        // A new notice gets a new id.
        l.upsert_company(Company::new("other").with_override(5), None, NOW)
            .unwrap();
        l.add_user("bob", "other", NOW).unwrap();
        l.add_key("77aa0000-1111-2222-3333-444455556666", "bob")
            .unwrap();
        l.record("77aa0000-1111-2222-3333-444455556666", 6, NOW)
            .unwrap();
        let ids: Vec<_> = l.outbox().take(10, NOW).iter().map(|n| n.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(|&id| id > overage.id), "{ids:?}");
    }
    // One row per company, period and kind; all acknowledged but the last two.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(String, String, Option<i64>)> = conn
        .prepare("SELECT company, kind, acked_at FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let shown: Vec<_> = rows
        .iter()
        .map(|(c, k, a)| (c.as_str(), k.as_str(), a.is_some()))
        .collect();
    assert_eq!(
        shown,
        [
            ("acme", "warning", true),
            ("acme", "overage", true),
            ("other", "warning", false),
            ("other", "overage", false)
        ]
    );
}

#[test]
fn a_crossing_journaled_without_its_notice_is_raised_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    {
        // What a process killed between the batch with the crossing usage and the one
        // with the notice leaves: usage over the limit, no notice.
        let (journal, _) = Journal::open(&path, Durability::Strict).unwrap();
        journal
            .append_durable(Entry::Usage {
                company: "acme".into(),
                user: Some("alice".into()),
                period_start: NOV,
                period: "2026-11".into(),
                calls: 12,
            })
            .unwrap();
        journal.close().unwrap();
    }
    let l = open(&path);
    let pending = l.outbox().pending();
    assert_eq!(kinds(&pending), [NoticeKind::Warning, NoticeKind::Overage]);
    assert_eq!((pending[1].used, pending[1].limit), (12, 10));
    drop(l);
    // Raised once: the next start finds them journaled (still pending).
    let l = open(&path);
    assert_eq!(l.outbox().pending().len(), 2);
    l.record(KEY, 1, NOW).unwrap();
    assert_eq!(l.outbox().pending().len(), 2);
}

#[test]
fn a_version_1_journal_is_migrated_and_its_notices_stay_raised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    {
        // The version 1 schema, as earlier builds wrote it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE usage (company TEXT NOT NULL, user TEXT NOT NULL DEFAULT '',
                 period_start INTEGER NOT NULL, period TEXT NOT NULL,
                 calls INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (company, user, period_start));
             CREATE TABLE notices (company TEXT NOT NULL, period TEXT NOT NULL,
                 kind TEXT NOT NULL CHECK (kind IN ('warning', 'overage')),
                 raised_at INTEGER NOT NULL, PRIMARY KEY (company, period, kind));
             CREATE TABLE commits (company TEXT NOT NULL, period_start INTEGER NOT NULL,
                 idempotency_key TEXT NOT NULL,
                 PRIMARY KEY (company, period_start, idempotency_key));
             INSERT INTO usage VALUES ('acme', '', 1793491200, '2026-11', 9);
             INSERT INTO usage VALUES ('acme', 'alice', 1793491200, '2026-11', 9);
             INSERT INTO notices VALUES ('acme', '2026-11', 'warning', 1794700000);
             PRAGMA application_id = 1413958737;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let l = open(&path);
    // The warning raised by version 1 is not raised again; the overage is new.
    assert!(l.outbox().pending().is_empty());
    l.record(KEY, 2, NOW).unwrap();
    assert_eq!(kinds(&l.outbox().pending()), [NoticeKind::Overage]);
    drop(l);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM outbox WHERE acked_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

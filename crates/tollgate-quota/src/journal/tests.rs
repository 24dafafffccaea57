//! Tests of the journal: round trips, batching and durability, failures, refused files.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::open::{file_uri, wal_path};
use super::*;

fn usage(company: &str, user: Option<&str>, start: i64, calls: i64) -> Entry {
    Entry::Usage {
        company: company.into(),
        user: user.map(Into::into),
        period_start: start,
        period: "2026-11".into(),
        calls,
    }
}

fn notice(company: &str, kind: NoticeKind, at: i64) -> Entry {
    Entry::Notice {
        id: at.unsigned_abs() * 2 + u64::from(kind == NoticeKind::Overage),
        company: company.into(),
        period: "2026-11".into(),
        kind,
        used: 10,
        limit: 8,
        suggested_plan: None,
        raised_at: at,
    }
}

fn commit(company: &str, key: &str) -> Entry {
    Entry::Commit {
        company: company.into(),
        period_start: NOV,
        idempotency_key: key.into(),
    }
}

fn rec(company: &str, user: Option<&str>, calls: i64) -> UsageRecord {
    UsageRecord {
        company: company.into(),
        user: user.map(Into::into),
        period_start: NOV,
        period: "2026-11".into(),
        calls,
    }
}

const NOV: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z

fn strict() -> Durability {
    Durability::Strict
}

/// Rows of `table` seen by a separate read-only connection.
fn count_rows(path: &Path, table: &str) -> i64 {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn journal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Journal>();
    assert_send_sync::<JournalError>();
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (j, snap) = Journal::open(&path, Durability::default()).unwrap();
    assert_eq!(snap, Snapshot::default());
    j.append(usage("acme", Some("ann"), NOV, 3));
    j.append(usage("acme", Some("bob"), NOV, 2));
    j.append(usage("acme", None, NOV, 1));
    j.append(usage("zeta", Some("zed"), NOV, 7));
    j.append(notice("acme", NoticeKind::Warning, NOV + 60));
    j.append(commit("acme", "req-1"));
    j.close().unwrap();
    assert!(
        !wal_path(&path).exists(),
        "a clean close checkpoints the WAL"
    );

    let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
    assert_eq!(
        snap.usage,
        vec![
            rec("acme", None, 6),
            rec("acme", Some("ann"), 3),
            rec("acme", Some("bob"), 2),
            rec("zeta", None, 7),
            rec("zeta", Some("zed"), 7),
        ]
    );
    assert_eq!(snap.company_total("acme", NOV), 6);
    assert_eq!(
        snap.notices,
        vec![NoticeRecord {
            company: "acme".into(),
            period: "2026-11".into(),
            kind: NoticeKind::Warning,
            raised_at: NOV + 60,
        }]
    );
    assert_eq!(
        snap.commits,
        vec![CommitRecord {
            company: "acme".into(),
            period_start: NOV,
            idempotency_key: "req-1".into(),
        }]
    );
    assert_eq!(j.usage_report().unwrap(), snap.usage);
    drop(j);
    // Reopening again gives the same snapshot.
    let (_j, again) = Journal::open(&path, Durability::Strict).unwrap();
    assert_eq!(again, snap);
}

#[test]
fn negative_deltas_refund() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (j, _) = Journal::open(&path, strict()).unwrap();
    j.append(usage("acme", Some("ann"), NOV, 10));
    j.append(usage("acme", Some("ann"), NOV, -4));
    j.append(usage("acme", None, NOV, -1));
    j.close().unwrap();
    let (_j, snap) = Journal::open(&path, strict()).unwrap();
    assert_eq!(
        snap.usage,
        vec![rec("acme", None, 5), rec("acme", Some("ann"), 6)]
    );
}

#[test]
fn notices_and_commits_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    for round in 0..2 {
        let (j, snap) = Journal::open(&path, strict()).unwrap();
        if round == 1 {
            assert_eq!(snap.notices.len(), 2);
            assert_eq!(snap.commits.len(), 2);
        }
        j.append_durable(notice("acme", NoticeKind::Warning, NOV + 1))
            .unwrap();
        j.append_durable(notice("acme", NoticeKind::Warning, NOV + 2))
            .unwrap();
        j.append_durable(notice("acme", NoticeKind::Overage, NOV + 3))
            .unwrap();
        j.append(commit("acme", "k1"));
        j.append(commit("acme", "k1"));
        j.append(commit("acme", "k2"));
        j.close().unwrap();
    }
    let (_j, snap) = Journal::open(&path, strict()).unwrap();
    let kinds: Vec<_> = snap.notices.iter().map(|n| (n.kind, n.raised_at)).collect();
    // The first notice of each kind is kept, with its time.
    assert_eq!(
        kinds,
        vec![
            (NoticeKind::Warning, NOV + 1),
            (NoticeKind::Overage, NOV + 3)
        ]
    );
    let keys: Vec<_> = snap
        .commits
        .iter()
        .map(|c| c.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, vec!["k1", "k2"]);
}

#[test]
fn append_all_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    // A long delay: only flush commits.
    let (j, _) = Journal::open(
        &path,
        Durability::BoundedLoss {
            max_delay: Duration::from_secs(60),
        },
    )
    .unwrap();
    for i in 0..500 {
        j.append_all([
            usage("acme", Some("ann"), NOV, 1),
            commit("acme", &format!("req-{i}")),
        ]);
    }
    j.flush().unwrap();
    assert_eq!(count_rows(&path, "commits"), 500);
    assert_eq!(j.usage_report().unwrap()[0], rec("acme", None, 500));
    j.flush().unwrap(); // nothing pending
}

#[test]
fn bounded_loss_commits_within_the_delay_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let delay = Duration::from_millis(50);
    let (j, _) = Journal::open(&path, Durability::BoundedLoss { max_delay: delay }).unwrap();
    j.append(usage("acme", Some("ann"), NOV, 1));
    j.append(commit("acme", "k"));
    std::thread::sleep(delay * 3);
    // Seen by another connection, while the journal is open, with no flush or wait.
    // (A loaded machine gets some slack before failing.)
    let give_up = Instant::now() + Duration::from_secs(5);
    while count_rows(&path, "commits") == 0 && Instant::now() < give_up {
        std::thread::sleep(delay);
    }
    assert_eq!(count_rows(&path, "commits"), 1);
    assert_eq!(count_rows(&path, "usage"), 2);
    drop(j);
}

#[test]
fn wait_guarantees_visibility() {
    let dir = tempfile::tempdir().unwrap();
    for (name, durability) in [
        ("strict.db", Durability::Strict),
        (
            "bounded.db",
            Durability::BoundedLoss {
                max_delay: Duration::from_secs(60),
            },
        ),
    ] {
        let path = dir.path().join(name);
        let (j, _) = Journal::open(&path, durability).unwrap();
        let j = Arc::new(j);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let j = Arc::clone(&j);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let key = format!("t{t}-{i}");
                        let ticket = j.append(commit("acme", &key));
                        j.wait(ticket).unwrap();
                        let conn =
                            Connection::open_with_flags(j.path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
                                .unwrap();
                        let n: i64 = conn
                            .query_row(
                                "SELECT count(*) FROM commits WHERE idempotency_key = ?1",
                                [&key],
                                |r| r.get(0),
                            )
                            .unwrap();
                        assert_eq!(n, 1, "{name}: {key} not visible after wait");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count_rows(&path, "commits"), 200);
    }
}

#[test]
fn drop_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (j, _) = Journal::open(
        &path,
        Durability::BoundedLoss {
            max_delay: Duration::from_secs(60),
        },
    )
    .unwrap();
    j.append(usage("acme", None, NOV, 42));
    drop(j);
    let (_j, snap) = Journal::open(&path, strict()).unwrap();
    assert_eq!(snap.company_total("acme", NOV), 42);
}

#[test]
fn writer_failure_is_retried_reported_and_healed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (j, _) = Journal::open(&path, strict()).unwrap();
    j.append_durable(usage("acme", None, NOV, 1)).unwrap();
    // Someone breaks the schema under the running journal.
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE usage")
        .unwrap();
    let t = j.append(usage("acme", None, NOV, 2));
    let err = j.wait(t).unwrap_err();
    assert!(matches!(err, JournalError::NotAcknowledged { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("no such table"), "{msg}");
    let h = j.health();
    assert_eq!(h.state, JournalState::Failing);
    assert!(h
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("no such table")));
    assert_eq!(h.pending_entries, 1);
    // Later calls report it at once, and nothing panics; the entries are kept.
    let t = j.append(commit("acme", "k"));
    assert!(matches!(
        j.wait(t),
        Err(JournalError::NotAcknowledged { .. })
    ));
    assert!(j.flush().is_err());
    // The table comes back: the next attempt commits everything kept.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE usage (company TEXT NOT NULL, user TEXT NOT NULL DEFAULT '',
             period_start INTEGER NOT NULL, period TEXT NOT NULL,
             calls INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (company, user, period_start))",
        )
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(10);
    while j.wait(t).is_err() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    j.wait(t).unwrap();
    assert!(j.health().is_ok());
    assert!(j.health().total_failures >= 1);
    j.close().unwrap();
    let (_j, snap) = Journal::open(&path, strict()).unwrap();
    assert_eq!(snap.company_total("acme", NOV), 2);
    assert_eq!(snap.commits.len(), 1);
}

#[test]
fn a_last_batch_that_fails_is_reported_by_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (j, _) = Journal::open(&path, strict()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE commits")
        .unwrap();
    j.append(commit("acme", "k"));
    assert!(matches!(j.close(), Err(JournalError::WriterFailed { .. })));
}

#[test]
fn appended_entries_are_bounded_and_a_wait_never_lies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let (j, _) = Journal::open(&path, strict()).unwrap();
    j.set_max_pending(3);
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE commits")
        .unwrap();
    let first = j.append(commit("acme", "k0"));
    assert!(j.wait(first).is_err());
    let mut last = first;
    for i in 1..10 {
        last = j.append(commit("acme", &format!("k{i}")));
    }
    let h = j.health();
    assert_eq!(h.dropped_entries, 7, "{h:?}");
    assert_eq!(h.pending_entries, 3, "{h:?}");
    assert!(matches!(j.wait(last), Err(JournalError::Dropped { .. })));
}

#[test]
fn empty_file_is_initialized() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    std::fs::write(&path, b"").unwrap();
    let (j, snap) = Journal::open(&path, strict()).unwrap();
    assert_eq!(snap, Snapshot::default());
    j.append_durable(usage("acme", None, NOV, 1)).unwrap();
}

/// Opens `path`, expects a refusal naming the path, and checks that nothing changed
/// on disk: the file's bytes, and no side file created.
fn assert_refused(path: &Path, expect: &str) {
    let before = std::fs::read(path).unwrap();
    let dir = path.parent().unwrap();
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let files_before = listing();
    let err = Journal::open(path, strict()).unwrap_err();
    let msg = err.to_string();
    eprintln!("refused: {msg}");
    assert!(
        matches!(err, JournalError::NotAJournal { .. }),
        "unexpected error: {msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(expect), "{msg:?} should mention {expect:?}");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file was modified"
    );
    assert_eq!(listing(), files_before, "side files were created");
}

/// A closed journal with enough rows to span many pages.
fn real_journal(path: &Path) {
    let (j, _) = Journal::open(path, strict()).unwrap();
    for i in 0..3000 {
        j.append(usage("acme", Some(&format!("user-{i:05}")), NOV, i));
    }
    j.close().unwrap();
    assert!(!wal_path(path).exists());
}

#[test]
fn refuses_a_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(20)).unwrap();
    assert_refused(&path, "not an SQLite database");
    // A short file too.
    std::fs::write(&path, "hi").unwrap();
    assert_refused(&path, "not an SQLite database");
}

#[test]
fn refuses_a_foreign_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO accounts (name) VALUES ('alice'), ('bob');",
        )
        .unwrap();
    }
    assert_refused(&path, "foreign SQLite database");

    // Another application's id, in WAL mode.
    let path = dir.path().join("other-app.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA application_id = 1234;
             CREATE TABLE usage (x);",
        )
        .unwrap();
    }
    assert_refused(&path, "foreign SQLite database");
}

#[test]
fn refuses_an_unknown_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    real_journal(&path);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 5").unwrap();
    }
    assert_refused(&path, "schema version 5");
}

/// A version-3 journal (before `period_limits`) opens, keeps its rows and is migrated.
#[test]
fn a_version_3_journal_is_migrated_to_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    real_journal(&path);
    let usage_before = Journal::read_usage(&path).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE period_limits; PRAGMA user_version = 3")
            .unwrap();
    }
    assert!(Journal::read_period_limits(&path).unwrap().is_empty());
    let (j, snap) = Journal::open(&path, strict()).unwrap();
    assert!(snap.period_limits.is_empty());
    drop(j);
    let conn = Connection::open(&path).unwrap();
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    assert_eq!(Journal::read_usage(&path).unwrap(), usage_before);
}

#[test]
fn refuses_a_corrupted_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    real_journal(&path);
    let good = std::fs::read(&path).unwrap();
    let page = 4096;
    let pages = good.len() / page;
    assert!(pages > 20);
    // Garbage in the middle of one page holding rows, then across a page boundary.
    let mid = pages / 2 * page;
    for range in [mid + 1500..mid + 2500, mid - 1000..mid + 1000] {
        let mut bytes = good.clone();
        for b in &mut bytes[range] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_refused(&path, "corrupted");
    }
}

#[test]
fn refuses_a_truncated_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    real_journal(&path);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&path, "corrupted");
}

#[test]
fn refuses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = Journal::open(dir.path(), strict()).unwrap_err();
    assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");
}

#[test]
fn file_uri_escapes() {
    let uri = file_uri(Path::new("/tmp/a b?c#d%e.db"), "mode=ro").unwrap();
    assert_eq!(uri, "file:/tmp/a%20b%3Fc%23d%25e.db?mode=ro");
}

fn revoked(key: &RevocationKey, value: &str, until: Option<u64>) -> Entry {
    Entry::Revoked(RevocationRecord {
        fingerprint: key.fingerprint(value),
        key: crate::KeyRef::of(value),
        filter_bit: 17,
        until,
        automatic: until.is_some(),
        revoked_at: 5,
    })
}

#[test]
fn revocations_round_trip_by_fingerprint_and_never_store_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let key = {
        let (j, _) = Journal::open(&path, strict()).unwrap();
        let (key, rows) = j.revocations().unwrap();
        assert!(rows.is_empty());
        j.append_all([
            revoked(&key, "sk_live_first_token", None),
            revoked(&key, "sk_live_second_token", Some(99)),
            revoked(&key, "sk_live_third_token", None),
        ]);
        j.flush().unwrap();
        // A later row of the same fingerprint replaces it; a restoration deletes it.
        j.append_all([
            revoked(&key, "sk_live_second_token", None),
            Entry::Unrevoked {
                fingerprint: key.fingerprint("sk_live_third_token"),
            },
        ]);
        j.close().unwrap();
        key
    };
    let (j, _) = Journal::open(&path, strict()).unwrap();
    let (again, rows) = j.revocations().unwrap();
    assert_eq!(again, key, "the key is kept in the file");
    assert_eq!(format!("{again:?}"), "RevocationKey { .. }");
    let mut want = vec![
        (key.fingerprint("sk_live_first_token"), None),
        (key.fingerprint("sk_live_second_token"), None),
    ];
    want.sort();
    let got: Vec<_> = rows.iter().map(|r| (r.fingerprint, r.until)).collect();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r.filter_bit == 17 && r.revoked_at == 5));
    assert_eq!(rows[0].key.to_string().len(), 16);
    j.close().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(7).any(|w| w == b"sk_live"));
}

#[test]
fn a_version_2_journal_is_migrated_to_version_3_with_a_revocation_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    real_journal(&path);
    {
        // Back to what version 2 had.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE revocations; DROP TABLE meta; PRAGMA user_version = 2;")
            .unwrap();
    }
    let (j, snap) = Journal::open(&path, strict()).unwrap();
    assert!(!snap.usage.is_empty(), "usage kept: {snap:?}");
    let (key, rows) = j.revocations().unwrap();
    assert!(rows.is_empty());
    j.append(revoked(&key, "tok", None));
    j.close().unwrap();
    let conn = Connection::open(&path).unwrap();
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(count_rows(&path, "revocations"), 1);
    assert_eq!(count_rows(&path, "meta"), 1);
}

#[test]
fn a_journal_without_its_revocation_key_is_refused_for_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    real_journal(&path);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DELETE FROM meta").unwrap();
    }
    let (j, _) = Journal::open(&path, strict()).unwrap();
    let err = j.revocations().unwrap_err().to_string();
    assert!(err.contains("revocation key"), "{err}");
}

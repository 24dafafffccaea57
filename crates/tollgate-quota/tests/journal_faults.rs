//! A full disk under a running journal, on a real 256 KB tmpfs: failures are retried,
//! counted and surfaced; once space returns the next batch succeeds and a restart finds
//! exactly the calls served. Mounting needs root (CI runs as root; with `CI=true` a
//! failure to mount fails the test, otherwise a non-root run skips it).

mod journal_faults_common;

use std::time::{Duration, Instant};

use journal_faults_common::{journaled_total, ledger, size, TinyFs, KEY, NOW};
use tollgate_quota::journal::{Durability, JournalState};
use tollgate_quota::QuotaEvent;

/// Calls served before, during and after the full disk.
const BEFORE: u64 = 3;
const DURING: u64 = 317;
const AFTER: u64 = 130;

/// Retries `sync` until it succeeds, bounded in count and time (the writer backs off
/// up to 1 s between attempts).
fn sync_eventually(l: &tollgate_quota::Ledger) -> Result<(), String> {
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    for _ in 0..400 {
        match l.sync() {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last)
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` over a second connection (the writer is idle).
fn checkpoint_truncate(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint was blocked");
}

#[test]
fn disk_full_is_retried_and_restart_counts_every_call() {
    let Some(fs) = TinyFs::mount("256k") else {
        return;
    };
    let path = fs.path().join("usage.db");
    let served;
    let pending_ids;
    {
        // A limit of 300 calls: the warning (240) and the overage notice (300) are both
        // crossed while the disk is full.
        let l = ledger(&path, Durability::Strict, 300);
        let mut n = 0u64;
        for _ in 0..BEFORE {
            l.record(KEY, 1, NOW).unwrap();
            n += 1;
            l.sync().expect("sync before the disk is full");
        }
        // Start the WAL from nothing, so that the next commits need blocks the full disk
        // no longer has (a WAL already at its size limit is rewritten in place).
        checkpoint_truncate(&path);
        let filled = fs.fill();
        eprintln!(
            "filled {filled} bytes; journal {} B, wal {} B",
            size(&path),
            size(&path.with_extension("db-wal"))
        );
        let mut failed_syncs = 0;
        for _ in 0..DURING {
            l.record(KEY, 1, NOW).unwrap();
            n += 1;
            if l.sync().is_err() {
                failed_syncs += 1;
            }
        }
        // The writer keeps retrying (with backoff) and counts every failed attempt.
        let give_up = Instant::now() + Duration::from_secs(10);
        while l.journal_health().unwrap().total_failures < 3 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        let health = l.journal_health().expect("a journaled ledger has health");
        eprintln!("while full: {failed_syncs} of {DURING} syncs failed; {health:?}");
        assert!(failed_syncs > 0, "the disk never filled up");
        assert_eq!(health.state, JournalState::Failing);
        assert!(health.total_failures >= 3 && health.consecutive_failures >= 3);
        assert!(health.failing_since.is_some());
        assert!(
            health
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("full")),
            "{health:?}"
        );
        // No notice is raised while its entry is not journaled...
        assert!(l.drain_events().is_empty());

        fs.free();
        sync_eventually(&l).expect("sync once space is back");
        let mut after_failures = 0;
        for _ in 0..AFTER {
            l.record(KEY, 1, NOW).unwrap();
            n += 1;
            if l.sync().is_err() {
                after_failures += 1;
            }
        }
        let health = l.journal_health().unwrap();
        eprintln!("after: {after_failures} of {AFTER} syncs failed; {health:?}");
        assert_eq!(after_failures, 0);
        assert_eq!(health.state, JournalState::Ok);
        assert_eq!(health.consecutive_failures, 0);
        assert_eq!(health.pending_entries, 0);
        // ... and both are raised once the journal took them.
        let events = l.drain_events();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, QuotaEvent::Warning { .. })),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, QuotaEvent::Overage { .. })),
            "{events:?}"
        );
        assert_eq!(events.len(), 2, "{events:?}");
        // The deferred notices entered the outbox when their entry committed: the host
        // takes both, and after a restart (below) they are pending again, same ids.
        let taken = l.outbox().take(16, NOW);
        assert_eq!(taken.len(), 2, "{taken:?}");
        pending_ids = taken.iter().map(|n| n.id).collect::<Vec<_>>();
        served = n;
    }
    let journaled = journaled_total(&path);
    eprintln!("served {served}, journaled {journaled}");
    assert_eq!(journaled, served as i64);
    let l = ledger(&path, Durability::Strict, 300);
    let again: Vec<_> = l.outbox().take(16, NOW).iter().map(|n| n.id).collect();
    assert_eq!(again, pending_ids);
}

#[test]
fn bounded_loss_journal_heals_without_waiters() {
    let Some(fs) = TinyFs::mount("256k") else {
        return;
    };
    let path = fs.path().join("usage.db");
    let delay = Duration::from_millis(10);
    let served = 500u64;
    {
        let l = ledger(
            &path,
            Durability::BoundedLoss { max_delay: delay },
            1_000_000,
        );
        l.record(KEY, 1, NOW).unwrap();
        l.sync().unwrap();
        // As above: an empty WAL, so the next batches need blocks the full disk lacks.
        checkpoint_truncate(&path);
        fs.fill();
        // Nobody waits: the collector's batches fail on their own, and are counted.
        let give_up = Instant::now() + Duration::from_secs(10);
        for i in 1..served {
            l.record(KEY, 1, NOW).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(delay * 2);
            }
        }
        while l.journal_health().unwrap().total_failures == 0 && Instant::now() < give_up {
            std::thread::sleep(delay);
        }
        let h = l.journal_health().unwrap();
        assert!(h.total_failures > 0, "{h:?}");
        assert_eq!(h.state, JournalState::Failing, "{h:?}");
        fs.free();
        sync_eventually(&l).expect("heals once space is back");
        assert_eq!(l.journal_health().unwrap().state, JournalState::Ok);
    }
    assert_eq!(journaled_total(&path), served as i64);
}

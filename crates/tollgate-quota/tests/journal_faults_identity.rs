//! A journal file deleted, moved or replaced under a running ledger: `sync` never
//! answers `Ok` for calls that are not in the file at the path. A deleted or moved file
//! is re-created at its path with the ledger's full state, so a restart counts every
//! call acknowledged; a replaced file is never written, and syncs fail until the path is
//! free again.

mod journal_faults_common;

use std::time::{Duration, Instant};

use journal_faults_common::{journaled_total, ledger, KEY, NOW};
use tollgate_quota::journal::{Durability, JournalState};
use tollgate_quota::Ledger;

/// Calls made, each acknowledged by `sync`; returns how many were acknowledged.
fn calls(l: &Ledger, n: u64) -> u64 {
    let mut acked = 0;
    for _ in 0..n {
        l.record(KEY, 1, NOW).unwrap();
        if l.sync().is_ok() {
            acked += 1;
        }
    }
    acked
}

/// Syncs until `sync` succeeds (bounded in count and time).
fn sync_eventually(l: &Ledger) -> bool {
    let give_up = Instant::now() + Duration::from_secs(10);
    for _ in 0..500 {
        if l.sync().is_ok() {
            return true;
        }
        if Instant::now() > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn remove_journal(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_deleted_journal_is_recreated_with_every_call() {
    for durability in [Durability::Strict, Durability::default()] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        {
            let l = ledger(&path, durability, 1_000_000);
            assert_eq!(calls(&l, 100), 100);
            remove_journal(&path);
            let acked = calls(&l, 100);
            assert!(sync_eventually(&l));
            let h = l.journal_health().unwrap();
            eprintln!("{durability:?}: {acked} of 100 acknowledged after the deletion; {h:?}");
            assert!(h.recreated >= 1, "{h:?}");
            assert_eq!(h.state, JournalState::Ok);
            assert!(path.exists());
        }
        assert_eq!(journaled_total(&path), 200, "{durability:?}");
    }
}

/// The notices survive a deleted journal as they are: the re-created file holds the
/// acknowledged one as acknowledged (never offered again after a restart) and the pending
/// one as pending, with its id.
#[test]
fn a_deleted_journal_keeps_the_outbox_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let overage_id;
    {
        // Limit 20: the warning at 16, the overage at 21 (the hard cap, 30, is not hit).
        let l = ledger(&path, Durability::Strict, 20);
        assert_eq!(calls(&l, 21), 21);
        let taken = l.outbox().take(16, NOW);
        assert_eq!(taken.len(), 2, "{taken:?}");
        let (warning, overage): (Vec<_>, Vec<_>) = taken
            .iter()
            .partition(|n| n.kind == tollgate_quota::journal::NoticeKind::Warning);
        assert!(l.outbox().ack(warning[0].id, NOW).unwrap());
        overage_id = overage[0].id;
        remove_journal(&path);
        let acked = calls(&l, 5);
        assert!(sync_eventually(&l));
        let h = l.journal_health().unwrap();
        eprintln!("{acked} of 5 acknowledged after the deletion; {h:?}");
        assert!(h.recreated >= 1, "{h:?}");
    }
    assert_eq!(journaled_total(&path), 26);
    let l = ledger(&path, Durability::Strict, 20);
    let pending = l.outbox().take(16, NOW);
    assert_eq!(
        pending.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![overage_id],
        "{pending:?}"
    );
    // Nothing is raised again: both notices' flags are in the new file.
    assert_eq!(calls(&l, 3), 3);
    assert!(l.drain_events().is_empty());
    assert_eq!(l.outbox().take(16, NOW).len(), 0);
}

#[test]
fn a_moved_journal_is_recreated_and_the_moved_file_is_left_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let aside = dir.path().join("aside.db");
    {
        let l = ledger(&path, Durability::Strict, 1_000_000);
        assert_eq!(calls(&l, 50), 50);
        std::fs::rename(&path, &aside).unwrap();
        calls(&l, 50);
        assert!(sync_eventually(&l));
    }
    assert_eq!(journaled_total(&path), 100);
    // The file moved away is still a sound journal.
    let moved = journaled_total(&aside);
    eprintln!("the moved file holds {moved} calls");
}

#[test]
fn a_replaced_journal_is_never_written_and_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let other = dir.path().join("other.db");
    // Another journal, with 7 calls of its own.
    {
        let l = ledger(&other, Durability::Strict, 1_000_000);
        assert_eq!(calls(&l, 7), 7);
    }
    let l = ledger(&path, Durability::Strict, 1_000_000);
    assert_eq!(calls(&l, 100), 100);
    std::fs::rename(&other, &path).unwrap();
    let acked = calls(&l, 100);
    let h = l.journal_health().unwrap();
    eprintln!("{acked} of 100 acknowledged after the replacement; {h:?}");
    assert_eq!(
        acked, 0,
        "sync answered Ok for calls not in the file at the path"
    );
    assert_eq!(h.state, JournalState::Failing);
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("replaced")),
        "{h:?}"
    );
    // The replacement is untouched.
    assert_eq!(journaled_total(&path), 7);
    // The operator removes it: the journal is re-created with the full state.
    remove_journal(&path);
    assert!(sync_eventually(&l));
    drop(l);
    assert_eq!(journaled_total(&path), 200);
}

//! The quota journal's faults through the engine: a full disk (a real 256 KB tmpfs)
//! during 450 calls is counted and surfaced (health, events, Prometheus), the notices
//! raised while the disk is full are sent once it heals, and a restart counts every call
//! served; with `fail_closed_after`, a journal failing too long refuses charged requests.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tollgate::{Engine, Event, Policy, Reason, Request};
use tollgate_quota::journal::{Durability, Journal, JournalState};
use tollgate_quota::QuotaError;

/// 2026-11-01T00:00:00Z.
const NOV: i64 = 1_793_491_200;
/// 2026-11-15T00:00:00Z in nanoseconds.
const NOW: u64 = 1_794_700_800 * 1_000_000_000;

fn policy(journal: &Path, extra: &str) -> Policy {
    Policy::from_toml(&format!(
        "version = 1\n[quota]\ndurability = \"strict\"\nhard_cap_percent = 1000\n\
         [quota.journal]\npath = {:?}\n{extra}\n\
         [[quota.plans]]\nname = \"free\"\ncalls_per_unit = 300\ndefault = true\n\
         [[quota.companies]]\nid = \"acme\"\nmachines = 1\n\
         users = [{{ id = \"ann\", keys = [\"k0\"] }}]\n",
        journal.display().to_string()
    ))
    .unwrap()
    .0
}

fn served(e: &Engine, n: u64) -> u64 {
    let mut ok = 0;
    for _ in 0..n {
        if e.decide(&Request::new().token("k0").at(NOW)).allowed() {
            ok += 1;
        }
        let _ = e.ledger().unwrap().sync();
    }
    ok
}

fn journaled(path: &Path) -> i64 {
    let (_j, snap) = Journal::open(path, Durability::Strict).unwrap();
    snap.company_total("acme", NOV)
}

struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

fn tmpfs() -> Option<Tmpfs> {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !root && !ci {
        eprintln!("skipped: mounting a tmpfs needs root (CI=true makes this a failure)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount -t tmpfs failed");
    Some(Tmpfs(dir))
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` over a second connection (the writer is idle).
fn checkpoint_truncate(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint was blocked");
}

fn fill(path: &Path) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for _ in 0..4096 {
        if f.write(&[0u8; 4096]).is_err() {
            break;
        }
    }
    for _ in 0..4096 {
        if f.write(&[0u8; 1]).is_err() {
            break;
        }
    }
}

#[test]
fn a_full_disk_through_the_engine_loses_no_call_and_no_notice() {
    let Some(fs) = tmpfs() else { return };
    let path = fs.0.path().join("usage.db");
    let filler = fs.0.path().join("filler");
    let mut total = 0;
    {
        let e = Engine::new(policy(&path, "")).unwrap();
        total += served(&e, 3);
        // Start the WAL from nothing, so that the next commits need blocks the full disk
        // no longer has (a WAL already at its size limit is rewritten in place).
        checkpoint_truncate(&path);
        fill(&filler);
        total += served(&e, 317);
        let give_up = Instant::now() + Duration::from_secs(10);
        while e.journal_health().unwrap().total_failures < 2 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        let h = e.journal_health().unwrap();
        assert_eq!(h.state, JournalState::Failing, "{h:?}");
        let text = e.prometheus();
        assert!(text.contains("tollgate_journal_healthy 0\n"), "{text}");
        assert!(
            !text.contains("tollgate_journal_failures_total 0\n"),
            "{text}"
        );
        let events = e.drain_events();
        assert!(
            events.iter().any(
                |ev| matches!(ev, Event::JournalFailing { error, .. } if error.contains("full"))
            ),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|ev| matches!(ev, Event::Quota(_))),
            "{events:?}"
        );

        std::fs::remove_file(&filler).unwrap();
        let give_up = Instant::now() + Duration::from_secs(10);
        while e.ledger().unwrap().sync().is_err() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        total += served(&e, 130);
        assert!(e.prometheus().contains("tollgate_journal_healthy 1\n"));
        let events = e.drain_events();
        eprintln!("after recovery: {events:?}");
        assert!(events
            .iter()
            .any(|ev| matches!(ev, Event::JournalRecovered { .. })));
        let notices = events
            .iter()
            .filter(|ev| matches!(ev, Event::Quota(_)))
            .count();
        assert_eq!(notices, 2, "warning and overage, once each: {events:?}");
    }
    let j = journaled(&path);
    eprintln!("served {total}, journaled {j}");
    assert_eq!(total, 450);
    assert_eq!(j, 450);
}

#[test]
fn fail_closed_after_refuses_charged_requests_until_the_journal_heals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let other = dir.path().join("other.db");
    drop(Journal::open(&other, Durability::Strict).unwrap());
    let e = Engine::new(policy(&path, "fail_closed_after = \"50ms\"")).unwrap();
    assert_eq!(served(&e, 5), 5);
    // Replaced under the engine: never written, failing until the path is free.
    std::fs::rename(&other, &path).unwrap();
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut refused = None;
    while Instant::now() < give_up {
        let d = e.decide(&Request::new().token("k0").at(NOW));
        if !d.allowed() {
            refused = Some(d);
            break;
        }
        let _ = e.ledger().unwrap().sync();
        std::thread::sleep(Duration::from_millis(10));
    }
    let d = refused.expect("refused once the journal failed for 50 ms");
    assert_eq!(d.reason, Reason::JournalFailing);
    // A reservation is refused the same way (it charged while the journal failed).
    match e.reserve_quota("k0", 1, Some(NOW)) {
        Some(Err(QuotaError::JournalFailing {
            failing_for,
            fail_closed_after,
        })) => assert!(failing_for > fail_closed_after),
        other => panic!("reserve while failing: {other:?}"),
    }
    assert!(e
        .prometheus()
        .contains("tollgate_journal_refused_total 2\n"));
    std::fs::remove_file(&path).unwrap();
    let give_up = Instant::now() + Duration::from_secs(10);
    while e.ledger().unwrap().sync().is_err() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(e.decide(&Request::new().token("k0").at(NOW)).allowed());
    let r = e
        .reserve_quota("k0", 1, Some(NOW))
        .unwrap()
        .expect("healed");
    e.refund_quota(r);
}

//! Issue #17, durable administration state: revocations and suspensions written to the
//! quota journal and restored when an engine restarts on the same file (a clean
//! restart: the engine dropped and built again; and a restart after the journal failed
//! on a full disk and healed). The revoked values never appear in the file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tollgate::{Engine, Policy, Reason, Request};
use tollgate_quota::journal::{Durability, Entry, Journal, JournalState, RevocationRecord};
use tollgate_quota::KeyRef;

const SEC: u64 = 1_000_000_000;

fn policy(journal: &Path) -> Policy {
    Policy::from_toml(&format!(
        "version = 1\n[quota]\ndurability = \"strict\"\n\
         [quota.journal]\npath = {:?}\n\
         [[quota.plans]]\nname = \"free\"\ncalls_per_unit = 100000\ndefault = true\n\
         [[quota.companies]]\nid = \"acme\"\nmachines = 1\n\
         users = [{{ id = \"ann\", keys = [\"ann-key-0001\", \"ann-key-0002\", \"ann-key-0003\", \"ann-key-0004\"] }}]\n\
         [revocation]\ndenials = 1\nwindow = \"1m\"\n\
         [[limit]]\nname = \"tight\"\nkey = [\"token\"]\nrate = \"1/h\"\n\
         [[limit.override]]\nmatch = {{ token = \"ann-key-0001\" }}\nrate = \"1000000/s\"\n\
         [[limit.override]]\nmatch = {{ token = \"ann-key-0002\" }}\nrate = \"1000000/s\"\n\
         [[limit.override]]\nmatch = {{ token = \"ann-key-0003\" }}\nrate = \"1000000/s\"\n",
        journal.display().to_string()
    ))
    .unwrap()
    .0
}

fn reason_at(e: &Engine, key: &str, at: u64) -> Reason {
    e.decide(&Request::new().token(key).at(at)).reason
}

/// The journal file's bytes (and its WAL's, if any) contain none of `secrets`.
fn assert_no_secret_in(path: &Path, secrets: &[&str]) {
    for p in [path.to_owned(), path.with_extension("db-wal")] {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s} stored in {}",
                p.display()
            );
        }
    }
}

#[test]
fn revocations_and_suspensions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let now;
    {
        let e = Engine::new(policy(&path)).unwrap();
        now = e.now();
        assert!(e.admin().revoke("ann-key-0001"));
        assert!(e
            .admin()
            .suspend_token("ann-key-0002", Duration::from_secs(3600)));
        // Revoked and restored: not revoked after the restart.
        assert!(e.admin().revoke("ann-key-0003"));
        assert!(e.admin().restore("ann-key-0003"));
        // An automatic revocation: the second request of `ann-key-0004` is denied by
        // the 1/h limit, which revokes it (denials = 1).
        assert_eq!(reason_at(&e, "ann-key-0004", now), Reason::Allowed);
        assert_ne!(reason_at(&e, "ann-key-0004", now), Reason::Allowed);
        assert!(e.is_revoked("ann-key-0004"));
        e.ledger().unwrap().sync().unwrap();
    }
    let e = Engine::new(policy(&path)).unwrap();
    assert!(e.is_revoked("ann-key-0001"));
    assert!(e.is_revoked("ann-key-0002"));
    assert!(!e.is_revoked("ann-key-0003"));
    assert!(e.is_revoked("ann-key-0004"));
    assert_eq!(reason_at(&e, "ann-key-0001", now), Reason::Revoked);
    assert_eq!(reason_at(&e, "ann-key-0002", now), Reason::Revoked);
    assert_eq!(reason_at(&e, "ann-key-0003", now), Reason::Allowed);
    assert_eq!(reason_at(&e, "ann-key-0004", now), Reason::Revoked);
    // The suspension ends at its own time, not an hour after the restart.
    assert_eq!(
        reason_at(&e, "ann-key-0002", now + 3601 * SEC),
        Reason::Allowed
    );
    assert_eq!(
        reason_at(&e, "ann-key-0001", now + 3601 * SEC),
        Reason::Revoked
    );
    // The list of revoked values keeps the references they had.
    let listed = e.revoked();
    for k in ["ann-key-0001", "ann-key-0004"] {
        assert!(listed.contains(&KeyRef::of(k)), "{listed:?}");
    }
    // A restoration after the restart is durable too.
    assert!(e.admin().restore("ann-key-0001"));
    drop(e);
    let e = Engine::new(policy(&path)).unwrap();
    assert!(!e.is_revoked("ann-key-0001"));
    assert_eq!(reason_at(&e, "ann-key-0001", now), Reason::Allowed);
    drop(e);
    assert_no_secret_in(
        &path,
        &[
            "ann-key-0001",
            "ann-key-0002",
            "ann-key-0003",
            "ann-key-0004",
        ],
    );
}

#[test]
fn a_suspension_whose_end_passed_is_not_restored_and_its_row_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    drop(Engine::new(policy(&path)).unwrap());
    // Rows written as an engine writes them: one suspension that ended (at 1 ns past the
    // epoch), one that ends in a day.
    {
        let (j, _) = Journal::open(&path, Durability::Strict).unwrap();
        let (key, rows) = j.revocations().unwrap();
        assert!(rows.is_empty());
        let row = |k: &str, until| {
            Entry::Revoked(RevocationRecord {
                fingerprint: key.fingerprint(k),
                key: KeyRef::of(k),
                filter_bit: 0,
                until: Some(until),
                automatic: false,
                revoked_at: 0,
            })
        };
        let far = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap()
            + 86_400 * SEC;
        j.append_all([row("ann-key-0001", 1), row("ann-key-0002", far)]);
        j.close().unwrap();
    }
    let e = Engine::new(policy(&path)).unwrap();
    let now = e.now();
    assert!(!e.is_revoked("ann-key-0001"));
    assert_eq!(reason_at(&e, "ann-key-0001", now), Reason::Allowed);
    // (The row's filter bit is not the value's own, so only the set is asked here.)
    assert!(e.is_revoked("ann-key-0002"));
    e.ledger().unwrap().sync().unwrap();
    let (_, rows) = e
        .ledger()
        .unwrap()
        .journal()
        .unwrap()
        .revocations()
        .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the ended suspension's row is deleted: {rows:?}"
    );
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

/// `PRAGMA wal_checkpoint(TRUNCATE)` over a second connection (the writer is idle): the
/// next commits need blocks a full disk no longer has.
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

/// A revocation made while the journal's disk is full is enforced at once, kept queued,
/// committed once the disk heals, and restored after a restart.
#[test]
fn a_revocation_made_while_the_journal_fails_is_restored_after_it_heals() {
    let Some(fs) = tmpfs() else { return };
    let path = fs.0.path().join("usage.db");
    let filler = fs.0.path().join("filler");
    let now;
    {
        let e = Engine::new(policy(&path)).unwrap();
        now = e.now();
        e.ledger().unwrap().sync().unwrap();
        checkpoint_truncate(&path);
        fill(&filler);
        // Push usage until the writer fails (bounded in count and time).
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while e.journal_health().unwrap().state != JournalState::Failing
            && Instant::now() < give_up
            && n < 100_000
        {
            e.decide(&Request::new().token("ann-key-0003").at(now));
            let _ = e.ledger().unwrap().sync();
            n += 1;
        }
        assert_eq!(e.journal_health().unwrap().state, JournalState::Failing);
        // Does not block on the failing journal, and is enforced at once.
        assert!(e.admin().revoke("ann-key-0001"));
        assert_eq!(reason_at(&e, "ann-key-0001", now), Reason::Revoked);
        std::fs::remove_file(&filler).unwrap();
        let give_up = Instant::now() + Duration::from_secs(10);
        while e.ledger().unwrap().sync().is_err() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        e.ledger().unwrap().sync().unwrap();
    }
    let e = Engine::new(policy(&path)).unwrap();
    assert!(e.is_revoked("ann-key-0001"));
    assert_eq!(reason_at(&e, "ann-key-0001", now), Reason::Revoked);
    drop(e);
    assert_no_secret_in(&path, &["ann-key-0001"]);
}

fn directory(journal: &Path, extra_companies: &str, acme_machines: u64) -> Policy {
    Policy::from_toml(&format!(
        "version = 1\n[quota]\ndurability = \"strict\"\n\
         [quota.journal]\npath = {:?}\n\
         [[quota.plans]]\nname = \"free\"\ncalls_per_unit = 1000\ndefault = true\n\
         [[quota.companies]]\nid = \"acme\"\nmachines = {acme_machines}\n\
         users = [{{ id = \"ann\", keys = [\"ann-key-0001\"] }}, {{ id = \"bob\", keys = [\"bob-key-0002\"] }}]\n\
         [[quota.companies]]\nid = \"beta\"\nmachines = 1\n\
         users = [{{ id = \"cid\", keys = [\"cid-key-0003\"] }}]\n{extra_companies}",
        journal.display().to_string()
    ))
    .unwrap()
    .0
}

const GAMMA: &str = "[[quota.companies]]\nid = \"gamma\"\nmachines = 1\n\
                     users = [{ id = \"dan\", keys = [\"dan-key-0004\"] }]\n";

fn machines_of(e: &Engine, company: &str) -> u64 {
    e.ledger().unwrap().company(company).unwrap().machines
}

/// Item 2 (companies and users): admin changes survive a restart on the same journal,
/// applied on top of the policy file; where the file differs, the journal's change wins
/// and the engine says so.
#[test]
fn admin_changes_to_companies_and_users_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let now;
    {
        let e = Engine::new(directory(&path, GAMMA, 1)).unwrap();
        now = e.now();
        assert!(e.journal_conflicts().is_empty());
        let a = e.admin();
        a.terminate_company("beta").unwrap();
        a.disable_user("bob").unwrap();
        a.set_company_units("acme", 3, 0).unwrap();
        a.add_company(tollgate::quota::Company::new("delta"), None)
            .unwrap();
        a.add_user("eve", "delta").unwrap();
        a.suspend_company("gamma").unwrap();
        assert_eq!(machines_of(&e, "acme"), 3);
        assert_eq!(reason_at(&e, "cid-key-0003", now), Reason::Terminated);
        assert_eq!(reason_at(&e, "bob-key-0002", now), Reason::Revoked);
    }
    // The same file: every change is back.
    {
        let e = Engine::new(directory(&path, GAMMA, 1)).unwrap();
        assert_eq!(reason_at(&e, "cid-key-0003", now), Reason::Terminated);
        assert_eq!(reason_at(&e, "bob-key-0002", now), Reason::Revoked);
        assert_eq!(reason_at(&e, "ann-key-0001", now), Reason::Allowed);
        assert_ne!(reason_at(&e, "dan-key-0004", now), Reason::Allowed);
        assert_eq!(machines_of(&e, "acme"), 3);
        assert!(e.ledger().unwrap().company("delta").is_some());
        assert_eq!(
            e.ledger().unwrap().company_of_user("eve").as_deref(),
            Some("delta")
        );
        let notes = e.journal_conflicts();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("\"acme\""), "{notes:?}");
        e.admin().resume_company("gamma").unwrap();
        e.admin().enable_user("bob").unwrap();
    }
    // The file changed acme's machines and dropped gamma: the journal's later change to
    // acme wins; gamma's changes no longer apply; both are reported.
    let e = Engine::new(directory(&path, "", 5)).unwrap();
    assert_eq!(machines_of(&e, "acme"), 3);
    assert_eq!(reason_at(&e, "bob-key-0002", now), Reason::Allowed);
    assert_eq!(reason_at(&e, "cid-key-0003", now), Reason::Terminated);
    let notes = e.journal_conflicts();
    assert!(notes.iter().any(|n| n.contains("\"acme\"")), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("gamma")),
        "gamma is gone from the file: {notes:?}"
    );
}

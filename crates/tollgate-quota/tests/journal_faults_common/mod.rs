//! Helpers shared by the journal fault tests: a real tiny filesystem (tmpfs) that can be
//! filled and freed, and a ledger with one company, one user and one key.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use tollgate_quota::journal::{Durability, Journal};
use tollgate_quota::{Company, Ledger, QuotaConfig};

/// 2026-11-15T00:00:00Z in Unix nanoseconds: every call of these tests falls in
/// November 2026.
pub(crate) const NOW: i128 = 1_794_700_800 * 1_000_000_000;
/// 2026-11-01T00:00:00Z, the period's start.
pub(crate) const NOV: i64 = 1_793_491_200;
/// The test key (not a secret: a made-up UUID).
pub(crate) const KEY: &str = "7c1d2e3f-5b7d-4e21-9a0b-6c8d2f1e4a77";

/// A tmpfs of `size` mounted on a fresh temporary directory, unmounted on drop.
pub(crate) struct TinyFs {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl TinyFs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. "256k"). Needs root; returns
    /// `None` (the caller skips) when not root, except with `CI=true`, where a failure to
    /// mount fails the test.
    pub(crate) fn mount(size: &str) -> Option<TinyFs> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        if !root && !ci {
            eprintln!("skipped: mounting a tmpfs needs root (CI=true makes this a failure)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let filler = dir.path().join("filler");
        Some(TinyFs { dir, filler })
    }

    /// The mount point.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte with a filler file; returns the bytes written.
    pub(crate) fn fill(&self) -> u64 {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("filler");
        let chunk = [0x5Au8; 4096];
        let mut written = 0u64;
        // Bounded: a 256 KB filesystem takes at most 64 chunks; 4096 is far beyond.
        for _ in 0..4096 {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Byte by byte for the last partial block.
        for _ in 0..4096 {
            match f.write(&chunk[..1]) {
                Ok(1) => written += 1,
                _ => break,
            }
        }
        let _ = f.sync_all();
        written
    }

    /// Frees the space taken by [`fill`](Self::fill).
    pub(crate) fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A ledger journaled at `path` with company `acme` (a limit of `limit` calls a month),
/// user `ann` and [`KEY`].
pub(crate) fn ledger(path: &Path, durability: Durability, limit: u64) -> Ledger {
    let (journal, snapshot) = Journal::open(path, durability).expect("open the journal");
    let l = Ledger::with_journal(QuotaConfig::default(), journal, snapshot);
    l.upsert_company(Company::new("acme").with_override(limit), None, NOW)
        .expect("company");
    l.add_user("ann", "acme", NOW).expect("user");
    l.add_key(KEY, "ann").expect("key");
    l
}

/// The company total journaled at `path`, read after reopening it.
pub(crate) fn journaled_total(path: &Path) -> i64 {
    let (_j, snap) = Journal::open(path, Durability::Strict).expect("reopen the journal");
    snap.company_total("acme", NOV)
}

/// Size of a file, 0 if absent.
pub(crate) fn size(path: &Path) -> u64 {
    File::open(path)
        .and_then(|f| f.metadata())
        .map(|m| m.len())
        .unwrap_or(0)
}

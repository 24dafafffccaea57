//! A host-shared region on a filesystem without room for it (a full `/dev/shm`): opening
//! must fail with a clear error. A sparse file would open, and the first write to a page
//! the filesystem cannot back would raise SIGBUS and kill the host process (an nginx
//! worker). Needs root to mount a tiny tmpfs; with `CI=true` a failure to mount fails.

#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::Duration;

use tollgate_core::{Gcra, Rate, SharedStateError, SharedStore};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn a_region_larger_than_its_filesystem_is_refused_at_open() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !is_root() && !ci {
        eprintln!("skipped: mounting a tmpfs needs root (CI=true makes this a failure)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tollgate-shm-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
        .arg(&dir)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("region");
    let alg = Gcra::new(Rate::new(10, Duration::from_secs(60)).unwrap());
    // 100,000 keys need about 2 MB: eight times the filesystem.
    let opened = SharedStore::<u64, Gcra>::open(&path, 100_000, alg);
    let result = match opened {
        Err(e) => Err(e),
        Ok(s) => {
            // Before the fix this wrote into pages tmpfs cannot back: SIGBUS.
            for k in 0..100_000u64 {
                let _ = s.decide(&k, 0, 1);
            }
            Ok(())
        }
    };
    let _ = Command::new("umount").arg(&dir).status();
    match result {
        Err(SharedStateError::Io(p, e)) => {
            assert_eq!(p, path);
            assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
        }
        other => panic!("expected a clear error at open, got {other:?}"),
    }
}

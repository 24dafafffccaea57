//! Several processes on one shared region (issue #19): the test binary runs itself as
//! the child processes (`TOLLGATE_SHM_CHILD` selects what a child does).

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_core::{Gcra, Rate, SharedKeyed, SharedStore};

const KEYS_PER_CHILD: u64 = 300;

fn alg() -> Gcra {
    Gcra::new(Rate::new(10, Duration::from_secs(60)).unwrap())
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} unset"))
        .parse()
        .unwrap()
}

/// Runs the body of a child process when the test binary was started as one; a no-op
/// in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var("TOLLGATE_SHM_CHILD") else {
        return;
    };
    let path = PathBuf::from(std::env::var("TOLLGATE_SHM_PATH").unwrap());
    let cap = env_u64("TOLLGATE_SHM_CAP") as usize;
    let now = env_u64("TOLLGATE_SHM_NOW");
    let limiter: SharedKeyed<u64, Gcra> = SharedKeyed::open(&path, alg(), cap).unwrap();
    match role.as_str() {
        "one-key" => {
            let n = env_u64("TOLLGATE_SHM_CHECKS");
            let allowed = (0..n)
                .filter(|_| limiter.check_at(&7, now).unwrap().allowed())
                .count();
            println!("ALLOWED {allowed}");
        }
        "campaign" => {
            let id = env_u64("TOLLGATE_SHM_ID");
            for i in 0..KEYS_PER_CHILD {
                let key = (id << 32) | i;
                assert!(limiter.check_n_at(&key, 1, now).unwrap().allowed());
                // Hits on other children's keys (probes: they change no state).
                if id > 0 && i % 4 == 0 {
                    let other = ((i * 7919 + id) % id) << 32 | (i % KEYS_PER_CHILD);
                    limiter.check_n_at(&other, 0, now).unwrap();
                }
            }
            println!("DONE {id}");
        }
        r => panic!("unknown child role {r}"),
    }
    // Exit without the harness's own output so the parent reads only ours.
    std::process::exit(0);
}

fn spawn(path: &Path, cap: usize, now: u64, role: &str, extra: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("TOLLGATE_SHM_CHILD", role)
        .env("TOLLGATE_SHM_PATH", path)
        .env("TOLLGATE_SHM_CAP", cap.to_string())
        .env("TOLLGATE_SHM_NOW", now.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn region(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tollgate-shmproc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn four_processes_allow_exactly_the_limit_of_one_key() {
    for run in 0..5 {
        let path = region(&format!("one-{run}"));
        let now = unix_now();
        let children: Vec<Child> = (0..4)
            .map(|_| {
                spawn(
                    &path,
                    100,
                    now,
                    "one-key",
                    &[("TOLLGATE_SHM_CHECKS", "15".into())],
                )
            })
            .collect();
        let mut total = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "child failed: {:?}", out.status);
            let text = String::from_utf8(out.stdout).unwrap();
            let line = text
                .split("ALLOWED ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or_else(|| panic!("no count in {text:?}"));
            total += line.parse::<usize>().unwrap();
        }
        assert_eq!(
            total, 10,
            "run {run}: 60 checks of 10/min across 4 processes"
        );
        let s: SharedStore<u64, Gcra> = SharedStore::open(&path, 100, alg()).unwrap();
        assert_eq!(s.verify(), Ok(1));
        std::fs::remove_file(&path).unwrap();
    }
}

/// A small deterministic generator (xorshift), seeded from the clock and printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkilled_inserters_leave_every_invariant() {
    let kills_wanted: u64 = std::env::var("TOLLGATE_KILLS")
        .ok()
        .map_or(100, |v| v.parse().unwrap());
    let budget = Duration::from_secs(if kills_wanted > 100 { 600 } else { 60 });
    let cap = ((kills_wanted * 3 + 100) * KEYS_PER_CHILD) as usize;
    let path = region("kills");
    let now = unix_now();
    let parent: SharedStore<u64, Gcra> = SharedStore::open(&path, cap, alg()).unwrap();
    let seed = now | 1;
    eprintln!("kill campaign: {kills_wanted} kills, seed {seed}, capacity {cap}");
    let mut rng = Rng(seed);
    let mut next_id = 0u64;
    let mut running: Vec<(u64, Child)> = Vec::new();
    let mut finished = Vec::new();
    let mut kills = 0u64;
    let start = Instant::now();
    let mut start_one = |running: &mut Vec<(u64, Child)>| {
        let id = next_id;
        next_id += 1;
        let c = spawn(
            &path,
            cap,
            now,
            "campaign",
            &[("TOLLGATE_SHM_ID", id.to_string())],
        );
        running.push((id, c));
    };
    for _ in 0..3 {
        start_one(&mut running);
    }
    while kills < kills_wanted {
        assert!(start.elapsed() < budget, "only {kills} kills in {budget:?}");
        std::thread::sleep(Duration::from_micros(rng.next() % 4000));
        // Collect the children that finished on their own.
        let mut i = 0;
        while i < running.len() {
            if let Some(st) = running[i].1.try_wait().unwrap() {
                let (id, c) = running.swap_remove(i);
                assert!(st.success(), "child {id} failed: {st:?}");
                let out = c.wait_with_output().unwrap();
                assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("DONE {id}")));
                finished.push(id);
                start_one(&mut running);
            } else {
                i += 1;
            }
        }
        let victim = (rng.next() % running.len() as u64) as usize;
        let (_, mut c) = running.swap_remove(victim);
        // SIGKILL (Child::kill), then reap so its pid is gone for the claim take-over.
        let _ = c.kill();
        let _ = c.wait();
        kills += 1;
        start_one(&mut running);
    }
    for (id, c) in running.drain(..) {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child {id} failed: {:?}", out.status);
        finished.push(id);
    }
    let released = parent.release_dead_claims();
    let keys = parent.verify().expect("invariants after the kill campaign");
    for id in &finished {
        for i in 0..KEYS_PER_CHILD {
            let key = (id << 32) | i;
            assert_eq!(
                parent.decide(&key, now, 0).unwrap().remaining,
                9,
                "key {i} of finished child {id}"
            );
        }
    }
    eprintln!(
        "kill campaign: {kills} kills, {} children finished, {} started, {keys} keys \
         ({} from killed children), {released} dead claims released, {:?}",
        finished.len(),
        next_id,
        keys as u64 - finished.len() as u64 * KEYS_PER_CHILD,
        start.elapsed()
    );
    assert!(finished.len() >= 3);
    drop(parent);
    std::fs::remove_file(&path).unwrap();
}

//! Crash test of the durable ledger: a child process records calls from several threads
//! through a [`Ledger`] journaled to SQLite and is killed with SIGKILL at a random moment;
//! the parent reopens the journal and checks that no call acknowledged as durable was
//! lost, nothing was counted that was not attempted, calls older than the loss window
//! survived (bounded-loss mode), and no notice was sent twice. Each round continues on the
//! same file, as a restarted service would.
//!
//! The child is this test binary itself, re-executed with `TOLLGATE_CRASH_CHILD` set and a
//! filter that runs only [`crash_child`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tollgate_quota::journal::{Durability, Journal, NoticeKind};
use tollgate_quota::{Company, Ledger, Plans, QuotaConfig, QuotaEvent};

const CHILD_ENV: &str = "TOLLGATE_CRASH_CHILD";
const MODE_ENV: &str = "TOLLGATE_CRASH_MODE";
const THREADS: usize = 4;
/// Every call is stamped 2026-11-15T00:00:00Z: one period for the whole test.
const NOW_NANOS: i128 = 1_794_700_800 * 1_000_000_000;
/// 2026-11-01T00:00:00Z, the period's start.
const NOV: i64 = 1_793_491_200;
/// The company's monthly limit: low enough that the warning (80%) and the overage notice
/// are raised during the test, in a round that may be killed.
const LIMIT: u64 = 300;
/// In bounded-loss mode, a thread waits for durability every this many calls.
const BOUNDED_WAIT_EVERY: u64 = 25;
/// The bounded-loss window the child runs with.
const MAX_DELAY: Duration = Duration::from_millis(20);
/// Slack over the loss window for the machine's scheduling and the commit itself: a call
/// reported done longer than `MAX_DELAY + SLACK` before the kill must have survived.
const SLACK: Duration = Duration::from_millis(500);

fn key(t: usize) -> String {
    format!("0000000{t}-5b7d-4e21-9a0b-6c8d2f1e4a77")
}

fn line(out: &std::io::Stdout, s: &str) {
    let mut out = out.lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// The child: runs only when re-executed by a parent test, until it is killed.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let strict = std::env::var(MODE_ENV).as_deref() == Ok("strict");
    let durability = if strict {
        Durability::Strict
    } else {
        Durability::BoundedLoss {
            max_delay: MAX_DELAY,
        }
    };
    let (journal, snapshot) = Journal::open(&path, durability).expect("child: open");
    let config = QuotaConfig {
        plans: Plans::standard(),
        warning_percent: Some(80),
        hard_cap_percent: None,
        ..QuotaConfig::default()
    };
    let ledger = Arc::new(Ledger::with_journal(config, journal, snapshot));
    ledger
        .upsert_company(Company::new("c").with_override(LIMIT), None, NOW_NANOS)
        .expect("child: company");
    for t in 0..THREADS {
        let user = format!("u{t}");
        ledger.add_user(&user, "c", NOW_NANOS).expect("child: user");
        ledger.add_key(&key(t), &user).expect("child: key");
    }
    // libtest has printed "test crash_child ... " without a newline: end that line so
    // that ours start at the beginning of one.
    line(&std::io::stdout(), "");
    let stop = Instant::now() + Duration::from_secs(20); // if the parent never kills us
    let done = Arc::new(AtomicBool::new(false));
    let notices = {
        let ledger = Arc::clone(&ledger);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let out = std::io::stdout();
            while !done.load(Ordering::Relaxed) {
                for e in ledger.drain_events() {
                    let kind = match e {
                        QuotaEvent::Warning { .. } => "warning",
                        QuotaEvent::Overage { .. } => "overage",
                    };
                    line(&out, &format!("notice {kind}"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                let out = std::io::stdout();
                let key = key(t);
                let mut n = 0u64;
                while Instant::now() < stop {
                    n += 1;
                    line(&out, &format!("try {t} {n}"));
                    ledger.record(&key, 1, NOW_NANOS).expect("child: record");
                    line(&out, &format!("done {t} {n}"));
                    if strict || n.is_multiple_of(BOUNDED_WAIT_EVERY) {
                        ledger.sync().expect("child: sync");
                        line(&out, &format!("ack {t} {n}"));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    notices.join().unwrap();
}

/// A small xorshift generator seeded from the clock.
struct XorShift(u64);

impl XorShift {
    fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        XorShift(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What a killed child reported, per thread.
#[derive(Debug, Default)]
struct Report {
    /// Calls the thread was about to record ("try" lines).
    tries: [u64; THREADS],
    /// Calls acknowledged as durable ("ack" lines: every call of the thread so far).
    acked: [u64; THREADS],
    /// Calls reported done longer than the loss window (plus slack) before the kill.
    old: [u64; THREADS],
    /// Notices raised, by kind.
    notices: HashMap<String, u64>,
    /// Lines the parent did not understand (for the failure message).
    other: Vec<String>,
}

/// Parses "<thread> <n>".
fn thread_and_count(rest: &str) -> Option<(usize, u64)> {
    let (t, n) = rest.split_once(' ')?;
    let t = t.parse().ok().filter(|&t| t < THREADS)?;
    Some((t, n.parse().ok()?))
}

/// Runs one child on `path`, kills it after `delay`, and returns what it reported.
fn run_child(path: &Path, mode: &str, delay: Duration) -> Report {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut report = Report::default();
        // When each thread's "done" lines arrived: (time, n), in order.
        let mut done: Vec<Vec<(Instant, u64)>> = vec![Vec::new(); THREADS];
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if let Some((t, n)) = l.strip_prefix("try ").and_then(thread_and_count) {
                report.tries[t] = report.tries[t].max(n);
            } else if let Some((t, n)) = l.strip_prefix("done ").and_then(thread_and_count) {
                done[t].push((Instant::now(), n));
            } else if let Some((t, n)) = l.strip_prefix("ack ").and_then(thread_and_count) {
                report.acked[t] = report.acked[t].max(n);
            } else if let Some(kind) = l.strip_prefix("notice ") {
                *report.notices.entry(kind.to_owned()).or_default() += 1;
            } else if !l.is_empty() && !l.starts_with("test ") && !l.starts_with("running ") {
                report.other.push(l);
            }
        }
        (report, done)
    });
    std::thread::sleep(delay);
    let killed_at = Instant::now();
    child.kill().expect("kill the child"); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child ended on its own: {status}");
    let (mut report, done) = reader.join().unwrap();
    for (t, done) in done.iter().enumerate() {
        report.old[t] = done
            .iter()
            .filter(|(at, _)| killed_at.duration_since(*at) > MAX_DELAY + SLACK)
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(0);
    }
    report
}

fn check_notices_unique(path: &Path) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let dups: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT company, period, kind FROM notices
                 GROUP BY company, period, kind HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dups, 0, "duplicated notices");
}

/// Each user's journaled calls and the company total.
fn journaled(path: &Path) -> ([u64; THREADS], i64, Vec<NoticeKind>) {
    let (journal, snap) = Journal::open(path, Durability::Strict)
        .unwrap_or_else(|e| panic!("reopen after SIGKILL: {e}"));
    let mut per_user = [0u64; THREADS];
    for (t, used) in per_user.iter_mut().enumerate() {
        let user = format!("u{t}");
        *used = snap
            .usage
            .iter()
            .filter(|r| r.user.as_deref() == Some(user.as_str()))
            .map(|r| u64::try_from(r.calls).expect("no negative usage"))
            .sum();
    }
    let total = snap.company_total("c", NOV);
    let notices = snap.notices.iter().map(|n| n.kind).collect();
    drop(journal);
    (per_user, total, notices)
}

fn crash_rounds(mode: &str, rounds: usize, delays_ms: (u64, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let mut rng = XorShift::from_clock();
    let mut before = [0u64; THREADS];
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut checked_old = 0;
    for round in 0..rounds {
        let delay = Duration::from_millis(rng.between(delays_ms.0, delays_ms.1));
        let report = run_child(&path, mode, delay);
        for (kind, n) in &report.notices {
            *sent.entry(kind.clone()).or_default() += n;
        }
        let (after, total, notices) = journaled(&path);
        eprintln!(
            "{mode} round {round}: killed after {delay:?}: before {before:?}, acked {:?}, \
             older than the window {:?}, journaled {after:?} (total {total}), tried {:?}, \
             notices sent {sent:?}",
            report.acked, report.old, report.tries
        );
        let context = format!(
            "{mode} round {round}: unparsed child output {:?}",
            report.other
        );
        assert_eq!(
            total,
            after.iter().map(|&u| u as i64).sum::<i64>(),
            "{context}: company and user rows disagree"
        );
        for t in 0..THREADS {
            assert!(
                after[t] >= before[t] + report.acked[t],
                "{context}: user {t} lost acknowledged calls: {} < {} + {}",
                after[t],
                before[t],
                report.acked[t]
            );
            assert!(
                after[t] >= before[t] + report.old[t],
                "{context}: user {t} lost calls older than the loss window: {} < {} + {}",
                after[t],
                before[t],
                report.old[t]
            );
            assert!(
                after[t] <= before[t] + report.tries[t],
                "{context}: user {t} has more calls than attempted: {} > {} + {}",
                after[t],
                before[t],
                report.tries[t]
            );
            checked_old += report.old[t];
        }
        for (kind, n) in &sent {
            assert!(*n <= 1, "{context}: the {kind} notice was sent {n} times");
            assert!(
                notices.iter().any(|k| k.as_str() == kind),
                "{context}: the {kind} notice was sent but not journaled"
            );
        }
        check_notices_unique(&path);
        before = after;
    }
    let used: u64 = before.iter().sum();
    // The test is only meaningful if the run went over the limit (both notices were due)
    // and, in bounded-loss mode, if calls older than the window were checked.
    assert!(used > LIMIT, "{mode}: only {used} calls in {rounds} rounds");
    if mode == "bounded" {
        assert!(checked_old > 0, "no call was older than the loss window");
    }
}

#[test]
fn strict_mode_survives_sigkill() {
    crash_rounds("strict", 15, (20, 300));
}

#[test]
fn bounded_loss_mode_survives_sigkill() {
    crash_rounds("bounded", 8, (100, 1200));
}

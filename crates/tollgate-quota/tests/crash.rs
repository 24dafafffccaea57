//! Crash test of the usage journal: a child process appends usage from several threads and
//! is killed with SIGKILL at a random moment; the parent reopens the journal and checks
//! that nothing acknowledged was lost, nothing was counted twice, and no notice was
//! duplicated. Each round continues on the same file.
//!
//! The child is this test binary itself, re-executed with `TOLLGATE_CRASH_CHILD` set and a
//! filter that runs only [`crash_child`].

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tollgate_quota::journal::{Durability, Entry, Journal, NoticeKind};

const CHILD_ENV: &str = "TOLLGATE_CRASH_CHILD";
const MODE_ENV: &str = "TOLLGATE_CRASH_MODE";
const THREADS: usize = 4;
const NOV: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z
/// Each thread journals a warning notice when its count reaches this.
const NOTICE_AT: u64 = 10;
/// In bounded-loss mode, a thread waits for its entries every this many appends.
const BOUNDED_WAIT_EVERY: u64 = 25;

fn delta(thread: usize) -> Entry {
    Entry::Usage {
        company: "c".into(),
        user: Some(format!("u{thread}")),
        period_start: NOV,
        period: "2026-11".into(),
        calls: 1,
    }
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
            max_delay: Duration::from_millis(20),
        }
    };
    let (journal, _) = Journal::open(&path, durability).expect("child: open");
    // libtest has printed "test crash_child ... " without a newline: end that line so
    // that ours start at the beginning of one.
    line(&std::io::stdout(), "");
    let journal = Arc::new(journal);
    let stop = Instant::now() + Duration::from_secs(20); // if the parent never kills us
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let out = std::io::stdout();
                let mut n = 0u64;
                while Instant::now() < stop {
                    n += 1;
                    line(&out, &format!("try {t} {n}"));
                    let ticket = journal.append(delta(t));
                    if strict || n % BOUNDED_WAIT_EVERY == 0 {
                        journal.wait(ticket).expect("child: wait");
                        line(&out, &format!("ack {t} {n}"));
                    }
                    if n == NOTICE_AT {
                        journal
                            .append_durable(Entry::Notice {
                                company: "c".into(),
                                period: "2026-11".into(),
                                kind: NoticeKind::Warning,
                                raised_at: NOV + 1,
                            })
                            .expect("child: notice");
                        line(&out, &format!("notice {t}"));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
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
    /// Deltas the thread was about to append ("try" lines).
    tries: [u64; THREADS],
    /// Deltas known committed: in strict mode one per ack; in bounded-loss mode an ack
    /// covers the thread's last `BOUNDED_WAIT_EVERY` appends.
    acked: [u64; THREADS],
    /// Notices acknowledged.
    notices: u64,
    /// Lines the parent did not understand (for the failure message).
    other: Vec<String>,
}

fn thread_of(rest: &str) -> Option<usize> {
    rest.split(' ')
        .next()?
        .parse()
        .ok()
        .filter(|&t| t < THREADS)
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
    let per_ack = if mode == "strict" {
        1
    } else {
        BOUNDED_WAIT_EVERY
    };
    let reader = std::thread::spawn(move || {
        let mut report = Report::default();
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if let Some(t) = l.strip_prefix("try ").and_then(thread_of) {
                report.tries[t] += 1;
            } else if let Some(t) = l.strip_prefix("ack ").and_then(thread_of) {
                report.acked[t] += per_ack;
            } else if l.starts_with("notice ") {
                report.notices += 1;
            } else {
                report.other.push(l);
            }
        }
        report
    });
    std::thread::sleep(delay);
    child.kill().expect("kill the child"); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child ended on its own: {status}");
    reader.join().unwrap()
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

fn crash_rounds(mode: &str, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let mut rng = XorShift::from_clock();
    let mut acked = [0u64; THREADS];
    let mut tried = [0u64; THREADS];
    let mut noticed = 0;
    for round in 0..rounds {
        let delay = Duration::from_millis(rng.between(20, 300));
        let report = run_child(&path, mode, delay);
        for t in 0..THREADS {
            acked[t] += report.acked[t];
            tried[t] += report.tries[t];
        }
        noticed += report.notices;

        let (journal, snap) = Journal::open(&path, Durability::Strict)
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL: {e}"));
        let total = snap.company_total("c", NOV);
        let per_user: Vec<i64> = (0..THREADS)
            .map(|t| {
                let user = format!("u{t}");
                snap.usage
                    .iter()
                    .filter(|r| r.user.as_deref() == Some(user.as_str()))
                    .map(|r| r.calls)
                    .sum()
            })
            .collect();
        eprintln!(
            "{mode} round {round}: killed after {delay:?}: acked {acked:?}, \
             journaled {per_user:?} (total {total}), tried {tried:?}"
        );
        let context = || {
            format!(
                "{mode} round {round}: unparsed child output {:?}",
                report.other
            )
        };
        assert_eq!(
            total,
            per_user.iter().sum::<i64>(),
            "{}: company and user rows disagree",
            context()
        );
        for t in 0..THREADS {
            let got = per_user[t] as u64;
            assert!(
                got >= acked[t],
                "{}: thread {t} lost acknowledged deltas: {got} < {}",
                context(),
                acked[t]
            );
            assert!(
                got <= tried[t],
                "{}: thread {t} has more deltas than attempted: {got} > {}",
                context(),
                tried[t]
            );
        }
        assert!(snap.notices.len() <= 1, "{:?}", snap.notices);
        if noticed > 0 {
            assert_eq!(snap.notices.len(), 1, "an acknowledged notice was lost");
        }
        drop(journal);
        check_notices_unique(&path);
    }
}

#[test]
fn strict_mode_survives_sigkill() {
    crash_rounds("strict", 15);
}

#[test]
fn bounded_loss_mode_survives_sigkill() {
    crash_rounds("bounded", 5);
}

//! Crash test of the durable ledger: a child process records calls from several threads
//! through a [`Ledger`] journaled to SQLite and is killed with SIGKILL at a random moment;
//! the parent reopens the journal and checks that no call acknowledged as durable was
//! lost, nothing was counted that was not attempted, calls older than the loss window
//! survived (bounded-loss mode), and every notice crossed is delivered exactly once. Each
//! round continues on the same file, as a restarted service would.
//!
//! Notices: each round's child also calls, paced, on a company of its own (low limit), so
//! that every round crosses a warning and an overage at a moment the kill may hit. The
//! child is also the host: a notifier thread takes notices from the outbox, "sends" each
//! (a `sent` line appended to a host file, skipped for an id already sent: the host keeps
//! the ids it acted on, as the outbox asks) and acknowledges it (`acked` line once `ack`
//! returned). After the last round a child drains the outbox and exits; the parent then
//! checks that every notice in the journal's outbox was sent exactly once and
//! acknowledged, and that nothing was sent that is not there.
//!
//! The child is this test binary itself, re-executed with `TOLLGATE_CRASH_CHILD` set and a
//! filter that runs only [`crash_child`]. `TOLLGATE_CRASH_ROUNDS` sets the notice
//! campaign's rounds (200 by default).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tollgate_quota::journal::{Durability, Journal, OutboxRecord};
use tollgate_quota::{Company, Ledger, Plans, QuotaConfig};

const CHILD_ENV: &str = "TOLLGATE_CRASH_CHILD";
const MODE_ENV: &str = "TOLLGATE_CRASH_MODE";
/// The round number: the child's notice company is `n<round>`.
const ROUND_ENV: &str = "TOLLGATE_CRASH_ROUND";
/// The host's file of notices sent and acknowledged.
const HOST_ENV: &str = "TOLLGATE_CRASH_HOST";
/// The notice campaign's rounds.
const ROUNDS_ENV: &str = "TOLLGATE_CRASH_ROUNDS";
/// Each round's notice company's limit: the warning at 32 calls, the overage at 41.
const NOTICE_LIMIT: u64 = 40;
/// Each thread calls on the notice company at most this often, so that the crossings
/// come some 20 ms into the round, where kills land.
const NOTICE_PACE: Duration = Duration::from_millis(2);
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

fn notice_key(round: u64, t: usize) -> String {
    format!("n{round}-{t}-5b7d-4e21-9a0b-6c8d2f1e4a77")
}

/// Registers the notice company of every round up to `round` (so that a crossing
/// journaled without its notice in an earlier round is recovered).
fn register_notice_companies(ledger: &Ledger, round: u64) {
    for r in 0..=round {
        let company = format!("n{r}");
        ledger
            .upsert_company(
                Company::new(&company).with_override(NOTICE_LIMIT),
                None,
                NOW_NANOS,
            )
            .expect("child: notice company");
        for t in 0..THREADS {
            let user = format!("n{r}-u{t}");
            ledger
                .add_user(&user, &company, NOW_NANOS)
                .expect("child: user");
            ledger
                .add_key(&notice_key(r, t), &user)
                .expect("child: key");
        }
    }
}

/// The host: appends one line per write (O_APPEND; a SIGKILL never tears a line this
/// short in practice, and the parent skips any line it cannot read).
struct Host {
    file: std::fs::File,
    sent: HashSet<u64>,
}

impl Host {
    fn open(path: &Path) -> Host {
        let sent = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("sent "))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("child: host file");
        Host { file, sent }
    }

    fn write(&mut self, line: &str) {
        let line = format!("{line}\n");
        self.file
            .write_all(line.as_bytes())
            .expect("child: host file");
    }

    /// Takes the notices due, sends each once (by id), acknowledges it. Returns how many
    /// were taken.
    fn serve(&mut self, ledger: &Ledger) -> usize {
        let outbox = ledger.outbox();
        let taken = outbox.take(16, NOW_NANOS);
        for n in &taken {
            self.write(&format!("offer {}", n.id));
            if self.sent.insert(n.id) {
                self.write(&format!(
                    "sent {} {} {} {} {} {}",
                    n.id, n.company, n.period, n.kind, n.used, n.limit
                ));
            }
            outbox.ack(n.id, NOW_NANOS).expect("child: ack");
            self.write(&format!("acked {}", n.id));
        }
        taken.len()
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
            max_delay: MAX_DELAY,
        }
    };
    let round: u64 = std::env::var(ROUND_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let host_path = std::env::var_os(HOST_ENV).expect("child: host file");
    let drain = std::env::var(MODE_ENV).as_deref() == Ok("drain");
    let (journal, snapshot) = Journal::open(&path, durability).expect("child: open");
    let config = QuotaConfig {
        plans: Plans::standard(),
        warning_percent: Some(80),
        hard_cap_percent: None,
        ..QuotaConfig::default()
    };
    let ledger = Arc::new(Ledger::with_journal(config, journal, snapshot));
    register_notice_companies(&ledger, round);
    let mut host = Host::open(Path::new(&host_path));
    if drain {
        // The last child: deliver what is pending, then stop cleanly.
        while host.serve(&ledger) > 0 {}
        assert!(ledger.outbox().pending().is_empty(), "child: undelivered");
        ledger.sync().expect("child: sync");
        return;
    }
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
    line(&std::io::stdout(), "ready");
    let stop = Instant::now() + Duration::from_secs(20); // if the parent never kills us
    let done = Arc::new(AtomicBool::new(false));
    let notices = {
        let ledger = Arc::clone(&ledger);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if host.serve(&ledger) == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                let out = std::io::stdout();
                let key = key(t);
                let nkey = notice_key(round, t);
                let mut last_notice_call = Instant::now();
                let mut n = 0u64;
                while Instant::now() < stop {
                    if last_notice_call.elapsed() >= NOTICE_PACE {
                        last_notice_call = Instant::now();
                        ledger.record(&nkey, 1, NOW_NANOS).expect("child: record");
                    }
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
    /// Lines the parent did not understand (for the failure message).
    other: Vec<String>,
}

/// Parses "<thread> <n>".
fn thread_and_count(rest: &str) -> Option<(usize, u64)> {
    let (t, n) = rest.split_once(' ')?;
    let t = t.parse().ok().filter(|&t| t < THREADS)?;
    Some((t, n.parse().ok()?))
}

fn child(path: &Path, host: &Path, mode: &str, round: u64) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(MODE_ENV, mode)
        .env(ROUND_ENV, round.to_string())
        .env(HOST_ENV, host);
    c
}

/// Runs one child on `path`, kills it `delay` after it is ready, and returns what it
/// reported.
fn run_child(path: &Path, host: &Path, mode: &str, round: u64, delay: Duration) -> Report {
    let mut child = child(path, host, mode, round)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
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
            } else if l == "ready" {
                let _ = ready_tx.send(());
            } else if !l.is_empty() && !l.starts_with("test ") && !l.starts_with("running ") {
                report.other.push(l);
            }
        }
        (report, done)
    });
    // Bounded: a child that never gets ready is killed after 10 s (and the round fails
    // on what it reported).
    let _ = ready_rx.recv_timeout(Duration::from_secs(10));
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
    for table in ["notices", "outbox"] {
        let dups: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM (SELECT company, period, kind FROM {table}
                         GROUP BY company, period, kind HAVING count(*) > 1)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(dups, 0, "duplicated notices in {table}");
    }
}

/// What the journal holds after a round: each user's calls, the company total of "c",
/// the outbox.
struct Journaled {
    per_user: [u64; THREADS],
    total: i64,
    outbox: Vec<OutboxRecord>,
}

fn journaled(path: &Path) -> Journaled {
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
    // Every notice raised has its outbox row (schema 2 from the first round).
    assert_eq!(
        snap.notices.len(),
        snap.outbox.len(),
        "notices without outbox rows"
    );
    drop(journal);
    Journaled {
        per_user,
        total,
        outbox: snap.outbox,
    }
}

/// What the host file says: per notice id, the "sent" lines (with what was sent), the
/// offers and the acknowledgements.
#[derive(Debug, Default)]
struct HostLog {
    sent: HashMap<u64, Vec<String>>,
    offers: u64,
    acked: HashMap<u64, u64>,
}

fn host_log(path: &Path) -> HostLog {
    let mut log = HostLog::default();
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let mut words = l.split(' ');
        let (Some(what), Some(Ok(id))) = (words.next(), words.next().map(str::parse::<u64>)) else {
            continue;
        };
        match what {
            "sent" => log
                .sent
                .entry(id)
                .or_default()
                .push(words.collect::<Vec<_>>().join(" ")),
            "offer" => log.offers += 1,
            "acked" => *log.acked.entry(id).or_default() += 1,
            _ => {}
        }
    }
    log
}

/// Checks the host file against the outbox: nothing sent that is not a durable notice
/// (with the same identity and counts), nothing sent twice, nothing acknowledged in the
/// journal that was not sent.
fn check_host(context: &str, host: &HostLog, outbox: &[OutboxRecord]) {
    let by_id: HashMap<u64, &OutboxRecord> = outbox.iter().map(|r| (r.id, r)).collect();
    for (id, sent) in &host.sent {
        let Some(r) = by_id.get(id) else {
            panic!("{context}: notice {id} was sent but is not in the outbox");
        };
        assert_eq!(
            sent.len(),
            1,
            "{context}: notice {id} was sent {} times",
            sent.len()
        );
        let expected = format!(
            "{} {} {} {} {}",
            r.company, r.period, r.kind, r.used, r.limit
        );
        assert_eq!(
            sent[0], expected,
            "{context}: notice {id} sent with other facts"
        );
    }
    for r in outbox {
        if r.acked_at.is_some() {
            assert!(
                host.sent.contains_key(&r.id),
                "{context}: notice {} acknowledged but never sent",
                r.id
            );
        }
    }
}

/// `rounds` SIGKILL rounds on one journal, each child killed a random delay in
/// `delays_ms` after it is ready, in `modes` in turn; then a child that drains the
/// outbox. Returns (notices crossed, sent, offers, acknowledged).
fn crash_rounds(modes: &[&str], rounds: u64, delays_ms: (u64, u64)) -> (usize, usize, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let host = dir.path().join("host.log");
    let mut rng = XorShift::from_clock();
    let mut before = [0u64; THREADS];
    let mut checked_old = 0;
    let started = Instant::now();
    for round in 0..rounds {
        let mode = modes[round as usize % modes.len()];
        let delay = Duration::from_millis(rng.between(delays_ms.0, delays_ms.1));
        let report = run_child(&path, &host, mode, round, delay);
        let j = journaled(&path);
        let after = j.per_user;
        let log = host_log(&host);
        eprintln!(
            "{mode} round {round}: killed {delay:?} after ready: before {before:?}, acked {:?}, \
             older than the window {:?}, journaled {after:?} (total {}), tried {:?}, \
             notices crossed {}, sent {}, offers {}, acknowledged {}",
            report.acked,
            report.old,
            j.total,
            report.tries,
            j.outbox.len(),
            log.sent.len(),
            log.offers,
            j.outbox.iter().filter(|r| r.acked_at.is_some()).count(),
        );
        let context = format!(
            "{mode} round {round}: unparsed child output {:?}",
            report.other
        );
        assert_eq!(
            j.total,
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
        check_host(&context, &log, &j.outbox);
        check_notices_unique(&path);
        before = after;
    }
    // The last child delivers what is pending and stops on its own.
    let status = child(&path, &host, "drain", rounds.saturating_sub(1))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the draining child");
    assert!(status.success(), "the draining child failed: {status}");
    let j = journaled(&path);
    let log = host_log(&host);
    let context = format!("after {rounds} rounds and the drain");
    check_host(&context, &log, &j.outbox);
    check_notices_unique(&path);
    // Exactly once: every notice crossed (durable in the outbox) was sent once and is
    // acknowledged.
    for r in &j.outbox {
        assert!(
            log.sent.contains_key(&r.id),
            "{context}: notice {} ({} {} {}) was crossed but never sent",
            r.id,
            r.company,
            r.period,
            r.kind
        );
        assert!(
            r.acked_at.is_some(),
            "{context}: notice {} not acknowledged",
            r.id
        );
    }
    let crossed = j.outbox.len();
    let sent = log.sent.len();
    let acknowledged = j.outbox.iter().filter(|r| r.acked_at.is_some()).count();
    let ack_lines: u64 = log.acked.values().sum();
    eprintln!(
        "{modes:?}, {rounds} rounds in {:?}: notices crossed {crossed}, sent {sent} (exactly \
         once each), offered {} times (redeliveries {}), acknowledged {acknowledged} \
         ({ack_lines} acks returned to the host)",
        started.elapsed(),
        log.offers,
        log.offers - sent as u64
    );
    let used: u64 = before.iter().sum();
    // The test is only meaningful if the run went over the limit (both notices were due)
    // and, in bounded-loss mode, if calls older than the window were checked.
    assert!(
        used > LIMIT,
        "{modes:?}: only {used} calls in {rounds} rounds"
    );
    if delays_ms.1 > (MAX_DELAY + SLACK).as_millis() as u64 * 2 && modes.contains(&"bounded") {
        assert!(checked_old > 0, "no call was older than the loss window");
    }
    (crossed, sent, log.offers, acknowledged)
}

#[test]
fn strict_mode_survives_sigkill() {
    crash_rounds(&["strict"], 15, (20, 300));
}

#[test]
fn bounded_loss_mode_survives_sigkill() {
    crash_rounds(&["bounded"], 8, (100, 1200));
}

/// Reported defect: a notice marked sent in the journal before the host had it was lost
/// when the process died before the host drained it (1 of 100 crossings in a 200-round
/// run). Kills land around each round's crossings (some 20 ms after ready): every notice
/// crossed is sent exactly once and acknowledged, across all the restarts.
#[test]
fn notices_are_delivered_exactly_once_across_sigkills() {
    let rounds = std::env::var(ROUNDS_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let (crossed, sent, _, acknowledged) = crash_rounds(&["strict", "bounded"], rounds, (0, 60));
    assert_eq!((sent, acknowledged), (crossed, crossed));
    // Not vacuous: on an idle machine most rounds' companies cross both thresholds before
    // the kill (about 1.2 notices per round); a loaded machine crosses fewer, so the
    // bound asks for one notice per two rounds.
    assert!(
        crossed as u64 >= rounds / 2,
        "only {crossed} notices in {rounds} rounds"
    );
}

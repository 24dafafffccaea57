//! The fleet fault test: three engine processes (this test binary run as children,
//! `TOLLGATE_FLEET_CHILD`) with one policy feed one PostgreSQL ledger through
//! `EngineBuilder::usage_sink` and `PgLedgerSink`, through a simulated month of calls.
//! In the middle PostgreSQL is stopped (`pg_ctl stop -m immediate`) and started again,
//! one instance is SIGKILLed while PostgreSQL is down and another while it is up; each
//! is restarted and carries on with its share of the month.
//!
//! The parent drives the children in lockstep over pipes (`run N`, answered by the
//! indices of the calls served), so where each fault lands is fixed by the call count,
//! not by timing. At the end:
//!
//! - every instance that exited normally: its rows in the ledger are exactly the calls
//!   it served, per company and per user (nothing lost, nothing doubled, across the
//!   PostgreSQL restart);
//! - every instance that was SIGKILLed: its rows are exactly the first `k` calls it
//!   served, in order, for some `k` (DURABILITY.md: a kill loses the deltas not yet
//!   committed, a suffix, and nothing else); the loss is printed;
//! - the fleet's totals per company and per user equal the sum of the above;
//! - each notice (company, period, kind) exists once in the claim table, claimed by the
//!   one instance whose claim won.
//!
//! With `CI=true` a missing PostgreSQL is a failure, never a skip.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tollgate::{Engine, Policy, Request};
use tollgate_postgres::{PgLedger, PgLedgerSink, SinkConfig};

/// (company, user, key)
const USERS: [(&str, &str, &str); 6] = [
    ("acme", "ann", "3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77"),
    ("acme", "bob", "77aa0000-1111-2222-3333-444455556666"),
    ("globex", "gus", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"),
    ("globex", "gil", "a1b2c3d4-e5f6-4718-9a0b-1c2d3e4f5a6b"),
    ("initech", "ivy", "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"),
    ("initech", "ian", "c0ffee00-1234-4567-89ab-cdef01234567"),
];

/// Calls per instance in the month; the parent asks for them in chunks.
const CALLS: u64 = 3_000;
const CHUNK: u64 = 100;
/// 2026-11-01T00:00:00Z and the length of November, in Unix nanoseconds.
const NOV_1: u64 = 1_793_491_200 * 1_000_000_000;
const NOV_LEN: u64 = 30 * 86_400 * 1_000_000_000;

/// acme crosses its warning (80) and overage (100) in every instance's share and is
/// refused above 150 in each; globex crosses only its warning in most; initech nothing.
fn policy() -> Policy {
    let mut text =
        String::from("version = 1\n[quota]\nwarning_percent = 80\nhard_cap_percent = 150\n");
    for (company, limit) in [("acme", 100), ("globex", 1_000), ("initech", 1_000_000)] {
        let users: Vec<String> = USERS
            .iter()
            .filter(|u| u.0 == company)
            .map(|(_, u, k)| format!("{{ id = \"{u}\", keys = [\"{k}\"] }}"))
            .collect();
        text.push_str(&format!(
            "[[quota.companies]]\nid = \"{company}\"\nlimit_override = {limit}\nusers = [{}]\n",
            users.join(", ")
        ));
    }
    Policy::from_toml(&text).unwrap().0
}

/// The user of call `i` of instance `slot` (a fixed pseudo-random schedule, the same for
/// an instance and its restart) and the call's time in November.
fn call(slot: u64, i: u64) -> (usize, u64) {
    let mut x = (slot + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    // Skewed: acme and globex get most of the calls.
    let user = [0, 0, 1, 2, 2, 3, 4, 5][(x % 8) as usize];
    (user, NOV_1 + i * (NOV_LEN / CALLS) + slot)
}

/// Claims the engine's pending notices in the ledger's claim table; a notice whose claim
/// failed (PostgreSQL down) is released and claimed at a later call. Prints one
/// `NOTICE company period kind won|lost` line per claim made.
fn claim_notices(engine: &Engine, claims: &mut Option<PgLedger>, url: &str, instance: &str) {
    for n in engine.take_notices(64) {
        if claims.as_ref().is_none_or(PgLedger::is_closed) {
            *claims = PgLedger::connect(url, instance).ok();
        }
        let claimed = claims.as_mut().map(|c| {
            c.claim_notice(
                &n.company,
                &n.period,
                n.kind,
                n.used as i64,
                n.limit as i64,
                n.suggested_plan.as_deref(),
            )
        });
        match claimed {
            Some(Ok(won)) => {
                let _ = engine.ack_notice(n.id);
                let outcome = if won { "won" } else { "lost" };
                println!(
                    "NOTICE {} {} {} {outcome}",
                    n.company,
                    n.period,
                    n.kind.as_str()
                );
            }
            _ => {
                *claims = None;
                engine.release_notice(n.id);
            }
        }
    }
}

/// The body of a child process when the test binary was started as one.
#[test]
fn child_entry() {
    let Ok(instance) = std::env::var("TOLLGATE_FLEET_CHILD") else {
        return;
    };
    let url = std::env::var("TOLLGATE_FLEET_URL").unwrap();
    let slot: u64 = std::env::var("TOLLGATE_FLEET_SLOT")
        .unwrap()
        .parse()
        .unwrap();
    let mut next: u64 = std::env::var("TOLLGATE_FLEET_START")
        .unwrap()
        .parse()
        .unwrap();
    let sink = Arc::new(PgLedgerSink::spawn(
        &url,
        &instance,
        SinkConfig {
            batch_size: 64,
            max_queued: 100_000,
            max_backoff: Duration::from_millis(200),
        },
    ));
    let engine = Engine::builder(policy())
        .usage_sink(sink.clone())
        .build()
        .unwrap();
    let mut claims: Option<PgLedger> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("run") => {
                let n: u64 = words.next().unwrap().parse().unwrap();
                let mut served = Vec::new();
                for i in next..(next + n).min(CALLS) {
                    let (u, at) = call(slot, i);
                    if engine
                        .decide(&Request::new().token(USERS[u].2).at(at))
                        .allowed()
                    {
                        served.push(i.to_string());
                    }
                }
                next = (next + n).min(CALLS);
                claim_notices(&engine, &mut claims, &url, &instance);
                println!("ACK {next} {}", served.join(","));
            }
            Some("flush") => {
                let flushed = sink.flush(Duration::from_secs(120));
                println!("FLUSHED {flushed}");
            }
            Some("finish") => {
                let flushed = sink.flush(Duration::from_secs(120));
                // Bounded: PostgreSQL is up by now; a claim that fails is retried.
                for _ in 0..600 {
                    claim_notices(&engine, &mut claims, &url, &instance);
                    if engine.pending_notices().is_empty() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let s = sink.stats();
                println!(
                    "DONE flushed={flushed} pending_notices={} queued={} written={} \
                     batches={} duplicates={} dropped={} errors={}",
                    engine.pending_notices().len(),
                    s.queued,
                    s.written,
                    s.batches,
                    s.duplicates,
                    s.dropped,
                    s.errors
                );
                return;
            }
            _ => panic!("unknown command {line:?}"),
        }
    }
}

/// One run of an instance: a child process, or its record once it ended.
struct Run {
    instance: String,
    slot: u64,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    /// The indices of the calls served, in order.
    served: Vec<u64>,
    /// The next call index.
    next: u64,
    killed: bool,
    /// `(company, period, kind) -> won` for each claim this run made.
    claims: Vec<((String, String, String), bool)>,
    done: Option<String>,
}

impl Run {
    fn spawn(url: &str, instance: &str, slot: u64, start: u64) -> Run {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env("TOLLGATE_FLEET_CHILD", instance)
            .env("TOLLGATE_FLEET_URL", url)
            .env("TOLLGATE_FLEET_SLOT", slot.to_string())
            .env("TOLLGATE_FLEET_START", start.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Run {
            instance: instance.to_owned(),
            slot,
            stdin: child.stdin.take(),
            stdout: child.stdout.take().map(BufReader::new),
            child: Some(child),
            served: Vec::new(),
            next: start,
            killed: false,
            claims: Vec::new(),
            done: None,
        }
    }

    /// Reads lines up to the one starting with `want` (NOTICE lines are kept; libtest's
    /// own lines are skipped); bounded by the child's output.
    fn read_until(&mut self, want: &str) -> String {
        let out = self.stdout.as_mut().unwrap();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "{} ended before {want}", self.instance);
            // libtest prints "test child_entry ... " without a newline before the
            // child's first line.
            let line = line.trim_end();
            let line = ["NOTICE ", "ACK ", "DONE ", "FLUSHED "]
                .iter()
                .filter_map(|w| line.find(w))
                .min()
                .map_or(line, |at| &line[at..]);
            if let Some(rest) = line.strip_prefix("NOTICE ") {
                let w: Vec<&str> = rest.split(' ').collect();
                let key = (w[0].to_owned(), w[1].to_owned(), w[2].to_owned());
                self.claims.push((key, w[3] == "won"));
            } else if line.starts_with(want) {
                return line.to_owned();
            }
        }
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    fn run_chunk(&mut self) {
        self.send(&format!("run {CHUNK}"));
        let ack = self.read_until("ACK ");
        let mut w = ack.split(' ').skip(1);
        self.next = w.next().unwrap().parse().unwrap();
        if let Some(list) = w.next() {
            self.served.extend(
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u64>().unwrap()),
            );
        }
    }

    fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        self.killed = true;
        // Claim lines written before the kill.
        let out = self.stdout.as_mut().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(out, &mut rest);
        for line in rest.lines() {
            let line = line.find("NOTICE ").map_or(line, |at| &line[at..]);
            if let Some(r) = line.strip_prefix("NOTICE ") {
                let w: Vec<&str> = r.split(' ').collect();
                self.claims
                    .push(((w[0].into(), w[1].into(), w[2].into()), w[3] == "won"));
            }
        }
    }

    fn finish(&mut self) {
        self.send("finish");
        self.done = Some(self.read_until("DONE "));
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.instance);
    }

    /// The (company, user) of each served call, in order.
    fn served_users(&self) -> Vec<(String, String)> {
        self.served
            .iter()
            .map(|&i| {
                let u = USERS[call(self.slot, i).0];
                (u.0.to_owned(), u.1.to_owned())
            })
            .collect()
    }
}

type Counts = BTreeMap<(String, Option<String>), i64>;

fn count(calls: &[(String, String)]) -> Counts {
    let mut c = Counts::new();
    for (company, user) in calls {
        *c.entry((company.clone(), None)).or_default() += 1;
        *c.entry((company.clone(), Some(user.clone()))).or_default() += 1;
    }
    c
}

#[test]
fn three_instances_through_a_month_with_kills_and_a_postgres_restart_bill_exactly() {
    if std::env::var("TOLLGATE_FLEET_CHILD").is_ok() {
        return;
    }
    let pg = cluster_or_skip!();
    PgLedger::connect(&pg.url, "setup").expect("migrate");
    let rounds = CALLS / CHUNK;
    // gw1's served count when its queue was last flushed.
    let mut steady = 0;
    // Slot -> its runs (a killed instance is restarted as a new run).
    let mut runs: Vec<Vec<Run>> = (0..3u64)
        .map(|s| vec![Run::spawn(&pg.url, &format!("gw{}", s + 1), s, 0)])
        .collect();
    for round in 0..rounds {
        for slot in runs.iter_mut() {
            slot.last_mut().unwrap().run_chunk();
        }
        // Faults at fixed call counts.
        match round {
            8 => pg.stop(),
            // gw2 killed while PostgreSQL is down: everything it served since the stop
            // is still queued.
            12 => restart(&mut runs[1], &pg.url),
            16 => pg.restart(),
            // gw3 killed while PostgreSQL is up, right after a chunk of calls.
            20 => restart(&mut runs[2], &pg.url),
            // gw1 once its writer caught up: flushed, then one chunk, then SIGKILLed.
            23 => {
                let gw1 = runs[0].last_mut().unwrap();
                gw1.send("flush");
                assert_eq!(gw1.read_until("FLUSHED "), "FLUSHED true");
                steady = gw1.served.len();
            }
            24 => restart(&mut runs[0], &pg.url),
            _ => {}
        }
    }
    for slot in runs.iter_mut() {
        slot.last_mut().unwrap().finish();
    }

    // What the ledger holds per run (instance), in commit order.
    let mut db = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let rows = db
        .query(
            "SELECT instance, company, user_id FROM usage_deltas
             ORDER BY instance, split_part(batch_id, '-', 2)::BIGINT, seq",
            &[],
        )
        .unwrap();
    let mut by_instance: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in rows {
        by_instance
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2)));
    }
    let mut want = Counts::new();
    let mut served_total = Counts::new();
    let mut lost: BTreeMap<String, i64> = BTreeMap::new();
    println!("instance  served  in ledger  lost  (DONE line)");
    for run in runs.iter().flatten() {
        let served = run.served_users();
        let ledger = by_instance.remove(&run.instance).unwrap_or_default();
        println!(
            "{:8} {:7} {:10} {:5}  {}",
            run.instance,
            served.len(),
            ledger.len(),
            served.len() as i64 - ledger.len() as i64,
            run.done.as_deref().unwrap_or("SIGKILLed")
        );
        lost.insert(
            run.instance.clone(),
            served.len() as i64 - ledger.len() as i64,
        );
        if run.killed {
            assert!(
                ledger.len() <= served.len(),
                "{}: more than served",
                run.instance
            );
            assert_eq!(
                ledger,
                served[..ledger.len()],
                "{}: the ledger holds a prefix of what it served",
                run.instance
            );
        } else {
            assert_eq!(ledger, served, "{}: exactly what it served", run.instance);
            let done = run.done.as_deref().unwrap();
            assert!(done.contains("flushed=true"), "{done}");
            assert!(done.contains("dropped=0"), "{done}");
            assert!(done.contains("pending_notices=0"), "{done}");
        }
        for (k, v) in count(&ledger) {
            *want.entry(k).or_default() += v;
        }
        for (k, v) in count(&served) {
            *served_total.entry(k).or_default() += v;
        }
    }
    assert!(by_instance.is_empty(), "no rows of unknown instances");
    // The kill while PostgreSQL was down lost (at least) what gw2 served since the stop.
    assert!(runs[1][0].killed);
    assert!(
        lost["gw2"] >= 1,
        "gw2 was killed with deltas queued: {lost:?}"
    );
    // Killed one chunk after a flush: it lost at most that chunk.
    let last_chunk = runs[0][0].served.len() - steady;
    assert!(
        lost["gw1"] <= last_chunk as i64,
        "gw1 lost {} of its last chunk of {last_chunk}",
        lost["gw1"]
    );
    println!(
        "kills: gw2 (PostgreSQL down) lost {}; gw3 (PostgreSQL just back, backlog queued) \
         lost {}; gw1 (flushed, then {last_chunk} served) lost {}",
        lost["gw2"], lost["gw3"], lost["gw1"]
    );

    // The fleet totals are the sum of every instance's rows.
    let mut l = PgLedger::connect(&pg.url, "reader").unwrap();
    let mut got = Counts::new();
    for t in l.totals(None, Some("2026-11"), false).unwrap() {
        assert_eq!(t.calls, t.units);
        got.insert((t.company, None), t.calls);
    }
    for t in l.totals(None, Some("2026-11"), true).unwrap() {
        got.insert((t.company, t.user), t.calls);
    }
    assert_eq!(got, want, "fleet totals = rows of every instance");
    println!("company   served  served-lost  ledger");
    for ((company, user), served) in &served_total {
        if user.is_none() {
            let key = (company.clone(), None);
            println!("{company:8} {served:7} {:12} {:7}", want[&key], got[&key]);
        }
    }

    // Each notice once: one row per (company, period, kind), claimed by the one run
    // whose claim won; every claim of it by another run lost.
    let notices: Vec<(String, String, String, String)> = db
        .query(
            "SELECT company, period, kind, instance FROM notices ORDER BY 1, 2, 3",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut winners: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    let mut claimed = 0;
    for run in runs.iter().flatten() {
        for (key, won) in &run.claims {
            claimed += 1;
            let w = winners.entry(key.clone()).or_default();
            if *won {
                w.push(run.instance.clone());
            }
        }
    }
    println!("notices: {notices:?}; {claimed} claims made by the runs");
    assert!(
        notices.iter().any(|n| n.0 == "acme" && n.2 == "overage"),
        "acme's overage was raised"
    );
    for (c, p, k, instance) in &notices {
        let key = (c.clone(), p.clone(), k.clone());
        // A SIGKILLed run may have won a claim and died before printing it.
        let won = winners.get(&key).cloned().unwrap_or_default();
        assert!(won.len() <= 1, "{key:?} won by {won:?}");
        if let Some(w) = won.first() {
            assert_eq!(w, instance, "{key:?}");
        }
    }
    for (key, won) in &winners {
        assert!(
            notices
                .iter()
                .any(|n| (&n.0, &n.1, &n.2) == (&key.0, &key.1, &key.2)),
            "{key:?} claimed but not in the table"
        );
        assert!(won.len() <= 1, "{key:?} won by {won:?}");
    }
}

/// SIGKILLs the slot's current run and starts its restart where it stopped.
fn restart(slot: &mut Vec<Run>, url: &str) {
    let run = slot.last_mut().unwrap();
    run.kill();
    let (base, n, s, next) = (
        slot[0].instance.clone(),
        slot.len(),
        slot[0].slot,
        slot.last().unwrap().next,
    );
    slot.push(Run::spawn(url, &format!("{base}-r{n}"), s, next));
}

//! `tollgate replay`: what-if analysis of a policy on an access log.
//!
//! Every line is decided by the engine at the line's own timestamp, in file order. The
//! report gives, per limit, the allowed / denied / shadow-denied totals (exact, from the
//! engine's counters) and the top offenders by denials; the requests refused as revoked,
//! over the quota or for unknown keys; the tokens that would be revoked; the monthly
//! usage per company and the overage notices that would be sent. Malformed lines are
//! counted and the first few shown with their line numbers; they never stop the run.
//!
//! Memory stays bounded whatever the log's size: lines are streamed through one reused
//! buffer, and the per-key offender counts are a bounded heavy-hitters summary (see
//! [`TopKeys`]) whose counts are exact for keys that never left it and otherwise
//! overestimate by at most the stated error.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use tollgate::engine::{Event, Reason, Request};
use tollgate::policy::Attr;
use tollgate::quota::{KeyRef, QuotaEvent};
use tollgate::Engine;

use crate::log::{Parser, Record};

/// Malformed lines shown in the report.
pub const SHOWN_MALFORMED: usize = 5;

/// A bounded heavy-hitters summary: at most `capacity` keys with their counts. When full,
/// the half with the smallest counts is dropped; the largest count dropped so far is the
/// bound on how much any reported count may have missed.
#[derive(Debug)]
pub struct TopKeys {
    capacity: usize,
    counts: HashMap<String, (u64, u64)>,
    /// The most any key's count may be short by.
    pub error: u64,
}

impl TopKeys {
    /// A summary of at most `capacity` keys (at least 2).
    pub fn new(capacity: usize) -> Self {
        TopKeys {
            capacity: capacity.max(2),
            counts: HashMap::new(),
            error: 0,
        }
    }

    /// Adds `denied` and `allowed` to `key`.
    pub fn add(&mut self, key: &str, denied: u64, allowed: u64) {
        if let Some(c) = self.counts.get_mut(key) {
            c.0 += denied;
            c.1 += allowed;
            return;
        }
        if self.counts.len() >= self.capacity {
            let mut all: Vec<u64> = self.counts.values().map(|c| c.0).collect();
            let mid = all.len() / 2;
            let (_, cut, _) = all.select_nth_unstable(mid);
            let cut = *cut;
            let mut dropped_max = 0;
            self.counts.retain(|_, c| {
                if c.0 <= cut {
                    dropped_max = dropped_max.max(c.0);
                    false
                } else {
                    true
                }
            });
            self.error = self.error.max(dropped_max);
        }
        self.counts.insert(key.to_owned(), (denied, allowed));
    }

    /// The `n` keys with the most denials: `(key, denied, allowed)`.
    pub fn top(&self, n: usize) -> Vec<(String, u64, u64)> {
        let mut all: Vec<_> = self
            .counts
            .iter()
            .filter(|(_, c)| c.0 > 0)
            .map(|(k, c)| (k.clone(), c.0, c.1))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// What a replay found.
#[derive(Debug)]
pub struct ReplayReport {
    /// Lines read.
    pub lines: u64,
    /// Lines that could not be parsed.
    pub malformed: u64,
    /// The first malformed lines: (line number, reason).
    pub malformed_shown: Vec<(u64, String)>,
    /// Requests by outcome, in the order of [`OUTCOMES`].
    pub outcomes: [u64; OUTCOMES.len()],
    /// Per limit: its top offenders.
    pub offenders: Vec<TopKeys>,
    /// Tokens (redacted) the policy revoked during the replay.
    pub revoked: Vec<KeyRef>,
    /// Quota notices that would have been sent.
    pub notices: Vec<QuotaEvent>,
    /// Wall time.
    pub elapsed: Duration,
    /// Bytes read.
    pub bytes: u64,
}

/// The printable key of a limit: `attr=value` pairs, tokens redacted.
fn key_label(engine_key: &[Attr], record: &Request<'_>) -> String {
    let mut s = String::new();
    for (i, attr) in engine_key.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = record.get(attr).unwrap_or("");
        let _ = match attr {
            Attr::Token => write!(s, "{attr}={}", KeyRef::of(v)),
            _ => write!(s, "{attr}={v}"),
        };
    }
    s
}

/// The engine request for a parsed line.
pub fn request<'r>(record: &'r Record<'_>) -> Request<'r> {
    let mut r = Request::new();
    for &(name, value) in record.attrs() {
        // The engine's fields by the engine's one table of names; any other name is a
        // host attribute, looked up by name among all of them.
        r.set(name, value);
    }
    r.attrs = record.attrs();
    let t = record.time_unix_nanos;
    r.now = Some(u64::try_from(t.max(0)).unwrap_or(u64::MAX));
    r
}

/// Replays `input` through `engine`. `progress` is called about four times a second with
/// the bytes read so far.
pub fn replay(
    engine: &Engine,
    parser: &mut Parser,
    mut input: impl BufRead,
    mut progress: impl FnMut(u64, u64),
) -> std::io::Result<ReplayReport> {
    let start = Instant::now();
    let policy = engine.policy();
    let keys: Vec<Vec<Attr>> = policy.limits.iter().map(|l| l.key.clone()).collect();
    let mut report = ReplayReport {
        lines: 0,
        malformed: 0,
        malformed_shown: Vec::new(),
        outcomes: [0; OUTCOMES.len()],
        offenders: keys.iter().map(|_| TopKeys::new(100_000)).collect(),
        revoked: Vec::new(),
        notices: Vec::new(),
        elapsed: Duration::ZERO,
        bytes: 0,
    };
    let mut next_progress = Instant::now() + Duration::from_millis(250);
    // Lines are taken straight from the reader's buffer; only a line that straddles two
    // buffer fills is copied (into `carry`).
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            if !carry.is_empty() {
                let line = std::mem::take(&mut carry);
                report.bytes += line.len() as u64;
                one_line(engine, parser, &keys, &mut report, &line);
            }
            break;
        }
        let len = chunk.len();
        let mut used = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[used..nl];
            if carry.is_empty() {
                one_line(engine, parser, &keys, &mut report, piece);
            } else {
                carry.extend_from_slice(piece);
                let line = std::mem::take(&mut carry);
                one_line(engine, parser, &keys, &mut report, &line);
            }
            used = nl + 1;
            if report.lines.is_multiple_of(4096) {
                drain(engine, &mut report);
                let now = Instant::now();
                if now >= next_progress {
                    next_progress = now + Duration::from_millis(250);
                    progress(report.bytes + used as u64, report.lines);
                }
            }
        }
        carry.extend_from_slice(&chunk[used..]);
        report.bytes += len as u64;
        input.consume(len);
    }
    drain(engine, &mut report);
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Decides one line (without its newline).
#[inline]
fn one_line(
    engine: &Engine,
    parser: &mut Parser,
    keys: &[Vec<Attr>],
    report: &mut ReplayReport,
    line: &[u8],
) {
    report.lines += 1;
    let line = trim_newline(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let record = match parser.parse_bytes(line) {
        Ok(r) => r,
        Err(e) => {
            report.malformed += 1;
            if report.malformed_shown.len() < SHOWN_MALFORMED {
                report.malformed_shown.push((report.lines, e.to_string()));
            }
            return;
        }
    };
    let req = request(&record);
    let d = engine.decide(&req);
    report.outcomes[outcome_index(d.reason)] += 1;
    if d.reason == Reason::Limited {
        if let Some(i) = d.decided_by {
            if let Some(k) = keys.get(i) {
                report.offenders[i].add(&key_label(k, &req), 1, 0);
            }
        }
    }
}

fn trim_newline(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && (buf[end - 1] == b'\n' || buf[end - 1] == b'\r') {
        end -= 1;
    }
    &buf[..end]
}

fn drain(engine: &Engine, report: &mut ReplayReport) {
    for e in engine.drain_events() {
        match e {
            Event::Quota(q) => report.notices.push(q),
            Event::Revoked { key, .. } => report.revoked.push(key),
            // Restorations (and events added later) are not part of the report.
            _ => {}
        }
    }
}

/// A progress line on stderr when it is a terminal: bytes of `total`, lines per second.
pub fn progress_printer(total: Option<u64>) -> impl FnMut(u64, u64) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    move |bytes, lines| {
        if !tty {
            return;
        }
        let rate = lines as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let mut err = std::io::stderr().lock();
        let _ = match total {
            Some(t) if t > 0 => write!(
                err,
                "\r{:5.1}%  {} lines  {:.2} M lines/s ",
                bytes as f64 * 100.0 / t as f64,
                lines,
                rate / 1e6
            ),
            _ => write!(err, "\r{} lines  {:.2} M lines/s ", lines, rate / 1e6),
        };
        let _ = err.flush();
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every outcome, in report order.
pub const OUTCOMES: [Reason; 7] = [
    Reason::Allowed,
    Reason::Limited,
    Reason::Revoked,
    Reason::QuotaExceeded,
    Reason::UnknownKey,
    Reason::CannotPass,
    Reason::Unavailable,
];

fn outcome_index(r: Reason) -> usize {
    OUTCOMES.iter().position(|&o| o == r).unwrap_or(0)
}

impl ReplayReport {
    /// Requests with outcome `r`.
    pub fn count(&self, r: Reason) -> u64 {
        self.outcomes[outcome_index(r)]
    }
}

/// The report as text for people.
pub fn render_text(engine: &Engine, r: &ReplayReport, top: usize) -> String {
    let mut out = String::new();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        out,
        "replayed {} lines ({} malformed) in {:.2} s: {:.2} M lines/s",
        thousands(r.lines),
        thousands(r.malformed),
        secs,
        r.lines as f64 / secs / 1e6
    );
    for (line, why) in &r.malformed_shown {
        let _ = writeln!(out, "  malformed line {line}: {why}");
    }
    out.push_str("\nrequests:\n");
    for reason in OUTCOMES {
        let n = r.count(reason);
        if n > 0 || reason == Reason::Allowed || reason == Reason::Limited {
            let _ = writeln!(out, "  {:<15} {:>14}", reason.as_str(), thousands(n));
        }
    }
    let m = engine.metrics();
    out.push_str("\nper limit:\n");
    for (i, l) in m.limits.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}{}: allowed {}, denied {}, shadow-denied {}",
            l.limit,
            if l.shadow { " (shadow)" } else { "" },
            thousands(l.allowed),
            thousands(l.denied),
            thousands(l.shadow_denied)
        );
        if let Some(t) = r.offenders.get(i) {
            let offenders = t.top(top);
            if !offenders.is_empty() {
                let _ = writeln!(
                    out,
                    "    top offenders by denials{}:",
                    if t.error > 0 {
                        format!(" (each count may be short by at most {})", t.error)
                    } else {
                        String::new()
                    }
                );
                for (key, denied, _) in offenders {
                    let _ = writeln!(out, "      {:>10}  {key}", thousands(denied));
                }
            }
        }
    }
    if !r.revoked.is_empty() {
        let _ = writeln!(out, "\nrevoked ({}):", r.revoked.len());
        for k in &r.revoked {
            let _ = writeln!(out, "  {k}");
        }
    }
    if let Some(ledger) = engine.ledger() {
        out.push_str("\nmonthly usage per company:\n");
        for s in ledger.statements().into_iter().filter(|s| s.used > 0) {
            let _ = writeln!(
                out,
                "  {:<20} {:<8} used {:>14}  limit {:>14}  overage {:>12}",
                s.company,
                s.period,
                thousands(s.used),
                thousands(s.limit),
                thousands(s.overage)
            );
        }
        let _ = writeln!(out, "\nnotices that would be sent ({}):", r.notices.len());
        for n in &r.notices {
            let _ = match n {
                QuotaEvent::Warning {
                    company,
                    period,
                    used,
                    limit,
                } => writeln!(
                    out,
                    "  warning  {company} {period}: {} of {} calls",
                    thousands(*used),
                    thousands(*limit)
                ),
                QuotaEvent::Overage {
                    company,
                    period,
                    used,
                    limit,
                    suggested_plan,
                } => writeln!(
                    out,
                    "  overage  {company} {period}: {} of {} calls, suggested plan: {}",
                    thousands(*used),
                    thousands(*limit),
                    suggested_plan.as_deref().unwrap_or("none covers it")
                ),
            };
        }
    }
    out
}

/// The report as JSON for machines.
pub fn render_json(engine: &Engine, r: &ReplayReport, top: usize) -> serde_json::Value {
    use serde_json::json;
    let m = engine.metrics();
    let limits: Vec<_> = m
        .limits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let offenders: Vec<_> = r
                .offenders
                .get(i)
                .map(|t| t.top(top))
                .unwrap_or_default()
                .into_iter()
                .map(|(key, denied, _)| json!({"key": key, "denied": denied}))
                .collect();
            json!({
                "limit": l.limit,
                "shadow": l.shadow,
                "allowed": l.allowed,
                "denied": l.denied,
                "shadow_denied": l.shadow_denied,
                "top_offenders": offenders,
                "top_offenders_error": r.offenders.get(i).map_or(0, |t| t.error),
            })
        })
        .collect();
    let outcomes: serde_json::Map<String, serde_json::Value> = OUTCOMES
        .iter()
        .map(|reason| (reason.as_str().to_owned(), json!(r.count(*reason))))
        .collect();
    let usage = engine.ledger().map(|l| {
        l.statements()
            .into_iter()
            .filter(|s| s.used > 0)
            .collect::<Vec<_>>()
    });
    json!({
        "lines": r.lines,
        "malformed": r.malformed,
        "malformed_shown": r.malformed_shown.iter().map(|(l, w)| json!({"line": l, "error": w})).collect::<Vec<_>>(),
        "seconds": r.elapsed.as_secs_f64(),
        "requests": outcomes,
        "limits": limits,
        "revoked": r.revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "monthly_usage": usage,
        "notices": r.notices,
    })
}

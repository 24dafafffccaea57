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
//!
//! # JSON
//!
//! `--json` prints a [`ReplayJson`] (built by [`render_json`]): typed structs whose
//! fields serialize in declaration order, with a [`SCHEMA_VERSION`] that changes when a
//! field is removed or changes meaning (new fields may be added within a version).
//! Offenders are structured: `{"attributes": {"token": "key#…", "tenant": "t1"},
//! "denied": 3}`, the attributes in the order of the limit's key; a token, and the
//! attribute the quota or the revocation is keyed on, is always a redacted
//! [`KeyRef`], never in clear. Each notice and revocation carries the line of the log
//! that crossed it and that line's time.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::ser::{Serialize, SerializeMap, Serializer};
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use tollgate::engine::{Event, Reason, Request};
use tollgate::policy::Attr;
use tollgate::quota::{KeyRef, QuotaEvent, Statement};
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
    /// Tokens (redacted) the policy revoked during the replay, with the line that
    /// revoked them.
    pub revoked: Vec<Crossed<Revocation>>,
    /// Quota notices that would have been sent, with the line that crossed them.
    pub notices: Vec<Crossed<QuotaEvent>>,
    /// Wall time.
    pub elapsed: Duration,
    /// Bytes read.
    pub bytes: u64,
}

/// A revocation the replay caused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Revocation {
    /// The revoked attribute (e.g. `token`).
    pub attribute: String,
    /// Its value, redacted.
    pub key: KeyRef,
}

/// Something a line of the log caused: the line's number and time with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crossed<T> {
    /// The 1-based line whose decision caused it.
    pub line: u64,
    /// That line's time, Unix nanoseconds.
    pub time_unix_nanos: i128,
    /// What it caused.
    pub what: T,
}

/// A limit's key with its values, as the offender summary holds it: each value is
/// written as `LEN:VALUE`, so any value (commas and equal signs included) reads back.
/// Secrets are already redacted ([`KeyRef`]) when the key is built.
fn offender_key(out: &mut String, engine_key: &[Attr], secret: &[bool], record: &Request<'_>) {
    out.clear();
    for (attr, &secret) in engine_key.iter().zip(secret) {
        let v = record.get(attr).unwrap_or("");
        if secret {
            let r = KeyRef::of(v).to_string();
            let _ = write!(out, "{}:{r}", r.len());
        } else {
            let _ = write!(out, "{}:{v}", v.len());
        }
    }
}

/// The values of an [`offender_key`], paired with the limit's attribute names.
fn offender_attributes(engine_key: &[Attr], key: &str) -> Attributes {
    let mut rest = key;
    let mut pairs = Vec::with_capacity(engine_key.len());
    for attr in engine_key {
        let value = rest.split_once(':').and_then(|(len, tail)| {
            let len: usize = len.parse().ok()?;
            let v = tail.get(..len)?;
            rest = &tail[len..];
            Some(v)
        });
        pairs.push((attr.to_string(), value.unwrap_or("").to_owned()));
    }
    Attributes(pairs)
}

/// Whether each attribute of `engine_key` holds a secret (a token, or the attribute
/// the quota or the revocation is keyed on: API keys) and is shown only as a [`KeyRef`].
fn secret_attrs(engine: &Engine, engine_key: &[Attr]) -> Vec<bool> {
    let policy = engine.policy();
    let quota = policy.quota.as_ref().map(|q| &q.key);
    let revocation = policy.revocation.as_ref().map(|r| &r.key);
    engine_key
        .iter()
        .map(|a| *a == Attr::Token || Some(a) == quota || Some(a) == revocation)
        .collect()
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
    let secret: Vec<Vec<bool>> = keys.iter().map(|k| secret_attrs(engine, k)).collect();
    let mut ctx = Context {
        keys: &keys,
        secret: &secret,
        label: String::new(),
    };
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
                one_line(engine, parser, &mut ctx, &mut report, &line);
            }
            break;
        }
        let len = chunk.len();
        let mut used = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[used..nl];
            if carry.is_empty() {
                one_line(engine, parser, &mut ctx, &mut report, piece);
            } else {
                carry.extend_from_slice(piece);
                let line = std::mem::take(&mut carry);
                one_line(engine, parser, &mut ctx, &mut report, &line);
            }
            used = nl + 1;
            if report.lines.is_multiple_of(4096) {
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
    // Every event comes from a decision and is taken right after it; this only
    // collects what another thread (none today) might have caused.
    let lines = report.lines;
    drain(engine, &mut report, lines, 0);
    report.elapsed = start.elapsed();
    Ok(report)
}

/// What [`one_line`] needs besides the engine: the limits' keys, which of their
/// attributes are secrets, and a buffer for offender keys.
struct Context<'k> {
    keys: &'k [Vec<Attr>],
    secret: &'k [Vec<bool>],
    label: String,
}

/// Decides one line (without its newline).
#[inline]
fn one_line(
    engine: &Engine,
    parser: &mut Parser,
    ctx: &mut Context<'_>,
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
            if let (Some(k), Some(secret)) = (ctx.keys.get(i), ctx.secret.get(i)) {
                offender_key(&mut ctx.label, k, secret, &req);
                report.offenders[i].add(&ctx.label, 1, 0);
            }
        }
    }
    // A notice or a revocation is raised by the decision that crossed it: taken now,
    // it carries this line's number and time (the channel's check is one atomic load).
    if !engine.events().is_empty() {
        let line = report.lines;
        drain(engine, report, line, record.time_unix_nanos);
    }
}

fn trim_newline(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && (buf[end - 1] == b'\n' || buf[end - 1] == b'\r') {
        end -= 1;
    }
    &buf[..end]
}

fn drain(engine: &Engine, report: &mut ReplayReport, line: u64, time_unix_nanos: i128) {
    for e in engine.drain_events() {
        match e {
            Event::Quota(what) => report.notices.push(Crossed {
                line,
                time_unix_nanos,
                what,
            }),
            Event::Revoked { attribute, key, .. } => report.revoked.push(Crossed {
                line,
                time_unix_nanos,
                what: Revocation { attribute, key },
            }),
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

pub(crate) fn outcome_index(r: Reason) -> usize {
    OUTCOMES.iter().position(|&o| o == r).unwrap_or(0)
}

impl ReplayReport {
    /// Requests with outcome `r`.
    pub fn count(&self, r: Reason) -> u64 {
        self.outcomes[outcome_index(r)]
    }
}

/// The version of the [`ReplayJson`] schema: it changes when a field is removed or
/// changes meaning; fields may be added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` report. Fields serialize in this order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayJson {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Lines read.
    pub lines: u64,
    /// Lines that could not be parsed.
    pub malformed: u64,
    /// The first of them.
    pub malformed_shown: Vec<MalformedLine>,
    /// Wall seconds the replay took.
    pub seconds: f64,
    /// Requests by outcome.
    pub requests: Outcomes,
    /// Per limit, in policy order.
    pub limits: Vec<LimitJson>,
    /// Revocations, in the order they happened.
    pub revoked: Vec<RevokedJson>,
    /// Usage per company and period (companies that made calls), when the policy has
    /// a quota.
    pub monthly_usage: Option<Vec<Statement>>,
    /// The quota notices that would have been sent, in the order they were crossed.
    pub notices: Vec<NoticeJson>,
}

/// A line that could not be parsed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MalformedLine {
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub error: String,
}

/// Requests by outcome (the engine's [`Reason`]s, by their names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcomes {
    /// Allowed.
    pub allowed: u64,
    /// Refused by a limit.
    pub limited: u64,
    /// Refused: the key was revoked.
    pub revoked: u64,
    /// Refused: over the quota's hard cap.
    pub quota_exceeded: u64,
    /// Refused: a key the quota does not know.
    pub unknown_key: u64,
    /// Refused: could never pass (cost above the burst).
    pub cannot_pass: u64,
    /// Refused: a backend could not decide.
    pub unavailable: u64,
}

impl Outcomes {
    /// From counts in the order of [`OUTCOMES`].
    pub fn from_counts(c: &[u64; OUTCOMES.len()]) -> Self {
        Outcomes {
            allowed: c[0],
            limited: c[1],
            revoked: c[2],
            quota_exceeded: c[3],
            unknown_key: c[4],
            cannot_pass: c[5],
            unavailable: c[6],
        }
    }
}

/// One limit's totals and top offenders.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LimitJson {
    /// The limit's name.
    pub limit: String,
    /// Whether it is in shadow mode.
    pub shadow: bool,
    /// Requests it allowed.
    pub allowed: u64,
    /// Requests it denied.
    pub denied: u64,
    /// Requests it would have denied in shadow mode.
    pub shadow_denied: u64,
    /// The keys it denied most, most first (ties by key).
    pub top_offenders: Vec<Offender>,
    /// The most any offender's `denied` may be short by (0: exact).
    pub top_offenders_error: u64,
}

/// A key a limit denied.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Offender {
    /// The key's attributes in the limit's key order; secrets as [`KeyRef`]s.
    pub attributes: Attributes,
    /// Requests of this key the limit denied.
    pub denied: u64,
}

/// Attribute names and values, serialized as a JSON object in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes(pub Vec<(String, String)>);

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl std::fmt::Display for Attributes {
    /// `token=key#…,tenant=t1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// A revocation, with the line that caused it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RevokedJson {
    /// The revoked attribute (e.g. `token`).
    pub attribute: String,
    /// Its value, redacted.
    pub key: KeyRef,
    /// The line whose decision revoked it.
    pub line: u64,
    /// That line's time (RFC 3339, UTC).
    pub time: String,
}

/// A quota notice, with the line that crossed its threshold.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NoticeJson {
    /// `warning` (the early-warning threshold) or `overage` (over the limit).
    pub kind: &'static str,
    /// The company.
    pub company: String,
    /// The period's label, e.g. `2026-11`.
    pub period: String,
    /// Usage after the call that crossed the threshold.
    pub used: u64,
    /// The limit then.
    pub limit: u64,
    /// For an overage, the smallest plan that would cover the usage (`null`: none
    /// does, or a warning).
    pub suggested_plan: Option<String>,
    /// The line whose decision crossed the threshold.
    pub line: u64,
    /// That line's time (RFC 3339, UTC): when the threshold was crossed.
    pub time: String,
}

/// A log time as RFC 3339 in UTC.
fn rfc3339(unix_nanos: i128) -> String {
    jiff::Timestamp::from_nanosecond(unix_nanos)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix_nanos.to_string())
}

impl NoticeJson {
    fn of(n: &Crossed<QuotaEvent>) -> Self {
        let (kind, company, period, used, limit, suggested_plan) = match &n.what {
            QuotaEvent::Warning {
                company,
                period,
                used,
                limit,
            } => ("warning", company, period, *used, *limit, None),
            QuotaEvent::Overage {
                company,
                period,
                used,
                limit,
                suggested_plan,
            } => (
                "overage",
                company,
                period,
                *used,
                *limit,
                suggested_plan.clone(),
            ),
        };
        NoticeJson {
            kind,
            company: company.clone(),
            period: period.clone(),
            used,
            limit,
            suggested_plan,
            line: n.line,
            time: rfc3339(n.time_unix_nanos),
        }
    }
}

/// Per limit: the top offenders with structured attributes.
fn offenders_of(engine: &Engine, r: &ReplayReport, i: usize, top: usize) -> Vec<Offender> {
    let policy = engine.policy();
    let Some(limit) = policy.limits.get(i) else {
        return Vec::new();
    };
    r.offenders
        .get(i)
        .map(|t| t.top(top))
        .unwrap_or_default()
        .into_iter()
        .map(|(key, denied, _)| Offender {
            attributes: offender_attributes(&limit.key, &key),
            denied,
        })
        .collect()
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
        let offenders = offenders_of(engine, r, i, top);
        if !offenders.is_empty() {
            let error = r.offenders.get(i).map_or(0, |t| t.error);
            let _ = writeln!(
                out,
                "    top offenders by denials{}:",
                if error > 0 {
                    format!(" (each count may be short by at most {error})")
                } else {
                    String::new()
                }
            );
            for o in offenders {
                let _ = writeln!(out, "      {:>10}  {}", thousands(o.denied), o.attributes);
            }
        }
    }
    if !r.revoked.is_empty() {
        let _ = writeln!(out, "\nrevoked ({}):", r.revoked.len());
        for k in &r.revoked {
            let _ = writeln!(
                out,
                "  {} {}  at {} (line {})",
                k.what.attribute,
                k.what.key,
                rfc3339(k.time_unix_nanos),
                k.line
            );
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
        for n in r.notices.iter().map(NoticeJson::of) {
            let plan = match (n.kind, &n.suggested_plan) {
                ("overage", Some(p)) => format!(", suggested plan: {p}"),
                ("overage", None) => ", suggested plan: none covers it".to_owned(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<8} {} {}: {} of {} calls{plan}  at {} (line {})",
                n.kind,
                n.company,
                n.period,
                thousands(n.used),
                thousands(n.limit),
                n.time,
                n.line
            );
        }
    }
    out
}

/// The report for machines (`--json`): serialize it with `serde_json`.
pub fn render_json(engine: &Engine, r: &ReplayReport, top: usize) -> ReplayJson {
    let m = engine.metrics();
    let limits = m
        .limits
        .iter()
        .enumerate()
        .map(|(i, l)| LimitJson {
            limit: l.limit.clone(),
            shadow: l.shadow,
            allowed: l.allowed,
            denied: l.denied,
            shadow_denied: l.shadow_denied,
            top_offenders: offenders_of(engine, r, i, top),
            top_offenders_error: r.offenders.get(i).map_or(0, |t| t.error),
        })
        .collect();
    ReplayJson {
        schema_version: SCHEMA_VERSION,
        lines: r.lines,
        malformed: r.malformed,
        malformed_shown: r
            .malformed_shown
            .iter()
            .map(|(line, error)| MalformedLine {
                line: *line,
                error: error.clone(),
            })
            .collect(),
        seconds: r.elapsed.as_secs_f64(),
        requests: Outcomes::from_counts(&r.outcomes),
        limits,
        revoked: r
            .revoked
            .iter()
            .map(|k| RevokedJson {
                attribute: k.what.attribute.clone(),
                key: k.what.key.clone(),
                line: k.line,
                time: rfc3339(k.time_unix_nanos),
            })
            .collect(),
        monthly_usage: engine.ledger().map(|l| {
            l.statements()
                .into_iter()
                .filter(|s| s.used > 0)
                .collect::<Vec<_>>()
        }),
        notices: r.notices.iter().map(NoticeJson::of).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offender_keys_read_back_whatever_the_values_hold() {
        let key = [Attr::Tenant, Attr::Route, Attr::Other("plan".into())];
        let attrs: &[(&str, &str)] = &[("plan", "")];
        let mut req = Request::new().tenant("a,b=c:3").route("/x:y").attrs(attrs);
        req.attrs = attrs;
        let mut s = String::new();
        offender_key(&mut s, &key, &[false, false, false], &req);
        let back = offender_attributes(&key, &s);
        assert_eq!(
            back.0,
            vec![
                ("tenant".to_owned(), "a,b=c:3".to_owned()),
                ("route".to_owned(), "/x:y".to_owned()),
                ("plan".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn secret_values_are_redacted_in_offender_keys() {
        let key = [Attr::Token];
        let req = Request::new().token("sk_live_abcdefgh");
        let mut s = String::new();
        offender_key(&mut s, &key, &[true], &req);
        let back = offender_attributes(&key, &s);
        assert_eq!(back.0[0].1, KeyRef::of("sk_live_abcdefgh").to_string());
        assert!(!s.contains("abcdefgh"), "{s}");
    }
}

//! `tollgate usage --postgres URL`: usage per company (or per user) and period from the
//! fleet ledger, joined with the period-end statements (limit in force, overage, plan),
//! as a table, JSON or CSV. `tollgate usage --journal FILE`: the same from one instance's
//! SQLite quota journal, read-only: company lines carry the limit in force for the
//! period (the journal's `period_limits`, schema 4; empty in older files) and the
//! overage; plans are empty (the journal keeps no plans).

use std::fmt::Write as _;

use serde::Serialize;
use tollgate_postgres::{PgLedger, StatementRow, TotalRow};

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageLine {
    /// The company's id.
    pub company: String,
    /// The user's id (only with `--by user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The period, e.g. "2026-11".
    pub period: String,
    /// Calls counted.
    pub calls: i64,
    /// Units used.
    pub used: i64,
    /// The limit in force (from the period's statement; `None` if not closed yet, and
    /// for user lines: limits are per company).
    pub limit: Option<i64>,
    /// Units over the limit (from the statement).
    pub overage: Option<i64>,
    /// The plan in force (from the statement).
    pub plan: Option<String>,
    /// The plan suggested (from the statement).
    pub suggested_plan: Option<String>,
}

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Reads the report's lines from the ledger at `url`.
pub fn from_postgres(
    url: &str,
    company: Option<&str>,
    period: Option<&str>,
    by_user: bool,
) -> Result<Vec<UsageLine>, String> {
    let mut l = PgLedger::connect(url, "tollgate-usage").map_err(|e| e.to_string())?;
    let totals = l
        .totals(company, period, by_user)
        .map_err(|e| e.to_string())?;
    let statements = l.statements(company, period).map_err(|e| e.to_string())?;
    Ok(join(totals, &statements, by_user))
}

/// Reads the report's lines from the SQLite quota journal at `path` (read-only; a
/// missing file is an error, never created).
pub fn from_journal(
    path: &std::path::Path,
    company: Option<&str>,
    period: Option<&str>,
    by_user: bool,
) -> Result<Vec<UsageLine>, String> {
    if !path.exists() {
        return Err(format!("{}: no such journal", path.display()));
    }
    use tollgate::quota::journal::Journal;
    let rows = Journal::read_usage(path).map_err(|e| e.to_string())?;
    let limits = Journal::read_period_limits(path).map_err(|e| e.to_string())?;
    let limit_of = |company: &str, start: i64| {
        limits
            .iter()
            .find(|l| l.company == company && l.period_start == start)
            .map(|l| i64::try_from(l.limit).unwrap_or(i64::MAX))
    };
    let mut lines: Vec<UsageLine> = rows
        .into_iter()
        .filter(|r| r.user.is_some() == by_user)
        .filter(|r| company.is_none_or(|c| r.company == c))
        .filter(|r| period.is_none_or(|p| r.period == p))
        .map(|r| {
            // Limits are per company: user lines have none.
            let limit = r
                .user
                .is_none()
                .then(|| limit_of(&r.company, r.period_start))
                .flatten();
            UsageLine {
                overage: limit.map(|l| (r.calls - l).max(0)),
                company: r.company,
                user: r.user,
                period: r.period,
                calls: r.calls,
                used: r.calls,
                limit,
                plan: None,
                suggested_plan: None,
            }
        })
        .collect();
    lines.sort_by(|a, b| (&a.company, &a.period, &a.user).cmp(&(&b.company, &b.period, &b.user)));
    Ok(lines)
}

fn join(totals: Vec<TotalRow>, statements: &[StatementRow], by_user: bool) -> Vec<UsageLine> {
    totals
        .into_iter()
        .map(|t| {
            let s = statements
                .iter()
                .find(|s| s.company == t.company && s.period == t.period)
                .filter(|_| !by_user);
            UsageLine {
                company: t.company,
                user: t.user,
                period: t.period,
                calls: t.calls,
                used: t.units,
                limit: s.map(|s| s.limit),
                overage: s.map(|s| s.overage),
                plan: s.and_then(|s| s.plan.clone()),
                suggested_plan: s.and_then(|s| s.suggested_plan.clone()),
            }
        })
        .collect()
}

fn cells(l: &UsageLine, by_user: bool) -> Vec<String> {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut c = vec![l.company.clone()];
    if by_user {
        c.push(l.user.clone().unwrap_or_default());
    }
    c.extend([
        l.period.clone(),
        l.calls.to_string(),
        l.used.to_string(),
        opt(l.limit),
        opt(l.overage),
        l.plan.clone().unwrap_or_default(),
        l.suggested_plan.clone().unwrap_or_default(),
    ]);
    c
}

fn header(by_user: bool) -> Vec<&'static str> {
    let mut h = vec!["company"];
    if by_user {
        h.push("user");
    }
    h.extend([
        "period",
        "calls",
        "used",
        "limit",
        "overage",
        "plan",
        "suggested_plan",
    ]);
    h
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Renders the lines.
pub fn render(lines: &[UsageLine], by_user: bool, format: UsageFormat) -> String {
    let mut out = String::new();
    match format {
        UsageFormat::Json => {
            out = serde_json::to_string_pretty(lines).unwrap_or_else(|_| "[]".into());
            out.push('\n');
        }
        UsageFormat::Csv => {
            out.push_str(&header(by_user).join(","));
            out.push('\n');
            for l in lines {
                let row: Vec<String> = cells(l, by_user).iter().map(|c| csv_cell(c)).collect();
                out.push_str(&row.join(","));
                out.push('\n');
            }
        }
        UsageFormat::Table => {
            let head: Vec<String> = header(by_user).iter().map(|s| s.to_string()).collect();
            let rows: Vec<Vec<String>> = lines.iter().map(|l| cells(l, by_user)).collect();
            let mut w: Vec<usize> = head.iter().map(String::len).collect();
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
            for r in std::iter::once(&head).chain(&rows) {
                let mut line = String::new();
                for (i, c) in r.iter().enumerate() {
                    let _ = write!(line, "{c:<width$}  ", width = w[i]);
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    out
}

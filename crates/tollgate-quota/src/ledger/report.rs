//! Reports: usage per company or user and period, period-end statements, and CSV (the
//! rows serialize to JSON with serde).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::state::Ledger;
use super::usage::Usage;

/// Usage of one company or user in one period, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The company.
    pub company: String,
    /// The user, for per-user rows.
    pub user: Option<String>,
    /// The period's label.
    pub period: String,
    /// Calls counted.
    pub used: u64,
}

/// A company's statement for one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The company.
    pub company: String,
    /// The period's label.
    pub period: String,
    /// Calls counted.
    pub used: u64,
    /// The limit of the period: for a period that ended before the company's limit
    /// last changed, the limit in force at its end (kept in memory: after a restart,
    /// past periods restored from the journal use the limit as configured now); for the
    /// current period, the limit in force now (a change in the middle of a period
    /// applies to the whole period, as it does to counting).
    pub limit: u64,
    /// Calls above the limit.
    pub overage: u64,
}

impl Statement {
    /// A statement of `used` calls against `limit`, with the overage computed.
    fn new(company: String, period: String, used: u64, limit: u64) -> Self {
        Statement {
            overage: used.saturating_sub(limit),
            company,
            period,
            used,
            limit,
        }
    }
}

impl Ledger {
    /// Usage per company and period, sorted by company then period.
    pub fn company_usage(&self) -> Vec<UsageRow> {
        let d = self.directory();
        let mut rows: Vec<UsageRow> = d
            .companies
            .values()
            .flat_map(|c| period_rows(&c.usage, &c.id, None))
            .collect();
        rows.sort_by(|a, b| (&a.company, &a.period).cmp(&(&b.company, &b.period)));
        rows
    }

    /// Usage per user and period, sorted by company, user, period.
    pub fn user_usage(&self) -> Vec<UsageRow> {
        let d = self.directory();
        let mut rows: Vec<UsageRow> = d
            .users
            .values()
            .flat_map(|u| period_rows(&u.usage, &u.company.id, Some(&u.id)))
            .collect();
        rows.sort_by(|a, b| {
            (&a.company, &a.user, &a.period).cmp(&(&b.company, &b.user, &b.period))
        });
        rows
    }

    /// Period-end statements: per company and period (sorted by company then period),
    /// usage, the period's limit (see [`Statement::limit`]) and the overage.
    pub fn statements(&self) -> Vec<Statement> {
        let d = self.directory();
        let mut out: Vec<Statement> = d
            .companies
            .values()
            .flat_map(|c| {
                let current = c.limit.load(Ordering::Relaxed);
                c.usage.periods().into_iter().map(move |p| {
                    Statement::new(
                        c.id.clone(),
                        p.period.label(),
                        p.counter.used(),
                        p.statement_limit(current),
                    )
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.company, &a.period).cmp(&(&b.company, &b.period)));
        out
    }

    /// Each company's statement for the period `now` (Unix nanoseconds) falls in, so
    /// far: used, the limit as configured now and the overage, sorted by company. A
    /// company with no call yet in that period reports 0 (nothing is created for it).
    /// A company whose period cannot be computed at `now` (an instant out of range) is
    /// left out. Metrics export this for the quota gauges.
    pub fn current_statements(&self, now: i128) -> Vec<Statement> {
        let Ok(t) = super::usage::timestamp_of(now) else {
            return Vec::new();
        };
        let d = self.directory();
        let mut out: Vec<Statement> = d
            .companies
            .values()
            .filter_map(|c| {
                let latest = c.usage.latest();
                let (period, used) = if latest.contains(now) {
                    (latest.period.label(), latest.counter.used())
                } else {
                    let spec = c.settings.load().spec.clone();
                    (spec.try_period_at(t).ok()?.label(), 0)
                };
                let limit = c.limit.load(Ordering::Relaxed);
                Some(Statement::new(c.id.clone(), period, used, limit))
            })
            .collect();
        out.sort_by(|a, b| a.company.cmp(&b.company));
        out
    }

    /// Usage rows as CSV: `company,user,period,used` with a header line.
    pub fn usage_csv(rows: &[UsageRow]) -> String {
        let mut out = String::from("company,user,period,used\n");
        for r in rows {
            out.push_str(&csv_field(&r.company));
            out.push(',');
            out.push_str(&csv_field(r.user.as_deref().unwrap_or("")));
            out.push(',');
            out.push_str(&csv_field(&r.period));
            out.push(',');
            out.push_str(&r.used.to_string());
            out.push('\n');
        }
        out
    }
}

/// One row per period of `usage`, the counters of `company` (or of its `user`).
fn period_rows<'a>(
    usage: &'a Usage,
    company: &'a str,
    user: Option<&'a str>,
) -> impl Iterator<Item = UsageRow> + 'a {
    usage.periods().into_iter().map(move |p| UsageRow {
        company: company.to_owned(),
        user: user.map(str::to_owned),
        period: p.period.label(),
        used: p.counter.used(),
    })
}

/// A CSV field, quoted when it contains a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

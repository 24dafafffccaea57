//! The synchronous ledger connection: batches counted once, fleet-wide notice claims,
//! period-end statements, and the reads `tollgate usage` prints.

use std::collections::BTreeMap;

use postgres::{Client, NoTls};
use tollgate_quota::NoticeKind;

use crate::error::PgError;
use crate::schema;

/// One usage delta: calls counted (negative for refunds) for a company, and a user if the
/// calls are attributed to one, in a period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageDelta {
    /// The company's id.
    pub company: String,
    /// The user's id, if attributed to one.
    pub user: Option<String>,
    /// The period's label, e.g. "2026-11".
    pub period: String,
    /// Start of the period, unix seconds.
    pub period_start: i64,
    /// Calls (requests) counted.
    pub calls: i64,
    /// Quota units counted (the calls' cost; equal to `calls` for unit-cost calls).
    pub units: i64,
}

/// A running total of a company (user `None`) or a user in a period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotalRow {
    /// The company's id.
    pub company: String,
    /// The user's id; `None` for the company's total.
    pub user: Option<String>,
    /// The period's label.
    pub period: String,
    /// Calls counted.
    pub calls: i64,
    /// Units counted.
    pub units: i64,
}

/// A period-end statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRow {
    /// The company's id.
    pub company: String,
    /// The period's label.
    pub period: String,
    /// Units used in the period.
    pub used: i64,
    /// The limit in force.
    pub limit: i64,
    /// The plan in force, if any.
    pub plan: Option<String>,
    /// Units over the limit (0 if none).
    pub overage: i64,
    /// The plan suggested for the usage, if any.
    pub suggested_plan: Option<String>,
}

/// A connection to the fleet ledger, for one instance.
pub struct PgLedger {
    client: Client,
    instance: String,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Clamps an i64 sum (PostgreSQL BIGINT arithmetic errors on overflow).
const ADD_TOTALS: &str =
    "LEAST(GREATEST(t.{c}::NUMERIC + EXCLUDED.{c}, 0), 9223372036854775807)::BIGINT";

fn add(col: &str) -> String {
    ADD_TOTALS.replace("{c}", col)
}

impl PgLedger {
    /// Connects to `url` (a libpq URL or key=value string), applies the migrations and
    /// registers `instance`. The connection has no TLS (a loopback or private network).
    pub fn connect(url: &str, instance: &str) -> Result<Self, PgError> {
        let mut client = Client::connect(url, NoTls)?;
        schema::migrate(&mut client)?;
        client.execute(
            "INSERT INTO instances (instance) VALUES ($1)
             ON CONFLICT (instance) DO UPDATE SET last_seen = now()",
            &[&instance],
        )?;
        Ok(PgLedger {
            client,
            instance: instance.to_owned(),
        })
    }

    /// This ledger's instance name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the connection is closed (the server went away).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes a batch under `batch_id`, in one transaction: the batch row (ON CONFLICT DO
    /// NOTHING), then, only if it was inserted, its deltas and the running totals.
    /// Returns `false` if the batch had been committed before (a retry): nothing counted.
    ///
    /// Costs three round trips plus one per distinct company and user in the batch (the
    /// deltas go in as one `UNNEST` insert; totals are summed per key first). A
    /// negative total is clamped at 0 once per batch key, not per delta.
    pub fn write_batch(&mut self, batch_id: &str, deltas: &[UsageDelta]) -> Result<bool, PgError> {
        let company_sql = format!(
            "INSERT INTO company_totals AS t (company, period, period_start, calls, units)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (company, period) DO UPDATE SET calls = {}, units = {}",
            add("calls"),
            add("units")
        );
        let user_sql = format!(
            "INSERT INTO user_totals AS t (company, user_id, period, period_start, calls, units)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (company, user_id, period) DO UPDATE SET calls = {}, units = {}",
            add("calls"),
            add("units")
        );
        let mut tx = self.client.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO batches (instance, batch_id) VALUES ($1, $2)
             ON CONFLICT (instance, batch_id) DO NOTHING",
            &[&self.instance, &batch_id],
        )?;
        if inserted == 0 {
            tx.rollback()?;
            return Ok(false);
        }
        // All deltas in one statement (arrays unnested server-side), then one upsert per
        // distinct (company, period) and (company, user, period), in sorted key order so
        // two instances' transactions lock total rows in the same order.
        let n = deltas.len();
        let mut seqs = Vec::with_capacity(n);
        let (mut companies, mut users, mut periods) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut starts, mut calls, mut units) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        type Sum = (i64, i64, i64); // period_start, calls, units
        let mut by_company: BTreeMap<(&str, &str), Sum> = BTreeMap::new();
        let mut by_user: BTreeMap<(&str, &str, &str), Sum> = BTreeMap::new();
        for (seq, d) in deltas.iter().enumerate() {
            seqs.push(i32::try_from(seq).unwrap_or(i32::MAX));
            companies.push(d.company.as_str());
            users.push(d.user.as_deref().unwrap_or(""));
            periods.push(d.period.as_str());
            starts.push(d.period_start);
            calls.push(d.calls);
            units.push(d.units);
            let add = |e: &mut Sum| {
                e.0 = d.period_start;
                e.1 = e.1.saturating_add(d.calls);
                e.2 = e.2.saturating_add(d.units);
            };
            add(by_company
                .entry((d.company.as_str(), d.period.as_str()))
                .or_default());
            if let Some(u) = &d.user {
                add(by_user
                    .entry((d.company.as_str(), u.as_str(), d.period.as_str()))
                    .or_default());
            }
        }
        tx.execute(
            "INSERT INTO usage_deltas
             (instance, batch_id, seq, company, user_id, period, period_start, calls, units)
             SELECT $1, $2, * FROM UNNEST($3::INTEGER[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                                          $7::BIGINT[], $8::BIGINT[], $9::BIGINT[])",
            &[
                &self.instance,
                &batch_id,
                &seqs,
                &companies,
                &users,
                &periods,
                &starts,
                &calls,
                &units,
            ],
        )?;
        let company = tx.prepare(&company_sql)?;
        for ((c, p), (start, calls, units)) in &by_company {
            tx.execute(&company, &[c, p, start, calls, units])?;
        }
        let user = tx.prepare(&user_sql)?;
        for ((c, u, p), (start, calls, units)) in &by_user {
            tx.execute(&user, &[c, u, p, start, calls, units])?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Claims the notice `kind` of `company` in `period` for the fleet: inserts its row
    /// (ON CONFLICT DO NOTHING). Returns `true` for the one instance whose insert
    /// happened, which delivers it; `false` for every other claim.
    pub fn claim_notice(
        &mut self,
        company: &str,
        period: &str,
        kind: NoticeKind,
        used: i64,
        limit: i64,
        suggested_plan: Option<&str>,
    ) -> Result<bool, PgError> {
        let n = self.client.execute(
            "INSERT INTO notices (company, period, kind, instance, used, quota_limit, suggested_plan)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (company, period, kind) DO NOTHING",
            &[
                &company,
                &period,
                &kind.as_str(),
                &self.instance,
                &used,
                &limit,
                &suggested_plan,
            ],
        )?;
        Ok(n == 1)
    }

    /// Writes the period-end statement of `company` for `period` from its running total:
    /// used, the limit in force, the plan, the overage. The first statement written for a
    /// company and period stands (ON CONFLICT DO NOTHING); returns it.
    pub fn close_period(
        &mut self,
        company: &str,
        period: &str,
        limit: i64,
        plan: Option<&str>,
        suggested_plan: Option<&str>,
    ) -> Result<StatementRow, PgError> {
        let mut tx = self.client.transaction()?;
        let used: i64 = tx
            .query_opt(
                "SELECT units FROM company_totals WHERE company = $1 AND period = $2",
                &[&company, &period],
            )?
            .map(|r| r.get(0))
            .unwrap_or(0);
        let overage = used.saturating_sub(limit).max(0);
        tx.execute(
            "INSERT INTO statements (company, period, used, quota_limit, plan, overage, suggested_plan)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (company, period) DO NOTHING",
            &[&company, &period, &used, &limit, &plan, &overage, &suggested_plan],
        )?;
        tx.commit()?;
        let rows = read_statements(&mut self.client, Some(company), Some(period))?;
        Ok(rows.into_iter().next().expect("statement just written"))
    }

    /// Running totals, per company (`by_user` false) or per user, optionally of one
    /// company and/or period.
    pub fn totals(
        &mut self,
        company: Option<&str>,
        period: Option<&str>,
        by_user: bool,
    ) -> Result<Vec<TotalRow>, PgError> {
        read_totals(&mut self.client, company, period, by_user)
    }

    /// Statements, optionally of one company and/or period.
    pub fn statements(
        &mut self,
        company: Option<&str>,
        period: Option<&str>,
    ) -> Result<Vec<StatementRow>, PgError> {
        read_statements(&mut self.client, company, period)
    }
}

fn read_totals(
    client: &mut Client,
    company: Option<&str>,
    period: Option<&str>,
    by_user: bool,
) -> Result<Vec<TotalRow>, PgError> {
    let sql = if by_user {
        "SELECT company, user_id, period, calls, units FROM user_totals
         WHERE ($1::TEXT IS NULL OR company = $1) AND ($2::TEXT IS NULL OR period = $2)
         ORDER BY company, period_start, user_id"
    } else {
        "SELECT company, NULL::TEXT, period, calls, units FROM company_totals
         WHERE ($1::TEXT IS NULL OR company = $1) AND ($2::TEXT IS NULL OR period = $2)
         ORDER BY company, period_start"
    };
    Ok(client
        .query(sql, &[&company, &period])?
        .into_iter()
        .map(|r| TotalRow {
            company: r.get(0),
            user: r.get(1),
            period: r.get(2),
            calls: r.get(3),
            units: r.get(4),
        })
        .collect())
}

fn read_statements(
    client: &mut Client,
    company: Option<&str>,
    period: Option<&str>,
) -> Result<Vec<StatementRow>, PgError> {
    Ok(client
        .query(
            "SELECT company, period, used, quota_limit, plan, overage, suggested_plan
             FROM statements
             WHERE ($1::TEXT IS NULL OR company = $1) AND ($2::TEXT IS NULL OR period = $2)
             ORDER BY company, period",
            &[&company, &period],
        )?
        .into_iter()
        .map(|r| StatementRow {
            company: r.get(0),
            period: r.get(1),
            used: r.get(2),
            limit: r.get(3),
            plan: r.get(4),
            overage: r.get(5),
            suggested_plan: r.get(6),
        })
        .collect())
}

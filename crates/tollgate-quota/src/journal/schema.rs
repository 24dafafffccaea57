//! The SQLite schema (version 2) and the statements that write a batch and read the
//! tables back; the migration of a version 1 file (the `outbox` table added).

use std::path::Path;

use rusqlite::{params, Connection};

use super::entry::{
    CommitRecord, Entry, NoticeKind, NoticeRecord, OutboxRecord, Snapshot, UsageRecord,
};
use super::error::{refuse, sql_err, JournalError};

/// `PRAGMA application_id` of a tollgate journal: "TGLQ".
pub const APPLICATION_ID: i32 = 0x5447_4C51;
/// `PRAGMA user_version` of the schema this build reads and writes.
pub const SCHEMA_VERSION: i32 = 2;
/// The oldest schema version this build opens (and migrates to [`SCHEMA_VERSION`]).
pub(super) const OLDEST_SCHEMA_VERSION: i32 = 1;

/// The tables a journal of schema `version` has.
pub(super) fn tables_of(version: i32) -> &'static [&'static str] {
    if version >= 2 {
        &["usage", "notices", "commits", "outbox"]
    } else {
        &["usage", "notices", "commits"]
    }
}

/// Version 2: the notice outbox. A notice is written here in the transaction that
/// journals it, pending (`acked_at` NULL) until the host acknowledges it; one row per
/// company, period and kind ever.
const OUTBOX: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id             INTEGER PRIMARY KEY,
    company        TEXT    NOT NULL,
    period         TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('warning', 'overage')),
    used           INTEGER NOT NULL,
    quota_limit    INTEGER NOT NULL,
    suggested_plan TEXT,
    raised_at      INTEGER NOT NULL,
    acked_at       INTEGER,
    UNIQUE (company, period, kind)
);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    company      TEXT    NOT NULL,
    user         TEXT    NOT NULL DEFAULT '',
    period_start INTEGER NOT NULL,
    period       TEXT    NOT NULL,
    calls        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (company, user, period_start)
);
CREATE TABLE IF NOT EXISTS notices (
    company   TEXT    NOT NULL,
    period    TEXT    NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('warning', 'overage')),
    raised_at INTEGER NOT NULL,
    PRIMARY KEY (company, period, kind)
);
CREATE TABLE IF NOT EXISTS commits (
    company         TEXT    NOT NULL,
    period_start    INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    PRIMARY KEY (company, period_start, idempotency_key)
);
";

const UPSERT_USAGE: &str = "INSERT INTO usage (company, user, period_start, period, calls)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (company, user, period_start) DO UPDATE SET calls = CASE
         WHEN excluded.calls > 0 AND calls > 9223372036854775807 - excluded.calls
             THEN 9223372036854775807
         ELSE MAX(calls + excluded.calls, 0) END";
const INSERT_NOTICE: &str =
    "INSERT OR IGNORE INTO notices (company, period, kind, raised_at) VALUES (?1, ?2, ?3, ?4)";
const INSERT_OUTBOX: &str = "INSERT OR IGNORE INTO outbox
     (id, company, period, kind, used, quota_limit, suggested_plan, raised_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const ACK_OUTBOX: &str = "UPDATE outbox SET acked_at = ?2 WHERE id = ?1 AND acked_at IS NULL";
const INSERT_COMMIT: &str =
    "INSERT OR IGNORE INTO commits (company, period_start, idempotency_key) VALUES (?1, ?2, ?3)";
const SELECT_USAGE: &str = "SELECT company, user, period_start, period, calls FROM usage
     ORDER BY company, period_start, user";

pub(super) fn apply<'a>(
    conn: &mut Connection,
    batch: impl IntoIterator<Item = &'a Entry>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut usage = tx.prepare(UPSERT_USAGE)?;
        let mut notice = tx.prepare(INSERT_NOTICE)?;
        let mut commit = tx.prepare(INSERT_COMMIT)?;
        let mut outbox = tx.prepare(INSERT_OUTBOX)?;
        let mut ack = tx.prepare(ACK_OUTBOX)?;
        // SQLite integers are signed: counts above i64::MAX are stored as i64::MAX.
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for entry in batch {
            match entry {
                Entry::Usage {
                    company,
                    user,
                    period_start,
                    period,
                    calls,
                } => {
                    usage.execute(params![company, "", period_start, period, calls])?;
                    if let Some(user) = user {
                        usage.execute(params![company, user, period_start, period, calls])?;
                    }
                }
                Entry::Notice {
                    id,
                    company,
                    period,
                    kind,
                    used,
                    limit,
                    suggested_plan,
                    raised_at,
                } => {
                    notice.execute(params![company, period, kind.as_str(), raised_at])?;
                    outbox.execute(params![
                        int(*id),
                        company,
                        period,
                        kind.as_str(),
                        int(*used),
                        int(*limit),
                        suggested_plan,
                        raised_at
                    ])?;
                }
                Entry::NoticeRaised {
                    company,
                    period,
                    kind,
                    raised_at,
                } => {
                    notice.execute(params![company, period, kind.as_str(), raised_at])?;
                }
                Entry::NoticeAck { id, acked_at } => {
                    ack.execute(params![int(*id), acked_at])?;
                }
                Entry::Commit {
                    company,
                    period_start,
                    idempotency_key,
                } => {
                    commit.execute(params![company, period_start, idempotency_key])?;
                }
            }
        }
    }
    tx.commit()
}

pub(super) fn init_schema(path: &Path, conn: &mut Connection) -> Result<(), JournalError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err(path, "cannot start the schema transaction"))?;
    let app_id: i32 = tx
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql_err(path, "cannot read application_id"))?;
    if app_id == APPLICATION_ID {
        // Checked by check_existing: a version this build opens. Migrate an older one.
        let version: i32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err(path, "cannot read user_version"))?;
        if version >= SCHEMA_VERSION {
            return Ok(()); // the transaction rolls back
        }
        // Version 1 -> 2: the outbox. Notices raised before it keep their `notices`
        // row (so they are not raised again) and have no outbox row: they were
        // delivered, at most once, by the version that raised them.
        tx.execute_batch(OUTBOX).map_err(sql_err(
            path,
            "cannot add the outbox table (migration to version 2)",
        ))?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(sql_err(path, "cannot set user_version"))?;
        return tx
            .commit()
            .map_err(sql_err(path, "cannot commit the migration to version 2"));
    }
    if app_id != 0 {
        // Another process replaced the file since it was checked.
        return Err(refuse(
            path,
            format!("a foreign SQLite database (application_id {app_id:#010x})"),
        ));
    }
    tx.execute_batch(SCHEMA)
        .map_err(sql_err(path, "cannot create the schema"))?;
    tx.execute_batch(OUTBOX)
        .map_err(sql_err(path, "cannot create the schema"))?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(sql_err(path, "cannot set application_id and user_version"))?;
    tx.commit()
        .map_err(sql_err(path, "cannot commit the schema"))
}

pub(super) fn read_usage(path: &Path, conn: &Connection) -> Result<Vec<UsageRecord>, JournalError> {
    let mut stmt = conn
        .prepare(SELECT_USAGE)
        .map_err(sql_err(path, "cannot read the usage table"))?;
    let rows = stmt
        .query_map([], |r| {
            let user: String = r.get(1)?;
            Ok(UsageRecord {
                company: r.get(0)?,
                user: if user.is_empty() { None } else { Some(user) },
                period_start: r.get(2)?,
                period: r.get(3)?,
                calls: r.get(4)?,
            })
        })
        .map_err(sql_err(path, "cannot read the usage table"))?;
    let mut out: Vec<UsageRecord> = rows
        .collect::<Result<_, _>>()
        .map_err(sql_err(path, "cannot read the usage table"))?;
    out.sort();
    Ok(out)
}

pub(super) fn read_snapshot(path: &Path, conn: &Connection) -> Result<Snapshot, JournalError> {
    let usage = read_usage(path, conn)?;
    let mut notices = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT company, period, kind, raised_at FROM notices")
            .map_err(sql_err(path, "cannot read the notices table"))?;
        let mut rows = stmt
            .query([])
            .map_err(sql_err(path, "cannot read the notices table"))?;
        while let Some(r) = rows
            .next()
            .map_err(sql_err(path, "cannot read the notices table"))?
        {
            let get = |i| -> Result<String, JournalError> {
                r.get(i)
                    .map_err(sql_err(path, "cannot read the notices table"))
            };
            let kind = get(2)?;
            let Some(kind) = NoticeKind::parse(&kind) else {
                return Err(refuse(path, format!("unknown notice kind {kind:?}")));
            };
            notices.push(NoticeRecord {
                company: get(0)?,
                period: get(1)?,
                kind,
                raised_at: r
                    .get(3)
                    .map_err(sql_err(path, "cannot read the notices table"))?,
            });
        }
    }
    notices.sort();
    let mut commits: Vec<CommitRecord> = {
        let mut stmt = conn
            .prepare("SELECT company, period_start, idempotency_key FROM commits")
            .map_err(sql_err(path, "cannot read the commits table"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CommitRecord {
                    company: r.get(0)?,
                    period_start: r.get(1)?,
                    idempotency_key: r.get(2)?,
                })
            })
            .map_err(sql_err(path, "cannot read the commits table"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql_err(path, "cannot read the commits table"))?
    };
    commits.sort();
    let outbox = read_outbox(path, conn)?;
    Ok(Snapshot {
        usage,
        notices,
        commits,
        outbox,
    })
}

/// The `outbox` table, by id.
fn read_outbox(path: &Path, conn: &Connection) -> Result<Vec<OutboxRecord>, JournalError> {
    let err = || sql_err(path, "cannot read the outbox table");
    let mut stmt = conn
        .prepare(
            "SELECT id, company, period, kind, used, quota_limit, suggested_plan, raised_at,
                    acked_at FROM outbox ORDER BY id",
        )
        .map_err(err())?;
    let mut rows = stmt.query([]).map_err(err())?;
    let mut out = Vec::new();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    while let Some(r) = rows.next().map_err(err())? {
        let kind: String = r.get(3).map_err(err())?;
        let Some(kind) = NoticeKind::parse(&kind) else {
            return Err(refuse(
                path,
                format!("unknown notice kind {kind:?} in the outbox"),
            ));
        };
        let id: i64 = r.get(0).map_err(err())?;
        let Ok(id) = u64::try_from(id) else {
            return Err(refuse(path, format!("negative outbox id {id}")));
        };
        out.push(OutboxRecord {
            id,
            company: r.get(1).map_err(err())?,
            period: r.get(2).map_err(err())?,
            kind,
            used: count(r.get(4).map_err(err())?),
            limit: count(r.get(5).map_err(err())?),
            suggested_plan: r.get(6).map_err(err())?,
            raised_at: r.get(7).map_err(err())?,
            acked_at: r.get(8).map_err(err())?,
        });
    }
    Ok(out)
}

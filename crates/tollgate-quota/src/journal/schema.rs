//! The SQLite schema (version 4) and the statements that write a batch and read the
//! tables back; the migrations of older files (version 2 added the `outbox` table,
//! version 3 the `meta` and `revocations` tables, version 4 `period_limits`).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::entry::{
    CommitRecord, Entry, NoticeKind, NoticeRecord, OutboxRecord, PeriodLimitRecord, Snapshot,
    UsageRecord,
};
use super::error::{refuse, sql_err, JournalError};
use super::revocation::{AdminChangeRecord, AdminRecord, RevocationKey, RevocationRecord};
use crate::ledger::{CompanyStatus, KeyRef};

/// `PRAGMA application_id` of a tollgate journal: "TGLQ".
pub const APPLICATION_ID: i32 = 0x5447_4C51;
/// `PRAGMA user_version` of the schema this build reads and writes.
pub const SCHEMA_VERSION: i32 = 4;
/// The oldest schema version this build opens (and migrates to [`SCHEMA_VERSION`]).
pub(super) const OLDEST_SCHEMA_VERSION: i32 = 1;

/// Every table and the schema version that added it, in that order.
const TABLES: [(&str, i32); 8] = [
    ("usage", 1),
    ("notices", 1),
    ("commits", 1),
    ("outbox", 2),
    ("meta", 3),
    ("revocations", 3),
    ("admin_changes", 3),
    ("period_limits", 4),
];

/// The tables a journal of schema `version` has.
pub(super) fn tables_of(version: i32) -> impl Iterator<Item = &'static str> {
    TABLES
        .iter()
        .filter(move |(_, since)| *since <= version)
        .map(|(name, _)| *name)
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

/// Version 3: durable revocations. `meta` holds the journal's revocation key (32 random
/// bytes, see [`RevocationKey`]); `revocations` one row per revoked or suspended value,
/// keyed by its fingerprint under that key (32 hex digits), never by the value.
/// `until_ns` NULL: until restored.
const REVOCATIONS: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    fingerprint TEXT    PRIMARY KEY CHECK (length(fingerprint) = 32),
    key_ref     TEXT    NOT NULL,
    filter_bit  INTEGER NOT NULL CHECK (filter_bit BETWEEN 0 AND 1023),
    until_ns    INTEGER,
    automatic   INTEGER NOT NULL CHECK (automatic IN (0, 1)),
    revoked_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    op      TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT
);
";

/// Version 4: the limit in force per company and period, so that a past period's
/// statement keeps its own limit across restarts (before, a restart recomputed it with
/// the limit in force at start).
const PERIOD_LIMITS: &str = "
CREATE TABLE IF NOT EXISTS period_limits (
    company      TEXT    NOT NULL,
    period_start INTEGER NOT NULL,
    period       TEXT    NOT NULL,
    quota_limit  INTEGER NOT NULL,
    PRIMARY KEY (company, period_start)
);
";

/// The `meta` row holding the revocation key.
const REVOCATION_KEY: &str = "revocation_key";

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
const UPSERT_REVOCATION: &str = "INSERT OR REPLACE INTO revocations
     (fingerprint, key_ref, filter_bit, until_ns, automatic, revoked_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_ADMIN: &str =
    "INSERT INTO admin_changes (at, op, subject, detail) VALUES (?1, ?2, ?3, ?4)";
const UPSERT_PERIOD_LIMIT: &str = "INSERT INTO period_limits
     (company, period_start, period, quota_limit) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (company, period_start) DO UPDATE SET quota_limit = excluded.quota_limit";
const DELETE_REVOCATION: &str = "DELETE FROM revocations WHERE fingerprint = ?1";
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
        let mut revoke = tx.prepare(UPSERT_REVOCATION)?;
        let mut unrevoke = tx.prepare(DELETE_REVOCATION)?;
        let mut admin = tx.prepare(INSERT_ADMIN)?;
        let mut period_limit = tx.prepare(UPSERT_PERIOD_LIMIT)?;
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
                Entry::Revoked(r) => {
                    revoke.execute(params![
                        format!("{:032x}", r.fingerprint),
                        r.key.to_string(),
                        r.filter_bit.min(1023),
                        r.until.map(int),
                        r.automatic,
                        int(r.revoked_at)
                    ])?;
                }
                Entry::Unrevoked { fingerprint } => {
                    unrevoke.execute(params![format!("{fingerprint:032x}")])?;
                }
                Entry::Admin { at, change } => {
                    let (op, subject, detail) = admin_row(change);
                    admin.execute(params![at, op, subject, detail])?;
                }
                Entry::PeriodLimit {
                    company,
                    period_start,
                    period,
                    limit,
                } => {
                    period_limit.execute(params![company, period_start, period, int(*limit)])?;
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
        if version < 2 {
            // Version 1 -> 2: the outbox. Notices raised before it keep their `notices`
            // row (so they are not raised again) and have no outbox row: they were
            // delivered, at most once, by the version that raised them.
            tx.execute_batch(OUTBOX).map_err(sql_err(
                path,
                "cannot add the outbox table (migration to version 2)",
            ))?;
        }
        if version < 3 {
            // Version 2 -> 3: durable revocations (none were kept before: an empty
            // table) and a fresh revocation key.
            add_revocations(path, &tx)?;
        }
        // Version 3 -> 4: the limits per period (none were kept before: a past
        // period's statement takes the limit in force at start, as it did).
        tx.execute_batch(PERIOD_LIMITS).map_err(sql_err(
            path,
            "cannot add the period_limits table (migration to version 4)",
        ))?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(sql_err(path, "cannot set user_version"))?;
        return tx.commit().map_err(sql_err(
            path,
            "cannot commit the migration to the current schema version",
        ));
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
    add_revocations(path, &tx)?;
    tx.execute_batch(PERIOD_LIMITS)
        .map_err(sql_err(path, "cannot create the schema"))?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(sql_err(path, "cannot set application_id and user_version"))?;
    tx.commit()
        .map_err(sql_err(path, "cannot commit the schema"))
}

/// The `(op, subject, detail)` columns of an admin change.
fn admin_row(change: &AdminRecord) -> (&'static str, String, Option<String>) {
    match change {
        AdminRecord::Company { company, time_zone } => (
            "company",
            company.id.clone(),
            Some(serde_json::json!({ "company": company, "time_zone": time_zone }).to_string()),
        ),
        AdminRecord::CompanyStatus { company, status } => (
            "company_status",
            company.clone(),
            Some(status_name(*status).to_owned()),
        ),
        AdminRecord::UserAdded { user, company } => {
            ("user_added", user.clone(), Some(company.clone()))
        }
        AdminRecord::UserDisabled { user, disabled } => (
            "user_disabled",
            user.clone(),
            Some(if *disabled { "true" } else { "false" }.to_owned()),
        ),
        AdminRecord::UserRemoved { user } => ("user_removed", user.clone(), None),
    }
}

fn status_name(s: CompanyStatus) -> &'static str {
    match s {
        CompanyStatus::Active => "active",
        CompanyStatus::Suspended => "suspended",
        CompanyStatus::Terminated => "terminated",
        _ => "removed",
    }
}

/// The `admin_changes` table, in order. A row this build cannot read is refused (the
/// directory restored without it would be wrong).
pub(super) fn read_admin_changes(
    path: &Path,
    conn: &Connection,
) -> Result<Vec<AdminChangeRecord>, JournalError> {
    let err = || sql_err(path, "cannot read the admin_changes table");
    let mut stmt = conn
        .prepare("SELECT seq, at, op, subject, detail FROM admin_changes ORDER BY seq")
        .map_err(err())?;
    let mut rows = stmt.query([]).map_err(err())?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(err())? {
        let seq: i64 = r.get(0).map_err(err())?;
        let at: i64 = r.get(1).map_err(err())?;
        let op: String = r.get(2).map_err(err())?;
        let subject: String = r.get(3).map_err(err())?;
        let detail: Option<String> = r.get(4).map_err(err())?;
        let bad = || refuse(path, format!("admin change {seq} ({op:?}) cannot be read"));
        let change = match op.as_str() {
            "company" => {
                #[derive(serde::Deserialize)]
                struct Body {
                    company: crate::plan::Company,
                    time_zone: Option<String>,
                }
                let body: Body = detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .ok_or_else(bad)?;
                AdminRecord::Company {
                    company: body.company,
                    time_zone: body.time_zone,
                }
            }
            "company_status" => AdminRecord::CompanyStatus {
                company: subject,
                status: match detail.as_deref() {
                    Some("active") => CompanyStatus::Active,
                    Some("suspended") => CompanyStatus::Suspended,
                    Some("terminated") => CompanyStatus::Terminated,
                    Some("removed") => CompanyStatus::Removed,
                    _ => return Err(bad()),
                },
            },
            "user_added" => AdminRecord::UserAdded {
                user: subject,
                company: detail.ok_or_else(bad)?,
            },
            "user_disabled" => AdminRecord::UserDisabled {
                user: subject,
                disabled: match detail.as_deref() {
                    Some("true") => true,
                    Some("false") => false,
                    _ => return Err(bad()),
                },
            },
            "user_removed" => AdminRecord::UserRemoved { user: subject },
            _ => return Err(bad()),
        };
        out.push(AdminChangeRecord { seq, at, change });
    }
    Ok(out)
}

/// Creates the version 3 tables and stores a fresh revocation key (unless one is there).
fn add_revocations(path: &Path, tx: &rusqlite::Transaction<'_>) -> Result<(), JournalError> {
    tx.execute_batch(REVOCATIONS).map_err(sql_err(
        path,
        "cannot add the revocations tables (schema version 3)",
    ))?;
    tx.execute(
        "INSERT OR IGNORE INTO meta (name, value) VALUES (?1, ?2)",
        params![REVOCATION_KEY, RevocationKey::random().to_bytes()],
    )
    .map_err(sql_err(path, "cannot store the revocation key"))?;
    Ok(())
}

/// The journal's revocation key and its `revocations` table (a file that lacks the key,
/// or holds a malformed row, is refused: its revocations could not be matched).
pub(super) fn read_revocations(
    path: &Path,
    conn: &Connection,
) -> Result<(RevocationKey, Vec<RevocationRecord>), JournalError> {
    let err = || sql_err(path, "cannot read the revocations table");
    let key: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE name = ?1",
            [REVOCATION_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err(path, "cannot read the meta table"))?;
    let Some(key) = key.as_deref().and_then(RevocationKey::from_bytes) else {
        return Err(refuse(path, "the revocation key is missing or malformed"));
    };
    let mut stmt = conn
        .prepare(
            "SELECT fingerprint, key_ref, filter_bit, until_ns, automatic, revoked_at
             FROM revocations ORDER BY fingerprint",
        )
        .map_err(err())?;
    let mut rows = stmt.query([]).map_err(err())?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(err())? {
        let fp: String = r.get(0).map_err(err())?;
        let Ok(fingerprint) = u128::from_str_radix(&fp, 16) else {
            return Err(refuse(
                path,
                "a malformed fingerprint in the revocations table",
            ));
        };
        let key_ref: String = r.get(1).map_err(err())?;
        let Some(key_ref) = KeyRef::from_stored(&key_ref) else {
            return Err(refuse(
                path,
                "a malformed key reference in the revocations table",
            ));
        };
        let bit: i64 = r.get(2).map_err(err())?;
        let until: Option<i64> = r.get(3).map_err(err())?;
        let at: i64 = r.get(5).map_err(err())?;
        out.push(RevocationRecord {
            fingerprint,
            key: key_ref,
            filter_bit: u16::try_from(bit).unwrap_or(0).min(1023),
            until: until.map(|u| u64::try_from(u).unwrap_or(0)),
            automatic: r.get(4).map_err(err())?,
            revoked_at: u64::try_from(at).unwrap_or(0),
        });
    }
    Ok((key, out))
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
    let period_limits = read_period_limits(path, conn)?;
    Ok(Snapshot {
        usage,
        notices,
        commits,
        outbox,
        period_limits,
    })
}

/// The `period_limits` table, sorted; empty in a journal older than schema 4 (read
/// over a read-only connection, which migrates nothing).
pub(super) fn read_period_limits(
    path: &Path,
    conn: &Connection,
) -> Result<Vec<PeriodLimitRecord>, JournalError> {
    let err = || sql_err(path, "cannot read the period_limits table");
    let exists: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'period_limits'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(err())?
        > 0;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT company, period_start, period, quota_limit FROM period_limits")
        .map_err(err())?;
    let rows = stmt
        .query_map([], |r| {
            Ok(PeriodLimitRecord {
                company: r.get(0)?,
                period_start: r.get(1)?,
                period: r.get(2)?,
                limit: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            })
        })
        .map_err(err())?;
    let mut out: Vec<PeriodLimitRecord> = rows.collect::<Result<_, _>>().map_err(err())?;
    out.sort();
    Ok(out)
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

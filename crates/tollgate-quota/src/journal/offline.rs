//! Changing a journal from outside the engine: what `tollgate admin --journal FILE`
//! does for an operator. [`AdminJournal`] opens an existing journal (never creates,
//! never migrates) and writes administrative changes and revocations into it, each in
//! its own transaction, as the engine writes its own: an engine applies them when it
//! next starts on the file (the journal's changes win over the policy file's seed, see
//! `DURABILITY.md`). A running engine's writer and this one take turns on SQLite's lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::entry::Entry;
use super::error::{refuse, sql_err, JournalError};
use super::revocation::{AdminChangeRecord, AdminRecord, RevocationKey, RevocationRecord};
use super::schema::{self, APPLICATION_ID, SCHEMA_VERSION};

/// An existing journal opened for an operator's changes (`tollgate admin --journal`):
/// never created, never migrated; each change written in its own transaction, applied
/// by an engine when it next starts on the file.
pub struct AdminJournal {
    path: PathBuf,
    conn: Connection,
    key: RevocationKey,
}

impl std::fmt::Debug for AdminJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AdminJournal {
    /// Opens the journal at `path` for writing. Refused: a missing file (never
    /// created), a file that is not a tollgate journal, or one of another schema version
    /// (start an engine of this build on it once to migrate it).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(refuse(path, "no such journal (it is never created here)"));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(path, "cannot open"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err(path, "cannot set the busy timeout"))?;
        let pragma = |name: &str| -> Result<i32, JournalError> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(sql_err(path, "cannot read the header"))
        };
        let app = pragma("application_id")?;
        if app != APPLICATION_ID {
            return Err(refuse(
                path,
                format!("not a tollgate journal (application_id {app:#010x})"),
            ));
        }
        let version = pragma("user_version")?;
        if version != SCHEMA_VERSION {
            return Err(refuse(
                path,
                format!(
                    "schema version {version}, this build writes {SCHEMA_VERSION}: start the \
                     engine of this build on it once to migrate it"
                ),
            ));
        }
        let (key, _) = schema::read_revocations(path, &conn)?;
        Ok(AdminJournal {
            path: path.to_path_buf(),
            conn,
            key,
        })
    }

    fn write(&mut self, entry: Entry) -> Result<(), JournalError> {
        schema::apply(&mut self.conn, [&entry])
            .map_err(sql_err(&self.path, "cannot write the change"))
    }

    /// Appends an administrative change made at `at` (Unix nanoseconds).
    pub fn admin(&mut self, at: i64, change: AdminRecord) -> Result<(), JournalError> {
        self.write(Entry::Admin { at, change })
    }

    /// Revokes `value` (a token) from `now` (Unix nanoseconds) until `until` (`None`:
    /// until restored); `filter_bit` is the engine's filter bit for the value
    /// (`tollgate::engine::revocation_filter_bit`). The row is keyed by the value's
    /// fingerprint under the journal's revocation key; the value is kept only redacted.
    pub fn revoke(
        &mut self,
        value: &str,
        filter_bit: u16,
        until: Option<u64>,
        now: u64,
    ) -> Result<(), JournalError> {
        let record = RevocationRecord {
            fingerprint: self.key.fingerprint(value),
            key: crate::KeyRef::of(value),
            filter_bit: filter_bit.min(1023),
            until,
            automatic: false,
            revoked_at: now,
        };
        self.write(Entry::Revoked(record))
    }

    /// Restores `value`: its revocation row goes. Returns whether there was one.
    pub fn restore(&mut self, value: &str) -> Result<bool, JournalError> {
        let fingerprint = self.key.fingerprint(value);
        let had = self
            .revocations()?
            .iter()
            .any(|r| r.fingerprint == fingerprint);
        self.write(Entry::Unrevoked { fingerprint })?;
        Ok(had)
    }

    /// The revocation rows (values redacted), by fingerprint.
    pub fn revocations(&self) -> Result<Vec<RevocationRecord>, JournalError> {
        Ok(schema::read_revocations(&self.path, &self.conn)?.1)
    }

    /// The administrative changes, in order.
    pub fn admin_changes(&self) -> Result<Vec<AdminChangeRecord>, JournalError> {
        schema::read_admin_changes(&self.path, &self.conn)
    }
}

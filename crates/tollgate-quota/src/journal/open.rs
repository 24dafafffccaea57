//! Opening a journal file: the checks an existing file passes, read-only and without
//! modifying it, before it is opened for writing; then the connection's settings, the
//! schema and the snapshot.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::durability::Durability;
use super::entry::Snapshot;
use super::error::{refuse, sql_err, JournalError};
use super::schema::{
    init_schema, read_snapshot, tables_of, APPLICATION_ID, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION,
};

/// Pages the WAL grows to before a checkpoint.
const WAL_PAGES: u32 = 16;

/// The `file:` URI of `path`, percent-encoded, with `query` appended.
pub(super) fn file_uri(path: &Path, query: &str) -> Result<String, JournalError> {
    let abs = std::path::absolute(path).map_err(|source| JournalError::Io {
        path: path.to_owned(),
        context: "cannot resolve the path",
        source,
    })?;
    let Some(s) = abs.to_str() else {
        return Err(refuse(path, "the path is not valid UTF-8"));
    };
    let mut uri = String::from("file:");
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    Ok(uri)
}

pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

pub(super) fn shm_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

/// The identity of a file: its device and inode (on Unix; elsewhere only whether it
/// exists is known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
}

/// The identity of the file at `path` (following symbolic links, as SQLite does).
pub(super) fn file_id(path: &Path) -> io::Result<FileId> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(FileId { dev: 0, ino: 0 })
    }
}

/// Checks, without writing anything, that the existing file at `path` is a sound tollgate
/// journal (or an empty database to initialize).
fn check_existing(path: &Path) -> Result<(), JournalError> {
    let meta = std::fs::metadata(path).map_err(|source| JournalError::Io {
        path: path.to_owned(),
        context: "cannot inspect the file",
        source,
    })?;
    if !meta.is_file() {
        return Err(refuse(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    // The header, read by hand first: a file that is not SQLite at all never reaches
    // SQLite.
    let mut header = [0u8; 100];
    let n = File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut header))
        .map_err(|source| JournalError::Io {
            path: path.to_owned(),
            context: "cannot read the header",
            source,
        })?;
    if n < header.len() || &header[..16] != b"SQLite format 3\0" {
        return Err(refuse(path, "not an SQLite database (no SQLite header)"));
    }
    let header_app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if header_app_id != 0 && header_app_id != APPLICATION_ID {
        return Err(refuse(
            path,
            format!(
                "a foreign SQLite database (application_id {header_app_id:#010x}, \
                 a tollgate journal has {APPLICATION_ID:#010x})"
            ),
        ));
    }

    // Then SQLite, read-only. Without a WAL file, `immutable=1` reads the main file alone
    // and creates no side file; with one (after a crash), a read-only connection reads it.
    let query = if wal_path(path).exists() {
        "mode=ro"
    } else {
        "immutable=1"
    };
    let uri = file_uri(path, query)?;
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| refuse(path, format!("SQLite cannot open it read-only: {e}")))?;
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let describe = |e: rusqlite::Error| -> JournalError {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => refuse(path, format!("not an SQLite database: {e}")),
            Some(ErrorCode::DatabaseCorrupt) => refuse(path, format!("corrupted: {e}")),
            _ => refuse(path, format!("cannot be read: {e}")),
        }
    };
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(describe)?;
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(describe)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(describe)?;
    if app_id == 0 && version == 0 && objects == 0 {
        return Ok(()); // an empty database: initialize it
    }
    if app_id != APPLICATION_ID {
        return Err(refuse(
            path,
            format!(
                "a foreign SQLite database (application_id {app_id:#010x}, \
                 a tollgate journal has {APPLICATION_ID:#010x})"
            ),
        ));
    }
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&version) {
        return Err(refuse(
            path,
            format!(
                "schema version {version} is not supported (this build reads versions \
                 {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})"
            ),
        ));
    }
    let problems: Vec<String> = {
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(describe)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(describe)?;
        rows.collect::<Result<_, _>>().map_err(describe)?
    };
    if problems.len() != 1 || problems[0] != "ok" {
        let mut shown: Vec<&str> = problems.iter().map(String::as_str).take(3).collect();
        if problems.len() > 3 {
            shown.push("…");
        }
        return Err(refuse(
            path,
            format!("corrupted (quick_check: {})", shown.join("; ")),
        ));
    }
    for table in tables_of(version) {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(describe)?;
        if n != 1 {
            return Err(refuse(path, format!("the table {table:?} is missing")));
        }
    }
    Ok(())
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens the journal file at `path` for writing (after checking an existing one, see
/// [`check_existing`]): WAL mode, `PRAGMA synchronous` as `durability` asks, the schema
/// created if needed; returns the connection and a snapshot of what is committed.
pub(super) fn connect(
    path: &Path,
    durability: Durability,
) -> Result<(Connection, Snapshot), JournalError> {
    if path.exists() {
        check_existing(path)?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err(path, "cannot open"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql_err(path, "cannot set the busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql_err(path, "cannot switch to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(refuse(path, format!("cannot use WAL mode (got {mode:?})")));
    }
    let sync = match durability {
        Durability::Strict => "PRAGMA synchronous=FULL",
        Durability::BoundedLoss { .. } => "PRAGMA synchronous=NORMAL",
    };
    conn.execute_batch(sync)
        .map_err(sql_err(path, "cannot set PRAGMA synchronous"))?;
    // A small WAL: checkpoint every WAL_PAGES pages (SQLite's default is 1,000, 4 MB)
    // and truncate it back to 64 KB after each. Then the main file already holds every
    // page, a checkpoint on a full disk only overwrites pages in place, and the space
    // the WAL takes stays bounded: what lets a journal on a nearly full disk heal (a
    // failed batch checkpoints and truncates the WAL before its retry).
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint={WAL_PAGES}; PRAGMA journal_size_limit={};",
        WAL_PAGES * 4096
    ))
    .map_err(sql_err(path, "cannot set the WAL's size"))?;
    init_schema(path, &mut conn)?;
    let snapshot = read_snapshot(path, &conn)?;
    Ok((conn, snapshot))
}

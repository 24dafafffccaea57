//! The durable usage journal: usage deltas, notices and committed idempotency keys in one
//! SQLite file that survives restarts and crashes.
//!
//! [`Journal::append`] never blocks on I/O: it hands the [`Entry`] to a background writer
//! thread and returns a [`Ticket`] naming the batch the entry belongs to. The writer
//! applies each batch in one transaction. [`Journal::wait`] blocks until the batch holding a
//! ticket has committed. [`Journal::open`] returns, next to the journal, a [`Snapshot`] of
//! everything committed so far, from which the ledger restores its counters, notice flags
//! and idempotency sets.
//!
//! The ledger does not append an entry per call: its hot path only bumps atomic counters.
//! It installs a collector that the writer runs as it takes each batch, adding one usage
//! delta per user and period that changed since the previous batch. [`Journal::ticket`]
//! hands out, without a lock, a ticket covering every change the calling thread made
//! before, appended or collected.
//!
//! # Durability
//! * [`Durability::BoundedLoss`] (the default, `max_delay` 100 ms): the writer takes a
//!   batch at least every `max_delay` while there is work (pending entries, or a
//!   collector), with `PRAGMA synchronous=NORMAL`. If the process is killed, at most the
//!   changes of the last `max_delay` (plus the commit in flight) are lost; a power loss may
//!   also lose the last committed transactions (WAL with `synchronous=NORMAL` does not sync
//!   every commit).
//! * [`Durability::Strict`]: group commit with `PRAGMA synchronous=FULL`. The writer
//!   commits as soon as it has entries or a waiter, batching whatever accumulated
//!   meanwhile; once [`Journal::wait`] returns `Ok` for a ticket, everything it covers is
//!   on disk. Collected changes nobody waits for are committed every 100 ms.
//!
//! In both modes a [`Entry::Notice`], a [`Journal::wait`] and a [`Journal::flush`] make the
//! writer commit at once instead of waiting for `max_delay`; the caller raises a notice
//! only after `wait` acknowledged its entry (see [`Journal::append_durable`]), so a
//! notice is raised at most once per company, period and kind, across restarts too.
//!
//! Entries appended together with [`Journal::append_all`] always land in the same
//! transaction (for instance a commit's idempotency key and the settled usage).
//!
//! # Errors
//! I/O and SQLite errors never panic. If a batch fails to commit, the writer records the
//! error and stops; every later [`Journal::wait`], [`Journal::flush`] or
//! [`Journal::close`] returns [`JournalError::WriterFailed`]. Entries of the failed batch
//! and later ones are not journaled.
//!
//! # Opening an existing file
//! An existing file must be a tollgate journal: the SQLite header, `PRAGMA application_id`
//! ([`APPLICATION_ID`], `0x54474C51`, "TGLQ"), `PRAGMA user_version` ([`SCHEMA_VERSION`])
//! and `PRAGMA quick_check` are checked first over a read-only connection. A non-SQLite
//! file, a foreign SQLite database or a corrupted journal is refused with
//! [`JournalError::NotAJournal`], naming the path and the reason, and is never modified.
//! An empty file or an SQLite database without any table and without an application id
//! (for instance a journal whose creation was interrupted) is initialized.
//!
//! # Schema (version 1)
//! The file is in WAL mode; operators may read it with any SQLite tool while the service
//! runs (`sqlite3 -readonly usage.db`).
//!
//! ```sql
//! -- Calls per company, user and period. user = '' is the company total row: every
//! -- Usage entry adds to it, and an entry naming a user adds to that user's row too.
//! -- calls may decrease (refunds).
//! CREATE TABLE usage (
//!     company      TEXT    NOT NULL,
//!     user         TEXT    NOT NULL DEFAULT '',
//!     period_start INTEGER NOT NULL,           -- unix seconds, start of the period
//!     period       TEXT    NOT NULL,           -- label, e.g. '2026-11'
//!     calls        INTEGER NOT NULL DEFAULT 0,
//!     PRIMARY KEY (company, user, period_start)
//! );
//! -- Notices raised, at most one per company, period and kind.
//! CREATE TABLE notices (
//!     company   TEXT    NOT NULL,
//!     period    TEXT    NOT NULL,              -- label, e.g. '2026-11'
//!     kind      TEXT    NOT NULL CHECK (kind IN ('warning', 'overage')),
//!     raised_at INTEGER NOT NULL,              -- unix seconds
//!     PRIMARY KEY (company, period, kind)
//! );
//! -- Idempotency keys of committed reservations, per company and period.
//! CREATE TABLE commits (
//!     company         TEXT    NOT NULL,
//!     period_start    INTEGER NOT NULL,        -- unix seconds
//!     idempotency_key TEXT    NOT NULL,
//!     PRIMARY KEY (company, period_start, idempotency_key)
//! );
//! ```
//!
//! For example, this month's usage per company:
//! `SELECT company, calls FROM usage WHERE user = '' AND period = '2026-11' ORDER BY calls DESC;`

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OpenFlags};

/// `PRAGMA application_id` of a tollgate journal: "TGLQ".
pub const APPLICATION_ID: i32 = 0x5447_4C51;
/// `PRAGMA user_version` of the schema this build reads and writes.
pub const SCHEMA_VERSION: i32 = 1;

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
     ON CONFLICT (company, user, period_start) DO UPDATE SET calls = calls + excluded.calls";
const INSERT_NOTICE: &str =
    "INSERT OR IGNORE INTO notices (company, period, kind, raised_at) VALUES (?1, ?2, ?3, ?4)";
const INSERT_COMMIT: &str =
    "INSERT OR IGNORE INTO commits (company, period_start, idempotency_key) VALUES (?1, ?2, ?3)";
const SELECT_USAGE: &str = "SELECT company, user, period_start, period, calls FROM usage
     ORDER BY company, period_start, user";

/// How much acknowledged work a crash may lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Commit at least every `max_delay` while there is pending work
    /// (`synchronous=NORMAL`): a killed process loses at most the last `max_delay` of
    /// appended entries.
    BoundedLoss {
        /// The longest an appended entry waits before its transaction commits.
        max_delay: Duration,
    },
    /// Group commit with `synchronous=FULL`: commit as soon as there are entries;
    /// [`Journal::wait`] returns once the entry is on disk.
    Strict,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::BoundedLoss {
            max_delay: Duration::from_millis(100),
        }
    }
}

/// The kind of a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// The early warning.
    Warning,
    /// Usage went over the limit.
    Overage,
}

impl NoticeKind {
    /// The name stored in the `kind` column: `"warning"` or `"overage"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Warning => "warning",
            NoticeKind::Overage => "overage",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "warning" => Some(NoticeKind::Warning),
            "overage" => Some(NoticeKind::Overage),
            _ => None,
        }
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Calls counted (or refunded, if negative) in a period. Adds `calls` to the company
    /// total row and, if `user` is given, to that user's row, in the same transaction.
    Usage {
        /// The company.
        company: String,
        /// The user, if the calls are attributed to one.
        user: Option<String>,
        /// Start of the period, unix seconds.
        period_start: i64,
        /// The period's label, e.g. "2026-11".
        period: String,
        /// The delta; negative for refunds.
        calls: i64,
    },
    /// A notice was raised. Journaling the same company, period and kind again is a no-op.
    Notice {
        /// The company.
        company: String,
        /// The period's label.
        period: String,
        /// Which notice.
        kind: NoticeKind,
        /// When it was raised, unix seconds.
        raised_at: i64,
    },
    /// A reservation was committed under an idempotency key. Journaling the same key again
    /// is a no-op.
    Commit {
        /// The company.
        company: String,
        /// Start of the period, unix seconds.
        period_start: i64,
        /// The idempotency key.
        idempotency_key: String,
    },
}

/// A row of the `usage` table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageRecord {
    /// The company.
    pub company: String,
    /// The user, or `None` for the company total row.
    pub user: Option<String>,
    /// Start of the period, unix seconds.
    pub period_start: i64,
    /// The period's label.
    pub period: String,
    /// Calls in the period.
    pub calls: i64,
}

/// A row of the `notices` table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoticeRecord {
    /// The company.
    pub company: String,
    /// The period's label.
    pub period: String,
    /// Which notice.
    pub kind: NoticeKind,
    /// When it was raised, unix seconds.
    pub raised_at: i64,
}

/// A row of the `commits` table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitRecord {
    /// The company.
    pub company: String,
    /// Start of the period, unix seconds.
    pub period_start: i64,
    /// The idempotency key.
    pub idempotency_key: String,
}

/// Everything committed in the journal when it was opened, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// All usage rows (company totals have `user: None`).
    pub usage: Vec<UsageRecord>,
    /// All notices raised.
    pub notices: Vec<NoticeRecord>,
    /// All committed idempotency keys.
    pub commits: Vec<CommitRecord>,
}

impl Snapshot {
    /// The company total for `company` in the period starting at `period_start` (0 if
    /// absent).
    pub fn company_total(&self, company: &str, period_start: i64) -> i64 {
        self.usage
            .iter()
            .filter(|r| r.company == company && r.user.is_none() && r.period_start == period_start)
            .map(|r| r.calls)
            .sum()
    }
}

/// Names the batch an entry (or a collected change) belongs to, for [`Journal::wait`].
/// Tickets are ordered: waiting for one also covers every batch before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// What went wrong with a journal. Every variant names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// The file exists but is not a usable tollgate journal; it was left untouched.
    NotAJournal {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// An I/O error outside SQLite.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// An SQLite error.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The error.
        source: rusqlite::Error,
    },
    /// The writer thread failed to commit a batch earlier; nothing appended since has been
    /// journaled.
    WriterFailed {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        reason: String,
    },
    /// The writer thread is no longer running (the journal is closing).
    Closed {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::NotAJournal { path, reason } => write!(
                f,
                "refusing to open {} as a usage journal: {reason} (the file was not modified)",
                path.display()
            ),
            JournalError::Io {
                path,
                context,
                source,
            } => write!(f, "usage journal {}: {context}: {source}", path.display()),
            JournalError::Sqlite {
                path,
                context,
                source,
            } => write!(f, "usage journal {}: {context}: {source}", path.display()),
            JournalError::WriterFailed { path, reason } => write!(
                f,
                "usage journal {}: the writer failed, later entries are not journaled: {reason}",
                path.display()
            ),
            JournalError::Closed { path } => {
                write!(
                    f,
                    "usage journal {}: the writer has stopped",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            JournalError::Sqlite { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn sql_err(path: &Path, context: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    let path = path.to_owned();
    move |source| JournalError::Sqlite {
        path,
        context,
        source,
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> JournalError {
    JournalError::NotAJournal {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Adds the entries of state the journal's owner keeps itself (the ledger's counters) to
/// a batch. Runs on the writer thread, under the journal's lock, once per batch.
pub(crate) type Collector = Box<dyn FnMut(&mut Vec<Entry>) + Send>;

/// State shared by the callers and the writer thread.
struct State {
    /// Entries not yet taken by the writer, in order; they belong to batch `open`.
    pending: Vec<Entry>,
    /// When the oldest pending entry was appended.
    oldest: Option<Instant>,
    /// When the writer last took a batch.
    last_batch: Instant,
    /// The batch being filled: appends now get this ticket.
    open: u64,
    /// Every batch up to this one is committed.
    committed: u64,
    /// Commit at once up to this batch (notices, waits, flushes).
    urgent: u64,
    /// Set by close and drop: commit a last batch and stop.
    shutdown: bool,
    /// The writer's error, once it failed.
    failed: Option<String>,
    /// The writer thread has exited.
    writer_gone: bool,
    /// Collects the owner's changes into each batch.
    collector: Option<Collector>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("pending", &self.pending.len())
            .field("open", &self.open)
            .field("committed", &self.committed)
            .field("urgent", &self.urgent)
            .field("shutdown", &self.shutdown)
            .field("failed", &self.failed)
            .field("writer_gone", &self.writer_gone)
            .field("collector", &self.collector.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// `State::open`, readable without the lock (see [`Journal::ticket`]).
    open: AtomicU64,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes waiters after a commit or a failure.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How often a strict journal with a collector takes the collected changes nobody waits
/// for.
const STRICT_SWEEP: Duration = Duration::from_millis(100);

/// The usage journal: one SQLite file and its background writer thread.
///
/// `Journal` is `Send + Sync`: share it behind an `Arc`. Dropping it commits what is
/// pending (best effort) and stops the writer; [`Journal::close`] does the same and
/// reports errors.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl Journal {
    /// Opens the journal at `path`, creating it if absent, and returns it with a snapshot
    /// of its contents. An existing file that is not a tollgate journal, or is corrupted,
    /// is refused and left untouched.
    pub fn open(
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<(Journal, Snapshot), JournalError> {
        let path = path.as_ref().to_owned();
        if path.exists() {
            check_existing(&path)?;
        }
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(&path, "cannot open"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err(&path, "cannot set the busy timeout"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql_err(&path, "cannot switch to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(refuse(&path, format!("cannot use WAL mode (got {mode:?})")));
        }
        let sync = match durability {
            Durability::Strict => "PRAGMA synchronous=FULL",
            Durability::BoundedLoss { .. } => "PRAGMA synchronous=NORMAL",
        };
        conn.execute_batch(sync)
            .map_err(sql_err(&path, "cannot set PRAGMA synchronous"))?;
        init_schema(&path, &mut conn)?;
        let snapshot = read_snapshot(&path, &conn)?;

        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::new(),
                oldest: None,
                last_batch: Instant::now(),
                open: 1,
                committed: 0,
                urgent: 0,
                shutdown: false,
                failed: None,
                writer_gone: false,
                collector: None,
            }),
            open: AtomicU64::new(1),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            let writer_path = path.clone();
            std::thread::Builder::new()
                .name("tollgate-journal".into())
                .spawn(move || writer_main(conn, &writer_path, durability, &shared))
                .map_err(|source| JournalError::Io {
                    path: path.clone(),
                    context: "cannot start the writer thread",
                    source,
                })?
        };
        Ok((
            Journal {
                path,
                shared,
                writer: Some(writer),
            },
            snapshot,
        ))
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands `entry` to the writer without waiting for I/O. A [`Entry::Notice`] makes the
    /// writer commit at once.
    pub fn append(&self, entry: Entry) -> Ticket {
        self.append_all(std::iter::once(entry))
    }

    /// Hands several entries to the writer; they are committed in the same transaction.
    /// The ticket covers all of them.
    pub fn append_all(&self, entries: impl IntoIterator<Item = Entry>) -> Ticket {
        self.append_with(entries, || ()).0
    }

    /// Appends `entries` and runs `f` under the journal's lock, so that the entries and
    /// whatever `f` changes in collected state land in the same batch.
    pub(crate) fn append_with<R>(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        f: impl FnOnce() -> R,
    ) -> (Ticket, R) {
        let mut st = self.shared.lock();
        // Once the writer failed, nothing more is journaled: hand out tickets (their
        // waits report the failure) but do not hold on to the entries.
        let keep = st.failed.is_none() && !st.writer_gone;
        let mut urgent = false;
        for entry in entries {
            urgent |= matches!(entry, Entry::Notice { .. });
            if keep {
                st.pending.push(entry);
            }
        }
        if st.oldest.is_none() && !st.pending.is_empty() {
            st.oldest = Some(Instant::now());
        }
        let r = f();
        let ticket = Ticket(st.open);
        if urgent {
            st.urgent = st.open;
        }
        drop(st);
        self.shared.work.notify_one();
        (ticket, r)
    }

    /// Installs the collector that adds the owner's changes to every batch.
    pub(crate) fn set_collector(&self, collector: Collector) {
        self.shared.lock().collector = Some(collector);
    }

    /// A ticket covering everything the calling thread did before: entries it appended
    /// and changes to state a collector journals (the ledger's counters). Takes no lock.
    pub fn ticket(&self) -> Ticket {
        // Pairs with the fence in `take_batch`: either the writer bumped `open` before
        // this fence (then this load sees the bump, and the ticket names a later batch),
        // or the writer's collection runs after this fence and sees every change this
        // thread made before it, in batch `open`.
        fence(Ordering::SeqCst);
        Ticket(self.shared.open.load(Ordering::Relaxed))
    }

    /// Appends `entry` and waits until it is committed: use it for notices, and raise the
    /// notice only after this returns `Ok`.
    pub fn append_durable(&self, entry: Entry) -> Result<(), JournalError> {
        let t = self.append(entry);
        self.wait(t)
    }

    /// Blocks until the batch holding `ticket` (and every batch before it) has committed,
    /// asking the writer to commit at once. In [`Durability::Strict`] mode the entries are
    /// then on disk; in bounded-loss mode they survive a killed process.
    pub fn wait(&self, ticket: Ticket) -> Result<(), JournalError> {
        let mut st = self.shared.lock();
        // A ticket this journal never issued (from another journal) waits for the open
        // batch instead of forever.
        let ticket = Ticket(ticket.0.min(st.open));
        if st.committed >= ticket.0 {
            return Ok(());
        }
        if st.urgent < ticket.0 {
            st.urgent = ticket.0;
            self.shared.work.notify_one();
        }
        loop {
            if st.committed >= ticket.0 {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(JournalError::WriterFailed {
                    path: self.path.clone(),
                    reason: reason.clone(),
                });
            }
            if st.writer_gone {
                return Err(JournalError::Closed {
                    path: self.path.clone(),
                });
            }
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Commits everything appended (and collected) so far and waits for it.
    pub fn flush(&self) -> Result<(), JournalError> {
        let open = Ticket(self.shared.lock().open);
        self.wait(open)?;
        // Report a failure even if nothing was pending.
        match &self.shared.lock().failed {
            Some(reason) => Err(JournalError::WriterFailed {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The `usage` table as committed now, read over a separate read-only connection.
    pub fn usage_report(&self) -> Result<Vec<UsageRecord>, JournalError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(&self.path, "cannot open for reading"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err(&self.path, "cannot set the busy timeout"))?;
        read_usage(&self.path, &conn)
    }

    /// Commits what is pending, stops the writer and closes the file.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), JournalError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        self.shared.lock().shutdown = true;
        self.shared.work.notify_one();
        let joined = writer.join();
        let st = self.shared.lock();
        if let Some(reason) = &st.failed {
            return Err(JournalError::WriterFailed {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        if joined.is_err() || st.committed + 1 < st.open {
            return Err(JournalError::WriterFailed {
                path: self.path.clone(),
                reason: "the writer thread stopped before committing everything".into(),
            });
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Marks the writer gone and wakes the waiters, however the writer exits.
struct WriterGuard<'a>(&'a Shared);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().writer_gone = true;
        self.0.done.notify_all();
    }
}

fn writer_main(mut conn: Connection, path: &Path, durability: Durability, shared: &Shared) {
    let _guard = WriterGuard(shared);
    loop {
        let (batch, number, last) = take_batch(shared, durability);
        let result = if batch.is_empty() {
            Ok(())
        } else {
            apply(&mut conn, &batch)
        };
        let mut st = shared.lock();
        match result {
            Ok(()) => st.committed = number,
            Err(e) => {
                st.failed = Some(format!(
                    "{}: cannot commit {} entries: {e}",
                    path.display(),
                    batch.len()
                ));
            }
        }
        let failed = st.failed.is_some();
        drop(st);
        shared.done.notify_all();
        if failed || last {
            return;
        }
    }
}

/// Waits until a batch is due, then takes it: the pending entries plus what the collector
/// adds. Returns the batch, its number and whether it is the last one (shutdown).
fn take_batch(shared: &Shared, durability: Durability) -> (Vec<Entry>, u64, bool) {
    let mut st = shared.lock();
    loop {
        if st.shutdown || st.urgent >= st.open {
            break;
        }
        // When is the next batch due, if nobody asks for one?
        let due = match durability {
            Durability::Strict if !st.pending.is_empty() => break,
            Durability::Strict => st.collector.is_some().then(|| st.last_batch + STRICT_SWEEP),
            Durability::BoundedLoss { max_delay } => {
                let entries = st.oldest.map(|t| t + max_delay);
                let collected = st.collector.is_some().then(|| st.last_batch + max_delay);
                entries.into_iter().chain(collected).min()
            }
        };
        st = match due {
            None => shared.work.wait(st).unwrap_or_else(PoisonError::into_inner),
            Some(due) => {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                shared
                    .work
                    .wait_timeout(st, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
    let number = st.open;
    st.open += 1;
    shared.open.store(st.open, Ordering::Relaxed);
    // Pairs with the fence in `Journal::ticket`.
    fence(Ordering::SeqCst);
    let mut batch = std::mem::take(&mut st.pending);
    if let Some(collect) = st.collector.as_mut() {
        collect(&mut batch);
    }
    st.oldest = None;
    st.last_batch = Instant::now();
    (batch, number, st.shutdown)
}

fn apply(conn: &mut Connection, batch: &[Entry]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut usage = tx.prepare(UPSERT_USAGE)?;
        let mut notice = tx.prepare(INSERT_NOTICE)?;
        let mut commit = tx.prepare(INSERT_COMMIT)?;
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
                    company,
                    period,
                    kind,
                    raised_at,
                } => {
                    notice.execute(params![company, period, kind.as_str(), raised_at])?;
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

/// The `file:` URI of `path`, percent-encoded, with `query` appended.
fn file_uri(path: &Path, query: &str) -> Result<String, JournalError> {
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

fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
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
    if version != SCHEMA_VERSION {
        return Err(refuse(
            path,
            format!(
                "schema version {version} is not supported (this build reads version \
                 {SCHEMA_VERSION})"
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
    for table in ["usage", "notices", "commits"] {
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

fn init_schema(path: &Path, conn: &mut Connection) -> Result<(), JournalError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err(path, "cannot start the schema transaction"))?;
    let app_id: i32 = tx
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql_err(path, "cannot read application_id"))?;
    if app_id == APPLICATION_ID {
        return Ok(()); // checked by check_existing; the transaction rolls back
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
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(sql_err(path, "cannot set application_id and user_version"))?;
    tx.commit()
        .map_err(sql_err(path, "cannot commit the schema"))
}

fn read_usage(path: &Path, conn: &Connection) -> Result<Vec<UsageRecord>, JournalError> {
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

fn read_snapshot(path: &Path, conn: &Connection) -> Result<Snapshot, JournalError> {
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
    Ok(Snapshot {
        usage,
        notices,
        commits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(company: &str, user: Option<&str>, start: i64, calls: i64) -> Entry {
        Entry::Usage {
            company: company.into(),
            user: user.map(Into::into),
            period_start: start,
            period: "2026-11".into(),
            calls,
        }
    }

    fn notice(company: &str, kind: NoticeKind, at: i64) -> Entry {
        Entry::Notice {
            company: company.into(),
            period: "2026-11".into(),
            kind,
            raised_at: at,
        }
    }

    fn commit(company: &str, key: &str) -> Entry {
        Entry::Commit {
            company: company.into(),
            period_start: NOV,
            idempotency_key: key.into(),
        }
    }

    fn rec(company: &str, user: Option<&str>, calls: i64) -> UsageRecord {
        UsageRecord {
            company: company.into(),
            user: user.map(Into::into),
            period_start: NOV,
            period: "2026-11".into(),
            calls,
        }
    }

    const NOV: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z

    fn strict() -> Durability {
        Durability::Strict
    }

    /// Rows of `table` seen by a separate read-only connection.
    fn count_rows(path: &Path, table: &str) -> i64 {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn journal_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Journal>();
        assert_send_sync::<JournalError>();
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let (j, snap) = Journal::open(&path, Durability::default()).unwrap();
        assert_eq!(snap, Snapshot::default());
        j.append(usage("acme", Some("ann"), NOV, 3));
        j.append(usage("acme", Some("bob"), NOV, 2));
        j.append(usage("acme", None, NOV, 1));
        j.append(usage("zeta", Some("zed"), NOV, 7));
        j.append(notice("acme", NoticeKind::Warning, NOV + 60));
        j.append(commit("acme", "req-1"));
        j.close().unwrap();
        assert!(
            !wal_path(&path).exists(),
            "a clean close checkpoints the WAL"
        );

        let (j, snap) = Journal::open(&path, Durability::Strict).unwrap();
        assert_eq!(
            snap.usage,
            vec![
                rec("acme", None, 6),
                rec("acme", Some("ann"), 3),
                rec("acme", Some("bob"), 2),
                rec("zeta", None, 7),
                rec("zeta", Some("zed"), 7),
            ]
        );
        assert_eq!(snap.company_total("acme", NOV), 6);
        assert_eq!(
            snap.notices,
            vec![NoticeRecord {
                company: "acme".into(),
                period: "2026-11".into(),
                kind: NoticeKind::Warning,
                raised_at: NOV + 60,
            }]
        );
        assert_eq!(
            snap.commits,
            vec![CommitRecord {
                company: "acme".into(),
                period_start: NOV,
                idempotency_key: "req-1".into(),
            }]
        );
        assert_eq!(j.usage_report().unwrap(), snap.usage);
        drop(j);
        // Reopening again gives the same snapshot.
        let (_j, again) = Journal::open(&path, Durability::Strict).unwrap();
        assert_eq!(again, snap);
    }

    #[test]
    fn negative_deltas_refund() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let (j, _) = Journal::open(&path, strict()).unwrap();
        j.append(usage("acme", Some("ann"), NOV, 10));
        j.append(usage("acme", Some("ann"), NOV, -4));
        j.append(usage("acme", None, NOV, -1));
        j.close().unwrap();
        let (_j, snap) = Journal::open(&path, strict()).unwrap();
        assert_eq!(
            snap.usage,
            vec![rec("acme", None, 5), rec("acme", Some("ann"), 6)]
        );
    }

    #[test]
    fn notices_and_commits_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        for round in 0..2 {
            let (j, snap) = Journal::open(&path, strict()).unwrap();
            if round == 1 {
                assert_eq!(snap.notices.len(), 2);
                assert_eq!(snap.commits.len(), 2);
            }
            j.append_durable(notice("acme", NoticeKind::Warning, NOV + 1))
                .unwrap();
            j.append_durable(notice("acme", NoticeKind::Warning, NOV + 2))
                .unwrap();
            j.append_durable(notice("acme", NoticeKind::Overage, NOV + 3))
                .unwrap();
            j.append(commit("acme", "k1"));
            j.append(commit("acme", "k1"));
            j.append(commit("acme", "k2"));
            j.close().unwrap();
        }
        let (_j, snap) = Journal::open(&path, strict()).unwrap();
        let kinds: Vec<_> = snap.notices.iter().map(|n| (n.kind, n.raised_at)).collect();
        // The first notice of each kind is kept, with its time.
        assert_eq!(
            kinds,
            vec![
                (NoticeKind::Warning, NOV + 1),
                (NoticeKind::Overage, NOV + 3)
            ]
        );
        let keys: Vec<_> = snap
            .commits
            .iter()
            .map(|c| c.idempotency_key.as_str())
            .collect();
        assert_eq!(keys, vec!["k1", "k2"]);
    }

    #[test]
    fn append_all_and_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        // A long delay: only flush commits.
        let (j, _) = Journal::open(
            &path,
            Durability::BoundedLoss {
                max_delay: Duration::from_secs(60),
            },
        )
        .unwrap();
        for i in 0..500 {
            j.append_all([
                usage("acme", Some("ann"), NOV, 1),
                commit("acme", &format!("req-{i}")),
            ]);
        }
        j.flush().unwrap();
        assert_eq!(count_rows(&path, "commits"), 500);
        assert_eq!(j.usage_report().unwrap()[0], rec("acme", None, 500));
        j.flush().unwrap(); // nothing pending
    }

    #[test]
    fn bounded_loss_commits_within_the_delay_without_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let delay = Duration::from_millis(50);
        let (j, _) = Journal::open(&path, Durability::BoundedLoss { max_delay: delay }).unwrap();
        j.append(usage("acme", Some("ann"), NOV, 1));
        j.append(commit("acme", "k"));
        std::thread::sleep(delay * 3);
        // Seen by another connection, while the journal is open, with no flush or wait.
        // (A loaded machine gets some slack before failing.)
        let give_up = Instant::now() + Duration::from_secs(5);
        while count_rows(&path, "commits") == 0 && Instant::now() < give_up {
            std::thread::sleep(delay);
        }
        assert_eq!(count_rows(&path, "commits"), 1);
        assert_eq!(count_rows(&path, "usage"), 2);
        drop(j);
    }

    #[test]
    fn wait_guarantees_visibility() {
        let dir = tempfile::tempdir().unwrap();
        for (name, durability) in [
            ("strict.db", Durability::Strict),
            (
                "bounded.db",
                Durability::BoundedLoss {
                    max_delay: Duration::from_secs(60),
                },
            ),
        ] {
            let path = dir.path().join(name);
            let (j, _) = Journal::open(&path, durability).unwrap();
            let j = Arc::new(j);
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let j = Arc::clone(&j);
                    std::thread::spawn(move || {
                        for i in 0..50 {
                            let key = format!("t{t}-{i}");
                            let ticket = j.append(commit("acme", &key));
                            j.wait(ticket).unwrap();
                            let conn = Connection::open_with_flags(
                                j.path(),
                                OpenFlags::SQLITE_OPEN_READ_ONLY,
                            )
                            .unwrap();
                            let n: i64 = conn
                                .query_row(
                                    "SELECT count(*) FROM commits WHERE idempotency_key = ?1",
                                    [&key],
                                    |r| r.get(0),
                                )
                                .unwrap();
                            assert_eq!(n, 1, "{name}: {key} not visible after wait");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(count_rows(&path, "commits"), 200);
        }
    }

    #[test]
    fn drop_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let (j, _) = Journal::open(
            &path,
            Durability::BoundedLoss {
                max_delay: Duration::from_secs(60),
            },
        )
        .unwrap();
        j.append(usage("acme", None, NOV, 42));
        drop(j);
        let (_j, snap) = Journal::open(&path, strict()).unwrap();
        assert_eq!(snap.company_total("acme", NOV), 42);
    }

    #[test]
    fn writer_failure_is_reported_to_later_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let (j, _) = Journal::open(&path, strict()).unwrap();
        j.append_durable(usage("acme", None, NOV, 1)).unwrap();
        // Someone breaks the schema under the running journal.
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE usage")
            .unwrap();
        let t = j.append(usage("acme", None, NOV, 1));
        let err = j.wait(t).unwrap_err();
        assert!(matches!(err, JournalError::WriterFailed { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("no such table"), "{msg}");
        // Later calls report it too, and nothing panics.
        let t = j.append(commit("acme", "k"));
        assert!(matches!(j.wait(t), Err(JournalError::WriterFailed { .. })));
        assert!(j.flush().is_err());
        assert!(matches!(j.close(), Err(JournalError::WriterFailed { .. })));
    }

    #[test]
    fn empty_file_is_initialized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        std::fs::write(&path, b"").unwrap();
        let (j, snap) = Journal::open(&path, strict()).unwrap();
        assert_eq!(snap, Snapshot::default());
        j.append_durable(usage("acme", None, NOV, 1)).unwrap();
    }

    /// Opens `path`, expects a refusal naming the path, and checks that nothing changed
    /// on disk: the file's bytes, and no side file created.
    fn assert_refused(path: &Path, expect: &str) {
        let before = std::fs::read(path).unwrap();
        let dir = path.parent().unwrap();
        let listing = || {
            let mut v: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let files_before = listing();
        let err = Journal::open(path, strict()).unwrap_err();
        let msg = err.to_string();
        eprintln!("refused: {msg}");
        assert!(
            matches!(err, JournalError::NotAJournal { .. }),
            "unexpected error: {msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(expect), "{msg:?} should mention {expect:?}");
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "the file was modified"
        );
        assert_eq!(listing(), files_before, "side files were created");
    }

    /// A closed journal with enough rows to span many pages.
    fn real_journal(path: &Path) {
        let (j, _) = Journal::open(path, strict()).unwrap();
        for i in 0..3000 {
            j.append(usage("acme", Some(&format!("user-{i:05}")), NOV, i));
        }
        j.close().unwrap();
        assert!(!wal_path(path).exists());
    }

    #[test]
    fn refuses_a_text_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "these are my notes, not a database\n".repeat(20)).unwrap();
        assert_refused(&path, "not an SQLite database");
        // A short file too.
        std::fs::write(&path, "hi").unwrap();
        assert_refused(&path, "not an SQLite database");
    }

    #[test]
    fn refuses_a_foreign_sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
                 INSERT INTO accounts (name) VALUES ('alice'), ('bob');",
            )
            .unwrap();
        }
        assert_refused(&path, "foreign SQLite database");

        // Another application's id, in WAL mode.
        let path = dir.path().join("other-app.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA application_id = 1234;
                 CREATE TABLE usage (x);",
            )
            .unwrap();
        }
        assert_refused(&path, "foreign SQLite database");
    }

    #[test]
    fn refuses_an_unknown_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        real_journal(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA user_version = 2").unwrap();
        }
        assert_refused(&path, "schema version 2");
    }

    #[test]
    fn refuses_a_corrupted_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        real_journal(&path);
        let good = std::fs::read(&path).unwrap();
        let page = 4096;
        let pages = good.len() / page;
        assert!(pages > 20);
        // Garbage in the middle of one page holding rows, then across a page boundary.
        let mid = pages / 2 * page;
        for range in [mid + 1500..mid + 2500, mid - 1000..mid + 1000] {
            let mut bytes = good.clone();
            for b in &mut bytes[range] {
                *b = 0xA5;
            }
            std::fs::write(&path, &bytes).unwrap();
            assert_refused(&path, "corrupted");
        }
    }

    #[test]
    fn refuses_a_truncated_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        real_journal(&path);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert_refused(&path, "corrupted");
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = Journal::open(dir.path(), strict()).unwrap_err();
        assert!(matches!(err, JournalError::NotAJournal { .. }), "{err}");
    }

    #[test]
    fn file_uri_escapes() {
        let uri = file_uri(Path::new("/tmp/a b?c#d%e.db"), "mode=ro").unwrap();
        assert_eq!(uri, "file:/tmp/a%20b%3Fc%23d%25e.db?mode=ro");
    }
}

//! The batch writer: the state callers and the writer thread share, and the thread that
//! takes each batch when it is due (with what the collector adds), checks that the file
//! at the path is still the one it writes, commits the batch in one transaction, and on
//! a failure keeps everything and retries with backoff.
//!
//! # Failures
//! A batch that fails to commit (a full disk, an I/O error, a locked or broken file) is
//! not dropped: the writer carries it ([`Carry`]) into the next attempt, merged with what
//! was appended and collected meanwhile, and retries after a backoff of 10 ms doubling to
//! 1 s ([`INITIAL_BACKOFF`], [`MAX_BACKOFF`]). The collected usage deltas are merged per
//! company, user and period, so what a failing journal carries is bounded by the number
//! of users and periods, not by the time it fails; appended entries (notices, committed
//! idempotency keys) are bounded by `max_pending` (see [`Journal::set_max_pending`](super::Journal::set_max_pending)).
//! Nothing is acknowledged until the batch holding it commits.
//!
//! # The file's identity
//! Before and after every commit the writer compares the device and inode of the file
//! at the path with those of the file it opened. A file deleted or moved away is
//! re-created at the path (exclusively: a file put there meanwhile is never
//! overwritten) and written with the owner's full current state (the ledger's counters,
//! notices and committed keys), so that a restart is exact; a journal without an owner
//! refuses instead. A file replaced by another one is never written: the writer closes
//! its connection (so its WAL does not end up beside the other file) and fails every
//! batch, saying so, until the path is free again.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;

use super::durability::Durability;
use super::entry::Entry;
use super::health::{HealthChange, JournalHealth, JournalState};
use super::open::{connect, file_id, shm_path, wal_path, FileId};
use super::schema::apply;

/// Adds the entries of state the journal's owner keeps itself (the ledger's counters) to
/// a batch. Runs on the writer thread, under the journal's lock, once per batch.
pub(crate) type Collector = Box<dyn FnMut(&mut Vec<Entry>) + Send>;

/// What the owner's [`StateSource`] is asked to write again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refill {
    /// Every notice raised and every committed idempotency key (appended entries were
    /// dropped at the pending bound; inserting them again is a no-op for those kept).
    Appended,
    /// Everything, into a re-created empty file: the above, and every usage counter in
    /// full (the owner resets what its collector considers journaled).
    Everything,
}

/// Writes the owner's state again (see [`Refill`]). Runs on the writer thread, under the
/// journal's lock.
pub(crate) type StateSource = Box<dyn FnMut(Refill, &mut Vec<Entry>) + Send>;

/// Told the number of every batch that committed, on the writer thread, without the
/// journal's lock.
pub(crate) type CommitHook = Box<dyn FnMut(u64) + Send>;

/// Told every [`HealthChange`], on the writer thread, without the journal's lock.
pub(crate) type HealthListener = Box<dyn Fn(&HealthChange) + Send + Sync>;

/// The first wait after a failed batch.
pub(super) const INITIAL_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait between two attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Appended entries kept while they wait to be committed, by default (about 100 bytes
/// each: some 6.5 MB).
pub(super) const DEFAULT_MAX_PENDING: usize = 65_536;

/// The writer's record of its health, kept under the journal's lock.
#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) consecutive_failures: u64,
    pub(super) total_failures: u64,
    pub(super) last_error: Option<String>,
    pub(super) last_success: Option<SystemTime>,
    pub(super) failing_since: Option<SystemTime>,
    pub(super) dropped_entries: u64,
    pub(super) recreated: u64,
}

/// State shared by the callers and the writer thread.
pub(super) struct State {
    /// Entries not yet taken by the writer, in order; they belong to batch `open`.
    pub(super) pending: Vec<Entry>,
    /// When the oldest pending entry was appended.
    pub(super) oldest: Option<Instant>,
    /// When the writer last took a batch.
    pub(super) last_batch: Instant,
    /// The batch being filled: appends now get this ticket.
    pub(super) open: u64,
    /// Every batch up to this one is committed.
    pub(super) committed: u64,
    /// Commit at once up to this batch (notices, waits, flushes).
    pub(super) urgent: u64,
    /// Set by close and drop: commit a last batch and stop.
    pub(super) shutdown: bool,
    /// The writer's error, once it stopped without committing everything (its last
    /// batch, at shutdown, failed).
    pub(super) failed: Option<String>,
    /// The writer thread has exited.
    pub(super) writer_gone: bool,
    /// Collects the owner's changes into each batch.
    pub(super) collector: Option<Collector>,
    /// Writes the owner's state again after a drop or into a re-created file.
    pub(super) source: Option<StateSource>,
    /// Health counters.
    pub(super) health: Health,
    /// Appended entries the writer carries from failed batches.
    pub(super) carried_appended: usize,
    /// Collected entries the writer carries from failed batches.
    pub(super) carried_owned: usize,
    /// The most appended entries kept waiting (pending plus carried).
    pub(super) max_pending: usize,
    /// Appended entries were dropped at the bound: the next batch asks the source to
    /// write them again.
    pub(super) refill: bool,
    /// The first batch that lost an appended entry no source can write again: a wait
    /// covering it fails.
    pub(super) lost_from: Option<u64>,
    /// While failing: no attempt before this instant (the backoff).
    pub(super) retry_at: Option<Instant>,
}

impl State {
    /// The health snapshot.
    pub(super) fn health(&self) -> JournalHealth {
        let h = &self.health;
        JournalHealth {
            state: if h.consecutive_failures > 0 {
                JournalState::Failing
            } else {
                JournalState::Ok
            },
            consecutive_failures: h.consecutive_failures,
            total_failures: h.total_failures,
            last_error: h.last_error.clone(),
            last_success: h.last_success,
            failing_since: h.failing_since,
            pending_entries: (self.pending.len() + self.carried_appended + self.carried_owned)
                as u64,
            dropped_entries: h.dropped_entries,
            recreated: h.recreated,
        }
    }

    /// Whether the last batch failed.
    pub(super) fn failing(&self) -> bool {
        self.health.consecutive_failures > 0
    }
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
            .field("source", &self.source.is_some())
            .field("health", &self.health)
            .finish()
    }
}

/// Hooks called by the writer thread outside the journal's lock.
#[derive(Default)]
pub(super) struct Hooks {
    pub(super) on_commit: Option<CommitHook>,
    pub(super) on_health: Vec<HealthListener>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_commit", &self.on_commit.is_some())
            .field("on_health", &self.on_health.len())
            .finish()
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// `State::open`, readable without the lock (see [`Journal::ticket`](super::Journal::ticket)).
    pub(super) open: AtomicU64,
    /// Wakes the writer.
    pub(super) work: Condvar,
    /// Wakes waiters after a commit or a failure.
    pub(super) done: Condvar,
    /// Hooks run by the writer after a commit or a change of health.
    pub(super) hooks: Mutex<Hooks>,
    /// When the journal was opened: the origin of `failing_since_ns`.
    pub(super) base: Instant,
    /// While failing, nanoseconds from `base` to the first failure, plus one; 0 when
    /// ok. Read without the lock by [`Journal::failing_for`](super::Journal::failing_for).
    pub(super) failing_since_ns: AtomicU64,
    /// The last batch committed (`State::committed`), stored before the commit hook runs
    /// and read without the lock by [`Journal::is_committed`](super::Journal::is_committed),
    /// so an owner may check it while holding a lock its state source also takes.
    pub(super) committed: AtomicU64,
}

impl Shared {
    /// The state of a journal just opened: nothing pending, batch 1 open.
    pub(super) fn new() -> Self {
        Shared {
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
                source: None,
                health: Health::default(),
                carried_appended: 0,
                carried_owned: 0,
                max_pending: DEFAULT_MAX_PENDING,
                refill: false,
                lost_from: None,
                retry_at: None,
            }),
            open: AtomicU64::new(1),
            work: Condvar::new(),
            done: Condvar::new(),
            hooks: Mutex::new(Hooks::default()),
            base: Instant::now(),
            failing_since_ns: AtomicU64::new(0),
            committed: AtomicU64::new(0),
        }
    }

    /// The state, locked (a poisoned lock is taken over).
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hooks, locked (a poisoned lock is taken over).
    pub(super) fn hooks(&self) -> MutexGuard<'_, Hooks> {
        self.hooks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How often a strict journal with a collector takes the collected changes nobody waits
/// for.
const STRICT_SWEEP: Duration = Duration::from_millis(100);

/// Marks the writer gone and wakes the waiters, however the writer exits.
struct WriterGuard<'a>(&'a Shared);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().writer_gone = true;
        self.0.done.notify_all();
    }
}

/// What failed batches left to write: appended entries in order, and the owner's
/// entries (collected usage merged per company, user and period; refilled notices and
/// keys).
#[derive(Debug, Default)]
struct Carry {
    appended: Vec<Entry>,
    owned: Vec<Entry>,
    /// Index in `owned` of the usage entry of (company, user, period start).
    usage: HashMap<(String, Option<String>, i64), usize>,
}

impl Carry {
    fn is_empty(&self) -> bool {
        self.appended.is_empty() && self.owned.is_empty()
    }

    fn clear(&mut self) {
        self.appended.clear();
        self.clear_owned();
    }

    fn clear_owned(&mut self) {
        self.owned.clear();
        self.usage.clear();
    }

    /// Adds the owner's entries, merging usage deltas of the same row.
    fn add_owned(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if let Entry::Usage {
                company,
                user,
                period_start,
                calls,
                ..
            } = &entry
            {
                let key = (company.clone(), user.clone(), *period_start);
                if let Some(&i) = self.usage.get(&key) {
                    if let Some(Entry::Usage { calls: sum, .. }) = self.owned.get_mut(i) {
                        if let Some(merged) = sum.checked_add(*calls) {
                            *sum = merged;
                            continue;
                        }
                    }
                }
                self.usage.insert(key, self.owned.len());
            }
            self.owned.push(entry);
        }
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.appended.iter().chain(self.owned.iter())
    }

    fn len(&self) -> usize {
        self.appended.len() + self.owned.len()
    }
}

/// What the file at the path is, compared with the one the writer opened.
enum Identity {
    Same,
    Missing,
    Replaced(String),
    Unknown(String),
}

struct Writer<'a> {
    conn: Option<Connection>,
    id: FileId,
    /// The identity of our WAL file, once seen after a commit.
    wal: Option<FileId>,
    path: &'a Path,
    durability: Durability,
    shared: &'a Shared,
    carry: Carry,
    backoff: Duration,
}

pub(super) fn writer_main(
    conn: Connection,
    id: FileId,
    path: &Path,
    durability: Durability,
    shared: &Shared,
) {
    let _guard = WriterGuard(shared);
    let mut w = Writer {
        conn: Some(conn),
        id,
        wal: None,
        path,
        durability,
        shared,
        carry: Carry::default(),
        backoff: INITIAL_BACKOFF,
    };
    loop {
        let batch = take_batch(shared, durability);
        w.carry.appended.extend(batch.appended);
        w.carry.add_owned(batch.owned);
        let result = w.attempt();
        let mut st = shared.lock();
        let now = SystemTime::now();
        let change = match result {
            Ok(()) => {
                st.committed = batch.number;
                shared.committed.store(batch.number, Ordering::Release);
                let was_failing = st.failing();
                st.health.consecutive_failures = 0;
                st.health.last_success = Some(now);
                st.health.failing_since = None;
                st.retry_at = None;
                shared.failing_since_ns.store(0, Ordering::Relaxed);
                w.carry.clear();
                w.backoff = INITIAL_BACKOFF;
                st.carried_appended = 0;
                st.carried_owned = 0;
                was_failing.then(|| HealthChange::Recovered(st.health()))
            }
            Err(reason) => {
                st.health.consecutive_failures += 1;
                st.health.total_failures += 1;
                st.health.last_error = Some(reason.clone());
                st.carried_appended = w.carry.appended.len();
                st.carried_owned = w.carry.len() - w.carry.appended.len();
                st.retry_at = Some(Instant::now() + w.backoff);
                w.backoff = (w.backoff * 2).min(MAX_BACKOFF);
                if batch.last {
                    st.failed = Some(reason);
                }
                if st.health.consecutive_failures == 1 {
                    st.health.failing_since = Some(now);
                    let since = u64::try_from(shared.base.elapsed().as_nanos())
                        .unwrap_or(u64::MAX - 1)
                        .saturating_add(1);
                    shared.failing_since_ns.store(since, Ordering::Relaxed);
                    Some(HealthChange::Failing(st.health()))
                } else {
                    None
                }
            }
        };
        let committed = st.failed.is_none() && st.health.consecutive_failures == 0;
        drop(st);
        shared.done.notify_all();
        {
            let mut hooks = shared.hooks();
            if committed {
                if let Some(hook) = hooks.on_commit.as_mut() {
                    hook(batch.number);
                }
            }
            if let Some(change) = &change {
                for listener in &hooks.on_health {
                    listener(change);
                }
            }
        }
        if batch.last {
            return;
        }
    }
}

impl Writer<'_> {
    /// Commits the carried entries into the file at the path, if it is still the one
    /// opened (re-creating it first if it is gone). `Err` names the file and what went
    /// wrong; nothing is acknowledged then.
    fn attempt(&mut self) -> Result<(), String> {
        let path = self.path.display();
        match self.identity() {
            Identity::Same if self.conn.is_some() => {}
            Identity::Same => return Err(format!("{path}: the journal is not open")),
            Identity::Missing => {
                self.conn = None;
                self.recreate()?;
            }
            Identity::Replaced(why) => {
                self.detach();
                return Err(why);
            }
            Identity::Unknown(why) => return Err(why),
        }
        if self.carry.is_empty() {
            return Ok(());
        }
        let n = self.carry.len();
        let Some(conn) = self.conn.as_mut() else {
            return Err(format!("{path}: the journal is not open"));
        };
        if let Err(e) = apply(conn, self.carry.entries()) {
            // A full disk is often the WAL itself (it only shrinks at a checkpoint that
            // truncates it): move its pages into the main file, truncate it and try once
            // more at once. A checkpoint that cannot finish (no room for the main file
            // to grow, or a reader holding it) leaves the failure to the backoff.
            let truncated = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                })
                .is_ok_and(|busy| busy == 0);
            if !truncated {
                return Err(format!("{path}: cannot commit {n} entries: {e}"));
            }
            apply(conn, self.carry.entries())
                .map_err(|e| format!("{path}: cannot commit {n} entries: {e}"))?;
        }
        match self.identity() {
            Identity::Same => {
                self.wal = file_id(&wal_path(self.path)).ok();
                Ok(())
            }
            Identity::Missing | Identity::Replaced(_) => {
                self.detach();
                Err(format!(
                    "{path}: the file was deleted, moved or replaced during the commit; \
                     the batch is not acknowledged"
                ))
            }
            Identity::Unknown(why) => Err(why),
        }
    }

    /// Closes our connection to a file no longer at the path, and removes our WAL (and
    /// shared-memory file) from beside whatever is at the path now: SQLite would
    /// otherwise read our WAL into the other file when it is next opened.
    fn detach(&mut self) {
        self.conn = None;
        let wal = wal_path(self.path);
        if self.wal.is_some() && file_id(&wal).ok() == self.wal {
            let _ = std::fs::remove_file(&wal);
            let _ = std::fs::remove_file(shm_path(self.path));
        }
        self.wal = None;
    }

    fn identity(&self) -> Identity {
        let path = self.path.display();
        match file_id(self.path) {
            Ok(id) if id == self.id => Identity::Same,
            Ok(_) => Identity::Replaced(format!(
                "{path}: the file at the path was replaced by another file; not writing \
                 to it (remove it, and the journal is re-created there with the full \
                 current state)"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Identity::Missing,
            Err(e) => Identity::Unknown(format!("{path}: cannot inspect the file: {e}")),
        }
    }

    /// Re-creates the journal at the path (which is free) and carries the owner's full
    /// state into the next commit.
    fn recreate(&mut self) -> Result<(), String> {
        let path = self.path.display();
        if self.shared.lock().source.is_none() {
            return Err(format!(
                "{path}: the file was deleted or moved away; a journal without an owner \
                 cannot rebuild what it held, so nothing more is acknowledged"
            ));
        }
        // Our connection is closed: a WAL or shared-memory file left at the path is ours.
        for side in [wal_path(self.path), shm_path(self.path)] {
            match std::fs::remove_file(&side) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!("{}: cannot remove it: {e}", side.display()));
                }
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(format!(
                    "{path}: another file appeared at the path; not writing to it"
                ));
            }
            Err(e) => return Err(format!("{path}: cannot re-create the journal: {e}")),
        }
        let (conn, _) = connect(self.path, self.durability)
            .map_err(|e| format!("cannot re-create the journal: {e}"))?;
        self.id = file_id(self.path)
            .map_err(|e| format!("{path}: cannot inspect the re-created file: {e}"))?;
        self.conn = Some(conn);
        let mut full = Vec::new();
        {
            let mut st = self.shared.lock();
            if let Some(source) = st.source.as_mut() {
                source(Refill::Everything, &mut full);
            }
            st.refill = false;
            st.health.recreated += 1;
        }
        self.carry.clear_owned();
        self.carry.add_owned(full);
        Ok(())
    }
}

/// A batch taken: the appended entries, the owner's (collected, refilled), its number
/// and whether it is the last one (shutdown).
struct Batch {
    appended: Vec<Entry>,
    owned: Vec<Entry>,
    number: u64,
    last: bool,
}

/// Waits until a batch is due, then takes it: the pending entries plus what the collector
/// adds. While failing, nothing is due before the backoff ends (except at shutdown).
fn take_batch(shared: &Shared, durability: Durability) -> Batch {
    let mut st = shared.lock();
    loop {
        if st.shutdown {
            break;
        }
        if let Some(at) = st.retry_at {
            let now = Instant::now();
            if now < at {
                st = shared
                    .work
                    .wait_timeout(st, at - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            break; // the carried batch is due
        }
        if st.urgent >= st.open {
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
    let appended = std::mem::take(&mut st.pending);
    let mut owned = Vec::new();
    let st = &mut *st;
    if let Some(collect) = st.collector.as_mut() {
        collect(&mut owned);
    }
    if st.refill {
        if let Some(source) = st.source.as_mut() {
            source(Refill::Appended, &mut owned);
        }
        st.refill = false;
    }
    st.carried_appended += appended.len();
    st.oldest = None;
    st.last_batch = Instant::now();
    Batch {
        appended,
        owned,
        number,
        last: st.shutdown,
    }
}

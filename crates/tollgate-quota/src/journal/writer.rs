//! The batch writer: the state callers and the writer thread share, and the thread that
//! takes each batch when it is due (with what the collector adds) and commits it in one
//! transaction.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::durability::Durability;
use super::entry::Entry;
use super::schema::apply;

/// Adds the entries of state the journal's owner keeps itself (the ledger's counters) to
/// a batch. Runs on the writer thread, under the journal's lock, once per batch.
pub(crate) type Collector = Box<dyn FnMut(&mut Vec<Entry>) + Send>;

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
    /// The writer's error, once it failed.
    pub(super) failed: Option<String>,
    /// The writer thread has exited.
    pub(super) writer_gone: bool,
    /// Collects the owner's changes into each batch.
    pub(super) collector: Option<Collector>,
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
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// `State::open`, readable without the lock (see [`Journal::ticket`](super::Journal::ticket)).
    pub(super) open: AtomicU64,
    /// Wakes the writer.
    pub(super) work: Condvar,
    /// Wakes waiters after a commit or a failure.
    pub(super) done: Condvar,
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
            }),
            open: AtomicU64::new(1),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }

    /// The state, locked (a poisoned lock is taken over).
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

pub(super) fn writer_main(
    mut conn: Connection,
    path: &Path,
    durability: Durability,
    shared: &Shared,
) {
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

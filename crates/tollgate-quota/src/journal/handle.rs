//! The [`Journal`] handle: opening, appending, tickets, waiting for durability, reports
//! and closing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::health::{HealthChange, JournalHealth};

use rusqlite::{Connection, OpenFlags};

use super::durability::Durability;
use super::entry::{Entry, Snapshot, UsageRecord};
use super::error::{sql_err, JournalError};
use super::open::{connect, file_id};
use super::revocation::{AdminChangeRecord, RevocationKey, RevocationRecord};
use super::schema::{read_admin_changes, read_revocations, read_usage};
use super::writer::{writer_main, Collector, CommitHook, HealthListener, Shared, StateSource};

/// Names the batch an entry (or a collected change) belongs to, for [`Journal::wait`].
/// Tickets are ordered: waiting for one also covers every batch before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// The batch's number.
    pub(crate) fn number(self) -> u64 {
        self.0
    }
}

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
        let (conn, snapshot) = connect(&path, durability)?;
        let id = file_id(&path).map_err(|source| JournalError::Io {
            path: path.clone(),
            context: "cannot inspect the file",
            source,
        })?;
        let shared = Arc::new(Shared::new());
        let writer = {
            let shared = Arc::clone(&shared);
            let writer_path = path.clone();
            std::thread::Builder::new()
                .name("tollgate-journal".into())
                .spawn(move || writer_main(conn, id, &writer_path, durability, &shared))
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
        // Once the writer stopped, nothing more is journaled: hand out tickets (their
        // waits report it) but do not hold on to the entries.
        let keep = st.failed.is_none() && !st.writer_gone;
        let mut urgent = false;
        for entry in entries {
            urgent |= matches!(entry, Entry::Notice { .. } | Entry::NoticeRaised { .. });
            if !keep {
                continue;
            }
            if st.pending.len() + st.carried_appended < st.max_pending {
                st.pending.push(entry);
            } else {
                // At the bound: not kept. An owner that keeps the state writes it again
                // with the next batch; otherwise waits covering it fail.
                st.health.dropped_entries += 1;
                if st.source.is_some() {
                    st.refill = true;
                } else if st.lost_from.is_none() {
                    st.lost_from = Some(st.open);
                }
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

    /// Installs what writes the owner's state again: after appended entries were dropped
    /// at the pending bound, and into a re-created file (see [`Refill`](super::writer::Refill)).
    pub(crate) fn set_source(&self, source: StateSource) {
        self.shared.lock().source = Some(source);
    }

    /// Installs the hook told the number of every batch that commits.
    pub(crate) fn set_on_commit(&self, hook: CommitHook) {
        self.shared.hooks().on_commit = Some(hook);
    }

    /// Whether the batch of `ticket` (and every one before it) has committed.
    pub(crate) fn is_committed(&self, ticket: Ticket) -> bool {
        // Lock-free: the owner calls it holding the lock its refill source takes, and the
        // writer calls that source holding the journal's lock.
        self.shared.committed.load(Ordering::Acquire) >= ticket.0
    }

    /// Calls `listener` on the writer thread each time the journal starts failing and
    /// each time it recovers ([`HealthChange`]). It must not block for long, and must
    /// not wait on this journal. Listeners add up; they live as long as the journal.
    pub fn on_health_change(&self, listener: impl Fn(&HealthChange) + Send + Sync + 'static) {
        let listener: HealthListener = Box::new(listener);
        self.shared.hooks().on_health.push(listener);
    }

    /// The writer's health: ok or failing, failures, the last error, when a batch last
    /// committed, how long it has been failing, what waits to be written.
    pub fn health(&self) -> JournalHealth {
        self.shared.lock().health()
    }

    /// How long the writer has been failing (`None` when its last batch committed).
    /// Takes no lock: cheap enough to ask on every request.
    pub fn failing_for(&self) -> Option<Duration> {
        match self.shared.failing_since_ns.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let since = self.shared.base + Duration::from_nanos(since - 1);
                Some(Instant::now().saturating_duration_since(since))
            }
        }
    }

    /// The most appended entries (notices, committed idempotency keys, entries given to
    /// [`append`](Self::append)) kept while they wait to be committed: 65,536 by default
    /// (about 100 bytes each). Collected usage is not bounded by this: the counters are
    /// its buffer, and a failing writer carries at most one delta per user and period.
    /// At the bound an entry is not kept and [`JournalHealth::dropped_entries`] counts
    /// it; a ledger's own state still holds it, and the next batch writes every notice
    /// and committed key again, so nothing is lost; without a ledger, waits covering it
    /// fail with [`JournalError::Dropped`].
    pub fn set_max_pending(&self, entries: usize) {
        self.shared.lock().max_pending = entries.max(1);
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
    ///
    /// While the writer is failing it does not block: it returns
    /// [`JournalError::NotAcknowledged`] at once (and when the batch it waited for
    /// fails). The entries stay queued and are retried; a later wait succeeds once a
    /// batch commits.
    pub fn wait(&self, ticket: Ticket) -> Result<(), JournalError> {
        let mut st = self.shared.lock();
        // A ticket this journal never issued (from another journal) waits for the open
        // batch instead of forever.
        let ticket = Ticket(ticket.0.min(st.open));
        if st.lost_from.is_some_and(|lost| lost <= ticket.0) {
            return Err(JournalError::Dropped {
                path: self.path.clone(),
                dropped: st.health.dropped_entries,
            });
        }
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
            if st.failing() {
                return Err(JournalError::NotAcknowledged {
                    path: self.path.clone(),
                    reason: st.health.last_error.clone().unwrap_or_default(),
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
        let st = self.shared.lock();
        match &st.failed {
            Some(reason) => Err(JournalError::WriterFailed {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
            None if st.failing() => Err(JournalError::NotAcknowledged {
                path: self.path.clone(),
                reason: st.health.last_error.clone().unwrap_or_default(),
            }),
            None => Ok(()),
        }
    }

    /// The `usage` table of the journal at `path` as committed now, read over a
    /// read-only connection without opening the journal (no writer, no migration, no
    /// file created): for reports on a file a running engine may be writing.
    pub fn read_usage(path: impl AsRef<Path>) -> Result<Vec<UsageRecord>, JournalError> {
        let path = path.as_ref();
        let conn = read_only(path)?;
        read_usage(path, &conn)
    }

    /// The `period_limits` table of the journal at `path` (the limit in force per
    /// company and period; empty before schema 4), read-only as
    /// [`read_usage`](Self::read_usage).
    pub fn read_period_limits(
        path: impl AsRef<Path>,
    ) -> Result<Vec<super::entry::PeriodLimitRecord>, JournalError> {
        let path = path.as_ref();
        let conn = read_only(path)?;
        super::schema::read_period_limits(path, &conn)
    }

    /// The `usage` table as committed now, read over a separate read-only connection.
    pub fn usage_report(&self) -> Result<Vec<UsageRecord>, JournalError> {
        let conn = read_only(&self.path)?;
        read_usage(&self.path, &conn)
    }

    /// The journal's revocation key and the `revocations` table as committed now (every
    /// row, ended suspensions included), read over a separate read-only connection.
    /// Revoked values are not in the file: rows are keyed by
    /// [`RevocationKey::fingerprint`].
    pub fn revocations(&self) -> Result<(RevocationKey, Vec<RevocationRecord>), JournalError> {
        let conn = read_only(&self.path)?;
        read_revocations(&self.path, &conn)
    }

    /// The `admin_changes` table as committed now, in order, read over a separate
    /// read-only connection.
    pub fn admin_changes(&self) -> Result<Vec<AdminChangeRecord>, JournalError> {
        let conn = read_only(&self.path)?;
        read_admin_changes(&self.path, &conn)
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

/// A read-only connection to the journal at `path` (no writer, no migration, no file
/// created), waiting up to 5 s for a writer's lock.
fn read_only(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err(path, "cannot open for reading"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql_err(path, "cannot set the busy timeout"))?;
    Ok(conn)
}

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
//! writer commit at once instead of waiting for `max_delay`; the ledger puts a notice in
//! its [outbox](crate::outbox) only after `wait` acknowledged its entry (see
//! [`Journal::append_durable`]), so a notice is raised once per company, period and kind,
//! across restarts too, and every notice the host is offered is durable; it stays pending
//! in the `outbox` table until an [`Entry::NoticeAck`] is committed.
//!
//! # Revocations
//! Since schema version 3 the journal also keeps the engine's revocations and suspensions
//! ([`Entry::Revoked`], [`Entry::Unrevoked`], read back with [`Journal::revocations`]),
//! keyed by a fingerprint of the value under the file's random [`RevocationKey`]: the
//! revoked values themselves are never written.
//!
//! Entries appended together with [`Journal::append_all`] always land in the same
//! transaction (for instance a commit's idempotency key and the settled usage).
//!
//! # Errors
//! I/O and SQLite errors never panic. A batch that fails to commit is kept and retried
//! with backoff (10 ms doubling to 1 s); while failing, [`Journal::wait`] and
//! [`Journal::flush`] return [`JournalError::NotAcknowledged`] at once, and
//! [`Journal::health`] tells how it goes ([`JournalHealth`]). A file deleted or moved
//! away is re-created with the owner's full state; a replaced one is never written.
//! A last batch that fails at close makes [`Journal::close`] return
//! [`JournalError::WriterFailed`]. See the `writer` module and DURABILITY.md.
//!
//! # Opening an existing file
//! An existing file must be a tollgate journal: the SQLite header, `PRAGMA application_id`
//! ([`APPLICATION_ID`], `0x54474C51`, "TGLQ"), `PRAGMA user_version` ([`SCHEMA_VERSION`])
//! and `PRAGMA quick_check` are checked first over a read-only connection. A non-SQLite
//! file, a foreign SQLite database or a corrupted journal is refused with
//! [`JournalError::NotAJournal`], naming the path and the reason, and is never modified.
//! An empty file or an SQLite database without any table and without an application id
//! (for instance a journal whose creation was interrupted) is initialized. A version 1
//! journal is migrated to version 2 when opened (the `outbox` table is added, in one
//! transaction; the notices version 1 raised keep their `notices` rows and get no outbox
//! row).
//!
//! # Schema (version 2)
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
//! -- Version 2: the notice outbox, written in the transaction of the notice's row above;
//! -- pending (acked_at NULL) until the host acknowledges it.
//! CREATE TABLE outbox (
//!     id             INTEGER PRIMARY KEY,   -- the notice's id, never reused
//!     company        TEXT    NOT NULL,
//!     period         TEXT    NOT NULL,
//!     kind           TEXT    NOT NULL CHECK (kind IN ('warning', 'overage')),
//!     used           INTEGER NOT NULL,      -- usage when crossed
//!     quota_limit    INTEGER NOT NULL,      -- the limit then
//!     suggested_plan TEXT,                  -- the plan an overage proposes
//!     raised_at      INTEGER NOT NULL,      -- unix seconds
//!     acked_at       INTEGER,               -- unix seconds; NULL while pending
//!     UNIQUE (company, period, kind)
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
//! For example, the notices the host has not acknowledged:
//! `SELECT id, company, period, kind FROM outbox WHERE acked_at IS NULL;`
//! and this month's usage per company:
//! `SELECT company, calls FROM usage WHERE user = '' AND period = '2026-11' ORDER BY calls DESC;`
//!
//! # Modules
//! * `entry` — what is written: [`Entry`], the table rows and the [`Snapshot`];
//! * `durability` — [`Durability`];
//! * `error` — [`JournalError`];
//! * `schema` — the SQLite schema and the statements that write and read it;
//! * `open` — the checks an existing file passes, and opening the connection;
//! * `writer` — the batch writer thread and the state it shares with callers;
//! * `handle` — the [`Journal`] handle;
//! * `health` — [`JournalHealth`] and [`HealthChange`].

mod durability;
mod entry;
mod error;
mod handle;
mod health;
mod offline;
mod open;
mod revocation;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

pub use durability::Durability;
pub use entry::{
    CommitRecord, Entry, NoticeKind, NoticeRecord, OutboxRecord, PeriodLimitRecord, Snapshot,
    UsageRecord,
};
pub use error::JournalError;
pub use handle::{Journal, Ticket};
pub use health::{HealthChange, JournalHealth, JournalState};
pub use offline::AdminJournal;
pub use revocation::{AdminChangeRecord, AdminRecord, RevocationKey, RevocationRecord};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub(crate) use writer::Refill;

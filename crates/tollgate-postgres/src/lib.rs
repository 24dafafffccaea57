//! PostgreSQL fleet ledger for tollgate.
//!
//! Every instance of a fleet writes its usage to one PostgreSQL database: batches of
//! deltas under a batch id unique per instance (a retried batch counts once), running
//! totals per (company, period) and (company, user, period) updated in the same
//! transaction, period-end statements, and fleet-wide notice claims (exactly one instance
//! wins a company's notice of a kind in a period). Companies and users are stored by
//! their ids; an API key is never stored.
//!
//! The client is the synchronous `postgres` crate: the engine's hot path is synchronous
//! and only hands deltas to [`PgLedgerSink`]'s in-memory queue; one writer thread owns the
//! connection, so no async runtime is needed in the host.
//!
//! # Measured cost (2026-12-04, 2 shared cores, PostgreSQL 15 on loopback, fsync=off)
//!
//! From `tests/measure.rs` (`cargo test -p tollgate-postgres --release --test measure --
//! --ignored --nocapture`), release build:
//!
//! - Caller side, [`PgLedgerSink::record`] with the writer running: 439, 569 and 599 ns
//!   per delta in three runs of 200,000 (a mutex, a `VecDeque` push and a condvar
//!   notify; the deltas were built before timing). No I/O on the caller's thread.
//! - Batch latency, [`PgLedger::write_batch`] (10 companies, 100 users): 1 delta p50
//!   1.3 ms; 64 deltas p50 4.5 ms (p90 8.4 ms); 512 deltas p50 17.8 ms (p90 27.3 ms,
//!   max 34.7 ms), 40 batches each.
//! - Writer throughput: 200,000 deltas drained in 4.2 to 5.0 s after the last record
//!   (about 40,000 to 48,000 deltas/s, batches of 512).
//!
//! Before the batch was written with one `UNNEST` insert and per-key totals, it cost
//! three round trips per delta: 512 deltas p50 91.8 ms, and 200,000 deltas took 41 to
//! 43 s to drain (about 5,000/s). These numbers are from fsync=off; a durable server
//! adds one WAL flush per batch.
#![deny(missing_docs)]

mod error;
mod hook;
mod ledger;
mod schema;
mod writer;

pub use error::PgError;
pub use ledger::{PgLedger, StatementRow, TotalRow, UsageDelta};
pub use schema::SCHEMA_VERSION;
pub use writer::{PgLedgerSink, SinkConfig, SinkStats};

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
#![deny(missing_docs)]

mod error;
mod ledger;
mod schema;
mod writer;

pub use error::PgError;
pub use ledger::{PgLedger, StatementRow, TotalRow, UsageDelta};
pub use schema::SCHEMA_VERSION;
pub use writer::{PgLedgerSink, SinkConfig, SinkStats};

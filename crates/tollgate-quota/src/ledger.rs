//! The in-memory usage ledger: who called, on whose quota, in which period.
//!
//! [`Ledger::record`] attributes a call, by API key, to its user and the user's company,
//! and answers at once: within the limit, over the limit (served: the policy only
//! notifies), or refused (over the hard cap), with the company's usage, limit and the
//! time the period resets.
//!
//! # Hot path
//! API keys map to their users in a lock-free concurrent map (`papaya`) keyed by a 128-bit
//! fingerprint of the key (the key itself is never stored); each user holds its company,
//! and each company and user keeps its periods in an append-only vector (`boxcar`) with
//! the index of the current one. Recording a call is one map lookup, two index loads, one
//! compare-exchange loop on the company's counter and one on the user's (both saturate at
//! [`MAX_USAGE`] instead of wrapping): no
//! lock, no allocation, no reference counting, and the journal is not touched (its writer
//! collects the counters' changes, see below). A call is attributed to the period its own
//! timestamp falls in: a thread that raced a period rollover still counts its call in the
//! period it checked. Administrative changes (a company's units, a key added) take a
//! mutex and never block `record`.

//! # Notices once, delivered until acknowledged
//! Each period counter has a flag word. The move that takes usage over the warning
//! threshold or the limit sets the flag with `fetch_or`; only the call that flipped the bit
//! raises the notice, so each notice is raised once per company and period however
//! many threads race, and even if the limit changes during the period. A raised notice
//! goes to the [outbox](crate::outbox) ([`Ledger::outbox`]), where it waits until the host
//! acknowledges it, and its [`QuotaEvent`] to [`Ledger::drain_events`] (a signal). A record, a
//! reservation and a commit raise them the same way (a commit that crosses a threshold
//! notifies at once; a move past both thresholds raises both). The counter is in its own
//! module so that loom checks exactly this code.
//!
//! # Durability
//! [`Ledger::new`] keeps everything in memory. [`Ledger::with_journal`] journals to a
//! [`Journal`](crate::journal::Journal) (SQLite; bounded-loss or strict) and restores what a previous run
//! journaled when companies and users are registered again. The hot path does not touch
//! the journal: its writer thread collects, once per batch, the change of every user's
//! counters since the previous batch. A commit's idempotency key and its settled usage land
//! in the same batch. A notice enters the outbox only after its journal entry is durable,
//! so it is raised once across restarts, and the outbox's pending notices are restored;
//! if that write fails the notice is not raised and [`Ledger::journal_errors`] counts it. In strict mode, a caller that needs its call to be
//! durable before answering calls [`Ledger::sync`] (or waits on [`Ledger::ticket`]):
//! concurrent callers share one disk sync.
//!
//! # Modules
//! * `config` — [`QuotaConfig`] and the thresholds (warning, limit, hard cap) it gives a
//!   period, with the verdict and notice rules;
//! * `decision` — what a call is answered: [`QuotaDecision`], [`Outcome`],
//!   [`QuotaEvent`], and [`QuotaTarget`] with its admission rule for shared counters;
//! * `error` — [`QuotaError`] and [`KeyRef`];
//! * `usage` — the counters of one company or user per period, rollover, restoring;
//! * `directory` — companies, users and API keys as registered; `admin` — the changes
//!   to them;
//! * `state` — the [`Ledger`] itself, its constructors and its journal;
//! * `charge` — the one charge path ([`Ledger::record`], [`Ledger::record_shared`], and
//!   the reservations'); `notice` — raising notices; `reservation` — reserve, commit,
//!   refund;
//! * `report` — usage rows, statements, CSV; `collect` — the journal's collector;
//! * `sink` — [`UsageSink`]: every counted move handed off the hot path (a fleet's
//!   billing ledger).

mod admin;
mod charge;
mod collect;
mod config;
mod decision;
mod directory;
mod error;
mod notice;
mod refill;
mod report;
mod reservation;
mod sink;
mod state;
mod usage;

#[cfg(all(test, not(tollgate_loom)))]
mod tests;

pub use crate::counter::{SharedCharge, MAX_USAGE};
pub use config::{QuotaConfig, DEFAULT_NOTICE_REDELIVER_AFTER};
pub use decision::{Outcome, QuotaDecision, QuotaEvent, QuotaTarget};
pub use directory::CompanyStatus;
pub use error::{KeyRef, KeyRefSecretError, QuotaError, KEY_REF_SECRET_MIN_LEN};
pub use report::{Statement, UsageRow};
pub use reservation::{CommitOutcome, Reservation, MAX_COST};
pub use sink::{UsageMove, UsageSink};
pub use state::Ledger;
pub use state::{KeyGuard, ResolvedKey};

//! # tollgate-quota
//!
//! Calendar-period call quotas: how many calls a company may make per calendar month (or
//! day, week, year), in UTC or the company's own time zone, under the plans it has.
//!
//! This crate is being built in steps. Present now:
//! * [`period`] — calendar periods: which period an instant falls in, where it starts and
//!   ends, across month lengths, leap years and DST changes;
//! * [`plan`] — plans from configuration and the limit a company gets from them (the
//!   highest plan that applies, or an explicit override).
//!
//! * [`ledger`] — the in-memory usage ledger: calls attributed by API key to users and
//!   companies with lock-free counters, early warning and overage notices exactly once per
//!   company and period, the hard cap, reserve/commit/refund with idempotency keys,
//!   disabled users and key rotation, reports as JSON and CSV, API keys never shown in full.
//!
//! * [`journal`] — the durable usage journal in one SQLite file: background batched
//!   writes, bounded-loss (100 ms) and strict (group commit) modes, a snapshot to restore
//!   from, foreign or corrupted files refused untouched; a SIGKILL crash test in `tests/`.
//!
//! [`Ledger::with_journal`] joins the two: every change is journaled, a restart restores
//! usage, notice flags and idempotency keys, and a notice is raised only once its entry is
//! durable.
//!
//! Still to come (see the quota issue): a per-call durability ticket from `record` for
//! strict callers (today they flush the journal), the crash test driven through the
//! ledger rather than the journal, and the `record` benches.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(tollgate_loom, allow(dead_code, unreachable_pub))]

mod counter;
pub mod journal;
pub mod ledger;
pub mod period;
pub mod plan;
mod sync;

/// The date-time crate periods are expressed in, re-exported so callers use the same
/// version.
pub use jiff;

#[cfg(all(test, tollgate_loom))]
mod loom_tests;

#[doc(inline)]
pub use ledger::{
    CommitOutcome, KeyRef, Ledger, Outcome, QuotaConfig, QuotaDecision, QuotaError, QuotaEvent,
    Reservation, Statement, UsageRow,
};
#[doc(inline)]
pub use period::{Period, PeriodError, PeriodKind, PeriodSpec};
#[doc(inline)]
pub use plan::{Company, LimitSource, Plan, PlanError, PlanKind, Plans, QuotaLimit};

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
//! Still to come (see the quota issue): the per-company ledger with lock-free counters,
//! overage notices and the hard cap, reserve/commit/refund, reports, and the durable
//! SQLite store.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod period;
pub mod plan;

/// The date-time crate periods are expressed in, re-exported so callers use the same
/// version.
pub use jiff;

#[doc(inline)]
pub use period::{Period, PeriodError, PeriodKind, PeriodSpec};
#[doc(inline)]
pub use plan::{Company, LimitSource, Plan, PlanError, PlanKind, Plans, QuotaLimit};

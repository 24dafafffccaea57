//! # tollgate-quota
//!
//! Calendar-period call quotas: how many calls a company may make per calendar month (or
//! day, week, year), in UTC or the company's own time zone, under the plans it has; who
//! made them; the notices an administrator gets; and a usage ledger that survives crashes.
//!
//! * [`period`] — calendar periods: which period an instant falls in, where it starts and
//!   ends, across month lengths, leap years and DST changes (jiff), with billing anchors;
//! * [`plan`] — plans from configuration and the limit a company gets from them (the
//!   highest plan that applies, or an explicit override);
//! * [`ledger`] — calls attributed by API key to users and companies with lock-free
//!   counters, the early warning and the overage notice once per company and period,
//!   the hard cap, reserve/commit/refund with idempotency keys, disabled users and
//!   key rotation, reports as JSON and CSV; API keys are never stored or shown in full;
//! * [`journal`] — the durable ledger in one SQLite file: batched writes by a background
//!   thread that collects the counters' changes (the hot path never touches it),
//!   bounded-loss (100 ms) and strict (group commit) modes, a snapshot to restore from,
//!   foreign or corrupted files refused untouched;
//! * [`outbox`] — the notices waiting for the host: taken, acknowledged after the host
//!   acted, offered again after a timeout or a restart until then (durable with a
//!   journal; in memory, forgotten by a restart, without one).
//!
//! ```
//! use tollgate_quota::journal::{Durability, Journal};
//! use tollgate_quota::{Company, Ledger, Outcome, QuotaConfig, QuotaEvent};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("usage.db");
//! // Free plan: 100,000 calls per unit (machine or app) per month; paid "API Access":
//! // 1,000,000 per month. Warning at 80%, service refused above 150%.
//! let (journal, restored) = Journal::open(&path, Durability::default())?;
//! let ledger = Ledger::with_journal(QuotaConfig::default(), journal, restored);
//! let nov_10: i128 = 1_794_268_800 * 1_000_000_000; // 2026-11-10T00:00:00Z, in ns
//!
//! let limit = ledger.upsert_company(Company::new("acme").with_units(5, 10), None, nov_10)?;
//! assert_eq!(limit.calls, 1_500_000);
//! ledger.add_user("alice", "acme", nov_10)?;
//! ledger.add_key("3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77", "alice")?;
//!
//! let d = ledger.record("3f9a1c2e-5b7d-4e21-9a0b-6c8d2f1e4a77", 1_500_001, nov_10)?;
//! assert_eq!(d.outcome, Outcome::OverLimit); // served: the policy only notifies
//! assert_eq!(d.resets_at.to_string(), "2026-12-01T00:00:00Z");
//! assert!(matches!(d.event.as_deref(), Some(QuotaEvent::Overage { .. })));
//!
//! // The notices wait in the outbox until the host acknowledges them.
//! for n in ledger.outbox().take(16, nov_10) {
//!     println!("{:?} for {} in {}: {} of {}", n.kind, n.company, n.period, n.used, n.limit);
//!     ledger.outbox().ack(n.id, nov_10)?; // after the email went out
//! }
//! ledger.sync()?; // durable now (on disk in strict mode)
//! println!("{}", Ledger::usage_csv(&ledger.user_usage()));
//! # Ok(())
//! # }
//! ```
//!
//! `examples/monthly_quota.rs` runs a month of calls for a few companies and prints the
//! notices and the period-end statements.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(tollgate_loom, allow(dead_code, unreachable_pub))]

mod counter;
pub mod journal;
pub mod ledger;
pub mod outbox;
pub mod period;
pub mod plan;
mod sync;

/// The date-time crate periods are expressed in, re-exported so callers use the same
/// version.
pub use jiff;

#[cfg(all(test, tollgate_loom))]
mod loom_tests;

#[doc(inline)]
pub use journal::NoticeKind;
#[doc(inline)]
pub use ledger::{
    CommitOutcome, CompanyStatus, KeyGuard, KeyRef, KeyRefSecretError, Ledger, Outcome,
    QuotaConfig, QuotaDecision, QuotaError, QuotaEvent, QuotaTarget, Reservation, ResolvedKey,
    SharedCharge, Statement, UsageMove, UsageRow, UsageSink, DEFAULT_NOTICE_REDELIVER_AFTER,
    MAX_COST, MAX_USAGE,
};
#[doc(inline)]
pub use outbox::{Notice, NoticeId, Outbox, OutboxStats};
#[doc(inline)]
pub use period::{Period, PeriodError, PeriodKind, PeriodSpec};
#[doc(inline)]
pub use plan::{Company, LimitSource, Plan, PlanError, PlanKind, Plans, QuotaLimit};

//! The directory: companies, their users, and API keys (as fingerprints) mapped to their
//! users, as the hot path and the administrative changes see them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use tollgate_core::FingerprintBuildHasher;

use crate::period::PeriodSpec;
use crate::plan::Company;

use super::usage::Usage;

/// A company's settings: replaced whole by [`Ledger::upsert_company`](super::Ledger::upsert_company).
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) company: Company,
    pub(super) spec: PeriodSpec,
}

/// A company as registered. Administrative changes replace its settings; its usage and
/// idempotency keys stay, so no count is lost or split by an update.
#[derive(Debug)]
pub(super) struct CompanyEntry {
    pub(super) id: String,
    /// Read on the hot path: `settings.limit.calls`.
    pub(super) limit: AtomicU64,
    /// Read only on slow paths (a new period, a notice, reports).
    pub(super) settings: ArcSwap<Settings>,
    pub(super) usage: Usage,
    /// Idempotency keys of committed reservations, per period start.
    pub(super) committed: Mutex<HashMap<Timestamp, HashSet<String>>>,
}

/// A user as registered: its company, whether it is disabled, and its usage.
#[derive(Debug)]
pub(super) struct UserEntry {
    pub(super) id: String,
    pub(super) company: Arc<CompanyEntry>,
    pub(super) disabled: AtomicBool,
    pub(super) usage: Usage,
}

/// Companies and users by id, for administrative changes, reports and the journal's
/// collector (never on the hot path).
#[derive(Debug, Default)]
pub(super) struct Directory {
    pub(super) companies: HashMap<String, Arc<CompanyEntry>>,
    pub(super) users: HashMap<String, Arc<UserEntry>>,
}

/// API key fingerprint -> its user: read lock-free on every call.
pub(super) type KeyMap = papaya::HashMap<u128, Arc<UserEntry>, FingerprintBuildHasher>;

// API keys are not kept: the ledger keeps a 128-bit fingerprint of each (tollgate-core's
// `Fingerprinter`, random per-ledger seeds). Two keys share a fingerprint with probability
// 2^-128 per pair; a secret that is never stored cannot leak from memory dumps or debug
// output either. Comparing fingerprints also spares the hot path a string comparison.

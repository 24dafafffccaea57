//! The directory: companies, their users, and API keys (as fingerprints) mapped to their
//! users, as the hot path and the administrative changes see them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use tollgate_core::FingerprintBuildHasher;

use crate::period::PeriodSpec;
use crate::plan::Company;

use super::error::KeyRef;
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
    /// [`CompanyStatus`] as a byte: read on the hot path (the same cache line as
    /// `limit`), changed by [`Ledger::set_company_status`](super::Ledger::set_company_status).
    pub(super) status: AtomicU8,
}

/// Where a company stands: active, suspended (its keys refused until resumed), or
/// terminated (its keys refused for good), or removed from the directory (its keys
/// are gone; its usage is kept for billing statements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompanyStatus {
    /// Served.
    Active,
    /// Refused until resumed (reversible).
    Suspended,
    /// Refused for good: no operation makes a terminated company active again.
    Terminated,
    /// Removed: its users and keys are gone, its usage stays for statements.
    /// Registering it again makes it active (or terminated, if it was).
    Removed,
}

impl CompanyStatus {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            CompanyStatus::Active => 0,
            CompanyStatus::Suspended => 1,
            CompanyStatus::Terminated => 2,
            CompanyStatus::Removed => 3,
        }
    }

    pub(super) fn from_u8(v: u8) -> Self {
        match v {
            0 => CompanyStatus::Active,
            1 => CompanyStatus::Suspended,
            2 => CompanyStatus::Terminated,
            _ => CompanyStatus::Removed,
        }
    }

    /// The status's name: `active`, `suspended`, `terminated`, `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompanyStatus::Active => "active",
            CompanyStatus::Suspended => "suspended",
            CompanyStatus::Terminated => "terminated",
            CompanyStatus::Removed => "removed",
        }
    }
}

/// A removed company that was terminated keeps its termination: the flag bit set in
/// `status` alongside [`CompanyStatus::Removed`].
pub(super) const TERMINATED_BIT: u8 = 0x80;

/// A user as registered: its company, whether it is disabled, and its usage.
#[derive(Debug)]
pub(super) struct UserEntry {
    pub(super) id: String,
    pub(super) company: Arc<CompanyEntry>,
    pub(super) disabled: AtomicBool,
    /// Removed from the directory (its keys are gone); kept so that its usage is
    /// still journaled and reported.
    pub(super) removed: AtomicBool,
    pub(super) usage: Usage,
}

/// An API key's entry: its user, and until when it is honoured (Unix nanoseconds;
/// `i128::MAX` for good, earlier for an old key in its rotation grace period).
#[derive(Debug, Clone)]
pub(super) struct KeyEntry {
    pub(super) user: Arc<UserEntry>,
    pub(super) until: i128,
}

/// Companies and users by id, for administrative changes, reports and the journal's
/// collector (never on the hot path).
#[derive(Debug, Default)]
pub(super) struct Directory {
    pub(super) companies: HashMap<String, Arc<CompanyEntry>>,
    pub(super) users: HashMap<String, Arc<UserEntry>>,
    /// Each user's key fingerprints and their references (to remove a user's keys and
    /// report them without ever holding a key).
    pub(super) user_keys: HashMap<String, HashMap<u128, KeyRef>>,
    /// Rotated keys in their grace period: fingerprint and end (Unix nanoseconds),
    /// swept out of the key map by the next administrative change after their end.
    pub(super) graced: Vec<(u128, i128)>,
}

/// API key fingerprint -> its user: read lock-free on every call.
pub(super) type KeyMap = papaya::HashMap<u128, KeyEntry, FingerprintBuildHasher>;

// API keys are not kept: the ledger keeps a 128-bit fingerprint of each (tollgate-core's
// `Fingerprinter`, random per-ledger seeds). Two keys share a fingerprint with probability
// 2^-128 per pair; a secret that is never stored cannot leak from memory dumps or debug
// output either. Comparing fingerprints also spares the hot path a string comparison.

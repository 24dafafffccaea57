//! Why a call or an administrative change was refused ([`QuotaError`]), and the redacted
//! form API keys take in errors, reports and events ([`KeyRef`]).

use std::fmt;

use serde::Serialize;

use crate::period::PeriodError;
use crate::plan::PlanError;

/// A short, non-secret reference to an API key: `key#` and 12 hex digits of a keyed
/// hash (SipHash-1-3 under a secret drawn at random once per process). No character of
/// the key appears in it, so it reveals nothing of a key of any length, and without
/// the process's secret no guess of a short key can be checked against it. API keys
/// never appear otherwise in errors, reports, events or `Debug` output.
///
/// The same key always has the same reference within one process, so an operator
/// holding a key finds it in events, reports and [`Ledger`](crate::Ledger) errors by
/// comparing [`KeyRef::of`]`(key)`; references do not agree across processes or
/// restarts. 48 bits make two keys of one deployment share a reference with a chance
/// of about n² / 2⁴⁹ (one in five million for ten thousand keys).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct KeyRef(String);

impl KeyRef {
    /// The reference of `key`.
    pub fn of(key: &str) -> Self {
        use std::hash::BuildHasher;
        static SECRET: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let h = SECRET.get_or_init(Default::default).hash_one(key);
        KeyRef(format!("key#{:012x}", h >> 16))
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({})", self.0)
    }
}

/// Why a call or an administrative change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The API key is not registered (shown redacted).
    UnknownKey(KeyRef),
    /// The key's user is disabled.
    DisabledUser {
        /// The user.
        user: String,
    },
    /// The company is not registered.
    UnknownCompany(String),
    /// The user is not registered.
    UnknownUser(String),
    /// The key is already registered (shown redacted).
    DuplicateKey(KeyRef),
    /// A plan or limit problem.
    Plan(PlanError),
    /// A period problem (bad time zone, timestamp out of range).
    Period(PeriodError),
    /// The store deciding the quota (a shared counter) could not decide.
    Unavailable(String),
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::UnknownKey(k) => write!(f, "unknown API key {k}"),
            QuotaError::DisabledUser { user } => write!(f, "user {user:?} is disabled"),
            QuotaError::UnknownCompany(c) => write!(f, "unknown company {c:?}"),
            QuotaError::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            QuotaError::DuplicateKey(k) => write!(f, "API key {k} is already registered"),
            QuotaError::Plan(e) => e.fmt(f),
            QuotaError::Period(e) => e.fmt(f),
            QuotaError::Unavailable(why) => write!(f, "quota store unavailable: {why}"),
        }
    }
}

impl std::error::Error for QuotaError {}

impl From<PlanError> for QuotaError {
    fn from(e: PlanError) -> Self {
        QuotaError::Plan(e)
    }
}

impl From<PeriodError> for QuotaError {
    fn from(e: PeriodError) -> Self {
        QuotaError::Period(e)
    }
}

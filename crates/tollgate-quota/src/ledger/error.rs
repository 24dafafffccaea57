//! Why a call or an administrative change was refused ([`QuotaError`]), and the redacted
//! form API keys take in errors, reports and events ([`KeyRef`]).

use std::fmt;

use serde::Serialize;

use crate::period::PeriodError;
use crate::plan::PlanError;

/// A short, non-secret identifier for an API key: its first 8 characters and an
/// ellipsis. API keys never appear in full in errors, reports or events.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct KeyRef(String);

impl KeyRef {
    /// The redacted form of `key`.
    pub fn of(key: &str) -> Self {
        let prefix: String = key.chars().take(8).collect();
        KeyRef(format!("{prefix}…"))
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

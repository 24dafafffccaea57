//! What can go wrong building or reloading an engine.

use std::fmt;

use tollgate_quota::journal::JournalError;
use tollgate_quota::QuotaError;

use crate::policy::PolicyError;

/// What went wrong building or reloading an engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// The policy file.
    Policy(PolicyError),
    /// A limit could not be built.
    Limit {
        /// The limit.
        limit: String,
        /// Why.
        message: String,
    },
    /// The quota could not be set up.
    Quota(QuotaError),
    /// The quota journal could not be opened.
    Journal(JournalError),
    /// The host-shared state (`[state] shared`) could not be attached, or a reload
    /// asked to change it (that needs a restart).
    State(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Policy(e) => e.fmt(f),
            EngineError::Limit { limit, message } => write!(f, "limit {limit:?}: {message}"),
            EngineError::Quota(e) => write!(f, "quota: {e}"),
            EngineError::Journal(e) => write!(f, "quota journal: {e}"),
            EngineError::State(m) => write!(f, "state: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<crate::policy::ValidationError> for EngineError {
    fn from(e: crate::policy::ValidationError) -> Self {
        EngineError::Policy(PolicyError {
            file: None,
            line: None,
            column: None,
            field: e.field,
            message: e.message,
        })
    }
}

impl From<PolicyError> for EngineError {
    fn from(e: PolicyError) -> Self {
        EngineError::Policy(e)
    }
}

//! The engine's answer: why a request was allowed or refused, with the numbers a client needs.

use std::fmt;
use std::time::Duration;

use tollgate_quota::Outcome;

/// `retry_after` of a refusal that waiting cannot lift.
pub(super) const NEVER: u64 = u64::MAX;

/// Why a request was allowed or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Allowed.
    Allowed,
    /// A limit denied it.
    Limited,
    /// Its token is revoked, or its user disabled.
    Revoked,
    /// The company is over the quota's hard cap.
    QuotaExceeded,
    /// The quota does not know its API key.
    UnknownKey,
    /// Its cost exceeds a limit's capacity: it can never pass.
    CannotPass,
    /// A limit could not decide (its key store is full, or its backend is unavailable).
    Unavailable,
    /// The quota's journal has been failing for longer than `[quota.journal]
    /// fail_closed_after`: the request would not be billed durably, so it is refused
    /// (503-like: retry later).
    JournalFailing,
    /// Its API key's company is terminated: refused for good (403-like; the company's
    /// usage is kept for billing). A *suspended* company's keys are refused as
    /// [`Reason::Revoked`], like a disabled user's (both are reversible).
    Terminated,
}

impl Reason {
    /// The reason's name: `allowed`, `limited`, `revoked`, `quota_exceeded`,
    /// `unknown_key`, `cannot_pass`, `unavailable`, `journal_failing`, `terminated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Limited => "limited",
            Reason::Revoked => "revoked",
            Reason::QuotaExceeded => "quota_exceeded",
            Reason::UnknownKey => "unknown_key",
            Reason::CannotPass => "cannot_pass",
            Reason::Unavailable => "unavailable",
            Reason::JournalFailing => "journal_failing",
            Reason::Terminated => "terminated",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The quota's part of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaStatus {
    /// Within, over (served) or refused.
    pub outcome: Outcome,
    /// The company's usage this period.
    pub used: u64,
    /// The company's limit.
    pub limit: u64,
    /// When the period ends (Unix seconds).
    pub resets_at_unix: i64,
}

/// The engine's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineDecision {
    /// Why.
    pub reason: Reason,
    /// The limit that decided (by index in the policy): the one that denied, or the most
    /// restrictive one for an allowed request. `None` when no limit applied or the
    /// decision was not a limit's.
    pub decided_by: Option<usize>,
    /// The deciding limit's capacity (cost units admitted at once).
    pub limit: u64,
    /// Cost units the deciding limit still admits.
    pub remaining: u64,
    /// How long to wait before retrying, in nanoseconds; zero when allowed; `u64::MAX`
    /// when waiting does not help (revoked, unknown key, cannot pass). Rust callers ask
    /// [`EngineDecision::wait`] instead of testing the value.
    pub retry_after: u64,
    /// When the deciding limit is back to full capacity, in nanoseconds.
    pub reset_after: u64,
    /// Whether a shadow limit would have denied this request.
    pub shadow_denied: bool,
    /// Whether a limit's backend could not decide and the limit's [`FailurePolicy`](crate::FailurePolicy)
    /// answered for it (a fallback limiter, open or closed).
    pub degraded: bool,
    /// The quota's view, when the quota took part.
    pub quota: Option<QuotaStatus>,
    /// The policy generation that decided (incremented by every reload).
    pub generation: u64,
}

impl EngineDecision {
    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Allowed
    }

    /// How long to wait before the same request can be admitted (absent other
    /// traffic): `None` when it is allowed, or when waiting cannot help (revoked,
    /// unknown key, a cost that can never pass, a backend that cannot decide).
    pub fn wait(&self) -> Option<Duration> {
        if self.allowed() || self.retry_after == NEVER {
            None
        } else {
            Some(Duration::from_nanos(self.retry_after))
        }
    }

    /// `retry_after` in whole seconds, rounded up (`None` when waiting does not help or
    /// the request was allowed).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.retry_after {
            0 | NEVER => None,
            ns => Some(ns.div_ceil(1_000_000_000)),
        }
    }

    pub(super) fn refused(reason: Reason, generation: u64) -> Self {
        EngineDecision {
            reason,
            decided_by: None,
            limit: 0,
            remaining: 0,
            retry_after: NEVER,
            reset_after: 0,
            shadow_denied: false,
            degraded: false,
            quota: None,
            generation,
        }
    }
}

//! The engine's extension points: quota stores, backend factories and combined backends, and the calls the engine hands them.

use std::fmt;
use std::sync::Arc;

use tollgate_core::{Decision, Rate};
use tollgate_quota::{CommitOutcome, Ledger, QuotaError, Reservation};

use crate::backend::{BackendError, LimitBackend, LimitKey, Undo};
use crate::metrics::{BackendHealth, QuotaStoreStats};
use crate::policy::LimitSpec;

/// Decides the policy's quota instead of the engine's own [`Ledger`]: a store shared by
/// several engines (a fleet of gateways counting one company's calls on Redis) registers
/// itself with [`EngineBuilder::quota_store`](crate::EngineBuilder::quota_store). It is handed the engine's ledger, which
/// still resolves keys to users and companies, holds the plans and raises the notices
/// (see [`Ledger::target`] and [`Ledger::record_shared`]).
pub trait QuotaStore: Send + Sync + fmt::Debug {
    /// Records a call of `cost` by the holder of `key` at `now` (Unix nanoseconds) and
    /// decides it, like [`Ledger::record`]. A store that cannot decide returns
    /// [`QuotaError::Unavailable`] (the engine refuses the request as unavailable).
    fn record(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<tollgate_quota::QuotaDecision, QuotaError>;

    /// Records a call like [`record`](Self::record) when the store was just found
    /// unreachable during the same request (`why`: a [`CombinedBackend`] said so in
    /// [`CombinedDecision::failed`]): a store answers by its failure policy without a
    /// second attempt. The default asks [`record`](Self::record).
    fn record_failed(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
        why: &str,
    ) -> Result<tollgate_quota::QuotaDecision, QuotaError> {
        let _ = why;
        self.record(ledger, key, cost, now)
    }

    /// Reserves `cost` for a call whose final cost is known only afterwards, like
    /// [`Ledger::reserve`] (the default), which it counts at once in the store.
    fn reserve(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<Reservation, QuotaError> {
        ledger.reserve(key, cost, i128::from(now))
    }

    /// Settles a reservation at its final cost, once per idempotency key and period, like
    /// [`Ledger::commit`] (the default).
    fn commit(
        &self,
        ledger: &Ledger,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> CommitOutcome {
        ledger.commit(r, final_cost, idempotency_key)
    }

    /// Releases a reservation, like [`Ledger::refund`] (the default).
    fn refund(&self, ledger: &Ledger, r: Reservation) {
        ledger.refund(r)
    }

    /// Whether a call may wait on something outside the process (a server): what
    /// [`Engine::decides_remotely`](crate::Engine::decides_remotely) reports. The
    /// default is `true`; a store in this host's memory says `false`.
    fn is_remote(&self) -> bool {
        true
    }

    /// The store as [`Any`](std::any::Any), for a [`CombinedBackend`] that recognizes
    /// its own stores. The default is `None`.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The health of the remote store (breaker, calls, errors, latency), for metrics.
    /// The default is `None`.
    fn store_health(&self) -> Option<BackendHealth> {
        None
    }

    /// How the store decided calls (remotely, locally, refused) and what it has yet to
    /// send, for metrics. The default is `None`.
    fn quota_stats(&self) -> Option<QuotaStoreStats> {
        None
    }
}

/// Builds the state behind a limit whose `backend` is not `"memory"`.
pub trait BackendFactory: Send + Sync {
    /// The backend for `limit` at `rate` (the limit's own rate or an override's).
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String>;

    /// A backend that decides several of a request's limits (and its quota call) in one
    /// step, asked before the limits one by one (see [`CombinedBackend`]). The engine
    /// asks once, when it is built. The default is `None`.
    fn combined(&self) -> Option<Arc<dyn CombinedBackend>> {
        None
    }
}

/// One limit of a request, as the engine hands it to a [`CombinedBackend`]: what it
/// would pass to the limit's [`LimitBackend::acquire`].
#[derive(Clone, Copy, Debug)]
pub struct LimitCall<'a> {
    /// The limit's backend (a combined backend recognizes its own with
    /// [`LimitBackend::as_any`]).
    pub backend: &'a dyn LimitBackend,
    /// The request's key for the limit.
    pub key: LimitKey<'a>,
    /// The cost.
    pub cost: u64,
    /// Whether the limit is a shadow limit (its denial does not refuse the request).
    pub shadow: bool,
}

/// A request's quota call, as the engine hands it to a [`CombinedBackend`]: what it
/// would pass to [`QuotaStore::record`].
#[derive(Clone, Copy, Debug)]
pub struct QuotaCall<'a> {
    /// The engine's quota store.
    pub store: &'a dyn QuotaStore,
    /// The engine's ledger.
    pub ledger: &'a Ledger,
    /// The quota key's value.
    pub key: &'a str,
    /// The cost.
    pub cost: u64,
}

/// What a [`CombinedBackend`] decided.
#[derive(Debug, Default)]
pub struct CombinedDecision {
    /// The answers for the first `limits.len()` limits, in order, as their backends'
    /// `acquire` would have given them one after the other; the engine asks the rest one
    /// by one. An allowed answer with an [`Undo`] is given back through its backend if
    /// the request is refused later.
    pub limits: Vec<Result<(Decision, Option<Undo>), BackendError>>,
    /// The quota's answer, as [`QuotaStore::record`] would give it; `None` leaves the
    /// quota to the engine. Only with an answer for every limit, all of them allowed or
    /// shadow limits.
    pub quota: Option<Result<tollgate_quota::QuotaDecision, QuotaError>>,
    /// The store could not be reached while deciding the request's quota call too
    /// (why): every limit it answered is [`BackendError::Unavailable`] (the engine
    /// applies their failure policies), and the engine's quota call for this request,
    /// if it gets that far, goes to [`QuotaStore::record_failed`] instead of asking the
    /// store again. `None` when the quota call was not part of the failed attempt.
    pub failed: Option<String>,
}

/// Decides a request's limits, and possibly its quota call, in one step: a remote store
/// answers them in one round trip, atomically, instead of one round trip per limit
/// (tollgate-redis). Registered through [`BackendFactory::combined`].
pub trait CombinedBackend: Send + Sync + fmt::Debug {
    /// Decides `limits` (those of the request that apply, in the policy's order) and,
    /// when given, the quota call, all or nothing: nothing is taken unless every
    /// enforced limit allows the request and the quota counts it. `None` when it
    /// cannot (a limit on another backend, keys in different cluster slots, a state it
    /// must repair first): the engine then decides limit by limit.
    fn decide(
        &self,
        limits: &[LimitCall<'_>],
        quota: Option<&QuotaCall<'_>>,
        now: u64,
    ) -> Option<CombinedDecision>;
}

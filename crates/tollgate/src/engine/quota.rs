//! Quota reservations through the engine: reserve now, settle at the final cost (commit or refund).

use std::sync::Arc;

use tollgate_quota::{CommitOutcome, Ledger, QuotaError, Reservation};

use super::events::Event;
use super::extend::QuotaStore;
use super::instance::Engine;

/// Settles quota reservations: the ledger, and the quota store that decided them (see
/// [`Engine::quota_settler`]).
#[derive(Clone, Debug)]
pub struct QuotaSettler {
    pub(super) ledger: Arc<Ledger>,
    pub(super) store: Option<Arc<dyn QuotaStore>>,
}

impl QuotaSettler {
    /// Settles `r` at its final cost, once per idempotency key and period.
    pub fn commit(&self, r: Reservation, final_cost: u64, idempotency_key: &str) -> CommitOutcome {
        match &self.store {
            Some(s) => s.commit(&self.ledger, r, final_cost, idempotency_key),
            None => self.ledger.commit(r, final_cost, idempotency_key),
        }
    }

    /// Releases `r` without counting it.
    pub fn refund(&self, r: Reservation) {
        match &self.store {
            Some(s) => s.refund(&self.ledger, r),
            None => self.ledger.refund(r),
        }
    }
}

impl Engine {
    /// Reserves `cost` of `key`'s quota for a call whose final cost is known only
    /// afterwards, at `now` (Unix nanoseconds; `None`: the engine's clock), through the
    /// quota store if the engine has one (the fleet sees the reservation). It counts at
    /// once; settle it with [`commit_quota`](Self::commit_quota) or
    /// [`refund_quota`](Self::refund_quota) (or a [`QuotaSettler`], which may outlive
    /// the engine). A notice it raises goes to the [event channel](Self::events) like
    /// those of [`decide`](Self::decide). `None` when the policy has no quota.
    pub fn reserve_quota(
        &self,
        key: &str,
        cost: u64,
        now: Option<u64>,
    ) -> Option<Result<Reservation, QuotaError>> {
        let ledger = self.ledger.as_ref()?;
        let now = now.unwrap_or_else(|| self.now());
        let result = match &self.quota_store {
            Some(store) => store.reserve(ledger, key, cost, now),
            None => ledger.reserve(key, cost, i128::from(now)),
        };
        if matches!(&result, Ok(r) if r.decision.event.is_some()) {
            for e in ledger.drain_events() {
                self.emit(Event::Quota(e));
            }
        }
        Some(result)
    }

    /// Settles a reservation of [`reserve_quota`](Self::reserve_quota) at its final
    /// cost, once per idempotency key and period (through the quota store, if any).
    /// `None` when the policy has no quota.
    pub fn commit_quota(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> Option<CommitOutcome> {
        Some(self.quota_settler()?.commit(r, final_cost, idempotency_key))
    }

    /// Releases a reservation of [`reserve_quota`](Self::reserve_quota) without
    /// counting it. Does nothing when the policy has no quota.
    pub fn refund_quota(&self, r: Reservation) {
        if let Some(s) = self.quota_settler() {
            s.refund(r);
        }
    }

    /// What settles this engine's reservations, kept alive apart from the engine (a
    /// C caller's reservation may outlive its engine). `None` when the policy has no
    /// quota.
    pub fn quota_settler(&self) -> Option<QuotaSettler> {
        Some(QuotaSettler {
            ledger: Arc::clone(self.ledger.as_ref()?),
            store: self.quota_store.clone(),
        })
    }
}

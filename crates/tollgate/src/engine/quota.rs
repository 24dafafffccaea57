//! Quota reservations through the engine: reserve now, settle at the final cost (commit or refund).

use std::sync::Arc;

use crossbeam_channel::Sender;

use tollgate_quota::{CommitOutcome, Ledger, QuotaError, Reservation};

use super::events::Event;
use super::extend::QuotaStore;
use super::instance::Engine;

/// Settles quota reservations: the ledger, the quota store that decided them (see
/// [`Engine::quota_settler`]), and the engine's event channel for the notices a commit
/// raises.
#[derive(Clone, Debug)]
pub struct QuotaSettler {
    pub(super) ledger: Arc<Ledger>,
    pub(super) store: Option<Arc<dyn QuotaStore>>,
    pub(super) events: Sender<Event>,
}

impl QuotaSettler {
    /// Settles `r` at its final cost, once per idempotency key and period. A final cost
    /// above [`MAX_COST`](tollgate_quota::MAX_COST) is refused
    /// ([`CommitOutcome::TooLarge`]). A notice the commit raises (its usage crossed the
    /// warning or the limit) goes to the engine's [event channel](Engine::events); one
    /// that finds the channel full (or the engine gone) is dropped.
    pub fn commit(&self, r: Reservation, final_cost: u64, idempotency_key: &str) -> CommitOutcome {
        let outcome = self.settle_commit(r, final_cost, idempotency_key);
        for e in self.ledger.drain_events() {
            let _ = self.events.try_send(Event::Quota(e));
        }
        outcome
    }

    /// The commit itself; its notices stay in the ledger for the caller to drain.
    fn settle_commit(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> CommitOutcome {
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
    /// those of [`decide`](Self::decide). `None` when the policy has no quota. While the
    /// journal has been failing for longer than `[quota.journal] fail_closed_after`, it
    /// reserves nothing and answers [`QuotaError::JournalFailing`] (as `decide` refuses
    /// with [`Reason::JournalFailing`](crate::Reason::JournalFailing)).
    pub fn reserve_quota(
        &self,
        key: &str,
        cost: u64,
        now: Option<u64>,
    ) -> Option<Result<Reservation, QuotaError>> {
        let ledger = self.ledger.as_ref()?;
        // Refused like `decide`'s requests while the journal has failed for too long.
        let bound = self
            .compiled
            .load()
            .policy
            .quota
            .as_ref()
            .and_then(|q| q.journal_fail_closed_after);
        if let Some(bound) = bound {
            if let Some(failing) = ledger.journal().and_then(|j| j.failing_for()) {
                if failing > bound {
                    self.journal_refused.add(1);
                    return Some(Err(QuotaError::JournalFailing {
                        failing_for: failing,
                        fail_closed_after: bound,
                    }));
                }
            }
        }
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
    /// cost, once per idempotency key and period (through the quota store, if any). A
    /// notice the commit raises goes to the [event channel](Self::events) like those of
    /// [`decide`](Self::decide). `None` when the policy has no quota.
    pub fn commit_quota(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
    ) -> Option<CommitOutcome> {
        let s = self.quota_settler()?;
        let outcome = s.settle_commit(r, final_cost, idempotency_key);
        for e in s.ledger.drain_events() {
            self.emit(Event::Quota(e));
        }
        Some(outcome)
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
            events: self.events_tx.clone(),
        })
    }
}

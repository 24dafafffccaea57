//! Reservations: calls reserved before their final cost is known (through the one charge
//! path), then committed (once per idempotency key and period) or refunded.

use std::sync::Arc;

use serde::Serialize;

use crate::counter::SharedCharge;
use crate::journal::Entry;

use super::charge::Decider;
use super::decision::{Outcome, QuotaDecision};
use super::directory::UserEntry;
use super::error::QuotaError;
use super::state::Ledger;

/// Calls reserved before their cost is known; commit or refund it.
#[derive(Debug)]
#[must_use = "a reservation holds quota until it is committed or refunded"]
pub struct Reservation {
    user: Arc<UserEntry>,
    /// Indices of the periods charged, in the company's and the user's usage.
    company_period: usize,
    user_period: usize,
    cost: u64,
    /// The decision made when reserving.
    pub decision: QuotaDecision,
}

impl Reservation {
    /// The reservation of `cost` that `decision` made: a refused one holds nothing.
    fn of(
        user: Arc<UserEntry>,
        company_period: usize,
        user_period: usize,
        cost: u64,
        decision: QuotaDecision,
    ) -> Self {
        let held = if decision.outcome == Outcome::Refused {
            0
        } else {
            cost
        };
        Reservation {
            user,
            company_period,
            user_period,
            cost: held,
            decision,
        }
    }

    /// What the reservation holds (0 when it was refused).
    pub fn held(&self) -> u64 {
        self.cost
    }

    /// The company charged.
    pub fn company(&self) -> &str {
        &self.user.company.id
    }

    /// The period charged: its start and end (Unix seconds) and its label.
    pub fn period(&self) -> (i64, i64, String) {
        let p = &self.user.company.usage.period(self.company_period).period;
        (p.start().as_second(), p.end().as_second(), p.label())
    }
}

/// What happened to a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOutcome {
    /// The final cost was recorded.
    Committed,
    /// A commit with the same idempotency key was already recorded in this period: this
    /// one was released and counted nothing.
    Duplicate,
}

impl Ledger {
    /// Reserves `cost` for a call whose final cost is known only afterwards: it counts
    /// at once (so concurrent calls see it) and is settled by [`Ledger::commit`] or
    /// [`Ledger::refund`]. A refused reservation is an `Ok` whose decision says so and
    /// which holds nothing.
    pub fn reserve(&self, key: &str, cost: u64, now: i128) -> Result<Reservation, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        self.charge(user, cost, now, Decider::Local, |decision, ci, ui| {
            Reservation::of(Arc::clone(user), ci, ui, cost, decision)
        })
    }

    /// [`reserve`](Self::reserve) for a quota decided by a shared counter (see
    /// [`record_shared`](Self::record_shared)): a counted reservation holds `cost` in
    /// this ledger's counters until it is settled ([`commit_shared`](Self::commit_shared)
    /// or [`refund`](Self::refund)); a refused one holds nothing.
    pub fn reserve_shared(
        &self,
        key: &str,
        cost: u64,
        now: i128,
        shared: SharedCharge,
    ) -> Result<Reservation, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        self.charge(
            user,
            cost,
            now,
            Decider::Shared(shared),
            |decision, ci, ui| Reservation::of(Arc::clone(user), ci, ui, cost, decision),
        )
    }

    /// Settles a reservation at its final cost. With the same `idempotency_key` in the
    /// same period, only the first commit counts; a retried commit releases its hold and
    /// reports [`CommitOutcome::Duplicate`].
    pub fn commit(&self, r: Reservation, final_cost: u64, idempotency_key: &str) -> CommitOutcome {
        self.settle_commit(r, final_cost, idempotency_key, None)
    }

    /// [`commit`](Self::commit) for a quota decided by a shared counter, which already
    /// decided whether `idempotency_key` was seen in the period (by any ledger sharing
    /// it): `first` says so. The key is remembered here too.
    pub fn commit_shared(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
        first: bool,
    ) -> CommitOutcome {
        self.settle_commit(r, final_cost, idempotency_key, Some(first))
    }

    fn settle_commit(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
        first: Option<bool>,
    ) -> CommitOutcome {
        let company = &*r.user.company;
        let company_period = company.usage.period(r.company_period);
        let new_here = company
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(company_period.period.start())
            .or_default()
            .insert(idempotency_key.to_owned());
        let fresh = first.unwrap_or(new_here);
        let settle = if fresh { final_cost } else { 0 };
        let apply = || {
            company_period.counter.settle(r.cost, settle);
            r.user
                .usage
                .period(r.user_period)
                .counter
                .settle(r.cost, settle);
        };
        match &self.journal {
            // The idempotency key and the settled usage land in the same batch.
            Some(j) => {
                let key = new_here.then(|| Entry::Commit {
                    company: company.id.clone(),
                    period_start: company_period.period.start().as_second(),
                    idempotency_key: idempotency_key.to_owned(),
                });
                j.append_with(key, apply);
            }
            None => apply(),
        }
        if fresh {
            CommitOutcome::Committed
        } else {
            CommitOutcome::Duplicate
        }
    }

    /// Releases a reservation: the call failed and is not billed.
    pub fn refund(&self, r: Reservation) {
        let company = &*r.user.company;
        company
            .usage
            .period(r.company_period)
            .counter
            .settle(r.cost, 0);
        r.user.usage.period(r.user_period).counter.settle(r.cost, 0);
    }
}

//! Reservations: calls reserved before their final cost is known (through the one charge
//! path), then committed (once per idempotency key and period) or refunded.

use std::sync::Arc;

use serde::Serialize;

use crate::counter::SharedCharge;
use crate::journal::Entry;

use super::charge::{Decider, Taken};
use super::decision::{Outcome, QuotaDecision};
use super::directory::UserEntry;
use super::error::QuotaError;
use super::state::Ledger;

/// The largest final cost a commit accepts: 2⁵³ (about 9.0e15), the largest integer a
/// JSON number, a JavaScript number or a Lua (Redis script) number holds exactly. A
/// larger final cost is not a cost but a bug or an attack (a client-supplied size, a
/// negative number cast to unsigned): [`Ledger::commit`] refuses it with
/// [`CommitOutcome::TooLarge`] instead of counting it. Anything at or below it is
/// counted, and usage saturates at [`MAX_USAGE`](crate::ledger::MAX_USAGE) rather than
/// wrap.
pub const MAX_COST: u64 = 1 << 53;

/// Calls reserved before their cost is known; commit or refund it.
#[derive(Debug)]
#[must_use = "a reservation holds quota until it is committed or refunded"]
pub struct Reservation {
    user: Arc<UserEntry>,
    /// The periods charged and what each counter took.
    taken: Taken,
    /// The cost held (0 when refused), as a shared store counted it.
    cost: u64,
    /// When it was reserved (Unix nanoseconds): the time of the notices its commit raises.
    reserved_at: i128,
    /// The decision made when reserving.
    pub decision: QuotaDecision,
}

impl Reservation {
    /// The reservation of `cost` that `decision` made: a refused one holds nothing.
    fn of(
        user: Arc<UserEntry>,
        taken: Taken,
        cost: u64,
        now: i128,
        decision: QuotaDecision,
    ) -> Self {
        let held = if decision.outcome == Outcome::Refused {
            0
        } else {
            cost
        };
        Reservation {
            user,
            taken,
            cost: held,
            reserved_at: now,
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
        let p = &self
            .user
            .company
            .usage
            .period(self.taken.company_period)
            .period;
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
    /// The final cost was above [`MAX_COST`]: an error, nothing of it was counted. The
    /// reservation is settled at what it held (the calls admitted stay counted, so a bad
    /// final cost neither wraps usage nor makes a call free), and its idempotency key is
    /// not remembered.
    TooLarge,
}

impl Ledger {
    /// Reserves `cost` for a call whose final cost is known only afterwards: it counts
    /// at once (so concurrent calls see it) and is settled by [`Ledger::commit`] or
    /// [`Ledger::refund`]. A refused reservation is an `Ok` whose decision says so and
    /// which holds nothing.
    pub fn reserve(&self, key: &str, cost: u64, now: i128) -> Result<Reservation, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key, now)?;
        self.charge(user, cost, now, Decider::Local, |decision, taken| {
            Reservation::of(Arc::clone(user), taken, cost, now, decision)
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
        let user = self.resolve(&keys, key, now)?;
        self.charge(
            user,
            cost,
            now,
            Decider::Shared(shared),
            |decision, taken| Reservation::of(Arc::clone(user), taken, cost, now, decision),
        )
    }

    /// Settles a reservation at its final cost. With the same `idempotency_key` in the
    /// same period, only the first commit counts; a retried commit releases its hold and
    /// reports [`CommitOutcome::Duplicate`]. A final cost above [`MAX_COST`] is refused
    /// ([`CommitOutcome::TooLarge`]). A commit that takes usage across the warning or the
    /// limit raises its notice, as a call would (see [`Ledger::drain_events`]), dated at
    /// the reservation's time.
    pub fn commit(&self, r: Reservation, final_cost: u64, idempotency_key: &str) -> CommitOutcome {
        self.settle_commit(r, final_cost, idempotency_key, None, None)
    }

    /// [`commit`](Self::commit) for a quota decided by a shared counter, which already
    /// decided whether `idempotency_key` was seen in the period (by any ledger sharing
    /// it): `first` says so. The key is remembered here too. `shared_used` is the shared
    /// counter's usage after the settlement, if known: the notices follow the shared
    /// usage's move (as for [`record_shared`](Self::record_shared)); `None` (unknown)
    /// raises none. A final cost above [`MAX_COST`] is refused as by `commit` (the store
    /// must refuse it before applying it).
    pub fn commit_shared(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
        first: bool,
        shared_used: Option<u64>,
    ) -> CommitOutcome {
        let shared = Some(shared_used);
        self.settle_commit(r, final_cost, idempotency_key, Some(first), shared)
    }

    fn settle_commit(
        &self,
        r: Reservation,
        final_cost: u64,
        idempotency_key: &str,
        first: Option<bool>,
        shared_used: Option<Option<u64>>,
    ) -> CommitOutcome {
        if final_cost > MAX_COST {
            // Dropped: what it holds stays counted.
            return CommitOutcome::TooLarge;
        }
        let company = &*r.user.company;
        let period = &company.usage.period(r.taken.company_period).period;
        let new_here = company
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(period.start())
            .or_default()
            .insert(idempotency_key.to_owned());
        let fresh = first.unwrap_or(new_here);
        let settle = if fresh { final_cost } else { 0 };
        // The idempotency key and the settled usage land in the same batch.
        let entry = (self.journal.is_some() && new_here).then(|| Entry::Commit {
            company: company.id.clone(),
            period_start: period.start().as_second(),
            idempotency_key: idempotency_key.to_owned(),
        });
        let shared = match shared_used {
            // Local: the notices follow the company counter's own move.
            None => None,
            Some(Some(used)) => Some(shared_move(used, r.cost, settle)),
            // Shared, usage unknown: no move to judge, no notice.
            Some(None) => Some((0, 0)),
        };
        self.settle(&r.user, r.taken, settle, shared, r.reserved_at, entry);
        if fresh {
            CommitOutcome::Committed
        } else {
            CommitOutcome::Duplicate
        }
    }

    /// Releases a reservation: the call failed and is not billed. It gives back exactly
    /// what the reservation took.
    pub fn refund(&self, r: Reservation) {
        self.settle(&r.user, r.taken, 0, None, r.reserved_at, None);
    }
}

/// A shared counter's move, `(before, after)`, for a settlement that replaced `held` by
/// `settle` and left it at `used` (saturating: nothing wraps).
fn shared_move(used: u64, held: u64, settle: u64) -> (u64, u64) {
    if settle >= held {
        (used.saturating_sub(settle - held), used)
    } else {
        (used.saturating_add(held - settle), used)
    }
}

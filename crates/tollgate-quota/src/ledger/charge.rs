//! The one charge path: every call recorded or reserved, decided by this ledger's own
//! counters or by a counter shared with other ledgers, is charged by [`Ledger::charge`],
//! which applies the hard cap, the verdict and the notice rule in one place.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::counter::SharedCharge;

use super::decision::{Outcome, QuotaDecision, QuotaTarget};
use super::directory::UserEntry;
use super::error::QuotaError;
use super::state::Ledger;

/// Who decides whether a call is counted.
#[derive(Clone, Copy, Debug)]
pub(super) enum Decider {
    /// This ledger's company counter, against the hard cap.
    Local,
    /// A counter shared with other ledgers already decided (see
    /// [`Ledger::record_shared`]).
    Shared(SharedCharge),
}

impl Ledger {
    /// Records a call of `cost` by the holder of `key` at `now` (Unix nanoseconds) and
    /// decides it. A refused call counts nothing.
    pub fn record(&self, key: &str, cost: u64, now: i128) -> Result<QuotaDecision, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        self.charge(user, cost, now, Decider::Local, |d, _, _| d)
    }

    /// Records a call whose quota a shared counter decided (see [`QuotaTarget`]): a
    /// counted call adds `cost` to this ledger's user and company counters (journaled
    /// like any call, so the ledger keeps this instance's share durably) without this
    /// ledger's own hard-cap check, and the outcome and notices follow the *shared*
    /// usage. A notice is raised when the shared counter crossed a threshold and this
    /// ledger has not raised it for the company and period before (exactly once per
    /// ledger; the shared store sees a crossing once per counter). A refused call counts
    /// nothing.
    pub fn record_shared(
        &self,
        key: &str,
        cost: u64,
        now: i128,
        shared: SharedCharge,
    ) -> Result<QuotaDecision, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        self.charge(user, cost, now, Decider::Shared(shared), |d, _, _| d)
    }

    /// Where a call of `key` at `now` would be charged, and this ledger's own count for
    /// the company and period, without charging anything. Unknown keys and disabled users
    /// are errors, as in [`record`](Self::record).
    pub fn target(&self, key: &str, now: i128) -> Result<QuotaTarget, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key)?;
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (_, cc) = company.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        Ok(QuotaTarget {
            company: company.id.clone(),
            user: user.id.clone(),
            period_start: cc.period.start().as_second(),
            period_end: cc.period.end().as_second(),
            period: cc.period.label(),
            limit,
            hard_cap: self.config.thresholds(limit).hard_cap(),
            local_used: cc.counter.used(),
        })
    }

    /// Charges `cost` to `user` and its company at `now`, as `decider` decides, and hands
    /// the decision and the indices of the two period counters charged to `then`.
    ///
    /// [`Decider::Local`]: the company's counter counts the call unless that would pass
    /// the hard cap. [`Decider::Shared`]: a counted call is added to both counters as it
    /// is, and the verdict and notices follow the shared usage. Either way a counted call
    /// adds to the user's counter too, its verdict follows the limit, and the notice rule
    /// is [`Thresholds::crossing`](super::config::Thresholds::crossing).
    #[inline(always)]
    pub(super) fn charge<R>(
        &self,
        user: &Arc<UserEntry>,
        cost: u64,
        now: i128,
        decider: Decider,
        then: impl FnOnce(QuotaDecision, usize, usize) -> R,
    ) -> Result<R, QuotaError> {
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (ci, cc) = company.usage.counter_at(spec, now)?;
        let (ui, uc) = user.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        let thresholds = self.config.thresholds(limit);
        let charge = match decider {
            Decider::Local => cc.counter.charge(cost, thresholds.hard_cap()),
            Decider::Shared(shared) => {
                if let SharedCharge::Counted { .. } = shared {
                    cc.counter.add(cost);
                }
                shared
            }
        };
        let mut decision = QuotaDecision {
            outcome: Outcome::Refused,
            used: 0,
            limit,
            resets_at: cc.period.end(),
            event: None,
        };
        match charge {
            SharedCharge::Refused { used } => decision.used = used,
            SharedCharge::Counted { prev, used } => {
                uc.counter.add(cost);
                decision.used = used;
                decision.outcome = thresholds.outcome(used);
                let shared = matches!(decider, Decider::Shared(_));
                if let Some(kind) = thresholds.crossing(&cc.counter, prev, used, shared) {
                    let company = &company.settings.load().company;
                    decision.event = self
                        .notice(company, &cc.period, kind, used, limit, now)
                        .map(Box::new);
                }
            }
        }
        Ok(then(decision, ci, ui))
    }
}

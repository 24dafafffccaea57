//! The one charge path: every call recorded or reserved, decided by this ledger's own
//! counters or by a counter shared with other ledgers, is charged by [`Ledger::charge`],
//! and every settlement of a reservation by [`Ledger::settle`]; both apply the verdict
//! and the notice rule through [`Ledger::raise`], so a threshold crossed by a record, a
//! reservation or a commit raises its notice the same way, once.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::counter::SharedCharge;
use crate::journal::Entry;

use super::decision::{Outcome, QuotaDecision, QuotaEvent, QuotaTarget};
use super::directory::{CompanyEntry, UserEntry};
use super::error::QuotaError;
use super::state::{user_standing, Ledger, ResolvedKey};
use super::usage::PeriodUsage;

/// Who decides whether a call is counted.
#[derive(Clone, Copy, Debug)]
pub(super) enum Decider {
    /// This ledger's company counter, against the hard cap.
    Local,
    /// A counter shared with other ledgers already decided (see
    /// [`Ledger::record_shared`]).
    Shared(SharedCharge),
}

/// What a charge took from this ledger's counters: the periods charged (indices in the
/// company's and the user's usage) and the units each counter actually moved (less than
/// the cost only where a counter saturated), so that a reservation gives back exactly
/// what it took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Taken {
    pub(super) company_period: usize,
    pub(super) user_period: usize,
    pub(super) company: u64,
    pub(super) user: u64,
}

impl Ledger {
    /// Records a call of `cost` by the holder of `key` at `now` (Unix nanoseconds) and
    /// decides it. A refused call counts nothing.
    pub fn record(&self, key: &str, cost: u64, now: i128) -> Result<QuotaDecision, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key, now)?;
        self.charge(user, cost, now, Decider::Local, |d, _| d)
    }

    /// [`record`](Self::record) for a key already resolved by
    /// [`resolve_key`](Self::resolve_key) at the same `now`: the key is not looked up
    /// again, but its user's standing (removed, disabled, company suspended or
    /// terminated) is checked again, so a change made since the key was resolved is
    /// still answered as `record` would.
    #[inline]
    pub fn record_resolved(
        &self,
        key: ResolvedKey<'_>,
        cost: u64,
        now: i128,
    ) -> Result<QuotaDecision, QuotaError> {
        user_standing(key.user, key.key)?;
        self.charge(key.user, cost, now, Decider::Local, |d, _| d)
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
        let user = self.resolve(&keys, key, now)?;
        self.charge(user, cost, now, Decider::Shared(shared), |d, _| d)
    }

    /// Raises the notices a counter shared with other ledgers has *claimed* for this
    /// ledger: `warning` and/or `overage` of `company` in the period at `now` (Unix
    /// nanoseconds), with the shared usage `used`. A shared store that makes each notice
    /// once for the whole fleet (it claims the crossing atomically, e.g. in Redis) calls
    /// [`record_shared`](Self::record_shared) with a charge that crosses nothing and
    /// this for what it claimed, also later than the call (a crossing decided during an
    /// outage is claimed when the store answers again). Each kind is still raised at
    /// most once per ledger, company and period (the counter's flags), journaled before
    /// it is raised like every notice. Returns the most severe notice raised.
    pub fn notify_shared(
        &self,
        company: &str,
        now: i128,
        (warning, overage): (bool, bool),
        used: u64,
    ) -> Result<Option<Box<QuotaEvent>>, QuotaError> {
        let entry = self
            .directory()
            .companies
            .get(company)
            .cloned()
            .ok_or_else(|| QuotaError::UnknownCompany(company.to_owned()))?;
        let spec = || entry.settings.load().spec.clone();
        let (_, cc) = entry.usage.counter_at(spec, now)?;
        let crossings = cc
            .counter
            .take(crate::counter::Crossings { warning, overage });
        if crossings.is_none() {
            return Ok(None);
        }
        let limit = entry.limit.load(Ordering::Relaxed);
        Ok(self.raise_all(&entry, cc, crossings, used, limit, now))
    }

    /// Where a call of `key` at `now` would be charged, and this ledger's own count for
    /// the company and period, without charging anything. Unknown keys and disabled users
    /// are errors, as in [`record`](Self::record).
    pub fn target(&self, key: &str, now: i128) -> Result<QuotaTarget, QuotaError> {
        let keys = self.keys.pin();
        let user = self.resolve(&keys, key, now)?;
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (_, cc) = company.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        let thresholds = self.percents.thresholds(limit);
        Ok(QuotaTarget {
            company: company.id.clone(),
            user: user.id.clone(),
            period_start: cc.period.start().as_second(),
            period_end: cc.period.end().as_second(),
            period: cc.period.label(),
            limit,
            hard_cap: thresholds.hard_cap(),
            warning: thresholds.warning(),
            local_used: cc.counter.used(),
        })
    }

    /// Charges `cost` to `user` and its company at `now`, as `decider` decides, and hands
    /// the decision and what was taken from the two period counters to `then`.
    ///
    /// [`Decider::Local`]: the company's counter counts the call unless that would pass
    /// the hard cap. [`Decider::Shared`]: a counted call is added to both counters as it
    /// is, and the verdict and notices follow the shared usage. Either way a counted call
    /// adds to the user's counter too, its verdict follows the limit, and its notices are
    /// [`raise`](Self::raise)d. Every addition saturates at
    /// [`MAX_USAGE`](crate::ledger::MAX_USAGE).
    #[inline(always)]
    pub(super) fn charge<R>(
        &self,
        user: &Arc<UserEntry>,
        cost: u64,
        now: i128,
        decider: Decider,
        then: impl FnOnce(QuotaDecision, Taken) -> R,
    ) -> Result<R, QuotaError> {
        let company = &*user.company;
        let spec = || company.settings.load().spec.clone();
        let (ci, cc) = company.usage.counter_at(spec, now)?;
        let (ui, uc) = user.usage.counter_at(spec, now)?;
        let limit = company.limit.load(Ordering::Relaxed);
        let mut taken = Taken {
            company_period: ci,
            user_period: ui,
            ..Taken::default()
        };
        let charge = match decider {
            Decider::Local => {
                let charge = cc
                    .counter
                    .charge(cost, self.percents.thresholds(limit).hard_cap());
                if let SharedCharge::Counted { prev, used } = charge {
                    taken.company = used - prev;
                }
                charge
            }
            Decider::Shared(shared) => {
                if let SharedCharge::Counted { .. } = shared {
                    let (prev, used) = cc.counter.add(cost);
                    taken.company = used - prev;
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
                let (uprev, uused) = uc.counter.add(cost);
                taken.user = uused - uprev;
                decision.used = used;
                let units = taken.company as i64; // at most MAX_USAGE = i64::MAX
                self.sink_move(&company.id, &user.id, &cc.period, 1, units);
                let shared = matches!(decider, Decider::Shared(_));
                let (outcome, event) = self.raise(company, cc, limit, prev, used, shared, now);
                decision.outcome = outcome;
                decision.event = event;
            }
        }
        Ok(then(decision, taken))
    }

    /// Replaces what a reservation `taken` from `user`'s counters by `settle` units in
    /// each (a commit at its final cost, or 0 for a refund), and raises the notices a
    /// rise crosses, as a charge does: on the company's counter's own move, or with
    /// `shared = Some((prev, used))` on a shared counter's move (the notices of a shared
    /// quota follow the shared usage). With a journal, `entry` (a commit's idempotency
    /// key) and the counter changes land in the same batch; the notices are raised after.
    /// Every change saturates at [`MAX_USAGE`](crate::ledger::MAX_USAGE) and at 0:
    /// nothing wraps.
    pub(super) fn settle(
        &self,
        user: &UserEntry,
        taken: Taken,
        settle: u64,
        shared: Option<(u64, u64)>,
        now: i128,
        entry: Option<Entry>,
    ) {
        let company = &*user.company;
        let cc = company.usage.period(taken.company_period);
        let uc = user.usage.period(taken.user_period);
        let apply = || {
            uc.counter.settle(taken.user, settle);
            cc.counter.settle(taken.company, settle)
        };
        let moved = match (&self.journal, entry) {
            (Some(j), Some(entry)) => j.append_with(Some(entry), apply).1,
            _ => apply(),
        };
        let units = super::sink::signed_move(moved);
        self.sink_move(&company.id, &user.id, &cc.period, 0, units);
        let (prev, used) = shared.unwrap_or(moved);
        if used > prev {
            let limit = company.limit.load(Ordering::Relaxed);
            self.raise(company, cc, limit, prev, used, shared.is_some(), now);
        }
    }

    /// The verdict on a move of the company's usage from `prev` to `used` in the period
    /// of `cc`, and the notices it raises (the rule of
    /// [`Thresholds::crossing`](super::config::Thresholds::crossing): each once per
    /// company and period, both when one move jumps past the warning and the limit). The
    /// notices are queued for [`Ledger::drain_events`]; the most severe one raised is
    /// returned too.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &self,
        company: &CompanyEntry,
        cc: &PeriodUsage,
        limit: u64,
        prev: u64,
        used: u64,
        shared: bool,
        now: i128,
    ) -> (Outcome, Option<Box<QuotaEvent>>) {
        let thresholds = self.percents.thresholds(limit);
        let outcome = thresholds.outcome(used);
        let crossings = thresholds.crossing(&cc.counter, prev, used, shared);
        if crossings.is_none() {
            return (outcome, None);
        }
        (
            outcome,
            self.raise_all(company, cc, crossings, used, limit, now),
        )
    }

    #[cold]
    #[inline(never)]
    fn raise_all(
        &self,
        company: &CompanyEntry,
        cc: &PeriodUsage,
        crossings: crate::counter::Crossings,
        used: u64,
        limit: u64,
        now: i128,
    ) -> Option<Box<QuotaEvent>> {
        let settings = company.settings.load();
        let mut event = None;
        for kind in crossings.iter() {
            if let Some(e) = self.notice(&settings.company, &cc.period, kind, used, limit, now) {
                event = Some(Box::new(e));
            }
        }
        event
    }
}

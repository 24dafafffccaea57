//! The quota on host-shared state: with `[state] shared` and a `[quota]`, every worker
//! process counts each company's calls of a period in one shared counter, so four nginx
//! workers enforce a company's monthly quota (and its hard cap) once, not four times.
//!
//! The counter lives in the region `<shared>.quota`: one slot per company (its key is
//! the company's fingerprint under the shared seeds), whose 64-bit state is the
//! period's tag (the period's start in minutes, modulo 2^24: about 32 years before a
//! tag repeats) and the usage (40 bits, up to 1.1e12 units a period; it saturates
//! there). A call in a new period starts the counter at 0. Each call is one
//! compare-exchange: counted unless it would pass the hard cap
//! ([`QuotaTarget::admit`](tollgate_quota::QuotaTarget::admit), the rule every counter
//! applies), and the process whose compare-exchange crossed the warning or the limit
//! raises that notice (through [`Ledger::record_shared`]), so each notice is raised by
//! one worker of the host. A company's counter is never evicted; the region holds
//! [`quota_capacity`](crate::shared_state::quota_capacity) companies and a new company beyond it is refused as unavailable.
//!
//! A counter absent from the region (a host restart clears `/dev/shm`) starts from the
//! usage the process's ledger knows for the period.
//!
//! Reservations (`reserve`/`commit`/`refund`) are still counted by each process's own
//! ledger, and per-user usage is each process's share: #19 leaves them open.

use std::path::Path;

use tollgate_core::shared::SharedStore;
use tollgate_core::{Algorithm, Decision, Fingerprinter};
use tollgate_quota::{Ledger, QuotaDecision, QuotaError, QuotaTarget, SharedCharge};

use super::extend::QuotaStore;

const USAGE_BITS: u32 = 40;
const USAGE_MAX: u64 = (1 << USAGE_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - USAGE_BITS)) - 1;

/// The counter "algorithm" of the quota region: a state is (period tag, usage), never
/// fresh while it counts something and never displaced.
#[derive(Clone, Copy, Debug)]
struct PeriodCounter;

impl Algorithm for PeriodCounter {
    fn capacity(&self) -> u64 {
        USAGE_MAX
    }

    fn decide(&self, state: u64, _now: u64, _cost: u64) -> (Decision, Option<u64>) {
        // Not used for deciding (the quota decides with `update`): a probe's answer.
        let used = state & USAGE_MAX;
        (
            Decision {
                limit: USAGE_MAX,
                remaining: USAGE_MAX - used,
                retry_after: 0,
                reset_after: 0,
            },
            None,
        )
    }

    fn refund(&self, state: u64, _now: u64, cost: u64) -> u64 {
        let used = (state & USAGE_MAX).saturating_sub(cost);
        (state & !USAGE_MAX) | used
    }

    fn is_fresh(&self, state: u64, _now: u64) -> bool {
        state == tollgate_core::FRESH
    }

    fn debt(&self, _state: u64, _now: u64) -> Option<u64> {
        None
    }
}

/// The host-shared quota counter (see the [module docs](self)).
#[derive(Debug)]
pub(super) struct SharedQuota {
    store: SharedStore<u128, PeriodCounter>,
    hasher: Fingerprinter,
}

impl SharedQuota {
    pub(super) fn open(
        path: &Path,
        capacity: usize,
        hasher: Fingerprinter,
    ) -> Result<Self, String> {
        let store = SharedStore::open_with_layout(path, capacity, PeriodCounter, "engine-quota")
            .map_err(|e| e.to_string())?;
        Ok(SharedQuota { store, hasher })
    }

    /// The period tag of `t`'s period.
    fn tag(t: &QuotaTarget) -> u64 {
        ((t.period_start.max(0) as u64) / 60) & TAG_MASK
    }

    /// Counts `cost` on `t`'s company counter unless it would pass the hard cap.
    fn charge(&self, t: &QuotaTarget, cost: u64) -> Result<SharedCharge, QuotaError> {
        let key = self.hasher.of_parts(&["quota", &t.company]);
        let tag = Self::tag(t);
        self.store
            .update(&key, 0, false, |state| {
                let used = if state == tollgate_core::FRESH {
                    // Not in the region: what this process knows of the period.
                    t.local_used.min(USAGE_MAX)
                } else if state >> USAGE_BITS == tag {
                    state & USAGE_MAX
                } else {
                    0 // a new period
                };
                match t.admit(used, cost) {
                    SharedCharge::Counted { prev, used } => {
                        let used = used.min(USAGE_MAX);
                        (
                            SharedCharge::Counted { prev, used },
                            Some((tag << USAGE_BITS) | used),
                        )
                    }
                    refused => (refused, None),
                }
            })
            .map_err(|full| {
                QuotaError::Unavailable(format!(
                    "the host-shared quota region holds {} companies and is full",
                    full.capacity
                ))
            })
    }
}

impl QuotaStore for SharedQuota {
    fn record(
        &self,
        ledger: &Ledger,
        key: &str,
        cost: u64,
        now: u64,
    ) -> Result<QuotaDecision, QuotaError> {
        let at = i128::from(now);
        let t = ledger.target(key, at)?;
        let charge = self.charge(&t, cost)?;
        ledger.record_shared(key, cost, at, charge)
    }

    fn is_remote(&self) -> bool {
        false // a shared mapping of this host: no call waits on a server
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

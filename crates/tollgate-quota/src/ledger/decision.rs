//! What the ledger answers for a call: the [`QuotaDecision`] and its [`Outcome`], the
//! notices ([`QuotaEvent`]), and, for quotas decided by a counter shared with other
//! ledgers, where a call would be charged ([`QuotaTarget`]) and the admission rule.

use jiff::Timestamp;
use serde::Serialize;

use crate::counter::{admit, SharedCharge};

/// A notice the host turns into an email or an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuotaEvent {
    /// Usage crossed the early-warning threshold.
    Warning {
        /// The company.
        company: String,
        /// The period's label, e.g. "2026-11".
        period: String,
        /// Usage after the call that crossed the threshold.
        used: u64,
        /// The limit at that moment.
        limit: u64,
    },
    /// Usage went over the limit: one notice per company and period.
    Overage {
        /// The company.
        company: String,
        /// The period's label.
        period: String,
        /// Usage after the call that went over.
        used: u64,
        /// The limit at that moment.
        limit: u64,
        /// The smallest configured plan that would cover this usage, if any.
        suggested_plan: Option<String>,
    },
}

/// What [`Ledger::record`](super::Ledger::record) answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuotaDecision {
    /// The verdict.
    pub outcome: Outcome,
    /// The company's usage in the period after this call (unchanged if refused).
    pub used: u64,
    /// The company's limit for the period.
    pub limit: u64,
    /// When the period ends and usage starts again at zero.
    pub resets_at: Timestamp,
    /// A notice this call raised, if it crossed a threshold (boxed: rare, and it keeps
    /// the decision small on the hot path).
    pub event: Option<Box<QuotaEvent>>,
}

/// The verdict on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within the limit.
    Within,
    /// Over the limit but under the hard cap: served, and the company is notified.
    OverLimit,
    /// Over the hard cap: refused, nothing counted.
    Refused,
}

/// Where a call would be charged, for a quota decided by a counter shared with other
/// ledgers (a fleet of instances counting on Redis): see [`Ledger::target`](super::Ledger::target) and
/// [`Ledger::record_shared`](super::Ledger::record_shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaTarget {
    /// The company charged.
    pub company: String,
    /// The user charged.
    pub user: String,
    /// The period the call falls in: start (Unix seconds).
    pub period_start: i64,
    /// The period's end (Unix seconds, exclusive).
    pub period_end: i64,
    /// The period's label, e.g. "2026-11".
    pub period: String,
    /// The company's limit for the period.
    pub limit: u64,
    /// Usage above which calls are refused (`None`: never refused).
    pub hard_cap: Option<u64>,
    /// Usage at which the early warning is raised (`None`: no warning configured): a
    /// shared store that claims each notice once for the fleet needs to know when a
    /// move crossed it.
    pub warning: Option<u64>,
    /// The company's usage in the period as *this* ledger counted it: the calls it
    /// recorded, including what its journal restored.
    pub local_used: u64,
}

impl QuotaTarget {
    /// The charge a shared counter at `used` makes for a call of `cost`: counted (usage
    /// goes from `used` to `used + cost`) unless that would pass the [hard
    /// cap](Self::hard_cap), in which case it is refused and usage stays `used`.
    /// Saturating arithmetic: usage never wraps, it stops at `u64::MAX`.
    ///
    /// This is the rule the ledger's own counters apply to every call
    /// ([`Ledger::record`](super::Ledger::record)), for a store that decides a call on
    /// a usage it knows (for instance an estimate while the shared store is out of
    /// reach) before handing the result to
    /// [`Ledger::record_shared`](super::Ledger::record_shared).
    ///
    /// ```
    /// # use tollgate_quota::{QuotaTarget, SharedCharge};
    /// let t = QuotaTarget {
    ///     company: "acme".into(),
    ///     user: "alice".into(),
    ///     period_start: 1_793_491_200,
    ///     period_end: 1_796_083_200,
    ///     period: "2026-11".into(),
    ///     limit: 100,
    ///     hard_cap: Some(150),
    ///     warning: Some(80),
    ///     local_used: 0,
    /// };
    /// assert_eq!(t.admit(149, 1), SharedCharge::Counted { prev: 149, used: 150 });
    /// assert_eq!(t.admit(149, 2), SharedCharge::Refused { used: 149 });
    /// let uncapped = QuotaTarget { hard_cap: None, ..t };
    /// assert_eq!(uncapped.admit(u64::MAX, 1), SharedCharge::Counted { prev: u64::MAX, used: u64::MAX });
    /// ```
    pub fn admit(&self, used: u64, cost: u64) -> SharedCharge {
        admit(used, cost, self.hard_cap)
    }
}

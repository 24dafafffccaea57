//! The quota store's plain types: its options, stats and reports, and the identity of
//! a counter (company, period) and of one call being decided.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tollgate::policy::FailurePolicy;
use tollgate::quota::QuotaTarget;

/// Options of a [`RedisQuota`](crate::RedisQuota).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaOptions {
    /// What to do when Redis cannot decide (default: decide locally and accumulate).
    /// The same [`FailurePolicy`] type as the limits', but applied here: counting
    /// calls locally and flushing them later is the quota store's storage, not a
    /// decision rule of the engine.
    pub failure: FailurePolicy,
    /// Decide every call locally and flush the accumulated calls to Redis at most this
    /// often (off by default: every call is decided by Redis).
    pub batch: Option<Duration>,
    /// How long a counter lives after its period ends (default 7 days), for late calls
    /// and reports.
    pub retention: Duration,
    /// How long Redis keeps the ids of this instance's calls after its last call on a
    /// counter (default 1 hour): a call whose reply is lost (a timeout, a connection
    /// lost after sending) is looked up by its id at the next flush, so it is counted
    /// once whether or not Redis ran it. A call whose flush comes later than this is
    /// taken as not counted by Redis (see `DURABILITY.md`). One bit per call, in chunks
    /// of at most 128 KiB.
    pub call_ids_ttl: Duration,
    /// The fleet's size as this instance assumes it while Redis is unreachable: each
    /// instance admits only its share (`1 / instances`) of the room left under the hard
    /// cap, so the fleet keeps the cap within the bound stated in `DURABILITY.md`.
    /// `None` (the default): the instances with a share in the counter, as Redis last
    /// reported (each instance that counted in the period has one).
    pub instances: Option<u32>,
}

impl Default for QuotaOptions {
    fn default() -> Self {
        QuotaOptions {
            failure: FailurePolicy::Fallback,
            batch: None,
            retention: Duration::from_secs(7 * 86_400),
            call_ids_ttl: Duration::from_secs(3600),
            instances: None,
        }
    }
}

/// A counter that was missing in Redis and was re-seeded from this instance's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reseeded {
    /// The company.
    pub company: String,
    /// The period's start, Unix seconds.
    pub period_start: i64,
    /// This instance's share that was seeded (its ledger's count).
    pub seeded: u64,
    /// The counter's usage after the seed.
    pub used: u64,
}

/// What the quota store did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaStats {
    /// Calls Redis decided.
    pub remote: u64,
    /// Calls decided locally (Redis unavailable, or batching).
    pub local: u64,
    /// Calls refused because Redis was unavailable ([`FailurePolicy::Closed`]).
    pub refused_unavailable: u64,
    /// Batches added to Redis.
    pub flushes: u64,
    /// Flushes Redis had already applied (retries), counted once.
    pub duplicate_flushes: u64,
    /// Seeds of this instance's share (the first use of a counter included).
    pub seeds: u64,
    /// Of those, counters found missing that this instance had counted in before.
    pub reseeded: u64,
    /// Counters (company and period) this instance holds local state for now.
    pub tracked: u64,
    /// Calls whose reply was lost (a timeout, a connection lost after sending) and whose
    /// fate a flush had to look up.
    pub uncertain: u64,
    /// Of those, the ones Redis had counted: taken back by the flush, since the instance
    /// counted them locally (or refused them).
    pub taken_back: u64,
    /// Notices this instance claimed for the fleet and raised.
    pub notices_claimed: u64,
    /// Notices another instance had claimed already: not raised here.
    pub notices_skipped: u64,
}

/// The answer of [`RedisQuota::claim_notice`](crate::RedisQuota::claim_notice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeClaim {
    /// This call claimed the notice: raise it (exactly one claim per company, period
    /// and kind succeeds across the fleet, while Redis keeps its data).
    Claimed,
    /// Another instance (or an earlier call) claimed it: stay silent.
    AlreadyClaimed,
    /// Redis could not answer: try again later (an outbox keeps the notice).
    Unavailable,
}

/// A counter: the company and the period's start (Unix seconds).
pub(crate) type CounterId = (String, i64);

/// One call being decided.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub(super) cost: u64,
    pub(super) id: &'a CounterId,
    pub(super) t: &'a QuotaTarget,
}

/// The store's counters (see [`QuotaStats`]).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) remote: AtomicU64,
    pub(super) local: AtomicU64,
    pub(super) refused_unavailable: AtomicU64,
    pub(super) flushes: AtomicU64,
    pub(super) duplicate_flushes: AtomicU64,
    pub(super) seeds: AtomicU64,
    pub(super) reseeded: AtomicU64,
    pub(super) uncertain: AtomicU64,
    pub(super) taken_back: AtomicU64,
    pub(super) notices_claimed: AtomicU64,
    pub(super) notices_skipped: AtomicU64,
}

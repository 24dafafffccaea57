//! Monthly quotas shared by a fleet: [`RedisQuota`] decides each call with a
//! check-and-add script on the company's counter for the period, and keeps every
//! instance's share in the counter so that a counter lost by Redis is rebuilt from the
//! instances' durable ledgers.
//!
//! # The counter
//! One hash per company and period (`{prefix}:{c:<company>}:q:<period start>`, see
//! [`crate::keys`]): `used` (the fleet's calls), `i:<instance>` (what each instance
//! contributed) and `f:<instance>` (the last batch it flushed). It expires
//! [`QuotaOptions::retention`] after the period ends.
//!
//! # A counter that vanished
//! Redis restarted without persistence, or a failover lost the last writes: the script
//! finds no share of this instance (`i:<instance>`) and says so instead of counting from
//! zero. The instance then seeds its share from its own ledger (the calls it recorded
//! this period, restored from its journal across its own restarts) and calls again. The
//! seed is idempotent (a share present is left alone), and happens under a lock that
//! keeps this instance's calls out meanwhile, so the seeded share is exactly the
//! ledger's. A seed for a counter this instance had used before, or with a non-zero
//! share, is reported ([`RedisQuota::reseeded`]). Every instance re-seeds its own share
//! on its next call, so until each instance that served calls this period has called
//! again, the counter misses their shares.
//!
//! The instance id must be stable across restarts and unique in the fleet (a host name):
//! a restarted instance whose share is still in Redis must not add it twice.
//!
//! # Reservations
//! [`QuotaStore::reserve`](tollgate::QuotaStore::reserve) counts the held cost like a call (the check-and-add script),
//! so the fleet sees it at once. A commit replaces the held cost by the final one, once
//! per idempotency key and period across the fleet (the counter keeps the keys as
//! `c:<key>` fields), and a refund releases the hold (`lua/quota_settle.lua`). Every
//! settlement carries an id the counter remembers (`s:<instance>:<id>`), so a
//! settlement retried, or sent again after an outage, is applied once. While Redis is
//! unreachable the ledger settles at once (its own idempotency keys decide) and the
//! settlement waits, in order, for the counter's next flush; a seed meanwhile leaves
//! out what those settlements changed in the ledger, since they will bring it.
//!
//! # When Redis is slow or down, and batching
//! Calls Redis did not count accumulate locally (per company and period) and are decided
//! against the last usage Redis reported plus what this instance has accumulated
//! ([`FailurePolicy::Fallback`](crate::FailurePolicy::Fallback)), or always served ([`FailurePolicy::Open`](crate::FailurePolicy::Open)), or refused
//! ([`FailurePolicy::Closed`](crate::FailurePolicy::Closed): nothing accumulates). They are flushed when Redis
//! answers again: by the next call for the same counter, or [`RedisQuota::flush`]. A
//! flush carries a batch id that the script remembers, so a flush retried after a lost
//! reply counts once. With [`QuotaOptions::batch`] every call is decided that way and
//! flushed at most every N ms: one Redis call per counter and interval instead of one
//! per call, at the price that instances do not see each other's last N ms of calls
//! (the fleet may pass the hard cap by what the instances served in one interval).
//!
//! # Local state
//! The instance keeps a little state per counter it used (the last usage Redis
//! reported, what waits to be sent). A counter whose period ended before a newer
//! period's first call is dropped from it once nothing of its waits to be sent (swept
//! by every [`RedisQuota::flush`], and by a new counter when the map has doubled since
//! the last sweep), so a long-running instance holds about the counters of the current
//! periods. A late call into such a period starts afresh:
//! Redis still decides it; only during an outage it is decided against this instance's
//! own count instead of the fleet's last reported usage.
//!
//! # Files
//! `types` (options, stats, reports), `local` (the per-counter local state and its
//! map), `redis_quota` ([`RedisQuota`] and the decision of one call), `seed`
//! (re-seeding a vanished counter), `flush` (batched and queued sends, [`Flusher`]),
//! `settle` (reservations' commit and refund), `prepared` (the quota's part in a
//! combined request).

mod flush;
mod local;
mod prepared;
pub(crate) mod redis_quota;
mod seed;
mod settle;
mod types;

pub use flush::Flusher;
pub use redis_quota::RedisQuota;
pub use types::{NoticeClaim, QuotaOptions, QuotaStats, Reseeded};

//! This instance's local state per counter it used ([`Local`]: the usage Redis last
//! reported, the calls and settlements waiting to be sent), and the map holding it
//! ([`LocalMap`]), which sweeps out the counters of ended periods.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tollgate::quota::QuotaTarget;

use super::types::CounterId;

/// The fewest counters at which a new one sweeps out the ended ones.
const SWEEP_MIN: usize = 256;

/// This instance's view of one counter.
#[derive(Debug)]
pub(super) struct Local {
    /// The period's label, to find this instance's count in its ledger.
    pub(super) label: String,
    pub(super) period_end: i64,
    /// Whether this instance has counted in this counter (it existed with our share).
    pub(super) seen: bool,
    /// The usage Redis last reported.
    pub(super) last_shared: u64,
    /// Calls decided locally and not yet sent.
    pub(super) pending: u64,
    /// A batch sent and not yet acknowledged: (id, calls, the uncertain calls it
    /// carries). Retried with the same id.
    pub(super) inflight: Option<(u64, u64, Vec<Uncertain>)>,
    /// Calls sent whose reply was lost (Redis may have counted them), not yet in a
    /// batch: the next flush looks them up (see `lua/quota_flush.lua`).
    pub(super) uncertain: Vec<Uncertain>,
    /// The next call's sequence number on this counter (its bit in the call-id bitmaps).
    pub(super) next_seq: u64,
    /// The instances with a share in the counter, as Redis last reported (at least 1).
    pub(super) shares: u64,
    /// The warning threshold and the limit, as the ledger last said (a flush claims
    /// the notices its usage reaches).
    pub(super) thresholds: (Option<u64>, u64),
    pub(super) last_flush: Instant,
    /// Reservations settled here while Redis was unreachable, oldest first: retried
    /// with their ids until Redis acknowledges them.
    pub(super) settles: Vec<Settle>,
    /// What those settlements changed in this instance's ledger (its share), not yet in
    /// Redis.
    pub(super) settle_delta: i64,
}

impl Local {
    /// A counter this instance has not used yet: the period `label` ending at
    /// `period_end`, whose usage was last known as `last_shared`.
    pub(super) fn new(label: String, period_end: i64, last_shared: u64) -> Self {
        Local {
            label,
            period_end,
            seen: false,
            last_shared,
            pending: 0,
            inflight: None,
            uncertain: Vec::new(),
            next_seq: 0,
            shares: 1,
            thresholds: (None, u64::MAX),
            last_flush: Instant::now(),
            settles: Vec::new(),
            settle_delta: 0,
        }
    }

    pub(super) fn unsent(&self) -> u64 {
        self.pending + self.inflight.as_ref().map_or(0, |(_, n, _)| *n)
    }

    /// A sequence number for a new call.
    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Call `seq` of `cost` was sent and its reply lost. At most [`MAX_UNCERTAIN`] wait;
    /// returns false (the call cannot be looked up) beyond.
    pub(super) fn lost_reply(&mut self, seq: u64, cost: u64) -> bool {
        if self.uncertain.len() >= MAX_UNCERTAIN {
            return false;
        }
        self.uncertain.push(Uncertain { seq, cost });
        true
    }

    /// Redis reported `used` for a counter this instance's share is in.
    pub(super) fn saw(&mut self, used: u64) {
        self.seen = true;
        self.last_shared = self.last_shared.max(used);
    }

    /// Whether something waits to be sent (calls, calls to look up, settlements).
    pub(super) fn waiting(&self) -> bool {
        self.unsent() > 0
            || !self.uncertain.is_empty()
            || self.inflight.is_some()
            || !self.settles.is_empty()
    }
}

/// The most calls with a lost reply one counter keeps for lookup (a stall loses the
/// replies of the calls in flight until the breaker opens: a few per thread).
pub(super) const MAX_UNCERTAIN: usize = 65_536;

/// A call sent whose reply was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Uncertain {
    /// Its sequence number on the counter (chunk `seq >> 20`, bit `seq & 0xFFFFF`).
    pub(super) seq: u64,
    pub(super) cost: u64,
}

/// Bits per call-id bitmap chunk (128 KiB).
pub(super) const CHUNK_BITS: u32 = 20;

/// A reservation's settlement for the counter (see `lua/quota_settle.lua`).
#[derive(Clone, Debug)]
pub(super) struct Settle {
    /// Unique per settlement: a retried one is applied once.
    pub(super) id: u64,
    /// What the reservation held.
    pub(super) held: u64,
    /// The final cost and the idempotency key of a commit; `None` for a refund.
    pub(super) commit: Option<(u64, String)>,
    /// What it changed in this instance's ledger.
    pub(super) local_delta: i64,
}

/// The counters this instance holds local state for.
#[derive(Debug)]
pub(super) struct LocalMap {
    map: Mutex<HashMap<CounterId, Local>>,
    /// The size of `map` at which a new counter sweeps out the ended ones (read and
    /// written under `map`'s lock).
    sweep_at: AtomicUsize,
    /// Counters made so far: each new one numbers its calls from `made << SEQ_GEN_SHIFT`,
    /// so a counter swept out and made again never reuses a call id (its bits in the
    /// call-id bitmaps are settled, and Redis refuses a call whose bit is set).
    made: AtomicU64,
}

/// Where a counter's generation starts in its calls' sequence numbers (2^40 calls per
/// counter and generation).
const SEQ_GEN_SHIFT: u32 = 40;

impl LocalMap {
    pub(super) fn new() -> Self {
        LocalMap {
            map: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(SWEEP_MIN),
            made: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CounterId, Local>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters held.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Calls counted locally and not yet in Redis, over all counters.
    pub(super) fn unsent(&self) -> u64 {
        self.lock().values().map(Local::unsent).sum()
    }

    /// The end of the period labelled `label` of `company`'s counter, if this instance
    /// holds it.
    pub(super) fn period_end(&self, company: &str, label: &str) -> Option<i64> {
        self.lock()
            .iter()
            .find(|(id, l)| id.0 == company && l.label == label)
            .map(|(_, l)| l.period_end)
    }

    /// The counters with something waiting to be sent.
    pub(super) fn waiting(&self) -> Vec<CounterId> {
        self.lock()
            .iter()
            .filter(|(_, l)| l.waiting())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Runs `f` on counter `id`'s local state, if this instance has one.
    pub(super) fn update<R>(&self, id: &CounterId, f: impl FnOnce(&mut Local) -> R) -> Option<R> {
        self.lock().get_mut(id).map(f)
    }

    /// Runs `f` on counter `id`'s local state, made from the ledger's target `t` if this
    /// instance has none.
    pub(super) fn with_target<R>(
        &self,
        id: &CounterId,
        t: &QuotaTarget,
        f: impl FnOnce(&mut Local) -> R,
    ) -> R {
        self.with_entry(
            id,
            || Local::new(t.period.clone(), t.period_end, t.local_used),
            |l| {
                l.thresholds = (t.warning, t.limit);
                f(l)
            },
        )
    }

    /// Runs `f` on counter `id`'s local state, made by `make` if this instance has none
    /// (a new counter first sweeps out the ended ones once the map has doubled).
    pub(super) fn with_entry<R>(
        &self,
        id: &CounterId,
        make: impl FnOnce() -> Local,
        f: impl FnOnce(&mut Local) -> R,
    ) -> R {
        let mut map = self.lock();
        if let Some(l) = map.get_mut(id) {
            return f(l);
        }
        if map.len() >= self.sweep_at.load(Ordering::Relaxed) {
            self.sweep(&mut map, id.1);
        }
        let generation = self.made.fetch_add(1, Ordering::Relaxed);
        f(map.entry(id.clone()).or_insert_with(|| {
            let mut l = make();
            l.next_seq = generation << SEQ_GEN_SHIFT;
            l
        }))
    }

    /// Drops the counters of periods that ended before the newest one began (and have
    /// nothing waiting to be sent); returns the calls still unsent.
    pub(super) fn sweep_ended(&self) -> u64 {
        let mut map = self.lock();
        if let Some(newest) = map.keys().map(|id| id.1).max() {
            self.sweep(&mut map, newest);
        }
        map.values().map(Local::unsent).sum()
    }

    /// Drops the counters of periods that ended by `start` (Unix seconds) with nothing
    /// waiting to be sent; the next sweep comes when the map has doubled.
    fn sweep(&self, map: &mut HashMap<CounterId, Local>, start: i64) {
        map.retain(|_, l| l.waiting() || l.period_end > start);
        self.sweep_at
            .store((map.len() * 2).max(SWEEP_MIN), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(company: &str, start: i64) -> CounterId {
        (company.to_owned(), start)
    }

    #[test]
    fn unsent_and_waiting() {
        let mut l = Local::new("2027-01".into(), 100, 5);
        assert!(!l.waiting());
        l.pending = 2;
        l.inflight = Some((9, 3, Vec::new()));
        assert_eq!(l.unsent(), 5);
        l.saw(4);
        assert!(l.seen);
        assert_eq!(l.last_shared, 5, "the usage only grows");
        l.saw(8);
        assert_eq!(l.last_shared, 8);
    }

    #[test]
    fn ended_counters_with_nothing_waiting_are_swept() {
        let m = LocalMap::new();
        m.with_entry(&id("a", 0), || Local::new("p0".into(), 100, 0), |_| ());
        m.with_entry(
            &id("b", 0),
            || Local::new("p0".into(), 100, 0),
            |l| l.pending = 3,
        );
        m.with_entry(&id("a", 100), || Local::new("p1".into(), 200, 0), |_| ());
        assert_eq!(m.len(), 3);
        assert_eq!(m.waiting(), vec![id("b", 0)]);
        // a's ended period goes; b's stays while its calls wait to be sent.
        assert_eq!(m.sweep_ended(), 3);
        assert_eq!(m.len(), 2);
        assert_eq!(m.update(&id("b", 0), |l| l.pending = 0), Some(()));
        assert_eq!(m.sweep_ended(), 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m.update(&id("zz", 0), |_| ()), None);
    }
}

//! Sending what waits: a counter's calls counted locally (batched, or during an
//! outage) go to Redis as one batch at a time with an id Redis remembers, so a retried
//! flush counts once; [`Flusher`] does it periodically on a thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tollgate::quota::Ledger;

use super::local::CHUNK_BITS;
use super::redis_quota::RedisQuota;
use super::types::CounterId;
use crate::script::calls::{self, CountKeys, FlushArgs, UncertainArg};
use crate::script::reply::FlushReply;
use crate::store::StoreError;

/// The most calls with a lost reply one batch looks up.
const MAX_LOOKUPS: usize = 4096;

/// The thread [`RedisQuota::spawn_flusher`] started; dropping it stops the thread (after
/// a last flush).
#[derive(Debug)]
pub struct Flusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl RedisQuota {
    /// Sends every counter's accumulated calls (and reservations settled while Redis was
    /// unreachable) to Redis, and drops the counters of ended periods that have nothing
    /// left to send. Returns the calls still unsent (0 when everything got through).
    pub fn flush(&self, ledger: &Ledger) -> u64 {
        for id in self.local.waiting() {
            let _ = self.flush_counter(ledger, &id);
        }
        // Counters of periods that ended before the newest one began.
        self.local.sweep_ended()
    }

    /// Starts a thread that calls [`flush`](Self::flush) every `every` (for batching,
    /// and so calls counted during an outage reach Redis even for companies that make
    /// no further call). Dropping the returned handle flushes once more and stops it.
    pub fn spawn_flusher(self: &Arc<Self>, ledger: Arc<Ledger>, every: Duration) -> Flusher {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let quota = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("tollgate-redis-flush".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    quota.flush(&ledger);
                }
                quota.flush(&ledger);
            })
            .expect("spawn the quota flusher thread");
        Flusher {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Sends counter `id`'s unsent calls: the batch in flight (retried with its id),
    /// then what accumulated since, as a new batch; then its settlements.
    pub(super) fn flush_counter(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        // The batch in flight, then a new one with what accumulated since; more while
        // lost replies wait to be looked up (bounded: MAX_UNCERTAIN / MAX_LOOKUPS).
        for _ in 0..(2 + super::local::MAX_UNCERTAIN / MAX_LOOKUPS) {
            self.flush_batch(ledger, id)?;
            let more = self
                .local
                .update(id, |l| l.unsent() > 0 || !l.uncertain.is_empty());
            if more != Some(true) {
                break;
            }
        }
        self.flush_settles(ledger, id)
    }

    /// Sends one batch of counter `id` (the one in flight, or a new one): the calls
    /// counted locally, and the calls whose reply was lost, which the script looks up by
    /// their ids and takes back where Redis counted them (so each is counted once). The
    /// notices the batch's usage reaches are claimed for the fleet in the same script;
    /// the ones this instance wins are raised through the ledger.
    fn flush_batch(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        let batch = self.local.update(id, |l| {
            l.last_flush = Instant::now();
            if l.inflight.is_none() && (l.pending > 0 || !l.uncertain.is_empty()) {
                // At most MAX_LOOKUPS per batch (a bounded script call); the rest
                // go with the next batch.
                let n = l.uncertain.len().min(MAX_LOOKUPS);
                let lost: Vec<_> = l.uncertain.drain(..n).collect();
                l.inflight = Some((self.next_id(17), l.pending, lost));
                l.pending = 0;
            }
            let view = (l.label.clone(), l.period_end, l.thresholds, l.last_shared);
            l.inflight.clone().map(|b| (b, view))
        });
        let Some(((batch, calls, lost), (label, period_end, (warning, limit), before))) =
            batch.flatten()
        else {
            return Ok(());
        };
        let (w, o) = self.claim_keys(&id.0, &label);
        let keys = CountKeys {
            counter: self.key(id),
            ids: String::new(),
            warning: w,
            overage: o,
        };
        // The bitmaps the lost calls are in, each once.
        let mut chunks: Vec<u64> = lost.iter().map(|u| u.seq >> CHUNK_BITS).collect();
        chunks.sort_unstable();
        chunks.dedup();
        let ids: Vec<String> = chunks.iter().map(|&c| self.ids_key(id, c)).collect();
        let call_ids: Vec<String> = lost.iter().map(|u| self.call_id(u.seq)).collect();
        let uncertain: Vec<UncertainArg<'_>> = lost
            .iter()
            .zip(&call_ids)
            .map(|(u, cid)| {
                let chunk = chunks.partition_point(|&c| c < u.seq >> CHUNK_BITS);
                (chunk, u.seq & ((1 << CHUNK_BITS) - 1), u.cost, cid.as_str())
            })
            .collect();
        let args = FlushArgs {
            instance: &self.instance,
            batch,
            calls,
            warning: calls::cap_arg(warning),
            limit,
            claims_expire_at: self.claims_expire_at(period_end),
            id: format!("{}:{:016x}:b{batch}", self.instance, self.nonce),
            ids_ttl: self.options.call_ids_ttl.as_secs().max(1),
        };
        for _ in 0..2 {
            let inv = calls::quota_flush(&self.store.scripts, &keys, &ids, &args, &uncertain);
            let (counter, used, won) =
                match self.store.call(&inv, |r: &Vec<i64>| FlushReply::parse(r))? {
                    FlushReply::Added {
                        used,
                        won,
                        taken_back,
                    } => {
                        self.counters
                            .taken_back
                            .fetch_add(taken_back, Ordering::Relaxed);
                        (&self.counters.flushes, used, won)
                    }
                    FlushReply::Duplicate { used, won } => {
                        (&self.counters.duplicate_flushes, used, won)
                    }
                    FlushReply::MissingShare => {
                        self.seed(ledger, id)?;
                        continue;
                    }
                };
            counter.fetch_add(1, Ordering::Relaxed);
            self.local.update(id, |l| {
                if l.inflight.as_ref().map(|(b, _, _)| *b) == Some(batch) {
                    l.inflight = None;
                }
                l.saw(used);
            });
            let crossed = (
                warning.is_some_and(|w| before < w && used >= w),
                before <= limit && used > limit,
            );
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            // Its event waits in the ledger (`Ledger::drain_events`, the engine's
            // `drain_events`); the notice itself is in the ledger's outbox.
            let _ = self.raise_claimed(ledger, (&id.0, period_end), now, won, crossed, used);
            return Ok(());
        }
        Ok(())
    }
}

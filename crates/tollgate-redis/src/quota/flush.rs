//! Sending what waits: a counter's calls counted locally (batched, or during an
//! outage) go to Redis as one batch at a time with an id Redis remembers, so a retried
//! flush counts once; [`Flusher`] does it periodically on a thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::quota::Ledger;

use super::redis_quota::RedisQuota;
use super::types::CounterId;
use crate::script::calls;
use crate::script::reply::FlushReply;
use crate::store::StoreError;

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
        for _ in 0..2 {
            self.flush_batch(ledger, id)?;
        }
        self.flush_settles(ledger, id)
    }

    /// Sends one batch of counter `id` (the one in flight, or a new one).
    fn flush_batch(&self, ledger: &Ledger, id: &CounterId) -> Result<(), StoreError> {
        let batch = self.local.update(id, |l| {
            l.last_flush = Instant::now();
            if l.inflight.is_none() && l.pending > 0 {
                l.inflight = Some((self.next_id(17), l.pending));
                l.pending = 0;
            }
            l.inflight
        });
        let Some((batch, calls)) = batch.flatten() else {
            return Ok(());
        };
        let k = self.key(id);
        for _ in 0..2 {
            let inv = calls::quota_flush(&self.store.scripts, &k, &self.instance, batch, calls);
            let (counter, used) =
                match self.store.call(&inv, |r: &Vec<i64>| FlushReply::parse(r))? {
                    FlushReply::Added { used } => (&self.counters.flushes, used),
                    FlushReply::Duplicate { used } => (&self.counters.duplicate_flushes, used),
                    FlushReply::MissingShare => {
                        self.seed(ledger, id)?;
                        continue;
                    }
                };
            counter.fetch_add(1, Ordering::Relaxed);
            self.local.update(id, |l| {
                if l.inflight.map(|(b, _)| b) == Some(batch) {
                    l.inflight = None;
                }
                l.saw(used);
            });
            return Ok(());
        }
        Ok(())
    }
}

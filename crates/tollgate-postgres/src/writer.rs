//! [`PgLedgerSink`]: the background writer the engine feeds off the hot path.
//!
//! [`PgLedgerSink::record`] appends a delta to an in-memory queue (a mutex and a
//! `VecDeque`, never any I/O) and returns. A writer thread takes up to
//! [`SinkConfig::batch_size`] deltas, gives them a batch id (`<run id>-<sequence>`, the
//! run id random per process so a restarted instance never reuses one) and commits them
//! with [`PgLedger::write_batch`]. On an error the batch stays at the head of the queue
//! with the same id and is retried after a backoff (50 ms doubling to
//! [`SinkConfig::max_backoff`]), reconnecting as needed: a commit whose reply was lost is
//! retried under its id and counts once.
//!
//! While PostgreSQL is down deltas stay queued, up to [`SinkConfig::max_queued`]; at the
//! bound a new delta is dropped (not queued) and counted in [`SinkStats::dropped`].

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tollgate_quota::journal::Entry;

use crate::ledger::{PgLedger, UsageDelta};

/// Settings of a [`PgLedgerSink`].
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Deltas per batch (transaction). Default 512.
    pub batch_size: usize,
    /// Deltas held in memory (queued plus the batch in flight) while PostgreSQL is
    /// unreachable; beyond it new deltas are dropped and counted. Default 1,000,000 (about 100 MB with short ids).
    pub max_queued: usize,
    /// The longest wait between two retries. Default 2 s.
    pub max_backoff: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            batch_size: 512,
            max_queued: 1_000_000,
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Counters of a [`PgLedgerSink`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Deltas waiting (including the batch in flight).
    pub queued: u64,
    /// Deltas committed.
    pub written: u64,
    /// Batches committed.
    pub batches: u64,
    /// Retried batches found already committed (counted once, not again).
    pub duplicates: u64,
    /// Deltas dropped because the queue was full.
    pub dropped: u64,
    /// Failed attempts (connect or commit).
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    batches: AtomicU64,
    duplicates: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<UsageDelta>>,
    wake: Condvar,
    stop: AtomicBool,
    counters: Counters,
    /// Deltas taken from the queue into the batch in flight.
    in_flight: AtomicU64,
}

/// The background writer of usage deltas to the fleet ledger.
#[derive(Debug)]
pub struct PgLedgerSink {
    shared: Arc<Shared>,
    max_queued: usize,
    thread: Option<JoinHandle<()>>,
}

fn run_id() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl PgLedgerSink {
    /// Starts the writer thread for `instance`, connecting to `url` (and reconnecting
    /// after failures) in the background: this never blocks on PostgreSQL.
    pub fn spawn(url: &str, instance: &str, config: SinkConfig) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            in_flight: AtomicU64::new(0),
        });
        let (url, instance) = (url.to_owned(), instance.to_owned());
        let max_queued = config.max_queued;
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tollgate-pg-ledger".into())
            .spawn(move || writer_loop(&s, &url, &instance, &config))
            .expect("spawn the ledger writer thread");
        PgLedgerSink {
            shared,
            max_queued,
            thread: Some(thread),
        }
    }

    /// Queues a delta; returns `false` if the queue was full and it was dropped.
    pub fn record(&self, delta: UsageDelta) -> bool {
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        // The batch in flight is held in memory too: it counts against the bound
        // (`in_flight` is only changed under this lock).
        let held = q.len() + self.shared.in_flight.load(Ordering::Relaxed) as usize;
        if held >= self.max_queued {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.push_back(delta);
        drop(q);
        self.shared.wake.notify_one();
        true
    }

    /// Queues the usage of a journal entry (the entry the engine hands its journal);
    /// other entries are ignored. Returns `false` if it was dropped.
    pub fn record_entry(&self, entry: &Entry) -> bool {
        match entry {
            Entry::Usage {
                company,
                user,
                period_start,
                period,
                calls,
            } => self.record(UsageDelta {
                company: company.clone(),
                user: user.clone(),
                period: period.clone(),
                period_start: *period_start,
                calls: *calls,
                units: *calls,
            }),
            _ => true,
        }
    }

    /// The counters.
    pub fn stats(&self) -> SinkStats {
        let c = &self.shared.counters;
        let queued = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        SinkStats {
            queued: queued + self.shared.in_flight.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Waits until every queued delta is committed, up to `timeout`; returns whether it
    /// was.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.stats().queued == 0 {
                return true;
            }
            self.shared.wake.notify_one();
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stats().queued == 0
    }
}

impl Drop for PgLedgerSink {
    /// Stops the writer after one last attempt at what is queued (no retry loop: what
    /// cannot be written then is lost, and counted in `queued` before the drop).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn writer_loop(shared: &Shared, url: &str, instance: &str, config: &SinkConfig) {
    let run = run_id();
    let mut seq: u64 = 0;
    let mut ledger: Option<PgLedger> = None;
    let mut batch: Vec<UsageDelta> = Vec::new();
    let mut batch_id = String::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        if batch.is_empty() {
            let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            while q.is_empty() && !shared.stop.load(Ordering::SeqCst) {
                q = shared
                    .wake
                    .wait_timeout(q, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if q.is_empty() {
                return; // stopping, nothing left
            }
            let n = q.len().min(config.batch_size.max(1));
            batch.extend(q.drain(..n));
            shared
                .in_flight
                .store(batch.len() as u64, Ordering::Relaxed);
            seq += 1;
            batch_id = format!("{run:016x}-{seq}");
        }
        if ledger.as_ref().is_none_or(PgLedger::is_closed) {
            ledger = PgLedger::connect(url, instance).ok();
        }
        let result = match ledger.as_mut() {
            Some(l) => l.write_batch(&batch_id, &batch).ok(),
            None => None,
        };
        match result {
            Some(inserted) => {
                let c = &shared.counters;
                if inserted {
                    c.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    c.batches.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                batch.clear();
                let q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                shared.in_flight.store(0, Ordering::Relaxed);
                drop(q);
                backoff = Duration::from_millis(50);
            }
            None => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                ledger = None;
                if stopping {
                    return;
                }
                let q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                let _ = shared.wake.wait_timeout(q, backoff);
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

//! A decision that waits on a remote store (a limit whose backend is not in memory)
//! does not stall the tokio runtime: `Gate` runs it under `block_in_place` on the
//! multi-threaded runtime, so the worker's other tasks keep running meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tollgate::backend::{BackendError, LimitBackend, LimitKey, MemoryBackend, Undo};
use tollgate::core::{Decision, Rate};
use tollgate::engine::BackendFactory;
use tollgate::policy::LimitSpec;
use tollgate::{Engine, Policy, Request};
use tollgate_async::Gate;

/// An in-memory limit that takes 20 ms per decision, like a slow remote store.
#[derive(Debug)]
struct Slow(MemoryBackend);

impl LimitBackend for Slow {
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        std::thread::sleep(Duration::from_millis(20));
        self.0.acquire(key, cost, now)
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        self.0.undo(key, undo, now)
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.0.peek(key, cost, now)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        self.0.reset(key)
    }

    fn rate(&self) -> Rate {
        self.0.rate()
    }
}

struct SlowFactory;

impl BackendFactory for SlowFactory {
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String> {
        let m = MemoryBackend::new(limit.algorithm, rate, 64).map_err(|e| e.to_string())?;
        Ok(Arc::new(Slow(m)))
    }
}

fn gate(backend: &str) -> Gate {
    let policy = format!(
        "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"1000/s\"\nbackend = \"{backend}\"\n"
    );
    let engine = Engine::builder(Policy::from_toml(&policy).unwrap().0)
        .backend("slow", Arc::new(SlowFactory))
        .build()
        .unwrap();
    Gate::new(Arc::new(engine))
}

/// On a one-worker multi-threaded runtime, a task keeps running while another makes
/// slow decisions (which never await): the worker handed its other tasks over.
#[test]
fn a_remote_decision_does_not_stall_the_runtime() {
    assert!(!gate("memory").engine().decides_remotely());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let progressed = rt.block_on(async {
        let gate = gate("slow");
        assert!(gate.engine().decides_remotely());
        let ticks = Arc::new(AtomicU64::new(0));
        let t = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        // Let the ticker start.
        while ticks.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let t = Arc::clone(&ticks);
        let decider = tokio::spawn(async move {
            let before = t.load(Ordering::Relaxed);
            for _ in 0..3 {
                assert!(gate.decide(&Request::new().token("t")).allowed());
            }
            t.load(Ordering::Relaxed) - before
        });
        let progressed = decider.await.unwrap();
        ticker.abort();
        progressed
    });
    assert!(progressed > 0, "the ticker ran during the slow decisions");
}

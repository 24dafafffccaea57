//! The engine applies a limit's failure policy when its backend cannot decide: the
//! backend only answers `Unavailable`, and the engine decides by the limit's
//! `FailurePolicy` (the policy file's `on_failure`, or the backend's default), counts it
//! and marks the decision degraded. A fallback limiter's take is given back to the
//! fallback, never to the backend, when a later limit denies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tollgate::backend::{BackendError, LimitBackend, LimitKey, MemoryBackend, Undo};
use tollgate::core::{Decision, Rate};
use tollgate::engine::BackendFactory;
use tollgate::policy::LimitSpec;
use tollgate::{Engine, FailurePolicy, Policy, Reason, Request};

/// A remote store that is up or down; while up it decides in memory.
#[derive(Debug)]
struct Flaky {
    inner: MemoryBackend,
    down: Arc<AtomicBool>,
    policy: FailurePolicy,
    undos: Arc<AtomicU64>,
}

impl LimitBackend for Flaky {
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(BackendError::Unavailable("down".into()));
        }
        self.inner.acquire(key, cost, now)
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        self.undos.fetch_add(1, Ordering::Relaxed);
        self.inner.undo(key, undo, now)
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(BackendError::Unavailable("down".into()));
        }
        self.inner.peek(key, cost, now)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        self.inner.reset(key)
    }

    fn rate(&self) -> Rate {
        self.inner.rate()
    }

    fn failure_policy(&self) -> FailurePolicy {
        self.policy
    }
}

struct Factory {
    down: Arc<AtomicBool>,
    undos: Arc<AtomicU64>,
}

impl BackendFactory for Factory {
    fn build(&self, limit: &LimitSpec, rate: Rate) -> Result<Arc<dyn LimitBackend>, String> {
        Ok(Arc::new(Flaky {
            inner: MemoryBackend::new(limit.algorithm, rate, 1024).map_err(|e| e.to_string())?,
            down: Arc::clone(&self.down),
            // A factory honours the policy's `on_failure`; its own default is closed.
            policy: limit.on_failure.unwrap_or(FailurePolicy::Closed),
            undos: Arc::clone(&self.undos),
        }))
    }
}

fn engine(on_failure: &str) -> (Engine, Arc<AtomicBool>, Arc<AtomicU64>) {
    let policy = format!(
        r#"
version = 1
[[limit]]
name = "remote"
key = ["token"]
rate = "3/min"
backend = "flaky"
{on_failure}

[[limit]]
name = "local-tight"
key = ["token"]
rate = "2/min"
"#
    );
    let down = Arc::new(AtomicBool::new(false));
    let undos = Arc::new(AtomicU64::new(0));
    let engine = Engine::builder(Policy::from_toml(&policy).unwrap().0)
        .backend(
            "flaky",
            Arc::new(Factory {
                down: Arc::clone(&down),
                undos: Arc::clone(&undos),
            }),
        )
        .build()
        .unwrap();
    (engine, down, undos)
}

fn decide(e: &Engine, token: &str) -> tollgate::EngineDecision {
    e.decide(&Request::new().token(token).at(1_000_000_000))
}

#[test]
fn closed_refuses_as_unavailable_and_is_the_default_of_this_backend() {
    let (e, down, _) = engine("");
    down.store(true, Ordering::Relaxed);
    let d = decide(&e, "t");
    assert_eq!(d.reason, Reason::Unavailable);
    assert!(
        !d.degraded,
        "closed: the error stands, nothing answered for it"
    );
    assert_eq!(
        d.wait(),
        None,
        "waiting does not help a backend that cannot decide"
    );
    assert_eq!(e.metrics().limits[0].failure_policy, 0);
}

#[test]
fn open_allows_without_counting() {
    let (e, down, _) = engine(r#"on_failure = "open""#);
    down.store(true, Ordering::Relaxed);
    let d = decide(&e, "t");
    assert!(d.allowed());
    assert!(d.degraded);
    assert_eq!(e.metrics().limits[0].failure_policy, 1);
    let peek = e.peek(&Request::new().token("t").at(1_000_000_000));
    assert!(
        peek[0].1.as_ref().unwrap().allowed(),
        "peek answers by the policy too"
    );
}

#[test]
fn fallback_decides_in_memory_and_undo_goes_back_to_it() {
    let (e, down, undos) = engine(r#"on_failure = "fallback""#);
    down.store(true, Ordering::Relaxed);
    // The tighter in-memory limit (2/min) denies the third request; the fallback's take
    // for it is given back to the fallback, not to the (down) backend.
    let allowed = (0..3).filter(|_| decide(&e, "t").allowed()).count();
    assert_eq!(allowed, 2);
    assert_eq!(
        undos.load(Ordering::Relaxed),
        0,
        "nothing undone on the backend"
    );
    assert_eq!(e.metrics().limits[0].failure_policy, 3);
    // The fallback (3/min) holds exactly the 2 allowed: the denied third take was given
    // back to it, so one more fits (and would leave 0).
    let peek = e.peek(&Request::new().token("t").at(1_000_000_000));
    let p = peek[0].1.as_ref().unwrap();
    assert!(p.allowed() && p.remaining == 0, "{p:?}");
    down.store(false, Ordering::Relaxed);
    let d = decide(&e, "v");
    assert!(d.allowed());
    assert!(!d.degraded, "the backend decides again once it is back");
}

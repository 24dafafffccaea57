//! [`Gate`]: an [`Engine`] for async code — decisions at the gate's time, waiting for a
//! whole engine request, holding keys back.

use std::fmt;
use std::sync::Arc;

use tollgate::core::Clock;
use tollgate::{Engine, EngineDecision, Reason, Request};

use crate::extract::Attributes;
use crate::wait::{retry, Attempt, Jitter};

/// A shared [`Engine`] with the time source and jitter its async users need. Cheap to
/// clone (two `Arc`s); the HTTP layers hold one each.
///
/// Time: by default the engine's own clock (Unix nanoseconds from a TSC, the cheapest
/// read). [`with_clock`](Self::with_clock) replaces it, e.g. with
/// [`TokioClock::unix()`](crate::TokioClock::unix) so that tokio's paused time drives
/// the decisions in tests, or a `ManualClock` holding Unix nanoseconds to pin header
/// values. Every decision the gate makes is stamped with this time: a request's own
/// `now` is ignored.
#[derive(Clone)]
pub struct Gate {
    engine: Arc<Engine>,
    clock: Option<Arc<dyn Clock>>,
    jitter: Jitter,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("engine", &self.engine)
            .field(
                "clock",
                &if self.clock.is_some() {
                    "custom"
                } else {
                    "engine"
                },
            )
            .field("jitter", &self.jitter)
            .finish()
    }
}

/// A request the engine refused and waiting does not help: revoked, over the quota's
/// hard cap, an unknown key, a cost that can never pass, or an unavailable backend.
/// Carries the engine's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub EngineDecision);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.0.reason {
            Reason::Revoked => "the token is revoked or its user disabled",
            Reason::QuotaExceeded => "the company is over its quota's hard cap",
            Reason::UnknownKey => "the quota does not know the API key",
            Reason::CannotPass => {
                "the request's cost exceeds a limit's capacity: it can never pass"
            }
            Reason::Unavailable => {
                "a limit could not decide (key store full or backend unavailable)"
            }
            Reason::Limited => "rate limited, and waiting does not help",
            Reason::Allowed => "allowed",
            _ => "refused by the engine",
        };
        write!(f, "refused ({}): {why}", self.0.reason)
    }
}

impl std::error::Error for Refused {}

impl Gate {
    /// A gate over `engine`, on the engine's clock, without jitter.
    pub fn new(engine: Arc<Engine>) -> Self {
        Gate {
            engine,
            clock: None,
            jitter: Jitter::NONE,
        }
    }

    /// The same gate reading `clock` (Unix nanoseconds) instead of the engine's clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The same gate adding `jitter` to every wait of [`until_ready`](Self::until_ready).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The gate's time, in Unix nanoseconds.
    #[inline]
    pub fn now(&self) -> u64 {
        match &self.clock {
            None => self.engine.now(),
            Some(c) => c.now(),
        }
    }

    /// Decides `req` now (the gate's time), without waiting: [`Engine::decide`].
    #[inline]
    pub fn decide(&self, req: &Request<'_>) -> EngineDecision {
        self.blocking(|| self.engine.decide(&req.at(self.now())))
    }

    /// Runs `f`, an engine call. When the engine may wait on a remote store
    /// ([`Engine::decides_remotely`]: Redis limits or quota, a round trip per decision)
    /// and this is a worker of tokio's multi-threaded runtime, `f` runs under
    /// [`tokio::task::block_in_place`], so the worker's other tasks move to another
    /// thread instead of waiting behind the round trip. On a current-thread runtime (or
    /// outside tokio) it runs as it is: there the round trip blocks the runtime.
    #[inline]
    fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.engine.decides_remotely() {
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                    return tokio::task::block_in_place(f);
                }
            }
        }
        f()
    }

    /// Waits until the engine allows `req`, and returns the allowing decision (which took
    /// the request's cost from every limit and recorded it in the quota).
    ///
    /// One decision, then one sleep of exactly the decision's `retry_after` (plus the
    /// gate's jitter), then one decision again: never a polling loop. Denials while
    /// waiting do not count towards revoking the token ([`Engine::decide_waiting`]).
    /// Every answer that waiting cannot change is an error at once: revoked, over the
    /// quota's hard cap, unknown key, a cost above a limit's capacity, an unavailable
    /// backend.
    ///
    /// Cancellation-safe: only the allowing decision takes anything, and the future
    /// returns in the poll that made it, so a future dropped earlier took nothing.
    pub async fn until_ready(&self, req: &Request<'_>) -> Result<EngineDecision, Refused> {
        self.wait(|now| self.engine.decide_waiting(&req.at(now)))
            .await
    }

    /// [`until_ready`](Self::until_ready) for request attributes.
    pub async fn until_ready_attributes(
        &self,
        attrs: &Attributes<'_>,
    ) -> Result<EngineDecision, Refused> {
        self.wait(|now| attrs.with_request(|r| self.engine.decide_waiting(&r.at(now))))
            .await
    }

    async fn wait(
        &self,
        mut decide: impl FnMut(u64) -> EngineDecision,
    ) -> Result<EngineDecision, Refused> {
        retry(self.jitter, || {
            let d = self.blocking(|| decide(self.now()));
            let wait = match d.reason {
                Reason::Allowed => return Ok(Attempt::Ready(d)),
                // The engine says whether waiting helps; the gate waits only for
                // limits (a quota refusal lasts until the period ends: an error).
                Reason::Limited => d.wait().map(tollgate::core::clock::duration_to_nanos),
                _ => None,
            };
            wait.map(Attempt::RetryAfter).ok_or(Refused(d))
        })
        .await
    }

    /// Holds back every enforced limit of `req` until `until` (Unix nanoseconds on the
    /// gate's clock): [`Engine::hold`]. Returns how many limits were held.
    pub fn hold(&self, req: &Request<'_>, until: u64) -> usize {
        self.blocking(|| self.engine.hold(&req.at(self.now()), until))
    }
}

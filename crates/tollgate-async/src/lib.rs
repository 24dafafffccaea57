//! # tollgate-async
//!
//! The tokio adapter of [`tollgate`]: waiting for a limiter or a whole engine
//! request, a tower layer that protects HTTP services (axum, hyper) and answers refusals
//! with `429` and the IETF `RateLimit` headers, and a tower layer that paces a client's
//! outbound calls and adapts to the provider's 429s. The adapter is thin: every decision
//! is the engine's; this crate only waits, reads and writes HTTP.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use tollgate::{Engine, Policy, Request};
//! use tollgate_async::{Gate, RateLimitLayer, TokioClock};
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (policy, _) = Policy::from_toml(r#"
//!     version = 1
//!     [[limit]]
//!     name = "per-token"
//!     key = ["token"]
//!     rate = "2/s"
//! "#)?;
//! // Tokio's (here: paused) time drives the decisions.
//! let gate = Gate::new(Arc::new(Engine::new(policy)?)).with_clock(TokioClock::unix());
//!
//! // Waiting: one decision, one sleep of exactly `retry_after`, one decision.
//! let start = tokio::time::Instant::now();
//! let req = Request::new().token("tok_1");
//! for _ in 0..3 {
//!     gate.until_ready(&req).await?;
//! }
//! assert_eq!(start.elapsed(), Duration::from_millis(500)); // burst of 2, then 2/s
//!
//! // A tower layer: refusals are answered with 429 and the RateLimit headers.
//! let service = RateLimitLayer::new(gate.clone()).layer(tower::service_fn(
//!     |_req: http::Request<Bytes>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Bytes::from("hello")))
//!     },
//! ));
//! let call = || {
//!     let r = http::Request::get("/").header("authorization", "Bearer tok_2");
//!     service.clone().oneshot(r.body(Bytes::new()).unwrap())
//! };
//! let ok = call().await?;
//! assert_eq!(ok.headers()["ratelimit-policy"], "\"per-token\";q=2;w=1");
//! assert_eq!(ok.headers()["ratelimit"], "\"per-token\";r=1;t=1");
//! call().await?;
//! let refused = call().await?;
//! assert_eq!(refused.status(), 429);
//! assert_eq!(refused.headers()["retry-after"], "1");
//! assert_eq!(&refused.body()[..], b"{\"error\":\"limited\",\"retry_after\":1}\n");
//! # Ok(()) }
//! ```
//!
//! # Quota notices: a tokio task drains the outbox
//! The engine keeps each early warning and overage notice in its outbox until the host
//! acknowledges it ([`Engine::take_notices`](tollgate::Engine::take_notices),
//! [`Engine::ack_notice`](tollgate::Engine::ack_notice)); nothing here is needed beyond a
//! task that polls it. `ack_notice` waits for one journal commit, so it runs on the
//! blocking pool; a notice whose email fails is released and offered again, and one the
//! process dies on is offered again after the restart with the same id (skip ids already
//! sent, e.g. with a unique key on the id in the host's own store):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tollgate::Engine;
//! use tollgate::quota::Notice;
//!
//! async fn send_email(n: &Notice) -> Result<(), std::io::Error> {
//!     println!("{:?}: {} used {} of {} in {}", n.kind, n.company, n.used, n.limit, n.period);
//!     Ok(())
//! }
//!
//! async fn notifier(engine: Arc<Engine>) {
//!     let mut tick = tokio::time::interval(Duration::from_secs(1));
//!     loop {
//!         tick.tick().await;
//!         for n in engine.take_notices(64) {
//!             if send_email(&n).await.is_err() {
//!                 engine.release_notice(n.id); // offered again at the next tick
//!                 continue;
//!             }
//!             let e = Arc::clone(&engine);
//!             let acked = tokio::task::spawn_blocking(move || e.ack_notice(n.id)).await;
//!             if !matches!(acked, Ok(Ok(_))) {
//!                 // Not journaled: a restart offers it again.
//!             }
//!         }
//!     }
//! }
//! # fn main() { let _ = notifier; }
//! // tokio::spawn(notifier(Arc::clone(&engine)));
//! ```
//!
//! # Contents
//! * [`UntilReady`] / [`KeyedUntilReady`]: `limiter.until_ready(cost).await` and
//!   `limiter.until_ready(&key, cost).await` on tollgate-core's limiters: on a GCRA
//!   limiter one reservation per waiter, served in arrival order, cancelled when the
//!   waiter is dropped; on a sliding window a retry loop, with [`Jitter`] to spread out
//!   waiters.
//! * [`Gate`]: an engine with a time source: [`Gate::until_ready`] waits for a whole
//!   engine request (every limit and the quota); [`Gate::hold`] holds a key back.
//! * [`RateLimitLayer`] (server): decides each request; refusals get 429 (403 when
//!   revoked) with `Retry-After`, `RateLimit-Policy`, `RateLimit`; allowed responses get
//!   the `RateLimit` headers. Attributes come from a pluggable [`Extractor`]
//!   ([`HeaderExtractor`] by default).
//! * [`PaceLayer`] (client): waits before each outbound call and holds the local limits
//!   when the provider answers 429 with `Retry-After` or reports `r=0` in `RateLimit`.
//! * [`TokioClock`]: a clock on tokio's time, so paused-time tests drive the limiters.
//!
//! # Waiting, precisely
//! A waiter makes one decision, sleeps exactly the decision's `retry_after` (plus
//! jitter) on tokio's timer, and decides again: no polling loop. It wakes more than once
//! only when other callers took the capacity first; many waiters on one key wake together
//! unless given [`Jitter`]. Answers that waiting cannot change are errors at once: a cost
//! above the limit's capacity ("can never pass"), a revoked token, a company over its
//! quota's hard cap, an unknown API key, a full key store. Only the allowing decision
//! takes capacity and the future returns in the poll that made it, so dropping a waiting
//! future (a timeout, a `select!`) consumed nothing.
//!
//! Limits of this approach: tokio's timer has a resolution of 1 ms, so a waiter may wake
//! up to 1 ms late and rates finer than about 1,000 per second per key are paced in small
//! bursts; there is no queue, so waiters are not served in arrival order.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
mod clock;
mod extract;
mod gate;
mod headers;
pub mod server;
pub mod wait;

pub use client::{provider_wait, HostExtractor, PaceError, PaceLayer, PaceService};
pub use clock::TokioClock;
pub use extract::{forwarded, Attributes, Extractor, HeaderExtractor, TrustedProxies};
pub use gate::{Gate, Refused};
pub use headers::{RATELIMIT, RATELIMIT_POLICY};
pub use server::{JsonRefusal, ProblemJson, RateLimitLayer, RateLimitService, Refusal, Responder};
pub use wait::{Jitter, KeyedUntilReady, UntilReady};

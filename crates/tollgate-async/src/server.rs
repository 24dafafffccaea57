//! The server side: a tower [`Layer`](tower_layer::Layer) that decides every request with
//! the engine, answers refusals itself (429, 403 or 503 with `Retry-After` and the
//! `RateLimit` headers) and adds the headers to the inner service's responses.
//!
//! What a request's attributes are (token, tenant, route, client address, ...) is the
//! [`Extractor`]'s business: [`HeaderExtractor`] reads them from headers and request
//! extensions; any type or closure implementing [`Extractor`] can replace it. Everything
//! else (which limits apply, costs, revocation, the quota) is the engine's policy.
//!
//! A refusal's response is written by the layer's [`Responder`]: the default
//! [`JsonRefusal`], [`ProblemJson`] (RFC 9457 problem details, with
//! [`RateLimitLayer::problem_json`]) or a closure of the service's
//! ([`RateLimitLayer::on_refusal`]), given a [`Refusal`] (status, reason, deciding limit,
//! retry-after, header values, the request's parts).
//!
//! With the `tracing` feature, every decision is a `tracing` event (target
//! `tollgate_async::decision`): allowed requests at TRACE, refusals the client caused
//! (limited, quota, revoked, unknown key, cannot pass) at DEBUG, refusals the server
//! caused (unavailable, journal failing) at WARN; fields `outcome`, `status`, `limit`,
//! `retry_after_s`, `remaining`, `shadow_denied`, `degraded`, `method`, `path` (without
//! the query, which may carry credentials) and `elapsed_ns` (the decision's time). No
//! credential is ever a field.
//!
//! Its parts: `layer` (the layer and its service), `refusal` (the refusal and its
//! responders), `response` (the status and headers of an answer), `trace` (the
//! `tracing` events), `future` (the service's future); the attributes and
//! extractors are shared with the client side and live in the crate's `extract` module.

mod future;
mod layer;
mod refusal;
mod response;
#[cfg(feature = "tracing")]
mod trace;

pub use crate::extract::{Attributes, Extractor, FromExtensions, HeaderExtractor};
pub use crate::headers::{RATELIMIT, RATELIMIT_POLICY};
pub use future::ResponseFuture;
pub use layer::{RateLimitLayer, RateLimitService};
pub use refusal::{JsonRefusal, ProblemJson, Refusal, Responder};
pub use response::refusal_status;

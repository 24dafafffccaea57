//! The server side: a tower [`Layer`](tower_layer::Layer) that decides every request with
//! the engine, answers refusals itself (429, 403 or 503 with `Retry-After` and the
//! `RateLimit` headers) and adds the headers to the inner service's responses.
//!
//! What a request's attributes are (token, tenant, route, client address, ...) is the
//! [`Extractor`]'s business: [`HeaderExtractor`] reads them from headers and request
//! extensions; any type or closure implementing [`Extractor`] can replace it. Everything
//! else (which limits apply, costs, revocation, the quota) is the engine's policy.
//!
//! Its parts: `layer` (the layer and its service), `response` (the status, headers and
//! JSON body of an answer), `future` (the service's future); the attributes and
//! extractors are shared with the client side and live in the crate's `extract` module.

mod future;
mod layer;
mod response;

pub use crate::extract::{Attributes, Extractor, FromExtensions, HeaderExtractor};
pub use crate::headers::{RATELIMIT, RATELIMIT_POLICY};
pub use future::ResponseFuture;
pub use layer::{RateLimitLayer, RateLimitService};
pub use response::refusal_status;

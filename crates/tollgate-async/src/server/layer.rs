//! [`RateLimitLayer`] and its [`RateLimitService`]: decide each request before the
//! inner service sees it.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::response::refusal;
use crate::extract::{Extractor, HeaderExtractor};
use crate::gate::Gate;

/// A tower [`Layer`] that rate-limits HTTP requests with a [`Gate`]'s engine. See the
/// [module docs](crate::server) and [`RateLimitService`].
#[derive(Debug)]
pub struct RateLimitLayer<X = HeaderExtractor> {
    gate: Gate,
    extractor: Arc<X>,
}

impl<X> Clone for RateLimitLayer<X> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
        }
    }
}

impl RateLimitLayer<HeaderExtractor> {
    /// A layer deciding with `gate`, attributes from the default [`HeaderExtractor`].
    pub fn new(gate: Gate) -> Self {
        RateLimitLayer {
            gate,
            extractor: Arc::new(HeaderExtractor::default()),
        }
    }
}

impl<X> RateLimitLayer<X> {
    /// The same layer with another extractor.
    pub fn extractor<Y>(self, extractor: Y) -> RateLimitLayer<Y> {
        RateLimitLayer {
            gate: self.gate,
            extractor: Arc::new(extractor),
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

impl<S, X> Layer<S> for RateLimitLayer<X> {
    type Service = RateLimitService<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
        }
    }
}

/// The service of [`RateLimitLayer`].
///
/// Every request whose extractor gives attributes is decided once, synchronously, before
/// the inner service sees it:
/// * allowed: the inner service answers, and `RateLimit-Policy` / `RateLimit` of the most
///   restrictive limit are added to its response (unless it set them itself);
/// * refused: the inner service is not called; the answer is built here, with a small
///   JSON body `{"error": reason, "retry_after": seconds or null}`:
///
/// | reason | status | headers |
/// |---|---|---|
/// | limited, quota exceeded | 429 Too Many Requests | `Retry-After`, `RateLimit-Policy`, `RateLimit` |
/// | cost above a limit's capacity (can never pass) | 429 | `RateLimit-Policy`, `RateLimit` (no `Retry-After`) |
/// | revoked token or disabled user, unknown API key | 403 Forbidden | none |
/// | a limit's backend unavailable or store full | 503 Service Unavailable | none |
///
/// The response body type only needs `From<Bytes>` (axum's `Body`, `Full<Bytes>`, ...).
#[derive(Debug)]
pub struct RateLimitService<S, X = HeaderExtractor> {
    inner: S,
    gate: Gate,
    extractor: Arc<X>,
}

impl<S: Clone, X> Clone for RateLimitService<S, X> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
        }
    }
}

impl<S, X, B, RB> Service<http::Request<B>> for RateLimitService<S, X>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    X: Extractor<B>,
    RB: From<Bytes>,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(d) = self
            .extractor
            .extract(&req)
            .map(|attrs| attrs.with_request(|r| self.gate.decide(r)))
        else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let headers = self.gate.engine().headers(&d);
        if d.allowed() {
            let add = (headers.policy.is_some() || headers.ratelimit.is_some()).then_some(headers);
            ResponseFuture::inner(self.inner.call(req), add)
        } else {
            ResponseFuture::refused(refusal(&d, headers))
        }
    }
}

//! [`RateLimitLayer`] and its [`RateLimitService`]: decide each request before the
//! inner service sees it.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::refusal::{JsonRefusal, ProblemJson, Refusal, Responder};
use super::response::refusal;
use crate::extract::{Extractor, HeaderExtractor};
use crate::gate::Gate;

/// A tower [`Layer`] that rate-limits HTTP requests with a [`Gate`]'s engine. See the
/// [module docs](crate::server) and [`RateLimitService`].
#[derive(Debug)]
pub struct RateLimitLayer<X = HeaderExtractor, R = JsonRefusal> {
    gate: Gate,
    extractor: Arc<X>,
    responder: Arc<R>,
}

impl<X, R> Clone for RateLimitLayer<X, R> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
            responder: Arc::clone(&self.responder),
        }
    }
}

impl RateLimitLayer<HeaderExtractor> {
    /// A layer deciding with `gate`, attributes from the default [`HeaderExtractor`],
    /// refusals answered by [`JsonRefusal`].
    pub fn new(gate: Gate) -> Self {
        RateLimitLayer {
            gate,
            extractor: Arc::new(HeaderExtractor::default()),
            responder: Arc::new(JsonRefusal),
        }
    }
}

impl<X, R> RateLimitLayer<X, R> {
    /// The same layer with another extractor.
    pub fn extractor<Y>(self, extractor: Y) -> RateLimitLayer<Y, R> {
        RateLimitLayer {
            gate: self.gate,
            extractor: Arc::new(extractor),
            responder: self.responder,
        }
    }

    /// The same layer with refusals answered by `hook` (as tower-governor's error
    /// handler): it gets the [`Refusal`] (status, reason, deciding limit, retry-after,
    /// header values, the request's method, URI and headers) and returns the response.
    /// On a 429 the layer then adds `Retry-After`, `RateLimit-Policy` and `RateLimit`
    /// unless the hook set them.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use bytes::Bytes;
    /// # use tollgate::{Engine, Policy};
    /// use tollgate_async::{Gate, RateLimitLayer, Refusal};
    /// # let (policy, _) = Policy::from_toml("version = 1\n[[limit]]\nname = \"t\"\nkey = [\"token\"]\nrate = \"1/s\"\n").unwrap();
    /// # let gate = Gate::new(Arc::new(Engine::new(policy).unwrap()));
    /// let layer = RateLimitLayer::new(gate).on_refusal(|r: &Refusal<'_>| {
    ///     let mut res = http::Response::new(Bytes::from(format!("slow down ({})", r.reason)));
    ///     *res.status_mut() = r.status;
    ///     res
    /// });
    /// ```
    pub fn on_refusal<F, B>(self, hook: F) -> RateLimitLayer<X, F>
    where
        F: Fn(&Refusal<'_>) -> http::Response<B>,
    {
        RateLimitLayer {
            gate: self.gate,
            extractor: self.extractor,
            responder: Arc::new(hook),
        }
    }

    /// The same layer with refusals answered by `responder` (e.g. a [`ProblemJson`] with
    /// its own `type` base, or a type of yours implementing [`Responder`]).
    pub fn responder<Q>(self, responder: Q) -> RateLimitLayer<X, Q> {
        RateLimitLayer {
            gate: self.gate,
            extractor: self.extractor,
            responder: Arc::new(responder),
        }
    }

    /// The same layer with refusals answered as RFC 9457 problem details
    /// (`application/problem+json`, `type` `about:blank`; see [`ProblemJson`]).
    pub fn problem_json(self) -> RateLimitLayer<X, ProblemJson> {
        self.responder(ProblemJson::new())
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

impl<S, X, R> Layer<S> for RateLimitLayer<X, R> {
    type Service = RateLimitService<S, X, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
            responder: Arc::clone(&self.responder),
        }
    }
}

/// The service of [`RateLimitLayer`].
///
/// Every request whose extractor gives attributes is decided once, synchronously, before
/// the inner service sees it:
/// * allowed: the inner service answers, and `RateLimit-Policy` / `RateLimit` of the most
///   restrictive limit are added to its response (unless it set them itself);
/// * refused: the inner service is not called; the layer's [`Responder`] writes the
///   answer (by default [`JsonRefusal`]: a small JSON body `{"error": reason,
///   "retry_after": seconds or null}`), with these statuses and headers:
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
pub struct RateLimitService<S, X = HeaderExtractor, R = JsonRefusal> {
    inner: S,
    gate: Gate,
    extractor: Arc<X>,
    responder: Arc<R>,
}

impl<S: Clone, X, R> Clone for RateLimitService<S, X, R> {
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
            responder: Arc::clone(&self.responder),
        }
    }
}

impl<S, X, R, B, RB> Service<http::Request<B>> for RateLimitService<S, X, R>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    X: Extractor<B>,
    R: Responder<RB>,
    RB: From<Bytes>,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        #[cfg(feature = "tracing")]
        let started = super::trace::start();
        let Some(d) = self
            .extractor
            .extract(&req)
            .map(|attrs| attrs.with_request(|r| self.gate.decide(r)))
        else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        #[cfg(feature = "tracing")]
        super::trace::decision(self.gate.engine(), &d, &req, started);
        let headers = self.gate.engine().headers(&d);
        if d.allowed() {
            let add = (headers.policy.is_some() || headers.ratelimit.is_some()).then_some(headers);
            ResponseFuture::inner(self.inner.call(req), add)
        } else {
            let limit = self.gate.engine().deciding_limit(&d);
            ResponseFuture::refused(refusal(
                &d,
                headers,
                limit.as_deref(),
                &req,
                &*self.responder,
            ))
        }
    }
}

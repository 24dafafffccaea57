//! The client side: a tower [`Layer`] for a service that calls someone else's
//! rate-limited API. It paces the outbound calls with the engine (each call waits with
//! [`Gate::until_ready`](crate::Gate::until_ready) before it is sent) and adapts to the
//! provider's answers:
//!
//! * a `429 Too Many Requests` (or `503`) with `Retry-After` (seconds or an HTTP date)
//!   holds the call's limits back until then ([`Engine::hold`](tollgate::Engine::hold)),
//!   so the calls after it wait instead of being refused again;
//! * a `RateLimit` header whose item says nothing is left (`r=0`) holds them until its
//!   reset (`t` seconds) — on any response, so the next call waits *before* the provider
//!   has to refuse it. The older draft form `remaining=0, reset=N` is read too.
//!
//! The local policy's limits describe what the provider allows (keyed, for instance, on
//! the `host` attribute and the method); a hold applies to every enforced GCRA limit of
//! the call (a sliding-window limit cannot be held and is skipped). A hold never lasts
//! longer than [`PaceLayer::max_hold`] (an hour by default), so one absurd header cannot
//! stop the client for good. A 429 without either header holds nothing: there is no
//! length to honour.
//!
//! The provider's 429 itself is returned to the caller: whether to retry a call is the
//! caller's decision (a retry goes through the layer again and waits for the hold).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::nanos;
use crate::gate::{Gate, Refused};
use crate::server::{Attributes, Extractor, RATELIMIT};

/// The default [`Extractor`] of [`PaceLayer`]: the attribute `host` (the URI's host, or
/// the `Host` header), the method, and the path as the route.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostExtractor;

impl<B> Extractor<B> for HostExtractor {
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Attributes<'r>> {
        let host = req.uri().host().or_else(|| {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            Some(h.split(':').next().unwrap_or(h))
        })?;
        Some(Attributes {
            method: Some(Cow::Borrowed(req.method().as_str())),
            route: Some(Cow::Borrowed(req.uri().path())),
            other: vec![(Cow::Borrowed("host"), Cow::Borrowed(host))],
            ..Attributes::default()
        })
    }
}

/// How long the provider asks the client to wait, from its response: the longer of
/// `Retry-After` (on a 429 or 503) and the reset of an exhausted `RateLimit` item.
/// `None` when the response asks for no wait.
pub fn provider_wait(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    let retry = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => headers
            .get(RETRY_AFTER)
            .and_then(|v| parse_retry_after(v.to_str().ok()?)),
        _ => None,
    };
    let exhausted = headers
        .get_all(RATELIMIT)
        .iter()
        .filter_map(|v| exhausted_reset(v.to_str().ok()?))
        .max();
    retry.max(exhausted).filter(|d| !d.is_zero())
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The longest reset among the exhausted items of one `RateLimit` header value:
/// `"name";r=0;t=5, "other";r=3;t=1` (draft-ietf-httpapi-ratelimit-headers 07 and
/// later), or `limit=10, remaining=0, reset=5` (earlier drafts).
fn exhausted_reset(v: &str) -> Option<Duration> {
    if v.contains("remaining=") {
        let mut remaining = None;
        let mut reset = None;
        for kv in v.split([',', ';']) {
            match kv.trim().split_once('=') {
                Some(("remaining", n)) => remaining = n.trim().parse::<u64>().ok(),
                Some(("reset", n)) => reset = n.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        return (remaining? == 0).then(|| Duration::from_secs(reset.unwrap_or(0)));
    }
    let mut longest = None;
    for item in v.split(',') {
        let mut r = None;
        let mut t = None;
        for param in item.split(';').skip(1) {
            match param.trim().split_once('=') {
                Some(("r", n)) => r = n.trim().parse::<u64>().ok(),
                Some(("t", n)) => t = n.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        if r == Some(0) {
            let t = Duration::from_secs(t.unwrap_or(0));
            longest = Some(longest.map_or(t, |l: Duration| l.max(t)));
        }
    }
    longest
}

/// A tower [`Layer`] pacing outbound HTTP calls with a [`Gate`] and adapting to the
/// provider's 429s. See the [module docs](self).
#[derive(Debug)]
pub struct PaceLayer<X = HostExtractor> {
    gate: Gate,
    extractor: Arc<X>,
    adapt: bool,
    max_hold: Duration,
}

impl<X> Clone for PaceLayer<X> {
    fn clone(&self) -> Self {
        PaceLayer {
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
            adapt: self.adapt,
            max_hold: self.max_hold,
        }
    }
}

impl PaceLayer<HostExtractor> {
    /// A layer pacing calls with `gate`, keyed by [`HostExtractor`], adapting to the
    /// provider's answers, holding at most an hour.
    pub fn new(gate: Gate) -> Self {
        PaceLayer {
            gate,
            extractor: Arc::new(HostExtractor),
            adapt: true,
            max_hold: Duration::from_secs(3600),
        }
    }
}

impl<X> PaceLayer<X> {
    /// The same layer with another extractor.
    pub fn extractor<Y>(self, extractor: Y) -> PaceLayer<Y> {
        PaceLayer {
            gate: self.gate,
            extractor: Arc::new(extractor),
            adapt: self.adapt,
            max_hold: self.max_hold,
        }
    }

    /// Whether the provider's answers hold the local limits back (default: yes).
    /// Without it the layer only paces by the local policy.
    pub fn adapt(mut self, adapt: bool) -> Self {
        self.adapt = adapt;
        self
    }

    /// The longest hold one response can ask for (default: one hour).
    pub fn max_hold(mut self, max: Duration) -> Self {
        self.max_hold = max;
        self
    }
}

impl<S, X> Layer<S> for PaceLayer<X> {
    type Service = PaceService<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        PaceService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`PaceLayer`].
///
/// Its future waits for the engine (cancellation-safe: dropped while waiting, it took
/// nothing), then for the inner service's readiness, then sends the call; on the response
/// it applies the provider's wait. Refusals that waiting cannot change (a cost that can
/// never pass, a revoked key, ...) are [`PaceError::Refused`] at once.
#[derive(Debug)]
pub struct PaceService<S, X = HostExtractor> {
    inner: S,
    layer: PaceLayer<X>,
}

impl<S: Clone, X> Clone for PaceService<S, X> {
    fn clone(&self) -> Self {
        PaceService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

/// The error of [`PaceService`].
#[derive(Debug)]
pub enum PaceError<E> {
    /// The local engine refused the call, and waiting does not help.
    Refused(Refused),
    /// The inner service failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for PaceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaceError::Refused(r) => r.fmt(f),
            PaceError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PaceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PaceError::Refused(r) => Some(r),
            PaceError::Inner(e) => Some(e),
        }
    }
}

/// The future of [`PaceService`].
pub type PaceFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, PaceError<E>>> + Send>>;

impl<S, X, B, RB> Service<http::Request<B>> for PaceService<S, X>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    X: Extractor<B>,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = PaceError<S::Error>;
    type Future = PaceFuture<http::Response<RB>, S::Error>;

    /// Always ready: the future waits for the engine, then for the inner service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let attrs = self
            .layer
            .extractor
            .extract(&req)
            .map(Attributes::into_owned);
        let mut inner = self.inner.clone();
        let gate = self.layer.gate.clone();
        let (adapt, max_hold) = (self.layer.adapt, self.layer.max_hold);
        Box::pin(async move {
            if let Some(a) = &attrs {
                gate.until_ready_attributes(a)
                    .await
                    .map_err(PaceError::Refused)?;
            }
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(PaceError::Inner)?;
            let res = inner.call(req).await.map_err(PaceError::Inner)?;
            if let (Some(a), true) = (&attrs, adapt) {
                if let Some(wait) = provider_wait(res.status(), res.headers()) {
                    let until = gate.now().saturating_add(nanos(wait.min(max_hold)));
                    a.with_request(|r| gate.hold(r, until));
                }
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::try_from(*n).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const TOO_MANY: StatusCode = StatusCode::TOO_MANY_REQUESTS;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let s = Duration::from_secs;
        assert_eq!(
            provider_wait(TOO_MANY, &headers(&[("retry-after", "7")])),
            Some(s(7))
        );
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + s(60));
        let d = provider_wait(TOO_MANY, &headers(&[("retry-after", &in_a_minute)])).unwrap();
        assert!(d > s(55) && d <= s(60), "{d:?}");
        let past = httpdate::fmt_http_date(SystemTime::now() - s(60));
        assert_eq!(
            provider_wait(TOO_MANY, &headers(&[("retry-after", &past)])),
            None
        );
        // Retry-After counts only on refusals; garbage is ignored.
        assert_eq!(
            provider_wait(StatusCode::OK, &headers(&[("retry-after", "7")])),
            None
        );
        assert_eq!(
            provider_wait(TOO_MANY, &headers(&[("retry-after", "soon")])),
            None
        );
        assert_eq!(provider_wait(TOO_MANY, &headers(&[])), None);
    }

    #[test]
    fn ratelimit_items_that_are_exhausted() {
        let s = Duration::from_secs;
        let ok = StatusCode::OK;
        assert_eq!(
            provider_wait(ok, &headers(&[("ratelimit", "\"per-token\";r=0;t=5")])),
            Some(s(5))
        );
        assert_eq!(
            provider_wait(ok, &headers(&[("ratelimit", "\"per-token\";r=3;t=5")])),
            None,
            "capacity left: no wait"
        );
        assert_eq!(
            provider_wait(
                ok,
                &headers(&[
                    ("ratelimit", "\"a\";r=0;t=2, \"b\";r=0;t=9"),
                    ("ratelimit", "\"c\";r=0;t=4"),
                ])
            ),
            Some(s(9)),
            "the longest exhausted item"
        );
        assert_eq!(
            provider_wait(
                ok,
                &headers(&[("ratelimit", "limit=10, remaining=0, reset=3")])
            ),
            Some(s(3))
        );
        assert_eq!(
            provider_wait(
                ok,
                &headers(&[("ratelimit", "limit=10, remaining=1, reset=3")])
            ),
            None
        );
        // On a 429, the longer of the two.
        assert_eq!(
            provider_wait(
                TOO_MANY,
                &headers(&[("retry-after", "2"), ("ratelimit", "\"a\";r=0;t=6")])
            ),
            Some(s(6))
        );
    }

    #[test]
    fn host_extractor() {
        let r = http::Request::get("http://api.example:8080/v1/items?x=1")
            .body(())
            .unwrap();
        let a = Extractor::<()>::extract(&HostExtractor, &r).unwrap();
        assert_eq!(a.other, vec![(Cow::from("host"), Cow::from("api.example"))]);
        assert_eq!(a.route.as_deref(), Some("/v1/items"));
        assert_eq!(a.method.as_deref(), Some("GET"));
        let r = http::Request::post("/v1/items")
            .header("host", "127.0.0.1:9000")
            .body(())
            .unwrap();
        let a = Extractor::<()>::extract(&HostExtractor, &r).unwrap();
        assert_eq!(a.other, vec![(Cow::from("host"), Cow::from("127.0.0.1"))]);
        let r = http::Request::get("/no-host").body(()).unwrap();
        assert!(Extractor::<()>::extract(&HostExtractor, &r).is_none());
    }
}

//! The server side: a tower [`Layer`] that decides every request with the engine, answers
//! refusals itself (429, 403 or 503 with `Retry-After` and the `RateLimit` headers) and
//! adds the headers to the inner service's responses.
//!
//! What a request's attributes are (token, tenant, route, client address, ...) is the
//! [`Extractor`]'s business: [`HeaderExtractor`] reads them from headers and request
//! extensions; any type or closure implementing [`Extractor`] can replace it. Everything
//! else (which limits apply, costs, revocation, the quota) is the engine's policy.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Extensions, HeaderMap, StatusCode};
use tollgate::{EngineDecision, RateLimitHeaders, Reason, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::gate::Gate;

/// The `RateLimit-Policy` header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The attributes of one request, as the engine's [`Request`] wants them, borrowed from
/// the HTTP request where possible (`Cow::Borrowed`) or owned (a formatted client
/// address, a value computed by a custom extractor).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes<'r> {
    /// The access token (or API key).
    pub token: Option<Cow<'r, str>>,
    /// The tenant the call acts for.
    pub tenant: Option<Cow<'r, str>>,
    /// The end user.
    pub user: Option<Cow<'r, str>>,
    /// The company.
    pub company: Option<Cow<'r, str>>,
    /// The client's address.
    pub client: Option<Cow<'r, str>>,
    /// The route (a route template such as `/users/{id}` keys better than a raw path).
    pub route: Option<Cow<'r, str>>,
    /// The HTTP method: it decides the request's class.
    pub method: Option<Cow<'r, str>>,
    /// Other attributes, by name, for limits keyed on them.
    pub other: Vec<(Cow<'r, str>, Cow<'r, str>)>,
    /// An explicit cost, instead of the class's cost under each limit.
    pub cost: Option<u64>,
}

impl Attributes<'_> {
    /// Calls `f` with the engine [`Request`] of these attributes (its time unset).
    pub fn with_request<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        fn o<'a>(v: &'a Option<Cow<'_, str>>) -> Option<&'a str> {
            v.as_deref()
        }
        let base = Request {
            token: o(&self.token),
            tenant: o(&self.tenant),
            user: o(&self.user),
            company: o(&self.company),
            client: o(&self.client),
            route: o(&self.route),
            method: o(&self.method),
            attrs: &[],
            cost: self.cost,
            now: None,
        };
        if self.other.is_empty() {
            f(&base)
        } else {
            let pairs: Vec<(&str, &str)> = self.other.iter().map(|(n, v)| (&**n, &**v)).collect();
            f(&base.attrs(&pairs))
        }
    }

    /// The same attributes, owning every value (to keep them across an `.await` that
    /// outlives the HTTP request).
    pub fn into_owned(self) -> Attributes<'static> {
        let own = |v: Option<Cow<'_, str>>| v.map(|v| Cow::Owned(v.into_owned()));
        Attributes {
            token: own(self.token),
            tenant: own(self.tenant),
            user: own(self.user),
            company: own(self.company),
            client: own(self.client),
            route: own(self.route),
            method: own(self.method),
            other: self
                .other
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            cost: self.cost,
        }
    }
}

/// Builds a request's [`Attributes`]. Implemented by [`HeaderExtractor`] and by closures
/// `Fn(&http::Request<B>) -> Option<Attributes<'static>>`.
pub trait Extractor<B>: Send + Sync + 'static {
    /// The attributes of `req`, or `None` to let it through without a decision (health
    /// checks, metrics endpoints).
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Attributes<'r>>;
}

impl<B, F> Extractor<B> for F
where
    F: Fn(&http::Request<B>) -> Option<Attributes<'static>> + Send + Sync + 'static,
{
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Attributes<'r>> {
        self(req)
    }
}

/// Where [`HeaderExtractor`] finds a value in a request's extensions (e.g. axum's
/// `MatchedPath` or `ConnectInfo`).
pub type FromExtensions<T> = for<'r> fn(&'r Extensions) -> Option<T>;

/// The default [`Extractor`]: attributes from request headers, the method, and
/// optionally the route and client address from request extensions.
///
/// By default: the token from `Authorization: Bearer <token>` (or the whole
/// `Authorization` value without that prefix), the tenant from `X-Tenant-Id`, the
/// method; no user, company, route or client. Every value is borrowed from the request;
/// only a client address taken from a `SocketAddr` is formatted.
///
/// ```
/// use axum::extract::{ConnectInfo, MatchedPath};
/// use std::net::SocketAddr;
/// use tollgate_async::HeaderExtractor;
///
/// let x = HeaderExtractor::new()
///     .token("x-api-key")
///     .company("x-company")
///     .route_from(|ext| ext.get::<MatchedPath>().map(|m| m.as_str()))
///     .client_from(|ext| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
/// # let _ = x;
/// ```
#[derive(Clone, Debug)]
pub struct HeaderExtractor {
    token: Option<HeaderName>,
    tenant: Option<HeaderName>,
    user: Option<HeaderName>,
    company: Option<HeaderName>,
    client_header: Option<HeaderName>,
    client_ext: Option<FromExtensions<SocketAddr>>,
    route_ext: Option<for<'r> fn(&'r Extensions) -> Option<&'r str>>,
    route_path: bool,
    other: Vec<(&'static str, HeaderName)>,
}

impl Default for HeaderExtractor {
    fn default() -> Self {
        HeaderExtractor {
            token: Some(http::header::AUTHORIZATION),
            tenant: Some(HeaderName::from_static("x-tenant-id")),
            user: None,
            company: None,
            client_header: None,
            client_ext: None,
            route_ext: None,
            route_path: false,
            other: Vec::new(),
        }
    }
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::try_from(name)
        .unwrap_or_else(|e| panic!("{name:?} is not a valid HTTP header name: {e}"))
}

impl HeaderExtractor {
    /// The defaults: token from `Authorization` (bearer), tenant from `X-Tenant-Id`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the token from header `name` (a `Bearer ` prefix is stripped).
    ///
    /// # Panics
    /// If `name` is not a valid header name; so do the other setters.
    pub fn token(mut self, name: &str) -> Self {
        self.token = Some(header_name(name));
        self
    }

    /// Takes the tenant from header `name`.
    pub fn tenant(mut self, name: &str) -> Self {
        self.tenant = Some(header_name(name));
        self
    }

    /// Takes the user from header `name`.
    pub fn user(mut self, name: &str) -> Self {
        self.user = Some(header_name(name));
        self
    }

    /// Takes the company from header `name`.
    pub fn company(mut self, name: &str) -> Self {
        self.company = Some(header_name(name));
        self
    }

    /// Takes the attribute `attr` (for limits keyed on it) from header `name`.
    pub fn attribute(mut self, attr: &'static str, name: &str) -> Self {
        self.other.push((attr, header_name(name)));
        self
    }

    /// Takes the client address from header `name`: its first comma-separated entry, as
    /// in `X-Forwarded-For` (trust it only behind a proxy that sets it).
    pub fn client_header(mut self, name: &str) -> Self {
        self.client_header = Some(header_name(name));
        self
    }

    /// Takes the client address (its IP, without the port) from the request's
    /// extensions, e.g. axum's `ConnectInfo<SocketAddr>`. Used when no client header is
    /// set or the request lacks it.
    pub fn client_from(mut self, f: FromExtensions<SocketAddr>) -> Self {
        self.client_ext = Some(f);
        self
    }

    /// Takes the route from the request's extensions, e.g. axum's `MatchedPath` (the
    /// route template, so `/users/1` and `/users/2` share a key).
    pub fn route_from(mut self, f: for<'r> fn(&'r Extensions) -> Option<&'r str>) -> Self {
        self.route_ext = Some(f);
        self
    }

    /// Takes the route from the URI's path (every distinct path is its own key: prefer
    /// [`route_from`](Self::route_from) with a route template).
    pub fn route_from_path(mut self) -> Self {
        self.route_path = true;
        self
    }
}

fn header<'r>(h: &'r HeaderMap, name: &Option<HeaderName>) -> Option<&'r str> {
    let v = h.get(name.as_ref()?)?.to_str().ok()?.trim();
    (!v.is_empty()).then_some(v)
}

impl<B> Extractor<B> for HeaderExtractor {
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Attributes<'r>> {
        let h = req.headers();
        let token = header(h, &self.token).map(|t| {
            t.strip_prefix("Bearer ")
                .or_else(|| t.strip_prefix("bearer "))
                .unwrap_or(t)
                .trim()
        });
        let client = header(h, &self.client_header)
            .and_then(|v| v.split(',').next())
            .map(|v| Cow::Borrowed(v.trim()))
            .or_else(|| {
                let addr = (self.client_ext?)(req.extensions())?;
                Some(Cow::Owned(addr.ip().to_string()))
            });
        let route = match self.route_ext {
            Some(f) => f(req.extensions()),
            None => None,
        }
        .or_else(|| self.route_path.then(|| req.uri().path()));
        let other = self
            .other
            .iter()
            .filter_map(|(attr, name)| {
                let v = req.headers().get(name)?.to_str().ok()?;
                Some((Cow::Borrowed(*attr), Cow::Borrowed(v)))
            })
            .collect();
        Some(Attributes {
            token: token.map(Cow::Borrowed),
            tenant: header(h, &self.tenant).map(Cow::Borrowed),
            user: header(h, &self.user).map(Cow::Borrowed),
            company: header(h, &self.company).map(Cow::Borrowed),
            client,
            route: route.map(Cow::Borrowed),
            method: Some(Cow::Borrowed(req.method().as_str())),
            other,
            cost: None,
        })
    }
}

/// A tower [`Layer`] that rate-limits HTTP requests with a [`Gate`]'s engine. See the
/// [module docs](self) and [`RateLimitService`].
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

/// The status of a refusal.
pub fn refusal_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::Allowed => StatusCode::OK,
        Reason::Limited | Reason::QuotaExceeded | Reason::CannotPass => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Reason::Revoked | Reason::UnknownKey => StatusCode::FORBIDDEN,
        Reason::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn value(s: String) -> Option<HeaderValue> {
    HeaderValue::try_from(s).ok()
}

/// Adds the header values to `h` (keeping any the inner service set itself).
fn add_headers(h: &mut HeaderMap, headers: RateLimitHeaders) {
    for (name, v) in [
        (RATELIMIT_POLICY, headers.policy),
        (RATELIMIT, headers.ratelimit),
        (RETRY_AFTER, headers.retry_after),
    ] {
        if let (Some(v), http::header::Entry::Vacant(slot)) = (v, h.entry(name)) {
            if let Some(v) = value(v) {
                slot.insert(v);
            }
        }
    }
}

/// The response to a refused request.
fn refusal<RB: From<Bytes>>(d: &EngineDecision, headers: RateLimitHeaders) -> http::Response<RB> {
    let status = refusal_status(d.reason);
    let retry = d.retry_after_secs();
    let body = match retry {
        Some(s) => format!("{{\"error\":\"{}\",\"retry_after\":{s}}}\n", d.reason),
        None => format!("{{\"error\":\"{}\",\"retry_after\":null}}\n", d.reason),
    };
    let mut res = http::Response::new(RB::from(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == StatusCode::TOO_MANY_REQUESTS {
        add_headers(h, headers);
    }
    res
}

pin_project_lite::pin_project! {
    /// The future of [`RateLimitService`]: the inner service's response with the
    /// headers added, or the refusal.
    pub struct ResponseFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Inner { #[pin] fut: F, headers: Option<RateLimitHeaders> },
        Refused { res: Option<http::Response<RB>> },
    }
}

impl<F, RB> ResponseFuture<F, RB> {
    fn inner(fut: F, headers: Option<RateLimitHeaders>) -> Self {
        ResponseFuture {
            state: State::Inner { fut, headers },
        }
    }

    fn refused(res: http::Response<RB>) -> Self {
        ResponseFuture {
            state: State::Refused { res: Some(res) },
        }
    }
}

impl<F, RB> std::fmt::Debug for ResponseFuture<F, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = Result<http::Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { fut, headers } => {
                let mut res = std::task::ready!(fut.poll(cx))?;
                if let Some(h) = headers.take() {
                    add_headers(res.headers_mut(), h);
                }
                Poll::Ready(Ok(res))
            }
            StateProj::Refused { res } => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().method("POST").uri("/users/7?x=1");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn header_extractor_reads_what_it_is_told() {
        let r = req(&[
            ("authorization", "Bearer tok_1"),
            ("x-tenant-id", "acme"),
            ("x-forwarded-for", "10.0.0.9, 10.0.0.1"),
            ("x-region", "eu"),
        ]);
        let a = Extractor::<()>::extract(&HeaderExtractor::new(), &r).unwrap();
        assert_eq!(a.token.as_deref(), Some("tok_1"));
        assert_eq!(a.tenant.as_deref(), Some("acme"));
        assert_eq!(a.method.as_deref(), Some("POST"));
        assert_eq!((a.client, a.route, a.user), (None, None, None));
        let x = HeaderExtractor::new()
            .client_header("x-forwarded-for")
            .route_from_path()
            .attribute("region", "x-region");
        let a = Extractor::<()>::extract(&x, &r).unwrap();
        assert_eq!(a.client.as_deref(), Some("10.0.0.9"));
        assert_eq!(a.route.as_deref(), Some("/users/7"));
        assert_eq!(a.other, vec![(Cow::from("region"), Cow::from("eu"))]);
        assert!(
            matches!(a.token, Some(Cow::Borrowed(_))),
            "borrowed, not copied"
        );
        // From extensions: the client's IP without its port, a route template.
        let mut r = req(&[("authorization", "raw-key")]);
        r.extensions_mut()
            .insert("127.0.0.1:5555".parse::<SocketAddr>().unwrap());
        r.extensions_mut().insert("/users/{id}");
        let x = HeaderExtractor::new()
            .client_from(|e| e.get::<SocketAddr>().copied())
            .route_from(|e| e.get::<&'static str>().copied());
        let a = Extractor::<()>::extract(&x, &r).unwrap();
        assert_eq!(a.token.as_deref(), Some("raw-key"));
        assert_eq!(a.client.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.route.as_deref(), Some("/users/{id}"));
    }

    #[test]
    fn attributes_become_an_engine_request() {
        let a = Attributes {
            token: Some("t".into()),
            method: Some("GET".into()),
            other: vec![("host".into(), "api".into())],
            cost: Some(3),
            ..Attributes::default()
        };
        a.with_request(|r| {
            assert_eq!(
                (r.token, r.method, r.cost),
                (Some("t"), Some("GET"), Some(3))
            );
            assert_eq!(r.attrs, &[("host", "api")]);
        });
        let owned: Attributes<'static> = a.clone().into_owned();
        assert_eq!(owned, a);
    }

    #[test]
    fn statuses() {
        assert_eq!(
            refusal_status(Reason::Limited),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            refusal_status(Reason::QuotaExceeded),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(refusal_status(Reason::Revoked), StatusCode::FORBIDDEN);
        assert_eq!(refusal_status(Reason::UnknownKey), StatusCode::FORBIDDEN);
        assert_eq!(
            refusal_status(Reason::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

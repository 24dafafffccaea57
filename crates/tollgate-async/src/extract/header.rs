//! [`HeaderExtractor`], the server's default [`Extractor`]: attributes from request
//! headers, the method, and request extensions.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::HeaderName;
use http::{Extensions, HeaderMap};

use super::attributes::{Attributes, Extractor};
use super::forwarded::{client_ip_from, TrustedProxies};

/// Where [`HeaderExtractor`] finds a value in a request's extensions (e.g. axum's
/// `MatchedPath` or `ConnectInfo`).
pub type FromExtensions<T> = for<'r> fn(&'r Extensions) -> Option<T>;

/// The default [`Extractor`]: attributes from request headers, the method, and
/// optionally the route and client address from request extensions.
///
/// By default: the token from `Authorization: Bearer <token>` (or the whole
/// `Authorization` value without that prefix), the tenant from `X-Tenant-Id`, the
/// method; no user, company, route or client. The client is the connection's peer
/// ([`client_from`](Self::client_from)), or behind [trusted
/// proxies](Self::trusted_proxies) the hop they vouch for; forwarded headers are never
/// believed otherwise. Every value is borrowed from the request; only the client
/// address is formatted.
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
    trusted: TrustedProxies,
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
            trusted: TrustedProxies::default(),
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

    /// The one forwarding header the trusted proxies write: `X-Forwarded-For` by
    /// default, `forwarded` for RFC 7239's `Forwarded`, or another
    /// `X-Forwarded-For`-style list header. Only that header is read (any other passes
    /// through the proxies as the client wrote it), only when the connection's peer is a
    /// [trusted proxy](Self::trusted_proxies), and from the right: a client can write
    /// anything left of what the proxy appended.
    pub fn client_header(mut self, name: &str) -> Self {
        self.client_header = Some(header_name(name));
        self
    }

    /// The client's address is the connection's peer (its IP, without the port), from
    /// the request's extensions, e.g. axum's `ConnectInfo<SocketAddr>` (serve the app
    /// with `into_make_service_with_connect_info::<SocketAddr>()`). Without it the
    /// request has no `client` attribute, and a limit keyed on `client` counts all such
    /// requests as one client: set this whenever a limit keys on the client.
    pub fn client_from(mut self, f: FromExtensions<SocketAddr>) -> Self {
        self.client_ext = Some(f);
        self
    }

    /// The proxies whose forwarded headers are believed (addresses or CIDR ranges,
    /// e.g. `["10.0.0.0/8", "::1"]`): when the peer is one of them, the client is the
    /// right-most hop of the [forwarding header](Self::client_header) that is not a
    /// trusted proxy (see [`crate::forwarded`] for the exact rule and why a client
    /// cannot choose its address). By default no proxy is trusted and the headers are
    /// never read.
    ///
    /// # Panics
    /// If an entry is not an address or range ([`TrustedProxies::parse`] reports it).
    pub fn trusted_proxies<I, S>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trusted = TrustedProxies::parse(entries).unwrap_or_else(|e| panic!("{e}"));
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
        let client = self
            .client_ext
            .and_then(|f| f(req.extensions()))
            .map(|peer| {
                let xff = self
                    .client_header
                    .clone()
                    .unwrap_or(HeaderName::from_static("x-forwarded-for"));
                Cow::Owned(client_ip_from(peer.ip(), h, &self.trusted, &xff).to_string())
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
        // Without a peer address there is no client, whatever the headers say.
        let x = HeaderExtractor::new()
            .client_header("x-forwarded-for")
            .route_from_path()
            .attribute("region", "x-region");
        let a = Extractor::<()>::extract(&x, &r).unwrap();
        assert_eq!(a.client, None);
        // The peer is the client; behind a trusted proxy, the hop it appended.
        let mut r = r;
        r.extensions_mut()
            .insert("10.0.0.1:4000".parse::<SocketAddr>().unwrap());
        let x = x.client_from(|e| e.get::<SocketAddr>().copied());
        let a = Extractor::<()>::extract(&x, &r).unwrap();
        assert_eq!(a.client.as_deref(), Some("10.0.0.1"), "no proxy is trusted");
        let x = x.trusted_proxies(["10.0.0.1"]);
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
}

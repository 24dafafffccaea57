//! [`Attributes`], the owned-or-borrowed attribute set of one request, the engine
//! [`Request`] built from it, and the [`Extractor`] trait that makes it.

use std::borrow::Cow;

use tollgate::Request;

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
    ///
    /// The one place where attributes become [`Request`] fields.
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

/// Builds a request's [`Attributes`]. Implemented by
/// [`HeaderExtractor`](crate::HeaderExtractor), [`HostExtractor`](crate::HostExtractor)
/// and by closures `Fn(&http::Request<B>) -> Option<Attributes<'static>>`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! A request as the engine sees it: its attributes, cost and time.

use crate::policy::{Attr, Field};

/// The attributes of one request. Values are borrowed; absent attributes are `None`.
///
/// `Debug` shows the token only as its [`KeyRef`](tollgate_quota::KeyRef), and host
/// attributes by name only (their values may be secrets too).
#[derive(Clone, Copy, Default)]
pub struct Request<'a> {
    /// The access token (or API key).
    pub token: Option<&'a str>,
    /// The tenant the call acts for.
    pub tenant: Option<&'a str>,
    /// The end user.
    pub user: Option<&'a str>,
    /// The company.
    pub company: Option<&'a str>,
    /// The client's address.
    pub client: Option<&'a str>,
    /// The route.
    pub route: Option<&'a str>,
    /// The HTTP method; it decides the class (absent: the default class).
    pub method: Option<&'a str>,
    /// Other attributes the host supplies, by name.
    pub attrs: &'a [(&'a str, &'a str)],
    /// An explicit cost, instead of the class's cost under each limit.
    pub cost: Option<u64>,
    /// The time of the request in Unix nanoseconds (default: the engine's clock).
    pub now: Option<u64>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.attrs.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Request")
            .field("token", &self.token.map(tollgate_quota::KeyRef::of))
            .field("tenant", &self.tenant)
            .field("user", &self.user)
            .field("company", &self.company)
            .field("client", &self.client)
            .field("route", &self.route)
            .field("method", &self.method)
            .field("attrs", &names)
            .field("cost", &self.cost)
            .field("now", &self.now)
            .finish()
    }
}

impl<'a> Request<'a> {
    /// A request with no attributes.
    pub fn new() -> Self {
        Request::default()
    }

    /// Sets the token.
    pub fn token(mut self, v: &'a str) -> Self {
        self.token = Some(v);
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, v: &'a str) -> Self {
        self.tenant = Some(v);
        self
    }

    /// Sets the user.
    pub fn user(mut self, v: &'a str) -> Self {
        self.user = Some(v);
        self
    }

    /// Sets the company.
    pub fn company(mut self, v: &'a str) -> Self {
        self.company = Some(v);
        self
    }

    /// Sets the client address.
    pub fn client(mut self, v: &'a str) -> Self {
        self.client = Some(v);
        self
    }

    /// Sets the route.
    pub fn route(mut self, v: &'a str) -> Self {
        self.route = Some(v);
        self
    }

    /// Sets the method.
    pub fn method(mut self, v: &'a str) -> Self {
        self.method = Some(v);
        self
    }

    /// Sets the host-supplied attributes.
    pub fn attrs(mut self, attrs: &'a [(&'a str, &'a str)]) -> Self {
        self.attrs = attrs;
        self
    }

    /// Sets an explicit cost.
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Sets the request's time (Unix nanoseconds).
    pub fn at(mut self, unix_nanos: u64) -> Self {
        self.now = Some(unix_nanos);
        self
    }

    /// Sets the engine field named `name` (a [`Field`]'s name: `token`, `tenant`, `user`,
    /// `company`, `client`, `route`, `method`) to `value` and returns `true`; any other
    /// name sets nothing and returns `false` (the caller passes it among the host
    /// attributes, [`Request::attrs`]). The one mapping of names to fields for every
    /// adapter (C ABI, `tollgate replay`, the tower layer).
    #[inline]
    pub fn set(&mut self, name: &str, value: &'a str) -> bool {
        match Field::named(name.as_bytes()) {
            Some(f) => {
                self.set_field(f, value);
                true
            }
            None => false,
        }
    }

    /// Sets field `f` to `value`.
    #[inline]
    pub fn set_field(&mut self, f: Field, value: &'a str) {
        *self.field_mut(f) = Some(value);
    }

    /// The value of field `f`, if set.
    #[inline]
    pub fn field(&self, f: Field) -> Option<&'a str> {
        match f {
            Field::Token => self.token,
            Field::Tenant => self.tenant,
            Field::User => self.user,
            Field::Company => self.company,
            Field::Client => self.client,
            Field::Route => self.route,
            Field::Method => self.method,
        }
    }

    #[inline]
    fn field_mut(&mut self, f: Field) -> &mut Option<&'a str> {
        match f {
            Field::Token => &mut self.token,
            Field::Tenant => &mut self.tenant,
            Field::User => &mut self.user,
            Field::Company => &mut self.company,
            Field::Client => &mut self.client,
            Field::Route => &mut self.route,
            Field::Method => &mut self.method,
        }
    }

    /// The value of `attr`, if present.
    #[inline]
    pub fn get(&self, attr: &Attr) -> Option<&'a str> {
        match attr {
            Attr::Other(name) => self.attrs.iter().find(|(n, _)| n == name).map(|&(_, v)| v),
            Attr::Token => self.token,
            Attr::Tenant => self.tenant,
            Attr::User => self.user,
            Attr::Company => self.company,
            Attr::Client => self.client,
            Attr::Route => self.route,
            Attr::Method => self.method,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_fills_exactly_the_named_field() {
        for f in Field::ALL {
            let mut r = Request::new();
            assert!(r.set(f.name(), "v"));
            for g in Field::ALL {
                assert_eq!(r.field(g), (f == g).then_some("v"), "{f:?} {g:?}");
                assert_eq!(r.get(&g.into()), r.field(g));
            }
        }
        let mut r = Request::new();
        assert!(!r.set("plan", "gold"), "a host attribute is not a field");
        assert!(r.token.is_none() && r.attrs.is_empty());
    }
}

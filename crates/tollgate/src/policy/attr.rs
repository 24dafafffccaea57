//! Request attributes: the engine's fields ([`Field`], the one table of their names) and host attributes ([`Attr`]).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A request attribute a limit can key on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// The access token (or API key).
    Token,
    /// The tenant the call acts for.
    Tenant,
    /// The end user.
    User,
    /// The user's company.
    Company,
    /// The client's address.
    Client,
    /// The route (path template).
    Route,
    /// The HTTP method.
    Method,
    /// Any other attribute the host supplies, by name.
    Other(String),
}

/// The engine's own request attributes, the fields of a [`Request`](crate::Request):
/// the one table of their names, used by the policy, the C ABI, `tollgate replay` and the
/// tower layer alike. Any other name is a host attribute ([`Attr::Other`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `token`: the access token (or API key).
    Token,
    /// `tenant`: the tenant the call acts for.
    Tenant,
    /// `user`: the end user.
    User,
    /// `company`: the user's company.
    Company,
    /// `client`: the client's address.
    Client,
    /// `route`: the route (path template).
    Route,
    /// `method`: the HTTP method.
    Method,
}

/// A name of 4 to 8 bytes as one word: its first four bytes and its last four (which
/// overlap below 8, and together cover every byte), so comparing words (and lengths)
/// compares names.
#[inline]
pub(super) const fn name_word(b: &[u8]) -> u64 {
    let n = b.len();
    let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
    (hi as u64) << 32 | lo as u64
}

impl Field {
    /// Every field, in the order of [`Request`](crate::Request)'s fields.
    pub const ALL: [Field; 7] = [
        Field::Token,
        Field::Tenant,
        Field::User,
        Field::Company,
        Field::Client,
        Field::Route,
        Field::Method,
    ];

    /// The field's name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Token => "token",
            Field::Tenant => "tenant",
            Field::User => "user",
            Field::Company => "company",
            Field::Client => "client",
            Field::Route => "route",
            Field::Method => "method",
        }
    }

    /// The field named `name` (exact bytes), or `None` for any other name. One length
    /// test and one word comparison, not the names one by one: gateways call this for
    /// every attribute of every request.
    #[inline]
    pub fn named(name: &[u8]) -> Option<Field> {
        const USER: u64 = name_word(b"user");
        const TOKEN: u64 = name_word(b"token");
        const ROUTE: u64 = name_word(b"route");
        const TENANT: u64 = name_word(b"tenant");
        const CLIENT: u64 = name_word(b"client");
        const METHOD: u64 = name_word(b"method");
        const COMPANY: u64 = name_word(b"company");
        if !(4..=7).contains(&name.len()) {
            return None;
        }
        Some(match (name.len(), name_word(name)) {
            (4, USER) => Field::User,
            (5, TOKEN) => Field::Token,
            (5, ROUTE) => Field::Route,
            (6, TENANT) => Field::Tenant,
            (6, CLIENT) => Field::Client,
            (6, METHOD) => Field::Method,
            (7, COMPANY) => Field::Company,
            _ => return None,
        })
    }
}

impl From<Field> for Attr {
    fn from(f: Field) -> Attr {
        match f {
            Field::Token => Attr::Token,
            Field::Tenant => Attr::Tenant,
            Field::User => Attr::User,
            Field::Company => Attr::Company,
            Field::Client => Attr::Client,
            Field::Route => Attr::Route,
            Field::Method => Attr::Method,
        }
    }
}

impl Attr {
    /// The attribute named `name` (a [`Field`]'s name, or any other name: a host
    /// attribute).
    pub fn named(name: &str) -> Attr {
        match Field::named(name.as_bytes()) {
            Some(f) => f.into(),
            None => Attr::Other(name.to_owned()),
        }
    }

    /// The engine field this attribute is, `None` for a host attribute.
    pub fn field(&self) -> Option<Field> {
        Some(match self {
            Attr::Token => Field::Token,
            Attr::Tenant => Field::Tenant,
            Attr::User => Field::User,
            Attr::Company => Field::Company,
            Attr::Client => Field::Client,
            Attr::Route => Field::Route,
            Attr::Method => Field::Method,
            Attr::Other(_) => return None,
        })
    }

    /// The attribute's name.
    pub fn name(&self) -> &str {
        match self {
            Attr::Token => Field::Token.name(),
            Attr::Tenant => Field::Tenant.name(),
            Attr::User => Field::User.name(),
            Attr::Company => Field::Company.name(),
            Attr::Client => Field::Client.name(),
            Attr::Route => Field::Route.name(),
            Attr::Method => Field::Method.name(),
            Attr::Other(name) => name,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Attr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom(
                "an attribute name cannot be empty",
            ));
        }
        Ok(Attr::named(&name))
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    #[test]
    fn only_the_exact_names_are_fields() {
        for f in Field::ALL {
            assert_eq!(Field::named(f.name().as_bytes()), Some(f));
            assert_eq!(Attr::named(f.name()).field(), Some(f));
            assert_eq!(Attr::from(f).name(), f.name());
            let mut near = f.name().as_bytes().to_vec();
            near[1] ^= 0x20;
            assert_eq!(Field::named(&near), None, "{near:?}");
            near.pop();
            assert_eq!(Field::named(&near), None);
        }
        for other in [
            "", "x", "tok", "tokens", "Token", "companys", "usex", "tenant\0",
        ] {
            assert_eq!(Field::named(other.as_bytes()), None, "{other}");
        }
        assert_eq!(Attr::named("plan"), Attr::Other("plan".into()));
        assert_eq!(Attr::named("plan").name(), "plan");
    }
}

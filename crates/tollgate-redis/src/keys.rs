//! The key layout: every key tollgate writes, and the escaping that keeps tenant ids from
//! forging a hash tag or colliding with another key.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:{<tag>}:l:<limit>:<part>:<part>...` | string | a rate-limit key's state: GCRA (`"<TAT us>:<interval us>"`) or sliding window (`"<window number>:<prev>:<cur>:<window us>"`) |
//! | `{prefix}:{c:<company>}:q:<period start, Unix s>` | hash | a company's quota counter for one period: `used`, `i:<instance>`, `f:<instance>`, `c:<idempotency key>` (committed reservations), `s:<instance>:<id>` (settlements applied) |
//!
//! The part between `{` and `}` is the Redis Cluster *hash tag*: keys with the same tag
//! live in the same slot, so one script may touch them together. A limit whose key
//! includes the `company` attribute is tagged `c:<company>`, the same tag as the
//! company's quota counter; other limits are tagged with their whole key, so their keys
//! spread over the cluster.
//!
//! Every variable piece (prefix excepted: it is the operator's) is escaped: `%`, `{`,
//! `}`, `:` and bytes below 0x21 become `%XX`. So no id can end a tag early or open one
//! (Redis takes the tag between the *first* `{` and the first `}` after it), and the
//! parts of a key are unambiguous: `["a:b"]` and `["a", "b"]` are different keys.

use std::fmt::Write;

/// Appends `value`, escaped, to `out`.
pub fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '%' | '{' | '}' | ':' | '\u{0}'..='\u{20}' | '\u{7f}' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `value`, escaped.
pub fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    escape_into(&mut s, value);
    s
}

/// The key of a rate limit's state for one request key.
///
/// `tag_part`: the index of the part that is the company (tag `c:<company>`), or `None`
/// to tag the key with all its parts.
pub fn limit_key(prefix: &str, limit: &str, parts: &[&str], tag_part: Option<usize>) -> String {
    let mut k = String::with_capacity(prefix.len() + limit.len() + 16 + parts.len() * 16);
    k.push_str(prefix);
    k.push_str(":{");
    match tag_part.and_then(|i| parts.get(i)) {
        Some(company) => {
            k.push_str("c:");
            escape_into(&mut k, company);
        }
        None => {
            k.push_str("k:");
            escape_into(&mut k, limit);
            for p in parts {
                k.push(':');
                escape_into(&mut k, p);
            }
        }
    }
    k.push_str("}:l:");
    escape_into(&mut k, limit);
    for p in parts {
        k.push(':');
        escape_into(&mut k, p);
    }
    k
}

/// The key of a company's quota counter for the period starting at `period_start`
/// (Unix seconds).
pub fn quota_key(prefix: &str, company: &str, period_start: i64) -> String {
    let mut k = String::with_capacity(prefix.len() + company.len() + 24);
    k.push_str(prefix);
    k.push_str(":{c:");
    escape_into(&mut k, company);
    let _ = write!(k, "}}:q:{period_start}");
    k
}

/// The hash tag of `key`, as Redis Cluster computes it: the part between the first `{`
/// and the first `}` after it, if not empty; otherwise the whole key.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        assert_eq!(
            limit_key("tg", "per-company", &["acme"], Some(0)),
            "tg:{c:acme}:l:per-company:acme"
        );
        assert_eq!(
            limit_key("tg", "per-token", &["tok", "t1"], None),
            "tg:{k:per-token:tok:t1}:l:per-token:tok:t1"
        );
        assert_eq!(
            quota_key("tg", "acme", 1_798_761_600),
            "tg:{c:acme}:q:1798761600"
        );
        // The limit's key and the company's quota counter share the slot.
        assert_eq!(
            hash_tag(&limit_key("tg", "x", &["u", "acme"], Some(1))),
            hash_tag(&quota_key("tg", "acme", 0))
        );
    }

    #[test]
    fn a_tenant_cannot_forge_a_tag() {
        // Without escaping, company "evil}x" would end the tag at "c:evil" and share
        // company "evil"'s slot; "{victim}" would not matter but "}" would.
        let k = quota_key("tg", "evil}{c:victim", 0);
        assert_eq!(k, "tg:{c:evil%7D%7Bc%3Avictim}:q:0");
        assert_eq!(hash_tag(&k), "c:evil%7D%7Bc%3Avictim");
        assert_ne!(hash_tag(&k), hash_tag(&quota_key("tg", "victim", 0)));
        assert_eq!(escape("a%b c\n"), "a%25b%20c%0A");
    }

    proptest! {
        /// Different company ids never share a tag; different part lists never share a
        /// key; the tag is always exactly the escaped company.
        #[test]
        fn escaping_is_injective(a in ".{0,12}", b in ".{0,12}", c in ".{0,6}") {
            let ka = quota_key("tg", &a, 7);
            let kb = quota_key("tg", &b, 7);
            prop_assert_eq!(hash_tag(&ka) == hash_tag(&kb), a == b);
            prop_assert_eq!(hash_tag(&ka), format!("c:{}", escape(&a)));
            let l1 = limit_key("tg", "l", &[&a, &b], None);
            let l2 = limit_key("tg", "l", &[&format!("{a}:{b}")], None);
            prop_assert_ne!(&l1, &l2);
            let l3 = limit_key("tg", "l", &[&a, &c], Some(0));
            prop_assert_eq!(hash_tag(&l3), hash_tag(&ka));
        }
    }
}

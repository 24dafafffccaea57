//! The key layout: every key tollgate writes. Key names never hold a request's values
//! (API tokens, tenant, user or company ids): only a keyed fingerprint of them.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:{k:<fp(limit, parts)>}:l:<limit>:<fp(limit, parts)>` | string | a rate-limit key's state: GCRA (`"<TAT us>:<interval us>"`) or sliding window (`"<window number>:<prev>:<cur>:<window us>"`) |
//! | `{prefix}:{c:<fp(company)>}:l:<limit>:<fp(limit, parts)>` | string | the same, for a limit whose key includes the company |
//! | `{prefix}:{c:<fp(company)>}:q:<period start, Unix s>` | hash | a company's quota counter for one period: `used`, `n` (instances with a share), `i:<instance>`, `f:<instance>`, `c:<idempotency key>` (committed reservations), `s:<instance>:<id>` (settlements applied) |
//! | `{prefix}:{c:<fp(company)>}:qx:<period start>:<process>:<chunk>` | string (bitmap) | the ids of one process's calls counted on that counter: bit `seq mod 2^20` of chunk `seq / 2^20` (`<process>` is 16 random hex digits per [`RedisQuota`](crate::RedisQuota)); kept [`QuotaOptions::call_ids_ttl`](crate::QuotaOptions::call_ids_ttl) after its last call, at most 128 KiB |
//! | `{prefix}:{c:<fp(company)>}:qn:<period label, escaped>:<w or o>` | string | the fleet's claim of the warning (`w`) or overage (`o`) notice for the period: who claimed it; expires after the period (see [`RedisQuota::claim_notice`](crate::RedisQuota::claim_notice)) |
//! | `{prefix}:{rev}:set`, `{prefix}:{rev}:log`, `{prefix}:{rev}:epoch` | hash, stream, string | the fleet's revoked set, its change log and its epoch (see [`crate::revocations`]): fields are `fp("revocation", value)`, never a value |
//!
//! `fp(...)` is 32 hex digits: SipHash-2-4 with 128-bit output, keyed by the fleet's
//! key secret ([`RedisConfig::key_secret`](crate::RedisConfig::key_secret) or
//! `TOLLGATE_REDIS_KEY_SECRET`), over the length-delimited values. Every instance with
//! the same secret names a key alike; without the secret nobody can tell from a key
//! name (SCAN, MONITOR, SLOWLOG, an RDB or AOF file, a replica) which token it counts,
//! nor test a guess of a short one. The example limit key is 59 bytes
//! (`tg:{k:<32 hex>}:l:window-token:<32 hex>`, about 80), where it held the token twice.
//!
//! The part between `{` and `}` is the Redis Cluster *hash tag*: keys with the same tag
//! live in the same slot, so one script may touch them together. A limit whose key
//! includes the `company` attribute is tagged `c:<fp(company)>`, the same tag as the
//! company's quota counter; other limits are tagged with their own fingerprint, so
//! their keys spread over the cluster. The limit name (the operator's) is escaped: `%`,
//! `{`, `}`, `:` and bytes below 0x21 become `%XX`, so it can neither end a tag early
//! nor open one.

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

/// The fleet's secret for key names: every instance that shares a Redis must be given
/// the same one. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(Box<[u8]>);

impl KeySecret {
    /// The environment variable read when the configuration names no secret.
    pub const ENV: &'static str = "TOLLGATE_REDIS_KEY_SECRET";
    /// Fewest bytes a secret has.
    pub const MIN_LEN: usize = 16;

    /// `secret` as a key secret: at least [`MIN_LEN`](Self::MIN_LEN) bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, String> {
        let s = secret.as_ref();
        if s.len() < Self::MIN_LEN {
            return Err(format!(
                "a Redis key secret has at least {} bytes (this one has {})",
                Self::MIN_LEN,
                s.len()
            ));
        }
        Ok(KeySecret(s.into()))
    }

    /// The secret in [`ENV`](Self::ENV), if set.
    pub fn from_env() -> Option<Result<Self, String>> {
        std::env::var_os(Self::ENV).map(|v| {
            KeySecret::new(v.as_encoded_bytes()).map_err(|e| format!("{}: {e}", Self::ENV))
        })
    }
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(..)")
    }
}

/// Names keys by keyed fingerprints of their values (see the [module docs](self)).
#[derive(Clone)]
pub struct KeyNamer {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for KeyNamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyNamer { .. }")
    }
}

impl KeyNamer {
    /// The namer of `secret`: its SipHash key is a SipHash-128 of the whole secret
    /// (under a fixed key), so every byte of a long secret counts.
    pub fn new(secret: &KeySecret) -> Self {
        use siphasher::sip128::{Hasher128, SipHasher24};
        use std::hash::Hasher;
        let mut h = SipHasher24::new_with_keys(0x7467_6b65_7973_6563, 0x7265_742d_7631);
        h.write(&secret.0);
        let k = h.finish128();
        KeyNamer { k0: k.h1, k1: k.h2 }
    }

    /// 32 hex digits of the keyed 128-bit fingerprint of `values`, length-delimited (so
    /// `["ab", "c"]` and `["a", "bc"]` differ).
    pub fn fingerprint(&self, values: &[&str]) -> String {
        format!("{:032x}", self.fingerprint128(values))
    }

    /// The keyed 128-bit fingerprint of `values` ([`fingerprint`](Self::fingerprint)
    /// is its 32 hex digits).
    pub fn fingerprint128(&self, values: &[&str]) -> u128 {
        use siphasher::sip128::{Hasher128, SipHasher24};
        use std::hash::Hasher;
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        for v in values {
            h.write_u64(v.len() as u64);
            h.write(v.as_bytes());
        }
        let f = h.finish128();
        (u128::from(f.h1) << 64) | u128::from(f.h2)
    }

    /// The key of a rate limit's state for one request key.
    ///
    /// `tag_part`: the index of the part that is the company (tag `c:<fp(company)>`),
    /// or `None` to tag the key with its own fingerprint.
    pub fn limit_key(
        &self,
        prefix: &str,
        limit: &str,
        parts: &[&str],
        tag_part: Option<usize>,
    ) -> String {
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(limit);
        all.extend_from_slice(parts);
        let fp = self.fingerprint(&all);
        let mut k = String::with_capacity(prefix.len() + limit.len() + 80);
        k.push_str(prefix);
        k.push_str(":{");
        match tag_part.and_then(|i| parts.get(i)) {
            Some(company) => {
                k.push_str("c:");
                k.push_str(&self.fingerprint(&[company]));
            }
            None => {
                k.push_str("k:");
                k.push_str(&fp);
            }
        }
        k.push_str("}:l:");
        escape_into(&mut k, limit);
        k.push(':');
        k.push_str(&fp);
        k
    }

    /// The key of a company's quota counter for the period starting at `period_start`
    /// (Unix seconds).
    pub fn quota_key(&self, prefix: &str, company: &str, period_start: i64) -> String {
        let mut k = String::with_capacity(prefix.len() + 56);
        k.push_str(prefix);
        k.push_str(":{c:");
        k.push_str(&self.fingerprint(&[company]));
        let _ = write!(k, "}}:q:{period_start}");
        k
    }
}

impl KeyNamer {
    /// `{prefix}:{c:<fp(company)>}`: the start of every key of the company's quota.
    fn company_part(&self, prefix: &str, company: &str) -> String {
        let mut k = String::with_capacity(prefix.len() + 80);
        k.push_str(prefix);
        k.push_str(":{c:");
        k.push_str(&self.fingerprint(&[company]));
        k.push('}');
        k
    }

    /// The bitmap of call ids `chunk` of process `process` (random, per quota store) on
    /// the company's counter for the period starting at `period_start`.
    pub fn quota_ids_key(
        &self,
        prefix: &str,
        company: &str,
        period_start: i64,
        process: u64,
        chunk: u64,
    ) -> String {
        let mut k = self.company_part(prefix, company);
        let _ = write!(k, ":qx:{period_start}:{process:016x}:{chunk}");
        k
    }

    /// The claim key of a notice (`kind` `'w'` warning, `'o'` overage) of the company
    /// for the period labelled `period`.
    pub fn notice_key(&self, prefix: &str, company: &str, period: &str, kind: char) -> String {
        let mut k = self.company_part(prefix, company);
        k.push_str(":qn:");
        escape_into(&mut k, period);
        k.push(':');
        k.push(kind);
        k
    }
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

    fn namer(secret: &str) -> KeyNamer {
        KeyNamer::new(&KeySecret::new(secret).unwrap())
    }

    #[test]
    fn layout_holds_no_value() {
        let n = namer("the fleet's secret, 16+ bytes");
        let k = n.limit_key("tg", "per-company", &["acme"], Some(0));
        assert!(
            k.starts_with("tg:{c:") && k.contains("}:l:per-company:"),
            "{k}"
        );
        assert!(!k.contains("acme"), "{k}");
        let k = n.limit_key("tg", "window-token", &["sk_live_51HxQ2eZvKYlo2C9"], None);
        assert!(!k.contains("sk_live") && !k.contains("51Hx"), "{k}");
        assert_eq!(k.len(), "tg:{k:}:l:window-token:".len() + 64, "{k}");
        let q = n.quota_key("tg", "acme", 1_798_761_600);
        assert!(q.ends_with("}:q:1798761600") && !q.contains("acme"), "{q}");
        let ids = n.quota_ids_key("tg", "acme", 1_798_761_600, 0xab, 3);
        let claim = n.notice_key("tg", "acme", "2027-01", 'o');
        assert!(ids.ends_with(":qx:1798761600:00000000000000ab:3"), "{ids}");
        assert!(claim.ends_with("}:qn:2027-01:o"), "{claim}");
        // Same slot as the counter, no company id, and not matched by `*:q:*`.
        for k in [&ids, &claim] {
            assert_eq!(hash_tag(k), hash_tag(&q));
            assert!(!k.contains("acme") && !k.contains(":q:"), "{k}");
        }
        // The limit's key and the company's quota counter share the slot.
        assert_eq!(
            hash_tag(&n.limit_key("tg", "x", &["u", "acme"], Some(1))),
            hash_tag(&q)
        );
        // Another secret names every key differently.
        assert_ne!(
            q,
            namer("another secret of the fleet").quota_key("tg", "acme", 1_798_761_600)
        );
        assert!(KeySecret::new("short").is_err());
        assert_eq!(
            format!("{:?}", KeySecret::new("0123456789abcdef").unwrap()),
            "KeySecret(..)"
        );
    }

    #[test]
    fn a_limit_name_cannot_forge_a_tag() {
        let n = namer("the fleet's secret, 16+ bytes");
        let k = n.limit_key("tg", "evil}{c:victim", &["t"], None);
        assert!(k.contains(":l:evil%7D%7Bc%3Avictim:"), "{k}");
        assert!(hash_tag(&k).starts_with("k:"));
        assert_eq!(escape("a%b c\n"), "a%25b%20c%0A");
    }

    proptest! {
        /// Same company, same tag (the limit and the quota counter share a slot);
        /// different part lists, different keys.
        #[test]
        fn fingerprints_are_injective_and_tags_agree(a in ".{0,12}", b in ".{0,12}", c in ".{0,6}") {
            let n = namer("the fleet's secret, 16+ bytes");
            let ka = n.quota_key("tg", &a, 7);
            let kb = n.quota_key("tg", &b, 7);
            prop_assert_eq!(hash_tag(&ka) == hash_tag(&kb), a == b);
            let l1 = n.limit_key("tg", "l", &[&a, &b], None);
            let l2 = n.limit_key("tg", "l", &[&format!("{a}:{b}")], None);
            prop_assert_ne!(&l1, &l2);
            let l3 = n.limit_key("tg", "l", &[&a, &c], Some(0));
            prop_assert_eq!(hash_tag(&l3), hash_tag(&ka));
        }
    }
}

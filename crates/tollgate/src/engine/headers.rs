//! `RateLimit-Policy`, `RateLimit` and `Retry-After` header values for a decision.

use super::decision::{EngineDecision, Reason};
use super::instance::Engine;

/// Response header values for a decision, in the form of
/// [draft-ietf-httpapi-ratelimit-headers-10](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/)
/// (`RateLimit-Policy`, `RateLimit`) plus `Retry-After`.
///
/// Both fields are structured-field lists of one item: the policy name as an sf-string
/// (a limit's name, which the policy restricts to printable ASCII without `"` or `\`, so
/// it is sent as it is), with parameters `q` (quota units) and `w` (window, seconds) in
/// `RateLimit-Policy`, and `r` (remaining units) and `t` (seconds, rounded up) in
/// `RateLimit`. The draft defines `t` as the time until more quota is available:
/// * on a refusal (`r=0`), `t` is the time until the refused request would be
///   admitted, the same value as `Retry-After` (the longest wait over every limit that
///   refused it), so a client that honours either is admitted;
/// * on an admitted request, `t` is the time until the limit's whole quota is back:
///   never earlier than more quota is available (for GCRA a unit returns every
///   `w / q` seconds before that).
///
/// A refusal by the monthly quota names the policy `"quota"`, with `t` the time until
/// the period ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Policy`, e.g. `"per-token";q=100;w=60`.
    pub policy: Option<String>,
    /// `RateLimit`, e.g. `"per-token";r=42;t=17`.
    pub ratelimit: Option<String>,
    /// `Retry-After` in seconds, for refused requests that may retry.
    pub retry_after: Option<String>,
}

impl Engine {
    /// The name of the limit that decided `d` (the one its headers name), `"quota"` for
    /// a refusal by the monthly quota, `None` otherwise (no limit applied, or the
    /// decision is from a policy a reload replaced). For logs and refusal bodies.
    pub fn deciding_limit(&self, d: &EngineDecision) -> Option<String> {
        let c = self.compiled.load();
        match deciding(&c, d) {
            Some(l) => Some(l.spec.name.clone()),
            None if d.reason == Reason::QuotaExceeded && d.quota.is_some() => {
                Some("quota".to_owned())
            }
            None => None,
        }
    }

    /// The response header values for `d`. The deciding limit names the policy; a
    /// refusal by the quota names `"quota"`. Refused requests that may retry get
    /// `Retry-After` (seconds, rounded up).
    pub fn headers(&self, d: &EngineDecision) -> RateLimitHeaders {
        let c = self.compiled.load();
        // Built by hand rather than with `format!`: this runs for every response of an
        // HTTP layer, and the formatting machinery cost as much as the decision.
        let mut h = RateLimitHeaders {
            retry_after: d.retry_after_secs().map(|s| {
                let mut v = String::with_capacity(20);
                push_u64(&mut v, s);
                v
            }),
            ..RateLimitHeaders::default()
        };
        let secs = |ns: u64| ns.div_ceil(1_000_000_000);
        if let Some(l) = deciding(&c, d) {
            h.policy = Some(l.policy_item.clone());
            // "<name>";r=<remaining>;t=<seconds>
            let mut v = String::with_capacity(l.spec.name.len() + 48);
            v.push('"');
            v.push_str(&l.spec.name);
            v.push_str("\";r=");
            push_u64(&mut v, d.remaining);
            v.push_str(";t=");
            let until_more = match d.reason {
                Reason::Limited => d.retry_after,
                _ => d.reset_after,
            };
            push_u64(&mut v, secs(until_more));
            h.ratelimit = Some(v);
        } else if let (Some(q), Reason::QuotaExceeded) = (&d.quota, d.reason) {
            let mut policy = String::with_capacity(32);
            policy.push_str("\"quota\";q=");
            push_u64(&mut policy, q.limit);
            let mut ratelimit = String::with_capacity(32);
            ratelimit.push_str("\"quota\";r=0;t=");
            push_u64(&mut ratelimit, secs(d.reset_after));
            h.policy = Some(policy);
            h.ratelimit = Some(ratelimit);
        }
        h
    }
}

/// Appends `n` in decimal.
pub(super) fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
}

/// The limit of the current policy that decided `d`, if any.
fn deciding<'c>(
    c: &'c super::compile::Compiled,
    d: &EngineDecision,
) -> Option<&'c super::compile::CompiledLimit> {
    d.decided_by
        .filter(|_| d.generation == c.generation)
        .and_then(|i| c.limits.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{QuotaStatus, Request};
    use crate::Policy;
    use proptest::prelude::*;
    use tollgate_quota::Outcome;

    #[test]
    pub(super) fn push_u64_writes_decimal() {
        for n in [0, 1, 9, 10, 99, 100, 1_000_000_007, u64::MAX - 1, u64::MAX] {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    proptest! {
        /// The header values are exactly what `format!` would write, for any remaining
        /// count and reset time, limited or refused by the quota.
        #[test]
        fn headers_match_the_formatted_reference(
            remaining in any::<u64>(),
            reset_after in any::<u64>(),
            retry_after in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            quota_limit in any::<u64>(),
        ) {
            let e = Engine::new(
                Policy::from_toml(
                    "version = 1\n[[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"5/s\"\n",
                )
                .unwrap()
                .0,
            )
            .unwrap();
            let secs = |ns: u64| ns.div_ceil(1_000_000_000);
            let mut d = e.decide(&Request::new().token("t").at(1));
            d.remaining = remaining;
            d.reset_after = reset_after;
            d.retry_after = retry_after;
            let h = e.headers(&d);
            prop_assert_eq!(h.retry_after, d.retry_after_secs().map(|s| format!("{s}")));
            prop_assert_eq!(
                h.ratelimit,
                Some(format!("\"per-token\";r={remaining};t={}", secs(reset_after)))
            );
            d.decided_by = None;
            d.reason = Reason::QuotaExceeded;
            d.quota = Some(QuotaStatus {
                outcome: Outcome::Refused,
                used: quota_limit,
                limit: quota_limit,
                resets_at_unix: 0,
            });
            let h = e.headers(&d);
            prop_assert_eq!(h.policy, Some(format!("\"quota\";q={quota_limit}")));
            prop_assert_eq!(h.ratelimit, Some(format!("\"quota\";r=0;t={}", secs(reset_after))));
        }
    }
}

//! What a provider's response asks of the client: [`provider_wait`], read from
//! `Retry-After` and the `RateLimit` header.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};

use crate::headers::RATELIMIT;

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
            match number_param(kv) {
                Some(("remaining", n)) => remaining = n,
                Some(("reset", n)) => reset = n,
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
            match number_param(param) {
                Some(("r", n)) => r = n,
                Some(("t", n)) => t = n,
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

/// One `name=number` parameter of a header value: its name and its number (`None` when
/// the value is not a number); `None` when it has no `=`.
fn number_param(kv: &str) -> Option<(&str, Option<u64>)> {
    let (name, n) = kv.trim().split_once('=')?;
    Some((name, n.trim().parse::<u64>().ok()))
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
}

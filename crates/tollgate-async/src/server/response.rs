//! The answers the server writes: the status and JSON body of a refusal, and the
//! `Retry-After` / `RateLimit-Policy` / `RateLimit` headers of a decision.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use tollgate::{EngineDecision, RateLimitHeaders, Reason};

use crate::headers::{RATELIMIT, RATELIMIT_POLICY};

/// The status of a refusal.
pub fn refusal_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::Allowed => StatusCode::OK,
        Reason::Limited | Reason::QuotaExceeded | Reason::CannotPass => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Reason::Revoked | Reason::UnknownKey | Reason::Terminated => StatusCode::FORBIDDEN,
        Reason::Unavailable | Reason::JournalFailing => StatusCode::SERVICE_UNAVAILABLE,
        // A reason added later: refused, and not the client's fault to retry blindly.
        _ => StatusCode::FORBIDDEN,
    }
}

fn value(s: String) -> Option<HeaderValue> {
    HeaderValue::try_from(s).ok()
}

/// Adds the header values to `h` (keeping any the inner service set itself).
pub(super) fn add_headers(h: &mut HeaderMap, headers: RateLimitHeaders) {
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
pub(super) fn refusal<RB: From<Bytes>>(
    d: &EngineDecision,
    headers: RateLimitHeaders,
) -> http::Response<RB> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(refusal_status(Reason::Terminated), StatusCode::FORBIDDEN);
        assert_eq!(
            refusal_status(Reason::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

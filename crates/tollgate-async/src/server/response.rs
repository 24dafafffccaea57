//! The answers the server writes: the status of a refusal, its response (written by the
//! layer's [`Responder`]), and the `Retry-After` / `RateLimit-Policy` / `RateLimit`
//! headers of a decision.

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use tollgate::{EngineDecision, RateLimitHeaders, Reason};

use super::refusal::{Refusal, Responder};
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

/// The response to a refused request: `responder` writes it from the [`Refusal`], then
/// a 429 gets the standard headers it does not have yet.
pub(super) fn refusal<B, RB, R>(
    d: &EngineDecision,
    headers: RateLimitHeaders,
    limit: Option<&str>,
    req: &http::Request<B>,
    responder: &R,
) -> http::Response<RB>
where
    R: Responder<RB> + ?Sized,
{
    let status = refusal_status(d.reason);
    let r = Refusal {
        status,
        reason: d.reason,
        limit,
        retry_after: d.retry_after_secs(),
        headers: &headers,
        decision: d,
        method: req.method(),
        uri: req.uri(),
        request_headers: req.headers(),
    };
    let mut res = responder.respond(&r);
    if status == StatusCode::TOO_MANY_REQUESTS {
        add_headers(res.headers_mut(), headers);
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

//! Refusals: what the layer knows about one ([`Refusal`]) and who writes its response
//! ([`Responder`]): the default JSON body ([`JsonRefusal`]), RFC 9457 problem details
//! ([`ProblemJson`]), or any closure `Fn(&Refusal<'_>) -> http::Response<B>`.
//!
//! Whatever writes the response, the layer then adds the headers the standards call for
//! on a 429 (`Retry-After`, `RateLimit-Policy`, `RateLimit`) unless the response already
//! has them: a hook may set its own values, or remove the need by answering another
//! status, but never loses them by forgetting.

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode, Uri};
use tollgate::{EngineDecision, RateLimitHeaders, Reason};

/// A refused request, as the layer saw it: everything needed to build the response.
///
/// It borrows the request's method, URI and headers (the service's own request: they may
/// hold the credential, so its `Debug` shows header names only) and the decision. The
/// deciding limit is named; the token is not part of it.
#[non_exhaustive]
pub struct Refusal<'a> {
    /// The status the layer answers by default: 429, 403 or 503 (see
    /// [`refusal_status`](crate::server::refusal_status)).
    pub status: StatusCode,
    /// Why the engine refused.
    pub reason: Reason,
    /// The limit that refused (`"quota"` for the monthly quota), if any.
    pub limit: Option<&'a str>,
    /// Seconds until a retry can be admitted (rounded up), if waiting can help.
    pub retry_after: Option<u64>,
    /// The `RateLimit-Policy`, `RateLimit` and `Retry-After` values of the decision.
    pub headers: &'a RateLimitHeaders,
    /// The engine's decision.
    pub decision: &'a EngineDecision,
    /// The request's method.
    pub method: &'a Method,
    /// The request's URI.
    pub uri: &'a Uri,
    /// The request's headers.
    pub request_headers: &'a HeaderMap,
}

impl fmt::Debug for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("limit", &self.limit)
            .field("retry_after", &self.retry_after)
            .field("headers", &self.headers)
            .field("method", &self.method)
            .field("path", &self.uri.path())
            .field(
                "request_headers",
                &self.request_headers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Writes the response to a refused request. Implemented by [`JsonRefusal`] (the
/// default), [`ProblemJson`] and every `Fn(&Refusal<'_>) -> http::Response<B>`.
pub trait Responder<B> {
    /// The response to `refusal`.
    fn respond(&self, refusal: &Refusal<'_>) -> http::Response<B>;
}

impl<F, B> Responder<B> for F
where
    F: Fn(&Refusal<'_>) -> http::Response<B>,
{
    fn respond(&self, refusal: &Refusal<'_>) -> http::Response<B> {
        self(refusal)
    }
}

/// The default refusal: the layer's status and a small JSON body,
/// `{"error":"limited","retry_after":30}` (`null` when waiting cannot help), as
/// `application/json`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonRefusal;

impl<B: From<Bytes>> Responder<B> for JsonRefusal {
    fn respond(&self, r: &Refusal<'_>) -> http::Response<B> {
        let body = match r.retry_after {
            Some(s) => format!("{{\"error\":\"{}\",\"retry_after\":{s}}}\n", r.reason),
            None => format!("{{\"error\":\"{}\",\"retry_after\":null}}\n", r.reason),
        };
        response(r.status, "application/json", body)
    }
}

/// Refusals as problem details (RFC 9457), `application/problem+json`:
///
/// ```json
/// {"type":"about:blank","title":"Too Many Requests","status":429,
///  "detail":"Rate limit \"per-token\" exceeded; retry after 30 s.",
///  "reason":"limited","limit":"per-token","retry_after":30}
/// ```
///
/// `type` is `about:blank` (and `title` the status phrase, as the RFC asks for it)
/// unless [`type_base`](Self::type_base) is set: then `type` is the base followed by the
/// reason (`https://api.example.com/problems/limited`) and `title` names the reason
/// ("Rate limit exceeded"). The extension members `reason` (the engine's reason name),
/// `limit` (the deciding limit, if any) and `retry_after` (seconds, or `null`) are
/// always present. No credential ever appears in it.
#[derive(Clone, Debug, Default)]
pub struct ProblemJson {
    type_base: Option<String>,
}

impl ProblemJson {
    /// Problem details with `type` `about:blank`.
    pub fn new() -> Self {
        ProblemJson::default()
    }

    /// `type` becomes `base` followed by the reason's name (e.g.
    /// `"https://api.example.com/problems/"` gives
    /// `"https://api.example.com/problems/quota_exceeded"`): document those pages for
    /// your API's clients.
    pub fn type_base(mut self, base: impl Into<String>) -> Self {
        self.type_base = Some(base.into());
        self
    }

    /// The problem document for `r`, as JSON.
    pub fn body(&self, r: &Refusal<'_>) -> serde_json::Value {
        let (kind, title) = match &self.type_base {
            Some(base) => (format!("{base}{}", r.reason), reason_title(r.reason)),
            None => (
                "about:blank".to_owned(),
                r.status.canonical_reason().unwrap_or("Refused"),
            ),
        };
        serde_json::json!({
            "type": kind,
            "title": title,
            "status": r.status.as_u16(),
            "detail": detail(r),
            "reason": r.reason.as_str(),
            "limit": r.limit,
            "retry_after": r.retry_after,
        })
    }
}

impl<B: From<Bytes>> Responder<B> for ProblemJson {
    fn respond(&self, r: &Refusal<'_>) -> http::Response<B> {
        let mut body = self.body(r).to_string();
        body.push('\n');
        response(r.status, "application/problem+json", body)
    }
}

/// A short title for each reason (problem details with a `type` of their own).
fn reason_title(reason: Reason) -> &'static str {
    match reason {
        Reason::Limited => "Rate limit exceeded",
        Reason::QuotaExceeded => "Quota exceeded",
        Reason::CannotPass => "Request cost exceeds the limit",
        Reason::Revoked => "Access revoked",
        Reason::UnknownKey => "Unknown API key",
        Reason::Unavailable => "Rate limiting unavailable",
        Reason::JournalFailing => "Usage cannot be recorded",
        _ => "Request refused",
    }
}

/// One sentence for a person reading the refusal.
fn detail(r: &Refusal<'_>) -> String {
    let retry = match r.retry_after {
        Some(s) => format!("; retry after {s} s."),
        None => ".".to_owned(),
    };
    match (r.reason, r.limit) {
        (Reason::Limited, Some(l)) => format!("Rate limit \"{l}\" exceeded{retry}"),
        (Reason::Limited, None) => format!("Rate limit exceeded{retry}"),
        (Reason::QuotaExceeded, _) => {
            format!("The monthly quota is used up, over its hard cap{retry}")
        }
        (Reason::CannotPass, Some(l)) => {
            format!("The request costs more than limit \"{l}\" can ever admit.")
        }
        (Reason::CannotPass, None) => "The request costs more than a limit can ever admit.".into(),
        (Reason::Revoked, _) => "The credential is revoked or its user disabled.".into(),
        (Reason::UnknownKey, _) => "The API key is not known.".into(),
        (Reason::Unavailable, _) => format!("The rate limiter cannot decide now{retry}"),
        (Reason::JournalFailing, _) => {
            format!("Usage cannot be recorded for billing now{retry}")
        }
        _ => format!("The request was refused{retry}"),
    }
}

fn response<B: From<Bytes>>(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> http::Response<B> {
    let mut res = http::Response::new(B::from(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

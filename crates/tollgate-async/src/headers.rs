//! The names of the IETF `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers),
//! which the server writes and the client reads.

use http::header::HeaderName;

/// The `RateLimit-Policy` header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

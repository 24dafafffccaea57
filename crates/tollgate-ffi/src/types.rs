//! The C types: constants, result codes and enums, the `#[repr(C)]` structs, and the
//! opaque handles (whose Rust side is tied to them in `ownership`).

use std::ffi::c_char;

/// The library's major version (semantic versioning of the crate).
pub const TOLLGATE_VERSION_MAJOR: u32 = 0;
/// The library's minor version.
pub const TOLLGATE_VERSION_MINOR: u32 = 1;
/// The library's patch version.
pub const TOLLGATE_VERSION_PATCH: u32 = 0;
/// The version of the C ABI this header describes. It changes whenever a function's
/// signature, a struct's layout or an enum's values change; compare it with
/// tollgate_abi_version() at start-up to catch a header and library mismatch.
pub const TOLLGATE_ABI_VERSION: u32 = 1;

/// Pass as `cost` to tollgate_engine_decide() to charge the cost of the request's class
/// (from its `method` attribute) under each limit, as the policy says.
pub const TOLLGATE_CLASS_COST: u64 = u64::MAX;
/// Pass as `now_unix_ns` to decide at the engine's clock (Unix time that never goes
/// backwards) instead of an explicit time.
pub const TOLLGATE_ENGINE_CLOCK: u64 = 0;
/// The `retry_after_ms` of a decision that waiting cannot change (revoked, unknown key,
/// a cost larger than the limit's capacity).
pub const TOLLGATE_NEVER: u64 = u64::MAX;
/// The most attributes one request may carry.
pub const TOLLGATE_MAX_ATTRS: usize = 32;
/// The largest final cost tollgate_reservation_commit() accepts: 2^53, the largest
/// integer a JSON, JavaScript or Lua number holds exactly. A larger one is a bug or an
/// attack, never a cost: the commit fails with TOLLGATE_RESULT_INVALID_ARGUMENT.
pub const TOLLGATE_MAX_COMMIT_COST: u64 = 9_007_199_254_740_992;

/// The result of every fallible function. New codes may be added; values never change.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tollgate_result {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL (or a NULL buffer was given a non-zero length).
    NullParameter = 1,
    /// A string that must be UTF-8 was not.
    InvalidUtf8 = 2,
    /// An argument was out of range or inconsistent (an unknown enum value, an empty or
    /// repeated attribute name, too many attributes, a length beyond `isize`'s range).
    InvalidArgument = 3,
    /// The caller's buffer is too small: `*out_n` holds the size needed; nothing was
    /// written and nothing was lost (call again with a larger buffer).
    BufferTooSmall = 4,
    /// The policy could not be read or is invalid (the message names the line, column
    /// and field).
    Policy = 5,
    /// The engine could not be built or reloaded from a valid policy (a limit, the
    /// quota or its journal could not be set up).
    Engine = 6,
    /// No event is waiting.
    NoEvent = 7,
    /// The decision has no value for this header.
    NoValue = 8,
    /// The policy has no `[quota]`.
    NoQuota = 9,
    /// The quota does not know this API key.
    UnknownKey = 10,
    /// The key's user is disabled.
    DisabledUser = 11,
    /// The quota refused the call for another reason (a time out of range).
    Quota = 12,
    /// An internal error: a panic was caught at the boundary. Please report it.
    Panic = 13,
    /// The quota's journal could not record the change (a notice's acknowledgement:
    /// the notice is not offered again by this process, but a restart offers it again).
    Journal = 14,
    /// An administrative change named a company that is not registered (or was removed).
    UnknownCompany = 15,
    /// An administrative change named a user that is not registered (or was removed).
    UnknownUser = 16,
    /// An administrative change would register a company, user or API key twice (or
    /// move a user to another company).
    Duplicate = 17,
    /// The company is terminated: no change makes it active again.
    CompanyTerminated = 18,
    /// No limit of that name, or the limit has no such override.
    UnknownLimit = 19,
}

/// Why a request was allowed or refused (the `reason` of a tollgate_decision).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tollgate_reason {
    /// Allowed.
    Allowed = 0,
    /// A limit denied it: retry after `retry_after_ms`.
    Limited = 1,
    /// Its token is revoked, or its user disabled (HTTP 403).
    Revoked = 2,
    /// The company is over its monthly quota's hard cap.
    QuotaExceeded = 3,
    /// The quota does not know the API key.
    UnknownKey = 4,
    /// Its cost exceeds a limit's capacity: it can never pass.
    CannotPass = 5,
    /// A limit could not decide (its key store is full, or its backend is down).
    Unavailable = 6,
    /// The quota's journal has been failing for longer than its `fail_closed_after`:
    /// requests the quota would charge are refused until it heals (HTTP 503; retry after
    /// `retry_after_ms`, about a second). Appended after UNAVAILABLE, which earlier
    /// builds of this library answered instead.
    JournalFailing = 7,
    /// Its API key's company is terminated: refused for good (HTTP 403).
    Terminated = 8,
}

/// The quota's verdict in a decision (`quota.outcome`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tollgate_quota_outcome {
    /// The quota took no part (no quota in the policy, or the request was refused
    /// before it).
    None = 0,
    /// Within the company's monthly limit.
    Within = 1,
    /// Over the limit but under the hard cap: served, and the company is notified.
    OverLimit = 2,
    /// Over the hard cap: refused, nothing counted.
    Refused = 3,
}

/// The response headers of a decision (draft-ietf-httpapi-ratelimit-headers).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tollgate_header {
    /// `RateLimit-Policy`, e.g. `"per-token";q=100;w=60`.
    Policy = 0,
    /// `RateLimit`, e.g. `"per-token";r=42;t=17`.
    Ratelimit = 1,
    /// `Retry-After` in seconds (refused requests that may retry).
    RetryAfter = 2,
}

/// What a commit did.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tollgate_commit_outcome {
    /// The final cost was recorded.
    Committed = 0,
    /// The idempotency key was already committed this period: nothing was counted.
    Duplicate = 1,
    /// The final cost was above TOLLGATE_MAX_COMMIT_COST: nothing of it was counted, the
    /// reservation was settled at what it held. tollgate_reservation_commit() does not
    /// report it: it refuses such a cost with TOLLGATE_RESULT_INVALID_ARGUMENT before
    /// settling anything, and the reservation stays with the caller. The value names
    /// the Rust API's `CommitOutcome::TooLarge`, so every outcome has a C value.
    TooLarge = 2,
}

/// One request attribute: a name (`token`, `tenant`, `user`, `company`, `client`,
/// `route`, `method`, or any name a policy keys on) and its value, as UTF-8 byte strings
/// with their lengths.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tollgate_attr {
    /// The name (not NUL-terminated).
    pub name: *const c_char,
    /// The name's length in bytes.
    pub name_len: usize,
    /// The value (not NUL-terminated; NULL with length 0 is the empty value).
    pub value: *const c_char,
    /// The value's length in bytes.
    pub value_len: usize,
}

/// A byte string with its length, for a field of tollgate_request: NULL (with length
/// 0) when the request has no such attribute; a non-NULL pointer with length 0 is the
/// empty value.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tollgate_str {
    /// The bytes (UTF-8, not NUL-terminated), or NULL for "absent".
    pub ptr: *const c_char,
    /// Their length in bytes (0 when `ptr` is NULL).
    pub len: usize,
}

impl Default for tollgate_str {
    fn default() -> Self {
        tollgate_str {
            ptr: std::ptr::null(),
            len: 0,
        }
    }
}

/// A request with the engine's own attributes as fields, for
/// tollgate_engine_decide_request(): no attribute names to match, so the boundary does
/// less work than with tollgate_engine_decide(). A zeroed struct (`tollgate_request r =
/// {0};`) is a request with no attributes, the class's cost and the engine's clock; set
/// the fields the gateway has.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tollgate_request {
    /// The API token.
    pub token: tollgate_str,
    /// The tenant.
    pub tenant: tollgate_str,
    /// The user.
    pub user: tollgate_str,
    /// The company.
    pub company: tollgate_str,
    /// The client (address or id).
    pub client: tollgate_str,
    /// The route.
    pub route: tollgate_str,
    /// The HTTP method (picks the request's class).
    pub method: tollgate_str,
    /// Further attributes a policy keys on (`attrs_len` of them, at most
    /// TOLLGATE_MAX_ATTRS; NULL when 0). A name of one of the fields above fills that
    /// field when it is NULL, and is an error when it is set.
    pub attrs: *const tollgate_attr,
    /// The number of further attributes.
    pub attrs_len: usize,
    /// Whether `cost` is the request's explicit cost (false: the class's cost under each
    /// limit).
    pub explicit_cost: bool,
    /// The request's explicit cost, when `explicit_cost`.
    pub cost: u64,
    /// The request's time in Unix nanoseconds, or TOLLGATE_ENGINE_CLOCK (0) for the
    /// engine's clock.
    pub now_unix_ns: u64,
}

impl Default for tollgate_request {
    fn default() -> Self {
        tollgate_request {
            token: tollgate_str::default(),
            tenant: tollgate_str::default(),
            user: tollgate_str::default(),
            company: tollgate_str::default(),
            client: tollgate_str::default(),
            route: tollgate_str::default(),
            method: tollgate_str::default(),
            attrs: std::ptr::null(),
            attrs_len: 0,
            explicit_cost: false,
            cost: 0,
            now_unix_ns: TOLLGATE_ENGINE_CLOCK,
        }
    }
}

/// The quota's part of a decision.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct tollgate_quota_status {
    /// A tollgate_quota_outcome.
    pub outcome: u32,
    /// The company's usage this period.
    pub used: u64,
    /// The company's limit this period.
    pub limit: u64,
    /// When the period ends and usage starts again at zero (Unix seconds).
    pub resets_at_unix: i64,
}

/// The engine's answer to a request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct tollgate_decision {
    /// Whether to serve the request.
    pub allowed: bool,
    /// Whether a shadow (observe-only) limit would have denied it.
    pub shadow_denied: bool,
    /// A tollgate_reason.
    pub reason: u32,
    /// The index in the policy of the limit that decided (the one that denied, or the
    /// most restrictive one), or -1 when no limit decided.
    pub decided_by: i32,
    /// The deciding limit's capacity (cost units admitted at once).
    pub limit: u64,
    /// Cost units the deciding limit still admits.
    pub remaining: u64,
    /// How long to wait before retrying, in milliseconds rounded up: 0 when allowed,
    /// TOLLGATE_NEVER when waiting does not help.
    pub retry_after_ms: u64,
    /// When the deciding limit is back to full capacity, in milliseconds rounded up.
    pub reset_after_ms: u64,
    /// The policy generation that decided (each reload adds one).
    pub generation: u64,
    /// The quota's view.
    pub quota: tollgate_quota_status,
}

/// What a reload did, counted by limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct tollgate_reload_report {
    /// Limits whose definition did not change: their state is untouched.
    pub kept: usize,
    /// Changed limits whose keys' used capacity carried over.
    pub carried: usize,
    /// New limits, and changed ones that start fresh.
    pub fresh: usize,
    /// Limits no longer in the policy.
    pub removed: usize,
}

/// An engine: the policy's limits, revocation and quota. Created by
/// tollgate_engine_from_toml() or tollgate_engine_from_file(), released by
/// tollgate_engine_free(); shared by every thread of the host.
#[derive(Debug)]
pub struct tollgate_engine {
    _private: [u8; 0],
}

/// A quota reservation: created by tollgate_engine_quota_reserve(), released by
/// tollgate_reservation_commit() or tollgate_reservation_refund(). It keeps its ledger
/// (and the engine's quota store) alive, so it may outlive its engine.
#[derive(Debug)]
pub struct tollgate_reservation {
    _private: [u8; 0],
}

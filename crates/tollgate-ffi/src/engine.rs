//! The engine handle and its functions: build, decide, headers, reload, revoke, events,
//! metrics.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Mutex;

use tollgate::quota::Outcome as QuotaOutcome;
use tollgate::{
    Engine, EngineDecision, EngineError, Event, Policy, PolicyWarning, QuotaStatus, Reason,
    ReloadReport, Request,
};

use arrayvec::ArrayVec;

use crate::guard::{
    bytes, guard, is_ascii, non_null, non_null_mut, text, try_bytes, try_text, write_text, BadText,
    Fail, Outcome,
};
use crate::{
    tollgate_attr, tollgate_decision, tollgate_header, tollgate_quota_outcome,
    tollgate_quota_status, tollgate_reason, tollgate_reload_report, tollgate_request,
    tollgate_result, tollgate_str, TOLLGATE_CLASS_COST, TOLLGATE_ENGINE_CLOCK, TOLLGATE_MAX_ATTRS,
    TOLLGATE_NEVER,
};

/// An engine: the policy's limits, revocation and quota. Created by
/// tollgate_engine_from_toml() or tollgate_engine_from_file(), released by
/// tollgate_engine_free(); shared by every thread of the host.
#[derive(Debug)]
pub struct tollgate_engine {
    pub(crate) engine: Engine,
    /// An event taken from the engine's channel that did not fit the caller's buffer yet;
    /// the next call returns it first, so a small buffer loses nothing.
    pending: Mutex<Option<String>>,
    /// The warnings and notes of the last load or reload, one per line.
    notes: Mutex<String>,
}

fn lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|w| format!("{w}\n")).collect()
}

fn engine_fail(e: EngineError) -> Fail {
    let code = match e {
        EngineError::Policy(_) => tollgate_result::Policy,
        _ => tollgate_result::Engine,
    };
    Fail::new(code, e.to_string())
}

fn policy_from_text(policy: &str) -> Result<(Policy, Vec<PolicyWarning>), Fail> {
    Policy::from_toml(policy).map_err(|e| Fail::new(tollgate_result::Policy, e.to_string()))
}

/// A path from the caller's bytes (any bytes on Unix; UTF-8 elsewhere).
///
/// # Safety
/// As for [`bytes`].
unsafe fn path(ptr: *const c_char, len: usize) -> Result<PathBuf, Fail> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: forwarded from the caller.
        let b = unsafe { bytes(ptr, len, "path") }?;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(b)))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: forwarded from the caller.
        Ok(PathBuf::from(unsafe { text(ptr, len, "path") }?))
    }
}

/// Moves a new engine to the caller.
///
/// # Safety
/// `out` must be non-null and writable.
unsafe fn hand_over(engine: Engine, warnings: Vec<PolicyWarning>, out: *mut *mut tollgate_engine) {
    let handle = Box::new(tollgate_engine {
        engine,
        pending: Mutex::new(None),
        notes: Mutex::new(lines(warnings)),
    });
    // SAFETY: the caller checked `out`; the box is released by tollgate_engine_free().
    unsafe { out.write(Box::into_raw(handle)) };
}

/// The engine behind a handle.
///
/// # Safety
/// `p`, if non-null, must come from tollgate_engine_from_* and not be freed yet.
pub(crate) unsafe fn handle<'a>(p: *const tollgate_engine) -> Result<&'a tollgate_engine, Fail> {
    let p = non_null(p, "engine")?;
    // SAFETY: non-null, and the caller promises a live handle (shared access only).
    Ok(unsafe { &*p })
}

/// Builds an engine from policy text (TOML, `version = 1`). On success `*out` receives
/// the engine, which the caller frees with tollgate_engine_free(). On failure the
/// message (line, column and field of a policy error) is in tollgate_last_error().
/// Deprecation warnings are in tollgate_engine_warnings().
///
/// # Safety
/// `policy` must point to `len` readable bytes; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_from_toml(
    policy: *const c_char,
    len: usize,
    out: *mut *mut tollgate_engine,
) -> tollgate_result {
    guard(|| {
        let out = non_null_mut(out, "out")?;
        // SAFETY: the caller's promise.
        let text = unsafe { text(policy, len, "policy") }?;
        let (policy, warnings) = policy_from_text(text)?;
        let engine = Engine::new(policy).map_err(engine_fail)?;
        // SAFETY: `out` checked above.
        unsafe { hand_over(engine, warnings, out) };
        Ok(tollgate_result::Ok)
    })
}

/// Builds an engine from a policy file (`path` is `path_len` bytes, not
/// NUL-terminated). As tollgate_engine_from_toml() otherwise; error messages name the
/// file.
///
/// # Safety
/// `path` must point to `path_len` readable bytes; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_from_file(
    path: *const c_char,
    path_len: usize,
    out: *mut *mut tollgate_engine,
) -> tollgate_result {
    guard(|| {
        let out = non_null_mut(out, "out")?;
        // SAFETY: the caller's promise.
        let path = unsafe { self::path(path, path_len) }?;
        let (engine, warnings) = Engine::from_file(&path).map_err(engine_fail)?;
        // SAFETY: `out` checked above.
        unsafe { hand_over(engine, warnings, out) };
        Ok(tollgate_result::Ok)
    })
}

/// Releases an engine. Calling with NULL is fine. It must be the last call on the
/// engine, from any thread; it must not be called twice with the same engine.
///
/// # Safety
/// `engine` must be NULL or come from tollgate_engine_from_* and not be freed yet, and
/// no other thread may be using it.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_free(engine: *mut tollgate_engine) {
    if engine.is_null() {
        return;
    }
    // A panic in a destructor must not unwind into C; there is nothing to report it to.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller hands back the box tollgate_engine_from_* gave out.
        drop(unsafe { Box::from_raw(engine) });
    }));
}

/// Copies the warnings (deprecated settings) and notes of the last load or reload, one
/// per line, into `buf` (empty when there were none).
///
/// # Safety
/// `engine` must be a live engine; `buf` must point to `len` writable bytes and `out_n`
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_warnings(
    engine: *const tollgate_engine,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe {
        engine_text(engine, buf, len, out_n, |h| {
            h.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }
}

/// Shared by the functions that copy a text of the engine's into the caller's buffer.
///
/// # Safety
/// As for those functions.
unsafe fn engine_text(
    engine: *const tollgate_engine,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
    text: impl FnOnce(&tollgate_engine) -> String,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        let text = text(h);
        // SAFETY: the caller's promises.
        unsafe { write_text(&text, buf, len, out_n) }
    })
}

pub(crate) fn reason_from_c(r: u32) -> Option<Reason> {
    Some(match r {
        0 => Reason::Allowed,
        1 => Reason::Limited,
        2 => Reason::Revoked,
        3 => Reason::QuotaExceeded,
        4 => Reason::UnknownKey,
        5 => Reason::CannotPass,
        6 => Reason::Unavailable,
        _ => return None,
    })
}

fn reason_to_c(r: Reason) -> tollgate_reason {
    match r {
        Reason::Allowed => tollgate_reason::Allowed,
        Reason::Limited => tollgate_reason::Limited,
        Reason::Revoked => tollgate_reason::Revoked,
        Reason::QuotaExceeded => tollgate_reason::QuotaExceeded,
        Reason::UnknownKey => tollgate_reason::UnknownKey,
        Reason::CannotPass => tollgate_reason::CannotPass,
        Reason::Unavailable => tollgate_reason::Unavailable,
    }
}

pub(crate) fn quota_to_c(q: Option<QuotaStatus>) -> tollgate_quota_status {
    match q {
        None => tollgate_quota_status::default(),
        Some(q) => tollgate_quota_status {
            outcome: match q.outcome {
                QuotaOutcome::Within => tollgate_quota_outcome::Within,
                QuotaOutcome::OverLimit => tollgate_quota_outcome::OverLimit,
                QuotaOutcome::Refused => tollgate_quota_outcome::Refused,
            } as u32,
            used: q.used,
            limit: q.limit,
            resets_at_unix: q.resets_at_unix,
        },
    }
}

/// Nanoseconds to milliseconds, rounded up; "never" stays never.
fn ms(ns: u64) -> u64 {
    if ns == u64::MAX {
        TOLLGATE_NEVER
    } else {
        ns.div_ceil(1_000_000)
    }
}

/// Milliseconds back to nanoseconds. Rounding up twice rounds up once: the whole
/// seconds of the headers come out the same as from the engine's own decision.
fn ns(ms: u64) -> u64 {
    if ms == TOLLGATE_NEVER {
        u64::MAX
    } else {
        ms.saturating_mul(1_000_000)
    }
}

pub(crate) fn decision_to_c(d: &EngineDecision) -> tollgate_decision {
    tollgate_decision {
        allowed: d.allowed(),
        shadow_denied: d.shadow_denied,
        reason: reason_to_c(d.reason) as u32,
        decided_by: d
            .decided_by
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(-1),
        limit: d.limit,
        remaining: d.remaining,
        retry_after_ms: ms(d.retry_after),
        reset_after_ms: ms(d.reset_after),
        generation: d.generation,
        quota: quota_to_c(d.quota),
    }
}

fn decision_from_c(d: &tollgate_decision) -> Result<EngineDecision, Fail> {
    let invalid = |what: String| Fail::new(tollgate_result::InvalidArgument, what);
    let reason =
        reason_from_c(d.reason).ok_or_else(|| invalid(format!("unknown reason {}", d.reason)))?;
    let decided_by = match d.decided_by {
        -1 => None,
        i => Some(usize::try_from(i).map_err(|_| invalid(format!("decided_by {i} is negative")))?),
    };
    let outcome = match d.quota.outcome {
        0 => None,
        1 => Some(QuotaOutcome::Within),
        2 => Some(QuotaOutcome::OverLimit),
        3 => Some(QuotaOutcome::Refused),
        o => return Err(invalid(format!("unknown quota outcome {o}"))),
    };
    Ok(EngineDecision {
        reason,
        decided_by,
        limit: d.limit,
        remaining: d.remaining,
        retry_after: ns(d.retry_after_ms),
        reset_after: ns(d.reset_after_ms),
        shadow_denied: d.shadow_denied,
        degraded: false,
        quota: outcome.map(|outcome| QuotaStatus {
            outcome,
            used: d.quota.used,
            limit: d.quota.limit,
            resets_at_unix: d.quota.resets_at_unix,
        }),
        generation: d.generation,
    })
}

/// Decides a request: every limit that applies, all or nothing, then the monthly quota.
/// `attrs` are the request's attributes (`attrs_len` of them, at most
/// TOLLGATE_MAX_ATTRS; each name at most once); a `method` attribute picks the request's
/// class. `cost` is the request's explicit cost, or TOLLGATE_CLASS_COST for the class's
/// cost under each limit. `now_unix_ns` is the request's time in Unix nanoseconds, or
/// TOLLGATE_ENGINE_CLOCK for the engine's clock. On success `*out` receives the
/// decision; a refused request is a success whose decision says so.
///
/// Thread-safe: any number of threads may decide on one engine at once.
///
/// # Safety
/// `engine` must be a live engine; `attrs` must point to `attrs_len` attributes whose
/// names and values point to their stated lengths of readable bytes; `out` must be
/// writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_decide(
    engine: *const tollgate_engine,
    attrs: *const tollgate_attr,
    attrs_len: usize,
    cost: u64,
    now_unix_ns: u64,
    out: *mut tollgate_decision,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        let out = non_null_mut(out, "out")?;
        // SAFETY: the caller's promise.
        let attrs = unsafe { attr_slice(attrs, attrs_len) }?;
        let mut fields = [None; 7];
        // Attributes the engine has no field for; on the stack, nothing initialised
        // until used.
        let mut others: Others<'_> = ArrayVec::new();
        fill_attrs(&mut fields, &mut others, attrs)?;
        let req = request_of(
            fields,
            &others,
            (cost != TOLLGATE_CLASS_COST).then_some(cost),
            now_unix_ns,
        );
        let d = h.engine.decide(&req);
        // SAFETY: `out` checked above; the caller promises it is writable.
        unsafe { out.write(decision_to_c(&d)) };
        Ok(tollgate_result::Ok)
    })
}

/// Decides a request given as a tollgate_request, exactly as
/// tollgate_engine_decide() decides the same attributes: every limit that applies, all
/// or nothing, then the monthly quota. The engine's own attributes are fields, so no
/// names are matched; further attributes go in `request->attrs`. On success `*out`
/// receives the decision; a refused request is a success whose decision says so.
///
/// Thread-safe: any number of threads may decide on one engine at once.
///
/// # Safety
/// `engine` must be a live engine; `request` must be a readable tollgate_request whose
/// non-NULL fields point to their stated lengths of readable bytes and whose `attrs`
/// point as for tollgate_engine_decide(); `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_decide_request(
    engine: *const tollgate_engine,
    request: *const tollgate_request,
    out: *mut tollgate_decision,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        let r = non_null(request, "request")?;
        if !r.is_aligned() {
            return Err(Fail::new(
                tollgate_result::InvalidArgument,
                "request is not aligned for tollgate_request",
            ));
        }
        let out = non_null_mut(out, "out")?;
        // SAFETY: non-null and aligned; the caller promises a readable request.
        let r = unsafe { &*r };
        // SAFETY: the caller promises each field's bytes.
        let fields = unsafe {
            field_values([
                r.token, r.tenant, r.user, r.company, r.client, r.route, r.method,
            ])
        }?;
        let cost = r.explicit_cost.then_some(r.cost);
        // Without further attributes the fields go straight into the request (nothing
        // held across a call).
        let d = if r.attrs_len == 0 {
            h.engine
                .decide(&request_of(fields, &[], cost, r.now_unix_ns))
        } else {
            let mut fields = fields;
            let mut others: Others<'_> = ArrayVec::new();
            // SAFETY: the caller's promise.
            let attrs = unsafe { attr_slice(r.attrs, r.attrs_len) }?;
            fill_attrs(&mut fields, &mut others, attrs)?;
            h.engine
                .decide(&request_of(fields, &others, cost, r.now_unix_ns))
        };
        // SAFETY: `out` checked above; the caller promises it is writable.
        unsafe { out.write(decision_to_c(&d)) };
        Ok(tollgate_result::Ok)
    })
}

/// Attributes the engine has no field for, as the [`Request`] refers to them.
type Others<'a> = ArrayVec<(&'a str, &'a str), TOLLGATE_MAX_ATTRS>;

/// The caller's attribute array: at most TOLLGATE_MAX_ATTRS, non-NULL and aligned unless
/// empty.
///
/// # Safety
/// Unless `len` is 0, `attrs` must point to `len` attributes valid for `'a`.
unsafe fn attr_slice<'a>(
    attrs: *const tollgate_attr,
    len: usize,
) -> Result<&'a [tollgate_attr], Fail> {
    if len > TOLLGATE_MAX_ATTRS {
        return Err(Fail::new(
            tollgate_result::InvalidArgument,
            format!("{len} attributes; at most {TOLLGATE_MAX_ATTRS} are accepted"),
        ));
    }
    if len == 0 {
        return Ok(&[]);
    }
    let p = non_null(attrs, "attrs")?;
    if !p.is_aligned() {
        return Err(Fail::new(
            tollgate_result::InvalidArgument,
            "attrs is not aligned for tollgate_attr",
        ));
    }
    // SAFETY: non-null, aligned, and the caller promises `len` attributes (at most
    // TOLLGATE_MAX_ATTRS, so the size cannot overflow).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The engine's request: the fields (in [`KnownName`] order), the other attributes, the
/// cost, the time (TOLLGATE_ENGINE_CLOCK: the engine's clock).
#[inline]
fn request_of<'a>(
    fields: [Option<&'a str>; 7],
    others: &'a [(&'a str, &'a str)],
    cost: Option<u64>,
    now_unix_ns: u64,
) -> Request<'a> {
    let [token, tenant, user, company, client, route, method] = fields;
    Request {
        token,
        tenant,
        user,
        company,
        client,
        route,
        method,
        attrs: others,
        cost,
        now: (now_unix_ns != TOLLGATE_ENGINE_CLOCK).then_some(now_unix_ns),
    }
}

/// Puts each attribute into its field (the engine's own names, in [`KnownName`] order)
/// or into `others`; a name given twice (or given for a field already set) is an error.
fn fill_attrs<'a>(
    fields: &mut [Option<&'a str>; 7],
    others: &mut Others<'a>,
    attrs: &'a [tollgate_attr],
) -> Result<(), Fail> {
    for a in attrs {
        // SAFETY: the caller promises each attribute's bytes.
        let name =
            unsafe { try_bytes(a.name, a.name_len) }.map_err(|e| e.fail("attribute name"))?;
        // SAFETY: as above.
        let value = unsafe { try_text(a.value, a.value_len) }.map_err(|e| bad_value(e, name))?;
        // The engine's own attribute names are ASCII: matching their bytes needs no
        // UTF-8 check of the name.
        let slot = match known_name(name) {
            Some(known) => &mut fields[known as usize],
            None if name.is_empty() => {
                return Err(Fail::new(
                    tollgate_result::InvalidArgument,
                    "an attribute has an empty name",
                ))
            }
            None => {
                let name = std::str::from_utf8(name)
                    .map_err(|e| BadText::Utf8(e.valid_up_to()).fail("attribute name"))?;
                if others.iter().any(|(n, _)| *n == name) {
                    return Err(repeated(name.as_bytes()));
                }
                // Cannot overflow: the slice holds at most TOLLGATE_MAX_ATTRS.
                others.push((name, value));
                continue;
            }
        };
        if slot.is_some() {
            return Err(repeated(name));
        }
        *slot = Some(value);
    }
    Ok(())
}

/// The names of [`tollgate_request`]'s string fields, in order.
const FIELDS: [&str; 7] = [
    "request.token",
    "request.tenant",
    "request.user",
    "request.company",
    "request.client",
    "request.route",
    "request.method",
];

/// The values of [`tollgate_request`]'s string fields: `None` for NULL. The common case
/// (well-formed, ASCII) is checked for all seven at once, with one branch; anything
/// else takes [`field_values_checked`], which finds the first bad field and names it.
///
/// # Safety
/// Each non-NULL field must point to its length of readable bytes valid for `'a`.
#[inline]
unsafe fn field_values<'a>(fields: [tollgate_str; 7]) -> Result<[Option<&'a str>; 7], Fail> {
    // NULL with a length, or a length no object can have.
    let misshapen = fields.iter().fold(false, |acc, f| {
        acc | (f.ptr.is_null() & (f.len != 0)) | (f.len > isize::MAX as usize)
    });
    if !misshapen {
        let bytes = fields.map(|f| {
            (!f.ptr.is_null()).then(|| {
                // SAFETY: non-null, the length fits an object, and the caller promises
                // the bytes.
                unsafe { std::slice::from_raw_parts(f.ptr.cast::<u8>(), f.len) }
            })
        });
        if bytes
            .iter()
            .fold(true, |acc, b| acc & b.map_or(true, is_ascii))
        {
            // SAFETY: every byte is below 0x80: ASCII, which is valid UTF-8.
            return Ok(bytes.map(|b| b.map(|b| unsafe { std::str::from_utf8_unchecked(b) })));
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { field_values_checked(fields) }
}

/// [`field_values`] one field at a time, failing on the first bad one.
///
/// # Safety
/// As for [`field_values`].
#[cold]
#[inline(never)]
unsafe fn field_values_checked<'a>(
    fields: [tollgate_str; 7],
) -> Result<[Option<&'a str>; 7], Fail> {
    let mut values = [None; 7];
    for ((f, name), v) in fields.iter().zip(FIELDS).zip(&mut values) {
        if f.ptr.is_null() {
            if f.len != 0 {
                return Err(Fail::new(
                    tollgate_result::NullParameter,
                    format!("{name} is NULL with length {}", f.len),
                ));
            }
            continue;
        }
        // SAFETY: forwarded from the caller.
        *v = Some(unsafe { text(f.ptr, f.len, name) }?);
    }
    Ok(values)
}

/// The attributes [`Request`] has a field for, in the order of [`tollgate_request`]'s
/// fields (the index of each in the fields array).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KnownName {
    Token,
    Tenant,
    User,
    Company,
    Client,
    Route,
    Method,
}

/// A name of 4 to 8 bytes as one word: its first four bytes and its last four (which
/// overlap below 8, and together cover every byte), so comparing words compares names.
#[inline]
const fn name_word(b: &[u8]) -> u64 {
    let n = b.len();
    let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
    (hi as u64) << 32 | lo as u64
}

/// Which field `name` fills, comparing one word instead of the bytes name by name.
#[inline]
fn known_name(name: &[u8]) -> Option<KnownName> {
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
        (4, USER) => KnownName::User,
        (5, TOKEN) => KnownName::Token,
        (5, ROUTE) => KnownName::Route,
        (6, TENANT) => KnownName::Tenant,
        (6, CLIENT) => KnownName::Client,
        (6, METHOD) => KnownName::Method,
        (7, COMPANY) => KnownName::Company,
        _ => return None,
    })
}

#[cold]
fn repeated(name: &[u8]) -> Fail {
    Fail::new(
        tollgate_result::InvalidArgument,
        format!(
            "attribute {:?} is given more than once",
            String::from_utf8_lossy(name)
        ),
    )
}

#[cold]
fn bad_value(e: BadText, name: &[u8]) -> Fail {
    let mut f = e.fail("attribute value");
    f.message = format!(
        "attribute {:?}: {}",
        String::from_utf8_lossy(name),
        f.message
    );
    f
}

/// Copies the value of one response header for `decision` (a tollgate_header:
/// `RateLimit-Policy`, `RateLimit` or `Retry-After`; tollgate_header_name() gives the
/// header's name) into `buf`. Returns TOLLGATE_RESULT_NO_VALUE when the decision has no
/// such header (an allowed request has no `Retry-After`; a decision no limit made has no
/// `RateLimit`). The decision must come from this engine; after a reload, decisions of
/// the previous policy have only `Retry-After`.
///
/// # Safety
/// `engine` must be a live engine, `decision` readable, `buf` `len` writable bytes and
/// `out_n` a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_header(
    engine: *const tollgate_engine,
    decision: *const tollgate_decision,
    header: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        // SAFETY: non-null, and the caller promises a readable decision.
        let d = decision_from_c(unsafe { &*non_null(decision, "decision")? })?;
        let headers = h.engine.headers(&d);
        let value = match header {
            x if x == tollgate_header::Policy as u32 => headers.policy,
            x if x == tollgate_header::Ratelimit as u32 => headers.ratelimit,
            x if x == tollgate_header::RetryAfter as u32 => headers.retry_after,
            other => {
                return Err(Fail::new(
                    tollgate_result::InvalidArgument,
                    format!("unknown header {other}"),
                ))
            }
        };
        match value {
            // SAFETY: the caller's promises.
            Some(v) => unsafe { write_text(&v, buf, len, out_n) },
            None => Ok(tollgate_result::NoValue),
        }
    })
}

fn report_to_c(r: &ReloadReport) -> tollgate_reload_report {
    tollgate_reload_report {
        kept: r.kept.len(),
        carried: r.carried.len(),
        fresh: r.fresh.len(),
        removed: r.removed.len(),
    }
}

/// Records a reload's outcome: its warnings and notes, and the report for the caller.
///
/// # Safety
/// `out` must be NULL or writable.
unsafe fn reloaded(
    h: &tollgate_engine,
    report: ReloadReport,
    warnings: Vec<PolicyWarning>,
    out: *mut tollgate_reload_report,
) -> Outcome {
    let mut notes = lines(warnings);
    notes.push_str(&lines(&report.notes));
    *h.notes.lock().unwrap_or_else(|p| p.into_inner()) = notes;
    if !out.is_null() {
        // SAFETY: non-null, and the caller promises it is writable.
        unsafe { out.write(report_to_c(&report)) };
    }
    Ok(tollgate_result::Ok)
}

/// Replaces the engine's policy with `policy` (TOML), while other threads go on
/// deciding: unchanged limits keep their state, changed ones carry their keys' used
/// capacity, new ones start fresh. `out`, if not NULL, receives what happened per limit.
/// On failure the engine keeps its current policy.
///
/// # Safety
/// `engine` must be a live engine; `policy` must point to `len` readable bytes; `out`
/// must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_reload_toml(
    engine: *const tollgate_engine,
    policy: *const c_char,
    len: usize,
    out: *mut tollgate_reload_report,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        // SAFETY: the caller's promise.
        let text = unsafe { text(policy, len, "policy") }?;
        let (policy, warnings) = policy_from_text(text)?;
        let report = h.engine.reload(policy).map_err(engine_fail)?;
        // SAFETY: the caller's promise about `out`.
        unsafe { reloaded(h, report, warnings, out) }
    })
}

/// As tollgate_engine_reload_toml(), from a policy file.
///
/// # Safety
/// `engine` must be a live engine; `path` must point to `path_len` readable bytes;
/// `out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_reload_file(
    engine: *const tollgate_engine,
    path: *const c_char,
    path_len: usize,
    out: *mut tollgate_reload_report,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        // SAFETY: the caller's promise.
        let path = unsafe { self::path(path, path_len) }?;
        let (report, warnings) = h.engine.reload_file(&path).map_err(engine_fail)?;
        // SAFETY: the caller's promise about `out`.
        unsafe { reloaded(h, report, warnings, out) }
    })
}

/// Shared by revoke, restore and is_revoked: the UTF-8 value and the bool output.
///
/// # Safety
/// As for those functions.
unsafe fn with_value(
    engine: *const tollgate_engine,
    value: *const c_char,
    len: usize,
    out: *mut bool,
    out_required: bool,
    op: impl FnOnce(&Engine, &str) -> bool,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        if out_required {
            non_null_mut(out, "out")?;
        }
        // SAFETY: the caller's promise.
        let value = unsafe { text(value, len, "value") }?;
        let result = op(&h.engine, value);
        if !out.is_null() {
            // SAFETY: non-null, and the caller promises it is writable.
            unsafe { out.write(result) };
        }
        Ok(tollgate_result::Ok)
    })
}

/// Revokes a token (the policy's revocation attribute): its requests are refused with
/// TOLLGATE_REASON_REVOKED until restored. `*out_changed`, if not NULL, says whether it
/// was not revoked already. Raises a `revoked` event.
///
/// # Safety
/// `engine` must be a live engine; `value` must point to `len` readable bytes;
/// `out_changed` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_revoke(
    engine: *const tollgate_engine,
    value: *const c_char,
    len: usize,
    out_changed: *mut bool,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { with_value(engine, value, len, out_changed, false, Engine::revoke) }
}

/// Restores a revoked token and forgets its denials. `*out_changed`, if not NULL, says
/// whether it was revoked. Raises a `restored` event when it was.
///
/// # Safety
/// As for tollgate_engine_revoke().
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_restore(
    engine: *const tollgate_engine,
    value: *const c_char,
    len: usize,
    out_changed: *mut bool,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { with_value(engine, value, len, out_changed, false, Engine::restore) }
}

/// Whether a token is revoked, into `*out` (required).
///
/// # Safety
/// `engine` must be a live engine; `value` must point to `len` readable bytes; `out`
/// must be writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_is_revoked(
    engine: *const tollgate_engine,
    value: *const c_char,
    len: usize,
    out: *mut bool,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { with_value(engine, value, len, out, true, Engine::is_revoked) }
}

/// An event as one JSON object: quota notices
/// (`{"kind":"warning"|"overage","company":..,"period":..,"used":..,"limit":..}`, an
/// overage with `"suggested_plan"`), revocations
/// (`{"kind":"revoked","attribute":"token","key":"abcd1234…","automatic":true}`) and
/// restorations (`{"kind":"restored",..}`). Tokens appear redacted.
pub(crate) fn event_json(e: &Event) -> String {
    /// A revocation or restoration, its kind first like the quota notices'.
    #[derive(serde::Serialize)]
    struct Revocation<'a> {
        kind: &'static str,
        attribute: &'a str,
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        automatic: Option<bool>,
    }
    let json = match e {
        Event::Quota(q) => serde_json::to_string(q),
        Event::Revoked {
            attribute,
            key,
            automatic,
        } => serde_json::to_string(&Revocation {
            kind: "revoked",
            attribute,
            key: key.to_string(),
            automatic: Some(*automatic),
        }),
        Event::Restored { attribute, key } => serde_json::to_string(&Revocation {
            kind: "restored",
            attribute,
            key: key.to_string(),
            automatic: None,
        }),
    };
    json.unwrap_or_else(|e| format!("{{\"kind\":\"error\",\"message\":{:?}}}", e.to_string()))
}

/// Takes the next event (a quota notice to send, a token revoked or restored) without
/// blocking, as one JSON object (see the README) in `buf`. Returns
/// TOLLGATE_RESULT_NO_EVENT when none is waiting. When `buf` is too small, `*out_n`
/// receives the size needed and the event stays first in line for the next call.
///
/// Thread-safe; each event goes to exactly one caller. Poll it from one thread, e.g. a
/// timer, and turn notices into emails.
///
/// # Safety
/// `engine` must be a live engine; `buf` must point to `len` writable bytes and `out_n`
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_next_event(
    engine: *const tollgate_engine,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tollgate_result {
    guard(|| {
        // SAFETY: the caller's promise.
        let h = unsafe { handle(engine) }?;
        non_null_mut(out_n, "out_n")?;
        let mut pending = h.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_none() {
            match h.engine.events().try_recv() {
                Ok(e) => *pending = Some(event_json(&e)),
                Err(_) => return Ok(tollgate_result::NoEvent),
            }
        }
        let json = pending.as_deref().unwrap_or_default();
        // SAFETY: the caller's promises.
        let r = unsafe { write_text(json, buf, len, out_n) }?;
        *pending = None;
        Ok(r)
    })
}

/// Copies the engine's counters as Prometheus text (per limit: allowed, denied,
/// shadow-denied, errors, revocations; engine-wide totals) into `buf`.
///
/// # Safety
/// `engine` must be a live engine; `buf` must point to `len` writable bytes and `out_n`
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_metrics(
    engine: *const tollgate_engine,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { engine_text(engine, buf, len, out_n, |h| h.engine.prometheus()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{
        tollgate_engine_quota_reserve, tollgate_reservation_commit, tollgate_reservation_refund,
    };
    use crate::{tollgate_commit_outcome, TOLLGATE_ABI_VERSION};

    const POLICY: &str = "version = 1\n\
        [[limit]]\nname = \"per-token\"\nkey = [\"token\"]\nrate = \"2/min\"\n\
        [revocation]\nkey = \"token\"\ndenials = 1\nwindow = \"1m\"\n\
        [quota]\nkey = \"token\"\nunknown_key = \"allow\"\n\
        [[quota.plans]]\nname = \"p\"\ncalls = 10\ndefault = true\n\
        [[quota.companies]]\nid = \"acme\"\nusers = [{ id = \"a\", keys = [\"k1\"] }]\n";
    const NOW: u64 = 1_800_000_000_000_000_000;

    fn attr(name: &'static str, value: &'static str) -> tollgate_attr {
        tollgate_attr {
            name: name.as_ptr().cast(),
            name_len: name.len(),
            value: value.as_ptr().cast(),
            value_len: value.len(),
        }
    }

    fn new_engine() -> *mut tollgate_engine {
        let mut e = std::ptr::null_mut();
        // SAFETY: a static string and a local out-pointer.
        let rc = unsafe { tollgate_engine_from_toml(POLICY.as_ptr().cast(), POLICY.len(), &mut e) };
        assert_eq!(rc, tollgate_result::Ok);
        e
    }

    fn text_of(
        f: impl FnOnce(*mut c_char, usize, *mut usize) -> tollgate_result,
    ) -> Option<String> {
        let mut buf = vec![0 as c_char; 4096];
        let mut n = 0;
        match f(buf.as_mut_ptr(), buf.len(), &mut n) {
            tollgate_result::Ok => Some(buf[..n].iter().map(|&c| c as u8 as char).collect()),
            _ => None,
        }
    }

    /// Every entry point once, from Rust, as C would call it: the unsafe code of the
    /// crate, which miri runs too (`scripts/test`).
    #[test]
    fn the_whole_api_from_rust() {
        assert_eq!(crate::tollgate_abi_version(), TOLLGATE_ABI_VERSION);
        let e = new_engine();
        let attrs = [
            attr("token", "k1"),
            attr("method", "GET"),
            attr("region", "eu"),
        ];
        let mut d = tollgate_decision::default();
        for expect in [true, true, false] {
            // SAFETY: a live engine, three attributes, a local output.
            let rc = unsafe {
                tollgate_engine_decide(e, attrs.as_ptr(), 3, TOLLGATE_CLASS_COST, NOW, &mut d)
            };
            assert_eq!(rc, tollgate_result::Ok);
            assert_eq!(d.allowed, expect);
        }
        assert_eq!(d.retry_after_ms, 30_000);
        assert_eq!(d.quota, tollgate_quota_status::default());
        // SAFETY: the engine, the decision, buffers from text_of.
        let retry = text_of(|b, l, n| unsafe {
            tollgate_engine_header(e, &d, tollgate_header::RetryAfter as u32, b, l, n)
        });
        assert_eq!(retry.as_deref(), Some("30"));
        // SAFETY: as above.
        let limit = text_of(|b, l, n| unsafe { tollgate_engine_header(e, &d, 1, b, l, n) });
        assert_eq!(limit.as_deref(), Some("\"per-token\";r=0;t=60"));

        // One denial revoked the token: an event, then 403s.
        // SAFETY: the engine and a buffer.
        let event = text_of(|b, l, n| unsafe { tollgate_engine_next_event(e, b, l, n) }).unwrap();
        assert!(event.contains("\"kind\":\"revoked\""), "{event}");
        let mut yes = false;
        // SAFETY: the engine, a static value, a local output.
        unsafe { tollgate_engine_is_revoked(e, "k1".as_ptr().cast(), 2, &mut yes) };
        assert!(yes);
        // SAFETY: as above.
        unsafe { tollgate_engine_restore(e, "k1".as_ptr().cast(), 2, &mut yes) };
        assert!(yes);
        // SAFETY: as above.
        unsafe { tollgate_engine_revoke(e, "k9".as_ptr().cast(), 2, std::ptr::null_mut()) };

        // A reservation, committed twice under one idempotency key.
        for (i, expect) in [
            tollgate_commit_outcome::Committed,
            tollgate_commit_outcome::Duplicate,
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = std::ptr::null_mut();
            let mut st = tollgate_quota_status::default();
            // SAFETY: the engine, a static key, local outputs.
            let rc = unsafe {
                tollgate_engine_quota_reserve(e, "k1".as_ptr().cast(), 2, 2, NOW, &mut r, &mut st)
            };
            assert_eq!(rc, tollgate_result::Ok);
            assert_eq!(st.used, 4 + i as u64);
            let mut outcome = 9;
            // SAFETY: the reservation just made, settled once.
            let rc =
                unsafe { tollgate_reservation_commit(r, 1, "id".as_ptr().cast(), 2, &mut outcome) };
            assert_eq!(rc, tollgate_result::Ok);
            assert_eq!(outcome, expect as u32);
        }
        let mut r = std::ptr::null_mut();
        let mut st = tollgate_quota_status::default();
        // SAFETY: as above; refunded once.
        unsafe {
            tollgate_engine_quota_reserve(e, "k1".as_ptr().cast(), 2, 1, NOW, &mut r, &mut st);
            assert_eq!(tollgate_reservation_refund(r), tollgate_result::Ok);
        }

        let mut rep = tollgate_reload_report::default();
        // SAFETY: the engine, a static policy, a local output.
        let rc = unsafe {
            tollgate_engine_reload_toml(e, POLICY.as_ptr().cast(), POLICY.len(), &mut rep)
        };
        assert_eq!(rc, tollgate_result::Ok);
        assert_eq!(rep.kept, 1);
        // SAFETY: the engine and buffers.
        let metrics = text_of(|b, l, n| unsafe { tollgate_engine_metrics(e, b, l, n) }).unwrap();
        assert!(metrics.contains("per-token"));
        // SAFETY: as above.
        let notes = text_of(|b, l, n| unsafe { tollgate_engine_warnings(e, b, l, n) }).unwrap();
        assert!(notes.is_empty(), "{notes}");
        // SAFETY: freed once, after its last use.
        unsafe { tollgate_engine_free(e) };
    }

    #[test]
    fn decide_refuses_bad_arguments_and_writes_nothing() {
        let e = new_engine();
        let sentinel = tollgate_decision {
            decided_by: 55,
            ..Default::default()
        };
        let mut d = sentinel;
        let bad = [0xffu8];
        let cases: [(&[tollgate_attr], tollgate_result); 4] = [
            (
                &[tollgate_attr {
                    value: bad.as_ptr().cast(),
                    value_len: 1,
                    ..attr("token", "")
                }],
                tollgate_result::InvalidUtf8,
            ),
            (&[attr("", "x")], tollgate_result::InvalidArgument),
            (
                &[attr("zone", "a"), attr("zone", "b")],
                tollgate_result::InvalidArgument,
            ),
            (
                &[tollgate_attr {
                    value: std::ptr::null(),
                    value_len: 3,
                    ..attr("token", "")
                }],
                tollgate_result::NullParameter,
            ),
        ];
        for (attrs, want) in cases {
            // SAFETY: a live engine; each attribute points to its stated bytes or is a
            // NULL the library must refuse.
            let rc =
                unsafe { tollgate_engine_decide(e, attrs.as_ptr(), attrs.len(), 1, NOW, &mut d) };
            assert_eq!(rc, want);
            assert_eq!(d, sentinel);
        }
        // SAFETY: freed once.
        unsafe { tollgate_engine_free(e) };
    }

    fn field(value: &[u8]) -> tollgate_str {
        tollgate_str {
            ptr: value.as_ptr().cast(),
            len: value.len(),
        }
    }

    fn last_error() -> String {
        // SAFETY: a buffer from text_of.
        text_of(|b, l, n| unsafe { crate::tollgate_last_error(b, l, n) }).unwrap()
    }

    /// The struct entry point decides as the attribute one: fields, further attributes,
    /// a known name among the further attributes, an explicit cost.
    #[test]
    fn decide_request_decides_as_decide() {
        let e = new_engine();
        let mut d = tollgate_decision::default();
        let extra = [attr("region", "eu")];
        let request = tollgate_request {
            token: field(b"k1"),
            attrs: extra.as_ptr(),
            attrs_len: 1,
            now_unix_ns: NOW,
            ..Default::default()
        };
        // SAFETY: a live engine, a request pointing to live bytes, a local output.
        let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
        assert_eq!(rc, tollgate_result::Ok);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (2, 1));
        // The method as a further attribute fills the NULL field; an explicit cost of 0
        // is a cost (the zeroed struct's `explicit_cost: false` is the class's).
        let extra = [attr("method", "GET")];
        let request = tollgate_request {
            token: field("k1".as_bytes()),
            attrs: extra.as_ptr(),
            attrs_len: 1,
            explicit_cost: true,
            cost: 0,
            now_unix_ns: NOW,
            ..Default::default()
        };
        // SAFETY: as above.
        let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
        assert_eq!(rc, tollgate_result::Ok);
        assert_eq!((d.allowed, d.remaining), (true, 1));
        // An empty value is a value, unlike NULL: a different key.
        let request = tollgate_request {
            token: field(b""),
            now_unix_ns: NOW,
            ..Default::default()
        };
        // SAFETY: as above.
        let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
        assert_eq!(rc, tollgate_result::Ok);
        assert_eq!((d.allowed, d.remaining), (true, 1));
        // SAFETY: freed once.
        unsafe { tollgate_engine_free(e) };
    }

    #[test]
    fn decide_request_refuses_bad_arguments_and_writes_nothing() {
        let e = new_engine();
        let sentinel = tollgate_decision {
            decided_by: 55,
            ..Default::default()
        };
        let mut d = sentinel;
        let ok = tollgate_request {
            token: field(b"k1"),
            now_unix_ns: NOW,
            ..Default::default()
        };
        let null = tollgate_str {
            ptr: std::ptr::null(),
            len: 3,
        };
        let huge = tollgate_str {
            ptr: "x".as_ptr().cast(),
            len: usize::MAX,
        };
        let twice = [attr("token", "k2")];
        let many = [attr("zone", "a"); TOLLGATE_MAX_ATTRS + 1];
        let cases = [
            (
                tollgate_request { tenant: null, ..ok },
                tollgate_result::NullParameter,
                "request.tenant is NULL with length 3",
            ),
            (
                tollgate_request { route: huge, ..ok },
                tollgate_result::InvalidArgument,
                "request.route: length",
            ),
            (
                tollgate_request {
                    method: field(b"G\xffT"),
                    ..ok
                },
                tollgate_result::InvalidUtf8,
                "request.method is not UTF-8 (invalid byte at offset 1)",
            ),
            (
                tollgate_request {
                    attrs: twice.as_ptr(),
                    attrs_len: 1,
                    ..ok
                },
                tollgate_result::InvalidArgument,
                "attribute \"token\" is given more than once",
            ),
            (
                tollgate_request {
                    attrs: std::ptr::null(),
                    attrs_len: 1,
                    ..ok
                },
                tollgate_result::NullParameter,
                "attrs is NULL",
            ),
            (
                tollgate_request {
                    attrs: many.as_ptr(),
                    attrs_len: many.len(),
                    ..ok
                },
                tollgate_result::InvalidArgument,
                "at most 32",
            ),
        ];
        for (request, want, message) in cases {
            // SAFETY: a live engine; each field points to its stated bytes or is a NULL
            // or length the library must refuse without reading.
            let rc = unsafe { tollgate_engine_decide_request(e, &request, &mut d) };
            assert_eq!(rc, want, "{message}");
            assert!(last_error().contains(message), "{}", last_error());
            assert_eq!(d, sentinel);
        }
        // SAFETY: NULL engine, request and output are refused before any use.
        unsafe {
            let rc = tollgate_engine_decide_request(std::ptr::null(), &ok, &mut d);
            assert_eq!(rc, tollgate_result::NullParameter);
            let rc = tollgate_engine_decide_request(e, std::ptr::null(), &mut d);
            assert_eq!(rc, tollgate_result::NullParameter);
            assert_eq!(last_error(), "request is NULL");
            let rc = tollgate_engine_decide_request(e, &ok, std::ptr::null_mut());
            assert_eq!(rc, tollgate_result::NullParameter);
        }
        assert_eq!(d, sentinel);
        // A misaligned request is refused before it is read.
        let mut bytes = [0u64; 2 + std::mem::size_of::<tollgate_request>() / 8];
        let p = bytes
            .as_mut_ptr()
            .cast::<u8>()
            .wrapping_add(1)
            .cast::<tollgate_request>();
        // SAFETY: the pointer is misaligned; the library must refuse it unread.
        let rc = unsafe { tollgate_engine_decide_request(e, p, &mut d) };
        assert_eq!(rc, tollgate_result::InvalidArgument);
        assert_eq!(d, sentinel);
        // SAFETY: freed once.
        unsafe { tollgate_engine_free(e) };
    }

    #[test]
    fn known_names_match_exactly() {
        let known = [
            ("token", KnownName::Token),
            ("tenant", KnownName::Tenant),
            ("user", KnownName::User),
            ("company", KnownName::Company),
            ("client", KnownName::Client),
            ("route", KnownName::Route),
            ("method", KnownName::Method),
        ];
        for (name, want) in known {
            assert_eq!(known_name(name.as_bytes()), Some(want), "{name}");
            // The index of the field it fills is that of tollgate_request's field.
            assert_eq!(FIELDS[want as usize], format!("request.{name}"));
            // Every one-byte change, a prefix, an extension: not that field.
            for i in 0..name.len() {
                let mut other = name.as_bytes().to_vec();
                other[i] ^= 0x20;
                assert_eq!(known_name(&other), None, "{other:?}");
            }
            assert_eq!(known_name(&name.as_bytes()[..name.len() - 1]), None);
            assert_eq!(known_name(format!("{name}s").as_bytes()), None);
        }
        for other in [
            "", "x", "tok", "region", "tokens", "Token", "usex", "host", "api_key",
        ] {
            assert_eq!(known_name(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn milliseconds_round_up_and_never_stays_never() {
        assert_eq!(ms(0), 0);
        assert_eq!(ms(1), 1);
        assert_eq!(ms(1_000_000), 1);
        assert_eq!(ms(1_000_001), 2);
        assert_eq!(ms(u64::MAX), TOLLGATE_NEVER);
        assert_eq!(ns(TOLLGATE_NEVER), u64::MAX);
        // Whole seconds come out as from the nanoseconds.
        for x in [
            1u64,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            59_999_999_999,
        ] {
            assert_eq!(ns(ms(x)).div_ceil(1_000_000_000), x.div_ceil(1_000_000_000));
        }
    }
}

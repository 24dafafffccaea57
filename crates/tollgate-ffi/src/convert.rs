//! C values to Rust and back: attribute names (the one matcher of the engine's own
//! names) and values, tollgate_request's fields, UTF-8 and lengths, paths and policy
//! text; decisions, reasons, quota status and reload reports in both directions; and
//! the engine's errors as result codes.

use std::ffi::c_char;
use std::path::PathBuf;

use arrayvec::ArrayVec;
use tollgate::quota::Outcome as QuotaOutcome;
use tollgate::{
    EngineDecision, EngineError, Field, Policy, PolicyWarning, QuotaStatus, Reason, ReloadReport,
    Request,
};

use crate::guard::{bytes, is_ascii, non_null, text, try_bytes, try_text, BadText, Fail};
use crate::types::{
    tollgate_attr, tollgate_decision, tollgate_header, tollgate_quota_outcome,
    tollgate_quota_status, tollgate_reason, tollgate_reload_report, tollgate_request,
    tollgate_result, tollgate_str, TOLLGATE_ENGINE_CLOCK, TOLLGATE_MAX_ATTRS, TOLLGATE_NEVER,
};

/// An engine error as a result code (a policy error, or the engine's) and its message.
pub(crate) fn engine_fail(e: EngineError) -> Fail {
    let code = match e {
        EngineError::Policy(_) => tollgate_result::Policy,
        _ => tollgate_result::Engine,
    };
    Fail::new(code, e.to_string())
}

/// Policy text parsed, or a policy error.
pub(crate) fn policy_from_text(policy: &str) -> Result<(Policy, Vec<PolicyWarning>), Fail> {
    Policy::from_toml(policy).map_err(|e| Fail::new(tollgate_result::Policy, e.to_string()))
}

/// A path from the caller's bytes (any bytes on Unix; UTF-8 elsewhere).
///
/// # Safety
/// As for [`bytes`].
pub(crate) unsafe fn path(ptr: *const c_char, len: usize) -> Result<PathBuf, Fail> {
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

/// A tollgate_reason from C (`None`: not a value of it).
pub(crate) fn reason_from_c(r: u32) -> Option<Reason> {
    Some(match r {
        0 => Reason::Allowed,
        1 => Reason::Limited,
        2 => Reason::Revoked,
        3 => Reason::QuotaExceeded,
        4 => Reason::UnknownKey,
        5 => Reason::CannotPass,
        6 => Reason::Unavailable,
        7 => Reason::JournalFailing,
        8 => Reason::Terminated,
        _ => return None,
    })
}

/// A reason as its tollgate_reason.
fn reason_to_c(r: Reason) -> tollgate_reason {
    match r {
        Reason::Allowed => tollgate_reason::Allowed,
        Reason::Limited => tollgate_reason::Limited,
        Reason::Revoked => tollgate_reason::Revoked,
        Reason::QuotaExceeded => tollgate_reason::QuotaExceeded,
        Reason::UnknownKey => tollgate_reason::UnknownKey,
        Reason::CannotPass => tollgate_reason::CannotPass,
        Reason::Unavailable => tollgate_reason::Unavailable,
        Reason::JournalFailing => tollgate_reason::JournalFailing,
        Reason::Terminated => tollgate_reason::Terminated,
        // A reason this ABI version has no code for yet: a refusal the host cannot act
        // on more precisely.
        _ => tollgate_reason::Unavailable,
    }
}

/// A tollgate_header from C (`None`: not a value of it).
pub(crate) fn header_from_c(h: u32) -> Option<tollgate_header> {
    Some(match h {
        0 => tollgate_header::Policy,
        1 => tollgate_header::Ratelimit,
        2 => tollgate_header::RetryAfter,
        _ => return None,
    })
}

/// The quota's part of a decision, for C (zeroed when the quota took no part).
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

/// A decision, for C.
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

/// A decision back from C (tollgate_engine_header()): every enum value and index is
/// checked, so a forged decision is an error, not undefined behaviour.
pub(crate) fn decision_from_c(d: &tollgate_decision) -> Result<EngineDecision, Fail> {
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

/// Attributes the engine has no field for, as the [`Request`] refers to them.
pub(crate) type Others<'a> = ArrayVec<(&'a str, &'a str), TOLLGATE_MAX_ATTRS>;

/// The caller's attribute array: at most TOLLGATE_MAX_ATTRS, non-NULL and aligned unless
/// empty.
///
/// # Safety
/// Unless `len` is 0, `attrs` must point to `len` attributes valid for `'a`.
pub(crate) unsafe fn attr_slice<'a>(
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

/// The engine's request: the fields (indexed by [`Field`]), the other attributes, the
/// cost, the time (TOLLGATE_ENGINE_CLOCK: the engine's clock).
#[inline]
pub(crate) fn request_of<'a>(
    fields: Fields<'a>,
    others: &'a [(&'a str, &'a str)],
    cost: Option<u64>,
    now_unix_ns: u64,
) -> Request<'a> {
    let field = |f: Field| fields[f as usize];
    Request {
        token: field(Field::Token),
        tenant: field(Field::Tenant),
        user: field(Field::User),
        company: field(Field::Company),
        client: field(Field::Client),
        route: field(Field::Route),
        method: field(Field::Method),
        attrs: others,
        cost,
        now: (now_unix_ns != TOLLGATE_ENGINE_CLOCK).then_some(now_unix_ns),
    }
}

/// Puts each attribute into its field (the engine's own names, matched by
/// [`Field::named`]) or into `others`; a name given twice (or given for a field already
/// set) is an error.
///
/// # Safety
/// Each attribute's name and value must point to their stated lengths of readable bytes
/// (or be NULL) valid for `'a`.
pub(crate) unsafe fn fill_attrs<'a>(
    fields: &mut Fields<'a>,
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
        let slot = match Field::named(name) {
            Some(field) => &mut fields[field as usize],
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

/// The values of [`tollgate_request`]'s string fields: `None` for NULL. The common case
/// (well-formed, ASCII) is checked for all seven at once, with one branch; anything
/// else takes [`field_values_checked`], which finds the first bad field and names it.
///
/// # Safety
/// Each non-NULL field must point to its length of readable bytes valid for `'a`.
#[inline]
pub(crate) unsafe fn field_values<'a>(fields: [tollgate_str; 7]) -> Result<Fields<'a>, Fail> {
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
            .fold(true, |acc, b| acc & b.is_none_or(is_ascii))
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
unsafe fn field_values_checked<'a>(fields: [tollgate_str; 7]) -> Result<Fields<'a>, Fail> {
    let mut values = [None; 7];
    for ((f, field), v) in fields.iter().zip(Field::ALL).zip(&mut values) {
        let name = label(field);
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

/// The engine's own attributes, indexed by [`Field`] (`tollgate::Field`, the engine's
/// one table of attribute names; its order is [`tollgate_request`]'s): `None` when
/// absent.
pub(crate) type Fields<'a> = [Option<&'a str>; 7];

/// The name of tollgate_request's field for `f`, for messages.
pub(crate) const fn label(f: Field) -> &'static str {
    match f {
        Field::Token => "request.token",
        Field::Tenant => "request.tenant",
        Field::User => "request.user",
        Field::Company => "request.company",
        Field::Client => "request.client",
        Field::Route => "request.route",
        Field::Method => "request.method",
    }
}

/// tollgate_request's string fields, indexed by [`Field`].
#[inline]
pub(crate) fn request_fields(r: &tollgate_request) -> [tollgate_str; 7] {
    Field::ALL.map(|f| match f {
        Field::Token => r.token,
        Field::Tenant => r.tenant,
        Field::User => r.user,
        Field::Company => r.company,
        Field::Client => r.client,
        Field::Route => r.route,
        Field::Method => r.method,
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

/// What a reload did, counted by limit, for C.
pub(crate) fn report_to_c(r: &ReloadReport) -> tollgate_reload_report {
    tollgate_reload_report {
        kept: r.kept.len(),
        carried: r.carried.len(),
        fresh: r.fresh.len(),
        removed: r.removed.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every engine reason has its own C code (none falls into a catch-all), the code
    /// reads back as the same reason, and the numbers of the ABI never move.
    #[test]
    fn every_reason_has_its_own_stable_code() {
        let all = [
            (Reason::Allowed, 0),
            (Reason::Limited, 1),
            (Reason::Revoked, 2),
            (Reason::QuotaExceeded, 3),
            (Reason::UnknownKey, 4),
            (Reason::CannotPass, 5),
            (Reason::Unavailable, 6),
            (Reason::JournalFailing, 7),
            (Reason::Terminated, 8),
        ];
        for (r, code) in all {
            assert_eq!(reason_to_c(r) as u32, code, "{r}");
            assert_eq!(reason_from_c(code), Some(r), "{code}");
            let d = decision_to_c(&EngineDecision {
                reason: r,
                decided_by: None,
                limit: 0,
                remaining: 0,
                retry_after: 0,
                reset_after: 0,
                shadow_denied: false,
                degraded: false,
                quota: None,
                generation: 0,
            });
            assert_eq!(decision_from_c(&d).map(|d| d.reason).ok(), Some(r), "{r}");
        }
        assert_eq!(reason_from_c(9), None);
    }

    #[test]
    fn known_names_match_exactly() {
        let known = [
            ("token", Field::Token),
            ("tenant", Field::Tenant),
            ("user", Field::User),
            ("company", Field::Company),
            ("client", Field::Client),
            ("route", Field::Route),
            ("method", Field::Method),
        ];
        for (name, want) in known {
            assert_eq!(Field::named(name.as_bytes()), Some(want), "{name}");
            // The index of the field it fills is that of tollgate_request's field.
            assert_eq!(label(want), format!("request.{name}"));
            assert_eq!(Field::ALL[want as usize], want);
            assert_eq!(want.name(), name);
            // Every one-byte change, a prefix, an extension: not that field.
            for i in 0..name.len() {
                let mut other = name.as_bytes().to_vec();
                other[i] ^= 0x20;
                assert_eq!(Field::named(&other), None, "{other:?}");
            }
            assert_eq!(Field::named(&name.as_bytes()[..name.len() - 1]), None);
            assert_eq!(Field::named(format!("{name}s").as_bytes()), None);
        }
        for other in [
            "", "x", "tok", "region", "tokens", "Token", "usex", "host", "api_key",
        ] {
            assert_eq!(Field::named(other.as_bytes()), None, "{other}");
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

//! The administration API's C face: every operator change of `Engine::admin()`
//! (companies, users, API keys, overrides, token suspension), each one entry point
//! `tollgate_engine_admin_*`. Strings are `(pointer, length)` pairs of UTF-8; a refused
//! change returns its own result code (unknown company, duplicate, terminated...) and
//! changes nothing; the message is in tollgate_last_error().

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::time::Duration;

use tollgate::core::Rate;
use tollgate::quota::Company;
use tollgate::{Admin, AdminError};

use crate::guard::{guard, text, Fail, Outcome};
use crate::ownership::try_ref_from_ptr;
use crate::types::{tollgate_engine, tollgate_result};

/// An admin error as its result code.
pub(crate) fn admin_fail(e: AdminError) -> Fail {
    let code = match &e {
        AdminError::NoQuota => tollgate_result::NoQuota,
        AdminError::UnknownCompany(_) => tollgate_result::UnknownCompany,
        AdminError::UnknownUser(_) => tollgate_result::UnknownUser,
        AdminError::UnknownKey(_) => tollgate_result::UnknownKey,
        AdminError::DuplicateCompany(_)
        | AdminError::DuplicateUser(_)
        | AdminError::DuplicateKey(_)
        | AdminError::UserOfOtherCompany { .. } => tollgate_result::Duplicate,
        AdminError::CompanyTerminated(_) => tollgate_result::CompanyTerminated,
        AdminError::UnknownLimit(_) | AdminError::UnknownOverride { .. } => {
            tollgate_result::UnknownLimit
        }
        _ => tollgate_result::InvalidArgument,
    };
    Fail::new(code, e.to_string())
}

/// Runs `op` on the engine's admin handle.
///
/// # Safety
/// `engine` must be NULL or a live engine, not freed during the call.
unsafe fn with_admin(
    engine: *const tollgate_engine,
    op: impl FnOnce(Admin<'_>) -> Result<(), Fail>,
) -> Outcome {
    // SAFETY: NULL is refused; otherwise the caller's promise.
    let h = unsafe { try_ref_from_ptr(engine) }?;
    op(h.engine.admin())?;
    Ok(tollgate_result::Ok)
}

/// An override's match table from its text: a TOML inline table as in the policy
/// file, e.g. `{ company = "acme" }` or `company = "acme", route = "/v1/x"` (the braces
/// are optional). Every value must be a string. Public for the fuzz target.
pub fn parse_override_match(s: &str) -> Result<BTreeMap<String, String>, String> {
    let body = s.trim();
    let body = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or(body);
    let doc = format!("m = {{ {body} }}");
    let table: toml::Table = doc
        .parse()
        .map_err(|e: toml::de::Error| format!("override match {s:?}: {}", e.message()))?;
    let Some(toml::Value::Table(m)) = table.get("m") else {
        return Err(format!("override match {s:?} is not a table"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        match v {
            toml::Value::String(v) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {
                return Err(format!(
                    "override match {s:?}: the value of {k:?} is not a string"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("override match {s:?} matches nothing"));
    }
    Ok(out)
}

fn invalid(message: String) -> Fail {
    Fail::new(tollgate_result::InvalidArgument, message)
}

macro_rules! s {
    ($p:expr, $n:expr, $what:expr) => {
        // SAFETY: the caller promises `$n` readable bytes at `$p` (NULL is refused).
        unsafe { text($p, $n, $what) }?
    };
}

/// Registers a new company with `machines` machines and `apps` apps on the default
/// plan (its months in the quota's time zone). TOLLGATE_RESULT_DUPLICATE if it is
/// registered already; a removed company is registered again with its usage.
///
/// # Safety
/// `engine` must be a live engine; `id` must point to `id_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_add_company(
    engine: *const tollgate_engine,
    id: *const c_char,
    id_len: usize,
    machines: u64,
    apps: u64,
) -> tollgate_result {
    guard(|| {
        let id = s!(id, id_len, "id");
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.add_company(Company::new(id).with_units(machines, apps), None)
                    .map(drop)
                    .map_err(admin_fail)
            })
        }
    })
}

/// Sets a company's units: its limit changes at once, its usage this period carries on.
///
/// # Safety
/// As for tollgate_engine_admin_add_company().
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_set_company_units(
    engine: *const tollgate_engine,
    id: *const c_char,
    id_len: usize,
    machines: u64,
    apps: u64,
) -> tollgate_result {
    guard(|| {
        let id = s!(id, id_len, "id");
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.set_company_units(id, machines, apps)
                    .map(drop)
                    .map_err(admin_fail)
            })
        }
    })
}

/// Sets the plans a company subscribes to: `plans` is a comma-separated list of plan
/// names (empty: the default plan only).
///
/// # Safety
/// `engine` must be a live engine; `id` must point to `id_len` readable bytes, `plans`
/// to `plans_len`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_set_company_plans(
    engine: *const tollgate_engine,
    id: *const c_char,
    id_len: usize,
    plans: *const c_char,
    plans_len: usize,
) -> tollgate_result {
    guard(|| {
        let id = s!(id, id_len, "id");
        let plans = s!(plans, plans_len, "plans");
        let list: Vec<String> = plans
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.set_company_plans(id, list).map(drop).map_err(admin_fail)
            })
        }
    })
}

/// Sets a company's explicit quota limit to `calls` (`has_limit` true) or removes it
/// (`has_limit` false: its plans decide again).
///
/// # Safety
/// As for tollgate_engine_admin_add_company().
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_set_company_limit(
    engine: *const tollgate_engine,
    id: *const c_char,
    id_len: usize,
    has_limit: bool,
    calls: u64,
) -> tollgate_result {
    guard(|| {
        let id = s!(id, id_len, "id");
        let calls = has_limit.then_some(calls);
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.set_company_limit(id, calls).map(drop).map_err(admin_fail)
            })
        }
    })
}

/// What to do to a company (tollgate_engine_admin_company()).
fn company_op(a: Admin<'_>, id: &str, op: u32) -> Result<(), Fail> {
    match op {
        0 => a.suspend_company(id),
        1 => a.resume_company(id),
        2 => a.terminate_company(id),
        3 => a.remove_company(id),
        _ => return Err(invalid(format!("unknown company operation {op}"))),
    }
    .map_err(admin_fail)
}

/// Changes a company's standing: `op` 0 suspends it (its keys refused as
/// TOLLGATE_REASON_REVOKED until resumed), 1 resumes it, 2 terminates it (its keys
/// refused as TOLLGATE_REASON_TERMINATED for good; TOLLGATE_RESULT_COMPANY_TERMINATED
/// for any later change), 3 removes it (its keys unknown). Usage is kept for billing.
///
/// # Safety
/// As for tollgate_engine_admin_add_company().
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_company(
    engine: *const tollgate_engine,
    id: *const c_char,
    id_len: usize,
    op: u32,
) -> tollgate_result {
    guard(|| {
        let id = s!(id, id_len, "id");
        // SAFETY: the caller's promise.
        unsafe { with_admin(engine, |a| company_op(a, id, op)) }
    })
}

/// Adds a user to a company.
///
/// # Safety
/// `engine` must be a live engine; `user` must point to `user_len` readable bytes,
/// `company` to `company_len`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_add_user(
    engine: *const tollgate_engine,
    user: *const c_char,
    user_len: usize,
    company: *const c_char,
    company_len: usize,
) -> tollgate_result {
    guard(|| {
        let user = s!(user, user_len, "user");
        let company = s!(company, company_len, "company");
        // SAFETY: the caller's promise.
        unsafe { with_admin(engine, |a| a.add_user(user, company).map_err(admin_fail)) }
    })
}

/// Changes a user: `op` 0 disables it (its keys refused as revoked), 1 enables it,
/// 2 removes it (its keys unknown; its usage stays in its company's).
///
/// # Safety
/// `engine` must be a live engine; `user` must point to `user_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_user(
    engine: *const tollgate_engine,
    user: *const c_char,
    user_len: usize,
    op: u32,
) -> tollgate_result {
    guard(|| {
        let user = s!(user, user_len, "user");
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                match op {
                    0 => a.disable_user(user),
                    1 => a.enable_user(user),
                    2 => a.remove_user(user),
                    _ => return Err(invalid(format!("unknown user operation {op}"))),
                }
                .map_err(admin_fail)
            })
        }
    })
}

/// Adds an API key for a user.
///
/// # Safety
/// `engine` must be a live engine; `key` must point to `key_len` readable bytes,
/// `user` to `user_len`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_add_key(
    engine: *const tollgate_engine,
    key: *const c_char,
    key_len: usize,
    user: *const c_char,
    user_len: usize,
) -> tollgate_result {
    guard(|| {
        let key = s!(key, key_len, "key");
        let user = s!(user, user_len, "user");
        // SAFETY: the caller's promise.
        unsafe { with_admin(engine, |a| a.add_key(key, user).map_err(admin_fail)) }
    })
}

/// Rotates an API key: `new_key` serves the old key's user (usage and limits carry
/// on); the old key is refused after `grace_ms` milliseconds (0: at once).
///
/// # Safety
/// `engine` must be a live engine; `old_key` must point to `old_len` readable bytes,
/// `new_key` to `new_len`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_rotate_key(
    engine: *const tollgate_engine,
    old_key: *const c_char,
    old_len: usize,
    new_key: *const c_char,
    new_len: usize,
    grace_ms: u64,
) -> tollgate_result {
    guard(|| {
        let old = s!(old_key, old_len, "old_key");
        let new = s!(new_key, new_len, "new_key");
        let grace = (grace_ms > 0).then(|| Duration::from_millis(grace_ms));
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.rotate_key(old, new, grace).map_err(admin_fail)
            })
        }
    })
}

/// Removes an API key: refused at once.
///
/// # Safety
/// `engine` must be a live engine; `key` must point to `key_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_remove_key(
    engine: *const tollgate_engine,
    key: *const c_char,
    key_len: usize,
) -> tollgate_result {
    guard(|| {
        let key = s!(key, key_len, "key");
        // SAFETY: the caller's promise.
        unsafe { with_admin(engine, |a| a.remove_key(key).map_err(admin_fail)) }
    })
}

/// The `(attribute, value)` pairs of a match text.
fn match_pairs(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Sets (adds or changes) the override of limit `limit` matching `match` (a TOML inline
/// table as in the policy, e.g. `{ company = "acme" }`) to `rate` (e.g. `"100/h"` or
/// `"10/s burst 20"`). The keys it covers keep their used capacity when it names the
/// limit's whole key. TOLLGATE_RESULT_UNKNOWN_LIMIT for no such limit.
///
/// # Safety
/// `engine` must be a live engine; `limit`, `match` and `rate` must point to
/// `limit_len`, `match_len` and `rate_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_set_override(
    engine: *const tollgate_engine,
    limit: *const c_char,
    limit_len: usize,
    r#match: *const c_char,
    match_len: usize,
    rate: *const c_char,
    rate_len: usize,
) -> tollgate_result {
    guard(|| {
        let limit = s!(limit, limit_len, "limit");
        let m = parse_override_match(s!(r#match, match_len, "match")).map_err(invalid)?;
        let rate: Rate = s!(rate, rate_len, "rate")
            .parse()
            .map_err(|e: tollgate::core::RateError| invalid(format!("rate: {e}")))?;
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.set_override(limit, &match_pairs(&m), rate)
                    .map(drop)
                    .map_err(admin_fail)
            })
        }
    })
}

/// Removes the override of `limit` matching exactly `match` (as for
/// tollgate_engine_admin_set_override()). TOLLGATE_RESULT_UNKNOWN_LIMIT when there is
/// no such limit or override.
///
/// # Safety
/// `engine` must be a live engine; `limit` and `match` must point to `limit_len` and
/// `match_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_remove_override(
    engine: *const tollgate_engine,
    limit: *const c_char,
    limit_len: usize,
    r#match: *const c_char,
    match_len: usize,
) -> tollgate_result {
    guard(|| {
        let limit = s!(limit, limit_len, "limit");
        let m = parse_override_match(s!(r#match, match_len, "match")).map_err(invalid)?;
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                a.remove_override(limit, &match_pairs(&m))
                    .map(drop)
                    .map_err(admin_fail)
            })
        }
    })
}

/// Suspends a token for `duration_ms` milliseconds: refused as revoked until then,
/// served again afterwards. `*out_changed`, if not NULL, says whether it was not
/// revoked already. (Revoke and restore: tollgate_engine_revoke(),
/// tollgate_engine_restore().)
///
/// # Safety
/// `engine` must be a live engine; `token` must point to `len` readable bytes;
/// `out_changed` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_admin_suspend_token(
    engine: *const tollgate_engine,
    token: *const c_char,
    len: usize,
    duration_ms: u64,
    out_changed: *mut bool,
) -> tollgate_result {
    guard(|| {
        let token = s!(token, len, "token");
        // SAFETY: the caller's promise.
        unsafe {
            with_admin(engine, |a| {
                let changed = a.suspend_token(token, Duration::from_millis(duration_ms));
                if !out_changed.is_null() {
                    // SAFETY: non-null, and the caller promises it is writable.
                    out_changed.write(changed);
                }
                Ok(())
            })
        }
    })
}

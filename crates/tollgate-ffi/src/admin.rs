//! Changing a running engine: reloading its policy while other threads decide, and
//! revoking and restoring tokens by hand.

use std::ffi::c_char;

use tollgate::{Engine, PolicyWarning, ReloadReport};

use crate::convert::{engine_fail, path, policy_from_text, report_to_c};
use crate::guard::{guard, guard_err, non_null_mut, text, Outcome};
use crate::handle::EngineHandle;
use crate::ownership::try_ref_from_ptr;
use crate::types::{tollgate_engine, tollgate_reload_report, tollgate_result};

/// Records a reload's outcome: its warnings and notes, and the report for the caller.
///
/// # Safety
/// `out` must be NULL or writable.
unsafe fn reloaded(
    h: &EngineHandle,
    report: ReloadReport,
    warnings: Vec<PolicyWarning>,
    out: *mut tollgate_reload_report,
) -> Outcome {
    h.set_notes(warnings, &report.notes);
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
    // SAFETY: the caller's promises.
    guard(|| unsafe { reload_toml(engine, policy, len, out) })
}

/// As tollgate_engine_reload_toml(), with the error buffer of
/// tollgate_engine_from_toml_err() (no thread-local state read).
///
/// # Safety
/// As for tollgate_engine_reload_toml(); `err` must be NULL or point to `err_len`
/// writable bytes; `err_n` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_reload_toml_err(
    engine: *const tollgate_engine,
    policy: *const c_char,
    len: usize,
    out: *mut tollgate_reload_report,
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe {
        guard_err(err, err_len, err_n, || {
            reload_toml(engine, policy, len, out)
        })
    }
}

/// # Safety
/// As for tollgate_engine_reload_toml().
unsafe fn reload_toml(
    engine: *const tollgate_engine,
    policy: *const c_char,
    len: usize,
    out: *mut tollgate_reload_report,
) -> Outcome {
    // SAFETY: NULL is refused; otherwise the caller promises a live engine, not freed
    // during the call.
    let h = unsafe { try_ref_from_ptr(engine) }?;
    // SAFETY: the caller's promise.
    let text = unsafe { text(policy, len, "policy") }?;
    let (policy, warnings) = policy_from_text(text)?;
    let report = h.engine.reload(policy).map_err(engine_fail)?;
    // SAFETY: the caller's promise about `out`.
    unsafe { reloaded(h, report, warnings, out) }
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
    // SAFETY: the caller's promises.
    guard(|| unsafe { reload_file(engine, path, path_len, out) })
}

/// As tollgate_engine_reload_file(), with the error buffer of
/// tollgate_engine_from_toml_err() (no thread-local state read).
///
/// # Safety
/// As for tollgate_engine_reload_file(); `err` must be NULL or point to `err_len`
/// writable bytes; `err_n` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_reload_file_err(
    engine: *const tollgate_engine,
    path: *const c_char,
    path_len: usize,
    out: *mut tollgate_reload_report,
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe {
        guard_err(err, err_len, err_n, || {
            reload_file(engine, path, path_len, out)
        })
    }
}

/// # Safety
/// As for tollgate_engine_reload_file().
unsafe fn reload_file(
    engine: *const tollgate_engine,
    path: *const c_char,
    path_len: usize,
    out: *mut tollgate_reload_report,
) -> Outcome {
    // SAFETY: NULL is refused; otherwise the caller promises a live engine, not freed
    // during the call.
    let h = unsafe { try_ref_from_ptr(engine) }?;
    // SAFETY: the caller's promise.
    let path = unsafe { self::path(path, path_len) }?;
    let (report, warnings) = h.engine.reload_file(&path).map_err(engine_fail)?;
    // SAFETY: the caller's promise about `out`.
    unsafe { reloaded(h, report, warnings, out) }
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
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
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

//! The engine handle: what a `tollgate_engine *` points to, and its life: built from
//! policy text or a file, its load warnings read, released.

use std::ffi::c_char;
use std::sync::Mutex;

use tollgate::{Engine, PolicyWarning};

use crate::convert::{engine_fail, path, policy_from_text};
use crate::guard::{guard, guard_err, non_null_mut, text, write_text, Outcome};
use crate::ownership::{free_box, to_boxed_ptr, try_ref_from_ptr, Castable, OwnedBox};
use crate::types::{tollgate_engine, tollgate_result};

/// What a `tollgate_engine *` points to: the engine, and what the C API keeps beside
/// it.
#[derive(Debug)]
pub(crate) struct EngineHandle {
    pub(crate) engine: Engine,
    /// An event taken from the engine's channel that did not fit the caller's buffer yet;
    /// the next call returns it first, so a small buffer loses nothing.
    pub(crate) pending: Mutex<Option<String>>,
    /// The warnings and notes of the last load or reload, one per line.
    notes: Mutex<String>,
}

impl Castable for tollgate_engine {
    type RustType = EngineHandle;
    type Ownership = OwnedBox;
    const NAME: &'static str = "engine";
}

fn lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|w| format!("{w}\n")).collect()
}

impl EngineHandle {
    /// Replaces the warnings and notes tollgate_engine_warnings() gives: a (re)load's
    /// warnings, then its notes.
    pub(crate) fn set_notes<W, N>(&self, warnings: W, notes: N)
    where
        W: IntoIterator,
        W::Item: std::fmt::Display,
        N: IntoIterator,
        N::Item: std::fmt::Display,
    {
        let mut text = lines(warnings);
        text.push_str(&lines(notes));
        *self.notes.lock().unwrap_or_else(|p| p.into_inner()) = text;
    }
}

/// Moves a new engine to the caller.
///
/// # Safety
/// `out` must be non-null and writable.
unsafe fn hand_over(engine: Engine, warnings: Vec<PolicyWarning>, out: *mut *mut tollgate_engine) {
    let handle = EngineHandle {
        engine,
        pending: Mutex::new(None),
        notes: Mutex::new(lines(warnings)),
    };
    // SAFETY:
    // - the caller checked `out` and promises it is writable;
    // - the handle is released by tollgate_engine_free().
    unsafe { out.write(to_boxed_ptr::<tollgate_engine>(handle)) };
}

/// Builds an engine from policy text (TOML, `version = 1`). On success `*out` receives
/// the engine, which the caller frees with tollgate_engine_free(). On failure the
/// message (line, column and field of a policy error) is in tollgate_last_error(), or,
/// without thread-local state, given by tollgate_engine_from_toml_err().
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
    // SAFETY: the caller's promises.
    guard(|| unsafe { from_toml(policy, len, out) })
}

/// As tollgate_engine_from_toml(), and on failure the message is also written into
/// the caller's error buffer: as much as fits in `err_len - 1` bytes, cut at a
/// character boundary, and a NUL; `*err_n` receives the whole message's length
/// without the NUL (the message was cut when `*err_n >= err_len`). On success `err`
/// receives `""` and `*err_n` 0. `err` may be NULL (or `err_len` 0) and `err_n` NULL
/// when not wanted. No thread-local state is read: for callers whose calls may run on
/// different threads (a Go goroutine moves between OS threads between two cgo calls).
///
/// # Safety
/// As for tollgate_engine_from_toml(); `err` must be NULL or point to `err_len`
/// writable bytes; `err_n` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_from_toml_err(
    policy: *const c_char,
    len: usize,
    out: *mut *mut tollgate_engine,
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { guard_err(err, err_len, err_n, || from_toml(policy, len, out)) }
}

/// # Safety
/// As for tollgate_engine_from_toml().
unsafe fn from_toml(policy: *const c_char, len: usize, out: *mut *mut tollgate_engine) -> Outcome {
    let out = non_null_mut(out, "out")?;
    // SAFETY: the caller's promise.
    let text = unsafe { text(policy, len, "policy") }?;
    let (policy, warnings) = policy_from_text(text)?;
    let engine = Engine::new(policy).map_err(engine_fail)?;
    // SAFETY: `out` checked above.
    unsafe { hand_over(engine, warnings, out) };
    Ok(tollgate_result::Ok)
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
    // SAFETY: the caller's promises.
    guard(|| unsafe { from_file(path, path_len, out) })
}

/// As tollgate_engine_from_file(), with the error buffer of
/// tollgate_engine_from_toml_err().
///
/// # Safety
/// As for tollgate_engine_from_file(); `err` must be NULL or point to `err_len`
/// writable bytes; `err_n` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_from_file_err(
    path: *const c_char,
    path_len: usize,
    out: *mut *mut tollgate_engine,
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { guard_err(err, err_len, err_n, || from_file(path, path_len, out)) }
}

/// # Safety
/// As for tollgate_engine_from_file().
unsafe fn from_file(
    path: *const c_char,
    path_len: usize,
    out: *mut *mut tollgate_engine,
) -> Outcome {
    let out = non_null_mut(out, "out")?;
    // SAFETY: the caller's promise.
    let path = unsafe { self::path(path, path_len) }?;
    let (engine, warnings) = Engine::from_file(&path).map_err(engine_fail)?;
    // SAFETY: `out` checked above.
    unsafe { hand_over(engine, warnings, out) };
    Ok(tollgate_result::Ok)
}

/// Builds an engine from a policy file whose limits keep their state in the
/// host-shared state at `state` (`state_len` bytes, not NUL-terminated; e.g.
/// `/dev/shm/tollgate-gw`), as the policy's `[state] shared = "..."` does and winning
/// over it: every process (every nginx worker) that builds its engine with the same
/// `state` and policy decides each key against one state, so a gateway with four workers
/// enforces the policy's limit once, not four times. `state` NULL (or `state_len` 0)
/// keeps the file's own `[state]`. A reload of the engine keeps the state. The error
/// buffer is as for tollgate_engine_from_toml_err() (no thread-local state is read);
/// an incompatible region (another capacity or build) is refused with a message naming
/// the file.
///
/// # Safety
/// `path` must point to `path_len` readable bytes; `state` must be NULL or point to
/// `state_len` readable bytes; `out` must be writable; `err` must be NULL or point to
/// `err_len` writable bytes; `err_n` must be NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn tollgate_engine_from_file_shared(
    path: *const c_char,
    path_len: usize,
    state: *const c_char,
    state_len: usize,
    out: *mut *mut tollgate_engine,
    err: *mut c_char,
    err_len: usize,
    err_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe {
        guard_err(err, err_len, err_n, || {
            from_file_shared(path, path_len, state, state_len, out)
        })
    }
}

/// # Safety
/// As for tollgate_engine_from_file_shared().
unsafe fn from_file_shared(
    path: *const c_char,
    path_len: usize,
    state: *const c_char,
    state_len: usize,
    out: *mut *mut tollgate_engine,
) -> Outcome {
    let out = non_null_mut(out, "out")?;
    // SAFETY: the caller's promise.
    let path = unsafe { self::path(path, path_len) }?;
    let (mut policy, warnings) =
        tollgate::Policy::from_file(&path).map_err(|e| engine_fail(e.into()))?;
    if !state.is_null() && state_len > 0 {
        // SAFETY: the caller's promise (checked non-NULL just above).
        policy.state.shared = Some(unsafe { self::path(state, state_len) }?);
    }
    let engine = Engine::new(policy).map_err(engine_fail)?;
    // SAFETY: `out` checked above.
    unsafe { hand_over(engine, warnings, out) };
    Ok(tollgate_result::Ok)
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
        // SAFETY:
        // - the caller hands back the handle tollgate_engine_from_* gave out, not freed
        //   yet;
        // - no other thread is using it (this is the last call on it).
        unsafe { free_box(engine) };
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
pub(crate) unsafe fn engine_text(
    engine: *const tollgate_engine,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
    text: impl FnOnce(&EngineHandle) -> String,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        let text = text(h);
        // SAFETY: the caller's promises.
        unsafe { write_text(&text, buf, len, out_n) }
    })
}

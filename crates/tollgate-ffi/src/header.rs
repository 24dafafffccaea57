//! The response header values of a decision (`RateLimit-Policy`, `RateLimit`,
//! `Retry-After`).

use std::ffi::c_char;

use crate::convert::{decision_from_c, header_from_c};
use crate::guard::{guard, non_null, write_text, Fail};
use crate::ownership::try_ref_from_ptr;
use crate::types::{tollgate_decision, tollgate_engine, tollgate_header, tollgate_result};

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
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        // SAFETY: non-null, and the caller promises a readable decision.
        let d = decision_from_c(unsafe { &*non_null(decision, "decision")? })?;
        let headers = h.engine.headers(&d);
        let value = match header_from_c(header) {
            Some(tollgate_header::Policy) => headers.policy,
            Some(tollgate_header::Ratelimit) => headers.ratelimit,
            Some(tollgate_header::RetryAfter) => headers.retry_after,
            None => {
                return Err(Fail::new(
                    tollgate_result::InvalidArgument,
                    format!("unknown header {header}"),
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

//! Versions, and the names of result codes, reasons and headers.

use std::ffi::c_char;

use crate::convert::{header_from_c, reason_from_c};
use crate::types::{tollgate_header, TOLLGATE_ABI_VERSION};

/// The version of the library, e.g. `"0.1.0"` (a static, NUL-terminated string; do
/// not free it).
#[no_mangle]
pub extern "C" fn tollgate_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library's C ABI version (compare with TOLLGATE_ABI_VERSION from the header the
/// caller was compiled with).
#[no_mangle]
pub extern "C" fn tollgate_abi_version() -> u32 {
    TOLLGATE_ABI_VERSION
}

/// The name of a result code, e.g. `"buffer_too_small"`, or `"unknown"` (a static,
/// NUL-terminated string; do not free it).
#[no_mangle]
pub extern "C" fn tollgate_result_name(result: u32) -> *const c_char {
    let name: &'static str = match result {
        0 => "ok\0",
        1 => "null_parameter\0",
        2 => "invalid_utf8\0",
        3 => "invalid_argument\0",
        4 => "buffer_too_small\0",
        5 => "policy\0",
        6 => "engine\0",
        7 => "no_event\0",
        8 => "no_value\0",
        9 => "no_quota\0",
        10 => "unknown_key\0",
        11 => "disabled_user\0",
        12 => "quota\0",
        13 => "panic\0",
        14 => "journal\0",
        15 => "unknown_company\0",
        16 => "unknown_user\0",
        17 => "duplicate\0",
        18 => "company_terminated\0",
        19 => "unknown_limit\0",
        _ => "unknown\0",
    };
    name.as_ptr().cast()
}

/// What a result code means, as a sentence without the call's details, e.g.
/// `"the caller's buffer is too small"` for TOLLGATE_RESULT_BUFFER_TOO_SMALL, or
/// `"unknown result code"` (a static, NUL-terminated string; do not free it). It
/// reads no thread-local state: a caller whose calls may run on different threads (a
/// Go goroutine) gets the right text for any code. The details of a failed policy load
/// or reload are in the error buffer of the `_err` entry points.
#[no_mangle]
pub extern "C" fn tollgate_result_message(result: u32) -> *const c_char {
    let text: &'static str = match result {
        0 => "success\0",
        1 => "a required pointer was NULL\0",
        2 => "a string that must be UTF-8 was not\0",
        3 => "an argument was out of range or inconsistent\0",
        4 => "the caller's buffer is too small\0",
        5 => "the policy could not be read or is invalid\0",
        6 => "the engine could not be built or reloaded from the policy\0",
        7 => "no event is waiting\0",
        8 => "the decision has no value for this header\0",
        9 => "the policy has no quota\0",
        10 => "the quota does not know this API key\0",
        11 => "the key's user is disabled\0",
        12 => "the quota refused the call\0",
        13 => "internal error: a panic was caught at the C boundary (please report it)\0",
        14 => "the quota's journal could not record the change\0",
        15 => "no such company\0",
        16 => "no such user\0",
        17 => "already registered\0",
        18 => "the company is terminated\0",
        19 => "no such limit or override\0",
        _ => "unknown result code\0",
    };
    text.as_ptr().cast()
}

/// The name of a tollgate_reason, e.g. `"limited"`, or `"unknown"` (static,
/// NUL-terminated).
#[no_mangle]
pub extern "C" fn tollgate_reason_name(reason: u32) -> *const c_char {
    let name: &'static str = match reason_from_c(reason) {
        Some(r) => match r {
            tollgate::Reason::Allowed => "allowed\0",
            tollgate::Reason::Limited => "limited\0",
            tollgate::Reason::Revoked => "revoked\0",
            tollgate::Reason::QuotaExceeded => "quota_exceeded\0",
            tollgate::Reason::UnknownKey => "unknown_key\0",
            tollgate::Reason::CannotPass => "cannot_pass\0",
            tollgate::Reason::Unavailable => "unavailable\0",
            tollgate::Reason::JournalFailing => "journal_failing\0",
            tollgate::Reason::Terminated => "terminated\0",
            _ => "unknown\0",
        },
        None => "unknown\0",
    };
    name.as_ptr().cast()
}

/// The HTTP name of a tollgate_header, e.g. `"RateLimit-Policy"`, or NULL for an
/// unknown value (static, NUL-terminated).
#[no_mangle]
pub extern "C" fn tollgate_header_name(header: u32) -> *const c_char {
    let name: &'static str = match header_from_c(header) {
        Some(tollgate_header::Policy) => "RateLimit-Policy\0",
        Some(tollgate_header::Ratelimit) => "RateLimit\0",
        Some(tollgate_header::RetryAfter) => "Retry-After\0",
        None => return std::ptr::null(),
    };
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        tollgate_result, TOLLGATE_VERSION_MAJOR, TOLLGATE_VERSION_MINOR, TOLLGATE_VERSION_PATCH,
    };
    use std::ffi::CStr;

    fn text(p: *const c_char) -> &'static str {
        // SAFETY: the functions under test return static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn version_macros_match_the_crate() {
        assert_eq!(
            format!("{TOLLGATE_VERSION_MAJOR}.{TOLLGATE_VERSION_MINOR}.{TOLLGATE_VERSION_PATCH}"),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(text(tollgate_version()), env!("CARGO_PKG_VERSION"));
        assert_eq!(tollgate_abi_version(), TOLLGATE_ABI_VERSION);
    }

    #[test]
    fn names_cover_every_value() {
        for (code, name) in [
            (tollgate_result::Ok, "ok"),
            (tollgate_result::NullParameter, "null_parameter"),
            (tollgate_result::InvalidUtf8, "invalid_utf8"),
            (tollgate_result::InvalidArgument, "invalid_argument"),
            (tollgate_result::BufferTooSmall, "buffer_too_small"),
            (tollgate_result::Policy, "policy"),
            (tollgate_result::Engine, "engine"),
            (tollgate_result::NoEvent, "no_event"),
            (tollgate_result::NoValue, "no_value"),
            (tollgate_result::NoQuota, "no_quota"),
            (tollgate_result::UnknownKey, "unknown_key"),
            (tollgate_result::DisabledUser, "disabled_user"),
            (tollgate_result::Quota, "quota"),
            (tollgate_result::Panic, "panic"),
            (tollgate_result::Journal, "journal"),
            (tollgate_result::UnknownCompany, "unknown_company"),
            (tollgate_result::UnknownUser, "unknown_user"),
            (tollgate_result::Duplicate, "duplicate"),
            (tollgate_result::CompanyTerminated, "company_terminated"),
            (tollgate_result::UnknownLimit, "unknown_limit"),
        ] {
            assert_eq!(text(tollgate_result_name(code as u32)), name);
        }
        assert_eq!(text(tollgate_result_name(20)), "unknown");
        for code in 0..=19 {
            let message = text(tollgate_result_message(code));
            assert!(
                !message.is_empty() && message != "unknown result code",
                "{code}"
            );
        }
        assert_eq!(
            text(tollgate_result_message(4)),
            "the caller's buffer is too small"
        );
        assert_eq!(text(tollgate_result_message(20)), "unknown result code");
        assert_eq!(
            text(tollgate_result_message(u32::MAX)),
            "unknown result code"
        );
        assert_eq!(text(tollgate_reason_name(1)), "limited");
        assert_eq!(text(tollgate_reason_name(7)), "journal_failing");
        assert_eq!(text(tollgate_reason_name(8)), "terminated");
        assert_eq!(text(tollgate_reason_name(9)), "unknown");
        assert_eq!(text(tollgate_header_name(0)), "RateLimit-Policy");
        assert!(tollgate_header_name(3).is_null());
    }
}

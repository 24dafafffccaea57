//! The tollgate engine behind a C ABI, for gateways written in C, C++, Go (cgo) or
//! LuaJIT (OpenResty, Kong): a static library and a shared one (cargo names them
//! `libtollgate_ffi.a` and `libtollgate_ffi.so`; `make install` installs them as
//! `libtollgate.a` and `libtollgate.so.N.VERSION`, soname `libtollgate.so.N` with N the
//! C ABI version, and `tollgate.pc`) and the header `include/tollgate.h`, generated from
//! this crate by cbindgen and committed (a test fails when it drifts).
//!
//! One engine handle is shared by all the gateway's threads:
//!
//! ```c
//! tollgate_engine *engine = NULL;
//! if (tollgate_engine_from_file(path, strlen(path), &engine) != TOLLGATE_RESULT_OK) {
//!     char msg[512]; size_t n;
//!     tollgate_last_error(msg, sizeof msg, &n);
//!     fprintf(stderr, "%s\n", msg);
//!     return 1;
//! }
//! tollgate_attr attrs[] = {
//!     { "token", 5, token, token_len },
//!     { "tenant", 6, tenant, tenant_len },
//!     { "method", 6, "POST", 4 },
//! };
//! tollgate_decision d;
//! tollgate_engine_decide(engine, attrs, 3, TOLLGATE_CLASS_COST, TOLLGATE_ENGINE_CLOCK, &d);
//! if (!d.allowed) { /* 429, with tollgate_engine_header(...) values */ }
//! tollgate_engine_free(engine);
//! ```
//!
//! The conventions (results, buffers, ownership, threads) are written at the top of the
//! header and in the crate's README. From Rust, use the `tollgate` crate directly; the
//! functions here are `unsafe` because they take raw pointers from C.
//!
//! # Modules
//!
//! The C API by area, one file each: `types` (constants, result codes, enums, the
//! `#[repr(C)]` structs and the opaque handles), `names` (versions and names), `handle`
//! (an engine built, its warnings, released), `decide` (the two decide entry points),
//! `header` (header values), `admin` (reload, revoke, restore), `events` (events as
//! JSON, metrics as text), `guard` (the panic boundary, the last error, pointer and
//! text checks), `quota` (reservations). Beneath them, `convert` turns C arguments into
//! Rust values and back (the one matcher of attribute names is there), and `ownership`
//! is the only place that turns a box into a handle pointer and back.

#![deny(missing_docs)]
// The exported names follow C's conventions (`tollgate_engine`, `tollgate_result`).
#![allow(non_camel_case_types)]

// cbindgen writes the header's items in the order it reads the modules, so the
// modules with C items are declared one per paragraph (rustfmt sorts the lines of one
// paragraph), in the header's order: keep it.

// Constants, result codes, enums, `#[repr(C)]` structs, opaque handles.
mod types;

// tollgate_version(), tollgate_abi_version(), tollgate_*_name(), tollgate_result_message().
mod names;

// tollgate_engine_from_toml(), _from_file() (and their _err forms), _free(), _warnings().
mod handle;

// tollgate_engine_decide(), tollgate_engine_decide_request().
mod decide;

// tollgate_engine_header().
mod header;

// tollgate_engine_reload_*() (and their _err forms), _revoke(), _restore(), _is_revoked().
mod admin;

// tollgate_engine_admin_*(): companies, users, keys, overrides, token suspension.
mod manage;

// tollgate_engine_next_event(), tollgate_engine_metrics().
mod events;

// tollgate_last_error(), and the boundary every entry point goes through.
mod guard;

// tollgate_engine_quota_reserve(), tollgate_reservation_commit(), _refund().
mod quota;

// No C items: C arguments to Rust values and back; handles to boxes and back.
mod convert;
mod ownership;

#[cfg(test)]
mod tests;

pub use admin::{
    tollgate_engine_is_revoked, tollgate_engine_reload_file, tollgate_engine_reload_file_err,
    tollgate_engine_reload_toml, tollgate_engine_reload_toml_err, tollgate_engine_restore,
    tollgate_engine_revoke,
};
pub use decide::{tollgate_engine_decide, tollgate_engine_decide_request};
pub use events::{
    tollgate_engine_journal_health, tollgate_engine_metrics, tollgate_engine_next_event,
    tollgate_engine_notice_ack, tollgate_engine_notices_take,
};
pub use guard::tollgate_last_error;
pub use handle::{
    tollgate_engine_free, tollgate_engine_from_file, tollgate_engine_from_file_err,
    tollgate_engine_from_file_shared, tollgate_engine_from_toml, tollgate_engine_from_toml_err,
    tollgate_engine_warnings,
};
pub use header::tollgate_engine_header;
pub use manage::{
    parse_override_match, tollgate_engine_admin_add_company, tollgate_engine_admin_add_key,
    tollgate_engine_admin_add_user, tollgate_engine_admin_company,
    tollgate_engine_admin_remove_key, tollgate_engine_admin_remove_override,
    tollgate_engine_admin_rotate_key, tollgate_engine_admin_set_company_limit,
    tollgate_engine_admin_set_company_plans, tollgate_engine_admin_set_company_units,
    tollgate_engine_admin_set_override, tollgate_engine_admin_suspend_token,
    tollgate_engine_admin_user,
};
pub use names::{
    tollgate_abi_version, tollgate_header_name, tollgate_reason_name, tollgate_result_message,
    tollgate_result_name, tollgate_version,
};
pub use quota::{
    tollgate_engine_quota_reserve, tollgate_reservation_commit, tollgate_reservation_refund,
};
#[doc(inline)]
pub use types::*;

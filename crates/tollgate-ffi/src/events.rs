//! What the engine reports: its events (quota notices, revocations) as JSON, and its
//! counters as Prometheus text.

use std::ffi::c_char;

use tollgate::Event;

use crate::guard::{guard, non_null_mut, write_text};
use crate::handle::engine_text;
use crate::ownership::try_ref_from_ptr;
use crate::types::{tollgate_engine, tollgate_result};

/// An event as one JSON object: quota notices
/// (`{"kind":"warning"|"overage","company":..,"period":..,"used":..,"limit":..}`, an
/// overage with `"suggested_plan"`), revocations
/// (`{"kind":"revoked","attribute":"token","key":"key#3f9a0c1e5b7d","automatic":true}`) and
/// restorations (`{"kind":"restored",..}`), administrative changes
/// (`{"kind":"admin","op":"company_status","company":"acme","status":"terminated"}`).
/// Tokens and API keys appear redacted.
pub(crate) fn event_json(e: &Event) -> String {
    /// A revocation or restoration, its kind first like the quota notices'.
    #[derive(serde::Serialize)]
    struct Revocation<'a> {
        kind: &'static str,
        attribute: &'a str,
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        automatic: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        until_unix_ns: Option<u64>,
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
            until_unix_ns: None,
        }),
        Event::Suspended {
            attribute,
            key,
            until_unix_ns,
            automatic,
        } => serde_json::to_string(&Revocation {
            kind: "suspended",
            attribute,
            key: key.to_string(),
            automatic: Some(*automatic),
            until_unix_ns: Some(*until_unix_ns),
        }),
        Event::Restored { attribute, key } => serde_json::to_string(&Revocation {
            kind: "restored",
            attribute,
            key: key.to_string(),
            automatic: None,
            until_unix_ns: None,
        }),
        Event::Admin(change) => {
            #[derive(serde::Serialize)]
            struct Admin<'a> {
                kind: &'static str,
                #[serde(flatten)]
                change: &'a tollgate::AdminChange,
            }
            serde_json::to_string(&Admin {
                kind: "admin",
                change,
            })
        }
        // An event this ABI version does not describe yet.
        _ => Ok("{\"kind\":\"other\"}".to_owned()),
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
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
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

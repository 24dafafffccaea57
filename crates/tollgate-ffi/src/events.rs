//! What the engine reports: its events (quota notices, revocations) as JSON, and its
//! counters as Prometheus text.

use std::ffi::c_char;

use tollgate::Event;

use crate::guard::{guard, non_null_mut, write_text, Fail};
use crate::handle::engine_text;
use crate::ownership::try_ref_from_ptr;
use crate::types::{tollgate_engine, tollgate_result, TOLLGATE_ENGINE_CLOCK};

/// An event as one JSON object: quota notices
/// (`{"kind":"warning"|"overage","company":..,"period":..,"used":..,"limit":..}`, an
/// overage with `"suggested_plan"`), revocations
/// (`{"kind":"revoked","attribute":"token","key":"key#3f9a0c1e5b7d","automatic":true}`) and
/// restorations (`{"kind":"restored",..}`), the quota journal's health changes
/// (`{"kind":"journal_failing","error":..,"since_unix_ns":..}`,
/// `{"kind":"journal_recovered","failures":..}`) and administrative changes
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
        Event::JournalFailing {
            error,
            since_unix_ns,
        } => serde_json::to_string(&serde_json::json!({
            "kind": "journal_failing",
            "error": error,
            "since_unix_ns": since_unix_ns,
        })),
        Event::JournalRecovered { failures } => serde_json::to_string(&serde_json::json!({
            "kind": "journal_recovered",
            "failures": failures,
        })),
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

/// Takes the next event (a quota notice raised, a token revoked or restored) without
/// blocking, as one JSON object (see the README) in `buf`. Quota notices here are a
/// signal, dropped when the channel is full: deliver them with
/// tollgate_engine_notices_take() and tollgate_engine_notice_ack(). Returns
/// TOLLGATE_RESULT_NO_EVENT when none is waiting. When `buf` is too small, `*out_n`
/// receives the size needed and the event stays first in line for the next call.
///
/// Thread-safe; each event goes to exactly one caller. Poll it from one thread, e.g. a
/// timer.
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

/// Takes up to `max` quota notices due at `now_unix_ns` (or TOLLGATE_ENGINE_CLOCK) from
/// the engine's outbox, as one JSON array in `buf`, oldest first:
/// `[{"id":7,"kind":"overage","company":"acme","period":"2026-11","used":1000001,
/// "limit":1000000,"suggested_plan":"Enterprise","crossed_at":"2026-11-14T09:12:44Z",
/// "attempt":1}]` (`suggested_plan` is null when no other plan covers the usage; a
/// warning has none). `[]` when none is due, or the policy has no quota. `*out_count`,
/// if not NULL, receives the number of notices.
///
/// Each notice stays pending until tollgate_engine_notice_ack() is called with its id:
/// act on it (send the email), then acknowledge it. One not acknowledged is offered
/// again after `[quota] notice_redeliver_after` (5 minutes by default) and, with a
/// journal, after a restart, with the same id: skip an id already acted on, and each
/// notice is acted on exactly once. Without a journal a restart forgets them.
///
/// When `buf` is too small, `*out_n` receives the size needed, nothing is taken (the
/// notices are offered again at the next call) and TOLLGATE_RESULT_BUFFER_TOO_SMALL is
/// returned.
///
/// Thread-safe; a notice goes to one caller until its redelivery timeout.
///
/// # Safety
/// `engine` must be a live engine; `buf` must point to `len` writable bytes, `out_n` to
/// a writable `size_t`, and `out_count` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_notices_take(
    engine: *const tollgate_engine,
    max: usize,
    now_unix_ns: u64,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
    out_count: *mut usize,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        non_null_mut(out_n, "out_n")?;
        let notices = if now_unix_ns == TOLLGATE_ENGINE_CLOCK {
            h.engine.take_notices(max)
        } else {
            h.engine.take_notices_at(max, now_unix_ns)
        };
        let json = serde_json::to_string(&notices).map_err(|e| {
            Fail::new(
                tollgate_result::Panic,
                format!("cannot write the notices: {e}"),
            )
        })?;
        // SAFETY: the caller's promises.
        let written = unsafe { write_text(&json, buf, len, out_n) };
        if written.is_err() {
            // Nothing was handed over: offer them again at the next call.
            for n in &notices {
                h.engine.release_notice(n.id);
            }
        } else if !out_count.is_null() {
            // SAFETY: non-null, and the caller promises it is writable.
            unsafe { out_count.write(notices.len()) };
        }
        written
    })
}

/// Acknowledges the quota notice `id` (from tollgate_engine_notices_take()): the host
/// acted on it and it is never offered again (with a journal, across restarts too: the
/// call returns once the acknowledgement is committed, so it may block for one journal
/// commit; call it from the thread that sends the emails, not a request thread).
/// Acknowledging an id twice, or an unknown id, is harmless: `*out_acked`, if not NULL,
/// receives true only when the notice was pending.
///
/// Fails with TOLLGATE_RESULT_JOURNAL when the journal could not record it (the notice
/// is not offered again by this process, but a restart offers it again).
///
/// # Safety
/// `engine` must be a live engine; `out_acked` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_notice_ack(
    engine: *const tollgate_engine,
    id: u64,
    out_acked: *mut bool,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        let acked = h
            .engine
            .ack_notice(id)
            .map_err(|e| Fail::new(tollgate_result::Journal, e.to_string()))?;
        if !out_acked.is_null() {
            // SAFETY: non-null, and the caller promises it is writable.
            unsafe { out_acked.write(acked) };
        }
        Ok(tollgate_result::Ok)
    })
}

/// The quota journal's health as one JSON object in `buf`:
/// `{"journal":true,"state":"ok"|"failing","consecutive_failures":0,"total_failures":3,
/// "last_error":"..."|null,"last_success_unix_ns":..|null,"failing_since_unix_ns":..|null,
/// "pending_entries":0,"dropped_entries":0,"recreated":0}`, or `{"journal":false}` when
/// the engine has no journal. A gateway's health endpoint serves it (state "failing" for
/// longer than the policy's `fail_closed_after` means quota-charged requests are
/// refused). When `buf` is too small, `*out_n` receives the size needed.
///
/// # Safety
/// `engine` must be a live engine; `buf` must point to `len` writable bytes and `out_n`
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_journal_health(
    engine: *const tollgate_engine,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> tollgate_result {
    // SAFETY: the caller's promises.
    unsafe { engine_text(engine, buf, len, out_n, |h| journal_health_json(&h.engine)) }
}

/// The JSON of [`tollgate_engine_journal_health`].
pub(crate) fn journal_health_json(engine: &tollgate::Engine) -> String {
    fn unix_ns(t: Option<std::time::SystemTime>) -> Option<u64> {
        let d = t?.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
    let v = match engine.journal_health() {
        None => serde_json::json!({ "journal": false }),
        Some(h) => serde_json::json!({
            "journal": true,
            "state": if h.is_ok() { "ok" } else { "failing" },
            "consecutive_failures": h.consecutive_failures,
            "total_failures": h.total_failures,
            "last_error": h.last_error,
            "last_success_unix_ns": unix_ns(h.last_success),
            "failing_since_unix_ns": unix_ns(h.failing_since),
            "pending_entries": h.pending_entries,
            "dropped_entries": h.dropped_entries,
            "recreated": h.recreated,
        }),
    };
    v.to_string()
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

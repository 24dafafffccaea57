//! Quota reservations, for calls whose final cost is known only afterwards (a batch
//! endpoint, a streamed response): reserve, then commit the final cost or refund.

use std::ffi::c_char;

use tollgate::quota::{CommitOutcome, QuotaError, Reservation};
use tollgate::{QuotaSettler, QuotaStatus};

use crate::convert::quota_to_c;
use crate::guard::{guard, non_null_mut, text, Fail};
use crate::ownership::{to_box, to_boxed_ptr, try_ref_from_ptr, Castable, OwnedBox};
use crate::types::{
    tollgate_commit_outcome, tollgate_engine, tollgate_quota_status, tollgate_reservation,
    tollgate_result, TOLLGATE_ENGINE_CLOCK, TOLLGATE_MAX_COMMIT_COST,
};

/// What a `tollgate_reservation *` points to: the reservation and the settler of its
/// ledger, which keeps the ledger (and the engine's quota store) alive, so it may
/// outlive its engine.
#[derive(Debug)]
pub(crate) struct HeldReservation {
    settler: QuotaSettler,
    reservation: Reservation,
}

impl Castable for tollgate_reservation {
    type RustType = HeldReservation;
    type Ownership = OwnedBox;
    const NAME: &'static str = "reservation";
}

fn quota_fail(e: QuotaError) -> Fail {
    let code = match e {
        QuotaError::UnknownKey(_) => tollgate_result::UnknownKey,
        QuotaError::DisabledUser { .. } => tollgate_result::DisabledUser,
        QuotaError::JournalFailing { .. } => tollgate_result::Journal,
        _ => tollgate_result::Quota,
    };
    Fail::new(code, e.to_string())
}

/// Reserves `cost` of the monthly quota of API key `key` at `now_unix_ns` (or
/// TOLLGATE_ENGINE_CLOCK). It counts at once, so concurrent calls see it. On success
/// `*out` receives the reservation and `*out_status` the quota's verdict: when its
/// `outcome` is TOLLGATE_QUOTA_OUTCOME_REFUSED (over the hard cap) the reservation holds
/// nothing and the call must be refused. Every reservation must be settled with
/// tollgate_reservation_commit() or tollgate_reservation_refund().
///
/// Fails with TOLLGATE_RESULT_NO_QUOTA (the policy has no quota),
/// TOLLGATE_RESULT_UNKNOWN_KEY or TOLLGATE_RESULT_DISABLED_USER.
///
/// # Safety
/// `engine` must be a live engine; `key` must point to `key_len` readable bytes; `out`
/// and `out_status` must be writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_quota_reserve(
    engine: *const tollgate_engine,
    key: *const c_char,
    key_len: usize,
    cost: u64,
    now_unix_ns: u64,
    out: *mut *mut tollgate_reservation,
    out_status: *mut tollgate_quota_status,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        let out = non_null_mut(out, "out")?;
        let out_status = non_null_mut(out_status, "out_status")?;
        // SAFETY: the caller's promise.
        let key = unsafe { text(key, key_len, "key") }?;
        let now = (now_unix_ns != TOLLGATE_ENGINE_CLOCK).then_some(now_unix_ns);
        let reservation = h
            .engine
            .reserve_quota(key, cost, now)
            .ok_or_else(|| Fail::new(tollgate_result::NoQuota, "the policy has no [quota]"))?
            .map_err(quota_fail)?;
        let settler = h
            .engine
            .quota_settler()
            .expect("a reservation implies a ledger");
        let d = &reservation.decision;
        let status = quota_to_c(Some(QuotaStatus {
            outcome: d.outcome,
            used: d.used,
            limit: d.limit,
            resets_at_unix: d.resets_at.as_second(),
        }));
        let held = to_boxed_ptr::<tollgate_reservation>(HeldReservation {
            settler,
            reservation,
        });
        // SAFETY:
        // - both checked non-null, and the caller promises they are writable;
        // - the handle is released by commit or refund.
        unsafe {
            out_status.write(status);
            out.write(held);
        }
        Ok(tollgate_result::Ok)
    })
}

// The C constant is a literal (cbindgen writes it as one); it is the quota's bound.
const _: () = assert!(TOLLGATE_MAX_COMMIT_COST == tollgate::quota::MAX_COST);

/// Settles a reservation at its final cost and releases it. `idempotency_key` (UTF-8,
/// e.g. the request id) makes a retried commit count once: with the same key in the
/// same period, only the first commit counts, and `*out_outcome` (if not NULL) says
/// TOLLGATE_COMMIT_OUTCOME_DUPLICATE. A commit that takes usage across the warning or
/// the limit raises its notice (an event), as a call would. On success the reservation
/// is gone; on an error (a bad argument) it stays with the caller, unchanged. After
/// TOLLGATE_RESULT_PANIC it is gone too.
///
/// Fails with TOLLGATE_RESULT_INVALID_ARGUMENT when `final_cost` is above
/// TOLLGATE_MAX_COMMIT_COST (nothing is settled: commit again with the right cost, or
/// refund).
///
/// # Safety
/// `reservation` must come from tollgate_engine_quota_reserve() and not be settled yet;
/// `idempotency_key` must point to `len` readable bytes; `out_outcome` must be NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_reservation_commit(
    reservation: *mut tollgate_reservation,
    final_cost: u64,
    idempotency_key: *const c_char,
    len: usize,
    out_outcome: *mut u32,
) -> tollgate_result {
    guard(|| {
        let r = non_null_mut(reservation, "reservation")?;
        // SAFETY: the caller's promise.
        let key = unsafe { text(idempotency_key, len, "idempotency_key") }?;
        if final_cost > TOLLGATE_MAX_COMMIT_COST {
            return Err(Fail::new(
                tollgate_result::InvalidArgument,
                format!(
                    "final_cost {final_cost} is above TOLLGATE_MAX_COMMIT_COST \
                     ({TOLLGATE_MAX_COMMIT_COST}): nothing was settled"
                ),
            ));
        }
        // SAFETY:
        // - non-null, from tollgate_engine_quota_reserve() and not settled (the caller's
        //   promise);
        // - ownership comes back here, after every check that can fail.
        let Some(r) = (unsafe { to_box(r) }) else {
            unreachable!("checked non-null above")
        };
        let outcome = match r.settler.commit(r.reservation, final_cost, key) {
            CommitOutcome::Committed => tollgate_commit_outcome::Committed,
            CommitOutcome::Duplicate => tollgate_commit_outcome::Duplicate,
            // Not reached: the cost was checked above.
            CommitOutcome::TooLarge => tollgate_commit_outcome::TooLarge,
        };
        if !out_outcome.is_null() {
            // SAFETY: non-null, and the caller promises it is writable.
            unsafe { out_outcome.write(outcome as u32) };
        }
        Ok(tollgate_result::Ok)
    })
}

/// Releases a reservation without counting it: the call failed and is not billed.
/// Calling with NULL is fine; it must not be called twice with the same reservation.
///
/// # Safety
/// `reservation` must be NULL or come from tollgate_engine_quota_reserve() and not be
/// settled yet.
#[no_mangle]
pub unsafe extern "C" fn tollgate_reservation_refund(
    reservation: *mut tollgate_reservation,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL, or from tollgate_engine_quota_reserve() and not settled (the
        // caller's promise): ownership comes back here.
        if let Some(r) = unsafe { to_box(reservation) } {
            r.settler.refund(r.reservation);
        }
        Ok(tollgate_result::Ok)
    })
}

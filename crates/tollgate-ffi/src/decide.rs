//! The two decide entry points: attributes as (name, value) pairs, or a
//! tollgate_request with the engine's own attributes as fields.

use arrayvec::ArrayVec;

use crate::convert::{
    attr_slice, decision_to_c, field_values, fill_attrs, request_fields, request_of, Fields, Others,
};
use crate::guard::{guard, non_null, non_null_mut, Fail};
use crate::ownership::try_ref_from_ptr;
use crate::types::{
    tollgate_attr, tollgate_decision, tollgate_engine, tollgate_request, tollgate_result,
    TOLLGATE_CLASS_COST,
};

/// Decides a request: every limit that applies, all or nothing, then the monthly quota.
/// `attrs` are the request's attributes (`attrs_len` of them, at most
/// TOLLGATE_MAX_ATTRS; each name at most once); a `method` attribute picks the request's
/// class. `cost` is the request's explicit cost, or TOLLGATE_CLASS_COST for the class's
/// cost under each limit. `now_unix_ns` is the request's time in Unix nanoseconds, or
/// TOLLGATE_ENGINE_CLOCK for the engine's clock. On success `*out` receives the
/// decision; a refused request is a success whose decision says so.
///
/// Thread-safe: any number of threads may decide on one engine at once.
///
/// # Safety
/// `engine` must be a live engine; `attrs` must point to `attrs_len` attributes whose
/// names and values point to their stated lengths of readable bytes; `out` must be
/// writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_decide(
    engine: *const tollgate_engine,
    attrs: *const tollgate_attr,
    attrs_len: usize,
    cost: u64,
    now_unix_ns: u64,
    out: *mut tollgate_decision,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        let out = non_null_mut(out, "out")?;
        // SAFETY: the caller's promise.
        let attrs = unsafe { attr_slice(attrs, attrs_len) }?;
        let mut fields: Fields<'_> = [None; 7];
        // Attributes the engine has no field for; on the stack, nothing initialised
        // until used.
        let mut others: Others<'_> = ArrayVec::new();
        // SAFETY: the caller's promise about each attribute's bytes.
        unsafe { fill_attrs(&mut fields, &mut others, attrs) }?;
        let req = request_of(
            fields,
            &others,
            (cost != TOLLGATE_CLASS_COST).then_some(cost),
            now_unix_ns,
        );
        let d = h.engine.decide(&req);
        // SAFETY: `out` checked above; the caller promises it is writable.
        unsafe { out.write(decision_to_c(&d)) };
        Ok(tollgate_result::Ok)
    })
}

/// Decides a request given as a tollgate_request, exactly as
/// tollgate_engine_decide() decides the same attributes: every limit that applies, all
/// or nothing, then the monthly quota. The engine's own attributes are fields, so no
/// names are matched; further attributes go in `request->attrs`. On success `*out`
/// receives the decision; a refused request is a success whose decision says so.
///
/// Thread-safe: any number of threads may decide on one engine at once.
///
/// # Safety
/// `engine` must be a live engine; `request` must be a readable tollgate_request whose
/// non-NULL fields point to their stated lengths of readable bytes and whose `attrs`
/// point as for tollgate_engine_decide(); `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn tollgate_engine_decide_request(
    engine: *const tollgate_engine,
    request: *const tollgate_request,
    out: *mut tollgate_decision,
) -> tollgate_result {
    guard(|| {
        // SAFETY: NULL is refused; otherwise the caller promises a live engine, not
        // freed during the call.
        let h = unsafe { try_ref_from_ptr(engine) }?;
        let r = non_null(request, "request")?;
        if !r.is_aligned() {
            return Err(Fail::new(
                tollgate_result::InvalidArgument,
                "request is not aligned for tollgate_request",
            ));
        }
        let out = non_null_mut(out, "out")?;
        // SAFETY: non-null and aligned; the caller promises a readable request.
        let r = unsafe { &*r };
        // SAFETY: the caller promises each field's bytes.
        let fields = unsafe { field_values(request_fields(r)) }?;
        let cost = r.explicit_cost.then_some(r.cost);
        // Without further attributes the fields go straight into the request (nothing
        // held across a call).
        let d = if r.attrs_len == 0 {
            h.engine
                .decide(&request_of(fields, &[], cost, r.now_unix_ns))
        } else {
            let mut fields = fields;
            let mut others: Others<'_> = ArrayVec::new();
            // SAFETY: the caller's promise.
            let attrs = unsafe { attr_slice(r.attrs, r.attrs_len) }?;
            // SAFETY: the caller's promise about each attribute's bytes.
            unsafe { fill_attrs(&mut fields, &mut others, attrs) }?;
            h.engine
                .decide(&request_of(fields, &others, cost, r.now_unix_ns))
        };
        // SAFETY: `out` checked above; the caller promises it is writable.
        unsafe { out.write(decision_to_c(&d)) };
        Ok(tollgate_result::Ok)
    })
}

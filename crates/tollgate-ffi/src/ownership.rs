//! Opaque C handles and the Rust values behind them: the one place that turns a `Box`
//! into a handle pointer and back.
//!
//! Each opaque C type ([`tollgate_engine`](crate::types::tollgate_engine),
//! [`tollgate_reservation`](crate::types::tollgate_reservation)) is a zero-sized marker
//! that C only ever sees behind a pointer. [`Castable`] ties it to the Rust type the
//! pointer really points to and to how that value is owned, so the helpers below are
//! typed by the C handle: a reservation pointer cannot be read or freed as an engine,
//! and only a handle whose ownership is [`OwnedBox`] can be made by [`to_boxed_ptr`]
//! or taken back by [`to_box`] and [`free_box`].
//!
//! Every other `unsafe` pointer use of the crate reads or writes caller memory
//! (arguments, outputs); none of it creates or destroys a handle.

use crate::guard::{non_null, Fail};

/// How the Rust value behind a C handle is owned (the kinds are this module's; an
/// `Arc`-owned kind would go here next to [`OwnedBox`], with its own helpers).
pub(crate) trait Ownership {}

/// The handle owns a `Box`: made by [`to_boxed_ptr`], given back exactly once to
/// [`to_box`] or [`free_box`] (the handle's release function).
#[derive(Debug)]
pub(crate) enum OwnedBox {}

impl Ownership for OwnedBox {}

/// An opaque C type and the Rust value a pointer to it really points to.
pub(crate) trait Castable {
    /// The value behind the pointer.
    type RustType;
    /// How that value is owned.
    type Ownership: Ownership;
    /// The argument's name in messages (`"engine is NULL"`).
    const NAME: &'static str;
}

/// Moves `value` into a new box and hands its pointer out as the C handle `*mut C`.
/// The caller (C) owns it until it gives it back to [`to_box`] or [`free_box`].
pub(crate) fn to_boxed_ptr<C>(value: C::RustType) -> *mut C
where
    C: Castable<Ownership = OwnedBox>,
{
    Box::into_raw(Box::new(value)).cast::<C>()
}

/// The value behind a handle, borrowed (shared) for the call: `Err(NullParameter)`
/// naming it when NULL.
///
/// # Safety
/// Unless NULL, `p` must come from [`to_boxed_ptr`] for this `C` and not be released
/// yet, and stay so for `'a` (nothing may release it while the reference lives).
pub(crate) unsafe fn try_ref_from_ptr<'a, C: Castable>(
    p: *const C,
) -> Result<&'a C::RustType, Fail> {
    let p = non_null(p, C::NAME)?;
    // SAFETY:
    // - `p` is non-null, and the caller promises it came from `to_boxed_ptr::<C>`, so
    //   it points to a live, aligned, initialised `C::RustType` (the cast undoes the
    //   one made there);
    // - the caller promises it is not released during `'a`, and only shared
    //   references are made from a handle while C holds it.
    Ok(unsafe { &*p.cast::<C::RustType>() })
}

/// Takes back the box behind a handle (`None` for NULL): ownership returns to Rust, and
/// the handle must not be used again.
///
/// # Safety
/// Unless NULL, `p` must come from [`to_boxed_ptr`] for this `C`, not be released yet,
/// and not be in use by anyone else.
pub(crate) unsafe fn to_box<C>(p: *mut C) -> Option<Box<C::RustType>>
where
    C: Castable<Ownership = OwnedBox>,
{
    if p.is_null() {
        return None;
    }
    // SAFETY:
    // - non-null, and (the caller's promise) made by `Box::into_raw` of a
    //   `Box<C::RustType>` in `to_boxed_ptr::<C>`: the cast restores that pointer;
    // - not released yet and used by no one else, so this is the box's one owner.
    Some(unsafe { Box::from_raw(p.cast::<C::RustType>()) })
}

/// Releases a handle: drops the value behind it. NULL is a no-op.
///
/// # Safety
/// As for [`to_box`].
pub(crate) unsafe fn free_box<C>(p: *mut C)
where
    C: Castable<Ownership = OwnedBox>,
{
    // SAFETY: forwarded from the caller.
    drop(unsafe { to_box(p) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tollgate_result;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct opaque {
        _private: [u8; 0],
    }

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    #[derive(Debug)]
    struct Value(u64);

    impl Drop for Value {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Castable for opaque {
        type RustType = Value;
        type Ownership = OwnedBox;
        const NAME: &'static str = "opaque";
    }

    /// A handle round-trips: made, borrowed, taken back once; NULL is refused or
    /// ignored. Miri checks the casts and the one release.
    #[test]
    fn a_handle_is_made_borrowed_and_released_once() {
        let p = to_boxed_ptr::<opaque>(Value(7));
        // SAFETY: made just above, not released.
        let v = unsafe { try_ref_from_ptr(p.cast_const()) }.unwrap();
        assert_eq!(v.0, 7);
        // SAFETY: made above, released once here.
        let b = unsafe { to_box(p) }.unwrap();
        assert_eq!(b.0, 7);
        drop(b);
        assert_eq!(DROPS.load(Ordering::Relaxed), 1);
        let p = to_boxed_ptr::<opaque>(Value(8));
        // SAFETY: made above, released once here.
        unsafe { free_box(p) };
        assert_eq!(DROPS.load(Ordering::Relaxed), 2);

        // SAFETY: NULL is refused or ignored without being read.
        unsafe {
            let e = try_ref_from_ptr::<opaque>(std::ptr::null()).unwrap_err();
            assert_eq!(e.code, tollgate_result::NullParameter);
            assert_eq!(e.message, "opaque is NULL");
            assert!(to_box::<opaque>(std::ptr::null_mut()).is_none());
            free_box::<opaque>(std::ptr::null_mut());
        }
        assert_eq!(DROPS.load(Ordering::Relaxed), 2);
    }
}

//! A zero-initialised table in memory the kernel may back with transparent huge pages.
//!
//! At a million keys the keyed store's table is about 20 MB: with 4 KiB pages nearly every
//! lookup misses the TLB and pays a page walk on top of its cache miss; with 2 MiB pages
//! the whole table needs about ten TLB entries. Linux in the common `madvise` THP mode
//! backs memory with huge pages only when it was advised with `MADV_HUGEPAGE` *before* it
//! was first touched, so the table is allocated 2 MiB-aligned, advised, then zeroed.
//!
//! This is the only module of the crate with `unsafe` code. Miri runs all of it except the
//! `madvise` system call, which is skipped under miri (and under loom, and on systems
//! other than Linux): the advice never changes the contents of memory, only its backing.

use std::alloc::{self, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

/// Huge-page size on x86-64 and aarch64 Linux.
const HUGE: usize = 2 << 20;

/// Tables smaller than this gain nothing from huge pages and use ordinary allocation.
const MIN_HUGE_BYTES: usize = 4 << 20;

/// Types for which the all-zero byte pattern is a valid value.
///
/// # Safety
/// Implement only for types whose every field is valid when all its bytes are zero (plain
/// integers, atomics of integers, arrays and structs of those) and that have no `Drop`.
pub(crate) unsafe trait Zeroable: Sized {}

/// A fixed-length, zero-initialised slice of `T`, 2 MiB-aligned and advised for huge pages
/// when large.
pub(crate) struct Table<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: a `Table<T>` owns its elements exactly like a `Box<[T]>` does, so it may move to
// another thread when `T: Send` and be shared when `T: Sync`.
unsafe impl<T: Zeroable + Send> Send for Table<T> {}
// SAFETY: as above; `&Table<T>` only hands out `&[T]`.
unsafe impl<T: Zeroable + Sync> Sync for Table<T> {}

impl<T: Zeroable> Table<T> {
    /// `len` zeroed elements (`len` may be 0).
    pub(crate) fn zeroed(len: usize) -> Self {
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .expect("table size overflows usize");
        let align = if bytes >= MIN_HUGE_BYTES {
            HUGE
        } else {
            std::mem::align_of::<T>()
        };
        let layout = Layout::from_size_align(bytes.max(1), align.max(std::mem::align_of::<T>()))
            .expect("table layout is valid");
        // SAFETY: `layout` has a non-zero size (at least one byte).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        if align == HUGE {
            advise_huge(raw, bytes);
        }
        // SAFETY: `raw` points to `layout.size() >= bytes` writable bytes that we own.
        unsafe { std::ptr::write_bytes(raw, 0, layout.size()) };
        Table {
            ptr: ptr.cast(),
            len,
            layout,
        }
    }
}

impl<T: Zeroable> Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY:
        // - `ptr` is aligned for `T` and points to `len` elements allocated by `zeroed`;
        // - every element is initialised, since all-zero bytes are a valid `T` (`Zeroable`);
        // - the memory lives until `drop`, and only shared references are handed out.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for Table<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc::alloc(self.layout)` and is freed only here;
        // `T: Zeroable` has no drop glue, so nothing needs dropping first.
        unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

#[cfg(all(target_os = "linux", not(miri), not(tollgate_loom)))]
fn advise_huge(start: *mut u8, len: usize) {
    // SAFETY:
    // - `start..start + len` is an allocation we own that nothing references yet, and
    //   `start` is 2 MiB-aligned, hence page-aligned as madvise requires;
    // - MADV_HUGEPAGE only changes how the kernel backs these pages; it neither reads,
    //   writes nor frees them;
    // - the result is ignored on purpose: without huge pages the table works the same.
    unsafe {
        libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(all(target_os = "linux", not(miri), not(tollgate_loom))))]
fn advise_huge(_start: *mut u8, _len: usize) {}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[repr(C, align(64))]
    struct Line([AtomicU64; 8]);

    // SAFETY: eight atomics of integers: all-zero bytes are eight zeros.
    unsafe impl Zeroable for Line {}

    #[test]
    fn small_table_is_zeroed_and_usable() {
        let t = Table::<Line>::zeroed(10);
        assert_eq!(t.len(), 10);
        assert!(t
            .iter()
            .all(|l| l.0.iter().all(|a| a.load(Ordering::Relaxed) == 0)));
        t[3].0[7].store(42, Ordering::Relaxed);
        assert_eq!(t[3].0[7].load(Ordering::Relaxed), 42);
        assert_eq!(t.as_ptr() as usize % 64, 0);
    }

    #[test]
    fn empty_table() {
        let t = Table::<Line>::zeroed(0);
        assert!(t.is_empty());
    }

    #[test]
    #[cfg_attr(miri, ignore = "64 MiB is slow under miri")]
    fn large_table_is_huge_page_aligned() {
        let t = Table::<Line>::zeroed((8 << 20) / 64);
        assert_eq!(t.as_ptr() as usize % HUGE, 0);
        assert_eq!(t[t.len() - 1].0[0].load(Ordering::Relaxed), 0);
        std::thread::scope(|s| {
            s.spawn(|| t[0].0[0].store(1, Ordering::Relaxed));
        });
        assert_eq!(t[0].0[0].load(Ordering::Relaxed), 1);
    }
}

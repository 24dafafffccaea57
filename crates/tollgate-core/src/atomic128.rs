//! The keyed store's 128-bit slot: one fingerprint and one state word, read and
//! compare-exchanged as a unit.
//!
//! By default the operations come from `portable-atomic`, which on an x86-64 build
//! without compile-time `cmpxchg16b`/AVX reaches `lock cmpxchg16b` and `vmovdqa` through a
//! function pointer chosen at run time: an indirect call per slot read. A keyed hit reads
//! four slots and compare-exchanges one, and the benches measured those calls as the
//! largest cost of a hit (keyed check at 10k keys: 31.5 ns on a baseline build against
//! 23.3 ns when the same code is built with `-C target-cpu=x86-64-v3`).
//!
//! So on x86-64 this module issues the two instructions inline when the CPU is known to
//! make them atomic, and falls back to `portable-atomic` otherwise:
//! * `lock cmpxchg16b` needs the `cmpxchg16b` CPU flag;
//! * a 16-byte `vmovdqa` load is atomic on Intel and AMD processors that support AVX
//!   (Intel SDM vol. 3A §9.1.1; AMD APM vol. 2 §7.3.2) — the same rule `portable-atomic`
//!   applies, vendor check included.
//!
//! The check runs once per process and is cached in a static. Under miri (which cannot
//! run inline assembly) and on other architectures the `portable-atomic` path is used;
//! under loom the slot is loom's model. Both paths operate on the same `AtomicU128`
//! memory with real atomic instructions, so they can be mixed freely.

use crate::sync::{AtomicU128, Ordering};

/// One slot: a 128-bit atomic.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct Slot(AtomicU128);

impl Slot {
    /// A slot holding `v`. (Store tables are normally zero-allocated instead.)
    #[cfg_attr(not(any(test, tollgate_loom)), allow(dead_code))]
    pub(crate) fn new(v: u128) -> Self {
        Slot(AtomicU128::new(v))
    }

    /// Reads the slot atomically.
    #[inline]
    pub(crate) fn load(&self) -> u128 {
        #[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
        if fast::available() {
            // SAFETY: `available()` confirmed AVX on an Intel or AMD CPU, where an aligned
            // 16-byte `vmovdqa` is atomic; `as_ptr` points to our live, 16-byte-aligned
            // `AtomicU128`, which every other access also touches only atomically.
            return unsafe { fast::load(self.0.as_ptr()) };
        }
        self.0.load(Ordering::Relaxed)
    }

    /// Replaces `current` with `new` if the slot holds `current`; returns the value seen.
    #[inline]
    pub(crate) fn compare_exchange(&self, current: u128, new: u128) -> Result<u128, u128> {
        #[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
        if fast::available() {
            // SAFETY: `available()` confirmed `cmpxchg16b`; `as_ptr` points to our live,
            // 16-byte-aligned `AtomicU128`, accessed elsewhere only atomically.
            let (prev, ok) = unsafe { fast::cmpxchg16b(self.0.as_ptr(), current, new) };
            return if ok { Ok(prev) } else { Err(prev) };
        }
        self.0
            .compare_exchange(current, new, Ordering::Relaxed, Ordering::Relaxed)
    }

    /// Whether this process uses the inline instructions (for tests and diagnostics).
    #[allow(dead_code)]
    pub(crate) fn inline_atomics() -> bool {
        #[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
        {
            fast::available()
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri), not(tollgate_loom))))]
        {
            false
        }
    }
}

#[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
mod fast {
    use std::arch::asm;
    use std::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;

    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether the inline instructions are atomic on this CPU (detected once).
    #[inline]
    pub(super) fn available() -> bool {
        match STATE.load(Ordering::Relaxed) {
            YES => true,
            NO => false,
            _ => detect(),
        }
    }

    #[cold]
    fn detect() -> bool {
        let ok = std::is_x86_feature_detected!("cmpxchg16b")
            && std::is_x86_feature_detected!("avx")
            && intel_or_amd();
        STATE.store(if ok { YES } else { NO }, Ordering::Relaxed);
        ok
    }

    fn intel_or_amd() -> bool {
        #[allow(unused_unsafe)]
        // SAFETY: `cpuid` exists on every x86-64 CPU, and leaf 0 (vendor id) is always valid.
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        let mut vendor = [0u8; 12];
        vendor[..4].copy_from_slice(&r.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&r.edx.to_le_bytes());
        vendor[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &vendor == b"GenuineIntel" || &vendor == b"AuthenticAMD"
    }

    /// Atomic 16-byte load.
    ///
    /// # Safety
    /// `src` must be valid for reads, 16-byte aligned, accessed concurrently only by atomic
    /// operations, and the CPU must support AVX and be one whose aligned 16-byte AVX loads
    /// are atomic ([`available`]).
    #[inline]
    pub(super) unsafe fn load(src: *mut u128) -> u128 {
        let lo: u64;
        let hi: u64;
        // SAFETY: guaranteed by the caller; the asm reads 16 bytes at `src` and writes
        // only its output registers.
        unsafe {
            asm!(
                "vmovdqa {x}, xmmword ptr [{src}]",
                "vmovq {lo}, {x}",
                "vpextrq {hi}, {x}, 1",
                src = in(reg) src,
                x = out(xmm_reg) _,
                lo = out(reg) lo,
                hi = out(reg) hi,
                options(nostack, preserves_flags, readonly),
            );
        }
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// `lock cmpxchg16b`: returns the value seen and whether it was replaced.
    ///
    /// # Safety
    /// `dst` must be valid for reads and writes, 16-byte aligned, accessed concurrently
    /// only by atomic operations, and the CPU must support `cmpxchg16b`.
    #[inline]
    pub(super) unsafe fn cmpxchg16b(dst: *mut u128, current: u128, new: u128) -> (u128, bool) {
        let prev_lo: u64;
        let prev_hi: u64;
        let ok: u8;
        // SAFETY: guaranteed by the caller. `rbx` is reserved by LLVM, so the low half of
        // `new` comes in another register and is swapped into `rbx` around the
        // instruction, then `rbx` is restored; the instruction compares rdx:rax with the
        // 16 bytes at `dst` and, if equal, stores rcx:rbx there, else loads them into
        // rdx:rax.
        unsafe {
            asm!(
                "xchg {new_lo}, rbx",
                "lock cmpxchg16b xmmword ptr [{dst}]",
                "sete {ok}",
                "mov rbx, {new_lo}",
                dst = in(reg) dst,
                new_lo = inout(reg) new as u64 => _,
                ok = out(reg_byte) ok,
                inout("rax") current as u64 => prev_lo,
                inout("rdx") (current >> 64) as u64 => prev_hi,
                in("rcx") (new >> 64) as u64,
                options(nostack),
            );
        }
        ((u128::from(prev_hi) << 64) | u128::from(prev_lo), ok != 0)
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn load_and_compare_exchange() {
        let s = Slot::new(0);
        assert_eq!(s.load(), 0);
        let a = (7u128 << 64) | 9;
        assert_eq!(s.compare_exchange(0, a), Ok(0));
        assert_eq!(s.load(), a);
        assert_eq!(s.compare_exchange(0, 1), Err(a));
        assert_eq!(s.load(), a);
        let b = (u128::MAX << 1) | 1;
        assert_eq!(s.compare_exchange(a, b), Ok(a));
        assert_eq!(s.load(), b);
        // Mixing with portable-atomic's own operations on the same memory.
        assert_eq!(s.0.load(Ordering::Relaxed), b);
        s.0.store(5, Ordering::Relaxed);
        assert_eq!(s.load(), 5);
    }

    #[test]
    fn inline_path_is_taken_where_supported() {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("cmpxchg16b") {
            // Intel and AMD CPUs are what CI runs on; on another vendor this is false.
            println!("inline 128-bit atomics: {}", Slot::inline_atomics());
        }
        let _ = Slot::inline_atomics();
    }

    /// Two threads add to both halves of one slot with compare-exchange loops: no update
    /// is lost and the halves never tear.
    #[test]
    fn concurrent_compare_exchange_is_atomic() {
        let s = Slot::new(0);
        let n: u64 = if cfg!(miri) { 200 } else { 100_000 };
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    for _ in 0..n {
                        let mut cur = s.load();
                        loop {
                            let (hi, lo) = ((cur >> 64) as u64, cur as u64);
                            assert_eq!(hi, lo, "torn read");
                            let next = (u128::from(hi + 1) << 64) | u128::from(lo + 1);
                            match s.compare_exchange(cur, next) {
                                Ok(_) => break,
                                Err(actual) => cur = actual,
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(s.load(), (u128::from(2 * n) << 64) | u128::from(2 * n));
    }
}

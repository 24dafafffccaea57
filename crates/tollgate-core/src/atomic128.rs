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
//! make them atomic, and falls back to `portable-atomic` otherwise. The check runs once per
//! process; the store carries its result as a [`Fast`] value, so a hit branches on a
//! register instead of loading a flag before every slot operation (a first version that
//! checked a static on every operation gained nothing). Measured in a tight loop on the
//! 2-core EPYC VM: keyed check at 1M keys 155-165 ns -> 98-104 ns, at 10k keys about
//! 28-31 ns -> 25-26 ns.
//!
//! When the instructions are used:
//! * `lock cmpxchg16b` needs the `cmpxchg16b` CPU flag;
//! * a 16-byte `vmovdqa` load is atomic on Intel and AMD processors that support AVX
//!   (Intel SDM vol. 3A §9.1.1; AMD APM vol. 2 §7.3.2) — the same rule `portable-atomic`
//!   applies, vendor check included.
//!
//! Under miri (which cannot
//! run inline assembly) and on other architectures the `portable-atomic` path is used;
//! under loom the slot is loom's model. Both paths operate on the same `AtomicU128`
//! memory with real atomic instructions, so they can be mixed freely.

use crate::sync::{AtomicU128, Ordering};

/// Proof that the inline instructions are atomic on this CPU (or `Fast(false)`), checked
/// once and then carried by value, so the hot path branches on a register, not a load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fast(bool);

impl Fast {
    /// Detects (once per process) whether the inline instructions may be used.
    pub(crate) fn detect() -> Self {
        #[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
        {
            Fast(fast::available())
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri), not(tollgate_loom))))]
        {
            Fast(false)
        }
    }

    /// Whether the inline (cross-process safe) instructions are used.
    #[cfg_attr(tollgate_loom, allow(dead_code))]
    pub(crate) fn is_fast(self) -> bool {
        self.0
    }

    /// The portable path only (tests use it to check the fallback).
    #[allow(dead_code)]
    pub(crate) fn portable() -> Self {
        Fast(false)
    }
}

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
    pub(crate) fn load(&self, fast: Fast) -> u128 {
        #[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
        if fast.0 {
            // SAFETY: `available()` confirmed AVX on an Intel or AMD CPU, where an aligned
            // 16-byte `vmovdqa` is atomic; `as_ptr` points to our live, 16-byte-aligned
            // `AtomicU128`, which every other access also touches only atomically.
            return unsafe { fast::load(self.0.as_ptr()) };
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri), not(tollgate_loom))))]
        let _ = fast;
        self.0.load(Ordering::Relaxed)
    }

    /// Replaces `current` with `new` if the slot holds `current`; returns the value seen.
    #[inline]
    pub(crate) fn compare_exchange(
        &self,
        fast: Fast,
        current: u128,
        new: u128,
    ) -> Result<u128, u128> {
        #[cfg(all(target_arch = "x86_64", not(miri), not(tollgate_loom)))]
        if fast.0 {
            // SAFETY: `available()` confirmed `cmpxchg16b`; `as_ptr` points to our live,
            // 16-byte-aligned `AtomicU128`, accessed elsewhere only atomically.
            let (prev, ok) = unsafe { fast::cmpxchg16b(self.0.as_ptr(), current, new) };
            return if ok { Ok(prev) } else { Err(prev) };
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri), not(tollgate_loom))))]
        let _ = fast;
        self.0
            .compare_exchange(current, new, Ordering::Relaxed, Ordering::Relaxed)
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
        // SAFETY: guaranteed by the caller. The instruction needs the new value's low half
        // in `rbx`, which Rust does not let us name as an operand because LLVM may use it;
        // LLVM may even allocate it to a `reg` operand. So the low half arrives in a
        // `reg` operand and is swapped into `rbx` around the instruction (if LLVM chose
        // `rbx` for it, the swaps do nothing), and the address is pinned to `rdi` so that
        // the swap can never overwrite it. The instruction compares rdx:rax with the 16
        // bytes at `dst` and stores rcx:rbx there if equal, else loads them into rdx:rax;
        // either way rdx:rax ends up holding the value that was seen.
        unsafe {
            asm!(
                "xchg {new_lo}, rbx",
                "lock cmpxchg16b xmmword ptr [rdi]",
                "mov rbx, {new_lo}",
                new_lo = inout(reg) new as u64 => _,
                in("rdi") dst,
                inout("rax") current as u64 => prev_lo,
                inout("rdx") (current >> 64) as u64 => prev_hi,
                in("rcx") (new >> 64) as u64,
                options(nostack),
            );
        }
        let prev = (u128::from(prev_hi) << 64) | u128::from(prev_lo);
        (prev, prev == current)
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn load_and_compare_exchange_on_both_paths() {
        for fast in [Fast::detect(), Fast::portable()] {
            let s = Slot::new(0);
            assert_eq!(s.load(fast), 0);
            let a = (7u128 << 64) | 9;
            assert_eq!(s.compare_exchange(fast, 0, a), Ok(0));
            assert_eq!(s.load(fast), a);
            assert_eq!(s.compare_exchange(fast, 0, 1), Err(a));
            assert_eq!(s.load(fast), a);
            let b = (u128::MAX << 1) | 1;
            assert_eq!(s.compare_exchange(fast, a, b), Ok(a));
            assert_eq!(s.load(fast), b);
            // Mixing with portable-atomic's own operations on the same memory.
            assert_eq!(s.0.load(Ordering::Relaxed), b);
            s.0.store(5, Ordering::Relaxed);
            assert_eq!(s.load(fast), 5);
        }
    }

    #[test]
    fn detection_matches_the_cpu() {
        let fast = Fast::detect();
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if !(std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("cmpxchg16b")) {
            assert!(!fast.0);
        }
        println!("inline 128-bit atomics: {}", fast.0);
    }

    /// Two threads, one on each path, add to both halves of one slot with
    /// compare-exchange loops: no update is lost and the halves never tear.
    #[test]
    fn concurrent_compare_exchange_is_atomic() {
        let s = Slot::new(0);
        let n: u64 = if cfg!(miri) { 200 } else { 100_000 };
        std::thread::scope(|sc| {
            for fast in [Fast::detect(), Fast::portable()] {
                let s = &s;
                sc.spawn(move || {
                    for _ in 0..n {
                        let mut cur = s.load(fast);
                        loop {
                            let (hi, lo) = ((cur >> 64) as u64, cur as u64);
                            assert_eq!(hi, lo, "torn read");
                            let next = (u128::from(hi + 1) << 64) | u128::from(lo + 1);
                            match s.compare_exchange(fast, cur, next) {
                                Ok(_) => break,
                                Err(actual) => cur = actual,
                            }
                        }
                    }
                });
            }
        });
        let total = u128::from(2 * n);
        assert_eq!(s.load(Fast::portable()), (total << 64) | total);
    }
}

//! The claim, insert and lookup logic of [`crate::shared`] over borrowed slices of
//! atomics, so the same code runs on a file-backed mapping and, under
//! `--cfg tollgate_loom`, on loom atomics in ordinary memory (see `loom_tests.rs`).

use crate::algorithm::FRESH;
use crate::atomic128::{Fast, Slot};
use crate::sync::{AtomicU64, Ordering};
use crate::{Algorithm, Decision, StoreFull};

/// Groups of a key's path searched for a free slot (and for the key).
pub const MAX_PROBE_GROUPS: usize = 128;
/// Groups of a new key's path searched for a key to displace when no slot is free.
pub const DISPLACE_GROUPS: usize = 4;
/// A claim older than this many seconds is taken over even if its process lives.
pub const CLAIM_TIMEOUT_SECS: u64 = 10;
pub(crate) const SLOTS_PER_GROUP: usize = 4;

/// Who holds a claim: the current owner's id, whether an owner is gone, the time.
pub(crate) trait Owners {
    /// This owner's id (a pid).
    fn me(&self) -> u32;
    /// Whether the owner `id` is gone.
    fn dead(&self, id: u32) -> bool;
    /// Seconds on a clock every owner shares.
    fn secs(&self) -> u64;
}

/// A view of a region: claim words, slots and the two counters.
pub(crate) struct Table<'a, A, O> {
    pub(crate) claims: &'a [AtomicU64],
    pub(crate) slots: &'a [Slot],
    pub(crate) evicted: &'a AtomicU64,
    pub(crate) displaced: &'a AtomicU64,
    /// Slots ever taken from empty (they are never emptied): the stored keys.
    pub(crate) occupied: &'a AtomicU64,
    pub(crate) groups: usize,
    pub(crate) alg: &'a A,
    pub(crate) fast: Fast,
    pub(crate) capacity: usize,
    pub(crate) owners: O,
}

pub(crate) fn pack(fp: u64, state: u64) -> u128 {
    (u128::from(fp) << 64) | u128::from(state)
}

#[cfg(not(tollgate_loom))]
fn spin(spins: u32) {
    if spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(tollgate_loom)]
fn spin(_spins: u32) {
    loom::thread::yield_now();
}

impl<A: Algorithm, O: Owners> Table<'_, A, O> {
    fn abandoned(&self, word: u64) -> bool {
        let age = (self.owners.secs() & 0xffff_ffff).wrapping_sub(word & 0xffff_ffff) & 0xffff_ffff;
        age > CLAIM_TIMEOUT_SECS || self.owners.dead((word >> 32) as u32)
    }

    pub(crate) fn path(&self, home: usize, groups: usize) -> impl Iterator<Item = usize> + '_ {
        // `home < self.groups` and the path is at most `self.groups` groups long, so one
        // conditional subtraction wraps it (no division per probed slot).
        (0..groups.min(self.groups) * SLOTS_PER_GROUP).map(move |i| {
            let mut g = home + i / SLOTS_PER_GROUP;
            if g >= self.groups {
                g -= self.groups;
            }
            g * SLOTS_PER_GROUP + i % SLOTS_PER_GROUP
        })
    }

    #[inline]
    pub(crate) fn find(&self, home: usize, fp: u64) -> Option<(usize, u128)> {
        // The home group first, branch-free over its four slots (which slot holds the
        // key is random, so an early exit would mispredict), as the private store.
        let base = home * SLOTS_PER_GROUP;
        let vs: [u128; SLOTS_PER_GROUP] =
            std::array::from_fn(|j| self.slots[base + j].load(self.fast));
        let mut hits = 0u32;
        let mut empty = false;
        for (j, v) in vs.iter().enumerate() {
            hits |= u32::from((v >> 64) as u64 == fp) << j;
            empty |= *v == 0;
        }
        if hits != 0 {
            let j = hits.trailing_zeros() as usize;
            return Some((base + j, vs[j]));
        }
        if empty {
            // Slots are never emptied and a key takes the first free slot of its
            // path, so no key of this path lies beyond an empty slot.
            return None;
        }
        for i in self.path(home, MAX_PROBE_GROUPS).skip(SLOTS_PER_GROUP) {
            let v = self.slots[i].load(self.fast);
            if v == 0 {
                return None;
            }
            if (v >> 64) as u64 == fp {
                return Some((i, v));
            }
        }
        None
    }

    /// Decides a request of `cost` at `now` for the key with home group `home` and
    /// fingerprint `fp`; `displace` as [`crate::shared::SharedStore::decide`].
    #[inline]
    pub(crate) fn decide(
        &self,
        home: usize,
        fp: u64,
        now: u64,
        cost: u64,
        displace: bool,
    ) -> Result<Decision, StoreFull> {
        // Only the admission test runs between reading and writing the slot (as the
        // private store): the decision is computed once, from the state it was based on.
        let alg = self.alg;
        let before = self.update(home, fp, now, displace, |s| (s, alg.admit(s, now, cost)))?;
        Ok(alg.decide(before, now, cost).0)
    }

    /// Applies `f` to the state of the key with home group `home` and fingerprint `fp`
    /// ([`FRESH`] when absent): `f` returns its answer and the next state (`None`: leave
    /// it). It may run more than once (after a lost compare-exchange), so it must be a
    /// pure function of the state. A new key whose `f(FRESH)` writes nothing is not
    /// inserted; one that does takes a free slot as in
    /// [`decide`](Self::decide) (`displace` likewise).
    #[inline]
    pub(crate) fn update<R>(
        &self,
        home: usize,
        fp: u64,
        now: u64,
        displace: bool,
        mut f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        loop {
            if let Some((i, v)) = self.find(home, fp) {
                if let Some(r) = self.try_update(i, v, fp, &mut f) {
                    return Ok(r);
                }
                continue; // the slot changed (or was given away): look again
            }
            // As the private store: a request that leaves a new key fresh (a probe)
            // is decided without inserting it, so it leaves no trace.
            let (r, new) = f(FRESH);
            let Some(new) = new else { return Ok(r) };
            if let Some(r) = self.insert(home, fp, now, (r, new), displace, &mut f)? {
                return Ok(r);
            }
        }
    }

    /// Rewrites the state of the key `fp` (home group `home`) if it is stored: `f`
    /// returns the next state or `None` to leave it. Returns whether the key was found.
    pub(crate) fn modify(
        &self,
        home: usize,
        fp: u64,
        mut f: impl FnMut(u64) -> Option<u64>,
    ) -> bool {
        loop {
            let Some((i, v)) = self.find(home, fp) else {
                return false;
            };
            if self.try_update(i, v, fp, |s| ((), f(s))).is_some() {
                return true;
            }
        }
    }

    /// One compare-exchange step on a slot holding `fp`; `None` if the slot changed.
    #[inline]
    fn try_update<R>(
        &self,
        i: usize,
        mut v: u128,
        fp: u64,
        mut f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Option<R> {
        loop {
            if (v >> 64) as u64 != fp {
                return None;
            }
            let state = v as u64;
            let (r, new) = f(state);
            let Some(new) = new else { return Some(r) };
            match self.slots[i].compare_exchange(self.fast, v, pack(fp, new)) {
                Ok(_) => return Some(r),
                Err(seen) => v = seen,
            }
        }
    }

    /// Inserts the key with the state `first.1` (what `f(FRESH)` answered `first.0`
    /// and wrote); `Ok(None)` when a race means the caller must look again.
    fn insert<R>(
        &self,
        home: usize,
        fp: u64,
        now: u64,
        first: (R, u64),
        displace: bool,
        f: &mut impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<Option<R>, StoreFull> {
        let token = self.claim(home);
        let r = (move || {
            // Re-check under the claim: another process may have inserted the key.
            if let Some((i, v)) = self.find(home, fp) {
                return Ok(self.try_update(i, v, fp, &mut *f));
            }
            // The first empty or fresh slot of the whole path...
            let free = self.path(home, MAX_PROBE_GROUPS).find_map(|i| {
                let v = self.slots[i].load(self.fast);
                (v == 0 || self.alg.is_fresh(v as u64, now)).then_some((i, v))
            });
            let (i, v, counter) = match free {
                Some((i, v)) => (i, v, (v != 0).then_some(self.evicted)),
                None if displace => {
                    // ...else the least debt among the first DISPLACE_GROUPS groups.
                    let mut best: Option<(usize, u128, u64)> = None;
                    for i in self.path(home, DISPLACE_GROUPS) {
                        let v = self.slots[i].load(self.fast);
                        if let Some(debt) = self.alg.debt(v as u64, now) {
                            if best.is_none_or(|b| debt < b.2) {
                                best = Some((i, v, debt));
                            }
                        }
                    }
                    let Some((i, v, _)) = best else {
                        return Err(StoreFull {
                            capacity: self.capacity,
                        });
                    };
                    (i, v, Some(self.displaced))
                }
                None => {
                    return Err(StoreFull {
                        capacity: self.capacity,
                    })
                }
            };
            match self.slots[i].compare_exchange(self.fast, v, pack(fp, first.1)) {
                Ok(_) => {
                    if let Some(c) = counter {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    if v == 0 {
                        self.occupied.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(first.0))
                }
                Err(_) => Ok(None), // raced with a hit or another group's insert: retry
            }
        })();
        self.release(home, token);
        r
    }

    /// Rewrites every stored state with `f` (`None`: leave it); returns how many changed.
    /// Each slot is rewritten by compare-exchange, so decisions racing it see the old or
    /// the new state, never a mix.
    pub(crate) fn remap(&self, f: impl Fn(u64) -> Option<u64>) -> usize {
        let mut changed = 0;
        for slot in self.slots {
            let mut v = slot.load(self.fast);
            while v != 0 {
                let Some(new) = f(v as u64) else { break };
                match slot.compare_exchange(self.fast, v, pack((v >> 64) as u64, new)) {
                    Ok(_) => {
                        changed += 1;
                        break;
                    }
                    Err(seen) => v = seen,
                }
            }
        }
        changed
    }

    pub(crate) fn claim(&self, g: usize) -> u64 {
        let w = &self.claims[g];
        let token = (u64::from(self.owners.me()) << 32) | (self.owners.secs() & 0xffff_ffff);
        let mut spins = 0u32;
        loop {
            let cur = w.load(Ordering::Acquire);
            let takeover = cur != 0 && self.abandoned(cur);
            if (cur == 0 || takeover)
                && w.compare_exchange(cur, token, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return token;
            }
            spins += 1;
            spin(spins);
        }
    }

    pub(crate) fn release(&self, g: usize, token: u64) {
        // If it fails our claim was taken over (we were stalled): nothing to undo.
        let _ = self.claims[g].compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Clears the insert claims held by processes that are gone (what the next insert
    /// into such a group does anyway, by the same compare-exchange); returns how many.
    /// For tests and `tollgate check`, before [`verify`](Self::verify).
    pub(crate) fn release_dead_claims(&self) -> usize {
        (0..self.groups)
            .filter(|&g| {
                let w = &self.claims[g];
                let c = w.load(Ordering::Acquire);
                c != 0
                    && self.owners.dead((c >> 32) as u32)
                    && w.compare_exchange(c, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            })
            .count()
    }

    /// Checks the region's invariants (tests and `tollgate check`): no fingerprint twice
    /// on any probe path and no claim held by a dead process. Returns the live keys.
    pub(crate) fn verify(&self) -> Result<usize, String> {
        let mut seen = std::collections::HashMap::new();
        for i in 0..self.groups * SLOTS_PER_GROUP {
            let fp = (self.slots[i].load(self.fast) >> 64) as u64;
            if fp != 0 {
                if let Some(j) = seen.insert(fp, i) {
                    return Err(format!("fingerprint in slots {j} and {i}"));
                }
            }
        }
        for g in 0..self.groups {
            let c = self.claims[g].load(Ordering::Acquire);
            if c != 0 && self.owners.dead((c >> 32) as u32) {
                // A dead claimer's word is taken over on the next insert; report it.
                return Err(format!("group {g} claimed by dead pid {}", c >> 32));
            }
        }
        Ok(seen.len())
    }
}

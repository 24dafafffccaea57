//! A keyed store for millions of keys: a fixed table of 16-byte slots, each holding a
//! key's 64-bit fingerprint and its 64-bit algorithm state in **one** 128-bit atomic.
//!
//! # How a check finds its key
//! Two independently seeded `ahash` hashes are taken of the key: one picks the shard and
//! the *home group* (four slots in one 64-byte cache line), the other is the fingerprint.
//! A hit costs the two hashes, one cache line and one 128-bit compare-exchange. Keys that
//! did not fit their home group live in the next groups (linear probing by group); each
//! group records the farthest distance any key homed there was placed (`maxdist`, only
//! ever raised), so a lookup stops there. The adjacent group is checked before `maxdist`
//! is read, since that is where nearly all displaced keys are.
//!
//! A key that is already a keyed 128-bit fingerprint (what [`crate::Fingerprinter`]
//! makes, and what the engine's limits key by) is not hashed again: the `*_prehashed`
//! methods take the position from its low half and the slot fingerprint from its high
//! half (see [`KeyedStore::update_prehashed`]).
//!
//! # No lock on the hit path
//! Readers only load slots and compare-exchange them. Because the fingerprint and the
//! state are one atomic word, a reader's compare-exchange fails if the slot was given to
//! another key in between, so there is no ABA problem and no memory reclamation is
//! needed: slots never move and the table is never freed while the store lives.
//! Inserts (and evictions) take a per-shard mutex, re-check under it that the key is still
//! absent, and claim a slot with a compare-exchange; two threads inserting the same key
//! therefore end up sharing one slot.
//!
//! # Eviction never changes a decision
//! A slot may be reused only when its state decides every request exactly as a key never
//! seen would ([`crate::Algorithm::is_fresh`]: for GCRA a TAT at or before `now`). Eviction
//! is automatic and amortised: an insert reuses such a slot in place when it meets one on
//! its probe path, and each insert also sweeps one group of its shard. No background
//! thread is needed. (For a clock that goes backwards, a key evicted at `t` and seen again
//! at an earlier `t'` is treated as fresh at `t'`.)
//!
//! # Capacity, memory, and a full store
//! The table is allocated once for `capacity` keys at a load factor of 0.8:
//! **16 B × 1.25 = 20 bytes per key** plus one byte per group of four slots, about
//! 20.3 bytes per key in all, whatever the key type (keys themselves are not stored).
//! With uniformly hashed keys the store holds `capacity` live keys (a test inserts that
//! many); beyond that, room runs out group by group.
//!
//! When every slot on a new key's probe path holds a live key, [`KeyedStore::update`]
//! fails with [`StoreFull`], while [`KeyedStore::update_displacing`] (what the engine's
//! limits use) **displaces** the key with the least to lose among the 16 slots of the
//! first [`DISPLACE_GROUPS`] groups of the path: the one with the smallest
//! [`Algorithm::debt`](crate::Algorithm::debt) (for GCRA its backlog `tat - now`). A
//! key that is being limited (no unit left) is never displaced, so a flood cannot free
//! an abuser. What this guarantees:
//! * **A flood never refuses an honest key** while any candidate slot holds a key that
//!   is not at its limit: a new key always finds a place, and a displaced key only
//!   *loses debt*, so when it comes back it is admitted at least as much as before
//!   (at most its debt more: less than one request for a key that made one request).
//! * An attacker sending R new keys per second makes each of them a key with one
//!   request's debt, which is what the next new key displaces first: established keys
//!   that carry more debt than a one-hit key are displaced only after the one-hit keys
//!   of their 16 candidate slots, and none is ever refused for it.
//! * The store is **truly full** only when all 16 candidates are being limited at once:
//!   an attacker holding `capacity` keys at their limit, i.e. paying `capacity` times
//!   the burst in requests within one refill. Then `StoreFull` lets the caller choose
//!   (`on_full` in the engine's policy: admit untracked, the default, or refuse).
//!
//! # Fingerprint collisions
//! Keys are identified by a 63-bit fingerprint (the low bit marks an occupied slot), so
//! two different keys with the same fingerprint on the same probe path would share state.
//! A key is compared with at most 512 slots (128 groups), so with `n` live keys the
//! chance that any pair collides is below `n × 512 / 2^63`: **5.6e-10 at 10 million
//! keys** (and far less in practice, since almost every key sits in its home group). The hash
//! seeds are random per process, so clients can neither choose colliding keys nor flood
//! one shard.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use ahash::RandomState;
use crossbeam_utils::CachePadded;

use crate::algorithm::FRESH;
use crate::atomic128::{Fast, Slot};
use crate::sync::{AtomicU64, AtomicU8, AtomicUsize, Mutex, Ordering};
use crate::StoreFull;

const SLOTS_PER_GROUP: usize = 4;
const MAX_PROBE_GROUPS: usize = 128;
/// Slots per key at capacity: 5/4, i.e. a load factor of 0.8.
const LOAD_NUM: usize = 5;
const LOAD_DEN: usize = 4;
const MAX_SHARDS: usize = 64;
const MIN_GROUPS_PER_SHARD: usize = 64;
/// Groups of a new key's path searched for a key to displace when none is fresh: 16
/// candidates, the home group and the three after it.
pub const DISPLACE_GROUPS: usize = 4;

/// Four slots in one cache line.
#[repr(align(64))]
struct Group([Slot; SLOTS_PER_GROUP]);

// SAFETY: four `Slot`s, each a `portable_atomic::AtomicU128` (a `u128` in an
// `UnsafeCell`, `repr(transparent)` in `Slot`): all-zero
// bytes are four empty slots. (Under loom the slots are mutexes and the table is built
// element by element instead.)
#[cfg(not(tollgate_loom))]
#[allow(unsafe_code)]
unsafe impl crate::hugepage::Zeroable for Group {}

#[cfg(not(tollgate_loom))]
type Table<T> = crate::hugepage::Table<T>;

#[cfg(not(tollgate_loom))]
fn new_table(groups: usize) -> Table<Group> {
    Table::zeroed(groups)
}

#[cfg(tollgate_loom)]
type Table<T> = Box<[T]>;

#[cfg(tollgate_loom)]
fn new_table(groups: usize) -> Table<Group> {
    (0..groups)
        .map(|_| Group([Slot::new(0), Slot::new(0), Slot::new(0), Slot::new(0)]))
        .collect()
}

struct Shard {
    /// Index of this shard's first group in the store's table.
    first: usize,
    /// Per home group: the farthest group distance at which a key homed there was placed.
    maxdist: Box<[AtomicU8]>,
    /// Held by inserts, removals and sweeps; the value is the sweep cursor.
    lock: Mutex<usize>,
    len: AtomicUsize,
    evictions: AtomicU64,
    /// Live keys displaced to make room (see [`KeyedStore::update_displacing`]).
    displaced: AtomicU64,
}

/// A per-process random hasher; fixed seeds under `cfg(fuzzing)` so that fuzz inputs
/// replay deterministically.
fn new_hasher(which: u64) -> RandomState {
    #[cfg(fuzzing)]
    {
        RandomState::with_seeds(
            which,
            0x7467_6174_655f_6675,
            0x7a7a_696e_6721,
            which ^ 0xa5a5,
        )
    }
    #[cfg(not(fuzzing))]
    {
        let _ = which;
        RandomState::new()
    }
}

#[inline]
fn fp_of(v: u128) -> u64 {
    (v >> 64) as u64
}

#[inline]
fn state_of(v: u128) -> u64 {
    v as u64
}

#[inline]
fn slot(fp: u64, state: u64) -> u128 {
    (u128::from(fp) << 64) | u128::from(state)
}

/// A concurrent map from keys to one `u64` of algorithm state, with bounded memory and
/// eviction that never changes a decision. See the [module docs](self) for the design,
/// the memory per key, what happens when it is full, and the fingerprint collision
/// probability.
///
/// Most users want [`crate::KeyedRateLimiter`], which pairs a store with an algorithm and
/// a clock.
pub struct KeyedStore<K: ?Sized> {
    /// All groups of all shards in one allocation (shard `i` owns the `i`-th run of
    /// `groups_per_shard` groups), so the table can be backed by huge pages.
    table: Table<Group>,
    shards: Box<[CachePadded<Shard>]>,
    shard_bits: u32,
    groups_per_shard: usize,
    max_probe: usize,
    capacity: usize,
    /// Whether slots may use the inline 128-bit instructions (detected once).
    fast: Fast,
    pos_hasher: RandomState,
    fp_hasher: RandomState,
    _key: PhantomData<fn(&K)>,
}

impl<K: ?Sized> fmt::Debug for KeyedStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("shards", &self.shards.len())
            .field("slots", &self.slots())
            .finish()
    }
}

/// Where a key lives.
#[derive(Clone, Copy)]
struct Loc {
    shard: usize,
    home: usize,
    fp: u64,
}

impl<K: Hash + ?Sized> KeyedStore<K> {
    /// A store for up to `capacity` keys (at least 1). Memory is allocated now: about 20
    /// bytes per key of capacity.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (shards, groups_per_shard) = geometry(capacity);
        let table = new_table(shards * groups_per_shard);
        let shard_vec: Vec<CachePadded<Shard>> = (0..shards)
            .map(|i| {
                CachePadded::new(Shard {
                    first: i * groups_per_shard,
                    maxdist: (0..groups_per_shard).map(|_| AtomicU8::new(0)).collect(),
                    lock: Mutex::new(0),
                    len: AtomicUsize::new(0),
                    evictions: AtomicU64::new(0),
                    displaced: AtomicU64::new(0),
                })
            })
            .collect();
        KeyedStore {
            table,
            shards: shard_vec.into_boxed_slice(),
            shard_bits: shards.trailing_zeros(),
            groups_per_shard,
            max_probe: groups_per_shard.min(MAX_PROBE_GROUPS),
            capacity,
            fast: Fast::detect(),
            pos_hasher: new_hasher(0),
            fp_hasher: new_hasher(1),
            _key: PhantomData,
        }
    }
}

impl<K: ?Sized> KeyedStore<K> {
    #[inline]
    fn groups(&self, shard: &Shard) -> &[Group] {
        &self.table[shard.first..shard.first + self.groups_per_shard]
    }

    /// Finds the slot holding `fp`, with the value read.
    #[inline]
    fn find<'a>(&'a self, shard: &'a Shard, loc: Loc) -> Option<(&'a Slot, u128)> {
        // Branch-free over the four slots: which slot holds the key is random, so an
        // early exit would mispredict on most lookups.
        let g = &self.groups(shard)[loc.home].0;
        let vs = [
            g[0].load(self.fast),
            g[1].load(self.fast),
            g[2].load(self.fast),
            g[3].load(self.fast),
        ];
        let hits = u32::from(fp_of(vs[0]) == loc.fp)
            | u32::from(fp_of(vs[1]) == loc.fp) << 1
            | u32::from(fp_of(vs[2]) == loc.fp) << 2
            | u32::from(fp_of(vs[3]) == loc.fp) << 3;
        if hits != 0 {
            let i = hits.trailing_zeros() as usize;
            return Some((&g[i], vs[i]));
        }
        self.find_displaced(shard, loc)
    }

    #[cold]
    fn find_displaced<'a>(&'a self, shard: &'a Shard, loc: Loc) -> Option<(&'a Slot, u128)> {
        let groups = self.groups(shard);
        let scan = |idx: usize| {
            groups[idx]
                .0
                .iter()
                .map(|s| (s, s.load(self.fast)))
                .find(|(_, v)| fp_of(*v) == loc.fp)
        };
        let mut idx = if loc.home + 1 == groups.len() {
            0
        } else {
            loc.home + 1
        };
        // Most displaced keys sit in the very next group (the adjacent cache line): look
        // there before paying for a read of `maxdist`.
        if let Some(hit) = scan(idx) {
            return Some(hit);
        }
        let md = usize::from(shard.maxdist[loc.home].load(Ordering::Relaxed));
        for _ in 1..md {
            idx += 1;
            if idx == groups.len() {
                idx = 0;
            }
            if let Some(hit) = scan(idx) {
                return Some(hit);
            }
        }
        None
    }

    /// [`update_displacing`](KeyedStore::update_displacing) at `loc`.
    #[inline]
    fn update_at<R>(
        &self,
        loc: Loc,
        now: u64,
        is_fresh: impl Fn(u64, u64) -> bool,
        debt: impl Fn(u64, u64) -> Option<u64>,
        mut f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        let shard = &self.shards[loc.shard];
        'lookup: loop {
            if let Some((slot_ref, mut v)) = self.find(shard, loc) {
                loop {
                    let (r, next) = f(state_of(v));
                    let Some(next) = next else { return Ok(r) };
                    match slot_ref.compare_exchange(self.fast, v, slot(loc.fp, next)) {
                        Ok(_) => return Ok(r),
                        // The slot was evicted and reused: look the key up again.
                        Err(actual) if fp_of(actual) != loc.fp => continue 'lookup,
                        Err(actual) => v = actual,
                    }
                }
            }
            let (r, next) = f(FRESH);
            let Some(next) = next else { return Ok(r) };
            let mut cursor = shard.lock.lock().unwrap_or_else(|p| p.into_inner());
            if self.find(shard, loc).is_some() {
                // Another thread inserted it since we looked: decide on its state.
                drop(cursor);
                continue 'lookup;
            }
            let inserted = self
                .insert_locked(shard, loc, next, now, &is_fresh)
                .or_else(|full| {
                    self.displace_locked(shard, loc, next, now, &debt)
                        .ok_or(full)
                });
            self.sweep_one_group(shard, &mut cursor, now, &is_fresh);
            drop(cursor);
            return inserted.map(|()| r);
        }
    }

    /// Claims a slot for `loc.fp` with `state`. The shard lock must be held.
    fn insert_locked(
        &self,
        shard: &Shard,
        loc: Loc,
        state: u64,
        now: u64,
        is_fresh: &impl Fn(u64, u64) -> bool,
    ) -> Result<(), StoreFull> {
        let new = slot(loc.fp, state);
        let groups = self.groups(shard);
        let mut idx = loc.home;
        for dist in 0..self.max_probe {
            for s in &groups[idx].0 {
                let mut v = s.load(self.fast);
                loop {
                    let empty = v == 0;
                    if !empty && !is_fresh(state_of(v), now) {
                        break;
                    }
                    // Publish the probe distance before the key becomes findable.
                    let md = &shard.maxdist[loc.home];
                    if usize::from(md.load(Ordering::Relaxed)) < dist {
                        md.store(dist as u8, Ordering::Relaxed);
                    }
                    match s.compare_exchange(self.fast, v, new) {
                        Ok(_) => {
                            if empty {
                                shard.len.fetch_add(1, Ordering::Relaxed);
                            } else {
                                shard.evictions.fetch_add(1, Ordering::Relaxed);
                            }
                            return Ok(());
                        }
                        // A reader changed the candidate's state: judge it again.
                        Err(actual) => v = actual,
                    }
                }
            }
            idx += 1;
            if idx == groups.len() {
                idx = 0;
            }
        }
        Err(StoreFull {
            capacity: self.capacity,
        })
    }

    /// Puts `loc.fp` with `state` in place of the key with the least debt among the
    /// first [`DISPLACE_GROUPS`] groups of its path; `None` when each of them is being
    /// limited. The shard lock must be held.
    #[cold]
    fn displace_locked(
        &self,
        shard: &Shard,
        loc: Loc,
        state: u64,
        now: u64,
        debt: &impl Fn(u64, u64) -> Option<u64>,
    ) -> Option<()> {
        let new = slot(loc.fp, state);
        let groups = self.groups(shard);
        // A reader may change a candidate between the scan and the swap: scan again.
        for _ in 0..4 {
            let mut best: Option<(u64, usize, &Slot, u128)> = None;
            let mut idx = loc.home;
            for dist in 0..DISPLACE_GROUPS.min(self.max_probe) {
                for s in &groups[idx].0 {
                    let v = s.load(self.fast);
                    if v == 0 {
                        continue;
                    }
                    if let Some(d) = debt(state_of(v), now) {
                        if best.is_none_or(|(b, ..)| d < b) {
                            best = Some((d, dist, s, v));
                        }
                    }
                }
                idx += 1;
                if idx == groups.len() {
                    idx = 0;
                }
            }
            let (_, dist, s, v) = best?;
            let md = &shard.maxdist[loc.home];
            if usize::from(md.load(Ordering::Relaxed)) < dist {
                md.store(dist as u8, Ordering::Relaxed);
            }
            if s.compare_exchange(self.fast, v, new).is_ok() {
                shard.displaced.fetch_add(1, Ordering::Relaxed);
                return Some(());
            }
        }
        None
    }

    /// Empties the fresh slots of the group under the cursor and moves the cursor on: the
    /// amortised part of eviction. The shard lock must be held.
    fn sweep_one_group(
        &self,
        shard: &Shard,
        cursor: &mut usize,
        now: u64,
        is_fresh: &impl Fn(u64, u64) -> bool,
    ) {
        let groups = self.groups(shard);
        let idx = *cursor % groups.len();
        *cursor = idx + 1;
        for s in &groups[idx].0 {
            Self::evict_slot_if_fresh(self.fast, shard, s, now, is_fresh);
        }
    }

    fn evict_slot_if_fresh(
        fast: Fast,
        shard: &Shard,
        s: &Slot,
        now: u64,
        is_fresh: &impl Fn(u64, u64) -> bool,
    ) -> bool {
        let mut v = s.load(fast);
        while v != 0 && is_fresh(state_of(v), now) {
            match s.compare_exchange(fast, v, 0) {
                Ok(_) => {
                    shard.len.fetch_sub(1, Ordering::Relaxed);
                    shard.evictions.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => v = actual,
            }
        }
        false
    }

    fn get_at(&self, loc: Loc) -> Option<u64> {
        self.find(&self.shards[loc.shard], loc)
            .map(|(_, v)| state_of(v))
    }

    fn reset_at(&self, loc: Loc) -> bool {
        let shard = &self.shards[loc.shard];
        loop {
            let Some((s, v)) = self.find(shard, loc) else {
                return false;
            };
            let fresh = slot(loc.fp, FRESH);
            if v == fresh || s.compare_exchange(self.fast, v, fresh).is_ok() {
                return true;
            }
        }
    }

    fn remove_at(&self, loc: Loc) -> bool {
        let shard = &self.shards[loc.shard];
        let _guard = shard.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let Some((s, v)) = self.find(shard, loc) else {
                return false;
            };
            if s.compare_exchange(self.fast, v, 0).is_ok() {
                shard.len.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
        }
    }

    /// Rewrites every stored key's state with `f` (a full sweep, shard by shard), for
    /// instance to carry the keys' usage over to a new rate. Each slot is rewritten with a
    /// compare-exchange, so a decision racing the sweep is applied either before or after
    /// the rewrite of its key, never lost; it may be decided under either meaning of the
    /// state. Returns how many keys were rewritten.
    pub fn remap(&self, f: impl Fn(u64) -> u64) -> usize {
        let mut changed = 0;
        for shard in self.shards.iter() {
            let _guard = shard.lock.lock().unwrap_or_else(|p| p.into_inner());
            for g in self.groups(shard) {
                for s in &g.0 {
                    let mut v = s.load(self.fast);
                    while v != 0 {
                        let next = f(state_of(v));
                        if next == state_of(v) {
                            break;
                        }
                        match s.compare_exchange(self.fast, v, slot(fp_of(v), next)) {
                            Ok(_) => {
                                changed += 1;
                                break;
                            }
                            Err(actual) => v = actual,
                        }
                    }
                }
            }
        }
        changed
    }

    /// Evicts every key whose state is fresh at `now` (a full sweep, shard by shard).
    /// Never needed for correctness or memory; useful to make [`len`](Self::len) count
    /// only live keys. Returns how many keys were evicted.
    pub fn evict_fresh(&self, now: u64, is_fresh: impl Fn(u64, u64) -> bool) -> usize {
        let mut evicted = 0;
        for shard in self.shards.iter() {
            let _guard = shard.lock.lock().unwrap_or_else(|p| p.into_inner());
            for g in self.groups(shard) {
                for s in &g.0 {
                    if Self::evict_slot_if_fresh(self.fast, shard, s, now, &is_fresh) {
                        evicted += 1;
                    }
                }
            }
        }
        evicted
    }
}

impl<K: Hash + ?Sized> KeyedStore<K> {
    #[inline]
    fn locate(&self, key: &K) -> Loc {
        self.loc_of(self.pos_hasher.hash_one(key), self.fp_hasher.hash_one(key))
    }

    /// Applies `f` to the key's state and stores the state it returns, atomically.
    ///
    /// `f` receives the current state ([`FRESH`] for a key not stored) and returns a result
    /// and, if the state should change, the new state. It may be called more than once
    /// when other threads race on the same key; only the call whose state was installed
    /// counts. A key that is absent is inserted only if `f` returns a new state, so a
    /// denied request or a probe leaves no trace. `is_fresh` tells which stored states may
    /// be evicted to make room (see the module docs).
    pub fn update<R>(
        &self,
        key: &K,
        now: u64,
        is_fresh: impl Fn(u64, u64) -> bool,
        f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        self.update_at(self.locate(key), now, is_fresh, |_, _| None, f)
    }

    /// [`update`](Self::update) for a store that must keep admitting new keys when it
    /// is full: when no slot on the new key's path is fresh, the key with the least
    /// `debt` among the first [`DISPLACE_GROUPS`] groups of the path is displaced (see
    /// [`crate::Algorithm::debt`] and the module docs). `StoreFull` only when every one
    /// of those keys is being limited (`debt` is `None`).
    pub fn update_displacing<R>(
        &self,
        key: &K,
        now: u64,
        is_fresh: impl Fn(u64, u64) -> bool,
        debt: impl Fn(u64, u64) -> Option<u64>,
        f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        self.update_at(self.locate(key), now, is_fresh, debt, f)
    }

    /// The key's stored state, or `None` if it is not stored.
    pub fn get(&self, key: &K) -> Option<u64> {
        self.get_at(self.locate(key))
    }

    /// Sets a stored key's state back to [`FRESH`] (its slot becomes reusable). Returns
    /// whether the key was stored.
    pub fn reset(&self, key: &K) -> bool {
        self.reset_at(self.locate(key))
    }

    /// Removes a key. Returns whether it was stored.
    pub fn remove(&self, key: &K) -> bool {
        self.remove_at(self.locate(key))
    }
}

/// The same operations for keys that are already **fingerprints**: 128-bit values that
/// are uniformly random to anyone who does not know a secret seed, such as those of
/// [`crate::Fingerprinter`]. The store takes its position (shard and home group) from
/// the low 64 bits and its slot fingerprint from the high 64 bits instead of hashing
/// the key again; hash flooding is kept out by the seeds behind the fingerprint. A
/// store must be used either through these methods or through the hashing ones, never
/// both (the same value is placed differently by each).
impl<K: ?Sized> KeyedStore<K> {
    /// [`update`](Self::update) of the key with fingerprint `fp`.
    #[inline]
    pub fn update_prehashed<R>(
        &self,
        fp: u128,
        now: u64,
        is_fresh: impl Fn(u64, u64) -> bool,
        f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        self.update_at(self.locate_prehashed(fp), now, is_fresh, |_, _| None, f)
    }

    /// [`update_displacing`](Self::update_displacing) of the key with fingerprint `fp`.
    #[inline]
    pub fn update_displacing_prehashed<R>(
        &self,
        fp: u128,
        now: u64,
        is_fresh: impl Fn(u64, u64) -> bool,
        debt: impl Fn(u64, u64) -> Option<u64>,
        f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        self.update_at(self.locate_prehashed(fp), now, is_fresh, debt, f)
    }

    /// [`get`](Self::get) of the key with fingerprint `fp`.
    pub fn get_prehashed(&self, fp: u128) -> Option<u64> {
        self.get_at(self.locate_prehashed(fp))
    }

    /// [`reset`](Self::reset) of the key with fingerprint `fp`.
    pub fn reset_prehashed(&self, fp: u128) -> bool {
        self.reset_at(self.locate_prehashed(fp))
    }

    /// [`remove`](Self::remove) of the key with fingerprint `fp`.
    pub fn remove_prehashed(&self, fp: u128) -> bool {
        self.remove_at(self.locate_prehashed(fp))
    }
}

impl<K: ?Sized> KeyedStore<K> {
    /// Where the key whose position hash is `h` and fingerprint hash is `fp` lives.
    #[inline]
    fn loc_of(&self, h: u64, fp: u64) -> Loc {
        let shard = if self.shard_bits == 0 {
            0
        } else {
            (h >> (64 - self.shard_bits)) as usize
        };
        let home = ((u64::from(h as u32) * self.groups_per_shard as u64) >> 32) as usize;
        Loc {
            shard,
            home,
            fp: fp | 1,
        }
    }

    /// Where the key with the precomputed fingerprint `fp` lives, without hashing it:
    /// its low 64 bits place it (shard and home group), its high 64 bits (less the
    /// occupied bit) are the slot's fingerprint. Both go through one multiply by an odd
    /// constant (a bijection, so a uniformly random fingerprint stays uniform and the
    /// slot fingerprint stays independent of the position), only so that small or
    /// sequential values (tests, hand-made keys) still spread and stay distinct.
    #[inline]
    fn locate_prehashed(&self, fp: u128) -> Loc {
        let low = (fp as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.loc_of(low, (fp >> 64) as u64 ^ low.rotate_left(32))
    }

    /// Keys stored, including fresh ones not yet evicted. Exact when no insert or
    /// eviction is in flight.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity this store was built for.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Total slots (at least `capacity / 0.8`).
    pub fn slots(&self) -> usize {
        self.shards.len() * self.groups_per_shard * SLOTS_PER_GROUP
    }

    /// Keys evicted (slots reused or swept) since the store was made.
    pub fn evictions(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.evictions.load(Ordering::Relaxed))
            .sum()
    }

    /// Live keys displaced to make room for new ones (see
    /// [`update_displacing`](Self::update_displacing)).
    pub fn displaced(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.displaced.load(Ordering::Relaxed))
            .sum()
    }

    /// Bytes of the table and its per-group metadata (the store's memory, less a few
    /// hundred bytes of shard headers).
    pub fn memory_bytes(&self) -> usize {
        bytes_of(self.shards.len(), self.groups_per_shard)
    }

    /// What [`memory_bytes`](Self::memory_bytes) of a store made by
    /// [`with_capacity`](Self::with_capacity)`(capacity)` is, without making it: for a
    /// memory budget checked before anything is allocated.
    pub fn memory_for(capacity: usize) -> usize {
        let (shards, groups_per_shard) = geometry(capacity.max(1));
        bytes_of(shards, groups_per_shard)
    }
}

/// Shards and groups per shard of a store for `capacity` keys (at least 1).
fn geometry(capacity: usize) -> (usize, usize) {
    let slots = capacity
        .saturating_mul(LOAD_NUM)
        .div_ceil(LOAD_DEN)
        .max(SLOTS_PER_GROUP);
    let groups = slots.div_ceil(SLOTS_PER_GROUP);
    let mut shards = 1usize;
    while shards < MAX_SHARDS && groups / (shards * 2) >= MIN_GROUPS_PER_SHARD {
        shards *= 2;
    }
    (shards, groups.div_ceil(shards))
}

/// The table and per-group metadata of `shards` shards of `groups_per_shard` groups.
fn bytes_of(shards: usize, groups_per_shard: usize) -> usize {
    shards.saturating_mul(
        groups_per_shard
            .saturating_mul(std::mem::size_of::<Group>() + 1)
            .saturating_add(std::mem::size_of::<CachePadded<Shard>>()),
    )
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    fn gcra_fresh(state: u64, now: u64) -> bool {
        state <= now
    }

    fn set(store: &KeyedStore<u64>, key: u64, now: u64, state: u64) -> Result<(), StoreFull> {
        store.update(&key, now, gcra_fresh, |_| ((), Some(state)))
    }

    #[test]
    fn sizing_and_memory_per_key() {
        let s = KeyedStore::<u64>::with_capacity(1_000_000);
        assert_eq!(s.shards.len(), 64);
        assert!(s.slots() * 4 >= 1_000_000 * 5);
        let per_key = s.memory_bytes() as f64 / 1e6;
        assert!((20.0..20.5).contains(&per_key), "{per_key} bytes per key");
        assert_eq!(std::mem::size_of::<Group>(), 64);
        let tiny = KeyedStore::<u64>::with_capacity(0);
        assert_eq!(tiny.capacity(), 1);
        assert_eq!(tiny.slots(), 4);
    }

    #[test]
    fn insert_get_update_remove() {
        let s = KeyedStore::<str>::with_capacity(100);
        assert_eq!(s.get("a"), None);
        s.update("a", 0, gcra_fresh, |st| {
            assert_eq!(st, FRESH);
            ((), Some(10))
        })
        .unwrap();
        assert_eq!(s.get("a"), Some(10));
        s.update("a", 0, gcra_fresh, |st| ((), Some(st + 5)))
            .unwrap();
        assert_eq!(s.get("a"), Some(15));
        assert_eq!(s.len(), 1);
        // A probe of an absent key inserts nothing.
        s.update("b", 0, gcra_fresh, |_| ((), None)).unwrap();
        assert_eq!(s.get("b"), None);
        assert_eq!(s.len(), 1);
        assert!(s.reset("a"));
        assert_eq!(s.get("a"), Some(FRESH));
        assert!(s.remove("a"));
        assert!(!s.remove("a"));
        assert!(s.is_empty());
    }

    #[test]
    fn holds_capacity_live_keys_then_reports_full() {
        let cap = 50_000;
        let s = KeyedStore::<u64>::with_capacity(cap);
        for k in 0..cap as u64 {
            set(&s, k, 0, u64::MAX).unwrap_or_else(|e| panic!("key {k}: {e}"));
        }
        assert_eq!(s.len(), cap);
        for k in 0..cap as u64 {
            assert_eq!(s.get(&k), Some(u64::MAX), "key {k}");
        }
        // Fill every slot: eventually new live keys find no room...
        let mut full = 0;
        for k in cap as u64..(s.slots() as u64 * 2) {
            if set(&s, k, 0, u64::MAX).is_err() {
                full += 1;
            }
        }
        assert!(full > 0);
        assert!(
            s.len() * 100 >= s.slots() * 95,
            "{} of {} slots used when the store first refused a key",
            s.len(),
            s.slots()
        );
        // ...and existing keys are untouched.
        for k in 0..cap as u64 {
            assert_eq!(s.get(&k), Some(u64::MAX));
        }
        // Once keys are fresh, their slots are reused in place.
        let s2 = KeyedStore::<u64>::with_capacity(1000);
        // Small shards are probed whole, so every slot fills before a refusal.
        for k in 0..s2.slots() as u64 * 4 {
            let _ = set(&s2, k, 0, 100);
        }
        assert_eq!(s2.len(), s2.slots());
        assert!(set(&s2, 1 << 40, 50, 200).is_err(), "all live at 50");
        set(&s2, 1 << 40, 100, 200).unwrap();
        assert_eq!(s2.get(&(1 << 40)), Some(200));
        assert!(s2.evictions() >= 1);
    }

    #[test]
    fn prehashed_keys_are_placed_by_their_bits_and_hold_capacity() {
        let cap = 20_000;
        let s = KeyedStore::<u128>::with_capacity(cap);
        // Small sequential values (the worst case for taking bits as they are) still
        // spread: the store holds its capacity of them.
        for k in 0..cap as u128 {
            s.update_prehashed(k, 0, gcra_fresh, |_| ((), Some(u64::MAX)))
                .unwrap_or_else(|e| panic!("key {k}: {e}"));
        }
        assert_eq!(s.len(), cap);
        for k in 0..cap as u128 {
            assert_eq!(s.get_prehashed(k), Some(u64::MAX), "key {k}");
        }
        // Values differing only in the high half are different keys.
        let hi = 7u128 << 64;
        assert_eq!(s.get_prehashed(hi), None);
        s.update_prehashed(hi, 0, gcra_fresh, |_| ((), Some(3)))
            .unwrap();
        assert_eq!(s.get_prehashed(hi), Some(3));
        assert!(s.reset_prehashed(hi));
        assert_eq!(s.get_prehashed(hi), Some(FRESH));
        assert!(s.remove_prehashed(hi));
        assert!(!s.remove_prehashed(hi));
        assert_eq!(s.len(), cap);
        let displaced =
            s.update_displacing_prehashed(1 << 100, 0, gcra_fresh, |_, _| None, |st| (st, Some(1)));
        assert_eq!(displaced, Ok(FRESH));
    }

    #[test]
    fn memory_for_is_what_a_store_of_that_capacity_takes() {
        for capacity in [0, 1, 4, 5, 100, 10_000, 100_000] {
            assert_eq!(
                KeyedStore::<u64>::memory_for(capacity),
                KeyedStore::<u64>::with_capacity(capacity).memory_bytes(),
                "{capacity}"
            );
        }
        // Without allocating: a capacity no machine holds is only arithmetic.
        assert!(KeyedStore::<u64>::memory_for(1 << 40) > 1 << 44);
    }

    #[test]
    fn a_full_store_displaces_the_key_with_the_least_debt_and_never_a_limited_one() {
        // State = debt; `u64::MAX` = being limited (never displaced).
        let debt = |state: u64, _now: u64| (state != u64::MAX).then_some(state);
        let never_fresh = |_: u64, _: u64| false;
        // One group of four slots.
        let s = KeyedStore::<u64>::with_capacity(1);
        assert_eq!(s.slots(), 4);
        let put = |k: u64, state: u64| {
            s.update_displacing(&k, 0, never_fresh, debt, |_| ((), Some(state)))
        };
        for (k, state) in [(1, 30), (2, 10), (3, u64::MAX), (4, 20)] {
            put(k, state).unwrap();
        }
        assert_eq!(s.len(), 4);
        put(5, 99).unwrap();
        assert_eq!(s.get(&2), None, "the least debt went");
        assert_eq!(
            (s.get(&1), s.get(&3), s.get(&4), s.get(&5)),
            (Some(30), Some(u64::MAX), Some(20), Some(99))
        );
        assert_eq!(s.displaced(), 1);
        put(6, 1).unwrap();
        assert_eq!(s.get(&4), None);
        // Only limited keys left to displace: full.
        for k in [1, 5, 6] {
            s.update(&k, 0, never_fresh, |_| ((), Some(u64::MAX)))
                .unwrap();
        }
        assert!(put(7, 1).is_err());
        // Plain `update` never displaces.
        let t = KeyedStore::<u64>::with_capacity(1);
        for k in 0..4 {
            t.update(&k, 0, never_fresh, |_| ((), Some(5))).unwrap();
        }
        assert!(t.update(&9, 0, never_fresh, |_| ((), Some(5))).is_err());
    }

    #[test]
    fn evict_fresh_sweeps_only_fresh_keys() {
        let s = KeyedStore::<u64>::with_capacity(1000);
        for k in 0..500 {
            set(&s, k, 0, k + 1).unwrap();
        }
        let evicted = s.evict_fresh(250, gcra_fresh);
        assert_eq!(evicted, 250);
        assert_eq!(s.len(), 250);
        assert_eq!(s.get(&100), None);
        assert_eq!(s.get(&300), Some(301));
    }

    #[test]
    fn remap_rewrites_every_stored_state() {
        let s = KeyedStore::<u64>::with_capacity(1000);
        for k in 0..300 {
            set(&s, k, 0, k * 2 + 1).unwrap();
        }
        // States above 100 double; the others stay.
        assert_eq!(s.remap(|st| if st > 100 { st * 2 } else { st }), 250);
        assert_eq!(s.get(&0), Some(1));
        assert_eq!(s.get(&70), Some(282));
        assert_eq!(s.len(), 300);
        assert_eq!(s.remap(|st| st), 0);
    }

    #[test]
    fn concurrent_inserts_of_the_same_keys_share_slots() {
        let s = KeyedStore::<u64>::with_capacity(10_000);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for k in 0..5_000u64 {
                        s.update(&k, 0, gcra_fresh, |st| ((), Some(st + 1)))
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(s.len(), 5_000);
        for k in 0..5_000u64 {
            assert_eq!(s.get(&k), Some(4), "key {k}");
        }
    }
}

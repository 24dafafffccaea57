//! A keyed store in a file-backed shared memory region, so that the worker processes of
//! one host (nginx workers, a pre-fork server) decide each key against one state.
//!
//! # Layout (no pointers in the region)
//! * A 4096-byte header: magic `TOLLSHM1`, layout version, a hash of the layout
//!   parameters (capacity, slot size, algorithm parameters), an `initialized` word, the
//!   four hash seeds every process uses, and the slot and group counts.
//! * One 8-byte insert-claim word per group of four slots.
//! * The slots: 16 bytes each, a 64-bit fingerprint (low bit set = occupied) and the
//!   64-bit algorithm state in one 128-bit atomic, as in [`crate::store`].
//!
//! # Creation
//! The opener takes an exclusive `flock` on the file; the first one allocates it
//! (`posix_fallocate`: a filesystem without room, a full `/dev/shm`, is refused with
//! `ENOSPC` at open rather than raising SIGBUS at the first write), writes the header and
//! sets `initialized` last; later openers block on the lock, then check the
//! header. A creator that died mid-way leaves `initialized` unset and the next opener
//! initializes again (the kernel drops a dead process's `flock`). A region whose header
//! differs from the opener's parameters is refused with [`SharedStateError::Mismatch`].
//!
//! # Concurrency and process death
//! A hit is lock-free: load the slot, compute, one 128-bit compare-exchange that fails
//! if the slot changed (so no lost update, no ABA). An insert claims its key's *home
//! group* claim word with a compare-exchange of `pid << 32 | seconds`; under it the
//! inserter re-checks that the key is absent and writes the slot with one 128-bit
//! compare-exchange, so a process killed at any point leaves either no slot or a whole
//! slot, never a half-written one. A claim whose process is gone (`kill(pid, 0)` says
//! ESRCH) or that is older than [`CLAIM_TIMEOUT_SECS`] is taken over, so no claim is
//! stuck. All inserts of one key go through its home group's claim, so a key is never
//! stored twice (unless a live claimer is stalled for the whole timeout).
//!
//! # Capacity and a full store
//! The region holds `capacity` keys at a load factor of 0.8 (20 bytes per key plus one
//! claim word per group), sized like [`crate::KeyedStore`]. A new key takes the first
//! empty or fresh ([`Algorithm::is_fresh`]) slot among the first
//! [`MAX_PROBE_GROUPS`] groups from its home group (the whole table when it is
//! smaller), reusing a fresh slot in place (an *eviction*, which changes no decision).
//! Slots are never emptied, so a lookup stops at the first empty slot of the path.
//! When no slot of the path is empty or fresh:
//! * [`SharedStore::decide`] (what a limit uses, as the private store's
//!   `update_displacing`) **displaces** the key with the least
//!   [`Algorithm::debt`] among the first [`DISPLACE_GROUPS`] groups of the path, never a
//!   key being limited; the displaced key comes back as fresh, having only lost debt;
//!   counted by [`SharedStore::displaced`].
//! * [`SharedStore::try_decide`] never displaces: `Err(StoreFull)`.
//!
//! Both fail with [`StoreFull`] when every candidate is being limited. Below capacity
//! no key is lost: a test inserts `capacity` keys and finds every one.
//!
//! The region needs the inline 128-bit atomics (`cmpxchg16b`): the portable fallback
//! uses a per-process lock, which would not be atomic across processes, so opening
//! fails with [`SharedStateError::NoAtomic128`] where they are missing.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::hash::Hash;
use std::marker::PhantomData;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ahash::RandomState;

use crate::atomic128::{Fast, Slot};
use crate::clock::{Clock, UnixClock};
use crate::limiter::check_cost;
use crate::shared_table::{Owners, Table, SLOTS_PER_GROUP};
pub use crate::shared_table::{CLAIM_TIMEOUT_SECS, DISPLACE_GROUPS, MAX_PROBE_GROUPS};
use crate::{Algorithm, Decision, KeyedError, StoreFull};

/// `TOLLSHM1` in little-endian bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"TOLLSHM1");
/// The layout version this build writes and accepts.
pub const LAYOUT_VERSION: u64 = 4;

const HEADER: usize = 4096;
const READY: u64 = 0x52_4541_4459; // "READY"

/// Why a shared region could not be opened.
#[derive(Debug)]
pub enum SharedStateError {
    /// The file could not be opened, locked, sized or mapped.
    Io(PathBuf, std::io::Error),
    /// The region exists with another magic, version or layout.
    Mismatch {
        /// The region's path.
        path: PathBuf,
        /// What differs.
        what: &'static str,
        /// The value found in the region.
        found: u64,
        /// The value this opener expected.
        expected: u64,
    },
    /// This CPU has no lock-free 128-bit compare-exchange usable across processes.
    NoAtomic128,
    /// A capacity of zero or one too large to map.
    BadCapacity(usize),
}

impl fmt::Display for SharedStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "shared state {}: {e}", p.display()),
            Self::Mismatch {
                path,
                what,
                found,
                expected,
            } => write!(
                f,
                "shared state {}: {what} is {found:#x}, this process expects {expected:#x} \
                 (another policy or build uses the region; remove it or use another path)",
                path.display()
            ),
            Self::NoAtomic128 => write!(f, "shared state needs cmpxchg16b (128-bit atomics)"),
            Self::BadCapacity(c) => write!(f, "shared state capacity {c} is invalid"),
        }
    }
}

impl std::error::Error for SharedStateError {}

/// The bytes a region for `capacity` keys takes (header, claim words, slots).
pub fn region_size(capacity: usize) -> Option<usize> {
    let groups = groups_for(capacity)?;
    let claims = (groups * 8).div_ceil(64) * 64;
    HEADER
        .checked_add(claims)?
        .checked_add(groups.checked_mul(SLOTS_PER_GROUP * 16)?)
}

fn groups_for(capacity: usize) -> Option<usize> {
    if capacity == 0 {
        return None;
    }
    // Load factor 0.8 as in the private store (`store::geometry`).
    let slots = capacity.checked_mul(5)?.div_ceil(4).max(SLOTS_PER_GROUP);
    Some(slots.div_ceil(SLOTS_PER_GROUP))
}

/// FNV-1a, fixed across processes and builds (the layout hash must not be seeded).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A keyed store in a shared memory region: see the [module docs](self).
pub struct SharedStore<K: ?Sized, A: Algorithm> {
    base: *mut u8,
    len: usize,
    groups: usize,
    claims: *const AtomicU64,
    slots: *const Slot,
    alg: A,
    hasher: RandomState,
    fast: Fast,
    capacity: usize,
    path: PathBuf,
    _file: File,
    _key: PhantomData<fn(&K)>,
}

// SAFETY: the raw pointers point into a mapping owned by the store for its whole life,
// and every access through them is atomic.
unsafe impl<K: ?Sized, A: Algorithm> Send for SharedStore<K, A> {}
// SAFETY: as above; shared references only perform atomic operations.
unsafe impl<K: ?Sized, A: Algorithm> Sync for SharedStore<K, A> {}

impl<K: ?Sized, A: Algorithm> fmt::Debug for SharedStore<K, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore")
            .field("path", &self.path)
            .field("capacity", &self.capacity)
            .field("alg", &self.alg)
            .finish()
    }
}

impl<K: ?Sized, A: Algorithm> Drop for SharedStore<K, A> {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `open`, unmapped once here.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Runs `f` holding an exclusive `flock` on `file` (blocking until it is free): the
/// lock every opener of a region or seed file takes. The kernel drops a dead holder's.
fn with_flock<R>(file: &File, path: &Path, f: impl FnOnce() -> R) -> Result<R, SharedStateError> {
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is an open descriptor `file` owns for the whole call.
    if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
        return Err(io(path)(std::io::Error::last_os_error()));
    }
    let r = f();
    // SAFETY: as above; the lock is ours.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    Ok(r)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SharedStateError + '_ {
    move |e| SharedStateError::Io(path.to_path_buf(), e)
}

fn header(base: *mut u8, word: usize) -> &'static AtomicU64 {
    // SAFETY: callers pass a live mapping of at least HEADER bytes, page-aligned, and
    // `word < HEADER / 8`; the header is accessed only atomically.
    unsafe { &*(base.cast::<AtomicU64>().add(word)) }
}

const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_LAYOUT: usize = 2;
const H_INIT: usize = 3;
const H_SEEDS: usize = 4; // 4 words
const H_GROUPS: usize = 8;
const H_EVICTED: usize = 9;
const H_DISPLACED: usize = 10;
const H_OCCUPIED: usize = 11;
const H_PARAMS: usize = 16;
/// The number of [`SharedStore::param`] words in a region's header.
pub const PARAMS: usize = 32;

impl<K: Hash + ?Sized, A: Algorithm> SharedStore<K, A> {
    /// Opens (creating and initializing if absent) the region at `path` for `capacity`
    /// keys decided by `alg`. Every process must pass the same parameters.
    pub fn open(path: impl AsRef<Path>, capacity: usize, alg: A) -> Result<Self, SharedStateError> {
        let layout = format!("alg={alg:?}");
        Self::open_with_layout(path, capacity, alg, &layout)
    }

    /// As [`open`](Self::open), but the region's identity names `layout` instead of the
    /// algorithm's parameters: for a caller that keeps the parameters in the region's
    /// [`param`](Self::param) words itself, so that a new rate can re-express the
    /// stored states ([`remap`](Self::remap)) instead of being refused.
    pub fn open_with_layout(
        path: impl AsRef<Path>,
        capacity: usize,
        alg: A,
        layout: &str,
    ) -> Result<Self, SharedStateError> {
        let path = path.as_ref();
        let fast = Fast::detect();
        if !fast.is_fast() {
            return Err(SharedStateError::NoAtomic128);
        }
        let groups = groups_for(capacity).ok_or(SharedStateError::BadCapacity(capacity))?;
        let len = region_size(capacity).ok_or(SharedStateError::BadCapacity(capacity))?;
        let layout = fnv(format!("cap={capacity};slot=16;groups={groups};{layout}").as_bytes());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io(path))?;
        with_flock(&file, path, || {
            Self::attach(path, &file, len, groups, layout, capacity, alg, fast)
        })?
    }

    #[allow(clippy::too_many_arguments)]
    fn attach(
        path: &Path,
        file: &File,
        len: usize,
        groups: usize,
        layout: u64,
        capacity: usize,
        alg: A,
        fast: Fast,
    ) -> Result<Self, SharedStateError> {
        let size = file.metadata().map_err(io(path))?.len();
        if size != 0 && size != len as u64 {
            return Err(SharedStateError::Mismatch {
                path: path.to_path_buf(),
                what: "region size",
                found: size,
                expected: len as u64,
            });
        }
        if size == 0 {
            // Allocated, not sparse: on a filesystem without room (a full /dev/shm) a
            // sparse file would map, and the first write to a page it cannot back would
            // raise SIGBUS and kill the process. Refuse here instead.
            let end =
                libc::off_t::try_from(len).map_err(|_| SharedStateError::BadCapacity(capacity))?;
            // SAFETY: `file` is open for writing; posix_fallocate only allocates its blocks.
            let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, end) };
            if rc != 0 {
                // Leave it empty (we hold the lock): the next opener starts over.
                let _ = file.set_len(0);
                return Err(io(path)(std::io::Error::from_raw_os_error(rc)));
            }
        }
        // SAFETY: mapping `len` bytes of a file we just checked (or set) to be `len`
        // bytes long, shared and read-write; the result is checked for MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io(path)(std::io::Error::last_os_error()));
        }
        let base = base.cast::<u8>();
        let unmap = |e| {
            // SAFETY: unmapping the mapping made just above, not used after.
            unsafe { libc::munmap(base.cast(), len) };
            e
        };
        if header(base, H_INIT).load(Ordering::Acquire) != READY {
            // New, or its creator died before finishing: (re)initialize under the lock.
            // SAFETY: we hold the exclusive flock and no process uses an uninitialized
            // region (openers wait on the lock, then see READY), so zeroing is unshared.
            unsafe { std::ptr::write_bytes(base, 0, len) };
            let seeds = RandomState::new();
            let s: [u64; 4] = std::array::from_fn(|i| seeds.hash_one(i as u64 ^ 0x9e37));
            header(base, H_MAGIC).store(MAGIC, Ordering::Relaxed);
            header(base, H_VERSION).store(LAYOUT_VERSION, Ordering::Relaxed);
            header(base, H_LAYOUT).store(layout, Ordering::Relaxed);
            for (i, v) in s.iter().enumerate() {
                header(base, H_SEEDS + i).store(*v, Ordering::Relaxed);
            }
            header(base, H_GROUPS).store(groups as u64, Ordering::Relaxed);
            header(base, H_INIT).store(READY, Ordering::Release);
        }
        for (word, what, expected) in [
            (H_MAGIC, "magic", MAGIC),
            (H_VERSION, "layout version", LAYOUT_VERSION),
            (
                H_LAYOUT,
                "layout hash (capacity/algorithm/slot size)",
                layout,
            ),
            (H_GROUPS, "group count", groups as u64),
        ] {
            let found = header(base, word).load(Ordering::Acquire);
            if found != expected {
                return Err(unmap(SharedStateError::Mismatch {
                    path: path.to_path_buf(),
                    what,
                    found,
                    expected,
                }));
            }
        }
        let s: [u64; 4] =
            std::array::from_fn(|i| header(base, H_SEEDS + i).load(Ordering::Relaxed));
        let claims_len = (groups * 8).div_ceil(64) * 64;
        // SAFETY: offsets inside the `len`-byte mapping (see `region_size`); the claim
        // words are 8-aligned and the slots 64-aligned since HEADER and claims_len are
        // multiples of 64 and the mapping is page-aligned.
        let (claims, slots) = unsafe {
            (
                base.add(HEADER).cast::<AtomicU64>().cast_const(),
                base.add(HEADER + claims_len).cast::<Slot>().cast_const(),
            )
        };
        Ok(SharedStore {
            base,
            len,
            groups,
            claims,
            slots,
            alg,
            hasher: RandomState::with_seeds(s[0], s[1], s[2], s[3]),
            fast,
            capacity,
            path: path.to_path_buf(),
            _file: file.try_clone().map_err(|e| unmap(io(path)(e)))?,
            _key: PhantomData,
        })
    }

    /// The store's capacity in keys.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn hash(&self, key: &K) -> (usize, u64) {
        let h = self.hasher.hash_one(key);
        let fp = (h.rotate_left(32).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
        // The home group by multiply-high (no division): uniform over the groups.
        let home = ((u128::from(h) * self.groups as u128) >> 64) as usize;
        (home, fp)
    }

    #[inline]
    fn table(&self) -> Table<'_, A, Process> {
        // SAFETY: `claims` and `slots` point at `groups` claim words and
        // `groups * SLOTS_PER_GROUP` slots inside the mapping, which lives as long as
        // `self`; both are only accessed atomically.
        let (claims, slots) = unsafe {
            (
                std::slice::from_raw_parts(self.claims, self.groups),
                std::slice::from_raw_parts(self.slots, self.groups * SLOTS_PER_GROUP),
            )
        };
        Table {
            claims,
            slots,
            evicted: header(self.base, H_EVICTED),
            displaced: header(self.base, H_DISPLACED),
            occupied: header(self.base, H_OCCUPIED),
            groups: self.groups,
            alg: &self.alg,
            fast: self.fast,
            capacity: self.capacity,
            owners: Process,
        }
    }

    /// Decides a request of `cost` for `key` at `now` (in the algorithm's clock unit).
    /// A new key that finds no free slot displaces the key with the least debt (see the
    /// [module docs](self)); `Err(StoreFull)` when every candidate is being limited.
    #[inline]
    pub fn decide(&self, key: &K, now: u64, cost: u64) -> Result<Decision, StoreFull> {
        let (home, fp) = self.hash(key);
        self.table().decide(home, fp, now, cost, true)
    }

    /// As [`decide`](Self::decide) but never displaces a key: `Err(StoreFull)` when no
    /// slot of a new key's path is empty or fresh.
    #[inline]
    pub fn try_decide(&self, key: &K, now: u64, cost: u64) -> Result<Decision, StoreFull> {
        let (home, fp) = self.hash(key);
        self.table().decide(home, fp, now, cost, false)
    }

    /// Applies `f` to `key`'s state ([`crate::FRESH`] when absent) and writes the next
    /// state it returns, as the private store's `update`: a new key whose first state is
    /// written takes a free slot, displacing the least debt when `displace` and none is
    /// free (see the [module docs](self)).
    /// `f` may run more than once; it must be a pure function of the state.
    #[inline]
    pub fn update<R>(
        &self,
        key: &K,
        now: u64,
        displace: bool,
        f: impl FnMut(u64) -> (R, Option<u64>),
    ) -> Result<R, StoreFull> {
        let (home, fp) = self.hash(key);
        self.table().update(home, fp, now, displace, f)
    }

    /// Rewrites `key`'s state if it is stored (`f` returns the next state, or `None` to
    /// leave it); returns whether it was stored.
    #[inline]
    pub fn modify(&self, key: &K, f: impl FnMut(u64) -> Option<u64>) -> bool {
        let (home, fp) = self.hash(key);
        self.table().modify(home, fp, f)
    }

    /// `key`'s state, `None` if it is not stored.
    #[inline]
    pub fn get(&self, key: &K) -> Option<u64> {
        let (home, fp) = self.hash(key);
        self.table().find(home, fp).map(|(_, v)| v as u64)
    }

    /// Forgets `key`'s history (its state becomes fresh; the slot is reused later).
    pub fn reset(&self, key: &K) -> bool {
        self.modify(key, |s| (s != crate::FRESH).then_some(crate::FRESH))
    }

    /// Rewrites every stored state with `f` (`None`: leave it), each by one
    /// compare-exchange; returns how many changed.
    pub fn remap(&self, f: impl Fn(u64) -> Option<u64>) -> usize {
        self.table().remap(f)
    }

    /// Keys stored (live or fresh, not yet reused): slots taken since the region was
    /// created (all processes; one counter, no scan). A process killed between taking
    /// a slot and counting it leaves the count one short.
    pub fn len(&self) -> usize {
        usize::try_from(header(self.base, H_OCCUPIED).load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One of the region's [`PARAMS`] words for its users (e.g. the rate its states are
    /// expressed in), 0 in a new region.
    pub fn param(&self, i: usize) -> u64 {
        header(self.base, H_PARAMS + i.min(PARAMS - 1)).load(Ordering::Acquire)
    }

    /// A [`param`](Self::param) word itself, for callers that move it atomically
    /// (`fetch_or`, `fetch_add`) across processes.
    pub fn param_word(&self, i: usize) -> &AtomicU64 {
        header(self.base, H_PARAMS + i.min(PARAMS - 1))
    }

    /// Sets a [`param`](Self::param) word; callers coordinate through
    /// [`locked`](Self::locked).
    pub fn set_param(&self, i: usize, value: u64) {
        header(self.base, H_PARAMS + i.min(PARAMS - 1)).store(value, Ordering::Release);
    }

    /// Runs `f` holding the region file's exclusive lock (the one [`open`](Self::open)
    /// takes), so that one process at a time re-expresses the region's states.
    pub fn locked<R>(&self, f: impl FnOnce(&Self) -> R) -> Result<R, SharedStateError> {
        with_flock(&self._file, &self.path, || f(self))
    }

    /// The region's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keys displaced to make room since the region was created (all processes).
    pub fn displaced(&self) -> u64 {
        header(self.base, H_DISPLACED).load(Ordering::Relaxed)
    }

    /// Fresh slots reused in place since the region was created (all processes).
    pub fn evictions(&self) -> u64 {
        header(self.base, H_EVICTED).load(Ordering::Relaxed)
    }

    /// Total slots (at least `capacity / 0.8`).
    pub fn slots(&self) -> usize {
        self.groups * SLOTS_PER_GROUP
    }

    /// Clears the insert claims held by processes that are gone (what the next insert
    /// into such a group does anyway, by the same compare-exchange); returns how many.
    /// For tests and `tollgate check`, before [`verify`](Self::verify).
    pub fn release_dead_claims(&self) -> usize {
        self.table().release_dead_claims()
    }

    /// Checks the region's invariants (tests and `tollgate check`): no fingerprint twice
    /// and no claim held by a dead process. Returns the live keys.
    pub fn verify(&self) -> Result<usize, String> {
        self.table().verify()
    }
}

/// The hash seeds every process attached to one shared state uses, kept in the small
/// file at `path` (created with fresh random seeds by the first opener, under an
/// exclusive `flock`, and read by every later one): what makes every worker compute the
/// same fingerprint for the same key, while clients still cannot predict them. The file
/// holds a magic number, a version and the seeds, nothing else (no key, no state).
pub fn shared_seeds(path: impl AsRef<Path>) -> Result<[u64; 8], SharedStateError> {
    use std::io::{Read, Seek, SeekFrom, Write};
    const SEEDS_MAGIC: u64 = u64::from_le_bytes(*b"TOLLSEED");
    let path = path.as_ref();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(path))?;
    // The closure writes through `file`; the lock is on a duplicate of its descriptor
    // (the same open file description, so the same lock).
    let lock = file.try_clone().map_err(io(path))?;
    with_flock(&lock, path, || {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        let word = |i: usize| {
            bytes
                .get(i * 8..i * 8 + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        if bytes.len() == 80 && word(0) == Some(SEEDS_MAGIC) {
            if word(1) != Some(LAYOUT_VERSION) {
                return Err(SharedStateError::Mismatch {
                    path: path.to_path_buf(),
                    what: "layout version",
                    found: word(1).unwrap_or(0),
                    expected: LAYOUT_VERSION,
                });
            }
            return Ok(std::array::from_fn(|i| word(2 + i).unwrap_or(0)));
        }
        // New, or its creator died before writing it whole (a valid file is never
        // rewritten and is only read under the lock, so nobody uses partial seeds).
        let r = RandomState::new();
        let seeds: [u64; 8] = std::array::from_fn(|i| r.hash_one(i as u64 ^ 0x5eed));
        let mut out = Vec::with_capacity(80);
        out.extend_from_slice(&SEEDS_MAGIC.to_le_bytes());
        out.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        for v in seeds {
            out.extend_from_slice(&v.to_le_bytes());
        }
        file.set_len(0).map_err(io(path))?;
        file.seek(SeekFrom::Start(0)).map_err(io(path))?;
        file.write_all(&out).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        Ok(seeds)
    })?
}

/// A keyed limiter over a [`SharedStore`], with the check API of
/// [`crate::KeyedRateLimiter`] and the same decisions for the same sequence of checks
/// (a new key that finds no free slot is refused with [`StoreFull`], never displaced,
/// as the private limiter's `check`). Its clock must read the same time in every
/// process: the default is [`UnixClock`] (Unix nanoseconds).
#[derive(Debug)]
pub struct SharedKeyed<K: ?Sized, A: Algorithm, C: Clock = UnixClock> {
    store: SharedStore<K, A>,
    clock: C,
}

impl<K: Hash + ?Sized, A: Algorithm> SharedKeyed<K, A, UnixClock> {
    /// Opens the region at `path` (see [`SharedStore::open`]) on a [`UnixClock`].
    pub fn open(path: impl AsRef<Path>, alg: A, capacity: usize) -> Result<Self, SharedStateError> {
        Self::with_clock(path, alg, capacity, UnixClock::new())
    }
}

impl<K: Hash + ?Sized, A: Algorithm, C: Clock> SharedKeyed<K, A, C> {
    /// Opens the region at `path` for `capacity` keys, reading `clock`.
    pub fn with_clock(
        path: impl AsRef<Path>,
        alg: A,
        capacity: usize,
        clock: C,
    ) -> Result<Self, SharedStateError> {
        Ok(SharedKeyed {
            store: SharedStore::open(path, capacity, alg)?,
            clock,
        })
    }

    /// The underlying shared store (capacity, counters, [`SharedStore::verify`]).
    pub fn store(&self) -> &SharedStore<K, A> {
        &self.store
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Decides a request of cost 1 for `key` now.
    pub fn check(&self, key: &K) -> Result<Decision, KeyedError> {
        self.check_n_at(key, 1, self.clock.now())
    }

    /// Decides a request of cost 1 for `key` at `now`.
    pub fn check_at(&self, key: &K, now: u64) -> Result<Decision, KeyedError> {
        self.check_n_at(key, 1, now)
    }

    /// Decides a request of weight `cost` for `key` now.
    pub fn check_n(&self, key: &K, cost: u64) -> Result<Decision, KeyedError> {
        self.check_n_at(key, cost, self.clock.now())
    }

    /// Decides a request of weight `cost` for `key` at `now`. Errors: the cost can never
    /// pass, or the key is new and no slot of its path is free.
    pub fn check_n_at(&self, key: &K, cost: u64, now: u64) -> Result<Decision, KeyedError> {
        check_cost(&self.store.alg, cost)?;
        Ok(self.store.try_decide(key, now, cost)?)
    }
}

/// The owners of claims in a real region: processes.
struct Process;

impl Owners for Process {
    fn me(&self) -> u32 {
        std::process::id()
    }

    fn dead(&self, pid: u32) -> bool {
        // SAFETY: kill with signal 0 only checks for the process's existence.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    fn secs(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Gcra, Rate};

    fn alg() -> Gcra {
        Gcra::new(Rate::new(10, std::time::Duration::from_secs(60)).unwrap())
    }

    #[test]
    fn reattach_keeps_state_and_mismatch_is_refused() {
        let dir = std::env::temp_dir().join(format!("tollgate-shm-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let a: SharedStore<&str, Gcra> = SharedStore::open(&dir, 100, alg()).unwrap();
        let allowed = (0..30)
            .filter(|_| a.decide(&"k", 0, 1).unwrap().allowed())
            .count();
        assert_eq!(allowed, 10);
        drop(a);
        let b: SharedStore<&str, Gcra> = SharedStore::open(&dir, 100, alg()).unwrap();
        assert!(
            !b.decide(&"k", 0, 1).unwrap().allowed(),
            "re-attach sees the old state"
        );
        assert_eq!(b.verify(), Ok(1));
        let e = SharedStore::<&str, Gcra>::open(&dir, 200, alg()).unwrap_err();
        assert!(matches!(e, SharedStateError::Mismatch { .. }), "{e}");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn many_keys_are_found() {
        let dir = std::env::temp_dir().join(format!("tollgate-shm-keys-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let s: SharedStore<u64, Gcra> = SharedStore::open(&dir, 1000, alg()).unwrap();
        for k in 0..1000u64 {
            assert!(s.decide(&k, 0, 1).unwrap().allowed());
        }
        for k in 0..1000u64 {
            assert_eq!(s.decide(&k, 0, 0).unwrap().remaining, 9, "key {k}");
        }
        assert_eq!(s.verify(), Ok(1000));
        assert_eq!(s.len(), 1000, "the occupied count, without a scan");
        std::fs::remove_file(&dir).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tollgate-shm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn holds_capacity_then_full_never_loses_a_key_and_reuses_fresh_slots() {
        let path = tmp("full");
        let s: SharedStore<u64, Gcra> = SharedStore::open(&path, 1000, alg()).unwrap();
        assert_eq!(s.slots(), 1252);
        // Every key at its limit (cost 10 of 10): nothing may be displaced.
        let mut full = 0;
        let mut stored = Vec::new();
        for k in 0..s.slots() as u64 * 2 {
            match s.try_decide(&k, 0, 10) {
                Ok(d) => {
                    assert!(d.allowed());
                    stored.push(k);
                }
                Err(_) => full += 1,
            }
        }
        assert!(full > 0);
        assert!(stored.len() >= 1000, "{} keys held", stored.len());
        assert_eq!(s.verify(), Ok(stored.len()));
        // `decide` cannot displace a limited key either.
        assert!(s.decide(&(1 << 40), 0, 1).is_err());
        assert_eq!(s.displaced(), 0);
        for k in &stored {
            assert!(
                !s.decide(k, 0, 1).unwrap().allowed(),
                "key {k} kept its state"
            );
        }
        // A minute later every key is fresh: a new key reuses a slot in place.
        let later = 60_000_000_000;
        assert!(s.try_decide(&(1 << 40), later, 1).unwrap().allowed());
        assert_eq!(s.evictions(), 1);
        assert_eq!(s.verify(), Ok(stored.len()));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_full_group_displaces_the_least_debt_and_never_a_limited_key() {
        let path = tmp("displace");
        // Capacity 1: one group of four slots.
        let s: SharedStore<u64, Gcra> = SharedStore::open(&path, 1, alg()).unwrap();
        assert_eq!(s.slots(), 4);
        for (k, cost) in [(1, 3), (2, 1), (3, 10), (4, 2)] {
            assert!(s.decide(&k, 0, cost).unwrap().allowed());
        }
        assert!(
            s.try_decide(&5, 0, 1).is_err(),
            "try_decide never displaces"
        );
        assert!(s.decide(&5, 0, 4).unwrap().allowed());
        assert_eq!(s.displaced(), 1);
        let left = |k: u64| s.decide(&k, 0, 0).unwrap().remaining;
        // Key 2 (least debt) went; a probe does not insert it again.
        assert_eq!(left(2), 10, "key 2 was displaced and comes back fresh");
        assert_eq!((left(1), left(3), left(4), left(5)), (7, 0, 8, 6));
        assert_eq!(s.displaced(), 1);
        // Only limited keys left: full.
        for k in [1, 4, 5] {
            let r = s.decide(&k, 0, 0).unwrap().remaining;
            assert!(s.decide(&k, 0, r).unwrap().allowed());
        }
        assert!(s.decide(&9, 0, 1).is_err());
        assert_eq!(s.verify(), Ok(4));
        std::fs::remove_file(&path).unwrap();
    }

    mod same_as_private {
        use super::*;
        use crate::KeyedGcraLimiter;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn shared_keyed_decides_as_the_private_keyed_limiter(
                per in 1u64..20,
                cap in prop_oneof![Just(1usize), Just(16)],
                ops in proptest::collection::vec((0u64..12, 0u64..25, 0u64..3_000_000_000), 1..200),
            ) {
                let rate = Rate::new(per, std::time::Duration::from_secs(60)).unwrap();
                let path = tmp(&format!("prop-{per}-{cap}-{}", ops.len()));
                let shared: SharedKeyed<u64, Gcra, crate::ManualClock> =
                    SharedKeyed::with_clock(&path, Gcra::new(rate), cap, crate::ManualClock::new(0))
                        .unwrap();
                // Capacity 1 is one group of four slots in both: the store fills and fresh
                // slots are reused, so StoreFull and eviction are compared too.
                let private = KeyedGcraLimiter::<u64>::new(Gcra::new(rate), cap);
                let mut now = 1_000_000_000u64;
                for (key, cost, dt) in ops {
                    now += dt;
                    prop_assert_eq!(shared.check_n_at(&key, cost, now), private.check_n_at(&key, cost, now));
                }
                drop(shared);
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
}

//! Host-shared limit state (`[state] shared = "/dev/shm/tollgate-<name>"`): every process
//! that loads a policy naming the same path decides each key of a `"memory"` limit
//! against one state, kept in a file-backed shared mapping
//! ([`tollgate_core::shared::SharedStore`]) instead of the process's own store.
//!
//! # Files
//! * `<shared>.seeds`: the seeds every process fingerprints keys with
//!   ([`tollgate_core::shared::shared_seeds`]), so that a key has one fingerprint on the
//!   whole host.
//! * `<shared>.limit-<limit>`: the keys of limit `<limit>` (its name, with characters
//!   other than letters, digits, `-` and `_` written as `_` and a hash of the name
//!   appended when any was; the `limit-` prefix keeps a limit named `quota` or `seeds`
//!   apart from the files below);
//! * `<shared>.limit-<limit>.o<hash>`: the keys of one of its overrides (the hash is a keyed
//!   hash of the override's match values under the shared seeds: no value appears in a
//!   file name).
//!
//! # The rate a region's states are expressed in
//! A region's identity (checked at attach: a mismatch is refused with a clear error)
//! is its capacity and the algorithm kind; the rate is kept in the region's header
//! words. A process that attaches with a different rate (a reload, or nginx starting
//! new workers with a new policy) re-expresses every stored state under the file lock
//! with the in-process reload's rule ([`MemoryBackend::carry_over`]: used capacity is
//! kept; a changed sliding window starts every key fresh) and records the new rate, so
//! the next process with the same policy finds nothing to do. Processes still running
//! the old policy (an old worker draining) read the re-expressed states with the old
//! rate until they exit.
//!
//! [`MemoryBackend::carry_over`]: crate::backend::MemoryBackend::carry_over

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tollgate_core::shared::{shared_seeds, SharedStateError, SharedStore};
use tollgate_core::{Algorithm, Decision, Fingerprinter, InsufficientCapacity, Rate};

use crate::backend::{
    acquired, admit_step, carry_into, full_answer, held_state, rescale, AnyAlgorithm, BackendError,
    CarriedKey, Carry, LimitBackend, LimitKey, Undo,
};
use crate::metrics::StoreCounts;
use crate::policy::{AlgorithmKind, OnFull};

/// Companies the shared quota region holds for a policy of `companies`: room for four
/// times as many (companies added at run time), at least 65,536, rounded up to a power
/// of two (so that adding a few companies to the policy keeps the region's size).
pub fn quota_capacity(companies: usize) -> usize {
    companies.saturating_mul(4).max(65_536).next_power_of_two()
}

/// Values the shared revoked set holds: the policy's `max_revoked` automatic ones (at
/// least the default) plus as many for operators' revocations, rounded up to a power of
/// two (so that a small change of `max_revoked` keeps the region's size).
pub fn revoked_capacity(policy: &crate::Policy) -> usize {
    let max = policy
        .revocation
        .as_ref()
        .and_then(|r| r.max_revoked)
        .unwrap_or(crate::policy::DEFAULT_MAX_REVOKED)
        .max(crate::policy::DEFAULT_MAX_REVOKED);
    max.saturating_mul(2).next_power_of_two()
}

/// What a policy's host-shared state takes (`tollgate check` reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedSize {
    /// The `[state] shared` prefix.
    pub prefix: PathBuf,
    /// The files it maps: the seed file, one per `"memory"` limit and override, one for
    /// the quota, one for the revoked set and one for the offender counts.
    pub files: usize,
    /// Their total size in bytes (the shared memory the host gives them).
    pub bytes: u64,
}

/// The size of `policy`'s host-shared state, `None` without `[state] shared`.
pub fn shared_size(policy: &crate::Policy) -> Option<SharedSize> {
    let prefix = policy.state.shared.clone()?;
    let region = |cap: usize| tollgate_core::shared::region_size(cap).unwrap_or(0) as u64;
    let mut files = 1; // the seeds
    let mut bytes = 80u64;
    for l in policy.limits.iter().filter(|l| l.backend == "memory") {
        files += 1 + l.overrides.len();
        bytes = l.overrides.iter().map(|o| region(o.capacity_in(l))).fold(
            bytes.saturating_add(region(l.capacity)),
            u64::saturating_add,
        );
    }
    if let Some(q) = &policy.quota {
        files += 1;
        bytes = bytes.saturating_add(region(quota_capacity(q.companies.len())));
    }
    // The revoked set, always; the offender counts with automatic revocation.
    files += 1;
    bytes = bytes.saturating_add(region(revoked_capacity(policy)));
    if policy.revocation.is_some() {
        files += 1;
        bytes = bytes.saturating_add(region(crate::policy::OFFENDER_CAPACITY));
    }
    Some(SharedSize {
        prefix,
        files,
        bytes,
    })
}

/// The header words of a region holding the rate its states are expressed in.
const P_KIND: usize = 0;
const P_COUNT: usize = 1;
const P_PERIOD: usize = 2;
const P_BURST: usize = 3;

/// A policy's host-shared state: the path prefix and the fingerprinter every attached
/// process shares.
#[derive(Clone)]
pub(crate) struct SharedPlan {
    prefix: PathBuf,
    hasher: Fingerprinter,
}

impl fmt::Debug for SharedPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPlan")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedPlan {
    /// Attaches to the shared state at `prefix`: reads (or creates) its seeds.
    pub(crate) fn open(prefix: &Path) -> Result<Self, String> {
        let seeds = shared_seeds(with_suffix(prefix, "seeds"))
            .map_err(|e| format!("[state] shared = {:?}: {e}", prefix.display()))?;
        Ok(SharedPlan {
            prefix: prefix.to_path_buf(),
            hasher: Fingerprinter::with_seeds(seeds),
        })
    }

    /// The fingerprinter every process of this state shares.
    pub(crate) fn hasher(&self) -> &Fingerprinter {
        &self.hasher
    }

    /// The prefix.
    pub(crate) fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The region file of the quota's counters.
    pub(crate) fn quota_region(&self) -> PathBuf {
        with_suffix(&self.prefix, "quota")
    }

    /// The region file of the revoked set.
    pub(crate) fn revoked_region(&self) -> PathBuf {
        with_suffix(&self.prefix, "revoked")
    }

    /// The region file of the offender counts (automatic revocation).
    pub(crate) fn offenders_region(&self) -> PathBuf {
        with_suffix(&self.prefix, "offenders")
    }

    /// The region file of limit `limit`, or of its override matching `values`.
    pub(crate) fn region(&self, limit: &str, values: Option<&[&str]>) -> PathBuf {
        let base = with_suffix(&self.prefix, &format!("limit-{}", file_name(limit)));
        match values {
            None => base,
            Some(v) => with_suffix(&base, &format!("o{:016x}", self.hasher.of_parts(v) as u64)),
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// A limit name as a file name component: letters, digits, `-` and `_` as they are;
/// anything else (a `/`, a dot, a space) as `_`, with the name's FNV hash appended so
/// that two names never share a file.
fn file_name(name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !name.is_empty() && name.chars().all(plain) {
        return name.to_owned();
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let shown: String = name
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .take(64)
        .collect();
    format!("{shown}-{hash:016x}")
}

/// A limit's state in a host-shared region.
pub struct SharedBackend {
    rate: Rate,
    alg: AnyAlgorithm,
    store: Arc<SharedStore<u128, AnyAlgorithm>>,
    on_full: OnFull,
    full: AtomicU64,
}

impl fmt::Debug for SharedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBackend")
            .field("path", &self.store.path())
            .field("alg", &self.alg)
            .field("capacity", &self.store.capacity())
            .finish()
    }
}

fn kind_word(kind: AlgorithmKind) -> u64 {
    match kind {
        AlgorithmKind::Gcra => 1,
        AlgorithmKind::SlidingWindow => 2,
    }
}

impl SharedBackend {
    /// Attaches to (or creates) the region at `path` for `capacity` keys of `kind` at
    /// `rate`; returns the backend and whether the region held state carried into
    /// `rate` (see the [module docs](self) for a region found at another rate).
    pub fn open(
        path: &Path,
        kind: AlgorithmKind,
        rate: Rate,
        capacity: usize,
        on_full: OnFull,
        now: u64,
    ) -> Result<(Self, bool), String> {
        let alg = AnyAlgorithm::new(kind, rate).map_err(|e| e.to_string())?;
        let layout = format!("engine-limit;kind={}", kind_word(kind));
        let store = SharedStore::open_with_layout(path, capacity, alg, &layout)
            .map_err(|e: SharedStateError| e.to_string())?;
        let carried = store
            .locked(|s| {
                let stored = (
                    s.param(P_KIND),
                    s.param(P_COUNT),
                    s.param(P_PERIOD),
                    s.param(P_BURST),
                );
                let mine = (
                    kind_word(kind),
                    rate.count(),
                    rate.period_nanos(),
                    rate.burst(),
                );
                if stored == mine {
                    return true;
                }
                // The kind is part of the region's layout: a region of another kind was
                // refused at attach, so the stored kind is this one, or 0 (new region).
                let old = Rate::from_nanos(stored.1, stored.2, stored.3)
                    .ok()
                    .and_then(|r| AnyAlgorithm::new(kind, r).ok())
                    .filter(|old| rescale(old, &alg, tollgate_core::FRESH, now).is_some());
                let carried = match old {
                    _ if stored.0 == 0 => true, // nothing stored yet
                    Some(old) => {
                        s.remap(|st| {
                            let next = rescale(&old, &alg, st, now).unwrap_or(st);
                            (next != st).then_some(next)
                        });
                        true
                    }
                    // Another window length: every key starts fresh, as in-process.
                    None => {
                        s.remap(|st| (st != tollgate_core::FRESH).then_some(tollgate_core::FRESH));
                        false
                    }
                };
                s.set_param(P_COUNT, mine.1);
                s.set_param(P_PERIOD, mine.2);
                s.set_param(P_BURST, mine.3);
                s.set_param(P_KIND, mine.0);
                carried
            })
            .map_err(|e| e.to_string())?;
        Ok((
            SharedBackend {
                rate,
                alg,
                store: Arc::new(store),
                on_full,
                full: AtomicU64::new(0),
            },
            carried,
        ))
    }

    /// The region's file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Keys the region holds (a scan of its slots).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the region holds no key.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Checks the region's invariants (see [`SharedStore::verify`]); returns its keys.
    pub fn verify(&self) -> Result<usize, String> {
        self.store.release_dead_claims();
        self.store.verify()
    }

    /// One key's state, to carry into another backend (a reload moving a key between a
    /// limit and its override).
    pub(crate) fn take_key(&self, hash: u128) -> Option<CarriedKey> {
        self.store.get(&hash).map(|state| CarriedKey {
            alg: self.alg,
            state,
        })
    }

    /// Writes a key taken from another backend, its used capacity carried over (see
    /// [`MemoryBackend::put_key`](crate::backend::MemoryBackend::put_key)).
    pub(crate) fn put_key(&self, hash: u128, key: Option<CarriedKey>, now: u64) -> bool {
        match carry_into(&self.alg, key, now) {
            Carry::State(state) => {
                // A region with no room keeps the key fresh: never refused for it.
                let _ = self.store.update(&hash, now, false, |_| ((), Some(state)));
                true
            }
            carry => {
                self.store.reset(&hash);
                matches!(carry, Carry::Fresh)
            }
        }
    }

    fn check_cost(&self, cost: u64) -> Result<(), BackendError> {
        InsufficientCapacity::check(cost, self.alg.capacity()).map_err(BackendError::CannotPass)
    }

    #[cold]
    fn answer_full(&self, cost: u64) -> Decision {
        self.full.fetch_add(1, Ordering::Relaxed);
        full_answer(self.on_full, &self.alg, self.rate, cost)
    }
}

impl LimitBackend for SharedBackend {
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.check_cost(cost)?;
        let alg = &self.alg;
        let updated = self
            .store
            .update(&key.hash, now, true, admit_step(alg, cost, now));
        Ok(acquired(alg, cost, now, updated, || self.answer_full(cost)))
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        let alg = &self.alg;
        self.store
            .modify(&key.hash, |state| undo.revert(alg, state, now));
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        let state = self.store.get(&key.hash).unwrap_or(tollgate_core::FRESH);
        Ok(self.alg.decide(state, now, cost).0)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        self.store.reset(&key.hash);
    }

    fn rate(&self) -> Rate {
        self.rate
    }

    fn hold_until(&self, key: &LimitKey<'_>, until: u64, now: u64) -> bool {
        let Some(held) = held_state(&self.alg, until) else {
            return false;
        };
        if until <= now {
            return true;
        }
        self.store
            .update(&key.hash, now, false, |state| {
                ((), (held > state).then_some(held))
            })
            .is_ok()
    }

    fn store_counts(&self) -> Option<StoreCounts> {
        Some(StoreCounts {
            keys: self.store.len() as u64,
            capacity: self.store.capacity() as u64,
            evictions: self.store.evictions(),
            displaced: self.store.displaced(),
            full_answers: self.full.load(Ordering::Relaxed),
        })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

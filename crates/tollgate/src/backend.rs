//! Where a limit's state lives: the [`LimitBackend`] trait, and [`MemoryBackend`], the
//! in-memory default built on tollgate-core's keyed store.
//!
//! The engine decides several limits together, all or nothing: it [`acquire`]s each
//! limit in turn and, if a later one denies, gives back what the earlier ones took with
//! [`undo`]. A backend only has to make those two operations atomic per key; a Redis
//! backend implements the same trait with scripts, and plugs in per limit by name
//! (`backend = "redis"` in the policy; [`Engine::builder`](crate::Engine::builder)
//! registers it).
//!
//! [`acquire`]: LimitBackend::acquire
//! [`undo`]: LimitBackend::undo

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tollgate_core::{
    Algorithm, Decision, Gcra, InsufficientCapacity, KeyedStore, Rate, SlidingWindow, StoreFull,
};

use crate::metrics::{BackendHealth, StoreCounts};
pub use crate::policy::FailurePolicy;
use crate::policy::{AlgorithmKind, OnFull};

/// A limit key: the 128-bit hash of the values of the attributes the limit keys on,
/// under per-engine random seeds (see [`Fingerprinter`](tollgate_core::Fingerprinter)), plus the
/// values themselves for backends that need them (a remote store builds its own key).
#[derive(Clone, Copy, Debug)]
pub struct LimitKey<'a> {
    /// The hash. The in-memory backend stores it as it is, without hashing it again
    /// (tollgate-core's `KeyedStore::update_prehashed`): it must be a keyed fingerprint
    /// (uniformly random to a client), as the engine's are.
    pub hash: u128,
    /// The attribute values, in the order of the limit's `key` (absent ones are empty).
    pub parts: &'a [&'a str],
}

/// What an allowed acquire took, to give it back with [`LimitBackend::undo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    /// The cost taken.
    pub cost: u64,
    /// The state before (in-memory backends; 0 otherwise).
    pub before: u64,
    /// The state written (in-memory backends; 0 otherwise).
    pub after: u64,
}

impl Undo {
    /// The state that gives back what this acquire took from a key now in `state`:
    /// exactly the state before when nobody touched the key since, else `state` refunded
    /// by the cost; `None` when nothing changes. The rule every in-process store
    /// follows.
    pub fn revert(&self, alg: &impl Algorithm, state: u64, now: u64) -> Option<u64> {
        if state == self.after {
            Some(self.before)
        } else {
            let next = alg.refund(state, now, self.cost);
            (next != state).then_some(next)
        }
    }
}

/// Why a backend could not decide.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The cost exceeds the limit's capacity: the request can never pass.
    CannotPass(InsufficientCapacity),
    /// The key is new and the in-memory store has no room left.
    StoreFull,
    /// The backend is unreachable or failed (remote backends).
    Unavailable(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::CannotPass(e) => e.fmt(f),
            BackendError::StoreFull => f.write_str(
                "the limit's key store is full: a new key cannot be tracked until idle keys \
                 expire (raise the limit's capacity)",
            ),
            BackendError::Unavailable(why) => write!(f, "backend unavailable: {why}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// The state behind one limit.
pub trait LimitBackend: Send + Sync + fmt::Debug {
    /// Decides a request of `cost` for `key` at `now` (Unix nanoseconds) and, if it is
    /// allowed, takes the cost. Returns the decision and, when something was taken, what
    /// [`undo`](Self::undo) needs to give it back.
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError>;

    /// Gives back what an allowed [`acquire`](Self::acquire) took. If nothing else
    /// touched the key meanwhile, the key's state is exactly as before the acquire.
    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64);

    /// What `acquire` would answer, taking nothing.
    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError>;

    /// Forgets `key`'s history.
    fn reset(&self, key: &LimitKey<'_>);

    /// The rate this backend enforces.
    fn rate(&self) -> Rate;

    /// Holds `key` back until `until` (Unix nanoseconds; `now` is the current time): no
    /// request is admitted before `until`, the first request of cost 1 is admitted at
    /// `until`, and capacity refills at the limit's rate from then on. A key already held
    /// longer is left as it is. Returns whether the backend did it.
    ///
    /// Client-side pacing calls this when the API it paces answers 429 with
    /// `Retry-After`, so the local limiter respects the provider's limit. The default
    /// does nothing and returns `false`; the in-memory backend holds GCRA limits (a
    /// sliding window's two counts cannot express "nothing before `until`").
    fn hold_until(&self, key: &LimitKey<'_>, until: u64, now: u64) -> bool {
        let _ = (key, until, now);
        false
    }

    /// What the engine answers for this limit when this backend returns
    /// [`BackendError::Unavailable`]. The engine applies it, never the backend: a backend
    /// only reports that it could not decide. The default is [`FailurePolicy::Closed`]
    /// (refuse as unavailable); a factory honours the limit's `on_failure` setting
    /// ([`LimitSpec::on_failure`](crate::policy::LimitSpec::on_failure)) when it builds
    /// the backend.
    fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy::Closed
    }

    /// Keys the engine's fallback limiter holds for this limit under
    /// [`FailurePolicy::Fallback`] (default 65,536).
    fn fallback_capacity(&self) -> usize {
        65_536
    }

    /// The backend's own fallback limiter under [`FailurePolicy::Fallback`], used by the
    /// engine instead of its in-memory one when the backend returns
    /// [`BackendError::Unavailable`]. A remote backend provides one that knows what the
    /// remote store last said about each key (so a stall does not hand each instance a
    /// fresh burst) or runs at the instance's share of the limit. The engine treats its
    /// answers as it treats its own fallback's: the decision is flagged
    /// [`degraded`](crate::EngineDecision::degraded), and what it took is given back
    /// through it ([`undo`](Self::undo)) when a later limit refuses the request. The
    /// default is `None` (the engine's own: every key starts with a full burst).
    fn own_fallback(&self) -> Option<&dyn LimitBackend> {
        None
    }

    /// The backend as [`Any`](std::any::Any), for a
    /// [`CombinedBackend`](crate::CombinedBackend) that recognizes its own backends. The
    /// default is `None`.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The occupancy of the backend's in-memory key store, for metrics. The default is
    /// `None` (the backend keeps no keys in this process).
    fn store_counts(&self) -> Option<StoreCounts> {
        None
    }

    /// The health of the remote store behind this backend (breaker, calls, errors,
    /// latency), for metrics. The default is `None` (nothing remote).
    fn store_health(&self) -> Option<BackendHealth> {
        None
    }
}

/// GCRA or the sliding window, behind one [`Algorithm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyAlgorithm {
    /// GCRA.
    Gcra(Gcra),
    /// Sliding-window counter.
    Window(SlidingWindow),
}

impl AnyAlgorithm {
    /// The algorithm of `kind` at `rate`.
    pub fn new(kind: AlgorithmKind, rate: Rate) -> Result<Self, tollgate_core::WindowError> {
        Ok(match kind {
            AlgorithmKind::Gcra => AnyAlgorithm::Gcra(Gcra::new(rate)),
            AlgorithmKind::SlidingWindow => AnyAlgorithm::Window(SlidingWindow::new(rate)?),
        })
    }
}

impl Algorithm for AnyAlgorithm {
    #[inline]
    fn capacity(&self) -> u64 {
        match self {
            AnyAlgorithm::Gcra(a) => a.capacity(),
            AnyAlgorithm::Window(a) => a.capacity(),
        }
    }

    #[inline]
    fn decide(&self, state: u64, now: u64, cost: u64) -> (Decision, Option<u64>) {
        match self {
            AnyAlgorithm::Gcra(a) => a.decide(state, now, cost),
            AnyAlgorithm::Window(a) => a.decide(state, now, cost),
        }
    }

    #[inline]
    fn admit(&self, state: u64, now: u64, cost: u64) -> Option<u64> {
        match self {
            AnyAlgorithm::Gcra(a) => a.admit(state, now, cost),
            AnyAlgorithm::Window(a) => a.admit(state, now, cost),
        }
    }

    #[inline]
    fn refund(&self, state: u64, now: u64, cost: u64) -> u64 {
        match self {
            AnyAlgorithm::Gcra(a) => a.refund(state, now, cost),
            AnyAlgorithm::Window(a) => a.refund(state, now, cost),
        }
    }

    #[inline]
    fn is_fresh(&self, state: u64, now: u64) -> bool {
        match self {
            AnyAlgorithm::Gcra(a) => a.is_fresh(state, now),
            AnyAlgorithm::Window(a) => a.is_fresh(state, now),
        }
    }

    #[inline]
    fn debt(&self, state: u64, now: u64) -> Option<u64> {
        match self {
            AnyAlgorithm::Gcra(a) => a.debt(state, now),
            AnyAlgorithm::Window(a) => a.debt(state, now),
        }
    }
}

/// One key's state as [`MemoryBackend::take_key`] took it: the raw state and the
/// algorithm (and rate) it is expressed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarriedKey {
    pub(crate) alg: AnyAlgorithm,
    pub(crate) state: u64,
}

/// `state` of `old` re-expressed under `new` at `now`, keeping the used capacity in cost
/// units: a GCRA backlog `tat - now` is re-expressed in the new emission interval (a
/// fresh state stays as it is); a sliding-window state carries as it is when the
/// window length is the same. `None` when the algorithms differ or the windows do.
pub(crate) fn rescale(old: &AnyAlgorithm, new: &AnyAlgorithm, state: u64, now: u64) -> Option<u64> {
    match (old, new) {
        (AnyAlgorithm::Window(o), AnyAlgorithm::Window(n)) => {
            (o.window() == n.window()).then_some(state)
        }
        (AnyAlgorithm::Gcra(o), AnyAlgorithm::Gcra(n)) => {
            let (t_old, t_new) = (o.emission_interval(), n.emission_interval());
            if state <= now || t_old == t_new {
                return Some(state);
            }
            let units = u128::from(state - now).div_ceil(u128::from(t_old));
            let backlog = units * u128::from(t_new);
            Some(u64::try_from(u128::from(now) + backlog).unwrap_or(u64::MAX))
        }
        _ => None,
    }
}

/// What a limit answers for a new key when its store is truly full: `on_full`'s answer
/// (nothing is taken).
pub(crate) fn full_answer(on_full: OnFull, alg: &AnyAlgorithm, rate: Rate, cost: u64) -> Decision {
    let limit = alg.capacity();
    match on_full {
        OnFull::Allow => Decision {
            limit,
            remaining: limit.saturating_sub(cost),
            retry_after: 0,
            reset_after: 0,
        },
        OnFull::Deny => Decision {
            limit,
            remaining: 0,
            // The time a key needs to earn the request's cost back.
            retry_after: rate.emission_interval_nanos().saturating_mul(cost.max(1)),
            reset_after: 0,
        },
    }
}

/// The GCRA state that admits cost 1 exactly at `until` and nothing before (`None` for
/// other algorithms): a TAT of `until + tau - T`, since the admission test is
/// `max(tat, now) + T <= now + tau`.
pub(crate) fn held_state(alg: &AnyAlgorithm, until: u64) -> Option<u64> {
    let AnyAlgorithm::Gcra(gcra) = alg else {
        return None;
    };
    Some(until.saturating_add(gcra.tolerance() - gcra.emission_interval()))
}

/// The admission step of an acquire, run in a store's compare-exchange loop: the state
/// it read and the state to write (`None`: denied, or nothing changes).
#[inline(always)]
pub(crate) fn admit_step(
    alg: &AnyAlgorithm,
    cost: u64,
    now: u64,
) -> impl FnMut(u64) -> ((u64, Option<u64>), Option<u64>) + '_ {
    move |state| {
        let next = alg.admit(state, now, cost);
        ((state, next), next)
    }
}

/// An acquire's answer from what the store's update of [`admit_step`] returned: the
/// decision computed once from the state it was based on, and what to undo; `full`
/// answers a truly full store (nothing taken). The rule every in-host store follows.
#[inline(always)]
pub(crate) fn acquired(
    alg: &AnyAlgorithm,
    cost: u64,
    now: u64,
    updated: Result<(u64, Option<u64>), StoreFull>,
    full: impl FnOnce() -> Decision,
) -> (Decision, Option<Undo>) {
    let (before, after) = match updated {
        Ok(r) => r,
        Err(StoreFull { .. }) => return (full(), None),
    };
    (
        alg.decide(before, now, cost).0,
        after.map(|after| Undo {
            cost,
            before,
            after,
        }),
    )
}

/// What a key taken from another backend ([`MemoryBackend::take_key`]) becomes in a
/// store of `alg` at `now`.
pub(crate) enum Carry {
    /// It held no state: reset it here.
    Fresh,
    /// Its used capacity cannot be carried (another algorithm or window): reset it.
    Lost,
    /// Write this state.
    State(u64),
}

pub(crate) fn carry_into(alg: &AnyAlgorithm, key: Option<CarriedKey>, now: u64) -> Carry {
    match key {
        None => Carry::Fresh,
        Some(k) => rescale(&k.alg, alg, k.state, now).map_or(Carry::Lost, Carry::State),
    }
}

/// The in-memory backend: tollgate-core's lock-free keyed store and an algorithm.
///
/// The store is shared behind an `Arc` so that a policy reload can give a limit a new
/// rate and keep every key's used capacity ([`MemoryBackend::carry_over`]).
pub struct MemoryBackend {
    rate: Rate,
    kind: AlgorithmKind,
    alg: AnyAlgorithm,
    store: Arc<KeyedStore<u128>>,
    on_full: OnFull,
    /// Requests answered by `on_full` (the store was truly full).
    full: Arc<AtomicU64>,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("alg", &self.alg)
            .field("keys", &self.store.len())
            .field("capacity", &self.store.capacity())
            .finish()
    }
}

impl MemoryBackend {
    /// A backend for `capacity` keys.
    pub fn new(
        kind: AlgorithmKind,
        rate: Rate,
        capacity: usize,
    ) -> Result<Self, tollgate_core::WindowError> {
        Ok(MemoryBackend {
            rate,
            kind,
            alg: AnyAlgorithm::new(kind, rate)?,
            store: Arc::new(KeyedStore::with_capacity(capacity)),
            on_full: OnFull::Allow,
            full: Arc::default(),
        })
    }

    /// This backend answering a truly full store by `on_full` (see [`OnFull`]).
    pub fn with_on_full(mut self, on_full: OnFull) -> Self {
        self.on_full = on_full;
        self
    }

    /// Requests answered by [`OnFull`] because the store was truly full.
    pub fn full_answers(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    /// Live keys displaced to make room for new ones (see tollgate-core's
    /// `KeyedStore::update_displacing`).
    pub fn displaced(&self) -> u64 {
        self.store.displaced()
    }

    /// The same keys under a new rate, carrying every key's *used capacity* over (in
    /// cost units, as of `now`), so raising a limit takes effect at once: a key that had
    /// used 10 of 10 has 10 of 20 left after a raise to 20, and a lowered limit leaves it
    /// correspondingly less. GCRA states are rescaled (the backlog `tat - now` is
    /// re-expressed in the new emission interval); sliding-window counts carry as they
    /// are when the window length is unchanged. `None` (start fresh) when the algorithm
    /// changes or the window length does.
    ///
    /// Decisions racing the carry-over may see a key's old state under the new rate or
    /// the reverse for that one decision (each state is rewritten atomically).
    pub fn carry_over(&self, kind: AlgorithmKind, rate: Rate, now: u64) -> Option<Self> {
        if kind != self.kind {
            return None;
        }
        let alg = AnyAlgorithm::new(kind, rate).ok()?;
        match (self.alg, alg) {
            (AnyAlgorithm::Window(old), AnyAlgorithm::Window(new)) => {
                if old.window() != new.window() {
                    return None;
                }
            }
            (AnyAlgorithm::Gcra(old), AnyAlgorithm::Gcra(new)) => {
                if old.emission_interval() != new.emission_interval() {
                    self.store
                        .remap(|tat| rescale(&self.alg, &alg, tat, now).unwrap_or(tat));
                }
            }
            _ => return None,
        }
        Some(MemoryBackend {
            rate,
            kind,
            alg,
            store: Arc::clone(&self.store),
            on_full: self.on_full,
            full: Arc::clone(&self.full),
        })
    }

    /// One key's state and the algorithm it is expressed in, to carry into another
    /// backend ([`put_key`](Self::put_key)): how a key keeps its used capacity when an
    /// override added, changed or removed by a reload moves it from one limit's state to
    /// another's. `None` if the key holds no state.
    pub fn take_key(&self, hash: u128) -> Option<CarriedKey> {
        self.store.get_prehashed(hash).map(|state| CarriedKey {
            alg: self.alg,
            state,
        })
    }

    /// Writes a key taken from another backend ([`take_key`](Self::take_key)) into
    /// this one, its used capacity carried over in cost units as
    /// [`carry_over`](Self::carry_over) does for a whole store; `None` (`key` forgets
    /// its history here) when it was fresh. Returns whether the used capacity could be
    /// carried (same algorithm and, for the sliding window, the same window); when it
    /// could not, the key starts fresh.
    pub fn put_key(&self, hash: u128, key: Option<CarriedKey>, now: u64) -> bool {
        match carry_into(&self.alg, key, now) {
            Carry::State(state) => {
                let alg = &self.alg;
                // A store with no room keeps the key fresh: never refused for it.
                let _ = self.store.update_prehashed(
                    hash,
                    now,
                    |s, t| alg.is_fresh(s, t),
                    |_| ((), Some(state)),
                );
                true
            }
            carry => {
                self.store.reset_prehashed(hash);
                matches!(carry, Carry::Fresh)
            }
        }
    }

    /// Whether both backends hold their keys in the same store (one was carried over
    /// from the other).
    pub fn shares_store(&self, other: &MemoryBackend) -> bool {
        Arc::ptr_eq(&self.store, &other.store)
    }

    /// Keys the store holds (including idle ones not yet reused).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The key's raw state, for tests (`None` if absent).
    pub fn state(&self, key: &LimitKey<'_>) -> Option<u64> {
        self.store.get_prehashed(key.hash)
    }

    /// The answer for a new key when the store is truly full (nothing is taken).
    #[cold]
    fn answer_full(&self, cost: u64) -> Decision {
        self.full.fetch_add(1, Ordering::Relaxed);
        full_answer(self.on_full, &self.alg, self.rate, cost)
    }

    fn check_cost(&self, cost: u64) -> Result<(), BackendError> {
        InsufficientCapacity::check(cost, self.alg.capacity()).map_err(BackendError::CannotPass)
    }
}

impl LimitBackend for MemoryBackend {
    fn store_counts(&self) -> Option<StoreCounts> {
        Some(StoreCounts {
            keys: self.store.len() as u64,
            capacity: self.store.capacity() as u64,
            evictions: self.store.evictions(),
            displaced: self.store.displaced(),
            full_answers: self.full_answers(),
        })
    }

    #[inline]
    fn acquire(
        &self,
        key: &LimitKey<'_>,
        cost: u64,
        now: u64,
    ) -> Result<(Decision, Option<Undo>), BackendError> {
        self.check_cost(cost)?;
        let alg = &self.alg;
        let updated = self.store.update_displacing_prehashed(
            key.hash,
            now,
            |s, t| alg.is_fresh(s, t),
            |s, t| alg.debt(s, t),
            admit_step(alg, cost, now),
        );
        Ok(acquired(alg, cost, now, updated, || self.answer_full(cost)))
    }

    fn undo(&self, key: &LimitKey<'_>, undo: Undo, now: u64) {
        let alg = &self.alg;
        let _ = self.store.update_prehashed(
            key.hash,
            now,
            |s, t| alg.is_fresh(s, t),
            |state| ((), undo.revert(alg, state, now)),
        );
    }

    fn peek(&self, key: &LimitKey<'_>, cost: u64, now: u64) -> Result<Decision, BackendError> {
        self.check_cost(cost)?;
        let state = self
            .store
            .get_prehashed(key.hash)
            .unwrap_or(tollgate_core::FRESH);
        Ok(self.alg.decide(state, now, cost).0)
    }

    fn reset(&self, key: &LimitKey<'_>) {
        self.store.reset_prehashed(key.hash);
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
        let alg = &self.alg;
        self.store
            .update_prehashed(
                key.hash,
                now,
                |s, t| alg.is_fresh(s, t),
                |state| ((), (held > state).then_some(held)),
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hash: u128) -> LimitKey<'static> {
        LimitKey { hash, parts: &[] }
    }

    #[test]
    fn acquire_then_undo_restores_the_state_exactly() {
        let b = MemoryBackend::new(AlgorithmKind::Gcra, Rate::per_second(10).unwrap(), 64).unwrap();
        let now = 1_000_000_000;
        let (d, u) = b.acquire(&key(1), 3, now).unwrap();
        assert!(d.allowed());
        let before = b.state(&key(1));
        let (_, u2) = b.acquire(&key(1), 2, now).unwrap();
        b.undo(&key(1), u2.unwrap(), now);
        assert_eq!(
            b.state(&key(1)),
            before,
            "exactly as before the second acquire"
        );
        b.undo(&key(1), u.unwrap(), now);
        assert_eq!(b.state(&key(1)), Some(0), "back to fresh");
        // Denied: nothing taken, nothing to undo.
        let (d, u) = b.acquire(&key(2), 10, now).unwrap();
        assert!(d.allowed() && u.is_some());
        let (d, u) = b.acquire(&key(2), 1, now).unwrap();
        assert!(!d.allowed() && u.is_none());
        assert!(matches!(
            b.acquire(&key(3), 11, now),
            Err(BackendError::CannotPass(_))
        ));
    }

    #[test]
    fn undo_after_another_request_refunds() {
        let b = MemoryBackend::new(AlgorithmKind::Gcra, Rate::per_second(10).unwrap(), 64).unwrap();
        let now = 1_000_000_000;
        let (_, u) = b.acquire(&key(1), 4, now).unwrap();
        let (_, _) = b.acquire(&key(1), 4, now).unwrap();
        b.undo(&key(1), u.unwrap(), now);
        // 4 remain taken: 6 more fit, 7 do not.
        assert!(b.peek(&key(1), 6, now).unwrap().allowed());
        assert!(!b.peek(&key(1), 7, now).unwrap().allowed());
    }

    #[test]
    fn hold_until_admits_nothing_before_and_one_at_until() {
        let b =
            MemoryBackend::new(AlgorithmKind::Gcra, "10/s burst 5".parse().unwrap(), 64).unwrap();
        let (now, s) = (1_000_000_000, 1_000_000_000);
        assert!(b.hold_until(&key(1), now + 3 * s, now));
        let d = b.peek(&key(1), 1, now).unwrap();
        assert_eq!(
            d.retry_after,
            3 * s,
            "the first request waits exactly until `until`"
        );
        assert!(!b.peek(&key(1), 1, now + 3 * s - 1).unwrap().allowed());
        let (d, _) = b.acquire(&key(1), 1, now + 3 * s).unwrap();
        assert!(d.allowed());
        assert_eq!(d.remaining, 0, "then the key refills at its rate");
        assert!(!b.peek(&key(1), 1, now + 3 * s).unwrap().allowed());
        assert!(b
            .peek(&key(1), 1, now + 3 * s + 100_000_000)
            .unwrap()
            .allowed());
        // A shorter hold does not shorten a longer one; other keys are untouched.
        assert!(b.hold_until(&key(1), now + s, now));
        assert!(!b
            .peek(&key(1), 1, now + 3 * s + 99_999_999)
            .unwrap()
            .allowed());
        assert_eq!(b.peek(&key(2), 5, now).unwrap().retry_after, 0);
        // A hold in the past changes nothing.
        assert!(b.hold_until(&key(3), now - 1, now));
        assert_eq!(b.state(&key(3)), None);
        // The sliding window cannot be held.
        let w =
            MemoryBackend::new(AlgorithmKind::SlidingWindow, "10/s".parse().unwrap(), 64).unwrap();
        assert!(!w.hold_until(&key(1), now + s, now));
        assert!(w.peek(&key(1), 1, now).unwrap().allowed());
    }

    #[test]
    fn a_new_rate_keeps_the_state() {
        let b = MemoryBackend::new(AlgorithmKind::Gcra, Rate::per_second(10).unwrap(), 64).unwrap();
        let now = 1_000_000_000;
        b.acquire(&key(1), 10, now).unwrap();
        assert!(!b.peek(&key(1), 1, now).unwrap().allowed());
        b.acquire(&key(2), 4, now).unwrap();
        // Raised: takes effect at once, for a key that had used everything.
        let raised = b
            .carry_over(AlgorithmKind::Gcra, Rate::per_second(20).unwrap(), now)
            .unwrap();
        assert!(raised.peek(&key(1), 10, now).unwrap().allowed());
        assert!(!raised.peek(&key(1), 11, now).unwrap().allowed());
        assert!(raised.peek(&key(2), 16, now).unwrap().allowed());
        assert!(!raised.peek(&key(2), 17, now).unwrap().allowed());
        // Lowered to 5: key 2 (4 used) has 1 left; key 1 (10 used) none.
        let lowered = raised
            .carry_over(AlgorithmKind::Gcra, Rate::per_second(5).unwrap(), now)
            .unwrap();
        assert!(lowered.peek(&key(2), 1, now).unwrap().allowed());
        assert!(!lowered.peek(&key(2), 2, now).unwrap().allowed());
        assert!(!lowered.peek(&key(1), 1, now).unwrap().allowed());
        assert!(b
            .carry_over(
                AlgorithmKind::SlidingWindow,
                Rate::per_second(20).unwrap(),
                now
            )
            .is_none());
        let w = MemoryBackend::new(
            AlgorithmKind::SlidingWindow,
            Rate::per_second(10).unwrap(),
            64,
        )
        .unwrap();
        w.acquire(&key(1), 10, now).unwrap();
        let w2 = w
            .carry_over(
                AlgorithmKind::SlidingWindow,
                Rate::per_second(20).unwrap(),
                now,
            )
            .unwrap();
        assert!(w2.peek(&key(1), 10, now).unwrap().allowed());
        assert!(!w2.peek(&key(1), 11, now).unwrap().allowed());
        assert!(w
            .carry_over(
                AlgorithmKind::SlidingWindow,
                Rate::per_minute(20).unwrap(),
                now
            )
            .is_none());
    }
}

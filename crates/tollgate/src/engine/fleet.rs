//! Revocations shared by a fleet: the hook ([`RevocationSync`]) through which a store
//! outside the process (tollgate-redis's `RedisRevocations`) carries every revocation,
//! suspension and restoration made by any engine of the fleet to every other one.
//!
//! # The model
//! * With a sync set ([`EngineBuilder::revocation_sync`](crate::EngineBuilder::revocation_sync)),
//!   the revoked set is keyed by the sync's **fleet fingerprint** of a value
//!   ([`RevocationSync::fingerprint`], a keyed hash under a secret every instance
//!   shares), so that a change made on one instance names the same entry on all of
//!   them. The value itself never leaves the process. With a quota journal, the
//!   journal's `revocations` rows are keyed by that fingerprint too (so a restart with
//!   the same fleet secret matches them; a restart under another secret or without the
//!   sync does not).
//! * Every change this engine makes (an operator's revoke, suspend or restore, and an
//!   automatic revocation) is applied locally at once, as without a sync, and handed to
//!   the sync ([`RevocationSync::publish`]), which never blocks: the change waits in the
//!   [`RevocationInbox`]'s pending set until the sync has written it to the fleet store
//!   and read it back. While the store is unreachable, local changes keep applying
//!   locally and stay pending; they are written when it returns.
//! * The sync delivers the fleet's changes into the inbox ([`RevocationInbox::deliver`])
//!   and, at start or after it may have missed some, the fleet's whole set
//!   ([`RevocationInbox::replace`]). The engine applies what was delivered before its
//!   next decision (a relaxed atomic load on the decision's path while nothing
//!   waits), and before [`Engine::is_revoked`](crate::Engine::is_revoked),
//!   [`Engine::revoked`](crate::Engine::revoked) and its own changes. A delivered
//!   change for a value with a pending local change is skipped: the local change is
//!   newer and will come back from the store in order.
//! * A restoration from the fleet also forgets the value's denials here (as
//!   [`Engine::restore`](crate::Engine::restore) does on the engine that made it).
//! * Changes from the fleet raise no [`Event`](crate::Event)s and count in no
//!   revocation metric on the receiving engine (the engine that made the change
//!   reports it); with a journal they are journaled, without waiting, so a restart
//!   while the store is down starts from the last set seen.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tollgate_quota::KeyRef;

/// A change to the revoked set, as the fleet shares it: by fleet fingerprint, never the
/// value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetRevocation {
    /// Revoked (`until: None`) or suspended until `until` (Unix nanoseconds, on the
    /// clock of the engine that suspended it).
    Revoked {
        /// [`RevocationSync::fingerprint`] of the value.
        fingerprint: u128,
        /// The value's bit in the engine's revocation filter (0..1024: ten bits of an
        /// unkeyed mix of the value's length and first and last eight bytes, as the
        /// journal stores it).
        filter_bit: u16,
        /// The value's redacted reference on the engine that revoked it.
        key: KeyRef,
        /// When the suspension ends; `None`: until restored.
        until: Option<u64>,
    },
    /// Restored (or a suspension ended early).
    Restored {
        /// [`RevocationSync::fingerprint`] of the value.
        fingerprint: u128,
    },
}

impl FleetRevocation {
    /// The fingerprint the change is about.
    pub fn fingerprint(&self) -> u128 {
        match self {
            FleetRevocation::Revoked { fingerprint, .. }
            | FleetRevocation::Restored { fingerprint } => *fingerprint,
        }
    }
}

/// Carries an engine's revocations to the rest of its fleet and the fleet's to it (see
/// the [module](self)). Set with
/// [`EngineBuilder::revocation_sync`](crate::EngineBuilder::revocation_sync).
pub trait RevocationSync: Send + Sync + fmt::Debug {
    /// The fleet's fingerprint of a value of the revocation attribute: the same on every
    /// instance of the fleet, unpredictable without the fleet's secret. The revoked set
    /// and the offender table are keyed by it.
    fn fingerprint(&self, value: &str) -> u128;

    /// Starts carrying changes for the engine that owns `inbox` (called once, by
    /// [`EngineBuilder::build`](crate::EngineBuilder::build), after the journal's rows
    /// were restored). It should deliver the fleet's current set with
    /// [`RevocationInbox::replace`] before returning when the store answers in time (the
    /// engine applies it before `build` returns), and stop once `inbox` has no other
    /// owner (the engine was dropped): hold it by [`Weak`](std::sync::Weak).
    fn attach(&self, inbox: Arc<RevocationInbox>);

    /// Told after a change was added to the inbox's pending set
    /// ([`RevocationInbox::pending`]): write it soon. Called on a decision's path (an
    /// automatic revocation): never block.
    fn publish(&self);
}

/// Where a [`RevocationSync`] and its engine meet: the changes delivered from the fleet
/// and not yet applied, and this engine's changes not yet confirmed by the fleet store
/// (pending). One mutex guards both, so that a delivered change and a local change to
/// the same value are ordered.
#[derive(Default)]
pub struct RevocationInbox {
    waiting: AtomicBool,
    state: Mutex<InboxState>,
}

impl fmt::Debug for RevocationInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("RevocationInbox")
            .field("delivered", &s.delivered.len())
            .field("pending", &s.pending.len())
            .field("known", &s.known.len())
            .finish()
    }
}

#[derive(Default)]
pub(super) struct InboxState {
    pub(super) delivered: Vec<Delivery>,
    /// This engine's changes the sync has not confirmed, by fingerprint (the latest).
    pub(super) pending: HashMap<u128, FleetRevocation>,
    /// The engine's revoked set as the fleet sees it (the set's entries keep neither
    /// the filter bit nor the fingerprint's change): kept with every change to the set
    /// made under this lock, so that the inbox can hand the sync the whole set without
    /// the engine (an idle engine makes no decision).
    pub(super) known: HashMap<u128, FleetRevocation>,
}

pub(super) enum Delivery {
    Change(FleetRevocation),
    /// The fleet's whole set: the entries not in it are removed.
    Replace(Vec<FleetRevocation>),
}

impl RevocationInbox {
    pub(super) fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn try_lock(&self) -> Option<MutexGuard<'_, InboxState>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Whether something waits for the engine (a relaxed load: a decision checks it).
    #[inline]
    pub(super) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(super) fn clear_waiting(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// Hands the engine changes read from the fleet store, in the store's order.
    /// `confirmed`: the pending changes this delivery includes (written by this engine
    /// and read back in it, or in the set just read): they stop being pending if they
    /// were not changed since.
    pub fn deliver(&self, changes: Vec<FleetRevocation>, confirmed: &[FleetRevocation]) {
        let mut s = self.lock();
        s.delivered
            .extend(changes.into_iter().map(Delivery::Change));
        Self::confirm(&mut s, confirmed);
        drop(s);
        self.waiting.store(true, Ordering::Release);
    }

    /// Hands the engine the fleet's whole set (every `Revoked` change in force): the
    /// engine's entries not in it are removed, except pending ones. `confirmed` as in
    /// [`deliver`](Self::deliver).
    pub fn replace(&self, set: Vec<FleetRevocation>, confirmed: &[FleetRevocation]) {
        let mut s = self.lock();
        s.delivered.clear();
        s.delivered.push(Delivery::Replace(set));
        Self::confirm(&mut s, confirmed);
        drop(s);
        self.waiting.store(true, Ordering::Release);
    }

    fn confirm(s: &mut InboxState, confirmed: &[FleetRevocation]) {
        for c in confirmed {
            if s.pending.get(&c.fingerprint()) == Some(c) {
                s.pending.remove(&c.fingerprint());
            }
        }
    }

    /// This engine's changes not yet confirmed (what the sync has to write), in no
    /// particular order.
    pub fn pending(&self) -> Vec<FleetRevocation> {
        self.lock().pending.values().cloned().collect()
    }

    /// Makes the engine's whole revoked set pending (every revocation, and every
    /// suspension not ended at `now`, Unix nanoseconds): when the fleet store lost its
    /// state, every instance writes back what it holds. Returns how many changes
    /// became pending.
    pub fn share_local_set(&self, now: u64) -> usize {
        let mut s = self.lock();
        let s = &mut *s;
        let mut n = 0;
        for (h, c) in &s.known {
            let live = match c {
                FleetRevocation::Revoked { until, .. } => !matches!(until, Some(u) if *u <= now),
                FleetRevocation::Restored { .. } => false,
            };
            if live && !s.pending.contains_key(h) {
                s.pending.insert(*h, c.clone());
                n += 1;
            }
        }
        n
    }
}

/// An engine's sync and its inbox.
pub(super) struct Fleet {
    pub(super) sync: Arc<dyn RevocationSync>,
    pub(super) inbox: Arc<RevocationInbox>,
}

impl Fleet {
    pub(super) fn new(sync: Arc<dyn RevocationSync>) -> Self {
        Fleet {
            sync,
            inbox: Arc::default(),
        }
    }
}

//! The [`Ledger`] itself: what it holds, its constructors, its journal, and the key
//! lookup every call starts with.

use std::fmt;

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tollgate_core::{FingerprintBuildHasher, Fingerprinter};

use crate::journal::{Journal, JournalError, JournalHealth, Snapshot, Ticket};
use crate::outbox::{Outbox, OutboxState};

use super::collect::collect_usage;
use super::config::{LivePercents, QuotaConfig};
use super::decision::QuotaEvent;
use super::directory::{CompanyStatus, Directory, KeyEntry, KeyMap, UserEntry, TERMINATED_BIT};
use super::error::{KeyRef, QuotaError};
use super::refill::{refill, Deferred};

/// The in-memory usage ledger. See the [module docs](super).
pub struct Ledger {
    /// The configuration in force: plans and period are read when a company is
    /// registered or notified, replaced whole by [`Ledger::reconfigure`].
    pub(super) config: ArcSwap<QuotaConfig>,
    /// The warning and hard-cap percentages of `config`, read by every charge.
    pub(super) percents: LivePercents,
    pub(super) keys: KeyMap,
    pub(super) fingerprints: Fingerprinter,
    /// Shared with the journal's collector.
    pub(super) directory: Arc<Mutex<Directory>>,
    /// Shared with the journal's commit hook (notices raised late).
    pub(super) events: Arc<Mutex<Vec<QuotaEvent>>>,
    /// Notices waiting for their journal entry to commit (the journal was failing).
    pub(super) deferred: Arc<Mutex<Deferred>>,
    /// Notices raised and not acknowledged by the host (shared with the journal's
    /// commit hook and its rewrite source).
    pub(super) outbox: Arc<OutboxState>,
    /// Where every change is journaled, if durable.
    pub(super) journal: Option<Journal>,
    /// Journaled state not yet claimed by a registered company or user.
    /// Shared with the journal's state source.
    pub(super) restored: Arc<Mutex<Snapshot>>,
    /// Notices that could not be journaled, so were not raised (at most once).
    pub(super) journal_errors: AtomicU64,
    /// Where every counted move is handed, if set (see [`super::sink`]).
    pub(super) usage_sink: super::sink::SinkSlot,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.directory();
        f.debug_struct("Ledger")
            .field("companies", &d.companies.len())
            .field("users", &d.users.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new(config: QuotaConfig) -> Self {
        Ledger {
            outbox: Arc::new(OutboxState::new(config.notice_redeliver_after)),
            percents: LivePercents::new(&config),
            config: ArcSwap::from_pointee(config),
            keys: KeyMap::with_hasher(FingerprintBuildHasher),
            fingerprints: Fingerprinter::new(),
            directory: Arc::new(Mutex::new(Directory::default())),
            events: Arc::new(Mutex::new(Vec::new())),
            deferred: Arc::new(Mutex::new(Deferred::default())),
            journal: None,
            restored: Arc::new(Mutex::new(Snapshot::default())),
            journal_errors: AtomicU64::new(0),
            usage_sink: Default::default(),
        }
    }

    /// A ledger whose every change is written to `journal`, restoring the usage, notices
    /// and committed idempotency keys in `snapshot` (what [`Journal::open`] returned).
    /// Restored usage is attached to a company or user when it is registered
    /// ([`Ledger::upsert_company`], [`Ledger::add_user`]), so a restart re-registers them
    /// and carries on counting. A notice enters the [outbox](Ledger::outbox) only once
    /// its journal entry is durable, so it is raised once across restarts; the notices
    /// the host had not acknowledged are pending again at once.
    pub fn with_journal(config: QuotaConfig, journal: Journal, mut snapshot: Snapshot) -> Self {
        let mut l = Ledger::new(config);
        l.outbox.restore(&std::mem::take(&mut snapshot.outbox));
        let directory = Arc::clone(&l.directory);
        journal.set_collector(Box::new(move |batch| {
            collect_usage(&directory.lock().unwrap_or_else(|p| p.into_inner()), batch);
        }));
        l.restored = Arc::new(Mutex::new(snapshot));
        // Rewrites what the ledger holds when the journal lost appended entries or its
        // file (see `refill`).
        let directory = Arc::clone(&l.directory);
        let restored = Arc::clone(&l.restored);
        let outbox = Arc::clone(&l.outbox);
        let deferred = Arc::clone(&l.deferred);
        journal.set_source(Box::new(move |what, batch| {
            let d = directory.lock().unwrap_or_else(|p| p.into_inner());
            refill(&d, &restored, &outbox, &deferred, what, batch);
        }));
        // Puts in the outbox (and raises) the notices that waited for their entry to
        // commit.
        let deferred = Arc::clone(&l.deferred);
        let events = Arc::clone(&l.events);
        let outbox = Arc::clone(&l.outbox);
        journal.set_on_commit(Box::new(move |committed| {
            deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .release(committed, &outbox, &events);
        }));
        l.journal = Some(journal);
        l
    }

    /// The notice outbox: the early warnings and overage notices raised and not yet
    /// acknowledged by the host (see [`Outbox`]).
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox {
            state: &self.outbox,
            journal: self.journal.as_ref(),
        }
    }

    /// The journal, if this ledger is durable (to `wait` on, `flush` or report from).
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// A ticket covering every call the calling thread recorded, reserved, committed or
    /// refunded so far; `None` without a journal. Lock-free: strict callers take one
    /// after `record` and wait on it ([`Journal::wait`]) before answering, or call
    /// [`Ledger::sync`].
    pub fn ticket(&self) -> Option<Ticket> {
        self.journal.as_ref().map(Journal::ticket)
    }

    /// Waits until every call the calling thread recorded (reserved, committed,
    /// refunded) so far is committed to the journal: on disk in
    /// [`Durability::Strict`](crate::journal::Durability::Strict) mode. Concurrent
    /// callers share one transaction (group commit). Without a journal, returns at once.
    pub fn sync(&self) -> Result<(), JournalError> {
        match &self.journal {
            Some(j) => j.wait(j.ticket()),
            None => Ok(()),
        }
    }

    /// Notices that were not raised because their journal entry failed for good (the
    /// journal stopped). A notice whose entry is only delayed (the journal is failing and
    /// retries) is not counted here: it is raised once the entry commits (see
    /// [`Ledger::deferred_notices`]).
    pub fn journal_errors(&self) -> u64 {
        self.journal_errors.load(Ordering::Relaxed)
    }

    /// Notices waiting for their journal entry to commit: raised (queued for
    /// [`Ledger::drain_events`]) as soon as it does.
    pub fn deferred_notices(&self) -> usize {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The journal writer's health (`None` without a journal): see
    /// [`Journal::health`].
    pub fn journal_health(&self) -> Option<JournalHealth> {
        self.journal.as_ref().map(Journal::health)
    }

    /// The directory, locked (a poisoned lock is taken over).
    pub(super) fn directory(&self) -> MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user holding `key`, if the key is known and the user enabled.
    pub(super) fn resolve<'g>(
        &self,
        keys: &'g papaya::HashMapRef<
            '_,
            u128,
            KeyEntry,
            FingerprintBuildHasher,
            impl papaya::Guard,
        >,
        key: &str,
        now: i128,
    ) -> Result<&'g Arc<UserEntry>, QuotaError> {
        let entry = keys
            .get(&self.fingerprints.of(key))
            .filter(|e| e.until > now)
            .ok_or_else(|| QuotaError::UnknownKey(KeyRef::of(key)))?;
        let user = &entry.user;
        user_standing(user, key)?;
        Ok(user)
    }

    /// A pinned view of the API key map, for [`resolve_key`](Self::resolve_key): what
    /// the keys it resolves borrow from. Pinning is cheap; a guard held for long delays
    /// the reclamation of removed keys' entries (not their removal).
    #[inline]
    pub fn key_guard(&self) -> KeyGuard<'_> {
        KeyGuard(self.keys.guard())
    }

    /// Resolves `key` to its user at `now`, once, for a caller that checks a key before
    /// other work and records the call after it (the engine: checked before any limit is
    /// taken, recorded once every limit admitted the request): `Ok` exactly when
    /// [`check_key_at`](Self::check_key_at) is, and
    /// [`record_resolved`](Self::record_resolved) then charges without looking the key up
    /// again. `guard` must come from this ledger's [`key_guard`](Self::key_guard).
    #[inline]
    pub fn resolve_key<'g>(
        &'g self,
        guard: &'g KeyGuard<'_>,
        key: &'g str,
        now: i128,
    ) -> Result<ResolvedKey<'g>, QuotaError> {
        let entry = self
            .keys
            .get(&self.fingerprints.of(key), &guard.0)
            .filter(|e| e.until > now)
            .ok_or_else(|| QuotaError::UnknownKey(KeyRef::of(key)))?;
        user_standing(&entry.user, key)?;
        Ok(ResolvedKey {
            user: &entry.user,
            key,
        })
    }

    /// Whether a call by the holder of `key` could be charged at all: `Ok` if the key is
    /// known and its user enabled, the error [`record`](Self::record) would answer
    /// otherwise. Charges nothing and writes nothing; the engine asks this before it
    /// takes any limit, so that an unknown key costs no limit state and no round trip.
    ///
    /// Uses the current time for a key in its rotation grace period; the engine asks
    /// [`check_key_at`](Self::check_key_at) with the decision's time.
    pub fn check_key(&self, key: &str) -> Result<(), QuotaError> {
        let now = jiff::Timestamp::now().as_nanosecond();
        self.check_key_at(key, now)
    }

    /// [`check_key`](Self::check_key) at `now` (Unix nanoseconds): a rotated key whose
    /// grace period ended by `now` is unknown.
    pub fn check_key_at(&self, key: &str, now: i128) -> Result<(), QuotaError> {
        let keys = self.keys.pin();
        self.resolve(&keys, key, now).map(|_| ())
    }
}

/// A pinned view of a ledger's API key map: see [`Ledger::key_guard`].
pub struct KeyGuard<'l>(papaya::LocalGuard<'l>);

impl fmt::Debug for KeyGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyGuard")
    }
}

/// An API key resolved to its user by [`Ledger::resolve_key`], to record a call with
/// [`Ledger::record_resolved`]. `Debug` shows the key only as its [`KeyRef`].
#[derive(Clone, Copy)]
pub struct ResolvedKey<'g> {
    pub(super) user: &'g Arc<UserEntry>,
    pub(super) key: &'g str,
}

impl fmt::Debug for ResolvedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedKey")
            .field("key", &KeyRef::of(self.key))
            .field("user", &self.user.id)
            .finish()
    }
}

/// `Ok` if `user` (found by `key`) may be charged: not removed, not disabled, its
/// company active.
#[inline]
pub(super) fn user_standing(user: &UserEntry, key: &str) -> Result<(), QuotaError> {
    if user.removed.load(Ordering::Relaxed) {
        return Err(QuotaError::UnknownKey(KeyRef::of(key)));
    }
    if user.disabled.load(Ordering::Relaxed) {
        return Err(QuotaError::DisabledUser {
            user: user.id.clone(),
        });
    }
    let status = user.company.status.load(Ordering::Relaxed);
    if status != 0 {
        return Err(company_refusal(&user.company.id, status, key));
    }
    Ok(())
}

/// The refusal for a key of a company whose status byte is not active.
#[cold]
fn company_refusal(company: &str, status: u8, key: &str) -> QuotaError {
    let company = company.to_owned();
    if status & TERMINATED_BIT != 0 {
        return QuotaError::CompanyTerminated { company };
    }
    match CompanyStatus::from_u8(status) {
        CompanyStatus::Suspended => QuotaError::CompanySuspended { company },
        CompanyStatus::Terminated => QuotaError::CompanyTerminated { company },
        // A removed company's keys are gone; a key found meanwhile is unknown.
        _ => QuotaError::UnknownKey(KeyRef::of(key)),
    }
}

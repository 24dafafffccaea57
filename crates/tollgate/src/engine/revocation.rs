//! Revocation: counting a token's denials, revoking and restoring, and the lookup on every decision.

use std::sync::atomic::Ordering;

use tollgate_quota::journal::{Entry, Journal, RevocationRecord};
use tollgate_quota::KeyRef;

use super::compile::{Compiled, Revoked};
use super::events::Event;
use super::fleet::{Delivery, FleetRevocation};
use super::instance::Engine;
use super::request::Request;
use crate::backend::LimitKey;
use crate::policy::Attr;

impl Engine {
    /// The revoked set's key for a value of the revocation attribute (also the offender
    /// store's key: see `count_denial`): with a fleet's sync, its fleet fingerprint
    /// (what the journal's rows are then keyed by too); with a journal, the value's
    /// fingerprint under the journal's revocation key (what its `revocations` rows are
    /// keyed by), else the engine's own keyed hash.
    #[inline]
    pub(super) fn token_hash(&self, value: &str) -> u128 {
        if let Some(f) = &self.fleet {
            return f.sync.fingerprint(value);
        }
        match &self.revocation_key {
            Some(key) => key.fingerprint(value),
            None => self.hasher.of_parts(&[value]),
        }
    }

    /// The quota journal, if the engine has one.
    fn journal(&self) -> Option<&Journal> {
        self.ledger.as_ref().and_then(|l| l.journal())
    }

    /// Puts the journal's revocations back in the revoked set at start: every revocation
    /// and every suspension that has not ended (the rows of ended ones are deleted).
    pub(super) fn restore_revocations(&self, rows: Vec<RevocationRecord>) {
        let now = self.now();
        let set = self.revoked.pin();
        let mut ended = Vec::new();
        for row in rows {
            let until = row.until.unwrap_or(u64::MAX);
            if until <= now {
                ended.push(Entry::Unrevoked {
                    fingerprint: row.fingerprint,
                });
                continue;
            }
            set.insert(
                row.fingerprint,
                Revoked {
                    key: row.key.clone(),
                    until,
                },
            );
            let bit = usize::from(row.filter_bit) % 1024;
            if let Some(f) = &self.fleet {
                f.inbox.lock().known.insert(
                    row.fingerprint,
                    FleetRevocation::Revoked {
                        fingerprint: row.fingerprint,
                        filter_bit: bit as u16,
                        key: row.key.clone(),
                        until: row.until,
                    },
                );
            }
            self.revoked_filter[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
            self.revoked_any.store(true, Ordering::Release);
        }
        if let (Some(j), false) = (self.journal(), ended.is_empty()) {
            j.append_all(ended);
        }
    }

    /// Counts a denial towards revoking the request's revocation attribute; returns
    /// whether this denial revoked it.
    ///
    /// Fail-safe: the offender table counts each value's own denials exactly (a key is
    /// reused only once its count has fully decayed, so no value inherits another's
    /// denials); when the table has no room for a new value, that denial is not
    /// counted (`revocation_untracked` in the metrics) and never revokes. Counting may
    /// fall short under a flood of other values; it never runs ahead, so other values'
    /// denials can neither revoke a value nor revoke it sooner.
    #[cold]
    pub(super) fn count_denial(&self, c: &Compiled, req: &Request<'_>, now: u64) -> bool {
        let Some(rev) = &c.revocation else {
            return false;
        };
        let Some(v) = req.get(&rev.attr) else {
            return false;
        };
        let parts = [v];
        let key = LimitKey {
            hash: self.token_hash(v),
            parts: &parts,
        };
        // With a budget of `denials - 1` free denials per window, the limiter refuses
        // the `denials`-th denial in a window: that one revokes.
        let over = rev.denials <= 1
            || match rev.offenders.get().acquire(&key, 1, now) {
                Ok((d, _)) => !d.allowed(),
                Err(_) => {
                    self.metrics.revocation_untracked.add(1);
                    false
                }
            };
        let until = rev.suspend.map_or(u64::MAX, |d| now.saturating_add(d));
        over && self.revoke_inner(&rev.attr, v, true, until, now, Some(rev.max_revoked))
    }

    /// Revokes `value` until `until` (`u64::MAX`: until restored). `bound`: the most
    /// entries the set may hold for this revocation to be recorded (automatic ones);
    /// `None` records it anyway (an operator's). Returns whether it was newly revoked.
    pub(super) fn revoke_inner(
        &self,
        attr: &Attr,
        value: &str,
        automatic: bool,
        until: u64,
        now: u64,
        bound: Option<usize>,
    ) -> bool {
        let hash = self.token_hash(value);
        // An automatic revocation is on a decision's path: it does not wait for the
        // inbox to apply what the fleet delivered (the next decision does).
        self.apply_fleet(!automatic);
        let mut fleet = self.fleet.as_ref().map(|f| f.inbox.lock());
        let set = self.revoked.pin();
        if let Some(max) = bound {
            if set.len() >= max {
                self.sweep_expired(now);
                if set.len() >= max {
                    self.metrics.revocations_refused.add(1);
                    return false;
                }
            }
        }
        let key = KeyRef::of(value);
        let entry = Revoked {
            key: key.clone(),
            until,
        };
        let fresh = match &self.shared_revoked {
            // Under `[state] shared` the host's region decides, for every process (a
            // value another process revoked is not newly revoked here either); this
            // process's set only lists what it revoked.
            Some(shared) => match shared.revoke(hash, value, until, now) {
                Ok(newly) => {
                    set.insert(hash, entry);
                    newly
                }
                Err(()) => {
                    self.metrics.revocations_refused.add(1);
                    return false;
                }
            },
            None => match set.try_insert(hash, entry) {
                Ok(_) => true,
                // An expired suspension is replaced; a live revocation stays as it is.
                Err(e) if e.current.until <= now => {
                    set.insert(hash, e.not_inserted);
                    true
                }
                Err(_) => false,
            },
        };
        let bit = quick_bit(value);
        if fresh {
            self.revoked_filter[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
            self.revoked_any.store(true, Ordering::Release);
            if let Some(state) = fleet.as_mut() {
                let change = FleetRevocation::Revoked {
                    fingerprint: hash,
                    filter_bit: bit as u16,
                    key: key.clone(),
                    until: (until != u64::MAX).then_some(until),
                };
                state.known.insert(hash, change.clone());
                state.pending.insert(hash, change);
            }
        }
        // Published before the journal is waited on: the inbox's lock is never held
        // across a wait.
        drop(fleet);
        if fresh {
            if let Some(f) = &self.fleet {
                f.sync.publish();
            }
            if let Some(j) = self.journal() {
                let ticket = j.append(Entry::Revoked(RevocationRecord {
                    fingerprint: hash,
                    key: key.clone(),
                    filter_bit: bit as u16,
                    until: (until != u64::MAX).then_some(until),
                    automatic,
                    revoked_at: now,
                }));
                // An operator's change returns once committed (a failing journal keeps
                // it queued and answers at once); an automatic one, on a decision's
                // path, never waits.
                if !automatic {
                    let _ = j.wait(ticket);
                }
            }
            match (automatic, until == u64::MAX) {
                (true, true) => self.metrics.revocations.add(1),
                (true, false) => self.metrics.auto_suspensions.add(1),
                (false, true) => self.metrics.operator_revocations.add(1),
                (false, false) => self.metrics.operator_suspensions.add(1),
            }
            let attribute = attr.name().to_owned();
            self.emit(if until == u64::MAX {
                Event::Revoked {
                    attribute,
                    key,
                    automatic,
                }
            } else {
                Event::Suspended {
                    attribute,
                    key,
                    until_unix_ns: until,
                    automatic,
                }
            });
        }
        fresh
    }

    /// Removes the suspensions that ended, at most once a second (a full set of live
    /// revocations must not make every further denial walk the set).
    #[cold]
    fn sweep_expired(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now < last.saturating_add(1_000_000_000)
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.revoked.pin().retain(|_, r| r.until > now);
    }

    /// Whether the request's revocation value (if it has one) is revoked at `now`: the
    /// filter, then the set. An ended suspension is removed on the way.
    #[inline(always)]
    pub(super) fn is_revoked_now(&self, c: &Compiled, req: &Request<'_>, now: u64) -> bool {
        if self.fleet.is_none() && self.shared_revoked.is_none() {
            // Nothing revoked (nearly always): one load, no call.
            return self.revoked_any.load(Ordering::Relaxed)
                && self.is_revoked_filtered(c, req, now);
        }
        self.is_revoked_shared(c, req, now)
    }

    /// [`is_revoked_now`](Self::is_revoked_now) with a fleet sync or a host-shared
    /// revoked set.
    #[inline(never)]
    fn is_revoked_shared(&self, c: &Compiled, req: &Request<'_>, now: u64) -> bool {
        if let Some(f) = &self.fleet {
            if f.inbox.waiting() {
                self.apply_fleet(false);
            }
        }
        if let Some(shared) = &self.shared_revoked {
            // Under `[state] shared` the host's region decides (and, with a fleet sync,
            // this process's set holds what the fleet delivered).
            let attr = c.revocation.as_ref().map_or(&Attr::Token, |r| &r.attr);
            let Some(v) = req.get(attr) else {
                return false;
            };
            if shared.any() && shared.maybe(v) && shared.revoked_at(self.token_hash(v), now) {
                return true;
            }
            if self.fleet.is_none() {
                return false;
            }
        }
        self.revoked_any.load(Ordering::Relaxed) && self.is_revoked_filtered(c, req, now)
    }

    /// [`is_revoked_now`](Self::is_revoked_now) once something is revoked.
    #[inline(never)]
    fn is_revoked_filtered(&self, c: &Compiled, req: &Request<'_>, now: u64) -> bool {
        let attr = c.revocation.as_ref().map_or(&Attr::Token, |r| &r.attr);
        let Some(v) = req.get(attr).filter(|v| self.maybe_revoked(v)) else {
            return false;
        };
        self.revoked_at(v, now)
    }

    #[cold]
    fn revoked_at(&self, value: &str, now: u64) -> bool {
        let hash = self.token_hash(value);
        let set = self.revoked.pin();
        match set.get(&hash) {
            None => false,
            Some(r) if r.until > now => true,
            Some(_) => {
                set.remove_if(&hash, |_, r| r.until <= now).ok();
                false
            }
        }
    }

    /// Whether `value` may be revoked: false means certainly not.
    #[inline]
    pub(super) fn maybe_revoked(&self, value: &str) -> bool {
        let bit = quick_bit(value);
        self.revoked_filter[bit / 64].load(Ordering::Acquire) & (1 << (bit % 64)) != 0
    }

    /// The revocation attribute (token by default, or as the policy says).
    pub(super) fn revocation_attr(&self) -> Attr {
        self.compiled
            .load()
            .revocation
            .as_ref()
            .map_or(Attr::Token, |r| r.attr.clone())
    }

    /// Revokes `value` of the revocation attribute (a token, by default): its requests
    /// are refused with [`Reason::Revoked`](crate::Reason::Revoked) until
    /// [`restore`](Self::restore)d, whether or not the policy revokes automatically.
    /// Returns whether it was not revoked already. Raises [`Event::Revoked`].
    pub fn revoke(&self, value: &str) -> bool {
        let now = self.now();
        self.revoke_inner(&self.revocation_attr(), value, false, u64::MAX, now, None)
    }

    /// Suspends `value` of the revocation attribute for `duration`: refused as revoked
    /// until then, served again afterwards without a call. Returns whether it was not
    /// revoked already (a live revocation is left as it is). Raises
    /// [`Event::Suspended`].
    pub fn suspend(&self, value: &str, duration: std::time::Duration) -> bool {
        let now = self.now();
        let until = now.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        self.revoke_inner(&self.revocation_attr(), value, false, until, now, None)
    }

    /// Restores a revoked value and forgets its denials. Returns whether it was revoked.
    pub fn restore(&self, value: &str) -> bool {
        let hash = self.token_hash(value);
        let now = self.now();
        self.apply_fleet(true);
        let mut fleet = self.fleet.as_ref().map(|f| f.inbox.lock());
        let removed = self.revoked.pin().remove(&hash).cloned();
        let was_here = removed.as_ref().is_some_and(|r| r.until > now);
        // Under `[state] shared`: restored for every process of the host, and the
        // region says whether it was revoked (this process's set may be stale), unless
        // a fleet sync delivered it to this set.
        let was = match &self.shared_revoked {
            Some(shared) => shared.restore(hash, now) || (self.fleet.is_some() && was_here),
            None => was_here,
        };
        // Shared whatever this engine's set held: another instance may hold it.
        if let Some(state) = fleet.as_mut() {
            state.known.remove(&hash);
            state
                .pending
                .insert(hash, FleetRevocation::Restored { fingerprint: hash });
        }
        drop(fleet);
        if let Some(f) = &self.fleet {
            f.sync.publish();
        }
        // Journaled even when nothing was in the set here: the row goes whatever state
        // the set was in.
        if let Some(j) = self.journal() {
            let ticket = j.append(Entry::Unrevoked { fingerprint: hash });
            let _ = j.wait(ticket);
        }
        let c = self.compiled.load();
        if let Some(rev) = &c.revocation {
            let parts = [value];
            rev.offenders.get().reset(&LimitKey {
                hash,
                parts: &parts,
            });
        }
        if was {
            self.metrics.restorations.add(1);
            self.emit(Event::Restored {
                attribute: self.revocation_attr().name().to_owned(),
                key: KeyRef::of(value),
            });
        }
        was
    }

    /// Whether `value` is revoked now.
    pub fn is_revoked(&self, value: &str) -> bool {
        self.apply_fleet(true);
        let (hash, now) = (self.token_hash(value), self.now());
        let here = || self.revoked.pin().get(&hash).is_some_and(|r| r.until > now);
        match &self.shared_revoked {
            // Under `[state] shared` the host's region decides (and, with a fleet sync,
            // what the fleet delivered to this process's set).
            Some(shared) => shared.revoked_at(hash, now) || (self.fleet.is_some() && here()),
            None => here(),
        }
    }

    /// The values revoked now, redacted.
    pub fn revoked(&self) -> Vec<KeyRef> {
        self.apply_fleet(true);
        let now = self.now();
        let mut all: Vec<KeyRef> = self
            .revoked
            .pin()
            .iter()
            .filter(|(hash, r)| match &self.shared_revoked {
                // Another process may have restored it.
                Some(shared) => shared.revoked_at(**hash, now),
                None => r.until > now,
            })
            .map(|(_, r)| r.key.clone())
            .collect();
        all.sort();
        all
    }

    /// Entries in the revoked set (live ones and ended suspensions not yet reclaimed).
    pub fn revoked_len(&self) -> usize {
        self.revoked.len()
    }

    /// With a fleet's [`RevocationSync`](super::RevocationSync): this engine's changes
    /// the fleet store has not confirmed yet (0 once shared; it grows while the store
    /// is unreachable). `None` without a sync.
    pub fn revocations_unshared(&self) -> Option<usize> {
        self.fleet.as_ref().map(|f| f.inbox.lock().pending.len())
    }

    /// Starts the fleet's sync (at build, after the journal's rows were restored) and
    /// applies the set it delivered.
    pub(super) fn attach_fleet(&self) {
        if let Some(f) = &self.fleet {
            f.sync.attach(std::sync::Arc::clone(&f.inbox));
            self.apply_fleet(true);
        }
    }

    /// Applies what the fleet's sync delivered (see [`super::fleet`]). `wait`: take the
    /// inbox's lock even if busy (not on a decision's path, which skips it then: the
    /// next decision applies it).
    #[cold]
    pub(super) fn apply_fleet(&self, wait: bool) {
        let Some(f) = &self.fleet else {
            return;
        };
        if !f.inbox.waiting() {
            return;
        }
        let mut s = if wait {
            f.inbox.lock()
        } else {
            match f.inbox.try_lock() {
                Some(s) => s,
                None => return,
            }
        };
        f.inbox.clear_waiting();
        let now = self.now();
        let set = self.revoked.pin();
        let mut journal = Vec::new();
        let s = &mut *s;
        for d in std::mem::take(&mut s.delivered) {
            match d {
                Delivery::Change(c) => {
                    if !s.pending.contains_key(&c.fingerprint()) {
                        self.apply_change(&set, &mut s.known, c, now, &mut journal);
                    }
                }
                Delivery::Replace(all) => {
                    let keep: std::collections::HashSet<u128> =
                        all.iter().map(FleetRevocation::fingerprint).collect();
                    let gone: Vec<u128> = set
                        .keys()
                        .filter(|h| !keep.contains(h) && !s.pending.contains_key(h))
                        .copied()
                        .collect();
                    for h in gone {
                        self.apply_change(
                            &set,
                            &mut s.known,
                            FleetRevocation::Restored { fingerprint: h },
                            now,
                            &mut journal,
                        );
                    }
                    for c in all {
                        if !s.pending.contains_key(&c.fingerprint()) {
                            self.apply_change(&set, &mut s.known, c, now, &mut journal);
                        }
                    }
                }
            }
        }
        drop(set);
        if let (Some(j), false) = (self.journal(), journal.is_empty()) {
            j.append_all(journal);
        }
    }

    /// Applies one change from the fleet to the set (no event, no metric), noting its
    /// journal entry if it changed anything.
    fn apply_change(
        &self,
        set: &papaya::HashMapRef<'_, u128, Revoked, ahash::RandomState, impl papaya::Guard>,
        known: &mut std::collections::HashMap<u128, FleetRevocation>,
        change: FleetRevocation,
        now: u64,
        journal: &mut Vec<Entry>,
    ) {
        match change {
            FleetRevocation::Revoked {
                fingerprint,
                filter_bit,
                key,
                until,
            } => {
                let until = until.unwrap_or(u64::MAX);
                if until <= now {
                    // The fleet's latest word on the value is a suspension that ended:
                    // whatever this engine held for it is over too.
                    known.remove(&fingerprint);
                    if set.remove(&fingerprint).is_some() {
                        journal.push(Entry::Unrevoked { fingerprint });
                    }
                    return;
                }
                if set.get(&fingerprint).is_some_and(|r| r.until == until) {
                    return;
                }
                set.insert(
                    fingerprint,
                    Revoked {
                        key: key.clone(),
                        until,
                    },
                );
                // A bit out of range (not one this crate makes) sets every bit rather
                // than miss the value.
                if usize::from(filter_bit) < 1024 {
                    let bit = usize::from(filter_bit);
                    self.revoked_filter[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
                } else {
                    for word in &self.revoked_filter {
                        word.store(u64::MAX, Ordering::Release);
                    }
                }
                self.revoked_any.store(true, Ordering::Release);
                known.insert(
                    fingerprint,
                    FleetRevocation::Revoked {
                        fingerprint,
                        filter_bit,
                        key: key.clone(),
                        until: (until != u64::MAX).then_some(until),
                    },
                );
                journal.push(Entry::Revoked(RevocationRecord {
                    fingerprint,
                    key,
                    filter_bit: filter_bit.min(1023),
                    until: (until != u64::MAX).then_some(until),
                    automatic: false,
                    revoked_at: now,
                }));
            }
            FleetRevocation::Restored { fingerprint } => {
                known.remove(&fingerprint);
                if set.remove(&fingerprint).is_some() {
                    journal.push(Entry::Unrevoked { fingerprint });
                }
                // Under `[state] shared`, for every process of this host.
                if let Some(shared) = &self.shared_revoked {
                    shared.restore(fingerprint, now);
                }
                // Its denials are forgotten here too, as on the engine that restored
                // it (the offender table is keyed by the hash alone).
                if let Some(rev) = &self.compiled.load().revocation {
                    rev.offenders.get().reset(&LimitKey {
                        hash: fingerprint,
                        parts: &[],
                    });
                }
            }
        }
    }
}

/// A cheap, unkeyed bit index (0..1024) of a value, for the revocation filter: its length
/// and its first and last eight bytes, multiplied together. A value crafted to share a
/// revoked value's bit only costs itself a full lookup.
#[inline]
pub(super) fn quick_bit(value: &str) -> usize {
    let b = value.as_bytes();
    let word = |s: &[u8]| {
        let mut w = [0u8; 8];
        w[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(w)
    };
    let head = word(&b[..b.len().min(8)]);
    let tail = word(&b[b.len().saturating_sub(8)..]);
    let x = (head ^ tail.rotate_left(29) ^ b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 54) as usize
}

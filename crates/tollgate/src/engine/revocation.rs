//! Revocation: counting a token's denials, revoking and restoring, and the lookup on every decision.

use std::sync::atomic::Ordering;

use tollgate_quota::journal::{Entry, Journal, RevocationRecord};
use tollgate_quota::KeyRef;

use super::compile::{Compiled, Revoked};
use super::events::Event;
use super::instance::Engine;
use super::request::Request;
use crate::backend::{LimitBackend, LimitKey};
use crate::policy::Attr;

impl Engine {
    /// The revoked set's key for a value of the revocation attribute (also the offender
    /// store's key: see `count_denial`): with a journal, the value's fingerprint under
    /// the journal's revocation key (what its `revocations` rows are keyed by), else the
    /// engine's own keyed hash.
    #[inline]
    pub(super) fn token_hash(&self, value: &str) -> u128 {
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
                    key: row.key,
                    until,
                },
            );
            let bit = usize::from(row.filter_bit) % 1024;
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
            || match rev.offenders.acquire(&key, 1, now) {
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
        let fresh = match set.try_insert(hash, entry) {
            Ok(_) => true,
            // An expired suspension is replaced; a live revocation stays as it is.
            Err(e) if e.current.until <= now => {
                set.insert(hash, e.not_inserted);
                true
            }
            Err(_) => false,
        };
        if fresh {
            let bit = quick_bit(value);
            self.revoked_filter[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
            self.revoked_any.store(true, Ordering::Release);
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
        // Nothing revoked (nearly always): one load, no call.
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
        let removed = self.revoked.pin().remove(&hash).cloned();
        let was = removed.as_ref().is_some_and(|r| r.until > now);
        // Journaled even when nothing was in the set here: the row goes whatever state
        // the set was in.
        if let Some(j) = self.journal() {
            let ticket = j.append(Entry::Unrevoked { fingerprint: hash });
            let _ = j.wait(ticket);
        }
        let c = self.compiled.load();
        if let Some(rev) = &c.revocation {
            let parts = [value];
            rev.offenders.reset(&LimitKey {
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
        self.revoked
            .pin()
            .get(&self.token_hash(value))
            .is_some_and(|r| r.until > self.now())
    }

    /// The values revoked now, redacted.
    pub fn revoked(&self) -> Vec<KeyRef> {
        let now = self.now();
        let mut all: Vec<KeyRef> = self
            .revoked
            .pin()
            .values()
            .filter(|r| r.until > now)
            .map(|r| r.key.clone())
            .collect();
        all.sort();
        all
    }

    /// Entries in the revoked set (live ones and ended suspensions not yet reclaimed).
    pub fn revoked_len(&self) -> usize {
        self.revoked.len()
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

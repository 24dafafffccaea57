//! Revocation: counting a token's denials, revoking and restoring, and the lookup on every decision.

use std::sync::atomic::Ordering;

use tollgate_quota::KeyRef;

use super::compile::Compiled;
use super::events::Event;
use super::instance::Engine;
use super::request::Request;
use crate::backend::{LimitBackend, LimitKey};
use crate::policy::Attr;

impl Engine {
    /// The revoked set's key for a value of the revocation attribute (also the offender
    /// store's key: see `count_denial`).
    #[inline]
    pub(super) fn token_hash(&self, value: &str) -> u128 {
        self.hasher.of_parts(&[value])
    }

    /// Counts a denial towards revoking the request's revocation attribute; returns
    /// whether this denial revoked it.
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
                Err(_) => true,
            };
        over && self.revoke_inner(&rev.attr, v, true)
    }

    pub(super) fn revoke_inner(&self, attr: &Attr, value: &str, automatic: bool) -> bool {
        let fresh = self
            .revoked
            .pin()
            .try_insert(self.token_hash(value), KeyRef::of(value))
            .is_ok();
        if fresh {
            let bit = quick_bit(value);
            self.revoked_filter[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
            if automatic {
                self.metrics.revocations.add(1);
            }
            self.emit(Event::Revoked {
                attribute: attr.name().to_owned(),
                key: KeyRef::of(value),
                automatic,
            });
        }
        fresh
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
    /// are refused with [`Reason::Revoked`](crate::Reason::Revoked) until [`restore`](Self::restore)d. Returns
    /// whether it was not revoked already. Raises [`Event::Revoked`].
    ///
    /// Revocation is checked only when the policy has a `[revocation]` section.
    pub fn revoke(&self, value: &str) -> bool {
        self.revoke_inner(&self.revocation_attr(), value, false)
    }

    /// Restores a revoked value and forgets its denials. Returns whether it was revoked.
    pub fn restore(&self, value: &str) -> bool {
        let hash = self.token_hash(value);
        let was = self.revoked.pin().remove(&hash).is_some();
        let c = self.compiled.load();
        if let Some(rev) = &c.revocation {
            let parts = [value];
            rev.offenders.reset(&LimitKey {
                hash,
                parts: &parts,
            });
        }
        if was {
            self.emit(Event::Restored {
                attribute: self.revocation_attr().name().to_owned(),
                key: KeyRef::of(value),
            });
        }
        was
    }

    /// Whether `value` is revoked.
    pub fn is_revoked(&self, value: &str) -> bool {
        self.revoked.pin().contains_key(&self.token_hash(value))
    }

    /// The revoked values, redacted.
    pub fn revoked(&self) -> Vec<KeyRef> {
        let mut all: Vec<KeyRef> = self.revoked.pin().values().cloned().collect();
        all.sort();
        all
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

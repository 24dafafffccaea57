//! Durable revocations: the [`RevocationKey`] the journal fingerprints revoked values
//! under, and the rows of the `revocations` table ([`RevocationRecord`]).
//!
//! A revoked value (an API key, a token) is never written to the file. Its row is keyed
//! by a 128-bit fingerprint: two SipHash-2-4 of the value under a 256-bit key drawn at
//! random when the journal is created (or migrated to schema 3) and kept in its `meta`
//! table. The engine keys its revoked set by the same fingerprint, so a row read back at
//! start matches the value's requests without the value ever being stored. SipHash (not
//! the engine's in-memory hasher) because the fingerprint must be the same on every
//! machine and every build that opens the file.

use std::fmt;

use crate::ledger::KeyRef;

/// The key revoked values are fingerprinted under, read from a journal's `meta` table.
/// Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationKey {
    k: [u64; 4],
}

impl fmt::Debug for RevocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RevocationKey { .. }")
    }
}

#[allow(deprecated)]
fn siphash24(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    // std's SipHash-2-4, deprecated only as a HashMap hasher: used here as the keyed
    // pseudo-random function it is, stable across builds and platforms.
    let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
    h.write(bytes);
    h.finish()
}

impl RevocationKey {
    /// A fresh random key.
    pub(super) fn random() -> Self {
        use std::hash::BuildHasher;
        let mut k = [0u64; 4];
        for (i, w) in k.iter_mut().enumerate() {
            // Each RandomState is seeded from the OS's randomness (per thread, then
            // advanced); hashing distinct values under fresh states gives four
            // unpredictable words.
            *w = std::collections::hash_map::RandomState::new().hash_one((i, 0x746f_6c6c_u32));
        }
        RevocationKey { k }
    }

    /// The key as stored (32 bytes, little-endian words).
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        self.k.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// The key from its stored bytes; `None` unless exactly 32 bytes.
    pub(super) fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 32 {
            return None;
        }
        let mut k = [0u64; 4];
        for (i, w) in k.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *w = u64::from_le_bytes(word);
        }
        Some(RevocationKey { k })
    }

    /// The 128-bit fingerprint of `value`: what the `revocations` table and the engine's
    /// revoked set are keyed by. The same for the same value and key on every machine.
    pub fn fingerprint(&self, value: &str) -> u128 {
        let hi = siphash24(self.k[0], self.k[1], value.as_bytes());
        let lo = siphash24(self.k[2], self.k[3], value.as_bytes());
        (u128::from(hi) << 64) | u128::from(lo)
    }
}

/// A row of the `revocations` table: a value revoked (until restored) or suspended
/// (until a time), by its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevocationRecord {
    /// [`RevocationKey::fingerprint`] of the value.
    pub fingerprint: u128,
    /// The value's redacted reference when it was revoked (for reports and events).
    pub key: KeyRef,
    /// The revocation filter's bit of the value (0..1024; see the engine's revocation
    /// module): ten bits of an unkeyed mix, so that a decision for another value skips
    /// the lookup after a restart as before it.
    pub filter_bit: u16,
    /// Unix nanoseconds from which the value is served again; `None`: until restored.
    pub until: Option<u64>,
    /// Whether the engine revoked it (too many denials) rather than an operator.
    pub automatic: bool,
    /// When it was revoked, unix nanoseconds.
    pub revoked_at: u64,
}

/// An administrative change to the quota's directory, as the journal's `admin_changes`
/// table keeps it (in order) to apply again at start on top of the policy file. Only
/// changes that name no secret are kept this way: API keys (and overrides, which may
/// match a token) are not.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminRecord {
    /// A company was added or changed (units, plans, limit): its whole entry after the
    /// change, and its months' zone if it has its own.
    Company {
        /// The company after the change.
        company: crate::plan::Company,
        /// Its time zone, if not the quota's.
        time_zone: Option<String>,
    },
    /// A company was suspended, resumed, terminated or removed.
    CompanyStatus {
        /// The company.
        company: String,
        /// Its status after the change.
        status: crate::ledger::CompanyStatus,
    },
    /// A user was added to a company.
    UserAdded {
        /// The user.
        user: String,
        /// Its company.
        company: String,
    },
    /// A user was disabled or enabled.
    UserDisabled {
        /// The user.
        user: String,
        /// Whether it is disabled after the change.
        disabled: bool,
    },
    /// A user was removed.
    UserRemoved {
        /// The user.
        user: String,
    },
}

/// A row of the `admin_changes` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminChangeRecord {
    /// Its place in the table's order (increasing).
    pub seq: i64,
    /// When it was made, unix nanoseconds.
    pub at: i64,
    /// The change.
    pub change: AdminRecord,
}

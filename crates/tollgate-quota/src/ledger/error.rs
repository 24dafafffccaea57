//! Why a call or an administrative change was refused ([`QuotaError`]), and the redacted
//! form API keys take in errors, reports and events ([`KeyRef`]).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use serde::Serialize;

use crate::period::PeriodError;
use crate::plan::PlanError;

/// A short, non-secret reference to an API key: `key#` and 12 hex digits (48 bits) of
/// SipHash-2-4, a keyed pseudo-random function, of the key under a 128-bit secret. No
/// character of the key appears in it, so it reveals nothing of a key of any length, and
/// without the secret no guess of a short key can be checked against it. API keys never
/// appear otherwise in errors, reports, events or `Debug` output.
///
/// # The secret
/// By default the secret is drawn at random once per process: references agree within a
/// process, not across processes or restarts. A host that wants every instance of a
/// fleet (and every restart) to give a key the same reference sets one secret for all of
/// them with [`KeyRef::set_secret`] at start-up, before any reference is made.
///
/// # Finding a key
/// An operator holding a key finds it in events, reports and errors by computing
/// [`KeyRef::of`]`(key)` in a process with the same secret (the same process, or one
/// given the fleet's secret) and comparing. 48 bits make two keys of one deployment
/// share a reference with a chance of about n² / 2⁴⁹ (one in five million for ten
/// thousand keys): a reference finds a key, it does not authenticate one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct KeyRef(String);

/// The secret references are computed under: SipHash-2-4's two 64-bit keys.
static SECRET: OnceLock<(u64, u64)> = OnceLock::new();

/// The shortest secret [`KeyRef::set_secret`] accepts: 16 bytes (128 bits, SipHash's key
/// size).
pub const KEY_REF_SECRET_MIN_LEN: usize = 16;

/// SipHash-2-4 of `bytes` under `(k0, k1)`.
///
/// `std::hash::SipHasher` is std's own SipHash-2-4, deprecated only as a `HashMap`
/// hasher (for speed; `RandomState` took over). Here it is used for what SipHash is, a
/// keyed pseudo-random function, without a dependency for it.
#[allow(deprecated)]
fn siphash24(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
    h.write(bytes);
    h.finish()
}

impl KeyRef {
    /// The reference of `key`: the same for the same key under the same secret (see
    /// [the type](KeyRef)).
    pub fn of(key: &str) -> Self {
        let &(k0, k1) = SECRET.get_or_init(|| {
            let r = RandomState::new();
            (r.hash_one(0u8), r.hash_one(1u8))
        });
        KeyRef(format!(
            "key#{:012x}",
            siphash24(k0, k1, key.as_bytes()) >> 16
        ))
    }

    /// A reference as the journal stored it (`key#` and 12 lowercase hex digits); `None`
    /// for anything else.
    pub(crate) fn from_stored(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("key#")?;
        (hex.len() == 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| KeyRef(s.to_owned()))
    }

    /// A reference as [`Display`](fmt::Display) shows it (`key#` and 12 lowercase hex
    /// digits), e.g. read back from a store a fleet shares; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::from_stored(s)
    }

    /// Makes every reference of this process be computed under `secret` (at least
    /// [`KEY_REF_SECRET_MIN_LEN`] bytes, for instance 32 random bytes a fleet shares from
    /// its secret store), so that every process given the same secret gives a key the
    /// same reference. Call it at start-up, before any reference is made: once the
    /// secret is chosen (set, or drawn at random by the first [`KeyRef::of`]) it does not
    /// change, and setting a different one is an error. Setting the same one again is
    /// fine. The secret is never stored or shown: two SipHash keys are derived from it.
    pub fn set_secret(secret: &[u8]) -> Result<(), KeyRefSecretError> {
        if secret.len() < KEY_REF_SECRET_MIN_LEN {
            return Err(KeyRefSecretError::TooShort { len: secret.len() });
        }
        // Two independent 64-bit keys: SipHash of the secret under two fixed keys.
        const DOMAIN: (u64, u64) = (0x746f_6c6c_6761_7465, 0x6b65_7972_6566_2d31);
        let keys = (
            siphash24(DOMAIN.0, DOMAIN.1, secret),
            siphash24(DOMAIN.1, DOMAIN.0, secret),
        );
        let chosen = *SECRET.get_or_init(|| keys);
        if chosen == keys {
            Ok(())
        } else {
            Err(KeyRefSecretError::AlreadyChosen)
        }
    }
}

/// Why [`KeyRef::set_secret`] refused a secret (never showing it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRefSecretError {
    /// Shorter than [`KEY_REF_SECRET_MIN_LEN`] bytes.
    TooShort {
        /// Its length in bytes.
        len: usize,
    },
    /// Another secret was already chosen in this process (set, or drawn at random when
    /// the first reference was made): references already made would no longer match.
    AlreadyChosen,
}

impl fmt::Display for KeyRefSecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRefSecretError::TooShort { len } => write!(
                f,
                "the key reference secret has {len} bytes; at least {KEY_REF_SECRET_MIN_LEN} are needed"
            ),
            KeyRefSecretError::AlreadyChosen => f.write_str(
                "another key reference secret is already in use in this process: set it at start-up, before any key reference is made",
            ),
        }
    }
}

impl std::error::Error for KeyRefSecretError {}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({})", self.0)
    }
}

/// Why a call or an administrative change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The API key is not registered (shown redacted).
    UnknownKey(KeyRef),
    /// The key's user is disabled.
    DisabledUser {
        /// The user.
        user: String,
    },
    /// The company is not registered.
    UnknownCompany(String),
    /// The user is not registered.
    UnknownUser(String),
    /// The key is already registered (shown redacted).
    DuplicateKey(KeyRef),
    /// A plan or limit problem.
    Plan(PlanError),
    /// A period problem (bad time zone, timestamp out of range).
    Period(PeriodError),
    /// The store deciding the quota (a shared counter) could not decide.
    Unavailable(String),
    /// The journal has been failing for longer than the bound its owner set (the
    /// engine's `[quota.journal] fail_closed_after`): a call charged now would not be
    /// billed durably, so it is refused.
    JournalFailing {
        /// How long the journal has been failing.
        failing_for: std::time::Duration,
        /// The bound.
        fail_closed_after: std::time::Duration,
    },
    /// The key's company is suspended (refused until resumed).
    CompanySuspended {
        /// The company.
        company: String,
    },
    /// The key's company is terminated (refused for good; its usage is kept).
    CompanyTerminated {
        /// The company.
        company: String,
    },
    /// The user is registered with another company (a user belongs to one company).
    UserOfOtherCompany {
        /// The user.
        user: String,
        /// The company it belongs to.
        company: String,
    },
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::UnknownKey(k) => write!(f, "unknown API key {k}"),
            QuotaError::DisabledUser { user } => write!(f, "user {user:?} is disabled"),
            QuotaError::UnknownCompany(c) => write!(f, "unknown company {c:?}"),
            QuotaError::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            QuotaError::DuplicateKey(k) => write!(f, "API key {k} is already registered"),
            QuotaError::Plan(e) => e.fmt(f),
            QuotaError::Period(e) => e.fmt(f),
            QuotaError::Unavailable(why) => write!(f, "quota store unavailable: {why}"),
            QuotaError::JournalFailing {
                failing_for,
                fail_closed_after,
            } => write!(
                f,
                "the quota journal has been failing for {:.1} s, longer than \
                 fail_closed_after ({:.1} s): the call would not be billed durably",
                failing_for.as_secs_f64(),
                fail_closed_after.as_secs_f64()
            ),
            QuotaError::CompanySuspended { company } => {
                write!(f, "company {company:?} is suspended")
            }
            QuotaError::CompanyTerminated { company } => {
                write!(f, "company {company:?} is terminated")
            }
            QuotaError::UserOfOtherCompany { user, company } => {
                write!(f, "user {user:?} belongs to company {company:?}")
            }
        }
    }
}

impl std::error::Error for QuotaError {}

impl From<PlanError> for QuotaError {
    fn from(e: PlanError) -> Self {
        QuotaError::Plan(e)
    }
}

impl From<PeriodError> for QuotaError {
    fn from(e: PeriodError) -> Self {
        QuotaError::Period(e)
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    /// The SipHash paper's test vector (Aumasson and Bernstein, appendix A): key
    /// 00..0f, message 00..0e, SipHash-2-4 = a129ca6149be45e5.
    #[test]
    fn siphash24_is_siphash_2_4() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }
}

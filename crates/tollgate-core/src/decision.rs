//! What a limiter answers.

use std::fmt;
use std::time::Duration;

/// The answer to one request: enough for a client to behave well and for a server to emit
/// `RateLimit` / `RateLimit-Policy` / `Retry-After` headers
/// (draft-ietf-httpapi-ratelimit-headers).
///
/// All times are nanoseconds relative to the `now` the decision was made at. Whether the
/// request is allowed is [`Decision::allowed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The most cost units the limit admits at once (the GCRA burst, or the sliding
    /// window's count per window).
    pub limit: u64,
    /// Cost units that could still be admitted right now, after this request.
    pub remaining: u64,
    /// For a denied request, how long to wait before the same request is admitted
    /// (assuming no other traffic). Rounded up: waiting exactly this long is enough.
    /// `u64::MAX` when the request can never be admitted within the clock's range.
    /// **Zero exactly when the request is allowed.**
    pub retry_after: u64,
    /// How long until the limit's state is back to that of a key never seen (full
    /// capacity available).
    pub reset_after: u64,
}

impl Decision {
    /// Whether the request may proceed: `retry_after == 0`. A denied request consumed
    /// nothing.
    ///
    /// (Deriving it keeps `Decision` four plain words: no padding byte for callers to
    /// copy, and no way for the two to disagree.)
    #[inline]
    pub fn allowed(&self) -> bool {
        self.retry_after == 0
    }

    /// [`Decision::retry_after`] as a `Duration`.
    pub fn retry_after_duration(&self) -> Duration {
        Duration::from_nanos(self.retry_after)
    }

    /// [`Decision::reset_after`] as a `Duration`.
    pub fn reset_after_duration(&self) -> Duration {
        Duration::from_nanos(self.reset_after)
    }

    /// [`Decision::retry_after`] in whole seconds, rounded up, for the `Retry-After`
    /// header: a client that waits this many seconds is admitted.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.div_ceil(1_000_000_000)
    }

    /// [`Decision::reset_after`] in whole seconds, rounded up (the `t` parameter of the
    /// `RateLimit` header).
    pub fn reset_after_secs(&self) -> u64 {
        self.reset_after.div_ceil(1_000_000_000)
    }
}

/// A request whose cost exceeds the limit's capacity: it can never pass, however long
/// the client waits. This is an error, not a denial, so a caller never retries forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InsufficientCapacity {
    /// The cost asked for.
    pub cost: u64,
    /// The most the limit can ever admit at once.
    pub capacity: u64,
}

impl InsufficientCapacity {
    /// The one cost check every limit applies (core limiters, the engine's backends,
    /// remote stores): `Ok` if a request of `cost` can ever pass a limit of `capacity`,
    /// the error otherwise. A cost of 0 (a probe) always passes.
    #[inline]
    pub fn check(cost: u64, capacity: u64) -> Result<(), InsufficientCapacity> {
        if cost > capacity {
            Err(InsufficientCapacity { cost, capacity })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a request of cost {} can never pass a limit of capacity {}",
            self.cost, self.capacity
        )
    }
}

impl std::error::Error for InsufficientCapacity {}

/// The keyed store has no room for a new key: every slot the key may use holds a key
/// whose state still matters. See [`crate::KeyedStore`] for when this happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreFull {
    /// The store's configured capacity in keys.
    pub capacity: usize,
}

impl fmt::Display for StoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the keyed store is full: all slots for this key hold live state (capacity {} keys)",
            self.capacity
        )
    }
}

impl std::error::Error for StoreFull {}

/// Why a keyed check gave no decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyedError {
    /// The cost can never pass.
    InsufficientCapacity(InsufficientCapacity),
    /// The key is new and the store has no room for it.
    StoreFull(StoreFull),
}

impl fmt::Display for KeyedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedError::InsufficientCapacity(e) => e.fmt(f),
            KeyedError::StoreFull(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KeyedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyedError::InsufficientCapacity(e) => Some(e),
            KeyedError::StoreFull(e) => Some(e),
        }
    }
}

impl From<InsufficientCapacity> for KeyedError {
    fn from(e: InsufficientCapacity) -> Self {
        KeyedError::InsufficientCapacity(e)
    }
}

impl From<StoreFull> for KeyedError {
    fn from(e: StoreFull) -> Self {
        KeyedError::StoreFull(e)
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        let d = Decision {
            limit: 1,
            remaining: 0,
            retry_after: 1_000_000_001,
            reset_after: 999_999_999,
        };
        assert_eq!(d.retry_after_secs(), 2);
        assert_eq!(d.reset_after_secs(), 1);
        assert_eq!(d.retry_after_duration(), Duration::new(1, 1));
    }

    #[test]
    fn errors_explain_themselves() {
        let e = KeyedError::from(InsufficientCapacity {
            cost: 5,
            capacity: 3,
        });
        assert!(e.to_string().contains("can never pass"));
        let e = KeyedError::from(StoreFull { capacity: 9 });
        assert!(e.to_string().contains("full"));
        assert!(std::error::Error::source(&e).is_some());
    }
}

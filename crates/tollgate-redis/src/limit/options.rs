//! A limit's options on Redis ([`LimitOptions`]), among them its default failure policy.

use tollgate::policy::FailurePolicy;

/// Per-limit options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitOptions {
    /// What the engine answers when Redis cannot decide (see [`FailurePolicy`]; the
    /// backend only reports [`Unavailable`](tollgate::backend::BackendError::Unavailable)).
    /// The limit's `on_failure` in the policy file, when set, wins.
    pub failure: FailurePolicy,
    /// Remember keys Redis denied until their `retry_after` passes, and deny them
    /// locally meanwhile without asking Redis (off by default). It never allows a
    /// request Redis would deny: it only denies, and only requests at least as costly as
    /// the one Redis denied, before the time Redis said to wait (measured from when the
    /// denied request was *sent*, so the cache expires no later than Redis's answer).
    /// It may deny a request Redis would allow when capacity came back early (another
    /// instance's undo, a reset or a raised limit).
    pub over_limit_cache: bool,
    /// Keys the engine's fallback limiter ([`FailurePolicy::Fallback`]) and the
    /// over-limit cache hold (default 65,536; at least 64).
    pub local_capacity: usize,
    /// Under [`FailurePolicy::Fallback`]: the fleet's size as this instance assumes it
    /// while Redis cannot decide (default 1; 0 is taken as 1). The backend's own
    /// fallback limiter (which the engine decides with, flagging its decisions
    /// degraded) runs at `1/n` of the limit's rate and burst (at least 1 call) and starts
    /// each key from the last state Redis reported for it, so no instance starts a key
    /// Redis had emptied with a fresh burst, and `n` instances cut off from Redis
    /// together admit about the limit. With the default 1 each instance may admit what
    /// Redis had left for a key plus the limit's refill; a fleet of `n` admits up to `n`
    /// times that during an outage (see `DURABILITY.md`). Its decisions count in
    /// [`LimitStats::fallback`](crate::LimitStats::fallback).
    pub fallback_instances: u32,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            failure: FailurePolicy::Fallback,
            over_limit_cache: false,
            local_capacity: 65_536,
            fallback_instances: 1,
        }
    }
}

impl LimitOptions {
    /// The policy in force for a limit whose policy file says `on_failure` (`None`:
    /// not set): the file's, else these options'.
    pub(crate) fn failure_for(&self, on_failure: Option<FailurePolicy>) -> FailurePolicy {
        on_failure.unwrap_or(self.failure)
    }

    /// [`local_capacity`](Self::local_capacity), at least 64.
    pub(crate) fn local_keys(&self) -> usize {
        self.local_capacity.max(64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_file_wins() {
        let o = LimitOptions {
            failure: FailurePolicy::Open,
            ..LimitOptions::default()
        };
        assert_eq!(o.failure_for(None), FailurePolicy::Open);
        assert_eq!(
            o.failure_for(Some(FailurePolicy::Closed)),
            FailurePolicy::Closed
        );
        assert_eq!(LimitOptions::default().failure, FailurePolicy::Fallback);
        let small = LimitOptions {
            local_capacity: 3,
            ..LimitOptions::default()
        };
        assert_eq!(small.local_keys(), 64);
    }
}

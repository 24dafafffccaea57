//! How much acknowledged work a crash may lose: the [`Durability`] a journal runs with.
//! The promises each setting makes are in the [journal's docs](super#durability).

use std::time::Duration;

/// How much acknowledged work a crash may lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Commit at least every `max_delay` while there is pending work
    /// (`synchronous=NORMAL`): a killed process loses at most the last `max_delay` of
    /// appended entries.
    BoundedLoss {
        /// The longest an appended entry waits before its transaction commits.
        max_delay: Duration,
    },
    /// Group commit with `synchronous=FULL`: commit as soon as there are entries;
    /// [`Journal::wait`](super::Journal::wait) returns once the entry is on disk.
    Strict,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::BoundedLoss {
            max_delay: Duration::from_millis(100),
        }
    }
}

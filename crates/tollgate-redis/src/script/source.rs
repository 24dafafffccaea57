//! The Lua sources as they are sent to Redis (`crates/tollgate-redis/lua/`): each rate
//! script after `prelude.lua` (exact integer division, the clock), each quota script
//! that checks an instance's share after `quota_prelude.lua`. Redis cannot load one
//! script from another, so the shared code is prepended.
//!
//! (Also at `tollgate_redis::store::scripts`.)

use redis::Script;

/// GCRA: acquire or peek.
pub const GCRA: &str = concat!(
    include_str!("../../lua/prelude.lua"),
    include_str!("../../lua/gcra_fn.lua"),
    include_str!("../../lua/gcra.lua")
);
/// GCRA: undo an acquire.
pub const GCRA_UNDO: &str = concat!(
    include_str!("../../lua/prelude.lua"),
    include_str!("../../lua/gcra_fn.lua"),
    include_str!("../../lua/gcra_undo.lua")
);
/// Sliding window: acquire or peek.
pub const WINDOW: &str = concat!(
    include_str!("../../lua/prelude.lua"),
    include_str!("../../lua/window_fn.lua"),
    include_str!("../../lua/window.lua")
);
/// Sliding window: undo an acquire.
pub const WINDOW_UNDO: &str = concat!(
    include_str!("../../lua/prelude.lua"),
    include_str!("../../lua/window_undo.lua")
);
/// Quota: check and add one call.
pub const QUOTA: &str = concat!(
    include_str!("../../lua/quota_prelude.lua"),
    include_str!("../../lua/quota.lua")
);
/// Quota: settle a reservation (commit once per idempotency key, or refund), once.
pub const QUOTA_SETTLE: &str = concat!(
    include_str!("../../lua/quota_prelude.lua"),
    include_str!("../../lua/quota_settle.lua")
);
/// A request's limits and quota call, all or nothing, in one round trip.
pub const REQUEST: &str = concat!(
    include_str!("../../lua/prelude.lua"),
    include_str!("../../lua/gcra_fn.lua"),
    include_str!("../../lua/window_fn.lua"),
    include_str!("../../lua/quota_prelude.lua"),
    include_str!("../../lua/request.lua")
);
/// Quota: seed an instance's share from its ledger.
pub const QUOTA_SEED: &str = include_str!("../../lua/quota_seed.lua");
/// Quota: add a batch of locally counted calls, once.
pub const QUOTA_FLUSH: &str = concat!(
    include_str!("../../lua/quota_prelude.lua"),
    include_str!("../../lua/quota_flush.lua")
);

/// The Lua scripts, loaded once per server with `SCRIPT LOAD` and called with
/// `EVALSHA` (reloaded on `NOSCRIPT`, e.g. after a restart or `SCRIPT FLUSH`).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) gcra: Script,
    pub(crate) gcra_undo: Script,
    pub(crate) window: Script,
    pub(crate) window_undo: Script,
    pub(crate) quota: Script,
    pub(crate) quota_seed: Script,
    pub(crate) quota_flush: Script,
    pub(crate) request: Script,
    pub(crate) quota_settle: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            gcra: Script::new(GCRA),
            gcra_undo: Script::new(GCRA_UNDO),
            window: Script::new(WINDOW),
            window_undo: Script::new(WINDOW_UNDO),
            quota: Script::new(QUOTA),
            quota_seed: Script::new(QUOTA_SEED),
            quota_flush: Script::new(QUOTA_FLUSH),
            request: Script::new(REQUEST),
            quota_settle: Script::new(QUOTA_SETTLE),
        }
    }
}

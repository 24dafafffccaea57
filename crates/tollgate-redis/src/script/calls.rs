//! The scripts' calls: each script's arguments, in the order its header documents, built
//! in one place (the blocking and async paths, and the combined request, share them).

use redis::{Script, ScriptInvocation, ToRedisArgs};
use tollgate::backend::Undo;

use super::params::Params;
use super::reply::unpack_window;
use super::source::Scripts;

/// The clock arguments of a rate script: `now` (`""` on the server's clock, else Unix
/// microseconds) and the extra time to live of the keys written, milliseconds.
pub(crate) type ClockArgs = (String, u64);

/// What a rate script does with the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Take the cost when allowed.
    Acquire,
    /// Take nothing.
    Peek,
}

impl Op {
    fn arg(self) -> &'static str {
        match self {
            Op::Acquire => "a",
            Op::Peek => "p",
        }
    }
}

/// `gcra.lua` or `window.lua` deciding `key`.
pub(crate) fn rate_decide<'a>(
    s: &'a Scripts,
    params: Params,
    key: &str,
    op: Op,
    cost: u64,
    (now, ttl): &ClockArgs,
) -> ScriptInvocation<'a> {
    let (script, p1, p2) = match params {
        Params::Gcra { t_us, tau_us, .. } => (&s.gcra, t_us, tau_us),
        Params::Window { w_us, limit } => (&s.window, w_us, limit),
    };
    let mut inv = script.key(key);
    inv.arg(op.arg())
        .arg(cost)
        .arg(p1)
        .arg(p2)
        .arg(now)
        .arg(*ttl);
    inv
}

/// `gcra_undo.lua` or `window_undo.lua` giving back what `undo` took from `key`.
pub(crate) fn rate_undo<'a>(
    s: &'a Scripts,
    params: Params,
    key: &str,
    undo: Undo,
    (now, ttl): &ClockArgs,
) -> ScriptInvocation<'a> {
    match params {
        Params::Gcra { t_us, .. } => {
            let mut inv = s.gcra_undo.key(key);
            inv.arg(undo.cost)
                .arg(t_us)
                .arg(undo.before)
                .arg(undo.after)
                .arg(now)
                .arg(*ttl);
            inv
        }
        Params::Window { w_us, .. } => {
            let [bw, bp, bc] = unpack_window(undo.before);
            let [aw, ap, ac] = unpack_window(undo.after);
            let mut inv = s.window_undo.key(key);
            inv.arg(undo.cost)
                .arg(w_us)
                .arg(bw)
                .arg(bp)
                .arg(bc)
                .arg(aw)
                .arg(ap)
                .arg(ac)
                .arg(now)
                .arg(*ttl);
            inv
        }
    }
}

/// A quota's hard cap as the scripts take it: -1 for none.
pub(crate) fn cap_arg(hard_cap: Option<u64>) -> i64 {
    hard_cap.map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX))
}

/// A quota script's call on the counter `key` for `instance` (its first argument), then
/// `args`.
fn on_counter<'a>(
    script: &'a Script,
    key: &str,
    instance: &str,
    args: impl ToRedisArgs,
) -> ScriptInvocation<'a> {
    let mut inv = script.key(key);
    inv.arg(instance).arg(args);
    inv
}

/// The keys of one check-and-add: the counter, this process's call-id bitmap chunk the
/// call's bit is in, the warning's and the overage's claim keys.
#[derive(Clone, Debug)]
pub(crate) struct CountKeys {
    pub(crate) counter: String,
    pub(crate) ids: String,
    pub(crate) warning: String,
    pub(crate) overage: String,
}

/// The arguments of one check-and-add (`quota.lua`, and the quota part of
/// `request.lua`), in the scripts' order.
#[derive(Clone, Debug)]
pub(crate) struct CountArgs<'q> {
    pub(crate) instance: &'q str,
    pub(crate) cost: u64,
    /// The hard cap ([`cap_arg`]).
    pub(crate) cap: i64,
    /// The call's bit in its bitmap chunk.
    pub(crate) bit: u64,
    /// How long the bitmap is kept, seconds.
    pub(crate) ids_ttl: u64,
    /// The warning threshold ([`cap_arg`]: -1 for none).
    pub(crate) warning: i64,
    pub(crate) limit: u64,
    /// The call's id: the claim keys' value when it claims a notice.
    pub(crate) id: String,
    /// When the claim keys expire, Unix seconds.
    pub(crate) claims_expire_at: i64,
}

impl CountArgs<'_> {
    fn push(&self, inv: &mut ScriptInvocation<'_>) {
        inv.arg(self.instance)
            .arg(self.cost)
            .arg(self.cap)
            .arg(self.bit)
            .arg(self.ids_ttl)
            .arg(self.warning)
            .arg(self.limit.min(i64::MAX as u64))
            .arg(&self.id)
            .arg(self.claims_expire_at);
    }
}

/// `quota.lua`: check and add one call.
pub(crate) fn quota_count<'a>(
    s: &'a Scripts,
    keys: &CountKeys,
    args: &CountArgs<'_>,
) -> ScriptInvocation<'a> {
    let mut inv = s.quota.prepare_invoke();
    inv.key(&keys.counter)
        .key(&keys.ids)
        .key(&keys.warning)
        .key(&keys.overage);
    args.push(&mut inv);
    inv
}

/// `quota_seed.lua`: seed `instance`'s `share` of the counter `key`, expiring at
/// `expire_at` (Unix seconds).
pub(crate) fn quota_seed<'a>(
    s: &'a Scripts,
    key: &str,
    instance: &str,
    share: u64,
    expire_at: i64,
) -> ScriptInvocation<'a> {
    on_counter(&s.quota_seed, key, instance, (share, expire_at))
}

/// A call whose reply was lost, as a flush sends it: its bitmap (index into the flush's
/// bitmap keys), its bit, its cost, its id.
pub(crate) type UncertainArg<'u> = (usize, u64, u64, &'u str);

/// A flush's batch: its id, the calls in it, and the claim arguments.
pub(crate) struct FlushArgs<'q> {
    pub(crate) instance: &'q str,
    pub(crate) batch: u64,
    pub(crate) calls: u64,
    pub(crate) warning: i64,
    pub(crate) limit: u64,
    pub(crate) claims_expire_at: i64,
    /// The claim keys' value when the batch claims a notice.
    pub(crate) id: String,
    /// How long the call-id bitmaps are kept, seconds.
    pub(crate) ids_ttl: u64,
}

/// `quota_flush.lua`: add a batch to the counter `keys.counter`, taking back the
/// `uncertain` calls Redis counted (they are in bitmaps `ids`).
pub(crate) fn quota_flush<'a>(
    s: &'a Scripts,
    keys: &CountKeys,
    ids: &[String],
    args: &FlushArgs<'_>,
    uncertain: &[UncertainArg<'_>],
) -> ScriptInvocation<'a> {
    let mut inv = s.quota_flush.prepare_invoke();
    inv.key(&keys.counter).key(&keys.warning).key(&keys.overage);
    for k in ids {
        inv.key(k);
    }
    inv.arg(args.instance)
        .arg(args.batch)
        .arg(args.calls)
        .arg(args.warning)
        .arg(args.limit.min(i64::MAX as u64))
        .arg(args.claims_expire_at)
        .arg(&args.id)
        .arg(args.ids_ttl)
        .arg(uncertain.len());
    for &(k, bit, cost, id) in uncertain {
        inv.arg(k + 1).arg(bit).arg(cost).arg(id);
    }
    inv
}

/// `quota_settle.lua`: settlement `id` of a reservation that held `held`; `commit` is
/// the final cost and idempotency key, `None` for a refund.
pub(crate) fn quota_settle<'a>(
    s: &'a Scripts,
    key: &str,
    instance: &str,
    id: u64,
    held: u64,
    commit: Option<(u64, &str)>,
) -> ScriptInvocation<'a> {
    let mut inv = on_counter(&s.quota_settle, key, instance, (id, held));
    match commit {
        Some((final_cost, k)) => inv.arg(final_cost.min(i64::MAX as u64)).arg(k),
        None => inv.arg("").arg(""),
    };
    inv
}

/// One limit of a combined request: its parameters, whether it is a shadow limit, its
/// cost.
pub(crate) struct RequestLimit {
    pub(crate) params: Params,
    pub(crate) shadow: bool,
    pub(crate) cost: u64,
}

/// `request.lua`: `limits` on `keys` (one per limit), then the quota's call on its
/// keys when `quota` is given, in order.
pub(crate) fn request<'a>(
    s: &'a Scripts,
    keys: &[String],
    (now, ttl): &ClockArgs,
    limits: &[RequestLimit],
    quota: Option<(&CountKeys, &CountArgs<'_>)>,
) -> ScriptInvocation<'a> {
    let mut inv = s.request.prepare_invoke();
    for k in keys {
        inv.key(k);
    }
    if let Some((k, _)) = quota {
        inv.key(&k.counter)
            .key(&k.ids)
            .key(&k.warning)
            .key(&k.overage);
    }
    inv.arg(now).arg(*ttl).arg(limits.len());
    for l in limits {
        let enforced = if l.shadow { "0" } else { "1" };
        let (kind, p1, p2) = match l.params {
            Params::Gcra { t_us, tau_us, .. } => ("g", t_us, tau_us),
            Params::Window { w_us, limit } => ("w", w_us, limit),
        };
        inv.arg(kind).arg(enforced).arg(l.cost).arg(p1).arg(p2);
    }
    if let Some((_, q)) = quota {
        q.push(&mut inv);
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_argument() {
        assert_eq!(cap_arg(None), -1);
        assert_eq!(cap_arg(Some(18)), 18);
        assert_eq!(cap_arg(Some(u64::MAX)), i64::MAX);
    }

    #[test]
    fn op_arguments() {
        assert_eq!((Op::Acquire.arg(), Op::Peek.arg()), ("a", "p"));
    }
}

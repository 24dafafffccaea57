//! The scripts' replies, each parsed once into a typed struct: a reply of another shape
//! (length, status) is a [`ReplyError`], never an index read past the end or a silent
//! zero. The layouts are documented in each script (`lua/*.lua`).

use std::fmt;

use tollgate::backend::Undo;
use tollgate::core::Decision;

/// A script's reply was not of the shape the script returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplyError {
    /// The script.
    script: &'static str,
    /// What was wrong.
    why: String,
}

impl ReplyError {
    pub(crate) fn new(script: &'static str, why: impl Into<String>) -> Self {
        ReplyError {
            script,
            why: why.into(),
        }
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed reply of {}: {}", self.script, self.why)
    }
}

impl std::error::Error for ReplyError {}

/// The reply's `N` integers, or an error if it has another length.
fn exact<const N: usize>(r: &[i64], script: &'static str) -> Result<[i64; N], ReplyError> {
    r.try_into()
        .map_err(|_| ReplyError::new(script, format!("{} values instead of {N}: {r:?}", r.len())))
}

/// A count, clamped at zero as the scripts' counts never go below it.
fn count(v: i64) -> u64 {
    v.max(0) as u64
}

/// A 0/1 flag.
fn flag(v: i64, script: &'static str, what: &str) -> Result<bool, ReplyError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ReplyError::new(
            script,
            format!("{what} is {v}, not 0 or 1"),
        )),
    }
}

/// A sliding window's state (window number, previous and current counts) packed in one
/// `u64` like tollgate-core's, for an [`Undo`].
pub(crate) fn pack_window(w: u64, p: u64, c: u64) -> u64 {
    ((w & 0xFFFF_FFFF) << 32) | (p << 16) | c
}

/// [`pack_window`] undone: `[window number, previous, current]`.
pub(crate) fn unpack_window(s: u64) -> [u64; 3] {
    [s >> 32, (s >> 16) & 0xFFFF, s & 0xFFFF]
}

/// A rate script's reply (`gcra()` of `gcra_fn.lua`, `window()` of `window_fn.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateReply {
    pub(crate) allowed: bool,
    pub(crate) remaining: u64,
    pub(crate) retry_after_us: u64,
    pub(crate) reset_after_us: u64,
    /// The state before and after the call (GCRA: TAT in microseconds; sliding window:
    /// [`pack_window`]ed), for an undo.
    pub(crate) before: u64,
    pub(crate) after: u64,
}

impl RateReply {
    /// Parses GCRA's 6 values (`window == false`) or the sliding window's 10.
    pub(crate) fn parse(r: &[i64], window: bool) -> Result<Self, ReplyError> {
        let (head, before, after) = if window {
            const S: &str = "window.lua";
            let [a, rem, retry, reset, bw, bp, bc, aw, ap, ac] = exact::<10>(r, S)?;
            let p = |w, p, c| pack_window(count(w), count(p), count(c));
            ((a, rem, retry, reset, S), p(bw, bp, bc), p(aw, ap, ac))
        } else {
            const S: &str = "gcra.lua";
            let [a, rem, retry, reset, before, after] = exact::<6>(r, S)?;
            ((a, rem, retry, reset, S), count(before), count(after))
        };
        let (a, remaining, retry, reset, script) = head;
        Ok(RateReply {
            allowed: flag(a, script, "allowed")?,
            remaining: count(remaining),
            retry_after_us: count(retry),
            reset_after_us: count(reset),
            before,
            after,
        })
    }

    /// The decision, for a limit of `capacity` units, in nanoseconds.
    pub(crate) fn decision(&self, capacity: u64) -> Decision {
        let ns = |us: u64| us.saturating_mul(1000);
        Decision {
            limit: capacity,
            remaining: self.remaining,
            retry_after: if self.allowed {
                0
            } else {
                ns(self.retry_after_us).max(1)
            },
            reset_after: ns(self.reset_after_us),
        }
    }

    /// The undo record of an allowed call of `cost` that changed the state.
    pub(crate) fn undo(&self, cost: u64) -> Option<Undo> {
        (self.allowed && self.before != self.after).then_some(Undo {
            cost,
            before: self.before,
            after: self.after,
        })
    }
}

/// A quota counter's answer to a call (`check_and_add()` of `quota_prelude.lua`:
/// `{status, used, won, shares}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CountReply {
    /// Status 1: counted; the counter's usage after, the notices the call claimed
    /// ([`Won`]), the instances with a share.
    Counted { used: u64, won: Won, shares: u64 },
    /// Status 0: refused over the hard cap; the counter's usage, the instances with a
    /// share.
    Refused { used: u64, shares: u64 },
    /// Status -1/-2: this instance's share is missing (seed it and call again).
    MissingShare,
}

/// The notice claims a script won for the fleet (see `claim_crossed` in
/// `quota_prelude.lua`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Won {
    pub(crate) warning: bool,
    pub(crate) overage: bool,
}

impl Won {
    fn parse(v: i64, script: &'static str) -> Result<Self, ReplyError> {
        if !(0..=3).contains(&v) {
            return Err(ReplyError::new(script, format!("claims won {v}")));
        }
        Ok(Won {
            warning: v & 1 != 0,
            overage: v & 2 != 0,
        })
    }

    /// Whether any claim was won.
    pub(crate) fn any(self) -> bool {
        self.warning || self.overage
    }
}

impl CountReply {
    const SCRIPT: &'static str = "quota.lua";

    fn of(status: i64, used: i64, won: i64, shares: i64) -> Result<Self, ReplyError> {
        let used = count(used);
        let shares = count(shares);
        match status {
            1 => Ok(CountReply::Counted {
                used,
                won: Won::parse(won, Self::SCRIPT)?,
                shares,
            }),
            0 => Ok(CountReply::Refused { used, shares }),
            -1 | -2 => Ok(CountReply::MissingShare),
            s => Err(ReplyError::new(Self::SCRIPT, format!("status {s}"))),
        }
    }

    /// Parses `{status, used, won, shares}`.
    pub(crate) fn parse(r: &[i64]) -> Result<Self, ReplyError> {
        let [status, used, won, shares] = exact::<4>(r, Self::SCRIPT)?;
        Self::of(status, used, won, shares)
    }
}

/// The combined request script's reply (`lua/request.lua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestReply {
    /// Whether the writes were made (every enforced limit allowed, the quota counted).
    pub(crate) committed: bool,
    /// The limits decided, in order (they stop at the first enforced denial).
    pub(crate) limits: Vec<RateReply>,
    /// The quota's answer; `None` when the quota was not asked or not reached.
    pub(crate) quota: Option<CountReply>,
}

impl RequestReply {
    const SCRIPT: &'static str = "request.lua";

    /// Parses the reply of a request whose limits are sliding windows where `windows`
    /// says so (one entry per limit sent).
    pub(crate) fn parse(r: &[Vec<i64>], windows: &[bool]) -> Result<Self, ReplyError> {
        let (head, replies) = r
            .split_first()
            .ok_or_else(|| ReplyError::new(Self::SCRIPT, "empty reply"))?;
        let [committed, decided, status, used, won, shares] = exact::<6>(head, Self::SCRIPT)?;
        usize::try_from(decided)
            .ok()
            .filter(|&d| d <= windows.len() && d == replies.len())
            .ok_or_else(|| {
                ReplyError::new(
                    Self::SCRIPT,
                    format!(
                        "{decided} limits decided, {} replies, {} limits sent",
                        replies.len(),
                        windows.len()
                    ),
                )
            })?;
        let limits = replies
            .iter()
            .zip(windows)
            .map(|(r, &w)| RateReply::parse(r, w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RequestReply {
            committed: flag(committed, Self::SCRIPT, "committed")?,
            limits,
            quota: match status {
                9 => None,
                s => Some(CountReply::of(s, used, won, shares)?),
            },
        })
    }
}

/// A flush's reply (`lua/quota_flush.lua`: `{status, used, won, taken_back}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlushReply {
    /// Status 1: the batch was added; the counter's usage after, the notices it
    /// claimed, the uncertain calls Redis had counted and took back.
    Added {
        used: u64,
        won: Won,
        taken_back: u64,
    },
    /// Status 2: Redis had added it already (a retry); the notices the batch had
    /// claimed then (its reply may have been lost).
    Duplicate { used: u64, won: Won },
    /// Status -1/-2: this instance's share is missing.
    MissingShare,
}

impl FlushReply {
    /// Parses `{status, used, won, taken_back}`.
    pub(crate) fn parse(r: &[i64]) -> Result<Self, ReplyError> {
        const S: &str = "quota_flush.lua";
        let [status, used, won, back] = exact::<4>(r, S)?;
        let used = count(used);
        match status {
            1 => Ok(FlushReply::Added {
                used,
                won: Won::parse(won, S)?,
                taken_back: count(back),
            }),
            2 => Ok(FlushReply::Duplicate {
                used,
                won: Won::parse(won, S)?,
            }),
            -1 | -2 => Ok(FlushReply::MissingShare),
            s => Err(ReplyError::new(S, format!("status {s}"))),
        }
    }
}

/// A seed's reply (`lua/quota_seed.lua`: `{seeded, used, existed}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeedReply {
    /// Whether this instance's share was added (else it was there).
    pub(crate) seeded: bool,
    /// The counter's usage after.
    pub(crate) used: u64,
}

impl SeedReply {
    /// Parses `{seeded, used, existed}`.
    pub(crate) fn parse(r: &[i64]) -> Result<Self, ReplyError> {
        const S: &str = "quota_seed.lua";
        let [seeded, used, existed] = exact::<3>(r, S)?;
        flag(existed, S, "existed")?;
        Ok(SeedReply {
            seeded: flag(seeded, S, "seeded")?,
            used: count(used),
        })
    }
}

/// A settlement's reply (`lua/quota_settle.lua`: `{status, used}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SettleReply {
    /// Status 1, 2 or 3: applied, now or by an earlier attempt; `first`: a commit whose
    /// idempotency key was new, or a refund (status 1).
    Applied { first: bool, used: u64 },
    /// Status -1/-2: this instance's share is missing (seed and send again).
    MissingShare,
}

impl SettleReply {
    /// Parses `{status, used}`.
    pub(crate) fn parse(r: &[i64]) -> Result<Self, ReplyError> {
        const S: &str = "quota_settle.lua";
        let [status, used] = exact::<2>(r, S)?;
        let used = count(used);
        match status {
            1 => Ok(SettleReply::Applied { first: true, used }),
            2 | 3 => Ok(SettleReply::Applied { first: false, used }),
            -1 | -2 => Ok(SettleReply::MissingShare),
            s => Err(ReplyError::new(S, format!("status {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_reply() {
        let r = RateReply::parse(&[1, 4, 0, 200, 10, 30], false).unwrap();
        assert!(r.allowed);
        assert_eq!(
            r.decision(5),
            Decision {
                limit: 5,
                remaining: 4,
                retry_after: 0,
                reset_after: 200_000
            }
        );
        assert_eq!(
            r.undo(2),
            Some(Undo {
                cost: 2,
                before: 10,
                after: 30
            })
        );
        // A denial: retry at least 1 ns, no undo.
        let d = RateReply::parse(&[0, 0, 0, 5, 30, 30], false).unwrap();
        assert_eq!(d.decision(5).retry_after, 1);
        assert_eq!(d.undo(1), None);
        // An allowed call that changed nothing (cost 0) has no undo.
        assert_eq!(
            RateReply::parse(&[1, 5, 0, 0, 7, 7], false)
                .unwrap()
                .undo(0),
            None
        );
    }

    #[test]
    fn window_reply_packs_the_states() {
        let r = RateReply::parse(&[1, 2, 0, 9, 3, 1, 2, 3, 1, 4], true).unwrap();
        assert_eq!(r.before, pack_window(3, 1, 2));
        assert_eq!(r.after, pack_window(3, 1, 4));
        assert_eq!(unpack_window(r.after), [3, 1, 4]);
        assert_eq!(
            unpack_window(pack_window(0xFFFF_FFFF, 65_535, 7)),
            [0xFFFF_FFFF, 65_535, 7]
        );
    }

    #[test]
    fn malformed_rate_replies_are_errors() {
        assert!(RateReply::parse(&[], false).is_err());
        assert!(RateReply::parse(&[1, 4, 0, 200, 10], false).is_err());
        // A window's reply read as GCRA's, and the other way round.
        assert!(RateReply::parse(&[1, 2, 0, 9, 3, 1, 2, 3, 1, 4], false).is_err());
        assert!(RateReply::parse(&[1, 4, 0, 200, 10, 30], true).is_err());
        let e = RateReply::parse(&[2, 4, 0, 200, 10, 30], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed reply of gcra.lua: allowed is 2, not 0 or 1"
        );
    }

    #[test]
    fn quota_replies() {
        assert_eq!(
            CountReply::parse(&[1, 7, 2, 1]),
            Ok(CountReply::Counted {
                used: 7,
                won: Won {
                    warning: false,
                    overage: true
                },
                shares: 1
            })
        );
        assert_eq!(
            CountReply::parse(&[0, 18, 0, 2]),
            Ok(CountReply::Refused {
                used: 18,
                shares: 2
            })
        );
        assert_eq!(
            CountReply::parse(&[-1, 0, 0, 0]),
            Ok(CountReply::MissingShare)
        );
        assert_eq!(
            CountReply::parse(&[-2, 5, 0, 0]),
            Ok(CountReply::MissingShare)
        );
        assert!(CountReply::parse(&[3, 5, 0, 0]).is_err());
        assert!(CountReply::parse(&[1, 5, 4, 0]).is_err(), "claims won 4");
        assert!(CountReply::parse(&[1]).is_err());

        assert_eq!(
            FlushReply::parse(&[1, 9, 1, 2]),
            Ok(FlushReply::Added {
                used: 9,
                won: Won {
                    warning: true,
                    overage: false
                },
                taken_back: 2
            })
        );
        assert_eq!(
            FlushReply::parse(&[2, 9, 2, 0]),
            Ok(FlushReply::Duplicate {
                used: 9,
                won: Won {
                    warning: false,
                    overage: true
                }
            })
        );
        assert_eq!(
            FlushReply::parse(&[-2, 9, 0, 0]),
            Ok(FlushReply::MissingShare)
        );
        assert!(FlushReply::parse(&[0, 9, 0, 0]).is_err());

        assert_eq!(
            SeedReply::parse(&[1, 12, 0]),
            Ok(SeedReply {
                seeded: true,
                used: 12
            })
        );
        assert!(SeedReply::parse(&[1, 12]).is_err());

        assert_eq!(
            SettleReply::parse(&[1, 4]),
            Ok(SettleReply::Applied {
                first: true,
                used: 4
            })
        );
        for s in [2, 3] {
            assert_eq!(
                SettleReply::parse(&[s, 4]),
                Ok(SettleReply::Applied {
                    first: false,
                    used: 4
                })
            );
        }
        assert_eq!(SettleReply::parse(&[-1, 0]), Ok(SettleReply::MissingShare));
        assert!(SettleReply::parse(&[0, 4]).is_err());
    }

    #[test]
    fn request_reply() {
        let gcra = vec![1, 4, 0, 200, 10, 30];
        let window = vec![0, 0, 50, 9, 3, 1, 2, 3, 1, 2];
        let r = RequestReply::parse(
            &[vec![0, 2, 9, 0, 0, 0], gcra.clone(), window.clone()],
            &[false, true, false],
        )
        .unwrap();
        assert!(!r.committed);
        assert_eq!(r.limits.len(), 2);
        assert!(r.limits[0].allowed && !r.limits[1].allowed);
        assert_eq!(r.quota, None);
        let r = RequestReply::parse(&[vec![1, 1, 1, 7, 0, 1], gcra.clone()], &[false]).unwrap();
        assert!(r.committed);
        assert_eq!(
            r.quota,
            Some(CountReply::Counted {
                used: 7,
                won: Won::default(),
                shares: 1
            })
        );
        let r = RequestReply::parse(&[vec![0, 1, -1, 0, 0, 0], gcra.clone()], &[false]).unwrap();
        assert_eq!(r.quota, Some(CountReply::MissingShare));
    }

    #[test]
    fn malformed_request_replies_are_errors() {
        let gcra = vec![1, 4, 0, 200, 10, 30];
        // Empty; a short head; more decided than replies; more than sent; a bad limit.
        assert!(RequestReply::parse(&[], &[false]).is_err());
        assert!(RequestReply::parse(&[vec![1, 1, 9]], &[false]).is_err());
        assert!(
            RequestReply::parse(&[vec![1, 2, 9, 0, 0, 0], gcra.clone()], &[false, false]).is_err()
        );
        assert!(RequestReply::parse(
            &[vec![1, 2, 9, 0, 0, 0], gcra.clone(), gcra.clone()],
            &[false]
        )
        .is_err());
        assert!(RequestReply::parse(&[vec![1, 1, 9, 0, 0, 0], gcra.clone()], &[true]).is_err());
        assert!(RequestReply::parse(&[vec![1, -1, 9, 0]], &[false]).is_err());
        assert!(RequestReply::parse(&[vec![1, 1, 4, 0], gcra], &[false]).is_err());
    }
}

//! A limit's algorithm parameters in the scripts' units (integer microseconds), with
//! the bounds that keep the scripts' arithmetic exact in a Lua double.

use tollgate::core::Rate;
use tollgate::policy::AlgorithmKind;

/// The algorithm's parameters in the scripts' units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Params {
    Gcra { t_us: u64, tau_us: u64, burst: u64 },
    Window { w_us: u64, limit: u64 },
}

/// Largest Unix time in microseconds the bounds below leave room for: year 2096.
const MAX_NOW_US: u64 = 4_000_000_000_000_000;
/// Integers in a Lua double are exact below this.
const LUA_EXACT: u64 = 1 << 53;

impl Params {
    pub(crate) fn new(kind: AlgorithmKind, rate: Rate) -> Result<Self, String> {
        match kind {
            AlgorithmKind::Gcra => {
                let t_us = rate.emission_interval_nanos().div_ceil(1000).max(1);
                let burst = rate.burst();
                let tau_us = t_us
                    .checked_mul(burst)
                    .filter(|tau| tau.saturating_mul(2) <= LUA_EXACT - MAX_NOW_US)
                    .ok_or_else(|| {
                        format!(
                            "rate {rate}: burst x emission interval is too long for exact \
                             arithmetic in Redis (at most about 27 years)"
                        )
                    })?;
                Ok(Params::Gcra {
                    t_us,
                    tau_us,
                    burst,
                })
            }
            AlgorithmKind::SlidingWindow => {
                // The same checks as the in-memory window (>= 1 s, <= 65,535 per window).
                tollgate::core::SlidingWindow::new(rate).map_err(|e| e.to_string())?;
                let w_ns = rate.period_nanos();
                if !w_ns.is_multiple_of(1000) {
                    return Err(format!(
                        "rate {rate}: a sliding window on Redis must be a whole number of \
                         microseconds"
                    ));
                }
                let w_us = w_ns / 1000;
                let limit = rate.count();
                if u128::from(limit) * u128::from(w_us) * 4 >= u128::from(LUA_EXACT - MAX_NOW_US) {
                    return Err(format!(
                        "rate {rate}: limit x window is too large for exact arithmetic in \
                         Redis; use gcra or a shorter window"
                    ));
                }
                Ok(Params::Window { w_us, limit })
            }
        }
    }

    /// The limit's capacity in cost units (GCRA's burst, the window's limit).
    pub(crate) fn capacity(&self) -> u64 {
        match *self {
            Params::Gcra { burst, .. } => burst,
            Params::Window { limit, .. } => limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    #[test]
    fn gcra_interval_rounds_up_to_a_microsecond() {
        assert_eq!(
            Params::new(AlgorithmKind::Gcra, rate("3/s")).unwrap(),
            Params::Gcra {
                t_us: 333_334,
                tau_us: 333_334 * 3,
                burst: 3
            }
        );
        assert_eq!(
            Params::new(AlgorithmKind::Gcra, rate("1000/s"))
                .unwrap()
                .capacity(),
            1000
        );
    }

    #[test]
    fn window_params_and_capacity() {
        let p = Params::new(AlgorithmKind::SlidingWindow, rate("5/s")).unwrap();
        assert_eq!(
            p,
            Params::Window {
                w_us: 1_000_000,
                limit: 5
            }
        );
        assert_eq!(p.capacity(), 5);
    }
}

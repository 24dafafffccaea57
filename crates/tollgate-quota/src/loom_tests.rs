//! Loom models of the quota counter: run with
//! `RUSTFLAGS="--cfg tollgate_loom" cargo test -p tollgate-quota --release --lib loom`.

use loom::sync::Arc;
use loom::thread;

use crate::counter::{Charge, Counter, Crossings};

/// Three threads each record a call of cost 1 against a limit of 1 (warning at 1, hard
/// cap 3). Two of them take usage over the limit (to 2 and to 3) and race to raise the
/// overage notice: in every interleaving exactly one overage and one warning are raised.
/// A fourth call is refused by the cap.
#[test]
fn overage_notice_exactly_once_under_concurrent_records() {
    loom::model(|| {
        let c = Arc::new(Counter::new());
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let c = Arc::clone(&c);
                thread::spawn(move || match c.charge(1, Some(3)) {
                    Charge::Counted { prev, used } => (true, c.crossing(prev, used, 1, Some(1))),
                    Charge::Refused { .. } => (false, Crossings::NONE),
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let counted = results.iter().filter(|(ok, _)| *ok).count();
        let overages = results.iter().filter(|(_, n)| n.overage).count();
        let warnings = results.iter().filter(|(_, n)| n.warning).count();
        assert_eq!(counted, 3);
        assert_eq!((warnings, overages), (1, 1));
        assert_eq!(c.used(), 3);
        assert_eq!(c.charge(1, Some(3)), Charge::Refused { used: 3 });
    });
}

/// A refund (settling a hold down to zero) racing a charge against the cap: the cap is
/// never exceeded and no unit is lost.
#[test]
fn settle_racing_charge() {
    loom::model(|| {
        let c = Arc::new(Counter::new());
        assert_eq!(c.charge(2, Some(2)), Charge::Counted { prev: 0, used: 2 });
        let c2 = Arc::clone(&c);
        let refunder = thread::spawn(move || {
            c2.settle(2, 0);
        });
        let charged = matches!(c.charge(1, Some(2)), Charge::Counted { .. });
        refunder.join().unwrap();
        // Charged only if the refund came first; either way the total is exact.
        assert_eq!(c.used(), u64::from(charged));
    });
}

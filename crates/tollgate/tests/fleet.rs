//! Issue #17, item 6: the engine's side of revocations shared by a fleet
//! (`RevocationSync`), with an in-process sync standing in for Redis: what one engine
//! publishes, delivered to another, refuses the token there before its next decision;
//! an older delivered change never undoes a newer local one; a whole-set delivery keeps
//! the engine's unconfirmed changes; the inbox can hand back the whole set.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate::engine::{FleetRevocation, RevocationInbox, RevocationSync};
use tollgate::{Engine, Policy, Reason, Request};

/// A sync that only records: the test carries changes between engines.
#[derive(Debug, Default)]
struct Manual {
    inbox: Mutex<Option<Arc<RevocationInbox>>>,
    published: AtomicUsize,
}

impl Manual {
    fn inbox(&self) -> Arc<RevocationInbox> {
        Arc::clone(self.inbox.lock().unwrap().as_ref().expect("attached"))
    }
}

impl RevocationSync for Manual {
    fn fingerprint(&self, value: &str) -> u128 {
        // Deterministic across engines (a real sync keys it with the fleet's secret).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        value.hash(&mut h);
        let a = h.finish();
        "second half".hash(&mut h);
        (u128::from(a) << 64) | u128::from(h.finish())
    }

    fn attach(&self, inbox: Arc<RevocationInbox>) {
        *self.inbox.lock().unwrap() = Some(inbox);
    }

    fn publish(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }
}

fn engine() -> (Engine, Arc<Manual>) {
    let (policy, _) = Policy::from_toml(
        "version = 1\n[[limit]]\nname = \"t\"\nkey = [\"token\"]\nrate = \"1000/s\"\n",
    )
    .unwrap();
    let sync = Arc::new(Manual::default());
    let e = Engine::builder(policy)
        .revocation_sync(Arc::clone(&sync) as Arc<dyn RevocationSync>)
        .build()
        .unwrap();
    (e, sync)
}

fn reason(e: &Engine, token: &str) -> Reason {
    e.decide(&Request::new().token(token)).reason
}

const TOKEN: &str = "sk_live_fleet_token_0123456789";

#[test]
fn a_change_published_by_one_engine_and_delivered_to_another_applies_there() {
    let (a, sa) = engine();
    let (b, sb) = engine();
    assert!(a.admin().revoke(TOKEN));
    assert_eq!(sa.published.load(Ordering::Relaxed), 1);
    assert_eq!(a.revocations_unshared(), Some(1));
    let pending = sa.inbox().pending();
    assert_eq!(pending.len(), 1);
    assert!(matches!(
        &pending[0],
        FleetRevocation::Revoked { until: None, .. }
    ));
    assert!(!format!("{pending:?}").contains("sk_live"), "{pending:?}");

    // Written and read back: confirmed on A; delivered to B.
    sa.inbox().deliver(pending.clone(), &pending);
    assert_eq!(a.revocations_unshared(), Some(0));
    assert_eq!(reason(&b, TOKEN), Reason::Allowed, "nothing delivered yet");
    sb.inbox().deliver(pending.clone(), &[]);
    assert_eq!(reason(&b, TOKEN), Reason::Revoked);
    assert_eq!(b.revoked(), a.revoked());
    // B never publishes what it received.
    assert_eq!(sb.published.load(Ordering::Relaxed), 0);
    assert_eq!(b.revocations_unshared(), Some(0));

    // A restoration on B, delivered to A.
    assert!(b.admin().restore(TOKEN));
    let restored = sb.inbox().pending();
    assert_eq!(
        restored,
        vec![FleetRevocation::Restored {
            fingerprint: pending[0].fingerprint()
        }]
    );
    sa.inbox().deliver(restored, &[]);
    assert_eq!(reason(&a, TOKEN), Reason::Allowed);
    assert!(!a.is_revoked(TOKEN));
}

#[test]
fn a_suspension_delivered_ends_at_its_own_time() {
    let (a, sa) = engine();
    let (b, sb) = engine();
    assert!(a.admin().suspend_token(TOKEN, Duration::from_millis(300)));
    sb.inbox().deliver(sa.inbox().pending(), &[]);
    assert_eq!(reason(&b, TOKEN), Reason::Revoked);
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(reason(&b, TOKEN), Reason::Allowed);
    assert_eq!(reason(&a, TOKEN), Reason::Allowed);
}

#[test]
fn an_older_delivered_change_never_undoes_a_newer_local_one() {
    let (a, sa) = engine();
    let fp = sa.fingerprint(TOKEN);
    assert!(a.admin().revoke(TOKEN));
    // A restoration another instance made earlier arrives before A's revocation was
    // written: A keeps its own, newer change.
    sa.inbox()
        .deliver(vec![FleetRevocation::Restored { fingerprint: fp }], &[]);
    assert_eq!(reason(&a, TOKEN), Reason::Revoked);
    // A whole-set delivery without it (read before A's write) keeps it too.
    sa.inbox().replace(Vec::new(), &[]);
    assert_eq!(reason(&a, TOKEN), Reason::Revoked);
    assert_eq!(a.revocations_unshared(), Some(1));
}

#[test]
fn a_whole_set_delivery_replaces_the_confirmed_set() {
    let (a, sa) = engine();
    let (b, sb) = engine();
    assert!(a.admin().revoke(TOKEN));
    assert!(a.admin().revoke("another-token-abcdefgh"));
    let pending = sa.inbox().pending();
    sa.inbox().deliver(Vec::new(), &pending);
    sb.inbox().replace(pending.clone(), &[]);
    assert_eq!(reason(&b, TOKEN), Reason::Revoked);
    assert_eq!(reason(&b, "another-token-abcdefgh"), Reason::Revoked);
    // The fleet's set now holds only one: the other was restored while B missed the log.
    let keep: Vec<FleetRevocation> = pending
        .into_iter()
        .filter(|c| c.fingerprint() == sa.fingerprint(TOKEN))
        .collect();
    sb.inbox().replace(keep, &[]);
    assert_eq!(reason(&b, TOKEN), Reason::Revoked);
    assert_eq!(reason(&b, "another-token-abcdefgh"), Reason::Allowed);
    assert_eq!(b.revoked().len(), 1);
}

#[test]
fn the_inbox_hands_back_the_whole_set_when_the_store_lost_it() {
    let (a, sa) = engine();
    let (b, sb) = engine();
    assert!(a.admin().revoke(TOKEN));
    let pending = sa.inbox().pending();
    sa.inbox().deliver(Vec::new(), &pending);
    sb.inbox().deliver(pending.clone(), &[]);
    assert_eq!(reason(&b, TOKEN), Reason::Revoked);
    // Redis restarted empty: both write back what they hold, without a decision.
    let now = a.now();
    assert_eq!(sa.inbox().share_local_set(now), 1);
    assert_eq!(sb.inbox().share_local_set(now), 1);
    assert_eq!(sb.inbox().pending(), pending);
    assert_eq!(sb.inbox().share_local_set(now), 0, "already pending");
}

#[test]
fn without_a_sync_nothing_is_pending() {
    let (policy, _) = Policy::from_toml("version = 1").unwrap();
    let e = Engine::new(policy).unwrap();
    assert!(e.revoke(TOKEN));
    assert_eq!(e.revocations_unshared(), None);
    assert!(e.is_revoked(TOKEN));
}

#[test]
fn a_restoration_from_the_fleet_forgets_the_values_denials() {
    let policy = "version = 1\n[[limit]]\nname = \"t\"\nkey = [\"token\"]\nrate = \"1/h\"\n\
                  [revocation]\ndenials = 2\nwindow = \"1h\"\n";
    let build = || {
        let (policy, _) = Policy::from_toml(policy).unwrap();
        let sync = Arc::new(Manual::default());
        let e = Engine::builder(policy)
            .revocation_sync(Arc::clone(&sync) as Arc<dyn RevocationSync>)
            .build()
            .unwrap();
        (e, sync)
    };
    let (a, sa) = build();
    let (b, sb) = build();
    assert_eq!(reason(&b, TOKEN), Reason::Allowed);
    assert_eq!(reason(&b, TOKEN), Reason::Limited, "denial 1 of 2");
    assert!(!b.is_revoked(TOKEN));
    // Revoked and restored elsewhere.
    assert!(a.admin().revoke(TOKEN));
    sb.inbox().deliver(sa.inbox().pending(), &[]);
    assert!(b.is_revoked(TOKEN));
    assert!(a.admin().restore(TOKEN));
    sb.inbox().deliver(sa.inbox().pending(), &[]);
    assert!(!b.is_revoked(TOKEN));
    // B's next denial is the first again: not revoked.
    assert_eq!(reason(&b, TOKEN), Reason::Limited);
    assert!(
        !b.is_revoked(TOKEN),
        "the denial before the restoration still counted"
    );
    assert_eq!(reason(&b, TOKEN), Reason::Limited);
    assert!(b.is_revoked(TOKEN), "two denials after it revoke");
}

//! The async (tokio) path: many tasks on one multiplexed connection decide exactly like
//! the blocking path, undo gives back, and an outage is reported through the same
//! breaker (the engine's failure policy then decides: its local fallback limiter). On
//! one server and on a 3-node cluster.

use std::sync::Arc;

use tollgate::backend::{BackendError, LimitBackend, LimitKey};
use tollgate::core::Rate;
use tollgate::policy::{Attr, LimitSpec};
use tollgate::{Engine, Policy, Request};
use tollgate_redis::testing::{RedisCluster, RedisServer};
use tollgate_redis::{BreakerConfig, RedisBackend, RedisConfig, RedisFactory, RedisStore};

fn backend(config: RedisConfig, name: &str) -> (Arc<RedisBackend>, Arc<RedisStore>) {
    let store = RedisStore::new(config).unwrap();
    let rate: Rate = "50/day".parse().unwrap();
    let mut spec = LimitSpec::new(name, rate);
    spec.key = vec![Attr::Company];
    let b = RedisFactory::new(Arc::clone(&store))
        .backend(&spec, rate)
        .unwrap();
    (Arc::new(b), store)
}

/// An engine with the same limit on `store` (the failure policy is the engine's).
fn engine(store: &Arc<RedisStore>, name: &str) -> Engine {
    let policy = format!(
        "version = 1\n[[limit]]\nname = \"{name}\"\nkey = [\"company\"]\nrate = \"50/day\"\nbackend = \"redis\"\n"
    );
    Engine::builder(Policy::from_toml(&policy).unwrap().0)
        .backend("redis", Arc::new(RedisFactory::new(Arc::clone(store))))
        .build()
        .unwrap()
}

/// 8 tasks x 20 acquires of one key: exactly the limit is allowed.
async fn hammer(b: &Arc<RedisBackend>, company: &'static str) -> u64 {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let b = Arc::clone(b);
            tokio::spawn(async move {
                let parts = [company];
                let key = LimitKey {
                    hash: 1,
                    parts: &parts,
                };
                let mut allowed = 0u64;
                for _ in 0..20 {
                    allowed += u64::from(b.acquire_async(&key, 1, 0).await.unwrap().0.allowed());
                }
                allowed
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tasks_share_one_connection_and_never_exceed_the_limit() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (b, store) = backend(
        tollgate_redis::testing::config(server.url()).breaker(BreakerConfig {
            failures: 1,
            cooldown: std::time::Duration::from_secs(3600),
            first_cooldown: std::time::Duration::from_secs(3600),
        }),
        "aio",
    );
    assert_eq!(hammer(&b, "acme").await, 50);
    assert_eq!(store.stats().connects, 1, "one multiplexed connection");
    // The blocking path sees the same state.
    let parts = ["acme"];
    let key = LimitKey {
        hash: 1,
        parts: &parts,
    };
    assert!(!b.peek(&key, 1, 0).unwrap().allowed());
    // Undo on the async path gives back.
    let parts = ["globex"];
    let k2 = LimitKey {
        hash: 2,
        parts: &parts,
    };
    let (_, u) = b.acquire_async(&k2, 30, 0).await.unwrap();
    b.undo_async(&k2, u.unwrap(), 0).await;
    assert_eq!(b.peek_async(&k2, 50, 0).await.unwrap().remaining, 0);
    assert!(b.peek_async(&k2, 50, 0).await.unwrap().allowed());
    // An outage: the backend reports it (the engine's failure policy decides), and the
    // breaker keeps later calls off the network.
    let e = engine(&store, "aio");
    server.kill();
    let before = store.stats().network_calls;
    for _ in 0..20 {
        assert!(matches!(
            b.acquire_async(&k2, 1, 0).await,
            Err(BackendError::Unavailable(_))
        ));
    }
    assert_eq!(store.stats().network_calls - before, 1);
    assert_eq!(store.stats().short_circuited, 19);
    // Through the engine (the blocking path, the same breaker): the local fallback
    // decides, and allows.
    for _ in 0..20 {
        let d = e.decide(&Request::new().company("globex"));
        assert!(d.allowed() && d.degraded, "{d:?}");
    }
    assert_eq!(store.stats().network_calls - before, 1);
    assert_eq!(store.stats().short_circuited, 39);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_path_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let (b, store) = backend(
        tollgate_redis::testing::cluster_config(cluster.urls()),
        "aio-cluster",
    );
    assert_eq!(hammer(&b, "acme").await, 50);
    assert_eq!(hammer(&b, "initech").await, 50);
    assert_eq!(store.stats().errors, 0);
}

//! A three-node loopback Redis Cluster: limits and the quota on the cluster, a
//! company's limit keys and quota counter in one slot, companies spread over the nodes,
//! two engines sharing the cluster never exceeding a limit.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use tollgate::{Engine, Policy, Reason, Request};
use tollgate_redis::testing::RedisCluster;
use tollgate_redis::{QuotaOptions, RedisFactory, RedisQuota, RedisStore};

const POLICY: &str = r#"
version = 1
[[limit]]
name = "per-company"
key = ["company"]
rate = "20/day"
backend = "redis"
[[limit]]
name = "per-token"
key = ["token"]
rate = "1000/day"
backend = "redis"
[quota]
hard_cap_percent = 100
[[quota.plans]]
name = "free"
calls_per_unit = 30
default = true
[[quota.companies]]
id = "acme"
machines = 1
users = [{ id = "ann", keys = ["key-ann"] }]
"#;

fn engine(store: &Arc<RedisStore>, name: &str) -> Engine {
    let (policy, _) = Policy::from_toml(POLICY).unwrap();
    Engine::builder(policy)
        .backend("redis", Arc::new(RedisFactory::new(Arc::clone(store))))
        .quota_store(Arc::new(RedisQuota::new(
            Arc::clone(store),
            name,
            QuotaOptions::default(),
        )))
        .build()
        .unwrap()
}

fn slot(cluster: &RedisCluster, key: &str) -> u16 {
    let mut c = cluster.nodes()[0].connection();
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut c)
        .unwrap()
}

#[test]
fn limits_and_quota_on_a_three_node_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = RedisStore::new(tollgate_redis::testing::cluster_config(cluster.urls())).unwrap();
    let (e1, e2) = (
        Arc::new(engine(&store, "gw-1")),
        Arc::new(engine(&store, "gw-2")),
    );
    // Two engines on one company: the per-company limit (20) holds for both together.
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = [&e1, &e2]
        .into_iter()
        .map(|e| {
            let (e, barrier) = (Arc::clone(e), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                (0..25)
                    .filter(|_| {
                        e.decide(&Request::new().company("acme").token("key-ann"))
                            .allowed()
                    })
                    .count() as u64
            })
        })
        .collect();
    let allowed: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(allowed, 20);
    // Of the quota's 30 (hard cap 100%): 20 used; 10 more calls for another company's
    // limit key but the same API key are served, then the quota refuses.
    let mut reasons = Vec::new();
    for i in 0..12 {
        let company = format!("other-{i}");
        reasons.push(
            e1.decide(&Request::new().company(&company).token("key-ann"))
                .reason,
        );
    }
    assert!(
        reasons[..10].iter().all(|r| *r == Reason::Allowed),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[10..],
        [Reason::QuotaExceeded, Reason::QuotaExceeded]
    );
    assert_eq!(store.stats().errors, 0);
    // A company's limit keys and its quota counter share one slot (one script could
    // touch them together); different companies spread over the cluster.
    let limit_key = store
        .namer()
        .limit_key("tg", "per-company", &["acme"], Some(0));
    assert_eq!(
        slot(&cluster, &limit_key),
        slot(&cluster, &store.namer().quota_key("tg", "acme", 0))
    );
    let slots: HashSet<u16> = (0..12)
        .map(|i| {
            slot(
                &cluster,
                &store.namer().quota_key("tg", &format!("other-{i}"), 0),
            )
        })
        .collect();
    assert!(slots.len() > 6, "{slots:?}");
    let mut nodes_with_keys = 0;
    for n in cluster.nodes() {
        let mut c = n.connection();
        let size: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        nodes_with_keys += usize::from(size > 0);
    }
    assert!(nodes_with_keys >= 2, "keys on {nodes_with_keys} node(s)");
}

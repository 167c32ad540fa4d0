//! The cache tier on TLS-only Redis topologies (certificates from the test's throwaway CA):
//! a Cluster (`--tls-cluster yes`, one `rediss://` seed, so the other members are discovered
//! and redirects followed over TLS) and a Sentinel setup (TLS-only data nodes and sentinels,
//! `REDIS_TLS=true`). On each: health connected over TLS, an L2 hit across two instances,
//! invalidation over TLS pub/sub, and a failover followed over TLS.

use std::time::{Duration, Instant};

use ghl_workflow_debugger::cache::wire::FORMAT_VERSION;
use serde_json::Value;

use super::harness::{invalidation_over_tls, Certs};
use crate::helpers::TestApp;
use crate::topology::common::{
    cache_check, l2_hit_across, stale_reads_across, two_instances, wait_cache_check,
};
use crate::topology::harness::{RedisCluster, RedisSentinels};
use crate::topology::node::{admin, TopologyTls};

fn topology_tls(certs: &Certs) -> TopologyTls {
    TopologyTls {
        ca: certs.path("ca.crt"),
        cert: certs.path("server.crt"),
        key: certs.path("server.key"),
    }
}

/// Both instances connected over TLS (type redis, healthy), with `kind` in health.
async fn assert_connected(apps: [&TestApp; 2], kind: &str) -> Value {
    let mut last = Value::Null;
    for app in apps {
        last = cache_check(app).await;
        assert_eq!(last["type"], "redis", "{last}");
        assert_eq!(last["connected"], true, "{last}");
        assert_eq!(last["status"], "healthy", "{last}");
        assert_eq!(last["topology"]["kind"], kind, "{last}");
    }
    last
}

fn workflow_key(app: &TestApp, location: &str, id: &str) -> String {
    let prefix = &app.env["CACHE_PREFIX"];
    format!("{prefix}:v{FORMAT_VERSION}:workflow:{{{location}}}:{id}")
}

async fn exists(addr: &str, key: &str) -> bool {
    let mut c = admin(addr).await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_tier_works_on_a_tls_cluster_and_follows_redirects_over_tls() {
    let certs = Certs::new();
    let Some(cluster) = RedisCluster::start_tls(1, &topology_tls(&certs)).await else {
        return;
    };
    // One seed: the other five members are found through CLUSTER SLOTS, over TLS.
    let seed = format!("rediss://{}", cluster.node_addrs()[0]);
    let (a, b) = two_instances(&[
        ("REDIS_CLUSTER_NODES", seed),
        ("REDIS_TLS_CA_FILE", certs.path("ca.crt")),
    ])
    .await;
    let check = assert_connected([&a, &b], "cluster").await;
    assert_eq!(check["topology"]["nodes"]["reachable"], 6, "{check}");

    let location = "locTlsCluster";
    let key = a.create_location(location).await;
    let tries = l2_hit_across(&a, &b, &key, "wf").await;
    let cached = workflow_key(&a, location, &format!("wf{tries}"));
    let owner = cluster.primary_for_key(&cached).await;
    assert!(exists(&owner, &cached).await, "{cached} not on {owner}");
    invalidation_over_tls(&a, &b, &key).await;

    // The slot's replica takes over; the old primary answers MOVED, which the instances
    // follow to the new primary over TLS.
    let old = cluster.manual_failover_for_key(&cached).await;
    cluster
        .wait_for_failover(&cached, &old, Duration::from_secs(30))
        .await;
    let new_primary = cluster.primary_for_key(&cached).await;
    assert_ne!(old, new_primary);
    let tries = l2_hit_across(&a, &b, &key, "after").await;
    let moved = workflow_key(&a, location, &format!("after{tries}"));
    assert_eq!(cluster.primary_for_key(&moved).await, new_primary);
    assert!(
        exists(&new_primary, &moved).await,
        "{moved} not on {new_primary}"
    );
    assert_eq!(stale_reads_across(&a, &b, &key, 6).await, 0);
    assert_connected([&a, &b], "cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_tier_follows_a_tls_sentinel_primary_through_tls_only_sentinels() {
    let certs = Certs::new();
    let sentinels = RedisSentinels::start_tls("gwdtls", &topology_tls(&certs)).await;
    let (a, b) = two_instances(&[
        ("REDIS_SENTINELS", sentinels.sentinels_csv()),
        ("REDIS_SENTINEL_MASTER", sentinels.master_name().to_owned()),
        ("REDIS_TLS", "true".to_owned()),
        ("REDIS_TLS_CA_FILE", certs.path("ca.crt")),
    ])
    .await;
    let primary = sentinels.current_primary().await;
    let check = assert_connected([&a, &b], "sentinel").await;
    // Health's probes reach all three TLS-only sentinels.
    assert_eq!(check["topology"]["nodes"]["reachable"], 3, "{check}");
    assert_eq!(check["topology"]["primary"], primary.as_str(), "{check}");

    let location = "locTlsSentinel";
    let key = a.create_location(location).await;
    let tries = l2_hit_across(&a, &b, &key, "wf").await;
    let cached = workflow_key(&a, location, &format!("wf{tries}"));
    assert!(exists(&primary, &cached).await, "{cached} not on {primary}");
    invalidation_over_tls(&a, &b, &key).await;

    // The sentinels promote the replica; the instances find it through them, over TLS.
    let old = sentinels.failover().await;
    sentinels
        .wait_for_failover(&old, Duration::from_secs(30))
        .await;
    let new_primary = sentinels.current_primary().await;
    for app in [&a, &b] {
        wait_cache_check(app, Duration::from_secs(15), |c| {
            c["type"] == "redis" && c["topology"]["primary"] == new_primary.as_str()
        })
        .await;
    }
    // Health names the new primary first; the pools move within the instances' one-second
    // watch of the sentinels (the old primary answers as one until it is demoted).
    let mut landed = None;
    for round in 0..10 {
        let tag = format!("after{round}x");
        let tries = l2_hit_across(&a, &b, &key, &tag).await;
        if exists(
            &new_primary,
            &workflow_key(&a, location, &format!("{tag}{tries}")),
        )
        .await
        {
            landed = Some(round);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        landed.is_some(),
        "the instances never wrote to {new_primary}"
    );
    // Both subscribers move to the new primary (over TLS) within a bounded wait.
    let channel = format!("{}:invalidate", a.env["CACHE_PREFIX"]);
    let t = Instant::now();
    while subscribers(&new_primary, &channel).await < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the subscribers never moved to {new_primary}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    invalidation_over_tls(&a, &b, &key).await;
}

/// `PUBSUB NUMSUB channel` on one node.
async fn subscribers(addr: &str, channel: &str) -> i64 {
    let mut c = admin(addr).await;
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut c)
        .await
        .unwrap();
    n
}

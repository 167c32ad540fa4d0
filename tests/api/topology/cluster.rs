//! A real 6-node Redis Cluster (3 primaries, 3 replicas): the cache tier's promises, and a
//! primary killed under load.

use std::time::{Duration, Instant};

use ghl_workflow_debugger::cache::{Cache, CacheSettings, CacheStatus};
use ghl_workflow_debugger::config::{NodeAddr, NodeAuth, RedisTopology};

use super::common::*;
use super::harness::RedisCluster;
use crate::cache::common::prefix;
use crate::faults::harness::{p99_bound, scaled, seed, split_p99, Load, Row, NO_WAIT_BOUND};

async fn cluster_or_skip() -> Option<RedisCluster> {
    let cluster = RedisCluster::start(1).await;
    if cluster.is_none() {
        eprintln!("SKIPPED: redis-server on this machine has no cluster support");
    }
    cluster
}

fn env_for(cluster: &RedisCluster) -> Vec<(&'static str, String)> {
    vec![("REDIS_CLUSTER_NODES", cluster.nodes_csv())]
}

/// The cache itself on the Cluster: L2 round trip, invalidation, shared counters and flush
/// across slots owned by different primaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_tier_works_on_a_cluster_across_slots() {
    let Some(cluster) = cluster_or_skip().await else {
        return;
    };
    let nodes = cluster
        .node_addrs()
        .iter()
        .map(|a| NodeAddr::parse(a).unwrap())
        .collect();
    let prefix = prefix();
    let settings = || CacheSettings {
        prefix: prefix.clone(),
        redis: Some(RedisTopology::Cluster {
            nodes: Vec::clone(&nodes),
            auth: NodeAuth::default(),
        }),
        ..CacheSettings::default()
    };
    let registry = prometheus::Registry::new();
    let cache = Cache::new(settings(), &registry).unwrap();
    assert!(
        cache.wait_ready(Duration::from_secs(10)).await,
        "cache ready on the cluster"
    );

    // Forty locations spread over all three primaries' slots.
    let keys: Vec<_> = (0..40)
        .map(|n| cache.keys().workflow(&format!("loc{n}"), "wf"))
        .collect();
    for (n, key) in keys.iter().enumerate() {
        let loaded = cache
            .get_or_load(key, Duration::from_secs(60), move || async move {
                Ok::<_, std::io::Error>(Some(bytes::Bytes::from(format!("value {n}"))))
            })
            .await
            .unwrap();
        assert_eq!(loaded.status, CacheStatus::Miss);
    }
    let mut owners = std::collections::HashSet::new();
    for key in &keys {
        owners.insert(cluster.primary_for_key(key.as_str()).await);
    }
    assert_eq!(owners.len(), 3, "the keys should land on every primary");

    // A second instance (own L1) reads every value from the Cluster.
    let other_registry = prometheus::Registry::new();
    let other = Cache::new(settings(), &other_registry).unwrap();
    assert!(other.wait_ready(Duration::from_secs(10)).await);
    let t = Instant::now();
    for (n, key) in keys.iter().enumerate() {
        loop {
            let hit = other.get(key).await;
            if let Some(hit) = hit {
                assert_eq!(hit.bytes, format!("value {n}").as_bytes());
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{key} never reached L2"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // An invalidation on one instance reaches the other's L1 and tombstones L2.
    cache.invalidate(&keys[..10]).await;
    for key in &keys[..10] {
        assert!(
            other.get(key).await.is_none(),
            "{key} still served after invalidation"
        );
    }

    // Shared fixed-window counters work on any slot.
    let window = Duration::from_secs(60);
    for loc in ["locA", "locB", "locC"] {
        let counter = cache.keys().rate_limit(loc, "w1");
        assert_eq!(
            cache.count_in_window(&counter, window).await.unwrap().count,
            1
        );
        assert_eq!(
            other.count_in_window(&counter, window).await.unwrap().count,
            2
        );
    }

    // Flush SCANs every primary.
    let pattern = format!("{prefix}:*");
    assert!(!cluster.keys_matching(&pattern).await.is_empty());
    let removed = cache.flush().await.unwrap();
    assert!(removed >= 30, "flush removed only {removed} keys");
    assert_eq!(cluster.keys_matching(&pattern).await, Vec::<String>::new());
    assert!(
        other.get(&keys[20]).await.is_none(),
        "flush reached the other L1"
    );
    cache.shutdown().await;
    other.shutdown().await;
}

/// The API over two instances on the Cluster: L2 hits across instances, no stale read after
/// an acknowledged write (the writer waits for the other instance's acknowledgement, counted
/// on the node that owns the channel's slot), health naming the topology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_cluster_share_the_tier_and_never_read_stale() {
    let Some(cluster) = cluster_or_skip().await else {
        return;
    };
    let (a, b) = two_instances(&env_for(&cluster)).await;
    let check = cache_check(&a).await;
    assert_eq!(check["topology"]["kind"], "cluster", "{check}");
    assert_eq!(check["topology"]["nodes"]["total"], 6, "{check}");
    assert_eq!(check["topology"]["nodes"]["reachable"], 6, "{check}");

    let key = a.create_location("locCluster").await;
    l2_hit_across(&a, &b, &key, "l2wf").await;
    let stale = stale_reads_across(&a, &b, &key, 40).await;
    assert_eq!(stale, 0, "stale reads after acknowledged writes");
}

/// Scenario: the primary owning the tested location's slot and the invalidation channel's
/// slot is SIGKILLed under load on two instances. 0 5xx, every body correct; the Cluster promotes its replica and the service
/// follows: L2 hits and cross-instance invalidation work again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_under_load_costs_no_errors_and_the_service_follows() {
    let Some(mut cluster) = cluster_or_skip().await else {
        return;
    };
    let (a, b) = two_instances(&env_for(&cluster)).await;
    // A location whose slot lives on the same primary as the invalidation channel, so that
    // one kill moves both: the reads' keys and where the subscribers listen.
    let channel = format!("{}:invalidate", a.env["CACHE_PREFIX"]);
    let channel_owner = cluster.primary_for_key(&channel).await;
    let mut location = String::new();
    for n in 0.. {
        location = format!("locFailover{n}");
        if cluster.primary_for_key(&format!("{{{location}}}")).await == channel_owner {
            break;
        }
    }
    let seeded = seed(&a, &location, 20).await;
    let slot_key = format!("{{{location}}}");
    let slot_key = slot_key.as_str();

    let (failover, tally_a, tally_b) = load_both_through(&a, &b, &seeded, async {
        let killed_at = Instant::now();
        let old = cluster.kill_primary_for_key(slot_key).await;
        cluster
            .wait_for_failover(slot_key, &old, Duration::from_secs(30))
            .await;
        killed_at.elapsed()
    })
    .await;

    wait_cache_check(&a, Duration::from_secs(15), |c| c["type"] == "redis").await;
    wait_cache_check(&b, Duration::from_secs(15), |c| c["type"] == "redis").await;
    let tries = l2_hit_across(&a, &b, &seeded.key, "after").await;
    let stale = stale_reads_across(&a, &b, &seeded.key, 20).await;
    let check = cache_check(&a).await;

    report_failover(
        "Cluster primary SIGKILLed under load",
        [&tally_a, &tally_b],
        stale,
        &format!(
            "failover {failover:?}; L2 hit after {tries} tries; health {}",
            check["topology"]
        ),
    );
    assert_eq!(check["topology"]["nodes"]["reachable"], 5, "{check}");
}

/// Scenario: the primary owning the location's slot is frozen (SIGSTOP) for 5 s under load —
/// longer than `cluster-node-timeout`, so the Cluster may also fail over meanwhile. Either way
/// no request waits on the frozen node beyond the L2 budget: 0 5xx and the hung-Redis bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_cluster_primary_never_holds_a_request() {
    let Some(cluster) = cluster_or_skip().await else {
        return;
    };
    let (a, _b) = two_instances(&env_for(&cluster)).await;
    let seeded = seed(&a, "locFrozen", 20).await;
    let total = scaled(2_000);
    let load = Load::reads(&a.address, &seeded, 8, total);
    load.wait_for(total / 4).await;
    let frozen = cluster.primary_for_key("{locFrozen}").await;
    let frozen_at = Instant::now();
    cluster.signal(&frozen, "-STOP");
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.signal(&frozen, "-CONT");
    load.wait_for(total).await;
    let tally = load.finish().await;
    let (baseline, p99) = split_p99(&tally, frozen_at);
    Row {
        scenario: "Cluster primary frozen 5 s under load",
        requests: tally.count(),
        five_xx: tally.five_xx(),
        stale_reads: 0,
        stale_served: tally.stale_served(),
        lost_writes: 0,
        recovery: format!("frozen {frozen}; p99 before the freeze {baseline:?}"),
        p99,
    }
    .print();
    assert_eq!(tally.five_xx(), 0, "{}", tally.summary());
    assert_eq!(tally.wrong(), 0, "{}", tally.summary());
    assert!(
        p99 < p99_bound(baseline),
        "p99 {p99:?}; {}",
        tally.summary()
    );
    assert!(tally.max() < NO_WAIT_BOUND, "{}", tally.summary());
}

//! A real Sentinel setup (1 primary, 1 replica, 3 sentinels): the service finds the primary
//! through the sentinels and follows it when it is killed under load.

use ghl_workflow_debugger::cache::wire::FORMAT_VERSION;
use std::time::{Duration, Instant};

use super::common::*;
use super::harness::RedisSentinels;
use crate::faults::harness::seed;

const MASTER: &str = "gwdprimary";

fn env_for(sentinels: &RedisSentinels) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_SENTINELS", sentinels.sentinels_csv()),
        ("REDIS_SENTINEL_MASTER", sentinels.master_name().to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_sentinels_share_the_tier_and_never_read_stale() {
    let sentinels = RedisSentinels::start(MASTER).await;
    let (a, b) = two_instances(&env_for(&sentinels)).await;
    let check = cache_check(&a).await;
    assert_eq!(check["topology"]["kind"], "sentinel", "{check}");
    assert_eq!(check["topology"]["nodes"]["total"], 3, "{check}");
    assert_eq!(check["topology"]["nodes"]["reachable"], 3, "{check}");
    assert_eq!(
        check["topology"]["primary"],
        sentinels.current_primary().await.as_str(),
        "{check}"
    );

    let key = a.create_location("locSentinel").await;
    l2_hit_across(&a, &b, &key, "l2wf").await;
    assert_eq!(stale_reads_across(&a, &b, &key, 40).await, 0);
}

/// Scenario: the Sentinel-managed primary is SIGKILLed under load on two instances. 0 5xx,
/// every body correct; once the sentinels promoted the replica, health is healthy again, names
/// the new primary, and L2 hits and cross-instance invalidation work on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinel_primary_killed_under_load_costs_no_errors_and_the_service_follows() {
    let mut sentinels = RedisSentinels::start(MASTER).await;
    let (a, b) = two_instances(&env_for(&sentinels)).await;
    let seeded = seed(&a, "locSentinelFail", 20).await;

    let ((old, new_primary, failover, healthy_after), tally_a, tally_b) =
        load_both_through(&a, &b, &seeded, async {
            let killed_at = Instant::now();
            let old = sentinels.kill_primary().await;
            sentinels
                .wait_for_failover(&old, Duration::from_secs(30))
                .await;
            let failover = killed_at.elapsed();
            let new_primary = sentinels.current_primary().await;
            for app in [&a, &b] {
                wait_cache_check(app, Duration::from_secs(15), |c| {
                    c["type"] == "redis" && c["topology"]["primary"] == new_primary.as_str()
                })
                .await;
            }
            (old, new_primary, failover, killed_at.elapsed())
        })
        .await;

    let tries = l2_hit_across(&a, &b, &seeded.key, "after").await;
    let stale = stale_reads_across(&a, &b, &seeded.key, 20).await;
    report_failover(
        "Sentinel primary SIGKILLed under load",
        [&tally_a, &tally_b],
        stale,
        &format!(
            "failover {failover:?}, healthy on {new_primary} after {healthy_after:?}; L2 hit after {tries} tries"
        ),
    );
    assert_ne!(old, new_primary);
}

/// A manual `SENTINEL FAILOVER`: the old primary stays up and keeps answering as a primary
/// for ~10 s before the sentinels demote it, so nothing breaks on the old connections. The
/// instances must still move to the new primary (they ask the sentinels every second): their
/// writes land there, and no read is stale once the switch is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_sentinel_failover_is_followed_while_the_old_primary_still_answers() {
    let sentinels = RedisSentinels::start(MASTER).await;
    let (a, b) = two_instances(&env_for(&sentinels)).await;
    let key = a.create_location("locSwitch").await;
    l2_hit_across(&a, &b, &key, "before").await;

    let switched_at = Instant::now();
    let old = sentinels.failover().await;
    sentinels
        .wait_for_failover(&old, Duration::from_secs(30))
        .await;
    let new_primary = sentinels.current_primary().await;
    // Two seconds covers the instances' one-second watch; the old primary is demoted later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        switched_at.elapsed() < Duration::from_secs(9),
        "too slow to test the window"
    );

    assert_eq!(stale_reads_across(&a, &b, &key, 20).await, 0);
    l2_hit_across(&a, &b, &key, "after").await;
    // The instances now write to the new primary.
    let prefix = a.env["CACHE_PREFIX"].clone();
    let mut admin = redis::Client::open(format!("redis://{new_primary}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let marker = format!("{prefix}:v{FORMAT_VERSION}:workflow:{{locSwitch}}:after1");
    let exists: bool = redis::cmd("EXISTS")
        .arg(&marker)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(exists, "{marker} is not on the new primary {new_primary}");
}

/// `/health/detailed` is public: without operator access it shows node counts, never an
/// address (the primary, the sentinels); with the operator token it names the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_sentinel_addresses_only_to_operators() {
    let sentinels = RedisSentinels::start(MASTER).await;
    let mut env = env_for(&sentinels);
    env.push(("INTERNAL_API_TOKEN", "operator-token".to_owned()));
    let (a, _b) = two_instances(&env).await;
    let primary = sentinels.current_primary().await;

    let public: serde_json::Value = a.get("/health/detailed").await.json().await.unwrap();
    let operator: serde_json::Value = a
        .client
        .get(a.url("/health/detailed"))
        .bearer_auth("operator-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let topology = &public["checks"]["cache"]["topology"];
    assert_eq!(topology["kind"], "sentinel", "{public}");
    assert_eq!(topology["nodes"]["total"], 3, "{public}");
    assert_eq!(topology["nodes"]["reachable"], 3, "{public}");
    let text = public.to_string();
    assert!(!text.contains(&primary), "{text}");
    for sentinel in sentinels.sentinel_addrs() {
        assert!(!text.contains(&sentinel), "{text}");
    }
    assert_eq!(
        operator["checks"]["cache"]["topology"]["primary"],
        primary.as_str(),
        "{operator}"
    );
}

//! Scenario 1: Redis SIGKILLed mid-load and restarted on the same port.

use std::time::{Duration, Instant};

use super::harness::*;
use crate::helpers::spawn_sibling;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_costs_no_errors_and_the_service_recovers_by_itself() {
    let mut redis = RedisServer::start(None).await;
    let app = app_on(&redis.url(), |_| {}).await;
    let seeded = seed(&app, "locKill", 20).await;
    let total = scaled(2_000);

    let load = Load::reads(&app.address, &seeded, 8, total);
    load.wait_for(total / 4).await;
    redis.kill();
    let degraded = wait_health(&app, "degraded", Duration::from_secs(2)).await;
    load.wait_for(total / 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    let restarted = Instant::now();
    let healthy = wait_health(&app, "healthy", Duration::from_secs(5)).await;
    load.wait_for(total).await;
    let tally = load.finish().await;

    // L2 hits resume: a value the first instance loads now is an L2 hit on a fresh sibling.
    let sibling = spawn_sibling(&app).await;
    crate::caching::wait_for_redis(&sibling).await;
    let mut l2_hit = None;
    for attempt in 0..10 {
        let id = format!("after{attempt}");
        let doc = crate::helpers::sample_workflow(&id);
        assert!(app
            .put_workflow(&seeded.key, &id, &doc)
            .await
            .status()
            .is_success());
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.api_get(&seeded.key, &format!("/api/workflows/{id}"))
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = sibling
            .api_get(&seeded.key, &format!("/api/workflows/{id}"))
            .await;
        if r.headers().get("x-cache-tier").is_some_and(|t| t == "l2") {
            l2_hit = Some(restarted.elapsed());
            break;
        }
    }

    Row {
        scenario: "1. Redis SIGKILLed and restarted",
        requests: tally.count(),
        five_xx: tally.five_xx(),
        stale_reads: 0,
        stale_served: tally.stale_served(),
        lost_writes: 0,
        recovery: format!(
            "degraded {} after kill, healthy {} after restart",
            degraded.map(secs).unwrap_or("never".into()),
            healthy.map(secs).unwrap_or("never".into())
        ),
        p99: tally.p99(),
    }
    .print();
    assert_eq!(tally.five_xx(), 0, "{}", tally.summary());
    assert_eq!(tally.wrong(), 0, "{}", tally.summary());
    assert!(degraded.is_some(), "health never said degraded within 2 s");
    assert!(
        healthy.is_some(),
        "health not healthy within 5 s of restart"
    );
    assert!(l2_hit.is_some(), "no L2 hit after the restart");
}

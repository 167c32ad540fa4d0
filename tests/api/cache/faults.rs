//! Redis down, killed, restarted, frozen: the cache keeps answering, fast.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::*;
use crate::faults::harness::RedisServer;
use bytes::Bytes;
use ghl_workflow_debugger::cache::{Cache, CacheKey, CacheStatus, HealthStatus, Tier};

async fn timed_load(
    c: &Cache,
    key: &CacheKey,
    calls: &Arc<AtomicUsize>,
    bound: Duration,
) -> CacheStatus {
    let t = Instant::now();
    let r = c
        .get_or_load(
            key,
            Duration::from_secs(60),
            counting(calls, "body", Duration::ZERO),
        )
        .await
        .expect("load works without redis");
    let took = t.elapsed();
    assert!(took < bound, "get_or_load took {took:?}");
    assert_eq!(r.value, Some(Bytes::from_static(b"body")));
    r.status
}

async fn wait_health(c: &Cache, want: HealthStatus, max: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let h0 = Instant::now();
        let h = c.health().await;
        assert!(
            h0.elapsed() < Duration::from_millis(400),
            "health took {:?}",
            h0.elapsed()
        );
        if h.status == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < max,
            "health not {want:?} within {max:?}: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_url_on_a_closed_port_still_serves_from_memory_fast() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let (c, _r) = cache(settings(&prefix(), Some(&url)));
    let calls = Arc::new(AtomicUsize::new(0));
    let key = c.keys().workflow("loc1", "wf1");
    assert_eq!(
        timed_load(&c, &key, &calls, Duration::from_millis(200)).await,
        CacheStatus::Miss
    );
    // Without an invalidation subscriber, L1 keeps no copies (another instance's write could
    // not reach them): every read goes to the loader, fast.
    assert_eq!(
        timed_load(&c, &key, &calls, Duration::from_millis(200)).await,
        CacheStatus::Miss
    );
    for n in 0..20 {
        let k = c.keys().workflow("loc1", &format!("w{n}"));
        timed_load(&c, &k, &calls, Duration::from_millis(200)).await;
    }
    let h = c.health().await;
    assert_eq!(h.status, HealthStatus::Degraded);
    let j = serde_json::to_value(&h).unwrap();
    assert_eq!(j["type"], "in-memory");
    assert_eq!(j["connected"], false);
    assert_eq!(j["message"], "Redis unavailable, using fallback");
    assert_eq!(c.stats().l2.breaker.as_str(), "open");
    c.shutdown().await;
}

#[tokio::test]
async fn redis_killed_then_restarted_degrades_and_recovers_by_itself() {
    let mut redis = RedisServer::start(None).await;
    let (c, _r) = cache(settings(&prefix(), Some(&redis.url())));
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    let (probe, _rp) = cache(settings(&c.settings().prefix, Some(&redis.url())));
    assert!(probe.wait_ready(Duration::from_secs(3)).await);
    let calls = Arc::new(AtomicUsize::new(0));
    let k0 = c.keys().workflow("loc1", "before");
    timed_load(&c, &k0, &calls, Duration::from_millis(200)).await;
    wait_health(&c, HealthStatus::Healthy, Duration::from_secs(1)).await;

    redis.kill();
    for n in 0..30 {
        let k = c.keys().workflow("loc1", &format!("down{n}"));
        assert_eq!(
            timed_load(&c, &k, &calls, Duration::from_millis(200)).await,
            CacheStatus::Miss
        );
    }
    wait_health(&c, HealthStatus::Degraded, Duration::from_secs(2)).await;
    // The subscriber loss cleared L1 (pub/sub is at-most-once) and, while nobody listens for
    // invalidations, L1 keeps no copies: reads go to the loader, still fast.
    tokio::time::sleep(Duration::from_millis(100)).await;
    timed_load(&c, &k0, &calls, Duration::from_millis(200)).await;
    assert_eq!(
        timed_load(&c, &k0, &calls, Duration::from_millis(200)).await,
        CacheStatus::Miss
    );

    redis.restart().await;
    let took = wait_health(&c, HealthStatus::Healthy, Duration::from_secs(5)).await;
    eprintln!("healthy again after {took:?}");
    assert_eq!(c.stats().l2.breaker.as_str(), "closed");
    // L2 hits resume: a value loaded now is seen from L2 by another instance.
    let k1 = c.keys().workflow("loc1", "after");
    assert_eq!(
        timed_load(&c, &k1, &calls, Duration::from_millis(200)).await,
        CacheStatus::Miss
    );
    let t = Instant::now();
    loop {
        wait_health(&probe, HealthStatus::Healthy, Duration::from_secs(5)).await;
        if let Some(hit) = probe.get(&k1).await {
            assert_eq!(hit.tier, Tier::L2);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no L2 hit after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.clear_l1();
    let t = Instant::now();
    loop {
        let r = c
            .get_or_load(
                &k1,
                Duration::from_secs(60),
                counting(&calls, "body", Duration::ZERO),
            )
            .await
            .unwrap();
        if r.status == CacheStatus::Hit(Tier::L2) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{r:?}");
        c.clear_l1();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.shutdown().await;
    probe.shutdown().await;
}

#[tokio::test]
async fn frozen_redis_never_holds_a_request_and_recovers_after_sigcont() {
    let redis = RedisServer::start(None).await;
    let (c, _r) = cache(settings(&prefix(), Some(&redis.url())));
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    let calls = Arc::new(AtomicUsize::new(0));
    let warm = c.keys().workflow("loc1", "warm");
    timed_load(&c, &warm, &calls, Duration::from_millis(200)).await;

    redis.signal("-STOP");
    let mut worst = Duration::ZERO;
    for n in 0..30 {
        let k = c.keys().workflow("loc1", &format!("frozen{n}"));
        let t = Instant::now();
        timed_load(&c, &k, &calls, Duration::from_secs(1)).await;
        worst = worst.max(t.elapsed());
    }
    eprintln!("worst get_or_load with frozen redis: {worst:?}");
    assert!(worst < Duration::from_millis(300), "{worst:?}");
    let t = Instant::now();
    let h = c.health().await;
    assert!(t.elapsed() < Duration::from_millis(400));
    assert_eq!(h.status, HealthStatus::Degraded);
    // Invalidations during the freeze are kept and replayed.
    c.invalidate(std::slice::from_ref(&warm)).await;

    redis.signal("-CONT");
    wait_health(&c, HealthStatus::Healthy, Duration::from_secs(5)).await;
    // The pending invalidation was replayed: the key is a tombstone, not the old value.
    let mut raw = raw_conn(&redis.url()).await;
    let v: Option<Vec<u8>> = redis::cmd("GET")
        .arg(warm.as_str())
        .query_async(&mut raw)
        .await
        .unwrap();
    let v = v.expect("tombstone present");
    assert_eq!(
        v[..3],
        ghl_workflow_debugger::cache::wire::tombstone_prefix()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn paused_redis_does_not_slow_requests() {
    let redis = RedisServer::start(None).await;
    let (c, _r) = cache(settings(&prefix(), Some(&redis.url())));
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    let mut raw = raw_conn(&redis.url()).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut raw)
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    for n in 0..20 {
        let k = c.keys().workflow("loc1", &format!("paused{n}"));
        timed_load(&c, &k, &calls, Duration::from_millis(300)).await;
    }
    let t = Instant::now();
    c.health().await;
    assert!(t.elapsed() < Duration::from_millis(400));
    wait_health(&c, HealthStatus::Healthy, Duration::from_secs(6)).await;
    c.shutdown().await;
}

#[tokio::test]
async fn connections_killed_server_side_are_replaced_and_l2_hits_resume() {
    let redis = RedisServer::start(None).await;
    let p = prefix();
    let (c, _r) = cache(settings(&p, Some(&redis.url())));
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    let key = c.keys().workflow("loc1", "k");
    c.set(&key, Bytes::from_static(b"v"), Duration::from_secs(60))
        .await;
    let mut admin = raw_conn(&redis.url()).await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .unwrap();
    let t = Instant::now();
    loop {
        c.clear_l1();
        if let Some(hit) = c.get(&key).await {
            assert_eq!(hit.tier, Tier::L2);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "L2 never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("L2 hits again {:?} after CLIENT KILL", t.elapsed());
    c.shutdown().await;
}

#[tokio::test]
async fn a_cache_started_before_redis_upgrades_to_redis_when_it_appears() {
    let mut redis = RedisServer::start(None).await;
    redis.kill();
    let (c, _r) = cache(settings(&prefix(), Some(&redis.url())));
    wait_health(&c, HealthStatus::Degraded, Duration::from_secs(2)).await;

    redis.restart().await;

    let took = wait_health(&c, HealthStatus::Healthy, Duration::from_secs(5)).await;
    eprintln!("upgraded to Redis {took:?} after it appeared");
    let key = c.keys().workflow("loc1", "late");
    c.set(
        &key,
        Bytes::from_static(b"from-redis"),
        Duration::from_secs(30),
    )
    .await;
    let (other, _ro) = cache(settings(&c.settings().prefix, Some(&redis.url())));
    assert!(other.wait_ready(Duration::from_secs(3)).await);
    let hit = other.get(&key).await.expect("the value reached Redis");
    assert_eq!(hit.tier, Tier::L2);
}

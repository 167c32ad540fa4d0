//! Redis down, killed, restarted, frozen: the cache keeps answering, fast.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::*;
use crate::faults::harness::RedisServer;
use crate::faults::proxy::{Fault, FaultProxy};
use bytes::Bytes;
use ghl_workflow_debugger::cache::{
    BreakerState, Cache, CacheKey, CacheStatus, HealthStatus, Invalidation, Tier,
};

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

/// Two caches on one Redis, each through its own fault proxy, with `key` = "v1" in B's L1.
async fn two_caches_behind_proxies(
    redis: &RedisServer,
) -> (Cache, Cache, FaultProxy, FaultProxy, CacheKey) {
    let (pa, pb) = (
        FaultProxy::start(redis.addr()).await,
        FaultProxy::start(redis.addr()).await,
    );
    let p = prefix();
    let (a, _) = cache(settings(&p, Some(&pa.url("redis://"))));
    let (b, _) = cache(settings(&p, Some(&pb.url("redis://"))));
    assert!(a.wait_ready(Duration::from_secs(3)).await);
    assert!(b.wait_ready(Duration::from_secs(3)).await);
    let key = a.keys().workflow("loc1", "wf");
    a.set(&key, Bytes::from_static(b"v1"), Duration::from_secs(60))
        .await;
    assert_eq!(b.get(&key).await.expect("from L2").tier, Tier::L2);
    assert_eq!(b.get(&key).await.expect("from L1").tier, Tier::L1);
    (a, b, pa, pb, key)
}

// The cause of scenario 7's stale reads: a writer whose breaker had opened (its 50 ms reads
// timed out, or it had not probed yet after a reset) skipped Redis and only waited out its
// own lease, while the other instance's subscriber still heard Redis and kept serving the
// old value from L1. The breaker keeps reads fast; it must not keep a write's invalidation
// from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_breaker_is_open_still_reaches_the_other_instance_before_answering() {
    let redis = RedisServer::start(None).await;
    let (a, b, pa, _pb, key) = two_caches_behind_proxies(&redis).await;
    // 40 ms each way: A's 50 ms reads time out and open its breaker; its subscriber's pings
    // (1 s timeout) still come back within the lease.
    pa.set(Fault::Latency(Duration::from_millis(40)));
    let t = Instant::now();
    let mut n = 0;
    while a.stats().l2.breaker != BreakerState::Open {
        n += 1;
        a.get(&a.keys().workflow("loc1", &format!("other{n}")))
            .await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "A's breaker never opened"
        );
    }
    let t = Instant::now();
    let outcome = a.invalidate(std::slice::from_ref(&key)).await;
    eprintln!(
        "invalidation with the breaker open: {outcome:?} in {:?}",
        t.elapsed()
    );
    assert_eq!(outcome, Invalidation::Applied);
    assert!(
        b.get(&key).await.is_none(),
        "B served the old value after the write"
    );
    pa.set(Fault::Pass);
}

// A writer that cannot reach Redis at all answers (Redis down must not fail writes) once it
// has heard nothing for longer than a lease: an instance sharing the outage has stopped
// trusting its copies by then. When that instance hears Redis again before the writer's
// invalidation is replayed, neither its L1 copy nor the L2 value from before may come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_hears_redis_again_does_not_trust_what_it_held_before() {
    let redis = RedisServer::start(None).await;
    let (a, b, pa, pb, key) = two_caches_behind_proxies(&redis).await;
    pa.set(Fault::Blackhole);
    pb.set(Fault::Blackhole);
    let t = Instant::now();
    let outcome = a.invalidate(std::slice::from_ref(&key)).await;
    let took = t.elapsed();
    eprintln!("invalidation with Redis unreachable: {outcome:?} in {took:?}");
    assert_eq!(outcome, Invalidation::RedisUnreachable);
    assert!(took < Duration::from_secs(1), "{took:?}");
    let t = Instant::now();
    assert!(
        b.get(&key).await.is_none(),
        "B served its copy during the outage"
    );
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    // B hears Redis again; A's tombstone is still pending.
    pb.set(Fault::Pass);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(600) {
        assert!(
            b.get(&key).await.is_none(),
            "B served the old value after the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B uses its tiers again (the misses above were not B still being cut off).
    let calls = Arc::new(AtomicUsize::new(0));
    let fresh = b
        .get_or_load(
            &key,
            Duration::from_secs(60),
            counting(&calls, "v2", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(fresh.value, Some(Bytes::from_static(b"v2")));
    assert_eq!(b.get(&key).await.expect("cached again").tier, Tier::L1);
    pa.set(Fault::Pass);
}

// Redis answers (pings, PUBLISH) but refuses the tombstones (out of memory): the other
// instance drops its L1 copy, yet would read the old value from L2. The write must not be
// answered as a success; the invalidation stays queued and lands once Redis accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_redis_refuses_is_unconfirmed_and_replayed_later() {
    let redis = RedisServer::start(None).await;
    let p = prefix();
    let (a, ra) = cache(settings(&p, Some(&redis.url())));
    let (b, _rb) = cache(settings(&p, Some(&redis.url())));
    assert!(a.wait_ready(Duration::from_secs(3)).await);
    assert!(b.wait_ready(Duration::from_secs(3)).await);
    let key = a.keys().workflow("loc1", "wf");
    a.set(&key, Bytes::from_static(b"v1"), Duration::from_secs(60))
        .await;
    assert_eq!(b.get(&key).await.expect("from L2").tier, Tier::L2);
    let mut admin = raw_conn(&redis.url()).await;
    let config = |value: &'static str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("maxmemory").arg(value);
        cmd
    };
    let _: () = config("1").query_async(&mut admin).await.unwrap();
    let t = Instant::now();
    let outcome = a.invalidate(std::slice::from_ref(&key)).await;
    let took = t.elapsed();
    eprintln!("invalidation refused by Redis: {outcome:?} in {took:?}");
    assert_eq!(outcome, Invalidation::Unconfirmed);
    assert!(took < Duration::from_millis(1_200), "{took:?}");
    assert_eq!(metric(&ra, "cache_unconfirmed_invalidations_total"), 1.0);
    // Why it must not be a success: the old value is still in Redis, and an instance that
    // reads it (here one started now; B's failing acknowledgements opened its breaker) serves it.
    let (c, _rc) = cache(settings(&p, Some(&redis.url())));
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    assert_eq!(
        c.get(&key).await.map(|h| h.bytes),
        Some(Bytes::from_static(b"v1"))
    );
    let _: () = config("0").query_async(&mut admin).await.unwrap();
    let t = Instant::now();
    loop {
        c.clear_l1();
        if c.get(&key).await.is_none() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the queued invalidation never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "replayed {:?} after Redis accepted writes again",
        t.elapsed()
    );
}

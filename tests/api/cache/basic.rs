//! Behaviour against the shared Redis (each test its own prefix).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::*;
use bytes::Bytes;
use ghl_workflow_debugger::cache::{Cache, CacheSettings, CacheStatus, LoadError, Resource, Tier};
use redis::AsyncCommands;

const B: fn(&'static str) -> Bytes = Bytes::from_static_str;

trait FromStaticStr {
    fn from_static_str(s: &'static str) -> Bytes;
}
impl FromStaticStr for Bytes {
    fn from_static_str(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }
}

#[tokio::test]
async fn miss_then_hit_from_l1() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let key = c.keys().workflow("loc1", "wf1");
    let calls = Arc::new(AtomicUsize::new(0));
    let first = c
        .get_or_load(
            &key,
            Duration::from_secs(60),
            counting(&calls, "v1", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(first.status, CacheStatus::Miss);
    assert_eq!(first.status.header_value(), "MISS");
    assert_eq!(first.value, Some(B("v1")));
    let second = c
        .get_or_load(
            &key,
            Duration::from_secs(60),
            counting(&calls, "v2", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(second.status, CacheStatus::Hit(Tier::L1));
    assert_eq!(second.status.tier(), Some("l1"));
    assert_eq!(second.value, Some(B("v1")));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(c.exists(&key).await);
}

#[tokio::test]
async fn hit_from_l2_after_l1_is_cleared_and_in_another_instance() {
    let p = prefix();
    let (a, _ra) = ready_cache(&p).await;
    let (b, _rb) = ready_cache(&p).await;
    let key = a.keys().analysis("loc1", "wf1", 3, "r1");
    a.set(&key, B("{\"score\":1}"), Duration::from_secs(60))
        .await;
    let hit = b.get(&key).await.expect("l2 hit");
    assert_eq!(hit.tier, Tier::L2);
    assert_eq!(hit.bytes, B("{\"score\":1}"));
    // B's L1 was filled with the remaining TTL.
    assert_eq!(b.get(&key).await.unwrap().tier, Tier::L1);
    a.clear_l1();
    let r = a
        .get_or_load(&key, Duration::from_secs(60), || async {
            Err::<Option<Bytes>, std::io::Error>(std::io::Error::other("not called"))
        })
        .await
        .unwrap();
    assert_eq!(r.status, CacheStatus::Hit(Tier::L2));
    assert_eq!(r.status.tier(), Some("l2"));
    // The remaining TTL, not the full one, went into L2's PTTL.
    let mut raw = raw_conn(SHARED_REDIS).await;
    let pttl: i64 = raw.pttl(key.as_str()).await.unwrap();
    assert!(pttl > 0);
}

fn must_not_load() -> impl FnOnce() -> futures::future::Ready<Result<Option<Bytes>, std::io::Error>>
{
    || futures::future::ready(Err(std::io::Error::other("the loader must not be called")))
}

/// A workflow key that one instance wrote to Redis, and a second instance whose L1 never
/// holds workflows, so every read of it goes to Redis.
async fn written_and_read_through_redis(
    id: &str,
    value: &'static str,
) -> (Cache, Cache, ghl_workflow_debugger::cache::CacheKey) {
    let p = prefix();
    let (writer, _) = ready_cache(&p).await;
    let (reader, _) = cache(CacheSettings {
        l1_skip: vec![Resource::Workflow],
        ..settings(&p, Some(SHARED_REDIS))
    });
    assert!(reader.wait_ready(Duration::from_secs(3)).await);
    let key = writer.keys().workflow("loc1", id);
    writer.set(&key, B(value), Duration::from_secs(60)).await;
    (writer, reader, key)
}

#[tokio::test]
async fn concurrent_l1_misses_on_one_thread_share_one_redis_read() {
    let (_writer, reader, key) = written_and_read_through_redis("wf-shared", "v").await;
    let reads = (0..50).map(|_| reader.get_or_load(&key, Duration::from_secs(60), must_not_load()));
    for read in futures::future::join_all(reads).await {
        let read = read.unwrap();
        assert_eq!(
            (read.status, read.value),
            (CacheStatus::Hit(Tier::L2), Some(B("v")))
        );
    }
    let stats = reader.stats();
    assert_eq!(
        (stats.l2.hits, stats.coalesced, stats.loads),
        (1, 49, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_read_that_starts_after_an_invalidation_does_not_share_an_older_redis_read() {
    let (writer, reader, key) = written_and_read_through_redis("wf-switch", "old").await;
    let before = reader.get_or_load(&key, Duration::from_secs(60), must_not_load());
    futures::pin_mut!(before);
    assert!(
        futures::poll!(before.as_mut()).is_pending(),
        "the GET is on its way"
    );
    // The older GET may well complete (with "old") while this runs.
    reader.invalidate(std::slice::from_ref(&key)).await;
    writer.set(&key, B("new"), Duration::from_secs(60)).await;
    let after = reader
        .get_or_load(&key, Duration::from_secs(60), must_not_load())
        .await
        .unwrap();
    assert_eq!(after.value, Some(B("new")));
    assert_eq!(before.await.unwrap().value, Some(B("old")));
}

#[tokio::test]
async fn skipped_resources_never_use_l1_and_others_still_do() {
    let p = prefix();
    let (c, _r) = cache(CacheSettings {
        l1_skip: vec![Resource::Workflow],
        ..settings(&p, Some(SHARED_REDIS))
    });
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    let workflow = c.keys().workflow("loc1", "wf1");
    let location = c.keys().location("loc1");
    for key in [&workflow, &location] {
        c.set(key, B("v"), Duration::from_secs(60)).await;
    }
    for _ in 0..3 {
        assert_eq!(c.get(&workflow).await.unwrap().tier, Tier::L2);
    }
    assert_eq!(c.get(&location).await.unwrap().tier, Tier::L1);
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let key = c.keys().subscription("loc1");
    let calls = Arc::new(AtomicUsize::new(0));
    let ttl = Duration::from_millis(300);
    c.get_or_load(&key, ttl, counting(&calls, "v1", Duration::ZERO))
        .await
        .unwrap();
    assert!(c.get(&key).await.is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(c.get(&key).await.is_none(), "expired in both tiers");
    let r = c
        .get_or_load(&key, ttl, counting(&calls, "v2", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(r.status, CacheStatus::Miss);
    assert_eq!(r.value, Some(B("v2")));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn garbage_bytes_are_a_miss_and_get_replaced() {
    let p = prefix();
    let (c, r) = ready_cache(&p).await;
    let key = c.keys().workflow("loc1", "wf-garbage");
    let mut raw = raw_conn(SHARED_REDIS).await;
    let _: () = raw
        .set_ex(key.as_str(), "{not our format", 60)
        .await
        .unwrap();
    assert!(c.get(&key).await.is_none());
    assert_eq!(metric(&r, "cache_decode_errors_total"), 1.0);
    let calls = Arc::new(AtomicUsize::new(0));
    let got = c
        .get_or_load(
            &key,
            Duration::from_secs(60),
            counting(&calls, "good", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(got.value, Some(B("good")));
    assert_eq!(got.status, CacheStatus::Miss);
    // The key is replaced by a decodable value.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let v: Option<Vec<u8>> = raw.get(key.as_str()).await.unwrap();
        if let Some(v) = v {
            if v.ends_with(b"good") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "key not replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.clear_l1();
    assert_eq!(c.get(&key).await.unwrap().bytes, B("good"));
}

#[tokio::test]
async fn stampede_of_100_cold_requests_loads_once() {
    let p = prefix();
    let (c, r) = ready_cache(&p).await;
    let key = c.keys().workflows("loc1");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = c.clone();
        let key = key.clone();
        let l = counting(&calls, "list", Duration::from_millis(300));
        tasks.push(tokio::spawn(async move {
            c.get_or_load(&key, Duration::from_secs(60), l).await
        }));
    }
    for t in tasks {
        let read = t.await.unwrap().unwrap();
        assert_eq!(read.value, Some(B("list")));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(c.stats().coalesced >= 90, "{:?}", c.stats());
    assert_eq!(metric(&r, "cache_loads_total"), 1.0);
}

#[derive(Debug)]
struct DbDown;

#[tokio::test]
async fn loader_error_reaches_every_waiter_and_is_not_cached() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let key = c.keys().workflow("loc1", "wf-err");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, key, calls) = (c.clone(), key.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            c.get_or_load(&key, Duration::from_secs(60), move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err::<Option<Bytes>, DbDown>(DbDown)
            })
            .await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(LoadError::Loader(_))));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let ok = c
        .get_or_load(
            &key,
            Duration::from_secs(60),
            counting(&calls, "back", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, CacheStatus::Miss);
    assert_eq!(ok.value, Some(B("back")));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_cancelled_caller_does_not_strand_the_others() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let key = c.keys().workflow("loc1", "wf-cancel");
    let calls = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (c, key) = (c.clone(), key.clone());
        let l = counting(&calls, "v", Duration::from_millis(200));
        tokio::spawn(async move { c.get_or_load(&key, Duration::from_secs(60), l).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = {
        let (c, key) = (c.clone(), key.clone());
        let l = counting(&calls, "other", Duration::ZERO);
        tokio::spawn(async move { c.get_or_load(&key, Duration::from_secs(60), l).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(2), follower)
        .await
        .expect("follower not stranded")
        .unwrap()
        .unwrap();
    assert_eq!(got.value, Some(B("v")));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(c.get(&key).await.unwrap().tier, Tier::L1);
}

#[tokio::test]
async fn not_found_is_cached_briefly() {
    let p = prefix();
    let s = CacheSettings {
        negative_ttl: Duration::from_secs(1),
        ..settings(&p, Some(SHARED_REDIS))
    };
    let (c, _r) = cache(s);
    assert!(c.wait_ready(Duration::from_secs(3)).await);
    let key = c.keys().workflow("loc1", "missing");
    let calls = Arc::new(AtomicUsize::new(0));
    let none = |calls: &Arc<AtomicUsize>| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<Bytes>, DbDown>(None)
        }
    };
    let r1 = c
        .get_or_load(&key, Duration::from_secs(60), none(&calls))
        .await
        .unwrap();
    assert_eq!((r1.value, r1.status), (None, CacheStatus::Miss));
    let r2 = c
        .get_or_load(&key, Duration::from_secs(60), none(&calls))
        .await
        .unwrap();
    assert_eq!((r2.value, r2.status), (None, CacheStatus::Hit(Tier::L1)));
    assert!(!c.exists(&key).await);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Another instance sees the negative entry in L2.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (b, _rb) = ready_cache(&p).await;
    let r3 = b
        .get_or_load(&key, Duration::from_secs(60), none(&calls))
        .await
        .unwrap();
    assert_eq!((r3.value, r3.status), (None, CacheStatus::Hit(Tier::L2)));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    c.get_or_load(&key, Duration::from_secs(60), none(&calls))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stale_value_is_served_when_the_loader_fails_after_expiry() {
    let p = prefix();
    let (c, r) = ready_cache(&p).await;
    let key = c.keys().location("loc1");
    let calls = Arc::new(AtomicUsize::new(0));
    let ttl = Duration::from_millis(200);
    c.get_or_load(&key, ttl, counting(&calls, "old", Duration::ZERO))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let failing = || async { Err::<Option<Bytes>, DbDown>(DbDown) };
    let r1 = c.get_or_load(&key, ttl, failing).await.unwrap();
    assert_eq!(r1.status, CacheStatus::Stale);
    assert_eq!(r1.status.header_value(), "STALE");
    assert_eq!(r1.value, Some(B("old")));
    // From L2 too (fresh instance, empty L1).
    let (b, _rb) = ready_cache(&p).await;
    let r2 = b.get_or_load(&key, ttl, failing).await.unwrap();
    assert_eq!((r2.status, r2.value), (CacheStatus::Stale, Some(B("old"))));
    assert_eq!(metric(&r, "cache_stale_served_total"), 1.0);
    assert_eq!(c.stats().stale_served, 1);
    let hit = c.get_with_stale(&key).await.unwrap();
    assert!(hit.stale);
    // No stale value at all: the error surfaces.
    let other = c.keys().location("loc-none");
    assert!(matches!(
        c.get_or_load(&other, ttl, failing).await,
        Err(LoadError::Loader(_))
    ));
}

#[tokio::test]
async fn invalidation_on_one_instance_reaches_the_other_instances_l1() {
    let p = prefix();
    let (a, _ra) = ready_cache(&p).await;
    let (b, _rb) = ready_cache(&p).await;
    assert_ne!(a.settings().instance_id, b.settings().instance_id);
    let key = a.keys().workflow("loc1", "wf-x");
    a.set(&key, B("v1"), Duration::from_secs(60)).await;
    assert_eq!(b.get(&key).await.unwrap().tier, Tier::L2);
    assert_eq!(b.get(&key).await.unwrap().tier, Tier::L1);
    a.invalidate(std::slice::from_ref(&key)).await;
    assert!(a.get(&key).await.is_none());
    let deadline = Instant::now() + Duration::from_secs(1);
    while b.get(&key).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "B still serves the invalidated value"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let r = b
        .get_or_load(
            &key,
            Duration::from_secs(60),
            counting(&calls, "v2", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.value), (CacheStatus::Miss, Some(B("v2"))));
}

#[tokio::test]
async fn flush_leaves_another_namespace_untouched() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let mut raw = raw_conn(SHARED_REDIS).await;
    let foreign = format!("{p}x:foreign");
    let _: () = raw.set_ex(&foreign, "keep me", 60).await.unwrap();
    for n in 0..30 {
        c.set(
            &c.keys().workflow("loc1", &format!("wf{n}")),
            B("v"),
            Duration::from_secs(60),
        )
        .await;
    }
    let removed = c.flush().await.unwrap();
    assert_eq!(removed, 30);
    let left: Vec<String> = raw.keys(format!("{p}:*")).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let kept: Option<String> = raw.get(&foreign).await.unwrap();
    assert_eq!(kept.as_deref(), Some("keep me"));
    assert!(c.get(&c.keys().workflow("loc1", "wf1")).await.is_none());
    let _: () = raw.del(&foreign).await.unwrap();
}

/// A read that loaded the old row before a write committed must not put it back.
#[tokio::test]
async fn a_load_in_flight_during_an_invalidation_does_not_refill_the_old_value() {
    let p = prefix();
    let (a, _ra) = ready_cache(&p).await;
    let (b, _rb) = ready_cache(&p).await;
    for (loader_cache, other) in [(&a, &a), (&b, &a)] {
        let key = a
            .keys()
            .workflow("loc1", &format!("race-{}", rand::random::<u32>()));
        let started = Arc::new(tokio::sync::Notify::new());
        let proceed = Arc::new(tokio::sync::Notify::new());
        let load = {
            let (c, key, started, proceed) = (
                loader_cache.clone(),
                key.clone(),
                started.clone(),
                proceed.clone(),
            );
            tokio::spawn(async move {
                c.get_or_load(&key, Duration::from_secs(60), move || async move {
                    started.notify_one();
                    proceed.notified().await; // the old row was read; the write commits now
                    Ok::<_, DbDown>(Some(Bytes::from_static(b"old")))
                })
                .await
            })
        };
        started.notified().await;
        other.invalidate(std::slice::from_ref(&key)).await; // write committed + invalidated
        tokio::time::sleep(Duration::from_millis(50)).await;
        proceed.notify_one();
        let r = load.await.unwrap().unwrap();
        assert_eq!(r.value, Some(B("old")), "the caller still gets its read");
        tokio::time::sleep(Duration::from_millis(100)).await; // let fire-and-forget fills land
        for c in [&a, &b] {
            assert!(c.get(&key).await.is_none(), "old value came back");
        }
        let fresh = loader_cache
            .get_or_load(&key, Duration::from_secs(60), || async {
                Ok::<_, DbDown>(Some(Bytes::from_static(b"new")))
            })
            .await
            .unwrap();
        assert_eq!(fresh.value, Some(B("new")));
    }
}

#[tokio::test]
async fn in_memory_mode_is_healthy_and_reports_the_contract_shapes() {
    let (c, _r) = cache(settings(&prefix(), None));
    let key = c.keys().workflow("l", "w");
    let r = c
        .get_or_load(&key, Duration::from_secs(60), || async {
            Ok::<_, DbDown>(Some(Bytes::from_static(b"x")))
        })
        .await
        .unwrap();
    assert_eq!(r.status, CacheStatus::Miss);
    c.get(&key).await.unwrap();
    let h = serde_json::to_value(c.health().await).unwrap();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["type"], "in-memory");
    assert_eq!(h["size"], 1);
    assert!(h.get("connected").is_none());
    let s = serde_json::to_value(c.stats()).unwrap();
    assert_eq!(s["type"], "in-memory");
    assert_eq!(s["connected"], false);
    assert_eq!(s["l1"]["entries"], 1);
    assert_eq!(s["l1"]["capacity"], 10_000);
    assert_eq!(s["l1"]["hits"], 1);
    assert_eq!(s["l1"]["misses"], 1);
    assert_eq!(s["l2"]["breaker"], "closed");
    for f in ["hits", "misses", "errors", "timeouts"] {
        assert_eq!(s["l2"][f], 0, "{f}");
    }
    assert_eq!(s["loads"], 1);
    assert_eq!(s["coalesced"], 0);
    assert_eq!(s["staleServed"], 0);
    assert_eq!(s["hitRatio"], 0.5);
    assert_eq!(c.flush().await.unwrap(), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn bypass_setting_skips_both_tiers() {
    let s = CacheSettings {
        bypass: true,
        ..settings(&prefix(), None)
    };
    let (c, _r) = cache(s);
    assert!(c.bypass());
    let key = c.keys().workflow("l", "w");
    for _ in 0..2 {
        let r = c
            .get_or_load(&key, Duration::from_secs(60), || async {
                Ok::<_, DbDown>(Some(Bytes::from_static(b"x")))
            })
            .await
            .unwrap();
        assert_eq!(r.status.header_value(), "BYPASS");
    }
    assert_eq!(c.stats().loads, 2);
}

#[tokio::test]
async fn l1_is_bounded_by_entries_and_bytes() {
    let s = CacheSettings {
        l1_capacity: 100,
        l1_max_bytes: 100 * 1024,
        ..settings(&prefix(), None)
    };
    let (c, r) = cache(s);
    for n in 0..1_000 {
        c.set(
            &c.keys().workflow("l", &n.to_string()),
            B("small"),
            Duration::from_secs(60),
        )
        .await;
    }
    assert!(c.stats().l1.entries <= 110, "{}", c.stats().l1.entries);
    let big = Bytes::from(vec![b'x'; 10 * 1024]);
    for n in 0..100 {
        c.set(
            &c.keys().analysis("l", &n.to_string(), 1, "r"),
            big.clone(),
            Duration::from_secs(60),
        )
        .await;
    }
    let entries = c.stats().l1.entries;
    let weight = metric(&r, "cache_l1_weight_bytes");
    assert!(weight <= 100.0 * 1024.0, "weight {weight}");
    assert!(entries <= 100, "{entries}");
}

#[tokio::test]
async fn warming_never_puts_back_a_value_invalidated_after_it_was_read() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let key = c.keys().workflow("loc1", "written");
    let other = c.keys().workflow("loc1", "untouched");
    // Warming read both rows; then a write to one of them committed and invalidated it.
    let ticket = c.begin_warming();
    c.invalidate(std::slice::from_ref(&key)).await;
    let entries = vec![
        (key.clone(), B("old"), Duration::from_secs(60)),
        (other.clone(), B("fresh"), Duration::from_secs(60)),
    ];
    assert_eq!(c.warm(ticket, entries, 2).await, 1);
    assert!(c.get(&key).await.is_none(), "the old row was warmed back");
    let (b, _rb) = ready_cache(&p).await;
    assert!(b.get(&key).await.is_none(), "the old row reached Redis");
    assert_eq!(c.get(&other).await.unwrap().bytes, B("fresh"));
}

#[tokio::test]
async fn warm_fills_both_tiers() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let entries: Vec<_> = (0..20)
        .map(|n| {
            (
                c.keys().workflow("loc1", &format!("w{n}")),
                B("warm"),
                Duration::from_secs(60),
            )
        })
        .collect();
    let ticket = c.begin_warming();
    assert_eq!(c.warm(ticket, entries, 4).await, 20);
    assert_eq!(
        c.get(&c.keys().workflow("loc1", "w3")).await.unwrap().tier,
        Tier::L1
    );
    let (b, _rb) = ready_cache(&p).await;
    assert_eq!(
        b.get(&c.keys().workflow("loc1", "w3")).await.unwrap().tier,
        Tier::L2
    );
}

#[tokio::test]
async fn a_read_after_an_invalidation_does_not_join_the_older_load() {
    let p = prefix();
    let (c, _r) = ready_cache(&p).await;
    let key = c.keys().workflow("loc1", "rw");
    let started = Arc::new(tokio::sync::Notify::new());
    let proceed = Arc::new(tokio::sync::Notify::new());
    let old = {
        let (c, key, started, proceed) = (c.clone(), key.clone(), started.clone(), proceed.clone());
        tokio::spawn(async move {
            c.get_or_load(&key, Duration::from_secs(60), move || async move {
                started.notify_one();
                proceed.notified().await;
                Ok::<_, DbDown>(Some(Bytes::from_static(b"old")))
            })
            .await
        })
    };
    started.notified().await;
    c.del(&key).await;
    let new = c
        .get_or_load(&key, Duration::from_secs(60), || async {
            Ok::<_, DbDown>(Some(Bytes::from_static(b"new")))
        })
        .await
        .unwrap();
    assert_eq!(new.value, Some(B("new")));
    proceed.notify_one();
    assert_eq!(old.await.unwrap().unwrap().value, Some(B("old")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.get(&key).await.unwrap().bytes, B("new"));
}

#[tokio::test]
async fn l2_takes_a_fill_at_once_after_an_invalidation_but_never_from_a_load_that_began_before() {
    let p = prefix();
    let (a, _ra) = ready_cache(&p).await;
    let (b, _rb) = ready_cache(&p).await;
    let key = a.keys().workflow("loc1", "tomb");
    // A load on B that read the old row before the write, held until the write's
    // invalidation is in Redis.
    let started = Arc::new(tokio::sync::Notify::new());
    let proceed = Arc::new(tokio::sync::Notify::new());
    let held = {
        let (b, key, started, proceed) = (b.clone(), key.clone(), started.clone(), proceed.clone());
        tokio::spawn(async move {
            b.get_or_load(&key, Duration::from_secs(60), move || async move {
                started.notify_one();
                proceed.notified().await;
                Ok::<_, DbDown>(Some(Bytes::from_static(b"v1")))
            })
            .await
        })
    };
    started.notified().await;
    a.del(&key).await;
    proceed.notify_one();
    assert_eq!(held.await.unwrap().unwrap().value, Some(B("v1")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut raw = raw_conn(SHARED_REDIS).await;
    let v: Vec<u8> = raw.get(key.as_str()).await.unwrap();
    assert_eq!(
        v[..3],
        ghl_workflow_debugger::cache::wire::tombstone_prefix(),
        "the held load put the old row back"
    );
    // Right after the write, no clock margin: B's next load saw the tombstone before it
    // read, so it replaces it at once, and a third instance hits L2.
    let r = b
        .get_or_load(&key, Duration::from_secs(60), || async {
            Ok::<_, DbDown>(Some(Bytes::from_static(b"v2")))
        })
        .await
        .unwrap();
    assert_eq!((r.value, r.status), (Some(B("v2")), CacheStatus::Miss));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (c, _rc) = ready_cache(&p).await;
    let hit = c.get(&key).await.unwrap();
    assert_eq!((hit.bytes, hit.tier), (B("v2"), Tier::L2));
}

//! Issue 20: with Redis down the in-process tier keeps serving, kept current by the
//! invalidation bus through Postgres (pg_notify in every write's transaction, one LISTEN
//! connection per instance, the lease from its own heartbeat).

use std::time::Duration;

use serde_json::Value;

use super::harness::*;
use crate::helpers::{sample_workflow, spawn_sibling, TestApp};

/// `n` reads of one workflow on `app`: how many the in-process tier answered, and every
/// version seen (in order).
async fn hot_reads(app: &TestApp, key: &str, id: &str, n: usize) -> (usize, Vec<i64>) {
    let (mut l1, mut versions) = (0, Vec::new());
    for _ in 0..n {
        let r = app.api_get(key, &format!("/api/workflows/{id}")).await;
        assert_eq!(r.status(), 200);
        if r.headers().get("x-cache-tier").is_some_and(|t| t == "l1") {
            l1 += 1;
        }
        let body: Value = r.json().await.unwrap();
        versions.push(body["data"]["version"].as_i64().unwrap());
    }
    (l1, versions)
}

/// `cache_operations_total{type="memory",operation="hit",…}` summed over resources.
async fn memory_hits(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("cache_operations_total{")
                && l.contains("type=\"memory\"")
                && l.contains("operation=\"hit\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_hot_reads_come_from_memory_and_writes_still_reach_every_instance() {
    let mut redis = RedisServer::start(None).await;
    let one = app_on(&redis.url(), |_| {}).await;
    let two = spawn_sibling(&one).await;
    crate::caching::wait_for_redis(&two).await;
    let seeded = seed(&one, "locMem", 2).await;
    let key = &seeded.key;

    // Redis killed under reads on both instances: not one failed or wrong answer.
    let total = scaled(400);
    let loads = [
        Load::reads(&one.address, &seeded, 3, total),
        Load::reads(&two.address, &seeded, 3, total),
    ];
    for load in &loads {
        load.wait_for(total / 4).await;
    }
    redis.kill();
    assert!(wait_health(&one, "degraded", Duration::from_secs(3))
        .await
        .is_some());
    assert!(wait_health(&two, "degraded", Duration::from_secs(3))
        .await
        .is_some());
    for load in loads {
        load.wait_for(total).await;
        let tally = load.finish().await;
        assert_eq!(tally.five_xx(), 0, "{}", tally.summary());
        assert_eq!(tally.wrong(), 0, "{}", tally.summary());
    }

    // Health: 200, degraded, the in-memory fallback of the contract.
    let r = one.get("/health/detailed").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    let cache = &body["checks"]["cache"];
    assert_eq!(cache["status"], "degraded", "{cache}");
    assert_eq!(cache["type"], "in-memory", "{cache}");
    assert_eq!(cache["message"], "Redis unavailable, using fallback");
    assert!(cache["size"].is_u64(), "{cache}");

    // Hot reads: at least 90 % from memory on each instance, counted by the metric.
    let n = 200;
    let before = memory_hits(&one).await;
    let (l1_one, _) = hot_reads(&one, key, "wf0", n).await;
    let (l1_two, _) = hot_reads(&two, key, "wf0", n).await;
    assert!(
        l1_one * 10 >= n * 9,
        "instance 1: {l1_one} of {n} from memory"
    );
    assert!(
        l1_two * 10 >= n * 9,
        "instance 2: {l1_two} of {n} from memory"
    );
    let counted = memory_hits(&one).await - before;
    assert!(
        counted >= l1_one as f64,
        "memory hits counted {counted}, served {l1_one}"
    );
    let size = one
        .get("/health/detailed")
        .await
        .json::<Value>()
        .await
        .unwrap()["checks"]["cache"]["size"]
        .as_u64()
        .unwrap();
    assert!(size >= 1, "L1 size {size} with a hot key in it");

    // A write on instance 1, acknowledged: instance 2 never answers an older version after.
    for round in 0..5 {
        let doc = sample_workflow(&format!("changed {round}"));
        let put = one.put_workflow(key, "wf0", &doc).await;
        assert_eq!(put.status(), 200, "write {round} with Redis down");
        let written: Value = put.json().await.unwrap();
        let version = written["data"]["version"].as_i64().unwrap();
        let (_, seen) = hot_reads(&two, key, "wf0", 20).await;
        assert!(
            seen.iter().all(|v| *v >= version),
            "instance 2 answered {seen:?} after version {version} was acknowledged"
        );
    }
    // And instance 2 keeps serving it from memory after the write.
    let (l1_after, _) = hot_reads(&two, key, "wf0", 50).await;
    assert!(
        l1_after >= 45,
        "{l1_after} of 50 from memory after the writes"
    );

    // Redis back: the tiers resume without a restart.
    redis.restart().await;
    assert!(wait_health(&one, "healthy", Duration::from_secs(5))
        .await
        .is_some());
    assert!(wait_health(&two, "healthy", Duration::from_secs(5))
        .await
        .is_some());
    let (_, seen) = hot_reads(&two, key, "wf0", 5).await;
    let latest = one.api_get_json(key, "/api/workflows/wf0").await["data"]["version"]
        .as_i64()
        .unwrap();
    assert!(seen.iter().all(|v| *v == latest), "{seen:?} vs {latest}");
}

/// Terminates the invalidation listeners' sessions on `database_url`'s database; how many.
async fn terminate_listeners(database_url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    sqlx::query_scalar(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity
         where application_name = $1 and datname = current_database()",
    )
    .bind(ghl_workflow_debugger::repository::postgres::listener::APPLICATION_NAME)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_killed_while_redis_is_down_stops_memory_answers_until_it_is_back() {
    let mut redis = RedisServer::start(None).await;
    let one = app_on(&redis.url(), |_| {}).await;
    let two = spawn_sibling(&one).await;
    crate::caching::wait_for_redis(&two).await;
    let seeded = seed(&one, "locListener", 1).await;
    let key = &seeded.key;
    redis.kill();
    assert!(wait_health(&one, "degraded", Duration::from_secs(3))
        .await
        .is_some());
    assert!(wait_health(&two, "degraded", Duration::from_secs(3))
        .await
        .is_some());
    let (l1, _) = hot_reads(&two, key, "wf0", 20).await;
    assert!(l1 >= 15, "{l1} of 20 from memory before the kill");

    // Both instances' listeners go; a write is acknowledged meanwhile.
    assert_eq!(terminate_listeners(one.database_url()).await, 2);
    let put = one
        .put_workflow(key, "wf0", &sample_workflow("while deaf"))
        .await;
    assert_eq!(put.status(), 200);
    let version = put.json::<Value>().await.unwrap()["data"]["version"]
        .as_i64()
        .unwrap();

    // The first read on the other instance after the acknowledgement is not a memory answer
    // (its lease lapsed, or its listener came back and dropped what it held) and is current.
    let first = two.api_get(key, "/api/workflows/wf0").await;
    let tier = first
        .headers()
        .get("x-cache-tier")
        .map(|t| t.to_str().unwrap().to_owned());
    let body: Value = first.json().await.unwrap();
    let first_version = body["data"]["version"].as_i64().unwrap();
    assert_ne!(
        tier.as_deref(),
        Some("l1"),
        "version {first_version} after {version}"
    );
    assert!(first_version >= version);

    // Once the listener is back, memory answers again, and never with an older version.
    let mut back = false;
    for _ in 0..100 {
        let (l1, seen) = hot_reads(&two, key, "wf0", 5).await;
        assert!(
            seen.iter().all(|v| *v >= version),
            "{seen:?} after {version}"
        );
        if l1 >= 4 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        back,
        "memory answers never resumed after the listener came back"
    );
}

/// Waits until `n` invalidation listeners are connected to `database_url`'s database and
/// have exchanged a few heartbeats.
async fn wait_for_listeners(database_url: &str, n: i64) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    for _ in 0..100 {
        let up: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where application_name = $1 and datname = current_database()",
        )
        .bind(ghl_workflow_debugger::repository::postgres::listener::APPLICATION_NAME)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if up >= n {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} listeners never connected");
}

// Without Redis at all, the Postgres bus still carries every write to the other instances,
// and a write is answered once they acknowledged it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_write_reaches_the_other_instance_through_postgres() {
    let one = crate::helpers::spawn_app_with(|env| {
        env.insert("REDIS_URL".into(), String::new());
    })
    .await;
    let two = spawn_sibling(&one).await;
    wait_for_listeners(one.database_url(), 2).await;
    let key = one.create_location("locNoRedis").await;
    assert_eq!(
        one.put_workflow(&key, "wf0", &sample_workflow("first"))
            .await
            .status(),
        201
    );
    for round in 0..5 {
        let (l1, _) = hot_reads(&two, &key, "wf0", 3).await;
        assert!(l1 >= 2, "round {round}: the other instance holds a copy");
        let put = one
            .put_workflow(&key, "wf0", &sample_workflow(&format!("round {round}")))
            .await;
        assert_eq!(put.status(), 200);
        let version = put.json::<Value>().await.unwrap()["data"]["version"]
            .as_i64()
            .unwrap();
        let (_, seen) = hot_reads(&two, &key, "wf0", 3).await;
        assert!(
            seen.iter().all(|v| *v >= version),
            "round {round}: {seen:?} after {version}"
        );
    }
}

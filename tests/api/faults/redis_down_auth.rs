//! Issue 20 beyond workflow writes: with Redis down, a key revocation and a webhook's plan
//! change reach another instance that holds them in memory through the Postgres bus, before
//! they are answered (the workflow PUTs are `redis_down_memory`).

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::*;
use crate::binary::{binary, key_from};
use crate::helpers::{spawn_sibling, TestApp};
use crate::webhooks::{event, send_signed, SECRET};

/// `cache_operations_total{type="memory",operation="hit",resource=…}` of an instance.
async fn memory_hits(app: &TestApp, resource: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let resource = format!("resource=\"{resource}\"");
    text.lines()
        .filter(|l| {
            l.starts_with("cache_operations_total{")
                && l.contains("type=\"memory\"")
                && l.contains("operation=\"hit\"")
                && l.contains(&resource)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Two instances on one Redis (signed webhooks accepted), that Redis killed: both degraded.
async fn two_instances_then_redis_down() -> (RedisServer, TestApp, TestApp) {
    let mut redis = RedisServer::start(None).await;
    let one = app_on(&redis.url(), |env| {
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await;
    let two = spawn_sibling(&one).await;
    crate::caching::wait_for_redis(&two).await;
    redis.kill();
    for app in [&one, &two] {
        assert!(wait_health(app, "degraded", Duration::from_secs(3))
            .await
            .is_some());
    }
    (redis, one, two)
}

/// Reads with `key` on `app` until its lookup is answered from memory (Redis is down: only
/// the in-process tier can).
async fn cached_in_memory(app: &TestApp, key: &str, path: &str, resource: &str) {
    let before = memory_hits(app, resource).await;
    for _ in 0..20 {
        assert_eq!(app.api_get(key, path).await.status(), 200);
        if memory_hits(app, resource).await > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{resource} never answered from memory with Redis down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_key_revoked_by_the_cli_is_refused_at_once_where_it_was_cached() {
    let (redis, one, two) = two_instances_then_redis_down().await;
    one.create_location("locRevoke").await;
    let cli = |args: &[&str]| {
        let mut command = binary();
        command
            .args(args)
            .env("DATABASE_URL", one.database_url())
            .env("REDIS_URL", redis.url())
            .env("CACHE_PREFIX", &one.env["CACHE_PREFIX"]);
        command
    };
    let created = cli(&["key", "create", "--location", "locRevoke"])
        .output()
        .await
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let key = key_from(&created.stdout);
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    let key_id = stdout.split_whitespace().nth(2).unwrap().to_owned();
    for app in [&one, &two] {
        cached_in_memory(app, &key, "/api/workflows", "api_key").await;
    }

    let revoked = cli(&["key", "revoke", "--id", &key_id])
        .output()
        .await
        .unwrap();
    // Revoked in the database; Redis could not confirm it (exit 3), Postgres carried it.
    assert_eq!(revoked.status.code(), Some(3), "{revoked:?}");

    for app in [&two, &one] {
        let response = app.api_get(&key, "/api/workflows").await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_webhook_on_one_instance_is_seen_at_once_on_the_other() {
    let (_redis, one, two) = two_instances_then_redis_down().await;
    let key = one.create_location("locHooked").await;
    cached_in_memory(&two, &key, "/api/subscription", "subscription").await;
    let plan = |body: Value| body["data"]["plan"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        plan(two.api_get_json(&key, "/api/subscription").await),
        "free"
    );

    // A plan change applied by a webhook on instance 1, acknowledged: instance 2 shows it.
    for (n, new_plan) in ["pro", "agency", "starter"].into_iter().enumerate() {
        let upgrade = event(
            &format!("evt_plan_{n}"),
            "SubscriptionUpdated",
            "locHooked",
            json!({"plan": new_plan, "status": "active"}),
        );
        assert_eq!(send_signed(&one, &upgrade).await.status(), 200);
        assert_eq!(
            plan(two.api_get_json(&key, "/api/subscription").await),
            new_plan,
            "change {n} on instance 2"
        );
        // Cached again there before the next change.
        cached_in_memory(&two, &key, "/api/subscription", "subscription").await;
    }

    // The location uninstalled by a webhook on instance 1: its key, cached on instance 2,
    // is refused there at once.
    cached_in_memory(&two, &key, "/api/workflows", "api_key").await;
    let uninstall = event("evt_gone", "AppUninstall", "locHooked", json!({}));
    assert_eq!(send_signed(&one, &uninstall).await.status(), 200);
    assert_eq!(two.api_get(&key, "/api/workflows").await.status(), 401);
    assert_eq!(one.api_get(&key, "/api/workflows").await.status(), 401);
}

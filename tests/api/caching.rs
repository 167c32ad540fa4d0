//! The cache seen through the API: headers, tiers, invalidation across instances.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{sample_workflow, spawn_app, spawn_sibling, TestApp};

fn cache_headers(response: &reqwest::Response) -> (String, Option<String>) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        header("x-cache-status").unwrap_or_default(),
        header("x-cache-tier"),
    )
}

/// Until the instance's Redis tier is connected (its startup probe is asynchronous).
pub async fn wait_for_redis(app: &TestApp) {
    for _ in 0..50 {
        let body: Value = app.get("/health/detailed").await.json().await.unwrap();
        if body["checks"]["cache"]["type"] == "redis" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis tier never connected");
}

async fn version_seen(app: &TestApp, key: &str, id: &str) -> i64 {
    let body = app.api_get_json(key, &format!("/api/workflows/{id}")).await;
    body["data"]["version"].as_i64().unwrap()
}

#[tokio::test]
async fn a_read_is_a_miss_then_an_l1_hit_then_an_l2_hit_after_an_l1_flush() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Cached"))
        .await;
    // Loads that start right after a write do not refill Redis (the stale-set guard's
    // tombstone); this test is about the tiers, so it reads once that window has passed.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let first = app.api_get(&key, "/api/workflows/wf1").await;
    let second = app.api_get(&key, "/api/workflows/wf1").await;
    assert_eq!(cache_headers(&first), ("MISS".to_owned(), None));
    assert_eq!(
        cache_headers(&second),
        ("HIT".to_owned(), Some("l1".to_owned()))
    );
    let first_body: Value = first.json().await.unwrap();
    let second_body: Value = second.json().await.unwrap();
    assert_eq!(first_body["data"], second_body["data"]);

    // A second instance has an empty L1: its first read comes from Redis.
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&sibling).await;
    let from_redis = sibling.api_get(&key, "/api/workflows/wf1").await;
    assert_eq!(
        cache_headers(&from_redis),
        ("HIT".to_owned(), Some("l2".to_owned()))
    );
    let from_redis: Value = from_redis.json().await.unwrap();
    assert_eq!(from_redis["data"], first_body["data"]);
}

#[tokio::test]
async fn a_write_on_one_instance_is_not_served_stale_by_the_others_l1() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("v1")).await;
    // Both instances hold version 1 in L1.
    for instance in [&app, &sibling] {
        version_seen(instance, &key, "wf1").await;
        assert_eq!(version_seen(instance, &key, "wf1").await, 1);
    }

    // Writes wait until every other instance acknowledged the invalidation, so the very
    // next read anywhere sees the new version (no polling).
    for round in 2..=11 {
        let put = app
            .put_workflow(&key, "wf1", &sample_workflow(&format!("v{round}")))
            .await;
        assert_eq!(put.status(), 200);
        assert_eq!(
            version_seen(&sibling, &key, "wf1").await,
            round,
            "sibling served a stale version"
        );
        assert_eq!(version_seen(&app, &key, "wf1").await, round);
        // Re-warm the sibling's L1 with this version before the next write.
        assert_eq!(version_seen(&sibling, &key, "wf1").await, round);
    }

    assert_eq!(app.delete_workflow(&key, "wf1").await.status(), 204);
    assert_eq!(
        sibling.api_get(&key, "/api/workflows/wf1").await.status(),
        404
    );
}

#[tokio::test]
async fn lists_are_invalidated_by_writes() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let count = |body: Value| body["data"]["count"].as_u64().unwrap();

    let empty: Value = app.api_get_json(&key, "/api/workflows").await;
    app.put_workflow(&key, "wf1", &sample_workflow("one")).await;
    let one: Value = app.api_get_json(&key, "/api/workflows").await;

    assert_eq!(count(empty), 0);
    assert_eq!(count(one), 1);
}

/// A list served from L1 is cut from a split kept beside it; a write on either instance
/// must still show on the next page read, from both.
#[tokio::test]
async fn pages_cut_from_a_kept_list_follow_writes_on_both_instances() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("one")).await;
    for instance in [&app, &sibling] {
        instance.api_get(&key, "/api/workflows").await;
        let warm = instance.api_get(&key, "/api/workflows").await;
        assert_eq!(warm.headers()["x-cache-tier"], "l1");
    }

    app.put_workflow(&key, "wf2", &sample_workflow("two")).await;

    for instance in [&app, &sibling] {
        // The first read refills the tiers; the second is an L1 hit on the new list.
        for _ in 0..2 {
            let page: Value = instance
                .api_get_json(&key, "/api/workflows?limit=1&page=2")
                .await;
            assert_eq!(page["data"]["count"], 1);
            assert_eq!(page["data"]["pagination"]["total"], 2);
            assert_eq!(page["data"]["pagination"]["hasMore"], false);
        }
    }
}

#[tokio::test]
async fn tenant_isolation_holds_with_a_warm_cache_on_both_instances() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;
    app.put_workflow(&key_a, "shared-name", &sample_workflow("A's"))
        .await;
    for instance in [&app, &sibling] {
        assert_eq!(
            instance
                .api_get(&key_a, "/api/workflows/shared-name")
                .await
                .status(),
            200
        );
        assert_eq!(
            instance
                .api_get(&key_a, "/api/workflows/shared-name")
                .await
                .status(),
            200
        );
    }

    for instance in [&app, &sibling] {
        for path in ["/api/workflows/shared-name", "/api/workflows/shared-name"] {
            assert_eq!(instance.api_get(&key_b, path).await.status(), 404);
        }
        let list: Value = instance.api_get_json(&key_b, "/api/workflows").await;
        assert_eq!(list["data"]["count"], 0);
    }
}

#[tokio::test]
async fn cache_stats_and_flush_are_operator_routes() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Stats"))
        .await;
    app.api_get(&key, "/api/workflows/wf1").await;
    app.api_get(&key, "/api/workflows/wf1").await;

    let stats: Value = app.get("/internal/cache-stats").await.json().await.unwrap();
    let data = &stats["data"];
    for field in [
        "type",
        "connected",
        "l1",
        "l2",
        "loads",
        "coalesced",
        "staleServed",
        "hitRatio",
    ] {
        assert!(
            data.get(field).is_some(),
            "cache-stats lacks {field}: {data}"
        );
    }
    assert!(data["l1"]["hits"].as_u64().unwrap() >= 1);
    assert_eq!(data["l2"]["breaker"], "closed");

    let flushed = app
        .send(app.client.post(app.url("/internal/cache/flush")))
        .await;
    assert_eq!(flushed.status(), 200);
    let after = app.api_get(&key, "/api/workflows/wf1").await;
    assert_eq!(cache_headers(&after).0, "MISS");
}

#[tokio::test]
async fn cache_metrics_are_exposed_without_tenant_labels() {
    let app = spawn_app().await;
    let key = app.create_location("locSecretTenant").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Metrics"))
        .await;
    app.api_get(&key, "/api/workflows/wf1").await;
    app.api_get(&key, "/api/workflows/wf1").await;

    let text = app.get("/metrics").await.text().await.unwrap();

    assert!(text.contains("cache_operations_total{"), "{text}");
    assert!(text.contains(r#"resource="workflow""#));
    assert!(
        text.contains(r#"db_pool_connections{state="open"}"#),
        "{text}"
    );
    assert!(
        text.contains("cache_redis_pool_connections") || text.contains("pool"),
        "{text}"
    );
    assert!(!text.contains("locSecretTenant"));
}

#[tokio::test]
async fn cache_warm_preloads_recent_workflows_without_delaying_startup() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Warm me"))
        .await;
    let mut warm_env = app.env.clone();
    warm_env.insert("CACHE_WARM".into(), "true".into());
    warm_env.insert(
        "CACHE_PREFIX".into(),
        crate::helpers::unique_name("gwdwarm"),
    );
    let warmed = crate::helpers::start(crate::helpers::settings_from(&warm_env), None).await;

    // Wait for warming without reading the workflow itself (a read would fill the cache).
    let mut entries = 0;
    for _ in 0..100 {
        let stats: Value = warmed
            .get("/internal/cache-stats")
            .await
            .json()
            .await
            .unwrap();
        entries = stats["data"]["l1"]["entries"].as_u64().unwrap();
        if entries > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(entries > 0, "nothing was warmed");

    let first_read = warmed.api_get(&key, "/api/workflows/wf1").await;

    assert_eq!(cache_headers(&first_read).0, "HIT");
}

#[tokio::test]
async fn cache_bypass_reads_workflows_and_analyses_from_postgres_every_time() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("CACHE_BYPASS".into(), "true".into());
    })
    .await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Bypassed"))
        .await;

    for path in [
        "/api/workflows/wf1",
        "/api/workflows/wf1",
        "/api/workflows/wf1/analysis",
        "/api/workflows/wf1/analysis",
    ] {
        let response = app.api_get(&key, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(cache_headers(&response).0, "BYPASS", "{path}");
    }
}

#[tokio::test]
async fn request_metrics_are_labelled_by_route_pattern_never_by_path() {
    let app = spawn_app().await;
    let key = app.create_location("locPatternTenant").await;
    app.put_workflow(&key, "wf-secret-id", &sample_workflow("Labels"))
        .await;
    app.api_get(&key, "/api/workflows/wf-secret-id").await;
    app.send(app.client.patch(app.url("/api/workflows/wf-secret-id")))
        .await;
    app.get("/no/such/route").await;
    app.get("/metrics").await;

    let text = app.get("/metrics").await.text().await.unwrap();

    let series = |endpoint: &str, method: &str, status: &str| {
        format!(
            r#"http_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}} 1"#
        )
    };
    assert!(
        text.contains(&series("/api/workflows/{id}", "GET", "200")),
        "{text}"
    );
    assert!(
        text.contains(&series("/api/workflows/{id}", "PATCH", "405")),
        "{text}"
    );
    assert!(text.contains(&series("UNKNOWN", "GET", "404")), "{text}");
    assert!(text.contains(r#"http_http_requests_duration_seconds_bucket{endpoint="/api/workflows/{id}",method="GET",status="200",le="+Inf"} 1"#), "{text}");
    assert!(!text.contains(r#"endpoint="/metrics""#), "{text}");
    assert!(!text.contains("wf-secret-id") && !text.contains("/no/such/route"));
}

// Issue 20: tombstones are named, not timed. A read on another instance right after a write
// loads past the tombstone it saw and replaces it at once, so the next instance to ask hits
// Redis (before, loads begun within 250 ms of the write could not fill it).
#[tokio::test]
async fn a_read_right_after_a_write_on_another_instance_fills_redis_at_once() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    let key = app.create_location("locFillNow").await;
    let mut l2_hits = 0;
    let rounds = 10;
    for round in 0..rounds {
        let put = app
            .put_workflow(&key, "wf1", &sample_workflow(&format!("round {round}")))
            .await;
        assert!(put.status().is_success());
        let version = put.json::<Value>().await.unwrap()["data"]["version"]
            .as_i64()
            .unwrap();
        let first = sibling.api_get(&key, "/api/workflows/wf1").await;
        assert_eq!(first.headers()["x-cache-status"], "MISS");
        // The writer dropped its own copy: it asks Redis, which the sibling's load filled.
        let second = app.api_get(&key, "/api/workflows/wf1").await;
        let tier = second
            .headers()
            .get("x-cache-tier")
            .map(|t| t.to_str().unwrap().to_owned());
        let body: Value = second.json().await.unwrap();
        assert_eq!(body["data"]["version"], version);
        if tier.as_deref() == Some("l2") {
            l2_hits += 1;
        }
    }
    // The sibling's Redis fill is not awaited by its response: allow a few to land late.
    assert!(
        l2_hits * 10 >= rounds * 7,
        "{l2_hits} of {rounds} reads were L2 hits"
    );
}

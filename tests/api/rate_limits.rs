//! Per-plan request limits on `/api/*` and the analysis quota, on real Redis and without it.

use std::time::Duration;

use ghl_workflow_debugger::cache::{Cache, CacheSettings};
use ghl_workflow_debugger::metrics::Metrics;
use ghl_workflow_debugger::repository::postgres::database;
use ghl_workflow_debugger::services::rate_limiter::RateLimitExceeded;
use ghl_workflow_debugger::state::AppState;
use serde_json::{json, Value};

use crate::caching::wait_for_redis;
use crate::faults::harness::RedisServer;
use crate::helpers::{settings_from, spawn_app_with, spawn_sibling, TestApp};
use crate::webhooks::{event, send_signed, SECRET};

const FREE_PER_WINDOW: u64 = 20;

async fn limited_app(
    customize: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> TestApp {
    spawn_app_with(|env| {
        env.insert("RATE_LIMIT_ENABLED".into(), "true".into());
        customize(env);
    })
    .await
}

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().parse().unwrap())
}

/// Spends `n` requests and asserts each one was allowed.
async fn spend(app: &TestApp, key: &str, n: u64) {
    for _ in 0..n {
        let response = app.api_get(key, "/api/workflows").await;
        assert_eq!(response.status(), 200, "a request within the limit");
    }
}

async fn assert_limited(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), 429);
    let retry_after = header(&response, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some(0));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
    retry_after
}

#[tokio::test]
async fn a_free_location_gets_20_requests_per_minute_then_429_with_retry_after() {
    let app = limited_app(|_| {}).await;
    let key = app.create_location("locA").await;

    let mut remaining = Vec::new();
    for _ in 0..FREE_PER_WINDOW {
        let response = app.api_get(&key, "/api/workflows").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "x-ratelimit-limit"),
            Some(FREE_PER_WINDOW)
        );
        let reset = header(&response, "x-ratelimit-reset").unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
        remaining.push(header(&response, "x-ratelimit-remaining").unwrap());
    }
    let over = app.api_get(&key, "/api/workflows").await;

    assert_eq!(remaining, (0..FREE_PER_WINDOW).rev().collect::<Vec<_>>());
    assert_eq!(header(&over, "x-ratelimit-limit"), Some(FREE_PER_WINDOW));
    assert_limited(over).await;
}

#[tokio::test]
async fn rate_limit_headers_are_on_every_api_response_and_absent_when_limits_are_off() {
    let app = limited_app(|_| {}).await;
    let key = app.create_location("locA").await;
    let off = crate::helpers::spawn_app().await;
    let off_key = off.create_location("locA").await;

    let missing = app.api_get(&key, "/api/workflows/nope").await;
    let subscription = app.api_get(&key, "/api/subscription").await;
    let invalid = app.api_get(&key, "/api/workflows?limit=1000").await;
    let deleted = app.delete_workflow(&key, "nope").await;
    let without_limits = off.api_get(&off_key, "/api/workflows").await;

    for response in [missing, subscription, invalid, deleted] {
        assert!(response.status().is_client_error() || response.status().is_success());
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            assert!(
                response.headers().contains_key(name),
                "{name} on {}",
                response.url()
            );
        }
    }
    assert_eq!(without_limits.status(), 200);
    assert!(!without_limits.headers().contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn the_count_starts_again_once_the_window_has_passed() {
    let app = limited_app(|env| {
        // Long enough for 20 requests on a loaded machine, short enough to wait out.
        env.insert("RATE_LIMIT_WINDOW_SECS".into(), "5".into());
    })
    .await;
    let key = app.create_location("locA").await;
    spend(&app, &key, FREE_PER_WINDOW).await;
    let retry_after = assert_limited(app.api_get(&key, "/api/workflows").await).await;
    assert!(retry_after <= 5);

    tokio::time::sleep(Duration::from_millis(retry_after * 1_000 + 200)).await;
    let after = app.api_get(&key, "/api/workflows").await;

    assert_eq!(after.status(), 200);
    assert_eq!(
        header(&after, "x-ratelimit-remaining"),
        Some(FREE_PER_WINDOW - 1)
    );
}

#[tokio::test]
async fn two_instances_share_one_count_through_redis() {
    let app = limited_app(|_| {}).await;
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    let key = app.create_location("locA").await;

    spend(&app, &key, FREE_PER_WINDOW / 2).await;
    spend(&sibling, &key, FREE_PER_WINDOW / 2).await;

    assert_limited(app.api_get(&key, "/api/workflows").await).await;
    assert_limited(sibling.api_get(&key, "/api/workflows").await).await;
}

#[tokio::test]
async fn each_location_has_its_own_count() {
    let app = limited_app(|_| {}).await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;

    spend(&app, &key_a, FREE_PER_WINDOW).await;
    assert_limited(app.api_get(&key_a, "/api/workflows").await).await;
    let other = app.api_get(&key_b, "/api/workflows").await;

    assert_eq!(other.status(), 200);
    assert_eq!(
        header(&other, "x-ratelimit-remaining"),
        Some(FREE_PER_WINDOW - 1)
    );
}

#[tokio::test]
async fn the_limit_still_holds_per_instance_when_redis_is_unreachable() {
    let app = limited_app(|env| {
        env.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    })
    .await;
    let key = app.create_location("locA").await;

    spend(&app, &key, FREE_PER_WINDOW).await;

    assert_limited(app.api_get(&key, "/api/workflows").await).await;
}

#[tokio::test]
async fn requests_keep_being_served_and_limited_in_memory_when_redis_dies_mid_window() {
    let mut redis = RedisServer::start(None).await;
    let url = redis.url();
    let app = limited_app(|env| {
        env.insert("REDIS_URL".into(), url);
    })
    .await;
    wait_for_redis(&app).await;
    let key = app.create_location("locA").await;
    spend(&app, &key, FREE_PER_WINDOW / 2).await;

    redis.kill();
    let mut served_after = 0;
    let mut limited = None;
    for _ in 0..=FREE_PER_WINDOW {
        let response = app.api_get(&key, "/api/workflows").await;
        match response.status().as_u16() {
            200 => served_after += 1,
            429 => {
                limited = Some(response);
                break;
            }
            other => panic!("a request failed with {other} while Redis was down"),
        }
    }

    // The instance's own window starts from zero: a free plan's 20 more, then 429.
    assert_eq!(served_after, FREE_PER_WINDOW);
    assert_limited(limited.expect("limited in memory")).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("rate_limit_decisions_total{")
                && line.contains(r#"outcome="limited""#)
                && line.contains(r#"store="memory""#)),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_plan_change_by_webhook_changes_the_limit_at_once() {
    let app = limited_app(|env| {
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await;
    let key = app.create_location("locA").await;
    spend(&app, &key, FREE_PER_WINDOW).await;
    assert_limited(app.api_get(&key, "/api/workflows").await).await;

    let upgraded = send_signed(
        &app,
        &event(
            "evt_upgrade",
            "SubscriptionUpdated",
            "locA",
            json!({"plan": "pro", "status": "active"}),
        ),
    )
    .await;
    assert_eq!(upgraded.status(), 200);
    let after = app.api_get(&key, "/api/workflows").await;

    assert_eq!(after.status(), 200);
    assert_eq!(header(&after, "x-ratelimit-limit"), Some(100));
    // The 21 requests counted so far stay in the window: 100 - 22 left.
    assert_eq!(header(&after, "x-ratelimit-remaining"), Some(78));

    send_signed(
        &app,
        &event("evt_cancel", "SubscriptionCanceled", "locA", json!({})),
    )
    .await;
    assert_limited(app.api_get(&key, "/api/workflows").await).await;
}

#[tokio::test]
async fn unauthenticated_requests_are_refused_before_any_count() {
    let app = limited_app(|_| {}).await;
    let key = app.create_location("locA").await;

    for _ in 0..(FREE_PER_WINDOW + 5) {
        let response = app.api_get("not-a-key", "/api/workflows").await;
        assert_eq!(response.status(), 401);
        assert!(!response.headers().contains_key("x-ratelimit-limit"));
    }
    let own = app.api_get(&key, "/api/workflows").await;

    assert_eq!(
        header(&own, "x-ratelimit-remaining"),
        Some(FREE_PER_WINDOW - 1)
    );
}

/// An `AppState` beside a running app (same database, Redis and prefix), for library calls.
async fn state_beside(app: &TestApp) -> AppState {
    let settings = settings_from(&app.env);
    let metrics = Metrics::new().unwrap();
    let cache = Cache::new(
        CacheSettings::from_config(&settings.cache),
        &metrics.registry,
    )
    .unwrap();
    assert!(cache.wait_ready(Duration::from_secs(3)).await);
    let db = database::connect_lazy(&settings.database).unwrap();
    AppState::new(settings, db, cache, metrics).unwrap()
}

#[tokio::test]
async fn the_analysis_quota_allows_the_plans_analyses_per_hour_then_429() {
    let app = limited_app(|env| {
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await;
    app.create_location("locA").await;
    app.create_location("locB").await;
    let state = state_beside(&app).await;

    for n in 0..10 {
        let info = state
            .rate_limiter
            .count_analysis("locA")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((info.limit, info.remaining), (10, 9 - n));
        assert!(info.shared, "counted in Redis");
    }
    let over = state.rate_limiter.count_analysis("locA").await;
    let other = state.rate_limiter.count_analysis("locB").await;

    match over {
        Err(RateLimitExceeded { retry_after_secs }) => {
            assert!((3_590..=3_600).contains(&retry_after_secs))
        }
        other => panic!("expected 429, got {other:?}"),
    }
    assert_eq!(other.unwrap().unwrap().remaining, 9);
    // An agency location gets 1000 an hour.
    send_signed(
        &app,
        &event(
            "evt_agency",
            "SubscriptionCreated",
            "locB",
            json!({"plan": "agency"}),
        ),
    )
    .await;
    state.subscriptions.forget("locB").await;
    let agency = state
        .rate_limiter
        .count_analysis("locB")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((agency.limit, agency.remaining), (1_000, 998));
}

#[tokio::test]
async fn the_analysis_quota_is_off_when_rate_limits_are_off() {
    let app = crate::helpers::spawn_app().await;
    app.create_location("locA").await;
    let state = state_beside(&app).await;

    for _ in 0..20 {
        assert!(state
            .rate_limiter
            .count_analysis("locA")
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn analysis_routes_count_against_the_hourly_analysis_quota() {
    let app = limited_app(|_| {}).await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &crate::helpers::sample_workflow("Quota"))
        .await;

    for n in 0..10 {
        let response = app.api_get(&key, "/api/workflows/wf1/analysis").await;
        assert_eq!(response.status(), 200, "analysis {n}");
    }
    let over = app.api_get(&key, "/api/workflows/wf1/analysis").await;
    let listing = app.api_get(&key, "/api/workflows").await;

    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    assert_eq!(listing.status(), 200, "other routes are not analyses");
}

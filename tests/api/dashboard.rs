//! The dashboard page and the history it charts (`/internal/dashboard`,
//! `/internal/cache-stats/history`).

use serde_json::Value;

use crate::helpers::{sample_workflow, spawn_app_with};

const TOKEN: &str = "dash-token-0123456789";

#[tokio::test]
async fn the_history_route_needs_the_operator_token() {
    let app = spawn_app_with(|env| {
        env.insert("INTERNAL_API_TOKEN".into(), TOKEN.into());
    })
    .await;
    let get = |token: Option<&str>| {
        let request = app.client.get(app.url("/internal/cache-stats/history"));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };

    let missing = get(None).await.unwrap();
    let wrong = get(Some("not-the-token")).await.unwrap();
    let right = get(Some(TOKEN)).await.unwrap();

    assert_eq!(missing.status(), 401);
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(body.get("data").is_none(), "no data with a wrong token");
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn the_history_names_its_instance_and_counts_the_traffic_since_the_last_sample() {
    let app = spawn_app_with(|_| {}).await;
    let key = app.create_location("locDash1").await;
    app.put_workflow(&key, "wf-1", &sample_workflow("One"))
        .await;
    let history = || async {
        let response = app.get("/internal/cache-stats/history").await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["data"].clone()
    };
    let before = history().await;

    for _ in 0..5 {
        assert_eq!(app.api_get(&key, "/api/workflows/wf-1").await.status(), 200);
    }
    let after = history().await;

    let instance = after["instanceId"].as_str().unwrap();
    assert_eq!(instance.len(), 16, "the cache's instance id: {instance}");
    assert_eq!(after["intervalSeconds"], 10);
    assert_eq!(after["capacity"], 360);
    assert!(after["points"].is_array());
    let lookups = |data: &Value| {
        let current = &data["current"];
        let row = current["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "workflow")
            .unwrap()
            .clone();
        row["l1Hits"].as_u64().unwrap() + row["l1Misses"].as_u64().unwrap()
    };
    // Points are 10 s apart; a sample between the two calls would reset the count, so the
    // growth is checked only when the first sample is the same.
    if before["points"] == after["points"] {
        assert!(
            lookups(&after) >= lookups(&before) + 5,
            "five reads are in the current point: {} -> {}",
            lookups(&before),
            lookups(&after)
        );
    }
    let current = &after["current"];
    for field in ["hitRatio", "breaker", "cacheType", "invalidations", "pools"] {
        assert!(current.get(field).is_some(), "{field} in {current}");
    }
    assert_eq!(current["breaker"], "closed");
    assert_eq!(current["cacheType"], "redis");
}

#[tokio::test]
async fn the_page_and_its_assets_load_without_a_token_and_carry_no_data() {
    let app = spawn_app_with(|env| {
        env.insert("INTERNAL_API_TOKEN".into(), TOKEN.into());
    })
    .await;

    let page = app.get("/internal/dashboard").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    for hook in [
        r#"data-metric="hit-ratio""#,
        r#"data-metric="l1-hits""#,
        r#"data-metric="l2-hits""#,
        r#"data-metric="misses""#,
        r#"data-metric="breaker""#,
        r#"data-chart="hit-ratio""#,
        r#"data-chart="l2-latency""#,
        r#"type="password""#,
    ] {
        assert!(html.contains(hook), "{hook} on the page");
    }
    assert!(!html.contains(TOKEN));

    for (asset, kind) in [
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
        ("uPlot-LICENSE.txt", "text/plain"),
    ] {
        let response = app.get(&format!("/internal/dashboard/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{asset}: {content_type}");
    }
    let license = app.get("/internal/dashboard/uPlot-LICENSE.txt").await;
    assert!(license.text().await.unwrap().contains("MIT"));
    assert_eq!(
        app.get("/internal/dashboard/..%2Fdashboard.rs")
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/internal/dashboard/nope.js").await.status(), 404);
}

#[tokio::test]
async fn the_page_is_absent_in_production_without_a_token() {
    let app = spawn_app_with(|env| {
        env.insert("APP_ENV".into(), "production".into());
    })
    .await;

    assert_eq!(app.get("/internal/dashboard").await.status(), 404);
    assert_eq!(
        app.get("/internal/dashboard/dashboard.js").await.status(),
        404
    );
    assert_eq!(app.get("/internal/cache-stats/history").await.status(), 404);
}

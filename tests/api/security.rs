//! Browser-facing protections: CORS for one origin, no caching of tenant data.

use crate::helpers::{sample_workflow, spawn_app, spawn_app_with};

#[tokio::test]
async fn cors_allows_only_the_configured_frontend_origin() {
    let app = spawn_app_with(|env| {
        env.insert("FRONTEND_URL".into(), "https://app.example.com".into());
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/workflows"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };

    let allowed = preflight("https://app.example.com").await.unwrap();
    let other = preflight("https://evil.example.net").await.unwrap();

    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn without_a_frontend_url_no_origin_is_allowed() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/live"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn tenant_data_is_never_stored_by_browsers_or_proxies() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Private"))
        .await;

    for path in [
        "/api/workflows",
        "/api/workflows/wf1",
        "/api/subscription",
        "/api/workflows/missing",
    ] {
        let response = app.api_get(&key, path).await;
        let cache_control = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cache_control.contains("no-store"),
            "{path}: {cache_control}"
        );
    }
}

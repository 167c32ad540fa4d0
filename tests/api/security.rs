//! Browser-facing protections: CORS for one origin, no caching of tenant data.

use crate::helpers::{sample_workflow, spawn_app, spawn_app_with};

#[tokio::test]
async fn cors_allows_only_the_configured_frontend_origin() {
    let app = spawn_app_with(|env| {
        env.insert("FRONTEND_URL".into(), "https://app.example.com".into());
    })
    .await;
    let preflight = |origin: &'static str| {
        app.send(
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/api/workflows"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "authorization"),
        )
    };

    let allowed = preflight("https://app.example.com").await;
    let other = preflight("https://evil.example.net").await;

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
        .send(
            app.client
                .get(app.url("/live"))
                .header("Origin", "https://app.example.com"),
        )
        .await;

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

/// Actix polls a handler's extractors together: the key must be checked before the body is
/// looked at, so a caller without a valid key learns nothing about what the body would do.
#[tokio::test]
async fn an_invalid_key_is_401_whatever_the_body() {
    let app = spawn_app().await;
    let key = app.create_location("locBodyAuth").await;
    let oversized = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let cases: Vec<(&str, &str, &str, String)> = vec![
        (
            "PUT",
            "/api/workflows/wf1",
            "application/json",
            "{\"name\": ".into(),
        ),
        (
            "PUT",
            "/api/workflows/wf1",
            "application/json",
            oversized.clone(),
        ),
        ("PUT", "/api/workflows/wf1", "text/plain", "name=x".into()),
        (
            "POST",
            "/api/analyze",
            "application/json",
            "{not json".into(),
        ),
        ("POST", "/api/analyze", "application/json", oversized),
        ("POST", "/api/analyze", "text/plain", "x".into()),
    ];

    for (method, path, content_type, body) in cases {
        for auth in [None, Some("gwd_not_a_real_key")] {
            let mut request = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .header("content-type", content_type)
                .body(body.clone());
            if let Some(auth) = auth {
                request = request.bearer_auth(auth);
            }
            let response = app.send(request).await;
            let case = format!(
                "{method} {path} {content_type} {} bytes, key {auth:?}",
                body.len()
            );
            assert_eq!(response.status(), 401, "{case}");
            let envelope: serde_json::Value = response.json().await.unwrap();
            assert_eq!(envelope["error"]["code"], "UNAUTHORIZED", "{case}");
        }
    }

    // With a valid key the body is judged as before.
    let malformed = app
        .send(
            app.client
                .put(app.url("/api/workflows/wf1"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    assert_eq!(malformed.status(), 400);
    let wrong_type = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key)
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    assert_eq!(wrong_type.status(), 415);
    let too_large = app
        .send(
            app.client
                .put(app.url("/api/workflows/wf1"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024))),
        )
        .await;
    assert_eq!(too_large.status(), 413);
    // Requests without a body are untouched: unknown routes stay 404.
    assert_eq!(app.get("/api/does-not-exist").await.status(), 404);
}

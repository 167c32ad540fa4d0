use serde_json::{json, Value};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn create_location_returns_a_key_once_and_stores_only_its_hash() {
    let app = spawn_app_with(|_| {}).await;

    let response = app
        .send(
            app.client
                .post(app.url("/internal/locations"))
                .json(&json!({"id": "eBG6WapS3v4ZqwA45MTxtYJ", "name": "Acme"})),
        )
        .await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["location"]["id"], "eBG6WapS3v4ZqwA45MTxtYJ");
    let key = body["data"]["apiKey"].as_str().unwrap();
    assert!(key.starts_with("gwd_"));
    let pool = sqlx::PgPool::connect(app.database.as_ref().unwrap().url.as_str())
        .await
        .unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("select key_hash from api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        ghl_workflow_debugger::domain::api_key::api_key_hash(key)
    );
    pool.close().await;
}

#[tokio::test]
async fn creating_the_same_location_twice_is_a_conflict() {
    let app = spawn_app_with(|_| {}).await;
    let create = || {
        app.send(
            app.client
                .post(app.url("/internal/locations"))
                .json(&json!({"id": "loc-dup", "name": "Dup"})),
        )
    };

    assert_eq!(create().await.status(), 201);
    let second = create().await;

    assert_eq!(second.status(), 409);
    assert_eq!(
        second.json::<Value>().await.unwrap()["error"]["code"],
        "CONFLICT"
    );
}

#[tokio::test]
async fn internal_routes_need_the_token_when_one_is_set() {
    let app = spawn_app_with(|env| {
        env.insert("INTERNAL_API_TOKEN".into(), "op-token-123".into());
    })
    .await;
    let body = json!({"id": "loc-a", "name": "A"});

    let missing = app
        .send(app.client.post(app.url("/internal/locations")).json(&body))
        .await;
    let wrong = app
        .send(
            app.client
                .post(app.url("/internal/locations"))
                .bearer_auth("nope")
                .json(&body),
        )
        .await;
    let right = app
        .send(
            app.client
                .post(app.url("/internal/locations"))
                .bearer_auth("op-token-123")
                .json(&body),
        )
        .await;
    let metrics_without = app.get("/metrics").await;
    let metrics_with = app
        .send(
            app.client
                .get(app.url("/metrics"))
                .bearer_auth("op-token-123"),
        )
        .await;

    assert_eq!(missing.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(right.status(), 201);
    assert_eq!(metrics_without.status(), 401);
    assert_eq!(metrics_with.status(), 200);
    assert!(metrics_with
        .text()
        .await
        .unwrap()
        .contains("http_requests_total"));
}

#[tokio::test]
async fn operator_routes_do_not_exist_in_production_without_a_token() {
    let app = spawn_app_with(|env| {
        env.insert("APP_ENV".into(), "production".into());
    })
    .await;

    let create = app
        .send(
            app.client
                .post(app.url("/internal/locations"))
                .json(&json!({"id": "x", "name": "x"})),
        )
        .await;

    assert_eq!(create.status(), 404);
    assert_eq!(app.get("/metrics").await.status(), 404);
}

/// Operator paths that answer without the token, and why: the dashboard page and its files
/// carry no data (its script asks for the token and sends it to the routes above).
const OPEN_OPERATOR_PATHS: &[&str] = &["/internal/dashboard", "/internal/dashboard/{asset}"];

/// Every `/internal/*` route of the route table refuses a request without the operator token
/// and one with a wrong token (401 in the envelope), so a new operator route is covered here
/// the day it is added; the only exceptions are listed, and shown to serve no JSON.
#[tokio::test]
async fn every_operator_route_refuses_a_missing_or_wrong_token() {
    let app = spawn_app_with(|env| {
        env.insert("INTERNAL_API_TOKEN".into(), "op-token-456".into());
    })
    .await;
    let operator_routes: Vec<_> = ghl_workflow_debugger::http::route_table()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/internal/"))
        .collect();
    assert!(operator_routes.len() >= 5, "{operator_routes:?}");

    for (method, path) in operator_routes {
        let url = app.url(&path.replace("{asset}", "dashboard.js"));
        let verb = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let request = |token: Option<&str>| {
            let request = app
                .client
                .request(verb.clone(), &url)
                .json(&json!({"id": "loc-guard", "name": "Guard"}));
            match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        };
        if OPEN_OPERATOR_PATHS.contains(&path) {
            let open = request(None).send().await.unwrap();
            assert_eq!(open.status(), 200, "{method} {path}");
            let kind = open.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(!kind.contains("json"), "{method} {path} serves {kind}");
            continue;
        }
        for (case, token) in [("no token", None), ("wrong token", Some("op-token-45"))] {
            let refused = request(token).send().await.unwrap();
            assert_eq!(refused.status(), 401, "{method} {path} with {case}");
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{method} {path}");
        }
        let allowed = request(Some("op-token-456")).send().await.unwrap();
        assert!(
            allowed.status().is_success(),
            "{method} {path} with the token: {}",
            allowed.status()
        );
    }
}

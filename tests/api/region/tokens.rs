//! The token and the region on one instance (the shared Postgres and Redis, no replica):
//! every write answers `X-Consistency-Token`, reads accept it back (and refuse a foreign
//! value), CORS lets a browser send and read it; health and metrics name the region.

use ghl_workflow_debugger::http::openapi_document;
use utoipa::openapi::RefOr;

use crate::helpers::{sample_workflow, spawn_app, spawn_app_with};

const ORIGIN: &str = "https://app.example.com";

#[tokio::test]
async fn every_write_answers_a_token_that_a_read_accepts_back_and_cors_lets_browsers_use_it() {
    let app = spawn_app_with(|env| {
        env.insert("FRONTEND_URL".into(), ORIGIN.into());
        env.insert("REGION".into(), "eu-west-1".into());
    })
    .await;
    let created = app
        .client
        .post(app.url("/internal/locations"))
        .json(&serde_json::json!({"id": "locTokens", "name": "Tokens"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("x-consistency-token"));
    let body: serde_json::Value = created.json().await.unwrap();
    let key = body["data"]["apiKey"].as_str().unwrap().to_owned();

    let mut tokens = Vec::new();
    for name in ["first", "second"] {
        let put = app.put_workflow(&key, "wf1", &sample_workflow(name)).await;
        assert!(put.status().is_success());
        let token = put.headers()["x-consistency-token"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("v1-"), "{token}");
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1], "each commit has its own position");
    let read = app
        .client
        .get(app.url("/api/workflows/wf1"))
        .bearer_auth(&key)
        .header("x-consistency-token", &tokens[1])
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert!(
        !read.headers().contains_key("x-consistency-token"),
        "a read writes nothing"
    );
    let body: serde_json::Value = read.json().await.unwrap();
    assert_eq!(body["data"]["name"], "second");

    for bad in ["garbage", "v1-", "0/16B374D8"] {
        let refused = app
            .client
            .get(app.url("/api/workflows/wf1"))
            .bearer_auth(&key)
            .header("x-consistency-token", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
        assert!(body["meta"]["requestId"].is_string());
    }

    let deleted = app.delete_workflow(&key, "wf1").await;
    assert_eq!(deleted.status(), 204);
    assert!(deleted.headers().contains_key("x-consistency-token"));

    // A browser may send the header (preflight) and read it (exposed).
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/workflows/wf1"))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-consistency-token")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-consistency-token"), "{allowed}");
    let put = app
        .client
        .put(app.url("/api/workflows/wf2"))
        .bearer_auth(&key)
        .header("Origin", ORIGIN)
        .json(&sample_workflow("from a browser"))
        .send()
        .await
        .unwrap();
    let exposed = put.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-consistency-token"), "{exposed}");

    // The region in health and on the cache metrics; no replica check without a replica.
    let health: serde_json::Value = app.get("/health/detailed").await.json().await.unwrap();
    assert_eq!(health["region"], "eu-west-1");
    assert!(health["checks"].get("replica").is_none(), "{health}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("cache_operations_total{") && l.contains("region=\"eu-west-1\"")));
    assert!(
        metrics.contains("database_replica_lag_seconds{region=\"eu-west-1\"} 0"),
        "no replica: lag 0, in its region"
    );
    assert!(metrics.contains("database_replica_lag_limit_seconds{region=\"eu-west-1\"} 5"));
    assert!(metrics.contains("database_reads_total{region=\"eu-west-1\",target=\"primary\"}"));
}

#[tokio::test]
async fn with_consistency_tokens_off_writes_answer_none_and_reads_still_honour_one() {
    // The bench's comparison (BENCHMARKS.md, "tokens"): the same writes without the position
    // read after the commit.
    let app = spawn_app_with(|env| {
        env.insert("CONSISTENCY_TOKENS".into(), "false".into());
    })
    .await;
    let key = app.create_location("locNoTokens").await;
    let put = app
        .put_workflow(&key, "wf1", &sample_workflow("untokened"))
        .await;
    assert!(put.status().is_success(), "{}", put.status());
    assert!(!put.headers().contains_key("x-consistency-token"));
    // A token issued elsewhere (an instance with tokens on) is still a position to honour.
    let read = app
        .client
        .get(app.url("/api/workflows/wf1"))
        .bearer_auth(&key)
        .header("x-consistency-token", "v1-1")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let body: serde_json::Value = read.json().await.unwrap();
    assert_eq!(body["data"]["name"], "untokened");
}

/// The document names the token where the server uses it: as a request header on the reads
/// that honour it, each of which refuses a foreign value with 400 (after the API key: without
/// one it is 401 like any request), and as a response header of the writes.
#[tokio::test]
async fn the_document_names_the_token_on_every_read_that_honours_it_and_every_write() {
    let app = spawn_app().await;
    let created = app
        .client
        .post(app.url("/internal/locations"))
        .json(&serde_json::json!({"id": "locDocTokens", "name": "Tokens"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    let key = body["data"]["apiKey"].as_str().unwrap().to_owned();
    assert!(app
        .put_workflow(&key, "wf1", &sample_workflow("n"))
        .await
        .status()
        .is_success());

    let document = openapi_document();
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for (path, item) in &document.paths.paths {
        for (method, operation) in [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
        ] {
            let Some(operation) = operation else { continue };
            let takes_token = operation
                .parameters
                .iter()
                .flatten()
                .any(|parameter| parameter.name == "X-Consistency-Token");
            if takes_token {
                assert!(operation.responses.responses.contains_key("400"), "{path}");
                reads.push((method, path.clone()));
            }
            let answers_token = operation.responses.responses.iter().any(|(status, answer)| {
                status.starts_with('2')
                    && matches!(answer, RefOr::T(answer) if answer.headers.contains_key("X-Consistency-Token"))
            });
            if answers_token {
                writes.push(format!("{method} {path}"));
            }
        }
    }
    writes.sort();
    assert_eq!(
        writes,
        [
            "DELETE /api/workflows/{id}",
            "POST /api/workflows/import",
            "POST /internal/locations",
            "POST /webhooks/ghl",
            "PUT /api/workflows/{id}",
        ]
    );
    assert_eq!(reads.len(), 8, "{reads:?}");
    for (method, path) in reads {
        let url = app.url(&path.replace("{id}", "wf1"));
        for (with_key, expected) in [(true, 400), (false, 401)] {
            let mut request = app
                .client
                .request(method.parse().unwrap(), &url)
                .header("x-consistency-token", "v1-+1");
            if method == "POST" {
                request = request.json(&serde_json::json!({"workflowId": "wf1"}));
            }
            if with_key {
                request = request.bearer_auth(&key);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                expected,
                "{method} {path} key: {with_key}"
            );
        }
    }
}

/// Every read of a location answers a request carrying a write's token: the overview's load
/// is a large future, and the token's wrappers once overflowed a worker's stack with it
/// (found by Schemathesis on `GET /api/summary`).
#[tokio::test]
async fn every_location_read_answers_a_request_carrying_a_token() {
    let app = spawn_app().await;
    let key = app.create_location("locTokenReads").await;
    let put = app.put_workflow(&key, "wf1", &sample_workflow("one")).await;
    assert!(put.status().is_success());
    let token = put.headers()["x-consistency-token"]
        .to_str()
        .unwrap()
        .to_owned();
    for path in [
        "/api/summary",
        "/api/workflows?include=analysis&sort=healthScore",
        "/api/workflows",
        "/api/workflows/wf1",
        "/api/workflows/wf1/analysis",
        "/api/analysis/location",
        "/api/history",
    ] {
        // Twice: a load, then (for cached reads) a hit at or past the token's position.
        for _ in 0..2 {
            let read = app
                .send(
                    app.client
                        .get(app.url(path))
                        .bearer_auth(&key)
                        .header("x-consistency-token", &token),
                )
                .await;
            assert_eq!(read.status(), 200, "{path}");
        }
    }
}

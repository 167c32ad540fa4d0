use serde_json::{json, Value};

use crate::helpers::spawn_app;

fn assert_envelope(body: &Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(body["meta"]["timestamp"].is_string());
    assert!(body["meta"]["requestId"].is_string());
}

#[tokio::test]
async fn unknown_routes_answer_404_in_the_envelope() {
    let app = spawn_app().await;

    let response = app.get("/api/does-not-exist").await;

    assert_eq!(response.status(), 404);
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body, "NOT_FOUND");
    assert_eq!(body["meta"]["requestId"], header_id);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_app().await;

    let generated = app.get("/live").await;
    let echoed = app
        .send(
            app.client
                .get(app.url("/nope"))
                .header("X-Request-ID", "client-req-42"),
        )
        .await;
    let unusable = app
        .send(
            app.client
                .get(app.url("/live"))
                .header("X-Request-ID", "has spaces and\ttabs"),
        )
        .await;

    assert!(!generated.headers()["x-request-id"].is_empty());
    assert_eq!(echoed.headers()["x-request-id"], "client-req-42");
    let body: Value = echoed.json().await.unwrap();
    assert_eq!(body["meta"]["requestId"], "client-req-42");
    assert_ne!(unusable.headers()["x-request-id"], "has spaces and\ttabs");
}

/// Table of malformed requests against a JSON route: each is a 4xx in the envelope.
#[tokio::test]
async fn malformed_requests_get_actionable_4xx_envelopes() {
    let app = spawn_app().await;
    let url = app.url("/internal/locations");
    let oversized = format!(
        r#"{{"id":"loc1","name":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"id\": "),
            400,
            "BAD_REQUEST",
        ),
        (
            "wrong type",
            app.client.post(&url).json(&json!({"id": 5, "name": "x"})),
            400,
            "BAD_REQUEST",
        ),
        (
            "wrong content type",
            app.client
                .post(&url)
                .header("content-type", "text/plain")
                .body("id=1"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "body over the limit",
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body(oversized),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "invalid fields",
            app.client
                .post(&url)
                .json(&json!({"id": "bad id!", "name": ""})),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "wrong method",
            app.client.get(&url),
            405,
            "METHOD_NOT_ALLOWED",
        ),
    ];

    for (case, request, status, code) in cases {
        let response = app.send(request).await;
        assert_eq!(response.status().as_u16(), status, "{case}");
        assert!(response.headers().contains_key("x-request-id"), "{case}");
        let body: Value = response.json().await.unwrap();
        assert_envelope(&body, code);
    }
}

#[tokio::test]
async fn validation_errors_list_every_offending_field() {
    let app = spawn_app().await;

    let response = app
        .send(
            app.client
                .post(app.url("/internal/locations"))
                .json(&json!({"id": "", "name": "   "})),
        )
        .await;

    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["id", "name"]);
}

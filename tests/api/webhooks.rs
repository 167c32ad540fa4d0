use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{sample_workflow, spawn_app_with, TestApp};

pub const SECRET: &str = "whsec_test_secret";

pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn webhook_app() -> TestApp {
    spawn_app_with(|env| {
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await
}

async fn send(app: &TestApp, body: &Value, signature: Option<String>) -> reqwest::Response {
    let raw = serde_json::to_vec(body).unwrap();
    let mut request = app
        .client
        .post(app.url("/webhooks/ghl"))
        .header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("X-GHL-Signature", signature);
    }
    request.body(raw).send().await.unwrap()
}

pub async fn send_signed(app: &TestApp, body: &Value) -> reqwest::Response {
    let signature = sign(&serde_json::to_vec(body).unwrap());
    send(app, body, Some(signature)).await
}

pub fn event(id: &str, kind: &str, location: &str, data: Value) -> Value {
    json!({"id": id, "type": kind, "locationId": location, "timestamp": "2026-11-28T00:00:00Z", "data": data})
}

async fn plan_of(app: &TestApp, key: &str) -> String {
    let body: Value = app
        .api_get(key, "/api/subscription")
        .await
        .json()
        .await
        .unwrap();
    body["data"]["plan"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_subscription_event_changes_the_plan() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    assert_eq!(plan_of(&app, &key).await, "free");

    let response = send_signed(
        &app,
        &event(
            "evt_1",
            "SubscriptionUpdated",
            "locA",
            json!({"plan": "pro", "status": "active"}),
        ),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["duplicate"],
        false
    );
    assert_eq!(plan_of(&app, &key).await, "pro");
}

#[tokio::test]
async fn unsigned_or_badly_signed_events_are_401_and_change_nothing() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    let body = event(
        "evt_1",
        "SubscriptionCreated",
        "locA",
        json!({"plan": "agency"}),
    );

    let unsigned = send(&app, &body, None).await;
    let wrong = send(&app, &body, Some(sign(b"something else"))).await;
    let garbage = send(&app, &body, Some("zz-not-hex".into())).await;

    for response in [unsigned, wrong, garbage] {
        assert_eq!(response.status(), 401);
    }
    assert_eq!(plan_of(&app, &key).await, "free");
}

#[tokio::test]
async fn a_replayed_event_is_acknowledged_and_changes_nothing_again() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    let first = event(
        "evt_1",
        "SubscriptionCreated",
        "locA",
        json!({"plan": "pro"}),
    );
    let second = event(
        "evt_2",
        "SubscriptionUpdated",
        "locA",
        json!({"plan": "agency"}),
    );

    send_signed(&app, &first).await;
    send_signed(&app, &second).await;
    let replay = send_signed(&app, &first).await;

    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["data"]["duplicate"],
        true
    );
    assert_eq!(plan_of(&app, &key).await, "agency");
}

#[tokio::test]
async fn cancel_falls_back_to_free_features() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    send_signed(
        &app,
        &event("e1", "SubscriptionCreated", "locA", json!({"plan": "pro"})),
    )
    .await;
    send_signed(
        &app,
        &event("e2", "SubscriptionCanceled", "locA", json!({})),
    )
    .await;

    let body: Value = app
        .api_get(&key, "/api/subscription")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(body["data"]["plan"], "pro");
    assert_eq!(body["data"]["status"], "canceled");
    assert_eq!(body["data"]["features"]["fullAnalysis"], false);
}

#[tokio::test]
async fn workflow_deleted_deletes_and_app_uninstall_revokes_keys() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Doomed"))
        .await;
    assert_eq!(app.api_get(&key, "/api/workflows/wf1").await.status(), 200);

    send_signed(
        &app,
        &event(
            "e1",
            "WorkflowDeleted",
            "locA",
            json!({"workflowId": "wf1"}),
        ),
    )
    .await;
    assert_eq!(app.api_get(&key, "/api/workflows/wf1").await.status(), 404);

    send_signed(&app, &event("e2", "AppUninstall", "locA", json!({}))).await;
    assert_eq!(app.api_get(&key, "/api/workflows").await.status(), 401);
}

#[tokio::test]
async fn unknown_types_and_unknown_locations_are_acknowledged() {
    let app = webhook_app().await;
    app.create_location("locA").await;

    let unknown_type = send_signed(&app, &event("e1", "ContactCreated", "locA", json!({}))).await;
    let unknown_location = send_signed(
        &app,
        &event(
            "e2",
            "SubscriptionCreated",
            "nowhere",
            json!({"plan": "pro"}),
        ),
    )
    .await;
    let malformed = send_signed(&app, &json!({"type": "SubscriptionCreated"})).await;

    assert_eq!(unknown_type.status(), 200);
    assert_eq!(unknown_location.status(), 200);
    assert_eq!(malformed.status(), 422);
}

#[tokio::test]
async fn webhooks_are_refused_when_no_secret_is_configured() {
    let app = spawn_app_with(|_| {}).await;

    let response = send(
        &app,
        &event("e1", "AppUninstall", "locA", json!({})),
        Some("00".into()),
    )
    .await;

    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "SERVICE_UNAVAILABLE"
    );
}

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
    app.send(request.body(raw)).await
}

pub async fn send_signed(app: &TestApp, body: &Value) -> reqwest::Response {
    let signature = sign(&serde_json::to_vec(body).unwrap());
    send(app, body, Some(signature)).await
}

/// An event signed now (millisecond precision, so events sent one after another are ordered).
pub fn event(id: &str, kind: &str, location: &str, data: Value) -> Value {
    event_at(id, kind, location, data, chrono::Utc::now())
}

pub fn event_at(
    id: &str,
    kind: &str,
    location: &str,
    data: Value,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let timestamp = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"id": id, "type": kind, "locationId": location, "timestamp": timestamp, "data": data})
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

async fn subscription_of(app: &TestApp, key: &str) -> Value {
    let body: Value = app
        .api_get(key, "/api/subscription")
        .await
        .json()
        .await
        .unwrap();
    body["data"].clone()
}

#[tokio::test]
async fn events_signed_outside_the_window_are_400_and_change_nothing() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    let now = chrono::Utc::now();
    let upgrade = json!({"plan": "pro"});
    let stale = event_at(
        "evt_old",
        "SubscriptionUpdated",
        "locA",
        upgrade.clone(),
        now - chrono::Duration::seconds(301),
    );
    let future = event_at(
        "evt_future",
        "SubscriptionUpdated",
        "locA",
        upgrade.clone(),
        now + chrono::Duration::seconds(600),
    );
    let mut missing = event(
        "evt_missing",
        "SubscriptionUpdated",
        "locA",
        upgrade.clone(),
    );
    missing.as_object_mut().unwrap().remove("timestamp");
    let mut garbled = event(
        "evt_garbled",
        "SubscriptionUpdated",
        "locA",
        upgrade.clone(),
    );
    garbled["timestamp"] = json!("last tuesday");

    for (case, body) in [
        ("stale", &stale),
        ("future", &future),
        ("missing", &missing),
        ("garbled", &garbled),
    ] {
        let response = send_signed(&app, body).await;
        assert_eq!(response.status(), 400, "{case}");
        let envelope: Value = response.json().await.unwrap();
        assert_eq!(envelope["error"]["code"], "BAD_REQUEST", "{case}");
        assert!(
            envelope["error"]["message"]
                .as_str()
                .unwrap()
                .contains("timestamp"),
            "{case}: {envelope}"
        );
    }
    assert_eq!(plan_of(&app, &key).await, "free");

    // A refused delivery is not recorded: the same id signed now is applied.
    let fresh = send_signed(
        &app,
        &event("evt_old", "SubscriptionUpdated", "locA", upgrade),
    )
    .await;
    assert_eq!(fresh.status(), 200);
    assert_eq!(
        fresh.json::<Value>().await.unwrap()["data"]["duplicate"],
        false
    );
    assert_eq!(plan_of(&app, &key).await, "pro");
}

#[tokio::test]
async fn a_late_update_does_not_undo_a_newer_cancel() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    let now = chrono::Utc::now();
    let created = event_at(
        "e1",
        "SubscriptionCreated",
        "locA",
        json!({"plan": "pro"}),
        now - chrono::Duration::seconds(60),
    );
    let updated = event_at(
        "e2",
        "SubscriptionUpdated",
        "locA",
        json!({"plan": "agency", "status": "active"}),
        now - chrono::Duration::seconds(30),
    );
    let canceled = event_at(
        "e3",
        "SubscriptionCanceled",
        "locA",
        json!({}),
        now - chrono::Duration::seconds(10),
    );

    assert_eq!(send_signed(&app, &created).await.status(), 200);
    assert_eq!(send_signed(&app, &canceled).await.status(), 200);
    let late = send_signed(&app, &updated).await;

    assert_eq!(late.status(), 200);
    let data = late.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(data["superseded"], true, "{data}");
    assert_eq!(data["duplicate"], false, "{data}");
    let subscription = subscription_of(&app, &key).await;
    assert_eq!(subscription["status"], "canceled", "{subscription}");
    assert_eq!(subscription["plan"], "pro", "{subscription}");

    // A newer event still applies.
    let renewed = event(
        "e4",
        "SubscriptionUpdated",
        "locA",
        json!({"plan": "starter"}),
    );
    let response = send_signed(&app, &renewed).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["superseded"],
        false
    );
    let subscription = subscription_of(&app, &key).await;
    assert_eq!(
        (
            subscription["plan"].as_str(),
            subscription["status"].as_str()
        ),
        (Some("starter"), Some("active"))
    );
}

#[tokio::test]
async fn event_ids_older_than_the_replay_window_are_pruned() {
    let app = webhook_app().await;
    app.create_location("locA").await;
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    sqlx::query(
        "insert into webhook_events (id, type, location_id, received_at)
         select 'old_' || n, 'SubscriptionUpdated', 'locA', now() - interval '2 days'
         from generate_series(1, 50) n",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into webhook_events (id, type, location_id, received_at)
         values ('recent', 'SubscriptionUpdated', 'locA', now() - interval '1 minute')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let response = send_signed(&app, &event("trigger", "ContactCreated", "locA", json!({}))).await;

    assert_eq!(response.status(), 200);
    let left: Vec<String> = sqlx::query_scalar("select id from webhook_events order by id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["recent", "trigger"]);
    pool.close().await;
}

#[tokio::test]
async fn nul_or_over_long_fields_are_422_naming_the_field_never_500() {
    let app = webhook_app().await;
    let key = app.create_location("locA").await;
    let long = "x".repeat(201);
    let cases = [
        (
            event(
                "evt\u{0}1",
                "SubscriptionUpdated",
                "locA",
                json!({"plan": "pro"}),
            ),
            "id",
        ),
        (
            event(&long, "SubscriptionUpdated", "locA", json!({"plan": "pro"})),
            "id",
        ),
        (
            event(
                "e2",
                "Subscription\u{0}Updated",
                "locA",
                json!({"plan": "pro"}),
            ),
            "type",
        ),
        (event("e3", &long, "locA", json!({})), "type"),
        (
            event(
                "e4",
                "SubscriptionUpdated",
                "loc\u{0}A",
                json!({"plan": "pro"}),
            ),
            "locationId",
        ),
        (
            event("e5", "SubscriptionUpdated", &long, json!({"plan": "pro"})),
            "locationId",
        ),
        (
            event(
                "e6",
                "WorkflowDeleted",
                "locA",
                json!({"workflowId": "wf\u{0}1"}),
            ),
            "data.workflowId",
        ),
        (
            event("e7", "WorkflowUpdated", "locA", json!({"workflowId": long})),
            "data.workflowId",
        ),
        (
            event(
                "e8",
                "SubscriptionUpdated",
                "locA",
                json!({"plan": "pro\u{0}"}),
            ),
            "data.plan",
        ),
    ];

    for (body, field) in cases {
        let response = send_signed(&app, &body).await;
        assert_eq!(response.status(), 422, "{field}: {body}");
        let envelope: Value = response.json().await.unwrap();
        let fields: Vec<&str> = envelope["error"]["details"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{envelope}");
    }
    assert_eq!(plan_of(&app, &key).await, "free");
}

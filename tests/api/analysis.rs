use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app, TestApp};

/// A published workflow with several defects (more than the free plan shows).
fn broken_workflow() -> Value {
    json!({
        "name": "Broken",
        "status": "published",
        "settings": { "allowReentry": true },
        "triggers": [ { "id": "t1", "type": "contact_tag_added", "filters": { "tag": "hot" } } ],
        "start": "s1",
        "steps": [
            { "id": "s1", "type": "webhook", "config": { "url": "http://localhost:9000/hook?api_key=abc123secretvalue" }, "next": "s2" },
            { "id": "s2", "type": "add_tag", "config": { "tag": "hot" }, "next": "s3" },
            { "id": "s3", "type": "send_sms", "config": { "body": "Hi {{contact.first_name}}" }, "next": "s4" },
            { "id": "s4", "type": "send_email", "config": { "subject": "Hi", "body": "Hello {{contact.firstname}" , "to": "boss@example.com" }, "next": "s9" },
            { "id": "s5", "type": "wait", "config": { "duration": "90d" } }
        ]
    })
}

async fn set_plan(app: &TestApp, location: &str, plan: &str) {
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    sqlx::query(
        "insert into subscriptions (location_id, plan, status) values ($1, $2, 'active')
         on conflict (location_id) do update set plan = excluded.plan",
    )
    .bind(location)
    .bind(plan)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    // The subscription is cached; an operator flush makes the change visible at once.
    app.flush_cache().await;
}

async fn analysis_of(
    app: &TestApp,
    key: &str,
    id: &str,
) -> (reqwest::StatusCode, Option<String>, Value) {
    let response = app
        .api_get(key, &format!("/api/workflows/{id}/analysis"))
        .await;
    let status = response.status();
    let cache = response
        .headers()
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, response.json().await.unwrap())
}

async fn analyses_rows(app: &TestApp) -> i64 {
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar("select count(*) from analyses")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn a_healthy_workflow_scores_100_and_its_analysis_is_cached() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Healthy"))
        .await;

    let (status, first_cache, body) = analysis_of(&app, &key, "wf1").await;
    let (_, second_cache, again) = analysis_of(&app, &key, "wf1").await;

    assert_eq!(status, 200);
    let report = &body["data"];
    assert_eq!(report["workflowId"], "wf1");
    assert_eq!(report["version"], 1);
    assert_eq!(report["healthScore"], 100, "{report}");
    assert_eq!(report["grade"], "Excellent");
    assert_eq!(report["issues"], json!([]));
    assert!(report["rulesVersion"].is_string());
    assert_eq!(report["performance"]["steps"], 3);
    assert_eq!(first_cache.as_deref(), Some("MISS"));
    assert_eq!(second_cache.as_deref(), Some("HIT"));
    assert_eq!(again["data"]["analyzedAt"], report["analyzedAt"]);
}

#[tokio::test]
async fn the_free_plan_sees_three_issues_and_paid_plans_see_all() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &broken_workflow()).await;

    let (_, _, free) = analysis_of(&app, &key, "wf1").await;
    set_plan(&app, "locA", "pro").await;
    let (_, _, pro) = analysis_of(&app, &key, "wf1").await;

    let total = pro["data"]["issuesSummary"]["total"].as_u64().unwrap();
    assert!(total > 3, "{pro}");
    assert_eq!(
        pro["data"]["issues"].as_array().unwrap().len() as u64,
        total
    );
    assert!(pro["data"].get("upgrade").is_none());
    assert_eq!(free["data"]["issues"].as_array().unwrap().len(), 3);
    assert!(free["data"]["recommendations"].as_array().unwrap().len() <= 2);
    assert_eq!(
        free["data"]["upgrade"]["hidden"].as_u64().unwrap(),
        total - 3
    );
    assert_eq!(free["data"]["issuesSummary"], pro["data"]["issuesSummary"]);
    let rules: Vec<&str> = pro["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap())
        .collect();
    for expected in [
        "dangling-reference",
        "webhook-private-url",
        "self-retrigger",
        "hardcoded-secret",
    ] {
        assert!(rules.contains(&expected), "{expected} not in {rules:?}");
    }
}

#[tokio::test]
async fn a_new_version_is_never_answered_with_the_old_analysis_and_each_is_stored_once() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("v1")).await;

    let mut concurrent = Vec::new();
    for _ in 0..20 {
        let (client, url, key) = (
            app.client.clone(),
            app.url("/api/workflows/wf1/analysis"),
            key.clone(),
        );
        concurrent.push(tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for request in concurrent {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(analyses_rows(&app).await, 1);

    app.put_workflow(&key, "wf1", &broken_workflow()).await;
    let (_, cache, v2) = analysis_of(&app, &key, "wf1").await;

    assert_eq!(cache.as_deref(), Some("MISS"));
    assert_eq!(v2["data"]["version"], 2);
    assert!(v2["data"]["healthScore"].as_u64().unwrap() < 100);
    assert_eq!(analyses_rows(&app).await, 2);
}

#[tokio::test]
async fn post_analyze_takes_a_stored_id_or_an_unstored_document() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Stored"))
        .await;
    let post = |body: Value| {
        app.send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key)
                .json(&body),
        )
    };

    let stored = post(json!({"workflowId": "wf1"})).await;
    let mut document = broken_workflow();
    document["steps"][1]["id"] = json!("s1");
    let ad_hoc = post(json!({"workflow": document})).await;
    let neither = post(json!({})).await;
    let both = post(json!({"workflowId": "wf1", "workflow": sample_workflow("x")})).await;
    let missing = post(json!({"workflowId": "nope"})).await;
    let not_a_document = post(json!({"workflow": [1, 2]})).await;

    assert_eq!(stored.status(), 200);
    assert_eq!(ad_hoc.status(), 200);
    let ad_hoc: Value = ad_hoc.json().await.unwrap();
    let rules: Vec<&str> = ad_hoc["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"duplicate-id")
            || ad_hoc["data"]["upgrade"]["hidden"].as_u64().unwrap() > 0
    );
    assert_eq!(neither.status(), 422);
    assert_eq!(both.status(), 422);
    assert_eq!(missing.status(), 404);
    assert_eq!(not_a_document.status(), 422);
    // Only the stored workflow's analysis is recorded.
    assert_eq!(analyses_rows(&app).await, 1);
}

/// The analyze body is read as bytes and parsed off the HTTP workers: the same 4xx as any
/// JSON route.
#[tokio::test]
async fn post_analyze_refuses_unreadable_bodies_like_any_json_route() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let post = |content_type: &str, body: String| {
        app.send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key)
                .header("content-type", content_type)
                .body(body),
        )
    };

    let malformed = post("application/json", "{\"workflow\": ".into()).await;
    let wrong_type = post("application/json", r#"{"workflowId": 5}"#.into()).await;
    let unknown_field = post("application/json", r#"{"workflowId": "a", "x": 1}"#.into()).await;
    let not_json = post("text/plain", r#"{"workflowId": "a"}"#.into()).await;
    let vendor_json = post(
        "application/vnd.api+json",
        r#"{"workflowId": "nope"}"#.into(),
    )
    .await;
    let oversized = post(
        "application/json",
        format!(r#"{{"workflowId": "{}"}}"#, "x".repeat(3 * 1024 * 1024)),
    )
    .await;

    // Over 16 KB: parsed on the analysis pool, with the same answers.
    let large_malformed = post(
        "application/json",
        format!(r#"{{"workflow": "{}"#, "x".repeat(20_000)),
    )
    .await;
    let steps: Vec<Value> = (0..200)
        .map(|n| json!({"id": format!("s{n}"), "type": "send_email", "config": {"subject": "Hi", "body": "x".repeat(100), "to": "a@example.com"}, "next": format!("s{}", n + 1)}))
        .collect();
    let mut large_document = sample_workflow("Large");
    large_document["steps"] = Value::Array(steps);
    let large = post(
        "application/json",
        json!({"workflow": large_document}).to_string(),
    )
    .await;

    let code = |body: Value| body["error"]["code"].as_str().unwrap().to_owned();
    assert_eq!(large_malformed.status(), 400);
    assert_eq!(code(large_malformed.json().await.unwrap()), "BAD_REQUEST");
    assert_eq!(large.status(), 200);
    let large: Value = large.json().await.unwrap();
    assert_eq!(large["data"]["workflowId"], "ad-hoc");
    assert_eq!(malformed.status(), 400);
    assert_eq!(code(malformed.json().await.unwrap()), "BAD_REQUEST");
    assert_eq!(wrong_type.status(), 400);
    assert_eq!(unknown_field.status(), 400);
    assert_eq!(not_json.status(), 415);
    assert_eq!(
        code(not_json.json().await.unwrap()),
        "UNSUPPORTED_MEDIA_TYPE"
    );
    assert_eq!(vendor_json.status(), 404);
    assert_eq!(oversized.status(), 413);
    assert_eq!(code(oversized.json().await.unwrap()), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn location_analysis_finds_a_cascade_and_the_workflows_share_it() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    set_plan(&app, "locA", "agency").await;
    let tagger = |name: &str, on: &str, adds: &str| {
        json!({
            "name": name, "status": "published",
            "settings": { "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon"], "timezone": "UTC" } },
            "triggers": [ { "id": "t1", "type": "contact_tag_added", "filters": { "tag": on } } ],
            "start": "s1",
            "steps": [ { "id": "s1", "type": "add_tag", "config": { "tag": adds } } ]
        })
    };
    app.put_workflow(&key, "wfA", &tagger("A", "y", "x")).await;
    app.put_workflow(&key, "wfB", &tagger("B", "x", "y")).await;

    let location: Value = app
        .api_get(&key, "/api/analysis/location")
        .await
        .json()
        .await
        .unwrap();
    let cascade = location["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["rule"] == "workflow-cascade-loop")
        .cloned()
        .unwrap_or_else(|| panic!("no cascade in {location}"));
    let mut ids: Vec<&str> = cascade["workflowIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["wfA", "wfB"]);
    assert_eq!(location["data"]["locationId"], "locA");

    let (_, _, analysis_a) = analysis_of(&app, &key, "wfA").await;
    assert!(analysis_a["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["rule"] == "workflow-cascade-loop"));

    // Breaking the cycle is seen at once: the location analysis was invalidated by the write.
    app.put_workflow(&key, "wfB", &tagger("B", "x", "z")).await;
    let after: Value = app
        .api_get(&key, "/api/analysis/location")
        .await
        .json()
        .await
        .unwrap();
    assert!(!after["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["rule"] == "workflow-cascade-loop"));
}

#[tokio::test]
async fn history_lists_stored_analyses_newest_first_within_the_plans_retention() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    for id in ["wf1", "wf2", "wf3"] {
        app.put_workflow(&key, id, &sample_workflow(id)).await;
        analysis_of(&app, &key, id).await;
    }
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    sqlx::query(
        "update analyses set created_at = now() - interval '10 days' where workflow_id = 'wf1'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let free: Value = app
        .api_get(&key, "/api/history?limit=1")
        .await
        .json()
        .await
        .unwrap();
    set_plan(&app, "locA", "starter").await;
    let starter: Value = app
        .api_get(&key, "/api/history")
        .await
        .json()
        .await
        .unwrap();
    let bad = app.api_get(&key, "/api/history?limit=500").await;

    assert_eq!(free["data"]["retentionDays"], 7);
    assert_eq!(free["data"]["pagination"]["total"], 2);
    assert_eq!(free["data"]["pagination"]["hasMore"], true);
    assert_eq!(free["data"]["analyses"][0]["workflowId"], "wf3");
    assert_eq!(starter["data"]["pagination"]["total"], 3);
    assert_eq!(starter["data"]["analyses"][2]["workflowId"], "wf1");
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn another_locations_workflow_has_no_analysis() {
    let app = spawn_app().await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;
    app.put_workflow(&key_a, "wf1", &sample_workflow("A's"))
        .await;
    assert_eq!(analysis_of(&app, &key_a, "wf1").await.0, 200);

    let (status, _, _) = analysis_of(&app, &key_b, "wf1").await;
    let posted = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key_b)
                .json(&json!({"workflowId": "wf1"})),
        )
        .await;

    assert_eq!(status, 404);
    assert_eq!(posted.status(), 404);
}

#[tokio::test]
async fn a_history_page_past_the_end_is_empty_but_keeps_the_total() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("one")).await;
    analysis_of(&app, &key, "wf1").await;

    let page: Value = app
        .api_get(&key, "/api/history?page=9")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(page["data"]["count"], 0);
    assert_eq!(page["data"]["pagination"]["total"], 1);
    assert_eq!(page["data"]["pagination"]["hasMore"], false);
}

//! A workflow deleted and created again under the same id continues its versions, so nothing
//! keyed by a version (cached analysis, history row, ETag) of the deleted one is served for
//! it; and a location's workflows are bounded.

use serde_json::{json, Value};

use ghl_workflow_debugger::repository::postgres::TOMBSTONES_PER_LOCATION;

use crate::helpers::{sample_workflow, spawn_app_with, TestApp};
use crate::webhooks::{event, send_signed, SECRET};

async fn analysis(app: &TestApp, key: &str, id: &str) -> (u16, String, Value) {
    let response = app
        .api_get(key, &format!("/api/workflows/{id}/analysis"))
        .await;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, response.json().await.unwrap())
}

async fn put(app: &TestApp, key: &str, id: &str, document: &Value) -> (u16, Value) {
    let response = app.put_workflow(key, id, document).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The second document: another name, and an unreachable step the first one did not have.
fn successor() -> Value {
    let mut document = sample_workflow("Second life");
    document["steps"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "orphan", "type": "add_tag", "config": {"tag": "x"}}));
    document
}

#[tokio::test]
async fn a_recreated_workflow_continues_its_versions_and_is_never_answered_with_the_deleted_ones_analysis(
) {
    let app = spawn_app_with(|env| {
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await;
    let key = app.create_location("locA").await;

    let (status, first) = put(&app, &key, "wf1", &sample_workflow("First life")).await;
    assert_eq!((status, first["data"]["version"].as_i64()), (201, Some(1)));
    let (_, _, old) = analysis(&app, &key, "wf1").await;
    let (status, cache, _) = analysis(&app, &key, "wf1").await;
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert_eq!(old["data"]["workflowName"], "First life");

    assert_eq!(app.delete_workflow(&key, "wf1").await.status(), 204);
    let (status, second) = put(&app, &key, "wf1", &successor()).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["data"]["version"], 2);

    let (status, cache, new) = analysis(&app, &key, "wf1").await;
    assert_eq!(status, 200);
    assert_ne!(cache, "HIT", "the deleted workflow's analysis was served");
    assert_eq!(new["data"]["workflowName"], "Second life");
    assert_eq!(new["data"]["version"], 2);
    assert!(
        new["data"]["issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["rule"] == "unreachable-step"),
        "{new}"
    );

    // The deleted document's ETag no longer matches.
    let stale = app
        .send(
            app.client
                .put(app.url("/api/workflows/wf1"))
                .bearer_auth(&key)
                .header("If-Match", "1")
                .json(&sample_workflow("Blind overwrite")),
        )
        .await;
    assert_eq!(stale.status(), 412);

    let history = app.api_get_json(&key, "/api/history").await;
    let mut versions: Vec<i64> = history["data"]["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["workflowId"] == "wf1")
        .map(|a| a["workflowVersion"].as_i64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2]);

    // A delete announced by GoHighLevel counts the same.
    let deleted = send_signed(
        &app,
        &event(
            "e-del",
            "WorkflowDeleted",
            "locA",
            json!({"workflowId": "wf1"}),
        ),
    )
    .await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(app.api_get(&key, "/api/workflows/wf1").await.status(), 404);
    let (status, third) = put(&app, &key, "wf1", &sample_workflow("Third life")).await;
    assert_eq!((status, third["data"]["version"].as_i64()), (201, Some(3)));
    let (_, cache, latest) = analysis(&app, &key, "wf1").await;
    assert_ne!(cache, "HIT");
    assert_eq!(latest["data"]["version"], 3);
    assert_eq!(latest["data"]["workflowName"], "Third life");

    // Replacing keeps counting from there.
    let (status, fourth) = put(&app, &key, "wf1", &sample_workflow("Fourth")).await;
    assert_eq!((status, fourth["data"]["version"].as_i64()), (200, Some(4)));
}

#[tokio::test]
async fn creating_past_max_workflows_per_location_is_422_naming_the_limit() {
    let app = spawn_app_with(|env| {
        env.insert("MAX_WORKFLOWS_PER_LOCATION".into(), "3".into());
    })
    .await;
    let key = app.create_location("locA").await;
    let other = app.create_location("locB").await;
    for id in ["w1", "w2", "w3"] {
        assert_eq!(put(&app, &key, id, &sample_workflow(id)).await.0, 201);
    }

    let (status, refused) = put(&app, &key, "w4", &sample_workflow("w4")).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR");
    let error = &refused["error"]["details"]["errors"][0];
    assert_eq!(error["field"], "id");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains('3') && message.contains("MAX_WORKFLOWS_PER_LOCATION"),
        "{message}"
    );
    assert_eq!(app.api_get(&key, "/api/workflows/w4").await.status(), 404);

    // Replacing is not creating; another location has its own count; a delete frees a slot.
    assert_eq!(
        put(&app, &key, "w3", &sample_workflow("again")).await.0,
        200
    );
    assert_eq!(put(&app, &other, "w4", &sample_workflow("w4")).await.0, 201);
    assert_eq!(app.delete_workflow(&key, "w1").await.status(), 204);
    assert_eq!(put(&app, &key, "w4", &sample_workflow("w4")).await.0, 201);
}

#[tokio::test]
async fn concurrent_creations_cannot_overtake_the_limit() {
    let app = spawn_app_with(|env| {
        env.insert("MAX_WORKFLOWS_PER_LOCATION".into(), "3".into());
        env.insert("WORKERS".into(), "4".into());
    })
    .await;
    let key = app.create_location("locA").await;
    let document = sample_workflow("racer");
    let attempts = (0..20).map(|n| {
        let (app, key, document) = (&app, &key, &document);
        async move { put(app, key, &format!("r{n}"), document).await.0 }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );

    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("select count(*) from workflows where location_id = 'locA'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(stored, 3);
}

async fn tombstones_of(pool: &sqlx::PgPool, location: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select workflow_id from workflow_tombstones where location_id = $1 order by workflow_id",
    )
    .bind(location)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_location_keeps_only_its_newest_tombstones() {
    let app = spawn_app_with(|env| {
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await;
    let key = app.create_location("locA").await;
    app.create_location("locB").await;
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    // As many old deletions as a location keeps, and a few more: "gone-1" the newest of
    // them, "gone-N" the oldest. Another location has as many.
    let kept = TOMBSTONES_PER_LOCATION;
    for location in ["locA", "locB"] {
        sqlx::query(
            "insert into workflow_tombstones (location_id, workflow_id, last_version, deleted_at)
             select $1, 'gone-' || g, 1, now() - interval '1 day' - g * interval '1 second'
             from generate_series(1, $2) g",
        )
        .bind(location)
        .bind(kept + 20)
        .execute(&pool)
        .await
        .unwrap();
    }

    assert_eq!(put(&app, &key, "wf1", &sample_workflow("w")).await.0, 201);
    assert_eq!(app.delete_workflow(&key, "wf1").await.status(), 204);

    let a = tombstones_of(&pool, "locA").await;
    let b = tombstones_of(&pool, "locB").await;
    // A delete announced by GoHighLevel prunes too.
    sqlx::query(
        "insert into workflow_tombstones (location_id, workflow_id, last_version, deleted_at)
         select 'locA', 'older-' || g, 1, now() - interval '2 days' from generate_series(1, 30) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(put(&app, &key, "wf2", &sample_workflow("w")).await.0, 201);
    let deleted = send_signed(
        &app,
        &event(
            "e-del",
            "WorkflowDeleted",
            "locA",
            json!({"workflowId": "wf2"}),
        ),
    )
    .await;
    assert_eq!(deleted.status(), 200);
    let after_webhook = tombstones_of(&pool, "locA").await;
    pool.close().await;
    assert_eq!(after_webhook.len() as i64, kept);
    assert!(after_webhook.contains(&"wf2".to_owned()));
    assert!(!after_webhook.iter().any(|id| id.starts_with("older-")));
    assert_eq!(a.len() as i64, kept);
    assert!(a.contains(&"wf1".to_owned()), "the newest deletion is kept");
    assert!(a.contains(&"gone-1".to_owned()));
    assert!(
        !a.contains(&format!("gone-{}", kept + 20)),
        "the oldest went"
    );
    assert!(!a.contains(&format!("gone-{kept}")));
    assert!(a.contains(&format!("gone-{}", kept - 1)));
    assert_eq!(b.len() as i64, kept + 20, "another location's are its own");
    // A recreated id that had a kept tombstone still continues its versions.
    let (status, again) = put(&app, &key, "wf1", &sample_workflow("w")).await;
    assert_eq!((status, again["data"]["version"].as_i64()), (201, Some(2)));
}

#[tokio::test]
async fn a_recreated_workflow_whose_tombstone_was_pruned_still_starts_after_its_analyzed_versions()
{
    let app = spawn_app_with(|_| {}).await;
    let key = app.create_location("locA").await;
    assert_eq!(
        put(&app, &key, "wf1", &sample_workflow("First life"))
            .await
            .0,
        201
    );
    assert_eq!(
        put(&app, &key, "wf1", &sample_workflow("First life"))
            .await
            .0,
        200
    );
    let (status, _, old) = analysis(&app, &key, "wf1").await;
    assert_eq!((status, old["data"]["version"].as_i64()), (200, Some(2)));
    assert_eq!(app.delete_workflow(&key, "wf1").await.status(), 204);
    // What pruning does to a tombstone past a location's newest ones.
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    sqlx::query("delete from workflow_tombstones where location_id = 'locA'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let (status, created) = put(&app, &key, "wf1", &successor()).await;
    let (status_after, cache, new) = analysis(&app, &key, "wf1").await;

    assert_eq!(
        (status, created["data"]["version"].as_i64()),
        (201, Some(3))
    );
    assert_eq!(status_after, 200);
    assert_ne!(cache, "HIT", "the deleted workflow's analysis was served");
    assert_eq!(new["data"]["workflowName"], "Second life");
    assert_eq!(new["data"]["version"], 3);
}

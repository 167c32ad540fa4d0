//! `POST /api/workflows/import` and `GET /api/workflows/{id}?format=ghl` (issue 22):
//! GoHighLevel builder JSON stored under its ids, answered with its analysis.

use serde_json::{json, Value};

use crate::caching::wait_for_redis;
use crate::helpers::{sample_workflow, spawn_app, spawn_app_with, spawn_sibling, TestApp};

mod fuzz;

/// `../shared/ghl/example-missed-call.json`, as users bring it (builder wrapping).
const EXAMPLE: &str = include_str!("../fixtures/ghl/example-missed-call.json");
const EXAMPLE_ID: &str = "9a0c1e2f-3b4d-4c5e-8f6a-7b8c9d0e1f2a";
const EXAMPLE_LOCATION: &str = "Xw3Rk9Pq2Nm7Vb5Tz1Ha";
/// The demo's broken variants (`make dev` seeds them), for the demo location.
const TEXT_BACK: &str = include_str!("../../demo/ghl/missed-call-text-back.json");
const OLD_COPY: &str = include_str!("../../demo/ghl/missed-call-old-copy.json");
const OLD_COPY_ID: &str = "5d1f0b7a-6c2e-4a9d-8b3f-2e7c9a1d4f60";
const CRM: &str = include_str!("../../demo/ghl/new-lead-to-crm.json");
const CRM_ID: &str = "7e3a9c51-2b4d-4f6e-9a8c-1d5b7f9e3a20";
const DEMO_LOCATION: &str = "demoLocAcme7Hq2Vx9Lp4Tz";

async fn import(app: &TestApp, key: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.client
        .post(app.url("/api/workflows/import"))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn import_json(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let response = import(app, key, body.to_string()).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A flattened document of `location` (none named when `None`) at source `version`.
fn flat(id: &str, name: &str, location: Option<&str>, version: i64) -> Value {
    let mut doc = json!({
        "id": id, "name": name, "status": "published", "version": version,
        "templates": [
            {"id": "s1", "type": "sms", "name": "Hello", "attributes": {"body": "Hi {{contact.first_name}}"}, "next": "s2"},
            {"id": "s2", "type": "wait", "attributes": {"type": "time", "startAfter": {"type": "days", "value": 1}}}
        ],
        "triggers": [{"id": "t1", "type": "form_submission", "active": true}]
    });
    if let Some(location) = location {
        doc["locationId"] = json!(location);
    }
    doc
}

fn rules_of(analysis: &Value) -> Vec<String> {
    analysis["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| issue["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_example_is_stored_under_its_ghl_id_with_its_source_version_and_analysis_summary() {
    let app = spawn_app().await;
    let key = app.create_location(EXAMPLE_LOCATION).await;

    let response = import(&app, &key, EXAMPLE).await;

    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/api/workflows/{EXAMPLE_ID}")
    );
    assert_eq!(response.headers()["etag"].to_str().unwrap(), "\"1\"");
    assert!(
        response.headers().contains_key("x-consistency-token"),
        "an import is a write like any other"
    );
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["id"], EXAMPLE_ID);
    assert_eq!(data["name"], "Missed call text back");
    assert_eq!(data["status"], "published");
    assert_eq!(data["version"], 1);
    assert_eq!(data["sourceVersion"], 4);
    assert_eq!(data["sourceFormat"], "ghl");
    assert_eq!(data["stepCount"], 8);
    assert_eq!(data["triggerCount"], 1);
    assert_eq!(data["import"]["outcome"], "created");
    assert_eq!(data["import"]["wrapping"], "builder");
    assert_eq!(data["import"]["notes"], json!([]));
    assert_eq!(data["analysisStatus"], "done");
    assert_eq!(data["analysis"]["healthScore"], 100);
    assert_eq!(data["analysis"]["grade"], "Excellent");
    assert_eq!(data["analysis"]["issuesSummary"]["total"], 0);

    // Stored like any workflow: listed, readable, analyzed.
    let stored = app
        .api_get_json(&key, &format!("/api/workflows/{EXAMPLE_ID}"))
        .await;
    assert_eq!(stored["data"]["sourceVersion"], 4);
    assert_eq!(
        stored["data"]["definition"]["steps"][0]["id"],
        "00000000-0000-4000-8000-000000000001"
    );
    let list = app.api_get_json(&key, "/api/workflows").await;
    assert_eq!(list["data"]["count"], 1);
}

#[tokio::test]
async fn format_ghl_gives_back_the_imported_json_byte_for_byte() {
    let app = spawn_app().await;
    let key = app.create_location(EXAMPLE_LOCATION).await;
    // Odd spacing and key order, as a hand-edited file may have them.
    let single = format!(
        "\n  {}\r\n",
        EXAMPLE.replace("\"name\": \"Missed", "\"name\" :\t\"Missed")
    );
    let element_a = r#"{ "templates" : [ {"id": "x", "type": "sms", "attributes": {"body": "é ☎ \u00e9"}} ], "name": "A", "id": "wf-a" }"#;
    let element_b = r#"{"id":"wf-b","templates":[]}"#;
    let array = format!("[ {element_a},\n{element_b} ]");

    assert_eq!(import(&app, &key, single.clone()).await.status(), 201);
    assert_eq!(import(&app, &key, array).await.status(), 200);

    for (id, original) in [
        (EXAMPLE_ID, single.as_str()),
        ("wf-a", element_a),
        ("wf-b", element_b),
    ] {
        for read in ["miss", "hit"] {
            let response = app
                .api_get(&key, &format!("/api/workflows/{id}?format=ghl"))
                .await;
            assert_eq!(response.status(), 200, "{id} ({read})");
            assert!(response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"));
            assert_eq!(
                response.bytes().await.unwrap(),
                original.as_bytes(),
                "{id} ({read})"
            );
        }
    }
}

#[tokio::test]
async fn format_ghl_of_a_workflow_not_imported_is_404_saying_so_and_an_unknown_format_is_422() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "native", &sample_workflow("Native"))
        .await;

    let not_imported = app.api_get(&key, "/api/workflows/native?format=ghl").await;
    let missing = app.api_get(&key, "/api/workflows/nope?format=ghl").await;
    let unknown = app.api_get(&key, "/api/workflows/native?format=xml").await;
    let native = app
        .api_get(&key, "/api/workflows/native?format=native")
        .await;

    assert_eq!(not_imported.status(), 404);
    let body: Value = not_imported.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("was not imported from GoHighLevel"));
    assert_eq!(missing.status(), 404);
    assert_eq!(unknown.status(), 422);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "format");
    assert_eq!(native.status(), 200);
}

#[tokio::test]
async fn a_document_naming_another_location_is_403_and_stores_nothing() {
    let app = spawn_app().await;
    let key = app.create_location("someoneElse").await;

    let response = import(&app, &key, EXAMPLE).await;

    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let list = app.api_get_json(&key, "/api/workflows").await;
    assert_eq!(list["data"]["count"], 0);
    // As on the other routes, a locationId in the query must be the key's own.
    let response = app
        .client
        .post(app.url(&format!(
            "/api/workflows/import?locationId={EXAMPLE_LOCATION}"
        )))
        .bearer_auth(&key)
        .json(&flat("wf-1", "n", None, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400_and_one_that_is_not_sent_as_json_is_415() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;

    for body in ["{nope", "", "[{\"templates\": []}", "null null"] {
        let response = import(&app, &key, body).await;
        assert_eq!(response.status(), 400, "{body:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
    }
    let response = app
        .client
        .post(app.url("/api/workflows/import"))
        .bearer_auth(&key)
        .header("Content-Type", "text/plain")
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    // Without a key nothing is read.
    let response = app
        .client
        .post(app.url("/api/workflows/import"))
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn json_in_no_known_shape_is_422_naming_what_is_missing() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let cases = [
        (
            json!({"name": "n", "status": "published", "steps": []}),
            "templates",
            "no `templates` array found",
        ),
        (
            json!({"workflowData": {"name": "n"}}),
            "templates",
            "expected one of",
        ),
        (
            json!({"id": "w", "templates": {"s1": {}}}),
            "templates",
            "must be an array of steps; got an object",
        ),
        (
            json!({"workflowData": {"workflowData": {"templates": 7}}}),
            "workflowData.workflowData.templates",
            "must be an array",
        ),
        (json!("a string"), "$", "must be a JSON object"),
        (json!([]), "$", "holds no workflow"),
    ];

    for (body, field, says) in cases {
        let (status, answer) = import_json(&app, &key, &body).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(answer["error"]["code"], "VALIDATION_ERROR");
        let error = &answer["error"]["details"]["errors"][0];
        assert_eq!(error["field"], field, "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn documents_over_the_body_step_size_or_count_limits_are_413_or_422() {
    let app = spawn_app_with(|env| {
        env.insert("MAX_WORKFLOW_STEPS".into(), "3".into());
        env.insert("BODY_LIMIT_BYTES".into(), "65536".into());
    })
    .await;
    let key = app.create_location("locA").await;

    // Over the body limit: 413 before anything is read.
    let huge = json!({"id": "w", "templates": [{"id": "s", "type": "sms", "attributes": {"body": "x".repeat(70_000)}}]});
    let (status, body) = import_json(&app, &key, &huge).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
    // Over MAX_WORKFLOW_STEPS.
    let steps: Vec<Value> = (0..4)
        .map(|i| json!({"id": format!("s{i}"), "type": "sms"}))
        .collect();
    let (status, body) = import_json(&app, &key, &json!({"id": "w", "templates": steps})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "steps");
    assert!(body["error"]["details"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("has 4 steps; the maximum is 3"));
    // Over a size limit inside a step (an id of 300 bytes).
    let long_id = "i".repeat(300);
    let (status, body) = import_json(
        &app,
        &key,
        &json!({"id": "w", "templates": [{"id": long_id, "type": "sms"}]}),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"steps[0].id"), "{fields:?}");
    // More documents than one request takes.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("w{i}"), "templates": []}))
        .collect();
    let (status, body) = import_json(&app, &key, &json!(many)).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 100"));
    let list = app.api_get_json(&key, "/api/workflows").await;
    assert_eq!(list["data"]["count"], 0, "nothing over a limit is stored");
}

#[tokio::test]
async fn malformed_steps_inside_a_valid_document_are_imported_and_reported_never_a_5xx() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let doc = json!({
        "templates": [
            {"id": "a", "type": "sms", "attributes": {"body": "hi"}, "next": "b"},
            {"id": "a", "type": "wait", "attributes": "not an object", "next": 7},
            {"type": ["x"], "next": {"bad": true}},
            "not a step",
            {"id": "g", "type": "goto", "attributes": {"targetNodeId": "g"}},
            {"id": "n", "type": "teleport", "next": "ghost"}
        ],
        "triggers": [{"type": 5, "active": "yes"}, {"id": "t", "type": "moon_phase"}]
    });

    let (status, body) = import_json(&app, &key, &doc).await;

    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    let id = data["id"].as_str().unwrap();
    assert!(
        id.starts_with("ghl-"),
        "a bare document gets an id from its text: {id}"
    );
    assert_eq!(data["import"]["wrapping"], "flat");
    assert!(!data["import"]["notes"].as_array().unwrap().is_empty());
    assert!(data["analysis"]["issuesSummary"]["total"].as_u64().unwrap() > 0);
    // The same text again finds the same workflow and changes nothing.
    let (status, again) = import_json(&app, &key, &doc).await;
    assert_eq!(status, 200);
    assert_eq!(again["data"]["id"], id);
    assert_eq!(again["data"]["import"]["outcome"], "unchanged");
    assert_eq!(again["data"]["version"], 1);
}

#[tokio::test]
async fn an_array_is_answered_item_by_item_and_its_good_documents_are_stored() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let body = json!([
        flat("wf-good", "Good", Some("locA"), 1),
        flat("wf-theirs", "Theirs", Some("locB"), 1),
        {"name": "no shape", "steps": []},
        flat("wf-also", "Also good", None, 2),
        flat("bad id!", "Bad id", None, 1),
    ]);

    let (status, answer) = import_json(&app, &key, &body).await;

    assert_eq!(status, 200);
    let data = &answer["data"];
    assert_eq!(data["count"], 5);
    assert_eq!(
        data["summary"],
        json!({"created": 2, "updated": 0, "unchanged": 0, "failed": 3})
    );
    let results = data["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 403, 422, 201, 422]);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    assert_eq!(results[0]["id"], "wf-good");
    assert_eq!(results[0]["data"]["version"], 1);
    assert_eq!(results[0]["data"]["analysisStatus"], "done");
    assert_eq!(results[1]["id"], "wf-theirs");
    assert_eq!(results[1]["error"]["code"], "FORBIDDEN");
    assert_eq!(results[2]["id"], Value::Null);
    assert_eq!(
        results[2]["error"]["details"]["errors"][0]["field"],
        "templates"
    );
    assert_eq!(results[3]["data"]["sourceVersion"], 2);
    assert_eq!(results[4]["error"]["details"]["errors"][0]["field"], "id");

    let list = app.api_get_json(&key, "/api/workflows").await;
    let mut ids: Vec<&str> = list["data"]["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["wf-also", "wf-good"]);
}

#[tokio::test]
async fn re_importing_the_same_source_version_changes_nothing_and_a_newer_one_is_a_new_version() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let (status, first) = import_json(&app, &key, &flat("wf-1", "First", None, 4)).await;
    assert_eq!(status, 201);
    // Read twice: the second read is answered by the cache.
    app.api_get(&key, "/api/workflows/wf-1").await;
    let cached = app.api_get(&key, "/api/workflows/wf-1").await;
    assert_eq!(cached.headers()["x-cache-status"], "HIT");

    // The same source version, even with other content: nothing written, nothing dropped.
    let (status, same) = import_json(&app, &key, &flat("wf-1", "Edited", None, 4)).await;

    assert_eq!(status, 200);
    assert_eq!(same["data"]["import"]["outcome"], "unchanged");
    assert_eq!(same["data"]["version"], 1);
    assert_eq!(same["data"]["name"], "First");
    assert_eq!(same["data"]["updatedAt"], first["data"]["updatedAt"]);
    let after = app.api_get(&key, "/api/workflows/wf-1").await;
    assert_eq!(after.headers()["x-cache-status"], "HIT", "no invalidation");
    let history = app.api_get_json(&key, "/api/history").await;
    assert_eq!(
        history["data"]["count"], 1,
        "one analysis: nothing new to analyze"
    );

    // A newer source version is a write like any other.
    let (status, newer) = import_json(&app, &key, &flat("wf-1", "Second", None, 5)).await;
    assert_eq!(status, 200);
    assert_eq!(newer["data"]["import"]["outcome"], "updated");
    assert_eq!(newer["data"]["version"], 2);
    assert_eq!(newer["data"]["sourceVersion"], 5);
    let read = app.api_get_json(&key, "/api/workflows/wf-1").await;
    assert_eq!(read["data"]["version"], 2);
    assert_eq!(read["data"]["name"], "Second");

    // An older source version is refused rather than stored over the newer one.
    let (status, older) = import_json(&app, &key, &flat("wf-1", "Stale", None, 3)).await;
    assert_eq!(status, 409);
    assert_eq!(older["error"]["code"], "CONFLICT");
    assert!(older["error"]["message"]
        .as_str()
        .unwrap()
        .contains("version 5"));
    let read = app.api_get_json(&key, "/api/workflows/wf-1").await;
    assert_eq!(read["data"]["version"], 2);
}

#[tokio::test]
async fn the_same_file_imported_again_after_the_importer_changed_is_stored_as_read_now() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let document = flat("wf-1", "First", None, 4);
    let (status, _) = import_json(&app, &key, &document).await;
    assert_eq!(status, 201);
    // What an earlier release's importer stored from the same text: one step fewer.
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    sqlx::query(
        "update workflows set definition = jsonb_set(definition, '{steps}', (definition->'steps') - 1)
         where location_id = 'locA' and id = 'wf-1'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    // A new release starts with its caches empty.
    app.flush_cache().await;

    let (status, again) = import_json(&app, &key, &document).await;

    assert_eq!(status, 200);
    assert_eq!(again["data"]["import"]["outcome"], "updated");
    assert_eq!(again["data"]["version"], 2);
    assert_eq!(again["data"]["sourceVersion"], 4);
    let read = app.api_get_json(&key, "/api/workflows/wf-1").await;
    assert_eq!(
        read["data"]["definition"]["steps"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // And once stored as this importer reads it, the same file changes nothing again.
    let (status, third) = import_json(&app, &key, &document).await;
    assert_eq!(status, 200);
    assert_eq!(third["data"]["import"]["outcome"], "unchanged");
    assert_eq!(third["data"]["version"], 2);
}

#[tokio::test]
async fn a_put_over_an_imported_workflow_drops_its_original_and_a_delete_then_import_goes_on_counting(
) {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    import_json(&app, &key, &flat("wf-1", "Imported", None, 4)).await;

    let put = app
        .put_workflow(&key, "wf-1", &sample_workflow("Native now"))
        .await;

    assert_eq!(put.status(), 200);
    let put: Value = put.json().await.unwrap();
    assert_eq!(put["data"]["version"], 2);
    assert!(put["data"].get("sourceVersion").is_none(), "{put}");
    assert!(put["data"].get("sourceFormat").is_none(), "{put}");
    let original = app.api_get(&key, "/api/workflows/wf-1?format=ghl").await;
    assert_eq!(original.status(), 404);
    // Importing the same source version again is a change now: the stored one is not it.
    let (status, again) = import_json(&app, &key, &flat("wf-1", "Imported", None, 4)).await;
    assert_eq!(status, 200);
    assert_eq!(again["data"]["import"]["outcome"], "updated");
    assert_eq!(again["data"]["version"], 3);

    assert_eq!(app.delete_workflow(&key, "wf-1").await.status(), 204);
    let (status, recreated) = import_json(&app, &key, &flat("wf-1", "Imported", None, 4)).await;
    assert_eq!(status, 201);
    assert_eq!(recreated["data"]["version"], 4, "versions never go back");
}

#[tokio::test]
async fn another_locations_key_can_neither_read_nor_overwrite_an_imported_workflow() {
    let app = spawn_app().await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;
    let original = flat("wf-shared-id", "A's workflow", None, 7).to_string();
    assert_eq!(import(&app, &key_a, original.clone()).await.status(), 201);

    for path in [
        "/api/workflows/wf-shared-id",
        "/api/workflows/wf-shared-id?format=ghl",
        "/api/workflows/wf-shared-id/analysis",
    ] {
        assert_eq!(app.api_get(&key_b, path).await.status(), 404, "{path}");
    }
    // B's document naming A's location is refused; one naming none is B's own workflow.
    let (status, _) = import_json(&app, &key_b, &flat("wf-shared-id", "B", Some("locA"), 9)).await;
    assert_eq!(status, 403);
    let (status, theirs) =
        import_json(&app, &key_b, &flat("wf-shared-id", "B's workflow", None, 9)).await;
    assert_eq!(status, 201);
    assert_eq!(theirs["data"]["version"], 1);

    let a = app
        .api_get_json(&key_a, "/api/workflows/wf-shared-id")
        .await;
    assert_eq!(a["data"]["name"], "A's workflow");
    assert_eq!(a["data"]["sourceVersion"], 7);
    let a_original = app
        .api_get(&key_a, "/api/workflows/wf-shared-id?format=ghl")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(a_original, original.as_bytes());
}

#[tokio::test]
async fn a_read_on_another_instance_after_an_import_is_fresh() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    let key = app.create_location("locA").await;
    import_json(&app, &key, &flat("wf-1", "v1", None, 1)).await;
    // The sibling holds version 1, and the original of version 1, in its L1.
    for path in ["/api/workflows/wf-1", "/api/workflows/wf-1?format=ghl"] {
        sibling.api_get(&key, path).await;
        let cached = sibling.api_get(&key, path).await;
        assert_eq!(cached.headers()["x-cache-status"], "HIT", "{path}");
    }

    for round in 2..=6 {
        let doc = flat("wf-1", &format!("v{round}"), None, round);
        let (status, _) = import_json(&app, &key, &doc).await;
        assert_eq!(status, 200);

        let read = sibling.api_get_json(&key, "/api/workflows/wf-1").await;
        assert_eq!(
            read["data"]["version"], round,
            "sibling served a stale version"
        );
        assert_eq!(read["data"]["sourceVersion"], round);
        let original = sibling
            .api_get(&key, "/api/workflows/wf-1?format=ghl")
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            original,
            doc.to_string().as_bytes(),
            "sibling served a stale original"
        );
    }
}

#[tokio::test]
async fn the_analysis_of_imported_workflows_finds_their_real_problems_by_builder_step_ids() {
    let app = spawn_app().await;
    let key = app.create_location(DEMO_LOCATION).await;
    let body = format!("[{TEXT_BACK},{OLD_COPY},{CRM}]");

    let (status, answer) = {
        let response = import(&app, &key, body).await;
        (response.status(), response.json::<Value>().await.unwrap())
    };

    assert_eq!(status, 200);
    let results = answer["data"]["results"].as_array().unwrap();
    assert_eq!(answer["data"]["summary"]["created"], 3, "{answer}");
    assert_eq!(results[0]["data"]["analysis"]["healthScore"], 100);
    assert_eq!(
        results[1]["data"]["analysis"]["issuesSummary"]["critical"], 1,
        "{answer}"
    );
    assert!(
        results[2]["data"]["analysis"]["healthScore"]
            .as_u64()
            .unwrap()
            < 50
    );

    let old_copy = app
        .api_get_json(&key, &format!("/api/workflows/{OLD_COPY_ID}/analysis"))
        .await;
    let rules = rules_of(&old_copy);
    for expected in ["no-trigger", "loop-without-wait", "invalid-merge-field"] {
        assert!(
            rules.contains(&expected.to_owned()),
            "{expected} not in {rules:?}"
        );
    }
    let looping = old_copy["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|issue| issue["rule"] == "loop-without-wait")
        .unwrap();
    assert!(looping["stepIds"]
        .as_array()
        .unwrap()
        .contains(&json!("00000000-0000-4000-8000-000000000008")));

    let crm = app
        .api_get_json(&key, &format!("/api/workflows/{CRM_ID}/analysis"))
        .await;
    let rules = rules_of(&crm);
    // The free plan shows the first three findings; the summary counts every one.
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!(crm["data"]["issuesSummary"]["total"], 6);
    let issue = &crm["data"]["issues"][0];
    assert!(issue["message"]
        .as_str()
        .unwrap()
        .contains("c0000000-0000-4000-8000-00000000000"));
}

#[tokio::test]
async fn the_import_path_answers_post_only_and_import_is_no_workflow_id() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;

    // As OpenAPI reads paths, the fixed path wins over /api/workflows/{id}.
    let put = app
        .put_workflow(&key, "import", &sample_workflow("Named import"))
        .await;
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "POST");
    assert_eq!(
        app.api_get(&key, "/api/workflows/import").await.status(),
        405
    );
    let (status, body) = import_json(&app, &key, &flat("import", "n", None, 1)).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "id");
    let list = app.api_get_json(&key, "/api/workflows").await;
    assert_eq!(list["data"]["count"], 0);
}

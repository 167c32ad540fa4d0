use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app};

#[tokio::test]
async fn put_creates_then_replaces_with_a_new_version() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;

    let created = app
        .put_workflow(&key, "wf1", &sample_workflow("First"))
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["data"]["version"], 1);
    assert_eq!(created["data"]["stepCount"], 3);

    let replaced = app
        .put_workflow(&key, "wf1", &sample_workflow("Second"))
        .await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(replaced.headers()["etag"], "\"2\"");
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["data"]["version"], 2);

    let fetched = app.api_get(&key, "/api/workflows/wf1").await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["cache-control"], "private, no-store");
    assert!(fetched.headers().contains_key("x-cache-status"));
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["success"], true);
    assert_eq!(fetched["data"]["name"], "Second");
    assert_eq!(fetched["data"]["version"], 2);
    assert_eq!(fetched["data"]["definition"]["steps"][0]["id"], "s1");
}

#[tokio::test]
async fn if_match_makes_a_put_conditional() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("v1")).await;
    let put_if = |version: &'static str| {
        app.send(
            app.client
                .put(app.url("/api/workflows/wf1"))
                .bearer_auth(&key)
                .header("If-Match", version)
                .json(&sample_workflow("conditional")),
        )
    };

    let stale = put_if("\"7\"").await;
    let fresh = put_if("1").await;
    let garbage = put_if("abc").await;

    assert_eq!(stale.status(), 412);
    assert_eq!(
        stale.json::<Value>().await.unwrap()["error"]["code"],
        "PRECONDITION_FAILED"
    );
    assert_eq!(fresh.status(), 200);
    assert_eq!(fresh.json::<Value>().await.unwrap()["data"]["version"], 2);
    assert_eq!(garbage.status(), 400);
}

#[tokio::test]
async fn invalid_documents_are_422_with_every_offending_field() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let mut document = sample_workflow("");
    document["steps"][1]["id"] = json!("s1");
    document["triggers"] = json!([{ "id": "t1", "type": "contact_created" }, { "id": "t1", "type": "contact_created" }]);

    let response = app.put_workflow(&key, "wf1", &document).await;

    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<String> = body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(fields.contains(&"name".to_owned()), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("steps[1]")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("triggers[1]")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn server_owned_fields_in_the_body_are_ignored() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let mut document = sample_workflow("Owned");
    document["id"] = json!("other-id");
    document["version"] = json!(99);
    document["createdAt"] = json!("2000-01-01T00:00:00Z");

    let created: Value = app
        .put_workflow(&key, "wf1", &document)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(created["data"]["id"], "wf1");
    assert_eq!(created["data"]["version"], 1);
    assert!(created["data"]["definition"].get("version").is_none());
    assert_eq!(
        app.api_get(&key, "/api/workflows/other-id").await.status(),
        404
    );
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    app.put_workflow(&key, "wf1", &sample_workflow("Doomed"))
        .await;

    assert_eq!(app.delete_workflow(&key, "wf1").await.status(), 204);
    assert_eq!(app.api_get(&key, "/api/workflows/wf1").await.status(), 404);
    assert_eq!(app.delete_workflow(&key, "wf1").await.status(), 404);
}

#[tokio::test]
async fn list_paginates_filters_and_bounds_its_query() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    for index in 0..5 {
        let mut document = sample_workflow(&format!("Workflow {index}"));
        if index % 2 == 0 {
            document["status"] = json!("draft");
        }
        app.put_workflow(&key, &format!("wf{index}"), &document)
            .await;
    }

    let page: Value = app
        .api_get(&key, "/api/workflows?limit=2&page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"]["count"], 2);
    assert_eq!(
        page["data"]["pagination"],
        json!({"page": 2, "limit": 2, "total": 5, "hasMore": true})
    );
    let summary = &page["data"]["workflows"][0];
    for field in [
        "id",
        "name",
        "status",
        "version",
        "stepCount",
        "triggerCount",
        "updatedAt",
    ] {
        assert!(summary.get(field).is_some(), "summary lacks {field}");
    }
    assert!(summary.get("definition").is_none());

    let drafts: Value = app
        .api_get(&key, "/api/workflows?status=draft")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(drafts["data"]["count"], 3);

    for (query, status) in [
        ("limit=101", 422),
        ("limit=0", 422),
        ("page=0", 422),
        ("status=archived", 422),
        ("limit=abc", 400),
        ("page=-1", 400),
    ] {
        let response = app.api_get(&key, &format!("/api/workflows?{query}")).await;
        assert_eq!(response.status().as_u16(), status, "{query}");
    }
}

#[tokio::test]
async fn api_routes_need_a_valid_key() {
    let app = spawn_app().await;
    app.create_location("locA").await;

    let missing = app.get("/api/workflows").await;
    let wrong = app.api_get("gwd_not-a-real-key", "/api/workflows").await;

    assert_eq!(missing.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"]["code"],
        "UNAUTHORIZED"
    );
}

#[tokio::test]
async fn another_locations_workflow_answers_404_like_a_missing_one() {
    let app = spawn_app().await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;
    app.put_workflow(&key_a, "secret-wf", &sample_workflow("A's"))
        .await;
    // Warm whatever may be cached for A before B asks.
    assert_eq!(
        app.api_get(&key_a, "/api/workflows/secret-wf")
            .await
            .status(),
        200
    );

    let foreign = app.api_get(&key_b, "/api/workflows/secret-wf").await;
    let missing = app.api_get(&key_b, "/api/workflows/never-existed").await;
    let foreign_delete = app.delete_workflow(&key_b, "secret-wf").await;
    let list_b: Value = app
        .api_get(&key_b, "/api/workflows")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(foreign.status(), 404);
    let foreign_body: Value = foreign.json().await.unwrap();
    let missing_body: Value = missing.json().await.unwrap();
    assert_eq!(foreign_body["error"], missing_body["error"]);
    assert_eq!(foreign_delete.status(), 404);
    assert_eq!(list_b["data"]["count"], 0);
    assert_eq!(
        app.api_get(&key_a, "/api/workflows/secret-wf")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_location_id_other_than_the_keys_is_forbidden() {
    let app = spawn_app().await;
    let key_a = app.create_location("locA").await;
    app.create_location("locB").await;

    let by_query = app.api_get(&key_a, "/api/workflows?locationId=locB").await;
    let own_query = app.api_get(&key_a, "/api/workflows?locationId=locA").await;
    let mut document = sample_workflow("Body");
    document["locationId"] = json!("locB");
    let by_body = app.put_workflow(&key_a, "wf1", &document).await;

    assert_eq!(by_query.status(), 403);
    assert_eq!(own_query.status(), 200);
    assert_eq!(by_body.status(), 403);
    assert_eq!(
        by_body.json::<Value>().await.unwrap()["error"]["code"],
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn documents_over_the_step_limit_are_422() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("MAX_WORKFLOW_STEPS".into(), "50".into());
    })
    .await;
    let key = app.create_location("locA").await;
    let steps: Vec<Value> = (0..51)
        .map(|n| json!({"id": format!("s{n}"), "type": "add_tag", "config": {"tag": "t"}, "next": format!("s{}", n + 1)}))
        .collect();
    let mut document = sample_workflow("Huge");
    document["steps"] = Value::Array(steps);

    let put = app.put_workflow(&key, "huge", &document).await;
    let analyze = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key)
                .json(&json!({"workflow": document})),
        )
        .await;

    assert_eq!(put.status(), 422);
    assert_eq!(analyze.status(), 422);
}

/// `(field, message)` of every error of a 422 answer.
async fn field_errors(response: reqwest::Response) -> Vec<(String, String)> {
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("field"), text("message"))
        })
        .collect()
}

#[tokio::test]
async fn documents_over_a_size_limit_are_422_naming_the_field_and_the_limit() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let mut document = sample_workflow("Over the limits");
    document["triggers"] = (0..101)
        .map(|i| json!({"id": format!("t{i}"), "type": "form_submitted"}))
        .collect();
    let tags: Vec<String> = (0..1200).map(|i| format!("tag{i}")).collect();
    document["steps"][0]["config"]["tags"] = json!(tags);
    document["steps"][1]["config"]["code"] = json!("x".repeat(200 * 1024));

    let put = app.put_workflow(&key, "over", &document).await;
    let analyze = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key)
                .json(&json!({"workflow": document})),
        )
        .await;

    assert_eq!(put.status(), 422);
    let errors = field_errors(put).await;
    assert!(
        errors.contains(&(
            "triggers".into(),
            "has 101 triggers; the maximum is 100".into()
        )),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(
            "steps[0].config.tags".into(),
            "has 1200 tags; the maximum is 100".into()
        )),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|(f, m)| f == "steps[1].config.code"
            && m == "is 204800 bytes long; the maximum is 131072 bytes"),
        "{errors:?}"
    );
    assert_eq!(analyze.status(), 422);
    let errors = field_errors(analyze).await;
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "workflow.triggers",
            "workflow.steps[0].config.tags",
            "workflow.steps[1].config.code"
        ]
    );
    let listed = app
        .send(
            app.client
                .get(app.url("/api/workflows/over"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(listed.status(), 404, "nothing is stored");
}

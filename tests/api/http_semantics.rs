//! What a client generated from `openapi.json`, or one that follows RFC 9110, expects: the
//! cases Schemathesis found where the server and the document disagreed.

use std::collections::BTreeMap;

use ghl_workflow_debugger::http::route_table;
use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app, TestApp};

async fn app_with_key() -> (TestApp, String) {
    let app = spawn_app().await;
    let key = app.create_location("semLoc").await;
    (app, key)
}

async fn put_with_if_match(
    app: &TestApp,
    key: &str,
    id: &str,
    if_match: &str,
) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/workflows/{id}")))
        .bearer_auth(key)
        .header("If-Match", if_match)
        .json(&sample_workflow("Conditional"))
        .send()
        .await
        .unwrap()
}

fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 9110 §15.5.6: a 405 lists the methods the path has, here straight from the table.
#[tokio::test]
async fn every_405_carries_allow_with_the_methods_of_its_path() {
    let (app, key) = app_with_key().await;
    let mut methods: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (method, path) in route_table() {
        methods
            .entry(path)
            .or_default()
            .push(method.as_str().to_owned());
    }

    for (path, expected) in methods {
        let url = app.url(
            &path
                .replace("{id}", "wf1")
                .replace("{asset}", "dashboard.js"),
        );
        let response = app
            .client
            .request(reqwest::Method::PATCH, &url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), 405, "PATCH {path}");
        let allow = response.headers()["allow"].to_str().unwrap().to_owned();
        let mut listed: Vec<&str> = allow.split(", ").collect();
        let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected, "Allow of {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED", "{path}");
    }
}

/// `If-Match: *` is "any current version" (RFC 9110 §13.1.1): it replaces an existing
/// workflow and never creates one.
#[tokio::test]
async fn if_match_star_replaces_an_existing_workflow_and_creates_none() {
    let (app, key) = app_with_key().await;

    let missing = put_with_if_match(&app, &key, "wf1", "*").await;
    assert_eq!(missing.status(), 412);
    assert_eq!(app.api_get(&key, "/api/workflows/wf1").await.status(), 404);

    assert_eq!(
        app.put_workflow(&key, "wf1", &sample_workflow("First"))
            .await
            .status(),
        201
    );
    let replaced = put_with_if_match(&app, &key, "wf1", "*").await;
    assert_eq!(replaced.status(), 200);
    let body: Value = replaced.json().await.unwrap();
    assert_eq!(body["data"]["version"], 2);
    assert_eq!(body["data"]["name"], "Conditional");

    assert_eq!(
        put_with_if_match(&app, &key, "wf1", "W/\"2\"")
            .await
            .status(),
        200
    );
    assert_eq!(
        put_with_if_match(&app, &key, "wf1", "\"2\"").await.status(),
        412
    );
    for malformed in ["**", "\"3", "+3", "3, 4", "v3", ""] {
        let response = put_with_if_match(&app, &key, "wf1", malformed).await;
        assert_eq!(response.status(), 400, "If-Match: {malformed}");
    }
}

/// `page` goes up to the document's `maximum` (past the last page: an empty page); past it,
/// a 422 naming the field, however large the number.
#[tokio::test]
async fn page_is_accepted_up_to_the_documented_maximum_and_named_past_it() {
    let (app, key) = app_with_key().await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    let maximum = document["paths"]["/api/workflows"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "page")
        .unwrap()["schema"]["maximum"]
        .as_u64()
        .unwrap();

    for path in ["/api/workflows", "/api/history"] {
        let last = app.api_get(&key, &format!("{path}?page={maximum}")).await;
        assert_eq!(last.status(), 200, "{path}");
        for beyond in [maximum + 1, u64::MAX] {
            let response = app.api_get(&key, &format!("{path}?page={beyond}")).await;
            assert_eq!(response.status(), 422, "{path}?page={beyond}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_fields(&body), ["page"]);
        }
    }
}

/// `POST /api/analyze` takes exactly one of `workflowId` and `workflow` (the schema's `oneOf`),
/// no other field, and none of them as `null`.
#[tokio::test]
async fn analyze_bodies_are_refused_exactly_where_the_schema_refuses_them() {
    let (app, key) = app_with_key().await;
    let analyze = |body: Value| {
        app.client
            .post(app.url("/api/analyze"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };

    let empty = analyze(json!({})).await.unwrap();
    assert_eq!(empty.status(), 422);
    assert_eq!(error_fields(&empty.json().await.unwrap()), ["workflowId"]);
    let both = analyze(json!({"workflowId": "wf1", "workflow": {}}))
        .await
        .unwrap();
    assert_eq!(both.status(), 422);
    for refused in [
        json!({"workflow": {}, "workflowId": null}),
        json!({"workflow": {}, "locationId": null}),
        json!({"workflow": {}, "extra": 1}),
    ] {
        let response = analyze(refused.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{refused}");
    }
    let not_an_object = analyze(json!({"workflow": null})).await.unwrap();
    assert_eq!(not_an_object.status(), 422);

    // A document only analyzed may lack a name and repeat ids (the analysis reports it)…
    let draft = analyze(json!({"workflow": {"steps": [{"id": "a"}, {"id": "a"}]}}))
        .await
        .unwrap();
    assert_eq!(draft.status(), 200);
    // …but its known fields have the documented types.
    let mistyped = analyze(json!({"workflow": {"steps": [{"id": "a", "else": {}}]}}))
        .await
        .unwrap();
    assert_eq!(mistyped.status(), 422);
    assert_eq!(
        error_fields(&mistyped.json().await.unwrap()),
        ["workflow.steps[0].else"]
    );
}

/// A stored document: ids must be there and not blank (the schema's `required` and
/// `pattern`), and known fields of another type are named rather than dropped.
#[tokio::test]
async fn stored_documents_are_refused_exactly_where_the_schema_refuses_them() {
    let (app, key) = app_with_key().await;
    let mut blank_trigger = sample_workflow("Blank trigger id");
    blank_trigger["triggers"][0]["id"] = json!("");
    let mut spaces = sample_workflow("   ");
    spaces["name"] = json!(" \t ");
    let mut mistyped = sample_workflow("Mistyped");
    mistyped["steps"][0]["name"] = json!(5);
    mistyped["status"] = json!("Published");
    mistyped["triggers"] = json!({});
    let mut nulls = sample_workflow("Nulls");
    nulls["steps"][0]["next"] = Value::Null;
    nulls["settings"] = Value::Null;
    assert_eq!(app.put_workflow(&key, "wf2", &nulls).await.status(), 201);

    for (document, fields) in [
        (blank_trigger, vec!["triggers[0].id"]),
        (spaces, vec!["name"]),
        (mistyped, vec!["status", "triggers", "steps[0].name"]),
    ] {
        let response = app.put_workflow(&key, "wf1", &document).await;
        assert_eq!(response.status(), 422, "{document}");
        assert_eq!(error_fields(&response.json().await.unwrap()), fields);
    }
}

/// Numbers at the ends of the f64 range come back from Postgres' `jsonb` as long decimals;
/// they are read back exactly (a stored document never becomes unreadable).
#[tokio::test]
async fn extreme_numbers_in_a_document_are_read_back_unchanged() {
    let (app, key) = app_with_key().await;
    let mut document = sample_workflow("Extremes");
    document["steps"][0]["config"]["numbers"] =
        json!([f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, 1e300, -0.5]);

    assert_eq!(app.put_workflow(&key, "wf1", &document).await.status(), 201);
    let read = app.api_get(&key, "/api/workflows/wf1").await;
    assert_eq!(read.status(), 200);
    let body: Value = read.json().await.unwrap();
    assert_eq!(
        body["data"]["definition"]["steps"][0]["config"]["numbers"],
        document["steps"][0]["config"]["numbers"]
    );
    let analysis = app.api_get(&key, "/api/workflows/wf1/analysis").await;
    assert_eq!(analysis.status(), 200);
}

/// `grade` is one or more grade names, comma-separated, any ASCII case, spaces around them:
/// the document's `pattern`, no more and no less.
#[tokio::test]
async fn grade_is_accepted_exactly_as_its_pattern_says() {
    let (app, key) = app_with_key().await;
    for accepted in [
        "Good",
        "good,%20CRITICAL%20",
        "Needs%20Attention,high%20risk",
    ] {
        let response = app
            .api_get(&key, &format!("/api/workflows?grade={accepted}"))
            .await;
        assert_eq!(response.status(), 200, "grade={accepted}");
    }
    for refused in ["", "%09Good", "Good,", "Bad"] {
        let response = app
            .api_get(&key, &format!("/api/workflows?grade={refused}"))
            .await;
        assert_eq!(response.status(), 422, "grade={refused}");
    }
    let include = app.api_get(&key, "/api/workflows?include=").await;
    assert_eq!(include.status(), 422);
}

/// A location's name is stored trimmed: 1–200 characters after trimming (the schema's
/// pattern), whatever white space surrounds it.
#[tokio::test]
async fn a_location_name_is_checked_after_trimming() {
    let app = spawn_app().await;
    for (n, (name, status)) in [
        (" ".to_owned(), 422),
        (format!(" {} ", "n".repeat(201)), 422),
        (format!("  {}\t", "n".repeat(200)), 201),
    ]
    .into_iter()
    .enumerate()
    {
        let response = app
            .client
            .post(app.url("/internal/locations"))
            .json(&json!({"id": format!("locName{n}"), "name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "name of {} chars", name.len());
    }
}

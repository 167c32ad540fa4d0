//! Every text column a client's input reaches: a NUL and the first over-long value are a 422
//! naming the field, nothing is stored, and the longest allowed value is stored.

use ghl_workflow_debugger::http::error::ApiError;
use ghl_workflow_debugger::repository::RepositoryError;
use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app, TestApp};

/// Where a value goes in.
#[derive(Clone, Copy, Debug)]
enum Route {
    /// `PUT /api/workflows/{id}` of a new id.
    CreateWorkflow,
    /// `PUT /api/workflows/{id}` over a stored one.
    ReplaceWorkflow,
    /// `POST /internal/locations`.
    CreateLocation,
    /// `POST /api/workflows/import` of a GoHighLevel document whose id is the case's.
    Import,
}

struct Case {
    /// The `table.column` the value would be stored in.
    column: &'static str,
    route: Route,
    /// The workflow id (path) or the location id.
    id: String,
    body: Value,
    /// `None`: accepted (the longest value allowed); `Some(field)`: 422 naming it.
    refused: Option<&'static str>,
}

fn workflow_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut document = sample_workflow("Stored text");
    edit(&mut document);
    document
}

fn cases() -> Vec<Case> {
    let wf = |column, route, id: &str, body, refused| Case {
        column,
        route,
        id: id.to_owned(),
        body,
        refused,
    };
    let loc = |id: &str, name: &str, refused| Case {
        column: if refused == Some("id") {
            "locations.id"
        } else {
            "locations.name"
        },
        route: Route::CreateLocation,
        id: id.to_owned(),
        body: json!({"id": id, "name": name}),
        refused,
    };
    let doc = sample_workflow;
    vec![
        // workflows.id: the path.
        wf(
            "workflows.id",
            Route::CreateWorkflow,
            "wf%00x",
            doc("N"),
            Some("id"),
        ),
        wf(
            "workflows.id",
            Route::CreateWorkflow,
            &"i".repeat(129),
            doc("N"),
            Some("id"),
        ),
        wf(
            "workflows.id",
            Route::CreateWorkflow,
            &"i".repeat(128),
            doc("N"),
            None,
        ),
        // workflows.name: counted in characters, as Postgres `length()` does.
        wf(
            "workflows.name",
            Route::CreateWorkflow,
            "n1",
            doc("a\u{0}b"),
            Some("name"),
        ),
        wf(
            "workflows.name",
            Route::CreateWorkflow,
            "n2",
            doc(&"é".repeat(501)),
            Some("name"),
        ),
        wf(
            "workflows.name",
            Route::CreateWorkflow,
            "n3",
            doc(&"é".repeat(500)),
            None,
        ),
        wf(
            "workflows.name",
            Route::ReplaceWorkflow,
            "stored",
            doc("x\u{0}"),
            Some("name"),
        ),
        wf(
            "workflows.name",
            Route::ReplaceWorkflow,
            "stored",
            doc(&"n".repeat(501)),
            Some("name"),
        ),
        // workflows.status
        wf(
            "workflows.status",
            Route::CreateWorkflow,
            "s1",
            workflow_with(|d| d["status"] = json!("draft\u{0}")),
            Some("status"),
        ),
        // workflows.definition: every string and key of the jsonb.
        wf(
            "workflows.definition",
            Route::CreateWorkflow,
            "d1",
            workflow_with(|d| {
                d["steps"][2]["config"]["body"] = json!("hello\u{0}world");
            }),
            Some("steps[2].config.body"),
        ),
        wf(
            "workflows.definition",
            Route::CreateWorkflow,
            "d2",
            workflow_with(|d| {
                d["steps"][0]["config"]["x\u{0}"] = json!(1);
            }),
            Some(r#"steps[0].config["x\u0000"]"#),
        ),
        wf(
            "workflows.definition",
            Route::CreateWorkflow,
            "d3",
            workflow_with(|d| {
                d["triggers"][0]["filters"]["tags"] = json!(["a", {"deep": "\u{0}"}]);
            }),
            Some("triggers[0].filters.tags[1].deep"),
        ),
        wf(
            "workflows.definition",
            Route::CreateWorkflow,
            "d4",
            workflow_with(|d| {
                d["settings"]["timeWindow"]["timezone"] = json!("UTC\u{0}");
            }),
            Some("settings.timeWindow.timezone"),
        ),
        wf(
            "workflows.definition",
            Route::CreateWorkflow,
            "d5",
            workflow_with(|d| {
                d["steps"][1]["type"] = json!("teleport\u{0}");
                d["steps"][1]["next"] = json!("s3\u{0}");
            }),
            Some("steps[1].type"),
        ),
        wf(
            "workflows.definition",
            Route::ReplaceWorkflow,
            "stored",
            workflow_with(|d| {
                d["steps"][0]["name"] = json!("\u{0}");
            }),
            Some("steps[0].name"),
        ),
        // Other control characters and astral-plane text are stored as they are.
        wf(
            "workflows.definition",
            Route::CreateWorkflow,
            "d6",
            workflow_with(|d| {
                d["steps"][0]["config"]["body"] = json!("\u{1}\u{1f}\u{7f}😀\u{10ffff}");
            }),
            None,
        ),
        // workflows.source_json: the imported text (escapes stay escapes, so it always holds);
        // what it imports to is checked as every stored document is, by its path there.
        wf(
            "workflows.source_json",
            Route::Import,
            "g1",
            ghl_with("g1", "n", "a\u{0}b"),
            Some("steps[0].config.body"),
        ),
        wf(
            "workflows.source_json",
            Route::Import,
            "g2",
            ghl_with("g2", "n\u{0}", "b"),
            Some("name"),
        ),
        wf(
            "workflows.source_json",
            Route::Import,
            "g3",
            ghl_with("g3", "n", "\u{1}\u{1f}\u{7f}😀\u{10ffff}"),
            None,
        ),
        // locations.id and locations.name (name counted in characters, after trimming).
        loc("loc\u{0}", "L", Some("id")),
        loc(&"l".repeat(65), "L", Some("id")),
        loc(&"l".repeat(64), "L", None),
        loc("locname1", "a\u{0}", Some("name")),
        loc("locname2", &"é".repeat(201), Some("name")),
        loc("locname3", &format!(" {} ", "é".repeat(200)), None),
    ]
}

/// A flattened GoHighLevel document with one sms step saying `body`.
fn ghl_with(id: &str, name: &str, body: &str) -> Value {
    json!({"id": id, "name": name, "status": "draft",
        "templates": [{"id": "t1", "type": "sms", "attributes": {"body": body}}]})
}

/// Columns of the schema that take text from no request, and why.
const NOT_FROM_INPUT: &[(&str, &str)] = &[
    ("analyses.location_id", "the caller's location"),
    ("analyses.workflow_id", "a stored workflow's id"),
    ("analyses.rules_version", "the server's rule set version"),
    (
        "analyses.result",
        "computed from a stored workflow, which holds no NUL (ad-hoc documents are not stored)",
    ),
    (
        "api_keys.label",
        "'initial', or the CLI's --label (checked there; an argument cannot hold a NUL)",
    ),
    ("api_keys.location_id", "a stored location's id"),
    ("workflows.location_id", "the caller's location"),
    (
        "subscriptions.location_id",
        "webhooks: an existing location only",
    ),
    ("subscriptions.plan", "webhooks: one of the plans, parsed"),
    (
        "subscriptions.status",
        "webhooks: one of the statuses, parsed",
    ),
    ("webhook_events.id", "webhooks (validated with the event)"),
    ("webhook_events.type", "webhooks (validated with the event)"),
    (
        "webhook_events.location_id",
        "webhooks (validated with the event)",
    ),
    (
        "workflow_tombstones.location_id",
        "a deleted workflow's row",
    ),
    (
        "workflow_tombstones.workflow_id",
        "a deleted workflow's row",
    ),
];

async fn send(app: &TestApp, key: &str, case: &Case) -> reqwest::Response {
    let request = match case.route {
        Route::CreateWorkflow | Route::ReplaceWorkflow => app
            .client
            .put(app.url(&format!("/api/workflows/{}", case.id)))
            .bearer_auth(key),
        Route::CreateLocation => app.client.post(app.url("/internal/locations")),
        Route::Import => app
            .client
            .post(app.url("/api/workflows/import"))
            .bearer_auth(key),
    };
    app.send(request.json(&case.body)).await
}

/// What is stored under the case's id, to compare before and after a refusal.
async fn stored(pool: &sqlx::PgPool, case: &Case) -> Option<String> {
    let sql = match case.route {
        Route::CreateLocation => "select name from locations where id = $1",
        _ => "select name || ' v' || version from workflows where id = $1",
    };
    let id = case.id.replace("%00", "\u{0}").replace('\u{0}', "?");
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_text_column_refuses_nul_and_over_long_values_with_a_422_naming_the_field() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let put = app
        .put_workflow(&key, "stored", &sample_workflow("Stored"))
        .await;
    assert_eq!(put.status(), 201);
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();

    for case in cases() {
        let before = stored(&pool, &case).await;
        let response = send(&app, &key, &case).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        let after = stored(&pool, &case).await;
        let label = format!("{} via {:?} ({})", case.column, case.route, case.id);
        match case.refused {
            Some(field) => {
                assert_eq!(status, 422, "{label}: {body}");
                assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{label}");
                let fields: Vec<&str> = body["error"]["details"]["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["field"].as_str().unwrap())
                    .collect();
                assert!(fields.contains(&field), "{label}: {fields:?}");
                assert_eq!(before, after, "{label}: something was stored");
            }
            None => {
                assert!(status == 200 || status == 201, "{label}: {status} {body}");
                assert!(after.is_some(), "{label}: nothing stored");
            }
        }
    }
    // The replacements refused above left the stored workflow at its first version.
    let version: i64 = sqlx::query_scalar("select version from workflows where id = 'stored'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, 1);
    pool.close().await;
}

/// A new text column fails here until it gets a case above or a reason in `NOT_FROM_INPUT`.
#[tokio::test]
async fn every_text_column_of_the_schema_is_covered() {
    let app = spawn_app().await;
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    let mut columns: Vec<String> = sqlx::query_scalar(
        r#"select table_name::text || '.' || column_name::text
           from information_schema.columns
           where table_schema = 'public' and table_name not like '\_sqlx%'
             and data_type in ('text', 'jsonb', 'json', 'character varying', 'character')
           order by 1"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let cases = cases();
    columns.retain(|column| {
        !cases.iter().any(|case| case.column == column)
            && !NOT_FROM_INPUT.iter().any(|(known, _)| known == column)
    });
    assert!(
        columns.is_empty(),
        "text columns with no case in tests/api/stored_text.rs: {columns:?}"
    );
}

#[tokio::test]
async fn a_nul_in_a_document_that_is_only_analyzed_is_not_an_error() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;
    let document = workflow_with(|d| d["steps"][0]["config"]["body"] = json!("a\u{0}b"));
    let response = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&key)
                .json(&json!({"workflow": document})),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// The net behind validation: a value the database refuses anyway is a 422, never a 500.
#[tokio::test]
async fn database_refusals_of_a_value_are_422_naming_the_column() {
    let app = spawn_app().await;
    app.create_location("locA").await;
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    let insert = |name: String, definition: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "insert into workflows (location_id, id, name, status, version, definition)
                 values ('locA', 'w', $1, 'draft', 1, $2::jsonb)",
            )
            .bind(name)
            .bind(definition)
            .execute(&pool)
            .await
            .unwrap_err()
        }
    };
    let too_long = insert("n".repeat(501), "{}").await;
    let nul_in_text = insert("a\u{0}b".to_owned(), "{}").await;
    let nul_in_jsonb = insert("n".to_owned(), r#"{"a": "\u0000"}"#).await;
    pool.close().await;

    let refused = |error: sqlx::Error| ApiError::from(RepositoryError::Database(error));
    let too_long = refused(too_long);
    assert_eq!(actix_web::ResponseError::status_code(&too_long), 422);
    match &too_long {
        ApiError::Validation(errors) => assert_eq!(errors[0].field, "name"),
        other => panic!("{other:?}"),
    }
    for error in [nul_in_text, nul_in_jsonb] {
        let error = refused(error);
        assert_eq!(
            actix_web::ResponseError::status_code(&error),
            422,
            "{error:?}"
        );
    }
}

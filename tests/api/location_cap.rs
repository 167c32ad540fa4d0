//! A location past `MAX_LOCATION_WORKFLOWS`: its analysis reads the definitions of the first
//! 2,000 workflows (by id) only, one at a time, and still reports every workflow as existing.

use ghl_workflow_debugger::domain::analysis::location::MAX_LOCATION_WORKFLOWS;
use ghl_workflow_debugger::repository::postgres::{Db, PgWorkflowRepository};
use ghl_workflow_debugger::repository::{LocationRow, WorkflowRepository};
use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app_with};

/// Workflows stored past the cap (all but one published; "Z-beyond", the last by id, a draft).
const EXTRA: usize = 5;

/// `A0000` (through the API: it adds contacts to `Z-beyond`), then the cap's worth of plain
/// workflows and `EXTRA` more straight in Postgres, the last of them the draft `Z-beyond`.
async fn location_past_the_cap(pool: &sqlx::PgPool) {
    let plain = sample_workflow("plain");
    sqlx::query(
        "insert into workflows (location_id, id, name, status, version, definition, step_count,
                                trigger_count)
         select 'locA', 'W' || lpad(g::text, 5, '0'), 'plain', 'published', 1, $1, 3, 1
         from generate_series(1, $2) g",
    )
    .bind(&plain)
    .bind(i32::try_from(MAX_LOCATION_WORKFLOWS + EXTRA - 2).unwrap())
    .execute(pool)
    .await
    .unwrap();
    let mut draft = sample_workflow("beyond");
    draft["status"] = json!("draft");
    sqlx::query(
        "insert into workflows (location_id, id, name, status, version, definition)
         values ('locA', 'Z-beyond', 'beyond', 'draft', 1, $1)",
    )
    .bind(&draft)
    .execute(pool)
    .await
    .unwrap();
}

fn adds_to_beyond() -> Value {
    json!({"name": "adder", "status": "published", "start": "s1",
        "triggers": [{"id": "t", "type": "form_submitted"}],
        "steps": [{"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "Z-beyond"}}]})
}

#[tokio::test]
async fn a_location_past_the_cap_reports_the_cap_and_reads_only_the_caps_definitions() {
    let app = spawn_app_with(|env| {
        env.insert("REQUEST_TIMEOUT_MS".into(), "30000".into());
        env.insert("ANALYSIS_BUDGET_MS".into(), "20000".into());
    })
    .await;
    let key = app.create_location("locA").await;
    assert_eq!(
        app.put_workflow(&key, "A0000", &adds_to_beyond())
            .await
            .status(),
        201
    );
    let pool = sqlx::PgPool::connect(app.database_url()).await.unwrap();
    location_past_the_cap(&pool).await;
    let total = MAX_LOCATION_WORKFLOWS + EXTRA;

    // What the analysis reads: every workflow, but a definition only for the first 2,000.
    let repository = PgWorkflowRepository::new(Db::direct(pool.clone()));
    let (rows_tx, mut rows_rx) = tokio::sync::mpsc::channel(4);
    let collect = async move {
        let mut rows = Vec::new();
        while let Some(row) = rows_rx.recv().await {
            rows.push(row);
        }
        rows
    };
    let read = async move {
        repository
            .location_workflows("locA", MAX_LOCATION_WORKFLOWS, &rows_tx)
            .await
    };
    let (read, rows) = tokio::join!(read, collect);
    read.expect("read");
    let response = app.api_get(&key, "/api/analysis/location").await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    pool.close().await;

    assert_eq!(rows.first(), Some(&LocationRow::Restart));
    let workflows: Vec<(&str, bool)> = rows
        .iter()
        .filter_map(|row| match row {
            LocationRow::Workflow { id, definition, .. } => {
                Some((id.as_str(), definition.is_some()))
            }
            LocationRow::Restart => None,
        })
        .collect();
    assert_eq!(workflows.len(), total);
    assert_eq!(
        workflows.iter().filter(|(_, with)| *with).count(),
        MAX_LOCATION_WORKFLOWS
    );
    assert_eq!(workflows[0], ("A0000", true));
    assert_eq!(workflows[total - 1], ("Z-beyond", false));

    assert_eq!(status, 200, "{body}");
    let report = &body["data"];
    assert_eq!(
        report["limits"],
        json!({"workflowsConsidered": MAX_LOCATION_WORKFLOWS, "workflowsTotal": total,
               "edgesConsidered": 0, "truncated": true})
    );
    assert_eq!(report["workflows"], total);
    // Z-beyond is past the cap, but it exists: a draft target, not a missing one.
    let rules: Vec<&str> = report["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["draft-target-workflow"], "{report}");
}

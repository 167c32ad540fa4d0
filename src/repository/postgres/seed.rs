//! The demo data of `make dev` (`cli::seed`), written idempotently: what exists is kept.

use super::Db;
use crate::repository::NewWorkflow;

/// One location, its demo key and its workflows (id, §7 document), and workflows imported
/// from GoHighLevel builder JSON (id, the stored workflow with its original).
pub struct DemoData {
    pub location_id: &'static str,
    pub location_name: &'static str,
    pub key_hash: Vec<u8>,
    pub workflows: Vec<(&'static str, serde_json::Value)>,
    pub imported: Vec<(String, NewWorkflow)>,
}

/// Inserts what is missing of `demo`, in one transaction (begun as pooler mode begins them:
/// its named statements must not meet those another client left on the server session).
pub async fn insert_demo_data(db: &Db, demo: &DemoData) -> Result<(), sqlx::Error> {
    let mut conn = super::writable(db).await?;
    let mut tx = conn.begin().await?;
    sqlx::query!(
        r#"insert into locations (id, name) values ($1, $2)
           on conflict (id) do nothing"#,
        demo.location_id,
        demo.location_name,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        r#"insert into api_keys (location_id, key_hash, label) values ($1, $2, 'demo')
           on conflict (key_hash) do nothing"#,
        demo.location_id,
        &demo.key_hash,
    )
    .execute(&mut *tx)
    .await?;
    for (id, definition) in &demo.workflows {
        insert_workflow(&mut tx, demo.location_id, id, definition).await?;
    }
    for (id, workflow) in &demo.imported {
        insert_imported(&mut tx, demo.location_id, id, workflow).await?;
    }
    tx.commit().await
}

/// An imported workflow as `POST /api/workflows/import` stores it: definition, original and
/// source version.
async fn insert_imported(
    tx: &mut sqlx::PgConnection,
    location_id: &str,
    id: &str,
    workflow: &NewWorkflow,
) -> Result<(), sqlx::Error> {
    let source = workflow.source.as_ref();
    sqlx::query!(
        r#"insert into workflows (location_id, id, name, status, version, definition, step_count,
                                  trigger_count, source_json, source_version)
           values ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9)
           on conflict (location_id, id) do nothing"#,
        location_id,
        id,
        &workflow.name,
        workflow.status,
        &workflow.definition,
        workflow.step_count,
        workflow.trigger_count,
        source.map(|source| source.json.as_str()),
        source.and_then(|source| source.version),
    )
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_workflow(
    tx: &mut sqlx::PgConnection,
    location_id: &str,
    id: &str,
    definition: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let count = |field: &str| {
        definition
            .get(field)
            .and_then(serde_json::Value::as_array)
            .map_or(0, |items| i32::try_from(items.len()).unwrap_or(i32::MAX))
    };
    sqlx::query!(
        r#"insert into workflows (location_id, id, name, status, version, definition, step_count, trigger_count)
           values ($1, $2, $3, $4, 1, $5, $6, $7)
           on conflict (location_id, id) do nothing"#,
        location_id,
        id,
        definition
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(id),
        definition
            .get("status")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("draft"),
        definition,
        count("steps"),
        count("triggers"),
    )
    .execute(tx)
    .await?;
    Ok(())
}

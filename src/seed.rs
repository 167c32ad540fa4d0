//! Demo data for `make dev`: one location, a known API key and a handful of workflows,
//! some healthy and some broken in the ways the analyzer reports. Idempotent.

use crate::config::Settings;
use crate::database::{self, DatabaseError};
use crate::domain::api_key::api_key_hash;

pub const DEMO_LOCATION_ID: &str = "demoLocAcme7Hq2Vx9Lp4Tz";
pub const DEMO_LOCATION_NAME: &str = "Acme Roofing (demo)";
/// A fixed key so that `make dev` can print it on every run without adding keys.
pub const DEMO_API_KEY: &str = "gwd_demo_4f7c2a9e1b6d3f8a0c5e7b9d2a4f6c8e";

const DEMO_WORKFLOWS: &[(&str, &str)] = &[
    (
        "new-lead-nurture",
        include_str!("../demo/workflows/new-lead-nurture.json"),
    ),
    (
        "appointment-reminder",
        include_str!("../demo/workflows/appointment-reminder.json"),
    ),
    (
        "spinning-follow-up",
        include_str!("../demo/workflows/spinning-follow-up.json"),
    ),
    (
        "hot-lead-retrigger",
        include_str!("../demo/workflows/hot-lead-retrigger.json"),
    ),
    (
        "broken-draft",
        include_str!("../demo/workflows/broken-draft.json"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("demo data is for development only (APP_ENV=production)")]
    Production,
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("could not seed the demo data: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("demo workflow {0} is not valid JSON: {1}")]
    Document(&'static str, serde_json::Error),
}

pub async fn seed_demo(settings: &Settings) -> Result<(), SeedError> {
    if settings.is_production() {
        return Err(SeedError::Production);
    }
    database::ensure_database_exists(&settings.database).await?;
    let pool = database::connect_lazy(&settings.database)?;
    database::migrate(&pool, &settings.database).await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        r#"insert into locations (id, name) values ($1, $2)
           on conflict (id) do nothing"#,
    )
    .bind(DEMO_LOCATION_ID)
    .bind(DEMO_LOCATION_NAME)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"insert into api_keys (location_id, key_hash, label) values ($1, $2, 'demo')
           on conflict (key_hash) do nothing"#,
    )
    .bind(DEMO_LOCATION_ID)
    .bind(api_key_hash(DEMO_API_KEY))
    .execute(&mut *tx)
    .await?;
    for (id, text) in DEMO_WORKFLOWS {
        let definition: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SeedError::Document(id, e))?;
        insert_demo_workflow(&mut tx, id, &definition).await?;
    }
    tx.commit().await?;
    pool.close().await;
    print_demo_banner(settings);
    Ok(())
}

async fn insert_demo_workflow(
    tx: &mut sqlx::PgConnection,
    id: &str,
    definition: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let count = |field: &str| {
        definition
            .get(field)
            .and_then(serde_json::Value::as_array)
            .map_or(0, |items| i32::try_from(items.len()).unwrap_or(i32::MAX))
    };
    sqlx::query(
        r#"insert into workflows (location_id, id, name, status, version, definition, step_count, trigger_count)
           values ($1, $2, $3, $4, 1, $5, $6, $7)
           on conflict (location_id, id) do nothing"#,
    )
    .bind(DEMO_LOCATION_ID)
    .bind(id)
    .bind(definition.get("name").and_then(serde_json::Value::as_str).unwrap_or(id))
    .bind(definition.get("status").and_then(serde_json::Value::as_str).unwrap_or("draft"))
    .bind(definition)
    .bind(count("steps"))
    .bind(count("triggers"))
    .execute(tx)
    .await?;
    Ok(())
}

fn print_demo_banner(settings: &Settings) {
    let base = format!("http://127.0.0.1:{}", settings.port);
    println!("Demo data ready.");
    println!("  location : {DEMO_LOCATION_ID} ({DEMO_LOCATION_NAME})");
    println!("  api key  : {DEMO_API_KEY}");
    println!("  health   : {base}/health/detailed");
    println!("  try      : curl -H 'Authorization: Bearer {DEMO_API_KEY}' {base}/api/workflows");
}

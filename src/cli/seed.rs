//! Demo data for `make dev`: one location, a known API key and a handful of workflows,
//! some healthy and some broken in the ways the analyzer reports. Idempotent.

use crate::config::Settings;
use crate::domain::api_key::api_key_hash;
use crate::repository::postgres::database::{self, DatabaseError};
use crate::repository::postgres::seed::{insert_demo_data, DemoData};

pub const DEMO_LOCATION_ID: &str = "demoLocAcme7Hq2Vx9Lp4Tz";
pub const DEMO_LOCATION_NAME: &str = "Acme Roofing (demo)";
/// A fixed key so that `make dev` can print it on every run without adding keys.
pub const DEMO_API_KEY: &str = "gwd_demo_4f7c2a9e1b6d3f8a0c5e7b9d2a4f6c8e";

const DEMO_WORKFLOWS: &[(&str, &str)] = &[
    (
        "new-lead-nurture",
        include_str!("../../demo/workflows/new-lead-nurture.json"),
    ),
    (
        "appointment-reminder",
        include_str!("../../demo/workflows/appointment-reminder.json"),
    ),
    (
        "spinning-follow-up",
        include_str!("../../demo/workflows/spinning-follow-up.json"),
    ),
    (
        "hot-lead-retrigger",
        include_str!("../../demo/workflows/hot-lead-retrigger.json"),
    ),
    (
        "broken-draft",
        include_str!("../../demo/workflows/broken-draft.json"),
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
    let mut workflows = Vec::with_capacity(DEMO_WORKFLOWS.len());
    for (id, text) in DEMO_WORKFLOWS {
        let definition: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SeedError::Document(id, e))?;
        workflows.push((*id, definition));
    }
    let demo = DemoData {
        location_id: DEMO_LOCATION_ID,
        location_name: DEMO_LOCATION_NAME,
        key_hash: api_key_hash(DEMO_API_KEY),
        workflows,
    };
    let seeded = insert_demo_data(&pool, &demo).await;
    pool.close().await;
    seeded?;
    print_demo_banner(settings);
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

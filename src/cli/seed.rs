//! Demo data for `make dev`: one location, a known API key and a handful of workflows,
//! some healthy and some broken in the ways the analyzer reports (three of them imported from
//! GoHighLevel builder JSON, as `POST /api/workflows/import` stores them). Idempotent.

use crate::config::Settings;
use crate::domain::api_key::api_key_hash;
use crate::domain::limits::DEFAULT_MAX_STEPS;
use crate::repository::postgres::database::{self, DatabaseError};
use crate::repository::postgres::seed::{insert_demo_data, DemoData};
use crate::repository::postgres::Db;
use crate::repository::NewWorkflow;
use crate::services::ghl_import::prepare_body;

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

/// GoHighLevel builder JSON (`demo/ghl/`), stored as `POST /api/workflows/import` stores it:
/// the missed-call example of `../shared/ghl/`, an old copy of it that loops without a wait
/// and has no active trigger, and a lead workflow posting to a CRM over plain http.
const DEMO_GHL_WORKFLOWS: &[(&str, &str)] = &[
    (
        "missed-call-text-back",
        include_str!("../../demo/ghl/missed-call-text-back.json"),
    ),
    (
        "missed-call-old-copy",
        include_str!("../../demo/ghl/missed-call-old-copy.json"),
    ),
    (
        "new-lead-to-crm",
        include_str!("../../demo/ghl/new-lead-to-crm.json"),
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
    #[error("demo GoHighLevel workflow {0} does not import: {1}")]
    Import(&'static str, String),
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
        imported: demo_imports()?,
    };
    // Honours DATABASE_POOLER like the server (migrations above went direct).
    let seeded = insert_demo_data(&Db::new(pool.clone(), &settings.database), &demo).await;
    pool.close().await;
    seeded?;
    print_demo_banner(settings);
    Ok(())
}

/// The demo GoHighLevel workflows, each read and checked as the import route does.
fn demo_imports() -> Result<Vec<(String, NewWorkflow)>, SeedError> {
    let mut imported = Vec::with_capacity(DEMO_GHL_WORKFLOWS.len());
    for (name, text) in DEMO_GHL_WORKFLOWS {
        let (_, documents) = prepare_body(text.as_bytes(), DEMO_LOCATION_ID, DEFAULT_MAX_STEPS)
            .map_err(|e| SeedError::Import(name, e.to_string()))?;
        for (_, document) in documents {
            let prepared = document.map_err(|e| SeedError::Import(name, e.to_string()))?;
            imported.push((prepared.id, prepared.workflow));
        }
    }
    Ok(imported)
}

fn print_demo_banner(settings: &Settings) {
    let base = format!("http://127.0.0.1:{}", settings.port);
    println!("Demo data ready.");
    println!("  location : {DEMO_LOCATION_ID} ({DEMO_LOCATION_NAME})");
    println!("  api key  : {DEMO_API_KEY}");
    println!("  health   : {base}/health/detailed");
    println!("  try      : curl -H 'Authorization: Bearer {DEMO_API_KEY}' {base}/api/workflows");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_ghl_workflow_imports_for_the_demo_location() {
        let imported = demo_imports().expect("the demo imports");
        let ids: Vec<&str> = imported.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "9a0c1e2f-3b4d-4c5e-8f6a-7b8c9d0e1f2a",
                "5d1f0b7a-6c2e-4a9d-8b3f-2e7c9a1d4f60",
                "7e3a9c51-2b4d-4f6e-9a8c-1d5b7f9e3a20",
            ]
        );
        for (_, workflow) in &imported {
            let source = workflow.source.as_ref().expect("an original");
            assert!(source.version.is_some());
            assert!(DEMO_GHL_WORKFLOWS
                .iter()
                .any(|(_, text)| *text == source.json));
        }
    }
}

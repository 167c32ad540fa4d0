//! Operator subcommands: locations and API keys, printed once on creation.

use std::sync::Arc;
use std::time::Duration;

use crate::api_keys::{api_key_hash, generate_api_key};
use crate::cache::Cache;
use crate::config::Settings;
use crate::database;
use crate::domain::stored_text::{check_nul, check_text, LOCATION_NAME_CHARS};
use crate::repository::cached::{CachedApiKeyRepository, ReadThrough};
use crate::repository::postgres::{PgApiKeyRepository, PgLocationRepository};
use crate::repository::{ApiKeyRepository, LocationRepository, RepositoryError};
use crate::routes::is_valid_location_id;
use crate::startup::cache_settings;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] database::DatabaseError),
    #[error("{0}")]
    Repository(String),
}

impl From<RepositoryError> for AdminError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Database(error) => {
                Self::Repository(format!("database error: {error}"))
            }
            other => Self::Repository(other.to_string()),
        }
    }
}

pub async fn create_location(settings: &Settings, id: &str, name: &str) -> Result<(), AdminError> {
    let name = name.trim();
    if !is_valid_location_id(id) {
        return Err(AdminError::Invalid(
            "--id must be 1-64 letters, digits, '_' or '-' (a GoHighLevel location id)".to_owned(),
        ));
    }
    if let Some(error) = check_text("--name", name, LOCATION_NAME_CHARS) {
        return Err(AdminError::Invalid(format!(
            "{} {}",
            error.field, error.message
        )));
    }
    let pool = database::connect_lazy(&settings.database)?;
    let key = generate_api_key();
    let location = PgLocationRepository::new(pool.clone())
        .create_with_key(id, name, &api_key_hash(&key))
        .await;
    pool.close().await;
    let location = location?;
    println!("created location {} ({})", location.id, location.name);
    println!("api key (shown once, store it now): {key}");
    Ok(())
}

pub async fn create_key(
    settings: &Settings,
    location_id: &str,
    label: &str,
) -> Result<(), AdminError> {
    if let Some(error) = check_nul("--label", label) {
        return Err(AdminError::Invalid(format!(
            "{} {}",
            error.field, error.message
        )));
    }
    let pool = database::connect_lazy(&settings.database)?;
    let key = generate_api_key();
    let created = PgApiKeyRepository::new(pool.clone())
        .create(location_id, &api_key_hash(&key), label)
        .await;
    pool.close().await;
    let key_id = created?;
    println!("created key {key_id} for location {location_id}");
    println!("api key (shown once, store it now): {key}");
    Ok(())
}

/// Revokes through the cache, so every running instance forgets the key at once.
pub async fn revoke_key(settings: &Settings, key_id: &str) -> Result<(), AdminError> {
    let key_id = uuid::Uuid::parse_str(key_id).map_err(|_| {
        AdminError::Invalid("--id must be the key id (a UUID) printed at creation".to_owned())
    })?;
    let pool = database::connect_lazy(&settings.database)?;
    let cache = Cache::new(cache_settings(settings), &prometheus::Registry::new())
        .map_err(|error| AdminError::Repository(format!("cache: {error}")))?;
    if settings.cache.topology.is_some() && !cache.wait_ready(Duration::from_secs(3)).await {
        log::warn!(
            "Redis did not answer; running instances forget the key when their cached lookup expires"
        );
    }
    let keys = CachedApiKeyRepository::new(
        Arc::new(PgApiKeyRepository::new(pool.clone())),
        ReadThrough::new(cache.clone(), settings.request_timeout),
    );
    let revoked = keys.revoke(key_id).await;
    cache.shutdown().await;
    pool.close().await;
    revoked?;
    println!("revoked key {key_id}");
    Ok(())
}

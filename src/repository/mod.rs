//! Data access behind traits: Postgres implementations in `postgres/`; handlers only see the
//! traits, so a caching decorator can stand in front of them.

pub mod postgres;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Errors of the data layer; mapped to HTTP in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uninstalled_at: Option<DateTime<Utc>>,
}

/// A location and the API key created with it (shown once).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedLocation {
    pub location: Location,
    pub api_key: String,
}

#[async_trait::async_trait]
pub trait LocationRepository: Send + Sync {
    /// Creates a location with its first API key, atomically.
    async fn create_with_key(
        &self,
        id: &str,
        name: &str,
        key_hash: &[u8],
    ) -> Result<Location, RepositoryError>;
}

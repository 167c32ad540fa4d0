//! The answers of `/health`, `/health/detailed` and `/ready`, built from the shared probe
//! (`services::health_probe`) and the state.

use serde::Serialize;

use crate::cache::HealthStatus;
pub use crate::services::health_probe::{MemoryUsage, Status, PROBE_INTERVAL};
use crate::state::AppState;

pub const SERVICE_NAME: &str = "ghl-workflow-debugger";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /health` (no envelope).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub struct Identity {
    pub status: Status,
    pub service: &'static str,
    pub version: &'static str,
    #[schema(format = DateTime)]
    pub timestamp: String,
    #[schema(schema_with = environment_schema)]
    pub environment: &'static str,
}

/// `checks.database`: Postgres answers or not (never `degraded`).
fn database_status_schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::string_enum(["healthy", "unhealthy"])
}

/// `APP_ENV`'s values.
fn environment_schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::string_enum(["development", "production"])
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = HealthChecks)]
pub struct Checks {
    #[schema(schema_with = database_status_schema)]
    pub database: Status,
    pub cache: crate::cache::CacheHealth,
    pub memory: MemoryUsage,
    /// Seconds since the instance started.
    pub uptime: u64,
}

/// `GET /health/detailed` (no envelope).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = HealthDetailed)]
pub struct DetailedHealth {
    #[serde(flatten)]
    pub identity: Identity,
    pub checks: Checks,
}

pub fn identity(state: &AppState, status: Status) -> Identity {
    Identity {
        status,
        service: SERVICE_NAME,
        version: VERSION,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        environment: state.settings.environment.as_str(),
    }
}

/// The whole report: unhealthy only when Postgres is down; a degraded cache keeps the
/// instance in the load balancer. Node addresses only for operators.
pub async fn detailed(state: &AppState, operator: bool) -> DetailedHealth {
    let probed = state.health.current(&state.db, &state.cache).await;
    let database = probed.database;
    let cache = if operator {
        probed.cache.clone()
    } else {
        probed.cache.clone().without_addresses()
    };
    let overall = match (database, cache.status) {
        (Status::Unhealthy, _) => Status::Unhealthy,
        (_, HealthStatus::Healthy) => Status::Healthy,
        (_, HealthStatus::Degraded) => Status::Degraded,
    };
    DetailedHealth {
        identity: identity(state, overall),
        checks: Checks {
            database,
            cache,
            memory: probed.memory.clone(),
            uptime: state.started_at.elapsed().as_secs(),
        },
    }
}

/// `/ready`: Postgres answers, from the same shared probe.
pub async fn ready(state: &AppState) -> bool {
    state.health.current(&state.db, &state.cache).await.database == Status::Healthy
}

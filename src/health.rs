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
    /// The region's read replica, when one is configured (`DATABASE_READ_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaCheck>,
    pub memory: MemoryUsage,
    /// Seconds since the instance started.
    pub uptime: u64,
}

/// `checks.replica`: healthy while it answers and is at most `MAX_REPLICA_LAG_MS` behind;
/// otherwise degraded (reads go to the primary meanwhile).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCheck {
    pub status: Status,
    /// How far behind the primary it is (`null` before it answered at all).
    pub lag_ms: Option<u64>,
}

/// `GET /health/detailed` (no envelope).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = HealthDetailed)]
pub struct DetailedHealth {
    #[serde(flatten)]
    pub identity: Identity,
    /// `REGION`.
    pub region: String,
    pub checks: Checks,
}

/// The replica's check from the watcher's latest sample (no I/O here).
fn replica_check(state: &AppState) -> Option<ReplicaCheck> {
    state.settings.region.read_url.as_ref()?;
    let replica = state.cache.replication().state();
    let healthy = replica.is_some_and(|r| r.up && r.lag <= state.settings.region.max_replica_lag);
    Some(ReplicaCheck {
        status: if healthy {
            Status::Healthy
        } else {
            Status::Degraded
        },
        lag_ms: replica.map(|r| u64::try_from(r.lag.as_millis()).unwrap_or(u64::MAX)),
    })
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
    let replica = replica_check(state);
    let replica_degraded = replica
        .as_ref()
        .is_some_and(|r| r.status != Status::Healthy);
    let overall = match (database, cache.status) {
        (Status::Unhealthy, _) => Status::Unhealthy,
        (_, HealthStatus::Degraded) => Status::Degraded,
        (_, HealthStatus::Healthy) if replica_degraded => Status::Degraded,
        (_, HealthStatus::Healthy) => Status::Healthy,
    };
    DetailedHealth {
        identity: identity(state, overall),
        region: state.settings.region.name.clone(),
        checks: Checks {
            database,
            cache,
            replica,
            memory: probed.memory.clone(),
            uptime: state.started_at.elapsed().as_secs(),
        },
    }
}

/// `/ready`: Postgres answers, from the same shared probe.
pub async fn ready(state: &AppState) -> bool {
    state.health.current(&state.db, &state.cache).await.database == Status::Healthy
}

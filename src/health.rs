//! The checks behind `/health/detailed` and `/ready`.
//!
//! Every check is bounded by a time budget, so health answers within a second even when
//! Postgres or Redis hang.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::cache::HealthStatus;
use crate::repository::postgres::database;
use crate::state::AppState;

pub const SERVICE_NAME: &str = "ghl-workflow-debugger";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long the database check may take before it counts as down.
const DATABASE_CHECK_BUDGET: Duration = Duration::from_millis(800);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Serialize)]
pub struct Identity {
    pub status: Status,
    pub service: &'static str,
    pub version: &'static str,
    pub timestamp: String,
    pub environment: &'static str,
}

#[derive(Debug, Serialize)]
pub struct MemoryUsage {
    pub used: u64,
    pub total: u64,
    pub unit: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Checks {
    pub database: Status,
    pub cache: crate::cache::CacheHealth,
    pub memory: MemoryUsage,
    pub uptime: u64,
}

#[derive(Debug, Serialize)]
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

/// `true` when Postgres answers a trivial query within the budget.
pub async fn database_answers(pool: &PgPool) -> bool {
    let query = database::ping(pool);
    match tokio::time::timeout(DATABASE_CHECK_BUDGET, query).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            log::warn!("database health check failed: {error}");
            false
        }
        Err(_) => {
            log::warn!("database health check timed out after {DATABASE_CHECK_BUDGET:?}");
            false
        }
    }
}

/// The whole report: unhealthy only when Postgres is down; a degraded cache keeps the
/// instance in the load balancer.
pub async fn detailed(state: &AppState) -> DetailedHealth {
    let (database_ok, cache) = tokio::join!(database_answers(&state.db), state.cache.health());
    let database = if database_ok {
        Status::Healthy
    } else {
        Status::Unhealthy
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
            memory: memory_usage(),
            uptime: state.started_at.elapsed().as_secs(),
        },
    }
}

/// Resident memory of this process and the machine's total, in MB (Linux `/proc`; zeros
/// elsewhere rather than failing health).
fn memory_usage() -> MemoryUsage {
    const PAGE_BYTES: u64 = 4096;
    const MB: u64 = 1024 * 1024;
    let resident_pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    MemoryUsage {
        used: resident_pages * PAGE_BYTES / MB,
        total: total_kb / 1024,
        unit: "MB",
    }
}

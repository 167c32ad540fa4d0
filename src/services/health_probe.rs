//! The health probe: the checks behind `/health/detailed` and `/ready` (Postgres answers,
//! the cache's view of Redis, memory), each bounded by a time budget so health answers within
//! a second even when Postgres or Redis hang. `/health/detailed` is public, so the checks are
//! not run per call: [`HealthProbe`] runs them at most once per [`PROBE_INTERVAL`] per
//! instance, and callers in between (or during a probe) share that result.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use prometheus::IntCounter;
use serde::Serialize;
use sqlx::PgPool;

use crate::cache::{Cache, CacheHealth, HealthStatus};
use crate::repository::postgres::database;

/// How long the database check may take before it counts as down.
const DATABASE_CHECK_BUDGET: Duration = Duration::from_millis(800);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HealthStatus)]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemoryUsage {
    pub used: u64,
    pub total: u64,
    #[schema(schema_with = memory_unit_schema)]
    pub unit: &'static str,
}

/// `MemoryUsage::unit`: always megabytes.
fn memory_unit_schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::string_enum(["MB"])
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

/// Longest a probe result is reused: at most one probe per instance per interval.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What one probe found (everything of the report that costs I/O).
#[derive(Debug, Clone)]
pub struct Probed {
    pub database: Status,
    pub cache: CacheHealth,
    pub memory: MemoryUsage,
}

type SharedProbe = Shared<BoxFuture<'static, Arc<Probed>>>;

/// The latest probe (running or done) and when it started.
#[derive(Clone)]
pub struct HealthProbe {
    latest: Arc<Mutex<Option<(Instant, SharedProbe)>>>,
    /// `health_probes_total`: how often the checks actually ran.
    probes: IntCounter,
}

impl HealthProbe {
    /// `probes` counts the probes that actually ran (`health_probes_total`).
    pub fn new(probes: IntCounter) -> HealthProbe {
        HealthProbe {
            latest: Arc::new(Mutex::new(None)),
            probes,
        }
    }

    /// The result of a probe started less than [`PROBE_INTERVAL`] ago, else of a new one.
    /// The probe runs in its own task, so a caller that goes away does not cancel it for
    /// the others, and concurrent callers wait for the same one.
    pub async fn current(&self, db: &PgPool, cache: &Cache) -> Arc<Probed> {
        let probe = {
            let mut latest = self
                .latest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*latest {
                Some((started, probe)) if started.elapsed() < PROBE_INTERVAL => probe.clone(),
                _ => {
                    self.probes.inc();
                    let task = tokio::spawn(probe(db.clone(), cache.clone()));
                    let probe = async move {
                        task.await.unwrap_or_else(|_| {
                            log::error!("the health probe panicked");
                            Arc::new(Probed {
                                database: Status::Unhealthy,
                                cache: CacheHealth {
                                    status: HealthStatus::Degraded,
                                    kind: crate::cache::CacheType::InMemory,
                                    connected: None,
                                    size: 0,
                                    message: Some("health probe failed".into()),
                                    topology: None,
                                },
                                memory: memory_usage(),
                            })
                        })
                    }
                    .boxed()
                    .shared();
                    *latest = Some((Instant::now(), probe.clone()));
                    probe
                }
            }
        };
        probe.await
    }
}

async fn probe(db: PgPool, cache: Cache) -> Arc<Probed> {
    let (database_ok, cache) = tokio::join!(database_answers(&db), cache.health());
    Arc::new(Probed {
        database: if database_ok {
            Status::Healthy
        } else {
            Status::Unhealthy
        },
        cache,
        memory: memory_usage(),
    })
}

/// Resident memory of this process and the machine's total, in MB (Linux `/proc`; zeros
/// elsewhere rather than failing health).
pub fn memory_usage() -> MemoryUsage {
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

//! The Prometheus registry shared by the HTTP middleware and the service's own metrics.

mod http;

pub use http::{HttpMetrics, RoutePattern};

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    pub http: HttpMetrics,
    pub registry: Registry,
    /// `rate_limit_decisions_total{quota, outcome, store}` (no tenant labels).
    pub rate_limit: IntCounterVec,
    /// `db_pool_connections{state="open|idle"}`, read from the pool at scrape time.
    pub db_pool: IntGaugeVec,
    /// `health_probes_total`: health checks actually run (callers within a second share one).
    pub health_probes: IntCounter,
}

#[derive(Debug, thiserror::Error)]
#[error("could not set up metrics: {0}")]
pub struct MetricsError(String);

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let http = HttpMetrics::new(&registry).map_err(|error| MetricsError(error.to_string()))?;
        let rate_limit = IntCounterVec::new(
            Opts::new(
                "rate_limit_decisions_total",
                "Rate-limit decisions by quota (requests|analyses), outcome (allowed|limited) \
                 and where the window was counted (redis|memory)",
            ),
            &["quota", "outcome", "store"],
        )
        .map_err(|error| MetricsError(error.to_string()))?;
        registry
            .register(Box::new(rate_limit.clone()))
            .map_err(|error| MetricsError(error.to_string()))?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Postgres pool connections, open and idle",
            ),
            &["state"],
        )
        .map_err(|error| MetricsError(error.to_string()))?;
        registry
            .register(Box::new(db_pool.clone()))
            .map_err(|error| MetricsError(error.to_string()))?;
        let health_probes = IntCounter::new(
            "health_probes_total",
            "Health probes run (Postgres + Redis checks); /health/detailed and /ready share one per second",
        )
        .map_err(|error| MetricsError(error.to_string()))?;
        registry
            .register(Box::new(health_probes.clone()))
            .map_err(|error| MetricsError(error.to_string()))?;
        Ok(Self {
            http,
            registry,
            rate_limit,
            db_pool,
            health_probes,
        })
    }

    /// Records the Postgres pool's state (called when metrics are scraped).
    pub fn observe_db_pool(&self, pool: &sqlx::PgPool) {
        self.db_pool
            .with_label_values(&["open"])
            .set(i64::from(pool.size()));
        self.db_pool
            .with_label_values(&["idle"])
            .set(i64::try_from(pool.num_idle()).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .map_err(|error| MetricsError(error.to_string()))?;
        String::from_utf8(buffer).map_err(|error| MetricsError(error.to_string()))
    }
}

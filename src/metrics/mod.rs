//! The Prometheus registry shared by the HTTP middleware and the service's own metrics.

mod http;

pub use http::{HttpMetrics, RoutePattern};

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::cache::Replication;
use crate::config::RegionSettings;

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
    /// `database_reads_total{target="replica|primary"}`: where reads went.
    pub db_reads: IntCounterVec,
    /// `database_replica_lag_seconds`: how far the region's replica is behind the primary
    /// (growing while it does not answer; 0 without a replica), read at scrape time.
    pub replica_lag: Gauge,
    /// `database_replica_lag_limit_seconds`: `MAX_REPLICA_LAG_MS`, so a dashboard draws each
    /// instance's own limit beside its lag.
    pub replica_lag_limit: Gauge,
}

#[derive(Debug, thiserror::Error)]
#[error("could not set up metrics: {0}")]
pub struct MetricsError(String);

impl Metrics {
    /// The metrics of an instance with the default region settings (`local`, no replica).
    pub fn new() -> Result<Self, MetricsError> {
        Self::for_region(&RegionSettings::default())
    }

    /// The database series carry `region` as a constant label, like the cache's: one
    /// Prometheus scraping several regions keeps them apart.
    pub fn for_region(region: &RegionSettings) -> Result<Self, MetricsError> {
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
        let in_region = |opts: Opts| opts.const_label("region", region.name.as_str());
        let db_reads = IntCounterVec::new(
            in_region(Opts::new(
                "database_reads_total",
                "Repository reads by where they went: the region's replica, or the primary",
            )),
            &["target"],
        )
        .map_err(|error| MetricsError(error.to_string()))?;
        registry
            .register(Box::new(db_reads.clone()))
            .map_err(|error| MetricsError(error.to_string()))?;
        // Both series exist from the start: a rate over a series that appears only with the
        // first read to go there would miss that read.
        for target in ["replica", "primary"] {
            db_reads.with_label_values(&[target]);
        }
        let replica_lag = Gauge::with_opts(in_region(Opts::new(
            "database_replica_lag_seconds",
            "How far the region's read replica (DATABASE_READ_URL) is behind the primary; grows while it does not answer; 0 without one",
        )))
        .map_err(|error| MetricsError(error.to_string()))?;
        registry
            .register(Box::new(replica_lag.clone()))
            .map_err(|error| MetricsError(error.to_string()))?;
        let replica_lag_limit = Gauge::with_opts(in_region(Opts::new(
            "database_replica_lag_limit_seconds",
            "MAX_REPLICA_LAG_MS: past this lag the instance reads the primary instead of its replica",
        )))
        .map_err(|error| MetricsError(error.to_string()))?;
        registry
            .register(Box::new(replica_lag_limit.clone()))
            .map_err(|error| MetricsError(error.to_string()))?;
        replica_lag_limit.set(region.max_replica_lag.as_secs_f64());
        Ok(Self {
            http,
            registry,
            rate_limit,
            db_pool,
            health_probes,
            db_reads,
            replica_lag,
            replica_lag_limit,
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

    /// Records the replica's lag (called when metrics are scraped).
    pub fn observe_replica(&self, replication: &Replication) {
        let lag = replication.state().map_or(0.0, |s| s.lag.as_secs_f64());
        self.replica_lag.set(lag);
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

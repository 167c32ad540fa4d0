//! The state every handler receives through `web::Data`.

use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;

use crate::cache::Cache;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::repository::cached::{
    CachedApiKeyRepository, CachedSubscriptionRepository, CachedWorkflowRepository, ReadThrough,
};
use crate::repository::postgres::database::HotReads;
use crate::repository::postgres::replica::ReplicaLimits;
use crate::repository::postgres::{
    Db, Notifier, PgAnalysisRepository, PgApiKeyRepository, PgLocationRepository,
    PgSubscriptionRepository, PgWebhookStore, PgWorkflowRepository, Reads,
};
use crate::repository::{
    AnalysisRepository, ApiKeyRepository, LocationRepository, SubscriptionRepository,
    WorkflowRepository,
};
use crate::services::analysis::AnalysisService;
use crate::services::analysis_pool::{AnalysisPool, PoolError};
use crate::services::cache_history::{CacheHistory, Reading};
use crate::services::ghl_import::GhlImportService;
use crate::services::health_probe::HealthProbe;
use crate::services::overview::OverviewService;
use crate::services::plans::Plans;
use crate::services::rate_limiter::RateLimiter;
use crate::services::summary_pages::SummaryPages;

/// The Postgres pools a state is built on: the primary's, and the region's replica's.
pub struct Pools {
    pub db: PgPool,
    /// Dedicated connections to the primary for workflow reads by id.
    pub hot: Option<HotReads>,
    /// `DATABASE_READ_URL`'s pool and dedicated connections.
    pub replica: Option<(PgPool, Option<HotReads>)>,
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub cache: Cache,
    pub metrics: Metrics,
    pub started_at: Instant,
    pub locations: Arc<dyn LocationRepository>,
    pub workflows: Arc<dyn WorkflowRepository>,
    pub subscriptions: Arc<dyn SubscriptionRepository>,
    pub api_keys: Arc<dyn ApiKeyRepository>,
    pub webhooks: PgWebhookStore,
    pub analysis: AnalysisService,
    /// `POST /api/workflows/import`: GoHighLevel builder JSON stored and analyzed.
    pub imports: GhlImportService,
    /// Every workflow with its score, and the location's totals.
    pub overview: OverviewService,
    /// The one plan lookup (limits and what an analysis shows).
    pub plans: Plans,
    pub rate_limiter: Arc<RateLimiter>,
    /// Cached workflow lists split into their summaries, so a page is cut, not parsed.
    pub summary_pages: Arc<SummaryPages>,
    /// The shared, rate-bounded result of the health checks.
    pub health: HealthProbe,
    /// The last hour of this instance's cache numbers, for the dashboard.
    pub cache_history: Arc<CacheHistory>,
}

impl AppState {
    /// Postgres repositories, each read through the cache.
    pub fn new(
        settings: Settings,
        db: PgPool,
        cache: Cache,
        metrics: Metrics,
    ) -> Result<Self, PoolError> {
        Self::with_hot_reads(settings, db, None, cache, metrics)
    }

    /// As [`AppState::new`], with dedicated connections for workflow reads by id.
    pub fn with_hot_reads(
        settings: Settings,
        db: PgPool,
        hot: Option<HotReads>,
        cache: Cache,
        metrics: Metrics,
    ) -> Result<Self, PoolError> {
        let pools = Pools {
            db,
            hot,
            replica: None,
        };
        Self::with_pools(settings, pools, cache, metrics)
    }

    /// As [`AppState::new`], on the primary's pools and, when the region has one, its
    /// replica's: reads go there while it is close enough behind (see
    /// `repository::postgres::replica`); writes always go to the primary.
    pub fn with_pools(
        settings: Settings,
        pools: Pools,
        cache: Cache,
        metrics: Metrics,
    ) -> Result<Self, PoolError> {
        let Pools { db, hot, replica } = pools;
        // Every repository shares one view of the pool: through a transaction-mode pooler
        // (DATABASE_POOLER) each of their statements runs in its own transaction.
        let pg = Db::new(db.clone(), &settings.database);
        let pg_reads = read_routing(&settings, &pg, hot, replica, &cache, &metrics);
        let reads = ReadThrough::new(cache.clone(), settings.request_timeout);
        let repos = Repositories::new(&settings, &pg, pg_reads, &cache, &reads);
        let analysis = AnalysisService::new(
            Arc::clone(&repos.workflows),
            Arc::clone(&repos.analyses),
            reads.clone(),
            AnalysisPool::new(settings.analysis_concurrency, settings.analysis_priority)?,
        )
        .with_budget(settings.analysis_budget);
        let overview = OverviewService::new(analysis.clone(), repos.analyses, reads);
        let imports = GhlImportService::new(
            Arc::clone(&repos.workflows),
            analysis.clone(),
            settings.max_workflow_steps,
        );
        let plans = Plans::new(Arc::clone(&repos.subscriptions));
        Ok(Self {
            locations: repos.locations,
            workflows: repos.workflows,
            analysis,
            imports,
            overview,
            subscriptions: repos.subscriptions,
            api_keys: repos.api_keys,
            webhooks: repos.webhooks,
            rate_limiter: Arc::new(RateLimiter::new(
                cache.clone(),
                plans.clone(),
                settings.rate_limit_enabled,
                settings.rate_limit_window,
                metrics.rate_limit.clone(),
            )),
            plans,
            summary_pages: Arc::new(SummaryPages::default()),
            settings: Arc::new(settings),
            health: HealthProbe::new(metrics.health_probes.clone()),
            cache_history: Arc::new(CacheHistory::default()),
            db,
            cache,
            metrics,
            started_at: Instant::now(),
        })
    }

    /// The cache's and the pools' numbers now, as the history records them (the gauges are
    /// refreshed first, as a scrape would).
    pub fn cache_reading(&self) -> Reading {
        self.metrics.observe_db_pool(&self.db);
        let stats = self.cache.stats();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Reading::new(now_ms, &stats, &self.metrics.registry.gather())
    }
}

/// Where reads go: the primary (its dedicated connections for workflows by id), or the
/// region's replica while it is close enough behind.
fn read_routing(
    settings: &Settings,
    pg: &Db,
    hot: Option<HotReads>,
    replica: Option<(PgPool, Option<HotReads>)>,
    cache: &Cache,
    metrics: &Metrics,
) -> Reads {
    let pg_reads = Reads::primary(pg.clone(), hot).counted(metrics.db_reads.clone());
    let Some((replica, replica_hot)) = replica else {
        return pg_reads;
    };
    let limits = ReplicaLimits {
        replication: cache.replication(),
        max_lag: settings.region.max_replica_lag,
        wait: settings.region.read_your_writes_wait,
    };
    pg_reads.with_replica(Db::new(replica, &settings.database), replica_hot, limits)
}

/// The Postgres repositories of a state, read through the cache where reads repeat.
struct Repositories {
    workflows: Arc<dyn WorkflowRepository>,
    analyses: Arc<dyn AnalysisRepository>,
    subscriptions: Arc<dyn SubscriptionRepository>,
    locations: Arc<dyn LocationRepository>,
    api_keys: Arc<dyn ApiKeyRepository>,
    webhooks: PgWebhookStore,
}

impl Repositories {
    fn new(
        settings: &Settings,
        pg: &Db,
        pg_reads: Reads,
        cache: &Cache,
        reads: &ReadThrough,
    ) -> Self {
        // Writes send their cache invalidation through Postgres too, in their transaction
        // (nothing until a listener attaches the bus, see `startup`).
        let notifier = Notifier::new(cache.clone());
        Self {
            workflows: Arc::new(CachedWorkflowRepository::new(
                Arc::new(
                    PgWorkflowRepository::new(pg.clone())
                        .with_notifier(notifier.clone())
                        .with_reads(pg_reads.clone())
                        .with_max_per_location(settings.max_workflows_per_location),
                ),
                reads.entity_reads(),
            )),
            analyses: Arc::new(PgAnalysisRepository::new(pg.clone()).with_reads(pg_reads.clone())),
            subscriptions: Arc::new(CachedSubscriptionRepository::new(
                Arc::new(PgSubscriptionRepository::new(pg.clone()).with_reads(pg_reads.clone())),
                reads.clone(),
            )),
            locations: Arc::new(
                PgLocationRepository::new(pg.clone()).with_notifier(notifier.clone()),
            ),
            api_keys: Arc::new(CachedApiKeyRepository::new(
                Arc::new(
                    PgApiKeyRepository::new(pg.clone())
                        .with_notifier(notifier.clone())
                        .with_reads(pg_reads),
                ),
                reads.clone(),
            )),
            webhooks: PgWebhookStore::new(pg.clone()).with_notifier(notifier),
        }
    }
}

//! The state every handler receives through `web::Data`.

use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;

use crate::analysis_pool::{AnalysisPool, PoolError};
use crate::analysis_service::AnalysisService;
use crate::cache::Cache;
use crate::config::Settings;
use crate::database::HotReads;
use crate::health::HealthProbe;
use crate::metrics::Metrics;
use crate::rate_limit::LocalWindows;
use crate::repository::cached::{
    CachedApiKeyRepository, CachedSubscriptionRepository, CachedWorkflowRepository, ReadThrough,
};
use crate::repository::postgres::{
    PgAnalysisRepository, PgApiKeyRepository, PgLocationRepository, PgSubscriptionRepository,
    PgWebhookStore, PgWorkflowRepository,
};
use crate::repository::{
    ApiKeyRepository, LocationRepository, SubscriptionRepository, WorkflowRepository,
};
use crate::routes::SummaryPages;

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
    /// Rate-limit windows counted here while Redis is unavailable.
    pub local_windows: Arc<LocalWindows>,
    /// Cached workflow lists split into their summaries, so a page is cut, not parsed.
    pub summary_pages: Arc<SummaryPages>,
    /// The shared, rate-bounded result of the health checks.
    pub health: HealthProbe,
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
        let reads = ReadThrough::new(cache.clone(), settings.request_timeout);
        let bypass = settings.cache.bypass;
        let workflows: Arc<dyn WorkflowRepository> = Arc::new(CachedWorkflowRepository::new(
            Arc::new(
                PgWorkflowRepository::new(db.clone())
                    .with_hot_reads(hot)
                    .with_max_per_location(settings.max_workflows_per_location),
            ),
            reads.clone().bypassing(bypass),
        ));
        let analysis = AnalysisService::new(
            Arc::clone(&workflows),
            Arc::new(PgAnalysisRepository::new(db.clone())),
            reads.clone(),
            AnalysisPool::new(settings.analysis_concurrency, settings.analysis_priority)?,
            bypass,
        )
        .with_budget(settings.analysis_budget);
        Ok(Self {
            settings: Arc::new(settings),
            locations: Arc::new(PgLocationRepository::new(db.clone())),
            workflows,
            analysis,
            subscriptions: Arc::new(CachedSubscriptionRepository::new(
                Arc::new(PgSubscriptionRepository::new(db.clone())),
                reads.clone(),
            )),
            api_keys: Arc::new(CachedApiKeyRepository::new(
                Arc::new(PgApiKeyRepository::new(db.clone())),
                reads,
            )),
            webhooks: PgWebhookStore::new(db.clone()),
            local_windows: Arc::new(LocalWindows::default()),
            summary_pages: Arc::new(SummaryPages::default()),
            health: HealthProbe::new(metrics.health_probes.clone()),
            db,
            cache,
            metrics,
            started_at: Instant::now(),
        })
    }
}

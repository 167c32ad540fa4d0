//! Builds the HTTP server from settings and runs it until it is stopped.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Condition, ErrorHandlers, Logger};
use actix_web::{web, App, HttpServer};

use crate::cache::{Cache, CacheError, CacheSettings};
use crate::config::Settings;
use crate::http;
use crate::http::consistency::{consistency_middleware, CONSISTENCY_TOKEN_HEADER};
use crate::http::error::{envelope_plain_errors, ApiError};
use crate::http::request_id::request_id_middleware;
use crate::metrics::{Metrics, MetricsError};
use crate::repository::postgres::database::{self, DatabaseError};
use crate::repository::postgres::{listener, replica};
use crate::repository::postgres::{Db, PgWorkflowRepository};
use crate::services::analysis_pool::PoolError;
use crate::services::cache_history::SAMPLE_INTERVAL;
use crate::services::cache_warming::spawn_warming;
use crate::state::{AppState, Pools};

/// The access log line: no query string (it may carry ids a client considers private),
/// no headers, no bodies.
const ACCESS_LOG_FORMAT: &str = r#"%a "%{method}xi %U" %s %b %Dms req=%{x-request-id}o"#;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("could not set up the cache: {0}")]
    Cache(#[from] CacheError),
    #[error(transparent)]
    AnalysisPool(#[from] PoolError),
    #[error("could not write the OpenAPI document: {0}")]
    OpenApi(#[source] serde_json::Error),
    #[error("could not listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// The OpenAPI document as `/openapi.json` serves it, for the `openapi` subcommand: the
/// command line reaches the web layer only through here.
pub fn openapi_text() -> Result<String, serde_json::Error> {
    http::openapi::to_text(&http::openapi_document())
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    history_sampler: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let (db, hot) = database::connect_lazy_split(&settings.database)?;
        database::check_startup_parameters(&settings.database).await?;
        // Migrations only ever run on the primary (a replica refuses writes anyway).
        if settings.database.run_migrations {
            database::migrate(&db, &settings.database).await?;
        }
        let replica =
            database::connect_replica(&settings.database, settings.region.read_url.as_ref())?;
        match &settings.region.read_url {
            Some(url) => log::info!(
                "region {}: reads on the replica {} (while at most {} ms behind)",
                settings.region.name,
                crate::config::mask_url(url),
                settings.region.max_replica_lag.as_millis()
            ),
            None => log::info!("region {}: reads on the primary", settings.region.name),
        }
        let metrics = Metrics::for_region(&settings.region)?;
        match &settings.cache.topology {
            Some(topology) => log::info!("cache: redis {}", topology.describe()),
            None => log::info!("cache: no redis configured; in-process tier only"),
        }
        let cache = Cache::new(
            CacheSettings {
                region: settings.region.name.clone(),
                replica: replica.is_some(),
                ..CacheSettings::from_config(&settings.cache)
            },
            &metrics.registry,
        )?;
        // The second invalidation bus: one LISTEN connection, outside the pools, always on
        // the primary (the only place every region's writes are heard).
        let listener = listener::spawn(&cache, settings.database.direct_url());
        cache.adopt_task(listener);
        let replica = replica.map(|(pool, hot, options)| {
            cache.adopt_task(replica::spawn_watcher(&cache, options));
            (pool, hot)
        });
        let pools = Pools { db, hot, replica };
        let state = AppState::with_pools(settings, pools, cache, metrics)?;
        let address = format!("{}:{}", state.settings.host, state.settings.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let server = serve(listener, state.clone())?;
        if state.settings.cache.warm_on_start {
            // Through `Db`, like every repository of the state: behind a transaction-mode
            // pooler its reads need their own transactions too.
            let db = Db::new(state.db.clone(), &state.settings.database);
            spawn_warming(state.cache.clone(), PgWorkflowRepository::new(db));
        }
        let history_sampler = spawn_history_sampler(state.clone());
        Ok(Self {
            port,
            server,
            state,
            history_sampler,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (actix stops accepting and lets in-flight requests finish
    /// within the shutdown timeout), then closes the pools.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.history_sampler.abort();
        self.state.cache.shutdown().await;
        self.state.db.close().await;
        log::info!("stopped");
        result
    }
}

/// Records a reading of the cache every [`SAMPLE_INTERVAL`] for the dashboard's history.
fn spawn_history_sampler(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        // After a stall, one reading covers the gap: a burst of catch-up readings would
        // only add points of a few milliseconds.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            state.cache_history.record(state.cache_reading());
        }
    })
}

fn serve(listener: TcpListener, state: AppState) -> Result<Server, StartupError> {
    let settings = Arc::clone(&state.settings);
    let http_metrics = state.metrics.http.clone();
    let body_limit = settings.body_limit_bytes;
    let cors_settings = Arc::clone(&settings);
    // Generated once: every worker serves the same bytes.
    let openapi = web::Data::new(http::ServedDocument::generate().map_err(StartupError::OpenApi)?);
    let mut server = HttpServer::new(move || {
        let settings = &cors_settings;
        App::new()
            // Listed innermost first: the request id scope encloses the handlers and the
            // error envelopes; the access log sees the final response with its id.
            .wrap(ErrorHandlers::new().default_handler(envelope_plain_errors))
            .wrap(from_fn(consistency_middleware))
            .wrap(from_fn(request_id_middleware))
            .wrap(http_metrics.clone())
            // The access log renders its format for every request even when its lines are
            // filtered out: leave it out unless they are wanted.
            .wrap(Condition::new(
                access_log_enabled(),
                Logger::new(ACCESS_LOG_FORMAT)
                    .custom_request_replace("method", |req| req.method().to_string()),
            ))
            // Each worker gets its own `Data` (a clone of the state's Arcs): every request
            // clones it, and one shared reference count would bounce between the cores.
            .app_data(web::Data::new(state.clone()))
            .app_data(openapi.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(|error, _| ApiError::from(error).into()),
            )
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(
                web::QueryConfig::default().error_handler(|error, _| ApiError::from(error).into()),
            )
            .app_data(
                web::PathConfig::default().error_handler(|error, _| ApiError::from(error).into()),
            )
            .wrap(cors(settings))
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .listen(listener)
    .map_err(|source| StartupError::Bind {
        address: format!("{}:{}", settings.host, settings.port),
        source,
    })?;
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Whether the logger lets the access log's lines (info, actix's logger target) through.
fn access_log_enabled() -> bool {
    log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info)
}

/// CORS for the one configured frontend origin; without `FRONTEND_URL`, no origin is allowed.
fn cors(settings: &Settings) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "PUT", "POST", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::IF_MATCH,
            crate::http::request_id::REQUEST_ID_HEADER,
            CONSISTENCY_TOKEN_HEADER,
        ])
        .expose_headers([
            "x-request-id",
            "x-cache-status",
            "x-cache-tier",
            "etag",
            "retry-after",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-consistency-token",
        ])
        .max_age(600);
    match &settings.frontend_url {
        Some(origin) => cors.allowed_origin(origin),
        None => cors,
    }
}

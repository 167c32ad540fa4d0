//! Typed settings read from the environment (and `.env`, loaded by `main`).
//!
//! Every variable is parsed once, here; a missing or malformed one becomes a
//! [`ConfigError`] that names it and says what is expected, without echoing
//! secret values. `env` holds the lookup helpers and parsers, `redis` the Redis topology
//! types. This module imports nothing else of the crate: every layer may depend on it.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

mod env;
mod redis;
mod region;

use env::Lookup;
pub use redis::{mask_url, NodeAddr, NodeAuth, PemFile, RedisTls, RedisTopology};
pub use region::{
    RegionSettings, DEFAULT_MAX_REPLICA_LAG_MS, DEFAULT_READ_YOUR_WRITES_WAIT_MS, DEFAULT_REGION,
};

/// Where the service runs; shown as `environment` in health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnvironment {
    Development,
    Production,
}

impl AppEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// How analysis threads are scheduled against the HTTP workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisPriority {
    /// `SCHED_IDLE`: analyses run only when request handling leaves a core free.
    Idle,
    /// The same priority as the HTTP workers.
    Normal,
}

/// `ANALYSIS_CONCURRENCY` when unset: the fewest threads an analysis pool has
/// (`services::analysis_pool::MIN_THREADS`), so one location never holds them all.
pub const DEFAULT_ANALYSIS_CONCURRENCY: usize = 2;
/// `MAX_WORKFLOWS_PER_LOCATION` when unset.
pub const DEFAULT_MAX_WORKFLOWS_PER_LOCATION: u32 = 1_000;
/// Highest `MAX_WORKFLOWS_PER_LOCATION`: a location-wide analysis reads every workflow of the
/// location at once.
pub const MAX_MAX_WORKFLOWS_PER_LOCATION: u32 = 100_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {variable} {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub(super) fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Whether Postgres is reached through a transaction-mode pooler (`DATABASE_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerMode {
    /// A direct connection (or a session-mode pooler): a session is ours until we close it.
    None,
    /// PgBouncer/Supavisor in transaction mode: consecutive transactions of one client
    /// connection may run on different server sessions, so nothing may outlive a transaction
    /// (named prepared statements, `SET`, startup `options`).
    Transaction,
}

#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: Url,
    /// `DATABASE_LISTEN_URL`: a direct connection (not through a transaction-mode pooler) for
    /// migrations and the invalidation listener, which holds a session (`LISTEN`); unset = `url`.
    pub listen_url: Option<Url>,
    pub pooler: PoolerMode,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    pub run_migrations: bool,
}

impl DatabaseSettings {
    /// Where session-bound work goes (migrations, `LISTEN`): `DATABASE_LISTEN_URL` when set,
    /// else `DATABASE_URL`.
    pub fn direct_url(&self) -> &Url {
        self.listen_url.as_ref().unwrap_or(&self.url)
    }
}

#[derive(Debug, Clone)]
/// The cache tiers: where Redis is (if anywhere), the namespace, and both tiers' bounds.
pub struct CacheConfig {
    /// `None` when no Redis is configured (`REDIS_URL`, `REDIS_CLUSTER_NODES` and
    /// `REDIS_SENTINELS` unset or empty): the in-memory tier only.
    pub topology: Option<RedisTopology>,
    /// TLS for every connection to that topology.
    pub tls: RedisTls,
    pub prefix: String,
    pub l1_capacity: u64,
    pub l1_max_bytes: u64,
    pub l2_budget: Duration,
    pub pool_size: u32,
    /// Skip both tiers on reads (benchmarks of the uncached path only).
    pub bypass: bool,
    /// Workflow and analysis reads skip the in-process tier (benchmarks of the Redis tier).
    pub l1_bypass: bool,
    pub warm_on_start: bool,
}

/// `Debug` is written by hand (below): tokens and secrets print as `***`, URLs with their
/// password masked, so a settings dump in a log or a panic message leaks nothing.
#[derive(Clone)]
pub struct Settings {
    pub host: IpAddr,
    pub port: u16,
    pub environment: AppEnvironment,
    pub workers: Option<usize>,
    pub shutdown_timeout: Duration,
    /// Longest a request may wait on the database before it answers 503.
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub database: DatabaseSettings,
    /// `REGION`, `DATABASE_READ_URL` and the replica's limits (multi-region deployments).
    pub region: RegionSettings,
    pub cache: CacheConfig,
    pub internal_api_token: Option<String>,
    pub metrics_token: Option<String>,
    pub webhook_secret: Option<String>,
    /// `WEBHOOK_TOLERANCE_SECS`: how far a webhook's signed `timestamp` may be from this
    /// server's clock, either way; also how long event ids are remembered (twice this).
    pub webhook_tolerance: Duration,
    pub rate_limit_enabled: bool,
    /// Length of the per-plan request window (`RATE_LIMIT_WINDOW_SECS`, default 60 = the
    /// plans' "per minute"; shorter only so tests need not wait a minute).
    pub rate_limit_window: Duration,
    pub frontend_url: Option<String>,
    pub max_workflow_steps: usize,
    /// Workflows one location may have; creating one more is a 422.
    pub max_workflows_per_location: u32,
    /// Analyses computed at once (threads of the analysis pool).
    pub analysis_concurrency: usize,
    /// `ANALYSIS_LOW_PRIORITY` (default on): analysis threads yield the CPU to request handling.
    pub analysis_priority: AnalysisPriority,
    /// `ANALYSIS_BUDGET_MS`: CPU time one analysis may take before it is abandoned as too
    /// complex (422).
    pub analysis_budget: Duration,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of mutating the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Lookup(&lookup);
        let environment = env.environment()?;
        let (topology, tls) = env.redis(environment)?;
        Self {
            host: env.parsed("HOST", "0.0.0.0".parse().ok(), "an IP address like 0.0.0.0")?,
            port: env.parsed("PORT", Some(3000), "a port number 0-65535")?,
            environment,
            workers: env.optional_parsed("WORKERS", "a positive number of HTTP worker threads")?,
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECS", 10)?,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 1_300, 600_000)?,
            body_limit_bytes: env.parsed(
                "BODY_LIMIT_BYTES",
                Some(1024 * 1024),
                "a size in bytes, e.g. 1048576",
            )?,
            database: database_settings(&env)?,
            region: env.region()?,
            cache: cache_config(&env, topology, tls)?,
            internal_api_token: env.secret("INTERNAL_API_TOKEN"),
            metrics_token: env.secret("METRICS_TOKEN"),
            webhook_secret: env.secret("GHL_WEBHOOK_SECRET"),
            webhook_tolerance: env.bounded_seconds("WEBHOOK_TOLERANCE_SECS", 300, 86_400)?,
            rate_limit_enabled: env.flag("RATE_LIMIT_ENABLED", true)?,
            rate_limit_window: env.bounded_seconds("RATE_LIMIT_WINDOW_SECS", 60, 3_600)?,
            frontend_url: env.frontend_url()?,
            max_workflow_steps: env.parsed(
                "MAX_WORKFLOW_STEPS",
                Some(5_000),
                "a positive number of steps",
            )?,
            max_workflows_per_location: env.bounded(
                "MAX_WORKFLOWS_PER_LOCATION",
                DEFAULT_MAX_WORKFLOWS_PER_LOCATION,
                MAX_MAX_WORKFLOWS_PER_LOCATION,
                "a number of workflows",
            )?,
            analysis_concurrency: env.parsed(
                "ANALYSIS_CONCURRENCY",
                Some(DEFAULT_ANALYSIS_CONCURRENCY),
                "a positive number of analyses computed at once",
            )?,
            analysis_priority: if env.flag("ANALYSIS_LOW_PRIORITY", true)? {
                AnalysisPriority::Idle
            } else {
                AnalysisPriority::Normal
            },
            // Below REQUEST_TIMEOUT_MS by default, so a too-complex document is told so (422)
            // before its caller's deadline answers a plain 503.
            analysis_budget: env.millis("ANALYSIS_BUDGET_MS", 1_000, 60_000)?,
        }
        .validated()
    }

    /// Cross-setting rules that no single variable can check.
    fn validated(self) -> Result<Self, ConfigError> {
        if self.database.pooler == PoolerMode::Transaction && self.database.listen_url.is_none() {
            return Err(ConfigError::new(
                "DATABASE_LISTEN_URL",
                "is missing: with DATABASE_POOLER=transaction, migrations and the invalidation LISTEN need a direct (not pooled) Postgres URL",
            ));
        }
        self.region.check(self.request_timeout)?;
        Ok(self)
    }

    pub fn is_production(&self) -> bool {
        self.environment == AppEnvironment::Production
    }
}

/// `***` for a set secret, `None` for an unset one: whether it is set is worth knowing.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "***")
}

/// `DATABASE_*` and `RUN_MIGRATIONS`.
fn database_settings<F: Fn(&str) -> Option<String>>(
    env: &Lookup<'_, F>,
) -> Result<DatabaseSettings, ConfigError> {
    Ok(DatabaseSettings {
        url: env.database_url()?,
        listen_url: env.postgres_url("DATABASE_LISTEN_URL")?,
        pooler: env.pooler()?,
        max_connections: env.parsed(
            "DATABASE_MAX_CONNECTIONS",
            Some(10),
            "a positive number of connections",
        )?,
        // With Postgres down, sqlx keeps retrying the connect until this deadline:
        // 1 s keeps "503 within 1.5 s" (issue 7) true, query time included.
        acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 1_000, 2_000)?,
        statement_timeout: env.millis("DATABASE_STATEMENT_TIMEOUT_MS", 5_000, 600_000)?,
        run_migrations: env.flag("RUN_MIGRATIONS", true)?,
    })
}

/// The cache's tiers: the Redis `topology` and `tls` read before, and `CACHE_*`.
fn cache_config<F: Fn(&str) -> Option<String>>(
    env: &Lookup<'_, F>,
    topology: Option<RedisTopology>,
    tls: RedisTls,
) -> Result<CacheConfig, ConfigError> {
    Ok(CacheConfig {
        topology,
        tls,
        prefix: env.cache_prefix()?,
        l1_capacity: env.parsed(
            "CACHE_L1_CAPACITY",
            Some(10_000),
            "a number of entries (0 disables the in-process tier)",
        )?,
        l1_max_bytes: env.parsed(
            "CACHE_L1_MAX_BYTES",
            Some(64 * 1024 * 1024),
            "a size in bytes for the in-process tier",
        )?,
        l2_budget: env.millis("CACHE_L2_BUDGET_MS", 50, 10_000)?,
        pool_size: env.parsed(
            "REDIS_POOL_SIZE",
            Some(16),
            "a positive number of connections",
        )?,
        bypass: env.flag("CACHE_BYPASS", false)?,
        l1_bypass: env.flag("CACHE_L1_BYPASS", false)?,
        warm_on_start: env.flag("CACHE_WARM", false)?,
    })
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &mask_url(&self.url))
            .field("listen_url", &self.listen_url.as_ref().map(mask_url))
            .field("pooler", &self.pooler)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("run_migrations", &self.run_migrations)
            .finish()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fields added later are left out (`..`) rather than printed unreviewed.
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("environment", &self.environment)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("database", &self.database)
            .field("region", &self.region)
            .field("cache", &self.cache)
            .field("internal_api_token", &redacted(&self.internal_api_token))
            .field("metrics_token", &redacted(&self.metrics_token))
            .field("webhook_secret", &redacted(&self.webhook_secret))
            .field("webhook_tolerance", &self.webhook_tolerance)
            .field("rate_limit_enabled", &self.rate_limit_enabled)
            .field("rate_limit_window", &self.rate_limit_window)
            .field("frontend_url", &self.frontend_url)
            .field("max_workflow_steps", &self.max_workflow_steps)
            .field("analysis_concurrency", &self.analysis_concurrency)
            .field("analysis_priority", &self.analysis_priority)
            .field("analysis_budget", &self.analysis_budget)
            .field(
                "max_workflows_per_location",
                &self.max_workflows_per_location,
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings_from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://app:s3cret@localhost:5432/app");

    #[test]
    fn defaults_follow_the_contract() {
        let settings = settings_from(&[DB]).unwrap();
        assert_eq!(settings.port, 3000);
        assert_eq!(settings.host.to_string(), "0.0.0.0");
        assert_eq!(settings.environment, AppEnvironment::Development);
        assert_eq!(settings.cache.prefix, "gwd");
        assert!(settings.cache.topology.is_none());
        assert!(settings.rate_limit_enabled);
        assert_eq!(settings.rate_limit_window, Duration::from_secs(60));
        assert_eq!(settings.webhook_tolerance, Duration::from_secs(300));
        assert_eq!(settings.body_limit_bytes, 1024 * 1024);
        assert_eq!(settings.database.acquire_timeout, Duration::from_secs(1));
        assert_eq!(settings.analysis_concurrency, 2);
        assert_eq!(settings.analysis_priority, AnalysisPriority::Idle);
        let normal = settings_from(&[DB, ("ANALYSIS_LOW_PRIORITY", "false")]).unwrap();
        assert_eq!(normal.analysis_priority, AnalysisPriority::Normal);
        assert_eq!(settings.analysis_budget, Duration::from_millis(1_000));
    }

    #[test]
    fn analysis_budget_is_range_checked_and_named() {
        let set = settings_from(&[DB, ("ANALYSIS_BUDGET_MS", "250")]).unwrap();
        assert_eq!(set.analysis_budget, Duration::from_millis(250));
        for bad in ["0", "60001", "2s", "-1"] {
            let err = settings_from(&[DB, ("ANALYSIS_BUDGET_MS", bad)]).unwrap_err();
            assert_eq!(err.variable, "ANALYSIS_BUDGET_MS", "{bad}");
            assert!(err.to_string().contains("ANALYSIS_BUDGET_MS"), "{bad}");
        }
    }

    #[test]
    fn workflows_per_location_is_range_checked() {
        let settings = settings_from(&[DB]).unwrap();
        assert_eq!(settings.max_workflows_per_location, 1_000);
        let set = settings_from(&[DB, ("MAX_WORKFLOWS_PER_LOCATION", "3")]).unwrap();
        assert_eq!(set.max_workflows_per_location, 3);
        for bad in ["0", "100001", "-1", "many"] {
            let error = settings_from(&[DB, ("MAX_WORKFLOWS_PER_LOCATION", bad)]).unwrap_err();
            assert_eq!(error.variable, "MAX_WORKFLOWS_PER_LOCATION", "{bad}");
            assert!(error.problem.contains("1 to 100000"), "{}", error.problem);
        }
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let err = settings_from(&[]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        assert!(err.to_string().contains("DATABASE_URL is missing"));
    }

    #[test]
    fn malformed_values_name_their_variable_and_never_echo_secrets() {
        let cases: &[(&str, &str)] = &[
            ("PORT", "eighty"),
            ("APP_ENV", "staging"),
            ("RATE_LIMIT_ENABLED", "maybe"),
            ("RATE_LIMIT_WINDOW_SECS", "0"),
            ("WEBHOOK_TOLERANCE_SECS", "0"),
            ("REDIS_URL", "http://user:hunter2@host:1"),
            ("CACHE_PREFIX", "has space"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "30000"),
            ("FRONTEND_URL", "not a url"),
            ("ANALYSIS_LOW_PRIORITY", "sometimes"),
        ];
        for (name, value) in cases {
            let err = settings_from(&[DB, (name, value)]).unwrap_err();
            assert_eq!(&err.variable, name);
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn invalid_database_url_does_not_echo_it() {
        let err = settings_from(&[("DATABASE_URL", "mysql://root:t0ps3cret@db/x")]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        assert!(!err.to_string().contains("t0ps3cret"));
    }

    #[test]
    fn the_listen_url_is_optional_validated_and_masked() {
        let settings = settings_from(&[DB]).unwrap();
        assert!(settings.database.listen_url.is_none());
        assert_eq!(settings.database.direct_url(), &settings.database.url);
        let direct = "postgres://app:l1st3n@db-direct:5432/app";
        let settings = settings_from(&[DB, ("DATABASE_LISTEN_URL", direct)]).unwrap();
        assert_eq!(settings.database.direct_url().as_str(), direct);
        assert!(!format!("{settings:?}").contains("l1st3n"));
        let err =
            settings_from(&[DB, ("DATABASE_LISTEN_URL", "mysql://u:t0ps3cret@db/x")]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_LISTEN_URL");
        assert!(!err.to_string().contains("t0ps3cret"));
    }

    #[test]
    fn empty_redis_url_means_in_memory_only() {
        let settings = settings_from(&[DB, ("REDIS_URL", "  ")]).unwrap();
        assert!(settings.cache.topology.is_none());
    }

    #[test]
    fn cluster_and_sentinel_topologies_are_chosen_by_their_variables() {
        let cluster = settings_from(&[
            DB,
            ("REDIS_CLUSTER_NODES", "10.0.0.1:7000, 10.0.0.2:7001,"),
            ("REDIS_PASSWORD", "hunter2"),
        ])
        .unwrap();
        let Some(RedisTopology::Cluster { nodes, auth }) = cluster.cache.topology else {
            panic!("expected a cluster");
        };
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].to_string(), "10.0.0.2:7001");
        assert_eq!(auth.password.as_deref(), Some("hunter2"));

        let sentinel = settings_from(&[
            DB,
            ("REDIS_SENTINELS", "s1:26379,s2:26379,s3:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
        ])
        .unwrap();
        let Some(RedisTopology::Sentinel {
            sentinels, master, ..
        }) = sentinel.cache.topology
        else {
            panic!("expected sentinels");
        };
        assert_eq!((sentinels.len(), master.as_str()), (3, "mymaster"));
    }

    #[test]
    fn redis_topology_mistakes_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("REDIS_URL", "redis://h:1"), ("REDIS_CLUSTER_NODES", "h:2")],
                "REDIS_CLUSTER_NODES",
            ),
            (&[("REDIS_CLUSTER_NODES", "nohost")], "REDIS_CLUSTER_NODES"),
            (&[("REDIS_CLUSTER_NODES", " , ")], "REDIS_CLUSTER_NODES"),
            (&[("REDIS_SENTINELS", "s1:26379")], "REDIS_SENTINEL_MASTER"),
            (&[("REDIS_SENTINEL_MASTER", "m")], "REDIS_SENTINEL_MASTER"),
        ];
        for (pairs, variable) in cases {
            let mut all = vec![DB];
            all.extend_from_slice(pairs);
            let err = settings_from(&all).unwrap_err();
            assert_eq!(&err.variable, variable, "{pairs:?}");
        }
    }

    #[test]
    fn debug_output_carries_no_secret() {
        let secrets = [
            "canary-db-pw",
            "canary-internal",
            "canary-metrics",
            "canary-webhook",
            "canary-redis-pw",
            "canary-sentinel-pw",
        ];
        let single = settings_from(&[
            (
                "DATABASE_URL",
                "postgres://app:canary-db-pw@localhost:5432/app",
            ),
            ("REDIS_URL", "redis://default:canary-redis-pw@cache:6379/0"),
            ("INTERNAL_API_TOKEN", "canary-internal"),
            ("METRICS_TOKEN", "canary-metrics"),
            ("GHL_WEBHOOK_SECRET", "canary-webhook"),
        ])
        .unwrap();
        let sentinel = settings_from(&[
            (
                "DATABASE_URL",
                "postgres://app:canary-db-pw@localhost:5432/app",
            ),
            ("REDIS_SENTINELS", "s1:26379,s2:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "canary-redis-pw"),
            ("REDIS_SENTINEL_PASSWORD", "canary-sentinel-pw"),
        ])
        .unwrap();
        for settings in [single, sentinel] {
            let printed = format!("{settings:?} {settings:#?}");
            for secret in secrets {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
            assert!(printed.contains("app:***@localhost"), "{printed}");
        }
        let with_tokens = format!(
            "{:?}",
            settings_from(&[DB, ("INTERNAL_API_TOKEN", "t")]).unwrap()
        );
        assert!(with_tokens.contains(r#"internal_api_token: Some("***")"#));
        assert!(with_tokens.contains("metrics_token: None"));
    }

    #[test]
    fn redis_tls_is_chosen_by_scheme_or_flag_and_its_mistakes_are_named() {
        let tls = settings_from(&[DB, ("REDIS_URL", "rediss://cache:6380")]).unwrap();
        assert!(tls.cache.tls.enabled && tls.cache.tls.ca.is_none());
        let upgraded = settings_from(&[
            DB,
            ("REDIS_URL", "redis://cache:6380"),
            ("REDIS_TLS", "true"),
        ])
        .unwrap();
        assert_eq!(
            upgraded.cache.topology,
            Some(RedisTopology::single("rediss://cache:6380"))
        );
        let cluster = settings_from(&[
            DB,
            (
                "REDIS_CLUSTER_NODES",
                "rediss://10.0.0.1:7000,rediss://10.0.0.2:7000",
            ),
        ])
        .unwrap();
        assert!(cluster.cache.tls.enabled);
        let sentinel = settings_from(&[
            DB,
            ("REDIS_SENTINELS", "s1:26379"),
            ("REDIS_SENTINEL_MASTER", "m"),
            ("REDIS_TLS", "true"),
            ("REDIS_SENTINEL_TLS", "false"),
        ])
        .unwrap();
        assert!(sentinel.cache.tls.enabled && !sentinel.cache.tls.sentinels);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("REDIS_URL", "rediss://h:1"), ("REDIS_TLS", "false")],
                "REDIS_TLS",
            ),
            (&[("REDIS_URL", "rediss://h:1/#insecure")], "REDIS_URL"),
            (
                &[("REDIS_CLUSTER_NODES", "rediss://h:1,h:2")],
                "REDIS_CLUSTER_NODES",
            ),
            (
                &[
                    ("REDIS_URL", "redis://h:1"),
                    ("REDIS_TLS_CA_FILE", "/etc/hostname"),
                ],
                "REDIS_TLS_CA_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://h:1"),
                    ("REDIS_TLS_CA_FILE", "/no/such/ca.pem"),
                ],
                "REDIS_TLS_CA_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://h:1"),
                    ("REDIS_TLS_KEY_FILE", "/no/such.key"),
                ],
                "REDIS_TLS_KEY_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://h:1"),
                    ("REDIS_TLS_INSECURE_SKIP_VERIFY", "true"),
                    ("APP_ENV", "production"),
                ],
                "REDIS_TLS_INSECURE_SKIP_VERIFY",
            ),
            (
                &[
                    ("REDIS_URL", "redis://h:1"),
                    ("REDIS_TLS_INSECURE_SKIP_VERIFY", "true"),
                ],
                "REDIS_TLS_INSECURE_SKIP_VERIFY",
            ),
        ];
        for (pairs, variable) in cases {
            let mut all = vec![DB];
            all.extend_from_slice(pairs);
            let err = settings_from(&all).unwrap_err();
            assert_eq!(&err.variable, variable, "{pairs:?}: {err}");
        }
        let dev = settings_from(&[
            DB,
            ("REDIS_URL", "rediss://h:1"),
            ("REDIS_TLS_INSECURE_SKIP_VERIFY", "true"),
        ])
        .unwrap();
        assert!(dev.cache.tls.skip_verify);
    }

    #[test]
    fn the_listen_url_and_pooler_mode_are_read_and_masked() {
        let plain = settings_from(&[DB]).unwrap();
        assert_eq!(plain.database.pooler, PoolerMode::None);
        assert_eq!(plain.database.direct_url(), &plain.database.url);
        let pooled = settings_from(&[
            ("DATABASE_URL", "postgres://app:pool-pw@pooler:6543/app"),
            (
                "DATABASE_LISTEN_URL",
                "postgres://app:direct-pw@db:5432/app",
            ),
            ("DATABASE_POOLER", "transaction"),
        ])
        .unwrap();
        assert_eq!(pooled.database.pooler, PoolerMode::Transaction);
        assert_eq!(pooled.database.direct_url().port(), Some(5432));
        let printed = format!("{pooled:?}");
        assert!(
            !printed.contains("direct-pw") && !printed.contains("pool-pw"),
            "{printed}"
        );
        let err = settings_from(&[DB, ("DATABASE_POOLER", "transaction")]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_LISTEN_URL");
        for (name, value) in [
            ("DATABASE_LISTEN_URL", "mysql://x:leak-pw@h/db"),
            ("DATABASE_POOLER", "statement"),
        ] {
            let err = settings_from(&[DB, (name, value)]).unwrap_err();
            assert_eq!(err.variable, name);
            assert!(!err.to_string().contains("leak-pw"));
        }
    }

    #[test]
    fn mask_url_hides_the_password_only() {
        let url = Url::parse("redis://default:hunter2@cache:6379/0").unwrap();
        assert_eq!(mask_url(&url), "redis://default:***@cache:6379/0");
        let plain = Url::parse("postgres://localhost/db").unwrap();
        assert_eq!(mask_url(&plain), "postgres://localhost/db");
    }
}

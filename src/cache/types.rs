//! Public value types: settings, read results, errors, stats and health shapes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::breaker::BreakerState;
use super::node_probe::TopologyHealth;
use crate::config::{CacheConfig, RedisTls, RedisTopology};

/// Cache configuration (typed settings; the service maps env vars onto it).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `CACHE_PREFIX`, default `gwd`.
    pub prefix: String,
    /// `None` => L1 only (type `in-memory`, health `healthy`).
    pub redis: Option<RedisTopology>,
    /// TLS for every connection to `redis`.
    pub redis_tls: RedisTls,
    /// Max L1 entries; 0 disables L1.
    pub l1_capacity: u64,
    /// Max L1 bytes (weigher bound).
    pub l1_max_bytes: u64,
    /// Budget per L2 operation: pool checkout + command.
    pub l2_budget: Duration,
    pub l2_pool_size: u32,
    /// Consecutive L2 failures that open the breaker.
    pub breaker_threshold: u32,
    /// Open time before the one probe.
    pub breaker_cooldown: Duration,
    /// How long past its logical expiry a value may be served STALE when the loader fails.
    pub stale_grace: Duration,
    /// TTL of cached "not found".
    pub negative_ttl: Duration,
    /// Unique per process, for pub/sub self-filtering.
    pub instance_id: String,
    /// Skip both tiers in `get_or_load` (status BYPASS). Default false.
    pub bypass: bool,
    /// `CACHE_BYPASS`: workflow and analysis reads skip both tiers (benchmarks of the
    /// uncached path); auth and plan lookups stay cached. The repositories ask for it through
    /// `ReadThrough::entity_reads`.
    pub bypass_entity_reads: bool,
    /// Resources that never use the in-process tier (benchmarks of the Redis tier). Default
    /// none.
    pub l1_skip: Vec<super::Resource>,
    /// Max concurrent fire-and-forget L2 writes. Default 256.
    pub max_pending_writes: usize,
    /// `REGION`: the `region` label of every cache metric, and which bus messages come from
    /// another region (see `region`).
    pub region: String,
    /// This instance reads a replica (`DATABASE_READ_URL`): loads from it are cached only
    /// when they are at least as new as the invalidations applied here.
    pub replica: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            prefix: "gwd".into(),
            redis: None,
            redis_tls: RedisTls::default(),
            l1_capacity: 10_000,
            l1_max_bytes: 64 * 1024 * 1024,
            l2_budget: Duration::from_millis(50),
            l2_pool_size: 16,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            stale_grace: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
            instance_id: format!("{:016x}", rand::random::<u64>()),
            bypass: false,
            bypass_entity_reads: false,
            l1_skip: Vec::new(),
            max_pending_writes: 256,
            region: crate::config::DEFAULT_REGION.to_owned(),
            replica: false,
        }
    }
}

impl CacheSettings {
    /// The cache's view of its configuration (`CACHE_*`, `REDIS_*`).
    pub fn from_config(config: &CacheConfig) -> Self {
        CacheSettings {
            prefix: config.prefix.clone(),
            redis: config.topology.clone(),
            redis_tls: config.tls.clone(),
            l1_capacity: config.l1_capacity,
            l1_max_bytes: config.l1_max_bytes,
            l2_budget: config.l2_budget,
            l2_pool_size: config.pool_size,
            bypass_entity_reads: config.bypass,
            l1_skip: if config.l1_bypass {
                vec![
                    super::Resource::Workflow,
                    super::Resource::Workflows,
                    super::Resource::Analysis,
                ]
            } else {
                Vec::new()
            },
            ..CacheSettings::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid Redis configuration ({0})")]
    InvalidRedisUrl(String),
    #[error("redis unavailable")]
    Unavailable,
    #[error("Cache::new with REDIS_URL must be called inside a tokio runtime")]
    NoRuntime,
    #[error("redis: {0}")]
    Redis(String),
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    L1,
    L2,
}

impl Tier {
    /// `X-Cache-Tier` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
        }
    }
}

/// A value found in a tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    pub bytes: Bytes,
    pub tier: Tier,
    /// Past its logical expiry (only from [`Cache::get_with_stale`]).
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit(Tier),
    Miss,
    Stale,
    Bypass,
}

impl CacheStatus {
    /// `X-Cache-Status` value.
    pub fn header_value(self) -> &'static str {
        match self {
            CacheStatus::Hit(_) => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Bypass => "BYPASS",
        }
    }
    /// `X-Cache-Tier` value, on hits only.
    pub fn tier(self) -> Option<&'static str> {
        match self {
            CacheStatus::Hit(t) => Some(t.as_str()),
            _ => None,
        }
    }
}

/// How a write's invalidation ended ([`super::Cache::invalidate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Dropped here; in Redis tombstoned, published and acknowledged by every receiver (or
    /// every receiver's lease waited out). Also: no Redis configured. The write may be answered.
    Applied,
    /// Redis did not answer this instance at all for longer than a lease: every other instance
    /// that shares this outage has stopped trusting what it read from Redis, and the write's
    /// Postgres notice was acknowledged by every instance heard from lately (or their lease
    /// waited out). Queued for replay; the write may be answered.
    RedisUnreachable,
    /// Redis still answers this instance (its subscriber hears pings) but the invalidation
    /// could not be applied within the deadline: another instance may still serve the old
    /// value. Queued for replay; the write must not be answered as a success.
    Unconfirmed,
}

/// A shared fixed-window counter after one increment ([`super::Cache::count_in_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Events counted in the current window, this one included.
    pub count: u64,
    /// Until the window ends and the count starts again from zero.
    pub resets_in: Duration,
}

/// Result of a read-through: `value: None` = not found (possibly a cached "not found").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRead {
    pub value: Option<Bytes>,
    pub status: CacheStatus,
}

/// What the in-process tier alone says about a key ([`crate::cache::Cache::probe_l1`]).
#[derive(Debug)]
pub enum L1Probe {
    /// A fresh hit: the answer.
    Fresh(CacheRead),
    /// Not fresh here; `stale` is an expired copy still within its grace period.
    Missed { stale: Option<Bytes> },
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError<E> {
    /// The loader failed and no stale value existed; shared by every single-flight waiter.
    #[error("loader failed")]
    Loader(Arc<E>),
    /// The loader panicked.
    #[error("loader panicked")]
    Panicked,
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Loader(e) => LoadError::Loader(e.clone()),
            LoadError::Panicked => LoadError::Panicked,
        }
    }
}

/// CONTRACT §6 `/internal/cache-stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    #[serde(rename = "type")]
    pub kind: CacheType,
    pub connected: bool,
    pub l1: L1Stats,
    pub l2: L2Stats,
    pub loads: u64,
    pub coalesced: u64,
    pub stale_served: u64,
    pub hit_ratio: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct L1Stats {
    pub entries: u64,
    pub capacity: u64,
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct L2Stats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub breaker: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum CacheType {
    #[serde(rename = "redis")]
    Redis,
    #[serde(rename = "in-memory")]
    InMemory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CacheHealthStatus)]
pub enum HealthStatus {
    Healthy,
    Degraded,
}

/// CONTRACT §5 `checks.cache`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheHealth {
    pub status: HealthStatus,
    #[serde(rename = "type")]
    pub kind: CacheType,
    /// Present when Redis is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub connected: Option<bool>,
    /// The in-memory tier's entry count.
    pub size: u64,
    /// Why, when not healthy (`Redis unavailable, using fallback`, `Redis not configured`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
    /// With Redis configured: the topology and how many of its nodes answer (the node,
    /// every Cluster member, or the Sentinels); checks run at most once per second per
    /// instance and are shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub topology: Option<TopologyHealth>,
}

impl CacheHealth {
    /// The same check without node addresses, for callers that are not operators.
    pub fn without_addresses(mut self) -> CacheHealth {
        self.topology = self.topology.map(TopologyHealth::without_addresses);
        self
    }
}

/// What an invalidation reached: [`Invalidation`] plus, when it was published, how many
/// subscribers PUBLISH reported and how many of them acknowledged within their lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidationReport {
    pub outcome: Invalidation,
    pub receivers: u64,
    pub acknowledged: u64,
}

//! Layered read-through cache: an in-process tier (L1, quick_cache) in front of Redis (L2,
//! bb8 pool), built so that Redis can only make the service faster, never take it down.
//!
//! The design (reads, single flight, fail fast, invalidation and the stale-set guard, the bus,
//! writes, bypass) is explained in `docs/cache.md`. The code is split by responsibility:
//! - [`reads`]: L1 and L2 lookups and the read-through entry points;
//! - [`flights`]: one Redis read per key and thread, one load per key in the process;
//! - [`writes`]: fills, explicit sets, warming;
//! - [`invalidation`]: drop, tombstone, publish, acknowledgements, the pending replay;
//! - [`bus`]: pub/sub messages, the lease and trust;
//! - [`pgbus`]: the second bus through Postgres (notices, heartbeat lease, deduplication);
//! - [`region`]: several regions: the positions replica loads must reach, other regions'
//!   writes, the applied watermark, and the task-locals that carry positions;
//! - [`replication`]: where the region's replica stands (replayed position, lag, waiting);
//! - `token_reads`: reads carrying a consistency token;
//! - [`ops`]: flush, stats, shutdown, the shared window counter;
//! - [`node_probe`]: the health check and its view of the topology;
//! - `l2_calls`: every Redis command under a budget, feeding the breaker;
//! - [`connect`]: addresses and TLS for every Redis connection (one connector for all);
//! - `tasks`: the reconnect and subscriber loops.
//!
//! Here: the shared state ([`Cache`] around `Inner`) and its constructor.

pub mod breaker;
mod bus;
pub mod connect;
mod flights;
pub mod guard;
mod invalidation;
pub mod keys;
mod l1;
pub mod l2;
mod l2_calls;
pub mod metrics;
pub mod node_probe;
mod ops;
mod pgbus;
mod reads;
pub mod region;
pub mod replication;
mod tasks;
mod thread_flights;
mod token_reads;
pub mod topology;
pub mod ttl;
mod types;
pub mod wire;
mod writes;

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use breaker::BreakerState;
pub use bus::LEASE_MS;
pub use keys::{CacheKey, CacheKeys, Resource};
pub use node_probe::{NodeCounts, TopologyHealth};
pub use replication::{ReplicaState, Replication};
pub use types::*;

use breaker::Breaker;
use flights::SharedLoad;
use guard::Guard;
use l1::{L1Entry, L1Weigher, L1};
use l2::L2;
use metrics::CacheMetrics;
use reads::L2Look;
use tasks::{reconnect_loop, subscriber_loop};
use thread_flights::ThreadFlights;

struct Inner {
    s: CacheSettings,
    l1: Option<L1>,
    l2: Option<L2>,
    breaker: Breaker,
    guard: Guard,
    m: CacheMetrics,
    inflight: Mutex<HashMap<(String, TypeId), (u64, SharedLoad)>>,
    /// Redis reads after an L1 miss, shared by the requests of one worker thread.
    l2_reads: ThreadFlights<L2Look>,
    flight_ids: AtomicU64,
    writes: Arc<Semaphore>,
    pending: Mutex<HashSet<String>>,
    pending_overflow: AtomicBool,
    trusted_after_ms: AtomicU64,
    /// Bumped whenever trust in Redis is withdrawn: L1 copies taken from Redis before stop
    /// answering (starts at 1; 0 marks copies that did not come from Redis).
    l2_epoch: AtomicU64,
    connected: AtomicBool,
    subscribed: AtomicBool,
    /// Numbers the acknowledgement keys of this instance's invalidations.
    ack_seq: AtomicU64,
    /// When the last PING answered on the invalidation subscriber was sent (unix ms); the
    /// lease runs `LEASE_MS` from there.
    last_heard_ms: AtomicU64,
    probed: AtomicBool,
    shut: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    channel: String,
    fill_script: Arc<redis::Script>,
    del_script: Arc<redis::Script>,
    counter_script: Arc<redis::Script>,
    /// Health's kept connections to the Sentinels (Sentinel topology only).
    sentinel_probe: Option<node_probe::SentinelProbe>,
    /// The second invalidation bus, through Postgres.
    pg: pgbus::PgBus,
    /// Positions on the primary: what loads must reach, what was applied (several regions).
    region: region::Region,
    /// Where this region's replica stands.
    replication: Arc<Replication>,
    me: Weak<Inner>,
}

/// The cache handle (cheap to clone).
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.0.s.prefix)
            .field("redis", &self.0.l2.is_some())
            .finish()
    }
}

/// A fresh L1 entry as the answer to a read.
fn l1_hit(e: L1Entry) -> CacheRead {
    CacheRead {
        value: (!e.negative).then_some(e.bytes),
        status: CacheStatus::Hit(Tier::L1),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cache {
    /// Build the cache. Succeeds with Redis down or unreachable. Must run inside a tokio
    /// runtime when `redis` is set (spawns the reconnect and subscriber tasks).
    pub fn new(
        settings: CacheSettings,
        registry: &prometheus::Registry,
    ) -> Result<Cache, CacheError> {
        let runtime = match &settings.redis {
            Some(_) => {
                Some(tokio::runtime::Handle::try_current().map_err(|_| CacheError::NoRuntime)?)
            }
            None => None,
        };
        let m = CacheMetrics::new(registry, &settings.region)?;
        let l1 = (settings.l1_capacity > 0).then(|| {
            let min = (settings.l1_max_bytes / settings.l1_capacity).max(1);
            L1::with_weighter(
                settings.l1_capacity as usize,
                settings.l1_max_bytes.max(min),
                L1Weigher { min },
            )
        });
        let l2 = match &settings.redis {
            None => None,
            Some(topology) => Some(
                L2::new(
                    topology,
                    &settings.redis_tls,
                    settings.l2_pool_size,
                    settings.l2_budget,
                    &m,
                )
                .map_err(|e| CacheError::InvalidRedisUrl(format!("{:?}", e.kind())))?,
            ),
        };
        let (shutdown_tx, _) = watch::channel(false);
        let pg = pgbus::PgBus::new(&settings.prefix);
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| Inner {
            channel: format!("{}:invalidate", settings.prefix),
            breaker: Breaker::new(settings.breaker_threshold),
            guard: Guard::default(),
            inflight: Mutex::new(HashMap::new()),
            l2_reads: ThreadFlights::new(settings.l2_budget),
            flight_ids: AtomicU64::new(0),
            writes: Arc::new(Semaphore::new(settings.max_pending_writes.max(1))),
            pending: Mutex::new(HashSet::new()),
            pending_overflow: AtomicBool::new(false),
            trusted_after_ms: AtomicU64::new(0),
            l2_epoch: AtomicU64::new(1),
            connected: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            ack_seq: AtomicU64::new(0),
            last_heard_ms: AtomicU64::new(0),
            probed: AtomicBool::new(false),
            shut: AtomicBool::new(false),
            shutdown_tx,
            tasks: Mutex::new(Vec::new()),
            fill_script: Arc::new(redis::Script::new(l2::FILL_SCRIPT)),
            del_script: Arc::new(redis::Script::new(l2::DEL_IF_EQ_SCRIPT)),
            counter_script: Arc::new(redis::Script::new(l2::WINDOW_COUNTER_SCRIPT)),
            sentinel_probe: l2.as_ref().and_then(|l2| {
                node_probe::SentinelProbe::for_topology(&l2.topology, &l2.endpoints)
            }),
            me: me.clone(),
            pg,
            region: region::Region::new(&settings.region, settings.replica),
            replication: Arc::new(Replication::new(settings.replica)),
            s: settings,
            l1,
            l2,
            m,
        });
        if let (Some(rt), Some(_)) = (runtime, &inner.l2) {
            let weak = Arc::downgrade(&inner);
            let rx = inner.shutdown_tx.subscribe();
            let t1 = rt.spawn(reconnect_loop(weak.clone(), rx.clone()));
            let t2 = rt.spawn(subscriber_loop(weak, rx));
            lock(&inner.tasks).extend([t1, t2]);
        }
        Ok(Cache(inner))
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.0.s
    }

    /// Key builders for this cache's prefix.
    pub fn keys(&self) -> CacheKeys<'_> {
        CacheKeys::new(&self.0.s.prefix)
    }

    /// Where this region's replica stands (fed by the repository's replica watcher).
    pub fn replication(&self) -> Arc<Replication> {
        Arc::clone(&self.0.replication)
    }

    /// `REGION`.
    pub fn region(&self) -> &str {
        &self.0.region.name
    }

    /// Is `get_or_load` bypassing the tiers (settings.bypass)?
    pub fn bypass(&self) -> bool {
        self.0.s.bypass
    }

    /// Wait (bounded) until the startup probe ran and, with Redis up, the subscriber is
    /// subscribed. Returns whether both are true. Mostly for tests and startup logs.
    pub async fn wait_ready(&self, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let i = &self.0;
            let ready = i.l2.is_none()
                || (i.probed.load(Ordering::Acquire)
                    && i.connected.load(Ordering::Acquire)
                    && i.subscribed.load(Ordering::Acquire));
            if ready {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisTopology;
    use bytes::Bytes;
    use l1::ENTRY_OVERHEAD;
    use quick_cache::Weighter;

    #[test]
    fn status_header_values() {
        assert_eq!(CacheStatus::Hit(Tier::L1).header_value(), "HIT");
        assert_eq!(CacheStatus::Hit(Tier::L2).tier(), Some("l2"));
        assert_eq!(CacheStatus::Miss.header_value(), "MISS");
        assert_eq!(CacheStatus::Stale.header_value(), "STALE");
        assert_eq!(CacheStatus::Bypass.header_value(), "BYPASS");
        assert_eq!(CacheStatus::Miss.tier(), None);
    }

    #[test]
    fn weigher_bounds_entries_and_bytes() {
        let w = L1Weigher { min: 100 };
        let e = |n: usize| L1Entry {
            bytes: Bytes::from(vec![0u8; n]),
            logical_ms: 0,
            physical_ms: 0,
            negative: false,
            l2_epoch: 0,
            at: 0,
        };
        assert_eq!(w.weight(&"k".to_string(), &e(0)), 100);
        assert_eq!(
            w.weight(&"k".to_string(), &e(1000)),
            1 + 1000 + ENTRY_OVERHEAD
        );
    }

    #[test]
    fn new_without_a_runtime_fails_cleanly_only_when_redis_is_configured() {
        let r = prometheus::Registry::new();
        assert!(Cache::new(CacheSettings::default(), &r).is_ok());
        let s = CacheSettings {
            redis: Some(RedisTopology::single("redis://127.0.0.1:1")),
            ..CacheSettings::default()
        };
        assert!(matches!(
            Cache::new(s, &prometheus::Registry::new()),
            Err(CacheError::NoRuntime)
        ));
    }
}

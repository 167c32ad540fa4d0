//! Prometheus metrics on the service's registry. No location ids in any label.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::keys::Resource;

#[derive(Debug, Clone, Copy)]
pub enum Layer {
    Memory = 0,
    Redis = 1,
}

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Hit = 0,
    Miss = 1,
    Set = 2,
    Del = 3,
    Error = 4,
}

const OPS: [&str; 5] = ["hit", "miss", "set", "del", "error"];
const TYPES: [&str; 2] = ["memory", "redis"];

pub struct CacheMetrics {
    /// Pre-resolved `cache_operations_total` children: [type][op][resource].
    ops: Vec<IntCounter>,
    pub l2_duration: Histogram,
    pub breaker_state: IntGauge,
    pub l1_entries: IntGauge,
    pub l1_weight: IntGauge,
    pub pool_connections: IntGauge,
    pub pool_idle: IntGauge,
    pub pending_invalidations: IntGauge,
    pub decode_errors: IntCounter,
    pub stale_served: IntCounter,
    pub coalesced: IntCounter,
    pub loads: IntCounter,
    pub l2_timeouts: IntCounter,
    pub l2_errors: IntCounter,
    pub l2_connect_errors: IntCounter,
    pub dropped_writes: IntCounter,
    pub skipped_fills: IntCounter,
    pub ack_timeouts: IntCounter,
    pub unconfirmed_invalidations: IntCounter,
    pub invalidations_published: IntCounter,
    pub invalidation_receivers: IntCounter,
    pub invalidation_acks: IntCounter,
}

impl std::fmt::Debug for CacheMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheMetrics")
    }
}

/// Registers the cache's metrics, every one labelled with the instance's region.
struct Labelled<'a> {
    registry: &'a Registry,
    region: &'a str,
}

impl Labelled<'_> {
    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).const_label("region", self.region)
    }

    fn counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        let c = IntCounter::with_opts(self.opts(name, help))?;
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        let g = IntGauge::with_opts(self.opts(name, help))?;
        self.registry.register(Box::new(g.clone()))?;
        Ok(g)
    }

    /// `cache_operations_total`, its children resolved once in the order
    /// [`CacheMetrics::op`] indexes them: [type][op][resource].
    fn operations(&self) -> prometheus::Result<Vec<IntCounter>> {
        let ops_vec = IntCounterVec::new(
            self.opts(
                "cache_operations_total",
                "Cache operations by tier, operation and resource",
            ),
            &["type", "operation", "resource"],
        )?;
        self.registry.register(Box::new(ops_vec.clone()))?;
        let mut ops = Vec::with_capacity(TYPES.len() * OPS.len() * Resource::ALL.len());
        for t in TYPES {
            for o in OPS {
                for res in Resource::ALL {
                    ops.push(ops_vec.with_label_values(&[t, o, res.as_str()]));
                }
            }
        }
        Ok(ops)
    }

    /// The Redis lookup latency histogram (the `l2` child of its `tier` label).
    fn l2_duration(&self) -> prometheus::Result<Histogram> {
        let dur = HistogramVec::new(
            HistogramOpts::new(
                "cache_operation_duration_seconds",
                "Redis (L2) lookup latency; in-process lookups (~100 ns) are counted, not timed",
            )
            .const_label("region", self.region)
            .buckets(vec![
                0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25,
            ]),
            &["tier"],
        )?;
        self.registry.register(Box::new(dur.clone()))?;
        Ok(dur.with_label_values(&["l2"]))
    }
}

impl CacheMetrics {
    /// `region`: `REGION`, a constant label of every series (regions scraped by one
    /// Prometheus stay apart).
    pub fn new(registry: &Registry, region: &str) -> prometheus::Result<CacheMetrics> {
        let labelled = Labelled { registry, region };
        let (counter, gauge) = (
            |name: &str, help: &str| labelled.counter(name, help),
            |name: &str, help: &str| labelled.gauge(name, help),
        );
        Ok(CacheMetrics {
            ops: labelled.operations()?,
            l2_duration: labelled.l2_duration()?,
            breaker_state: gauge("cache_breaker_state",
                "Redis circuit breaker: 0 closed, 1 open, 2 half_open",
            )?,
            l1_entries: gauge("cache_l1_entries", "Entries in the in-process tier")?,
            l1_weight: gauge("cache_l1_weight_bytes",
                "Weighted bytes in the in-process tier",
            )?,
            pool_connections: gauge("cache_redis_pool_connections", "Redis pool connections")?,
            pool_idle: gauge("cache_redis_pool_idle_connections",
                "Idle Redis pool connections",
            )?,
            pending_invalidations: gauge("cache_pending_invalidations",
                "Invalidations waiting for Redis to come back",
            )?,
            decode_errors: counter("cache_decode_errors_total",
                "L2 values that did not decode",
            )?,
            stale_served: counter("cache_stale_served_total",
                "Stale values served because the loader failed",
            )?,
            coalesced: counter("cache_coalesced_total",
                "Reads that joined an in-flight Redis read or load",
            )?,
            loads: counter("cache_loads_total", "Loader calls")?,
            l2_timeouts: counter("cache_redis_timeouts_total",
                "Redis operations over budget",
            )?,
            l2_errors: counter("cache_redis_errors_total",
                "Redis operations that failed",
            )?,
            l2_connect_errors: counter("cache_redis_connect_errors_total",
                "Redis connection attempts that failed",
            )?,
            dropped_writes: counter("cache_redis_dropped_writes_total",
                "L2 writes dropped because too many were in flight",
            )?,
            skipped_fills: counter("cache_skipped_fills_total",
                "Fills skipped because the key was invalidated during the load",
            )?,
            ack_timeouts: counter("cache_invalidation_ack_timeouts_total",
                "Invalidations not acknowledged by every receiver (the writer waited out their lease)",
            )?,
            unconfirmed_invalidations: counter("cache_unconfirmed_invalidations_total",
                "Writes whose invalidation could not be applied in Redis while Redis still answered (the write was answered 503)",
            )?,
            invalidations_published: counter("cache_invalidations_published_total",
                "Invalidations applied in Redis and published to the other instances",
            )?,
            invalidation_receivers: counter("cache_invalidation_receivers_total",
                "Subscribers PUBLISH reported for this instance's invalidations (acknowledgements expected)",
            )?,
            invalidation_acks: counter("cache_invalidation_acks_total",
                "Acknowledgements received within the receivers' lease",
            )?,
        })
    }

    #[inline]
    pub fn op(&self, tier: Layer, op: Op, res: Resource) -> &IntCounter {
        let n = Resource::ALL.len();
        &self.ops[(tier as usize * OPS.len() + op as usize) * n + res.index()]
    }
}

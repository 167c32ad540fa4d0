//! The last hour of this instance's cache, at 10 s resolution, for the dashboard page
//! (`GET /internal/cache-stats/history`).
//!
//! A background task takes a [`Reading`] (the cumulative counters and gauges of the
//! Prometheus registry, plus the cache's mode) every [`SAMPLE_INTERVAL`]; the ring keeps the
//! differences between consecutive readings as [`Point`]s, at most [`CAPACITY`] of them, so
//! memory is bounded whatever the traffic (a point holds a fixed set of numbers: one row per
//! resource and per rate-limit label set, both bounded by the code, never by tenants).
//! Readings come from the registry rather than from new hooks in the cache, so the history
//! shows exactly what `/metrics` shows Prometheus. The fleet view is Grafana's job: this is
//! one instance's memory, and it is empty after a restart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::proto::{MetricFamily, MetricType};
use serde::Serialize;

use crate::cache::{CacheStats, CacheType, Resource};

/// How often the sampler takes a reading.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Points kept: one hour at [`SAMPLE_INTERVAL`].
pub const CAPACITY: usize = 360;

/// Cumulative counts of one resource in both tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TierCounts {
    l1_hits: u64,
    l1_misses: u64,
    l2_hits: u64,
    l2_misses: u64,
}

/// What the registry and the cache said at one moment: counters as totals since start.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    at_ms: u64,
    resources: BTreeMap<String, TierCounts>,
    /// `(upper bound in seconds, cumulative count)` of the L2 latency histogram.
    l2_buckets: Vec<(f64, u64)>,
    counters: BTreeMap<&'static str, u64>,
    gauges: BTreeMap<&'static str, i64>,
    rate_limit: BTreeMap<(String, String, String), u64>,
    breaker: String,
    cache_type: &'static str,
    connected: bool,
}

/// Counters read by name (all cumulative, no labels).
const COUNTERS: [&str; 9] = [
    "cache_stale_served_total",
    "cache_coalesced_total",
    "cache_loads_total",
    "cache_invalidations_published_total",
    "cache_invalidation_receivers_total",
    "cache_invalidation_acks_total",
    "cache_invalidation_ack_timeouts_total",
    "cache_unconfirmed_invalidations_total",
    "cache_redis_errors_total",
];

/// A label name and the value that selects one series of a gauge family.
type Selector = Option<(&'static str, &'static str)>;

/// Gauges read by name (key in the point, metric name, which series).
const GAUGES: [(&str, &str, Selector); 5] = [
    ("redisPoolConnections", "cache_redis_pool_connections", None),
    ("redisPoolIdle", "cache_redis_pool_idle_connections", None),
    ("dbPoolOpen", "db_pool_connections", Some(("state", "open"))),
    ("dbPoolIdle", "db_pool_connections", Some(("state", "idle"))),
    ("pendingInvalidations", "cache_pending_invalidations", None),
];

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    metric
        .get_label()
        .iter()
        .find(|pair| pair.name() == name)
        .map_or("", |pair| pair.value())
}

fn counter_value(metric: &prometheus::proto::Metric) -> u64 {
    // Prometheus counters are floats; ours only ever count whole events.
    metric.get_counter().value().max(0.0) as u64
}

impl Reading {
    /// Takes the numbers out of `families` (the registry's `gather()`) and `stats` (which
    /// also refreshed the cache's gauges just before the gather).
    pub fn new(at_ms: u64, stats: &CacheStats, families: &[MetricFamily]) -> Reading {
        let mut reading = Reading {
            at_ms,
            breaker: stats.l2.breaker.as_str().to_owned(),
            cache_type: match stats.kind {
                CacheType::Redis => "redis",
                CacheType::InMemory => "in-memory",
            },
            connected: stats.connected,
            ..Reading::default()
        };
        for resource in Resource::ALL {
            reading
                .resources
                .insert(resource.as_str().to_owned(), TierCounts::default());
        }
        for family in families {
            reading.take(family);
        }
        reading
    }

    fn take(&mut self, family: &MetricFamily) {
        let name = family.name();
        match name {
            "cache_operations_total" => {
                for metric in family.get_metric() {
                    let Some(counts) = self.resources.get_mut(label(metric, "resource")) else {
                        continue;
                    };
                    let slot = match (label(metric, "type"), label(metric, "operation")) {
                        ("memory", "hit") => &mut counts.l1_hits,
                        ("memory", "miss") => &mut counts.l1_misses,
                        ("redis", "hit") => &mut counts.l2_hits,
                        ("redis", "miss") => &mut counts.l2_misses,
                        _ => continue,
                    };
                    *slot = counter_value(metric);
                }
            }
            "cache_operation_duration_seconds" => {
                if let Some(metric) = family
                    .get_metric()
                    .iter()
                    .find(|m| label(m, "tier") == "l2")
                {
                    let histogram = metric.get_histogram();
                    self.l2_buckets = histogram
                        .get_bucket()
                        .iter()
                        .map(|b| (b.upper_bound(), b.cumulative_count()))
                        .collect();
                    self.l2_buckets
                        .push((f64::INFINITY, histogram.get_sample_count()));
                }
            }
            "rate_limit_decisions_total" => {
                for metric in family.get_metric() {
                    let key = (
                        label(metric, "quota").to_owned(),
                        label(metric, "outcome").to_owned(),
                        label(metric, "store").to_owned(),
                    );
                    self.rate_limit.insert(key, counter_value(metric));
                }
            }
            _ => {
                if let Some(known) = COUNTERS.iter().find(|known| **known == name) {
                    if family.get_field_type() == MetricType::COUNTER {
                        let total = family.get_metric().iter().map(counter_value).sum();
                        self.counters.insert(known, total);
                    }
                }
                for (key, gauge, selector) in GAUGES {
                    if gauge != name {
                        continue;
                    }
                    let value = family
                        .get_metric()
                        .iter()
                        .find(|m| selector.is_none_or(|(l, v)| label(m, l) == v))
                        .map(|m| m.get_gauge().value() as i64);
                    if let Some(value) = value {
                        self.gauges.insert(key, value);
                    }
                }
            }
        }
    }

    fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// One resource's lookups within a point.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePoint {
    pub resource: String,
    pub l1_hits: u64,
    pub l1_misses: u64,
    pub l2_hits: u64,
    pub l2_misses: u64,
    /// `(l1Hits + l2Hits) / (l1Hits + l1Misses)`, as `/internal/cache-stats` counts it;
    /// `null` when there was no lookup.
    pub hit_ratio: Option<f64>,
}

/// Invalidations this instance published within a point, and what came of them.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvalidationPoint {
    pub sent: u64,
    /// Acknowledgements expected (subscribers PUBLISH reported).
    pub receivers: u64,
    pub acknowledged: u64,
    pub ack_timeouts: u64,
    pub unconfirmed: u64,
    /// Waiting for Redis to come back, at the end of the point.
    pub pending: i64,
}

/// One rate-limit label set's decisions within a point.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RateLimitPoint {
    pub quota: String,
    pub outcome: String,
    pub store: String,
    pub count: u64,
}

/// The change between two readings: counts are per point, gauges and states at its end.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CacheHistoryPoint)]
pub struct Point {
    /// End of the point (unix ms).
    pub at: u64,
    /// Length of the point in seconds (about 10; the current point is shorter).
    pub seconds: f64,
    pub resources: Vec<ResourcePoint>,
    pub l1_hits: u64,
    pub l2_hits: u64,
    pub misses: u64,
    pub hit_ratio: Option<f64>,
    /// Redis lookups timed within the point, and their latency percentiles (ms, from the
    /// histogram's buckets as Prometheus' `histogram_quantile` would estimate them).
    pub l2_lookups: u64,
    pub l2_latency_p50_ms: Option<f64>,
    pub l2_latency_p99_ms: Option<f64>,
    pub l2_errors: u64,
    #[schema(value_type = crate::cache::BreakerState)]
    pub breaker: String,
    /// `redis`, or `in-memory` while Redis is not configured or not usable.
    #[schema(value_type = CacheType)]
    pub cache_type: String,
    pub connected: bool,
    pub stale_served: u64,
    pub coalesced: u64,
    pub loads: u64,
    pub invalidations: InvalidationPoint,
    /// `redisPoolConnections`, `redisPoolIdle`, `dbPoolOpen`, `dbPoolIdle` at the end.
    pub pools: BTreeMap<&'static str, i64>,
    pub rate_limit: Vec<RateLimitPoint>,
}

fn ratio(hits: u64, lookups: u64) -> Option<f64> {
    (lookups > 0).then(|| ((hits as f64 / lookups as f64) * 10_000.0).round() / 10_000.0)
}

/// The `q` quantile of the observations between two cumulative bucket lists, interpolated
/// linearly within the bucket it falls in (the largest finite bound when it falls past it).
fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0, |(_, c)| *c);
            (*bound, count.saturating_sub(earlier))
        })
        .collect();
    let total = counts.last().map_or(0, |(_, c)| *c);
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower_bound = 0.0;
    let mut lower_count = 0u64;
    for (bound, count) in &counts {
        if *count as f64 >= rank {
            if bound.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = (count - lower_count) as f64;
            let fraction = if in_bucket > 0.0 {
                (rank - lower_count as f64) / in_bucket
            } else {
                1.0
            };
            return Some(lower_bound + (bound - lower_bound) * fraction);
        }
        lower_bound = *bound;
        lower_count = *count;
    }
    Some(lower_bound)
}

fn millis(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| (s * 1_000_000.0).round() / 1_000.0)
}

impl Point {
    /// What happened between `before` and `after`. A counter that went down (it cannot,
    /// short of a restart) counts as zero rather than wrapping.
    pub fn between(before: &Reading, after: &Reading) -> Point {
        let mut resources = Vec::with_capacity(after.resources.len());
        let (mut l1_hits, mut l1_misses, mut l2_hits) = (0, 0, 0);
        for (name, now) in &after.resources {
            let then = before.resources.get(name).copied().unwrap_or_default();
            let row = TierCounts {
                l1_hits: now.l1_hits.saturating_sub(then.l1_hits),
                l1_misses: now.l1_misses.saturating_sub(then.l1_misses),
                l2_hits: now.l2_hits.saturating_sub(then.l2_hits),
                l2_misses: now.l2_misses.saturating_sub(then.l2_misses),
            };
            l1_hits += row.l1_hits;
            l1_misses += row.l1_misses;
            l2_hits += row.l2_hits;
            resources.push(ResourcePoint {
                resource: name.clone(),
                l1_hits: row.l1_hits,
                l1_misses: row.l1_misses,
                l2_hits: row.l2_hits,
                l2_misses: row.l2_misses,
                hit_ratio: ratio(row.l1_hits + row.l2_hits, row.l1_hits + row.l1_misses),
            });
        }
        let delta = |name: &str| after.counter(name).saturating_sub(before.counter(name));
        let l2_lookups = after
            .l2_buckets
            .last()
            .map_or(0, |(_, c)| *c)
            .saturating_sub(before.l2_buckets.last().map_or(0, |(_, c)| *c));
        let pools = GAUGES
            .iter()
            .filter(|(key, _, _)| *key != "pendingInvalidations")
            .map(|(key, _, _)| (*key, after.gauges.get(key).copied().unwrap_or(0)))
            .collect();
        let rate_limit = after
            .rate_limit
            .iter()
            .map(|(key, count)| RateLimitPoint {
                quota: key.0.clone(),
                outcome: key.1.clone(),
                store: key.2.clone(),
                count: count.saturating_sub(before.rate_limit.get(key).copied().unwrap_or(0)),
            })
            .collect();
        Point {
            at: after.at_ms,
            seconds: after.at_ms.saturating_sub(before.at_ms) as f64 / 1000.0,
            resources,
            l1_hits,
            l2_hits,
            misses: l1_misses.saturating_sub(l2_hits),
            hit_ratio: ratio(l1_hits + l2_hits, l1_hits + l1_misses),
            l2_lookups,
            l2_latency_p50_ms: millis(quantile(&before.l2_buckets, &after.l2_buckets, 0.5)),
            l2_latency_p99_ms: millis(quantile(&before.l2_buckets, &after.l2_buckets, 0.99)),
            l2_errors: delta("cache_redis_errors_total"),
            breaker: after.breaker.clone(),
            cache_type: after.cache_type.to_owned(),
            connected: after.connected,
            stale_served: delta("cache_stale_served_total"),
            coalesced: delta("cache_coalesced_total"),
            loads: delta("cache_loads_total"),
            invalidations: InvalidationPoint {
                sent: delta("cache_invalidations_published_total"),
                receivers: delta("cache_invalidation_receivers_total"),
                acknowledged: delta("cache_invalidation_acks_total"),
                ack_timeouts: delta("cache_invalidation_ack_timeouts_total"),
                unconfirmed: delta("cache_unconfirmed_invalidations_total"),
                pending: after
                    .gauges
                    .get("pendingInvalidations")
                    .copied()
                    .unwrap_or(0),
            },
            pools,
            rate_limit,
        }
    }
}

/// `History::interval_seconds`: always [`SAMPLE_INTERVAL`].
fn interval_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some([SAMPLE_INTERVAL.as_secs()]))
        .build()
}

/// `History::capacity`: always [`CAPACITY`].
fn capacity_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some([CAPACITY]))
        .build()
}

/// `GET /internal/cache-stats/history`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CacheHistory)]
pub struct History {
    /// Which instance this is (the history is this instance's only).
    pub instance_id: String,
    #[schema(schema_with = interval_schema)]
    pub interval_seconds: u64,
    #[schema(schema_with = capacity_schema)]
    pub capacity: usize,
    /// Oldest first.
    pub points: Vec<Point>,
    /// From the last sample until this request (so the page moves between samples).
    pub current: Option<Point>,
}

#[derive(Default)]
struct Ring {
    points: VecDeque<Point>,
    last: Option<Reading>,
}

/// The ring of points (shared by the sampler and the route).
#[derive(Default)]
pub struct CacheHistory {
    ring: Mutex<Ring>,
}

impl std::fmt::Debug for CacheHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheHistory")
    }
}

impl CacheHistory {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // The ring holds plain numbers: a panic elsewhere cannot leave it inconsistent.
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the point since the previous reading (the first reading only starts the ring),
    /// dropping the oldest past [`CAPACITY`].
    pub fn record(&self, reading: Reading) {
        let mut ring = self.ring();
        if let Some(last) = &ring.last {
            let point = Point::between(last, &reading);
            if ring.points.len() == CAPACITY {
                ring.points.pop_front();
            }
            ring.points.push_back(point);
        }
        ring.last = Some(reading);
    }

    /// The points so far, and the current one up to `now`.
    pub fn history(&self, instance_id: &str, now: &Reading) -> History {
        let ring = self.ring();
        History {
            instance_id: instance_id.to_owned(),
            interval_seconds: SAMPLE_INTERVAL.as_secs(),
            capacity: CAPACITY,
            points: ring.points.iter().cloned().collect(),
            current: ring.last.as_ref().map(|last| Point::between(last, now)),
        }
    }

    pub fn len(&self) -> usize {
        self.ring().points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "cache_history_tests.rs"]
mod tests;

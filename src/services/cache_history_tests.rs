use super::*;
use crate::cache::metrics::{CacheMetrics, Layer, Op};
use crate::cache::{BreakerState, L1Stats, L2Stats};

fn stats(kind: CacheType, breaker: BreakerState) -> CacheStats {
    CacheStats {
        kind,
        connected: kind == CacheType::Redis,
        l1: L1Stats {
            entries: 0,
            capacity: 10,
            hits: 0,
            misses: 0,
        },
        l2: L2Stats {
            hits: 0,
            misses: 0,
            errors: 0,
            timeouts: 0,
            breaker,
        },
        loads: 0,
        coalesced: 0,
        stale_served: 0,
        hit_ratio: 0.0,
    }
}

struct Fixture {
    registry: prometheus::Registry,
    metrics: CacheMetrics,
}

impl Fixture {
    fn new() -> Fixture {
        let registry = prometheus::Registry::new();
        let metrics = CacheMetrics::new(&registry, "local").expect("metrics register");
        Fixture { registry, metrics }
    }

    fn reading(&self, at_ms: u64) -> Reading {
        self.reading_with(at_ms, stats(CacheType::Redis, BreakerState::Closed))
    }

    fn reading_with(&self, at_ms: u64, stats: CacheStats) -> Reading {
        Reading::new(at_ms, &stats, &self.registry.gather())
    }

    fn count(&self, layer: Layer, op: Op, resource: Resource, n: u64) {
        self.metrics.op(layer, op, resource).inc_by(n);
    }
}

#[test]
fn the_first_reading_only_starts_the_ring() {
    let fixture = Fixture::new();
    let history = CacheHistory::default();

    history.record(fixture.reading(1_000));

    assert!(history.is_empty());
    let now = fixture.reading(4_000);
    let answer = history.history("abc", &now);
    assert_eq!(answer.instance_id, "abc");
    assert!(answer.points.is_empty());
    assert_eq!(answer.current.expect("a current point").seconds, 3.0);
}

#[test]
fn the_ring_keeps_the_last_hour_and_drops_the_oldest() {
    let fixture = Fixture::new();
    let history = CacheHistory::default();

    for n in 0..(CAPACITY as u64 + 51) {
        history.record(fixture.reading(n * 10_000));
    }

    assert_eq!(history.len(), CAPACITY);
    let answer = history.history("abc", &fixture.reading(10_000_000));
    assert_eq!(answer.points.len(), CAPACITY);
    // Point n ends at reading n; points 1..=50 were dropped.
    assert_eq!(answer.points[0].at, 51 * 10_000);
    assert_eq!(
        answer.points[CAPACITY - 1].at,
        (CAPACITY as u64 + 50) * 10_000
    );
}

#[test]
fn a_point_holds_the_counts_of_its_interval_per_resource_and_tier() {
    let fixture = Fixture::new();
    let history = CacheHistory::default();
    fixture.count(Layer::Memory, Op::Hit, Resource::Workflow, 100);
    history.record(fixture.reading(0));

    // In the interval: 6 L1 hits and 4 L1 misses of workflows, 3 of which Redis answered.
    fixture.count(Layer::Memory, Op::Hit, Resource::Workflow, 6);
    fixture.count(Layer::Memory, Op::Miss, Resource::Workflow, 4);
    fixture.count(Layer::Redis, Op::Hit, Resource::Workflow, 3);
    fixture.count(Layer::Redis, Op::Miss, Resource::Workflow, 1);
    fixture.count(Layer::Memory, Op::Miss, Resource::ApiKey, 2);
    fixture.metrics.stale_served.inc_by(2);
    fixture.metrics.coalesced.inc_by(5);
    fixture.metrics.invalidations_published.inc_by(3);
    fixture.metrics.invalidation_receivers.inc_by(6);
    fixture.metrics.invalidation_acks.inc_by(5);
    fixture.metrics.ack_timeouts.inc();
    history.record(fixture.reading(10_000));

    let point = &history.history("x", &fixture.reading(10_000)).points[0];
    assert_eq!(point.seconds, 10.0);
    let workflow = point
        .resources
        .iter()
        .find(|r| r.resource == "workflow")
        .expect("a workflow row");
    assert_eq!(
        (
            workflow.l1_hits,
            workflow.l1_misses,
            workflow.l2_hits,
            workflow.l2_misses
        ),
        (6, 4, 3, 1)
    );
    assert_eq!(workflow.hit_ratio, Some(0.9));
    let api_key = point
        .resources
        .iter()
        .find(|r| r.resource == "api_key")
        .expect("an api_key row");
    assert_eq!(api_key.hit_ratio, Some(0.0));
    let idle = point
        .resources
        .iter()
        .find(|r| r.resource == "analysis")
        .expect("an analysis row");
    assert_eq!(idle.hit_ratio, None, "no lookup, no ratio");
    assert_eq!((point.l1_hits, point.l2_hits, point.misses), (6, 3, 3));
    assert_eq!(point.hit_ratio, Some(0.75));
    assert_eq!((point.stale_served, point.coalesced), (2, 5));
    assert_eq!(
        (
            point.invalidations.sent,
            point.invalidations.receivers,
            point.invalidations.acknowledged,
            point.invalidations.ack_timeouts
        ),
        (3, 6, 5, 1)
    );
}

#[test]
fn l2_latency_percentiles_come_from_the_intervals_observations_only() {
    let fixture = Fixture::new();
    let history = CacheHistory::default();
    // Before the interval: slow lookups that must not count.
    for _ in 0..100 {
        fixture.metrics.l2_duration.observe(0.2);
    }
    history.record(fixture.reading(0));
    for _ in 0..99 {
        fixture.metrics.l2_duration.observe(0.000_3);
    }
    fixture.metrics.l2_duration.observe(0.04);
    history.record(fixture.reading(10_000));

    let point = &history.history("x", &fixture.reading(10_000)).points[0];
    assert_eq!(point.l2_lookups, 100);
    let p50 = point.l2_latency_p50_ms.expect("a p50");
    assert!(
        (0.1..=0.5).contains(&p50),
        "p50 {p50} ms in the 0.1–0.5 ms bucket"
    );
    let p99 = point.l2_latency_p99_ms.expect("a p99");
    assert!((0.1..=0.5).contains(&p99), "p99 {p99} ms: the 99th of 100");

    history.record(fixture.reading(20_000));
    let quiet = &history.history("x", &fixture.reading(20_000)).points[1];
    assert_eq!(quiet.l2_lookups, 0);
    assert_eq!(quiet.l2_latency_p50_ms, None);
}

#[test]
fn a_point_carries_the_breaker_and_mode_at_its_end() {
    let fixture = Fixture::new();
    let history = CacheHistory::default();
    history.record(fixture.reading(0));

    history.record(fixture.reading_with(10_000, stats(CacheType::InMemory, BreakerState::Open)));

    let point = &history.history("x", &fixture.reading(10_000)).points[0];
    assert_eq!(point.breaker, "open");
    assert_eq!(point.cache_type, "in-memory");
    assert!(!point.connected);
}

#[test]
fn the_serialized_history_has_the_documented_shape() {
    let fixture = Fixture::new();
    let history = CacheHistory::default();
    history.record(fixture.reading(0));
    history.record(fixture.reading(10_000));

    let json = serde_json::to_value(history.history("inst", &fixture.reading(12_000)))
        .expect("serializes");

    assert_eq!(json["instanceId"], "inst");
    assert_eq!(json["intervalSeconds"], 10);
    assert_eq!(json["capacity"], CAPACITY);
    let point = &json["points"][0];
    for field in [
        "at",
        "seconds",
        "resources",
        "hitRatio",
        "l2LatencyP50Ms",
        "l2LatencyP99Ms",
        "breaker",
        "cacheType",
        "staleServed",
        "coalesced",
        "invalidations",
        "pools",
        "rateLimit",
    ] {
        assert!(point.get(field).is_some(), "{field} missing in {point}");
    }
    assert_eq!(json["current"]["seconds"], 2.0);
}

#[test]
fn quantiles_interpolate_within_the_bucket() {
    let before = [(0.001, 0), (0.01, 0), (f64::INFINITY, 0)];
    let after = [(0.001, 50), (0.01, 100), (f64::INFINITY, 100)];

    assert_eq!(quantile(&before, &after, 0.5), Some(0.001));
    let p75 = quantile(&before, &after, 0.75).expect("a p75");
    assert!((p75 - 0.0055).abs() < 1e-9, "{p75}");
    assert_eq!(quantile(&after, &after, 0.5), None);
}

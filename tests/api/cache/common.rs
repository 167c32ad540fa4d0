use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ghl_workflow_debugger::cache::{Cache, CacheSettings};
use ghl_workflow_debugger::config::RedisTopology;

pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

pub fn prefix() -> String {
    format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

pub fn settings(prefix: &str, url: Option<&str>) -> CacheSettings {
    CacheSettings {
        prefix: prefix.to_owned(),
        redis: url.map(RedisTopology::single),
        // Keep test keys in the shared Redis short-lived (physical TTL = ttl + grace).
        stale_grace: Duration::from_secs(10),
        ..CacheSettings::default()
    }
}

pub fn cache(s: CacheSettings) -> (Cache, prometheus::Registry) {
    let r = prometheus::Registry::new();
    (Cache::new(s, &r).expect("cache builds"), r)
}

pub async fn ready_cache(prefix: &str) -> (Cache, prometheus::Registry) {
    let (c, r) = cache(settings(prefix, Some(SHARED_REDIS)));
    assert!(c.wait_ready(Duration::from_secs(3)).await, "cache ready");
    (c, r)
}

/// Sum of all samples of a counter/gauge family.
pub fn metric(r: &prometheus::Registry, name: &str) -> f64 {
    r.gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| m.get_counter().value() + m.get_gauge().value())
        .sum()
}

pub async fn raw_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A loader that counts its calls and answers `value` after `delay`.
pub fn counting(
    calls: &Arc<AtomicUsize>,
    value: &'static str,
    delay: Duration,
) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<Option<Bytes>, std::io::Error>> {
    let calls = calls.clone();
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(Some(Bytes::from_static(value.as_bytes())))
        })
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

//! Operations: flush, statistics, the health check, shutdown and the shared window counter.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::FutureExt;

use super::{
    bus::BusMessage,
    l2, lock,
    metrics::{Layer, Op},
    now_ms, Cache, CacheError, CacheStats, CacheType, Inner, L1Stats, L2Stats, Resource,
    WindowCount,
};
use crate::config::NodeAddr;

impl Cache {
    /// Drop every entry of this namespace: L1 here and (via pub/sub) on other instances, and
    /// in Redis by `SCAN MATCH "{prefix}:*"` + `UNLINK` in batches on every primary (never
    /// KEYS, FLUSHALL or FLUSHDB).
    /// Returns the number of Redis keys removed (without Redis: the L1 entries removed).
    pub async fn flush(&self) -> Result<u64, CacheError> {
        let i = &self.0;
        let l1_len = i.l1.as_ref().map_or(0, |c| c.len() as u64);
        i.clear_l1("flush");
        if i.l2.is_none() {
            return Ok(l1_len);
        }
        if !i.breaker.allows() {
            return Err(CacheError::Unavailable);
        }
        let step = Duration::from_secs(2);
        let primaries = i
            .l2_run(step, |c| c.primaries().boxed())
            .await
            .map_err(|e| CacheError::Redis(e.to_string()))?;
        let mut removed = 0u64;
        match primaries {
            None => removed += i.flush_node(None, step).await?,
            Some(nodes) => {
                for node in nodes {
                    removed += i.flush_node(Some(node), step).await?;
                }
            }
        }
        let msg = BusMessage::clear_all(&i.s.instance_id);
        let _ = i
            .publish(&msg, i.s.l2_budget.max(Duration::from_millis(250)))
            .await;
        Ok(removed)
    }

    /// CONTRACT §6 statistics (also refreshes the gauges).
    pub fn stats(&self) -> CacheStats {
        let i = &self.0;
        i.refresh_gauges();
        let sum = |layer: Layer, op: Op| -> u64 {
            Resource::ALL
                .iter()
                .map(|r| i.m.op(layer, op, *r).get())
                .sum()
        };
        let l1_hits = sum(Layer::Memory, Op::Hit);
        let l1_misses = sum(Layer::Memory, Op::Miss);
        let l2_hits = sum(Layer::Redis, Op::Hit);
        let l2_misses = sum(Layer::Redis, Op::Miss);
        let lookups = l1_hits + l1_misses;
        let hit_ratio = if lookups == 0 {
            0.0
        } else {
            (((l1_hits + l2_hits) as f64 / lookups as f64) * 10_000.0).round() / 10_000.0
        };
        CacheStats {
            kind: i.kind(),
            connected: i.is_connected(),
            l1: L1Stats {
                entries: i.l1.as_ref().map_or(0, |c| c.len() as u64),
                capacity: i.s.l1_capacity,
                hits: l1_hits,
                misses: l1_misses,
            },
            l2: L2Stats {
                hits: l2_hits,
                misses: l2_misses,
                errors: i.m.l2_errors.get(),
                timeouts: i.m.l2_timeouts.get(),
                breaker: i.breaker.state(),
            },
            loads: i.m.loads.get(),
            coalesced: i.m.coalesced.get(),
            stale_served: i.m.stale_served.get(),
            hit_ratio,
        }
    }

    /// This instance's id (random per process): the sender of its bus messages, and the
    /// name the dashboard shows so an operator knows which instance's history they see.
    pub fn instance_id(&self) -> &str {
        &self.0.s.instance_id
    }

    /// Stop background tasks (reconnect, subscriber) and stop using Redis.
    pub async fn shutdown(&self) {
        let i = &self.0;
        i.shut.store(true, Ordering::Release);
        let _ = i.shutdown_tx.send(true);
        let tasks: Vec<_> = lock(&i.tasks).drain(..).collect();
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Some(l2) = &i.l2 {
            l2.reset_pool();
        }
        i.connected.store(false, Ordering::Release);
        i.subscribed.store(false, Ordering::Release);
    }

    /// Counts one event in a fixed window shared by every instance: `INCR` of `key`, and
    /// `PEXPIRE window` when the counter is new (one Lua script, so the window always ends).
    /// Returns the count so far and the time left in the window, or `None` when Redis is not
    /// configured, the breaker is open or the call fails within the usual L2 budget (the
    /// caller falls back to a per-instance count).
    pub async fn count_in_window(&self, key: &str, window: Duration) -> Option<WindowCount> {
        let i = &self.0;
        if i.l2.is_none() || !i.breaker.allows() || i.shut.load(Ordering::Acquire) {
            return None;
        }
        let script = i.counter_script.clone();
        let key = key.to_owned();
        let window_ms = (window.as_millis() as u64).max(1);
        let (count, left_ms): (u64, i64) = i
            .l2_run(i.s.l2_budget, move |c| {
                async move {
                    script
                        .key(key)
                        .arg(window_ms)
                        .invoke_async::<(u64, i64)>(c)
                        .await
                }
                .boxed()
            })
            .await
            .ok()?;
        Some(WindowCount {
            count,
            resets_in: Duration::from_millis(u64::try_from(left_ms).unwrap_or(window_ms)),
        })
    }
}

impl Inner {
    pub(super) fn kind(&self) -> CacheType {
        if self.is_connected() {
            CacheType::Redis
        } else {
            CacheType::InMemory
        }
    }

    /// Redis answers: its breaker is closed and the subscriber's lease holds. With Redis down
    /// the in-memory tier may go on answering (the Postgres bus keeps it correct), so no
    /// Redis command fails and the breaker may stay closed: the lease is what notices.
    pub(super) fn is_connected(&self) -> bool {
        self.l2.is_some()
            && self.connected.load(Ordering::Acquire)
            && self.breaker.allows()
            && !self.shut.load(Ordering::Acquire)
            && self.redis_lease_valid(now_ms())
    }

    pub(super) fn refresh_gauges(&self) {
        self.m.breaker_state.set(self.breaker.state().gauge_value());
        if let Some(l1) = &self.l1 {
            self.m.l1_entries.set(l1.len() as i64);
            self.m.l1_weight.set(l1.weight() as i64);
        }
        if let Some(l2) = &self.l2 {
            let (c, idle) = l2.pool_state();
            self.m.pool_connections.set(c as i64);
            self.m.pool_idle.set(idle as i64);
        }
        self.m
            .pending_invalidations
            .set(lock(&self.pending).len() as i64);
    }

    /// `SCAN MATCH "{prefix}:*"` + `UNLINK` in batches on one node (a Cluster primary) or on
    /// the only node. Returns the keys removed.
    pub(super) async fn flush_node(
        &self,
        node: Option<NodeAddr>,
        step: Duration,
    ) -> Result<u64, CacheError> {
        let pattern = format!("{}:*", l2::glob_escape(&self.s.prefix));
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let target = node.clone();
            let (next, keys): (u64, Vec<String>) = self
                .l2_run(step, move |c| {
                    async move { c.query_on(target.as_ref(), scan).await }.boxed()
                })
                .await
                .map_err(|e| CacheError::Redis(e.to_string()))?;
            if !keys.is_empty() {
                // A Cluster connection splits a multi-key UNLINK by slot and sums the replies.
                let n: u64 = self
                    .l2_run(step, move |c| {
                        async move { redis::cmd("UNLINK").arg(keys).query_async(c).await }.boxed()
                    })
                    .await
                    .map_err(|e| CacheError::Redis(e.to_string()))?;
                removed += n;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(removed);
            }
        }
    }

    pub(super) fn probe_budget(&self) -> Duration {
        self.s.l2_budget.max(Duration::from_millis(500))
    }
}

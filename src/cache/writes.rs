//! Writes into the tiers: fills after a load (guarded against the stale-set race), explicit
//! sets and startup warming.

use crate::telemetry::carry_request_id;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::future::FutureExt;
use futures::StreamExt;

use super::{
    guard,
    guard::Ticket,
    l1::L1Entry,
    metrics::{Layer, Op},
    now_ms,
    region::ReadAt,
    ttl, wire, Cache, CacheKey, Inner, Resource,
};

impl Cache {
    /// Store a value in both tiers, unconditionally (an explicit write: it also replaces an
    /// L2 tombstone). The L2 write is awaited, bounded by `l2_budget`.
    pub async fn set(&self, key: &CacheKey, bytes: Bytes, ttl: Duration) {
        self.0.fill(key, Some(bytes), ttl, None, true, None).await;
    }

    /// Take this before reading what [`Cache::warm`] will store: an invalidation after it
    /// wins over the warmed copy, exactly as for a load (the stale-set race).
    pub fn begin_warming(&self) -> guard::Ticket {
        self.0.guard.ticket()
    }

    /// Fill both tiers with preloaded values (startup warming), at most `max_concurrency` at
    /// a time. Fills are guarded like loads: a key invalidated since `ticket` was taken is
    /// not filled. Returns the number of entries written to L1. Bound the total time with
    /// your own timeout.
    pub async fn warm(
        &self,
        ticket: guard::Ticket,
        entries: Vec<(CacheKey, Bytes, Duration)>,
        max_concurrency: usize,
    ) -> usize {
        futures::stream::iter(entries)
            .map(|(k, v, ttl)| {
                let i = self.0.clone();
                async move {
                    i.fill(&k, Some(v), ttl, Some((ticket, None)), true, None)
                        .await
                }
            })
            .buffer_unordered(max_concurrency.max(1))
            .filter(|ok| futures::future::ready(*ok))
            .count()
            .await
    }
}

impl Inner {
    /// Spawn a fire-and-forget L2 write under the bounded semaphore (dropped when full).
    pub(super) fn spawn_write<F>(&self, f: F)
    where
        F: FnOnce(Arc<Inner>) -> BoxFuture<'static, ()> + Send + 'static,
    {
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            self.m.dropped_writes.inc();
            return;
        };
        let Some(me) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(carry_request_id(async move {
            f(me).await;
            drop(permit);
        }));
    }

    /// Fill L1 (guarded by `guard`'s ticket when given) and L2 (awaited or fire-and-forget;
    /// guarded: it replaces only the tombstone the load saw, if any). `read_at`: where the
    /// load read (a replica load behind an invalidation applied here fills nothing).
    /// Returns false when the fill was skipped because the key was invalidated meanwhile.
    pub(super) async fn fill(
        &self,
        key: &CacheKey,
        value: Option<Bytes>,
        ttl: Duration,
        guard: Option<(Ticket, Option<u64>)>,
        await_l2: bool,
        read_at: Option<ReadAt>,
    ) -> bool {
        let ticket = guard.map(|(t, _)| t);
        let res = key.resource();
        let now = now_ms();
        let negative = value.is_none();
        let ttl = if negative {
            self.s.negative_ttl
        } else {
            ttl::with_jitter(ttl)
        };
        let logical = now + (ttl.as_millis() as u64).max(1);
        let physical = if negative {
            logical
        } else {
            logical + self.s.stale_grace.as_millis() as u64
        };
        let payload = value.unwrap_or_default();
        let entry = L1Entry {
            bytes: payload.clone(),
            logical_ms: logical,
            physical_ms: physical,
            negative,
            l2_epoch: 0,
            at: read_at.map_or(0, ReadAt::position),
        };
        let filled = match ticket {
            Some(_) if !self.region.fill_allowed(key.as_str(), read_at) => false,
            Some(t) => self
                .guard
                .fill_if_current(key.as_str(), t, || self.l1_insert(key.as_str(), entry, res)),
            None => {
                self.l1_insert(key.as_str(), entry, res);
                true
            }
        };
        if !filled {
            self.m.skipped_fills.inc();
            return false;
        }
        if self.l2.is_none() || !self.breaker.allows() {
            return true;
        }
        let flag = if negative {
            wire::FLAG_NEGATIVE
        } else {
            wire::FLAG_VALUE
        };
        // Stamped with the start of the load that read it: "loaded before T" is what trust
        // is withdrawn by (`trusted_after_ms`), whenever the fill itself lands.
        let loaded_ms = ticket.map_or(now, |t| t.wall_ms.min(now));
        let rec = wire::encode(flag, logical, loaded_ms, &payload);
        let px = physical - now;
        let k = key.as_str().to_owned();
        let guarded = guard.map(|(_, seen)| seen);
        if await_l2 {
            self.l2_write(k, rec, px, guarded, res).await;
        } else {
            self.spawn_write(move |i| {
                async move { i.l2_write(k, rec, px, guarded, res).await }.boxed()
            });
        }
        true
    }

    /// `guarded`: `Some(seen)` = replace no tombstone but the one the load saw (`seen`).
    pub(super) async fn l2_write(
        &self,
        key: String,
        rec: Vec<u8>,
        px: u64,
        guarded: Option<Option<u64>>,
        res: Resource,
    ) {
        let script = self.fill_script.clone();
        let out = self
            .l2_run(self.s.l2_budget, move |c| {
                async move {
                    if let Some(seen) = guarded {
                        let seen: Vec<u8> =
                            seen.map(|id| id.to_be_bytes().to_vec()).unwrap_or_default();
                        script
                            .key(key)
                            .arg(rec)
                            .arg(px)
                            .arg(&wire::tombstone_prefix()[..])
                            .arg(seen)
                            .invoke_async::<i64>(c)
                            .await
                            .map(|n| n == 1)
                    } else {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(rec)
                            .arg("PX")
                            .arg(px)
                            .query_async::<()>(c)
                            .await
                            .map(|_| true)
                    }
                }
                .boxed()
            })
            .await;
        match out {
            Ok(true) => self.m.op(Layer::Redis, Op::Set, res).inc(),
            Ok(false) => self.m.skipped_fills.inc(),
            Err(_) => self.m.op(Layer::Redis, Op::Error, res).inc(),
        }
    }
}

//! Reads: the in-process tier (L1) and Redis lookups (L2), and the read-through entry points
//! that answer from them. What a load does after both missed is in [`super::flights`].

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::FutureExt;

use super::{
    guard::Ticket,
    l1::{L1Entry, L1},
    l1_hit,
    metrics::{Layer, Op},
    now_ms, wire,
    wire::Record,
    Cache, CacheHit, CacheKey, CacheRead, CacheStatus, Inner, L1Probe, LoadError, Resource, Tier,
};

#[derive(Clone)]
pub(super) enum L2Look {
    Fresh(Option<Bytes>),
    Stale(Bytes),
    Miss,
    /// A miss at a tombstone: its id, which a fill of this load may replace (see
    /// `FILL_SCRIPT`), and the position a replica load must have read at to replace it.
    Tomb(u64, u64),
}

impl L2Look {
    /// The read to answer with (a fresh value or "not found"); otherwise keeps a stale value
    /// in `stale` (unless it holds one already) for when the load fails.
    pub(super) fn answer(self, stale: &mut Option<Bytes>) -> Option<CacheRead> {
        match self {
            L2Look::Fresh(value) => Some(CacheRead {
                value,
                status: CacheStatus::Hit(Tier::L2),
            }),
            L2Look::Stale(b) => {
                stale.get_or_insert(b);
                None
            }
            L2Look::Miss | L2Look::Tomb(..) => None,
        }
    }

    /// The id and position of the tombstone this look found, if it found one.
    pub(super) fn tombstone(&self) -> Option<(u64, u64)> {
        match self {
            L2Look::Tomb(id, at) => Some((*id, *at)),
            _ => None,
        }
    }
}

impl Cache {
    /// A fresh value (L1, else L2). Negative entries read as `None`.
    pub async fn get(&self, key: &CacheKey) -> Option<CacheHit> {
        self.get_inner(key, false).await
    }

    /// Like `get` but also returns values past their logical expiry (within `stale_grace`),
    /// marked `stale: true`.
    pub async fn get_with_stale(&self, key: &CacheKey) -> Option<CacheHit> {
        self.get_inner(key, true).await
    }

    pub(super) async fn get_inner(&self, key: &CacheKey, allow_stale: bool) -> Option<CacheHit> {
        let i = &self.0;
        let mut stale = None;
        match i.l1_get(key) {
            Some((e, true)) => {
                return (!e.negative).then_some(CacheHit {
                    bytes: e.bytes,
                    tier: Tier::L1,
                    stale: false,
                })
            }
            Some((e, false)) if !e.negative => stale = Some(e.bytes),
            _ => {}
        }
        let ticket = i.guard.ticket();
        match i.l2_lookup(key, ticket, true).await {
            L2Look::Fresh(v) => v.map(|bytes| CacheHit {
                bytes,
                tier: Tier::L2,
                stale: false,
            }),
            L2Look::Stale(b) if allow_stale => Some(CacheHit {
                bytes: stale.unwrap_or(b),
                tier: Tier::L2,
                stale: true,
            }),
            _ if allow_stale => stale.map(|bytes| CacheHit {
                bytes,
                tier: Tier::L1,
                stale: true,
            }),
            _ => None,
        }
    }

    /// Is there a fresh (non-negative) value?
    pub async fn exists(&self, key: &CacheKey) -> bool {
        self.get(key).await.is_some()
    }

    /// Read-through (the original's `wrap`). See the module doc for semantics.
    /// The loader returns `Ok(Some(bytes))`, `Ok(None)` for not found (negative-cached), or
    /// an error that every waiter receives as `LoadError::Loader(Arc<E>)`.
    pub async fn get_or_load<E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        loader: F,
    ) -> Result<CacheRead, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        match self.probe_l1(key) {
            L1Probe::Fresh(read) => Ok(read),
            L1Probe::Missed { stale } => self.load_after_l1(key, ttl, loader, stale).await,
        }
    }

    /// The in-process tier alone, synchronously: a caller can answer a fresh hit without
    /// setting up anything asynchronous (a deadline, say), and otherwise goes on with
    /// [`Cache::load_after_l1`] (the lookup is counted once either way).
    pub fn probe_l1(&self, key: &CacheKey) -> L1Probe {
        if self.0.s.bypass {
            return L1Probe::Missed { stale: None };
        }
        match self.0.l1_get(key) {
            Some((e, true)) => L1Probe::Fresh(l1_hit(e)),
            Some((e, false)) if !e.negative => L1Probe::Missed {
                stale: Some(e.bytes),
            },
            _ => L1Probe::Missed { stale: None },
        }
    }

    /// Call the loader with the cache bypassed (status BYPASS, no fills).
    pub async fn load_bypass<E, F, Fut>(&self, loader: F) -> Result<CacheRead, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, E>>,
    {
        self.0.m.loads.inc();
        match loader().await {
            Ok(value) => Ok(CacheRead {
                value,
                status: CacheStatus::Bypass,
            }),
            Err(e) => Err(LoadError::Loader(Arc::new(e))),
        }
    }
}

impl Inner {
    /// A fresh L1 answer for `key` without counting the lookup (a second look by a request
    /// whose miss was already counted).
    pub(super) fn l1_fresh_uncounted(&self, key: &CacheKey) -> Option<CacheRead> {
        let e = self.l1_for(key.resource())?.get(key.as_str())?;
        self.l1_answers(&e, now_ms()).then(|| l1_hit(e))
    }

    /// L1, unless it is off or skips `res`.
    pub(super) fn l1_for(&self, res: Resource) -> Option<&L1> {
        self.l1.as_ref().filter(|_| !self.s.l1_skip.contains(&res))
    }

    /// Whether an L1 entry may answer at `now`: fresh, and the lease held — for a copy taken
    /// from Redis, the Redis lease in the trust epoch it was taken in (a Postgres notice can
    /// come before the write's tombstone is in Redis, so a copy read from Redis in between
    /// is dropped only by the Redis message, which comes after the tombstone).
    pub(super) fn l1_answers(&self, e: &L1Entry, now: u64) -> bool {
        if now >= e.logical_ms {
            return false;
        }
        if e.l2_epoch == 0 {
            return self.lease_valid(now);
        }
        self.l2.is_none()
            || (self.redis_lease_valid(now)
                && e.l2_epoch == self.l2_epoch.load(Ordering::Acquire)
                && self.cross_region_lease_valid(now))
    }

    /// L1 lookup: Some((entry, fresh)). Expired-past-grace entries are removed.
    pub(super) fn l1_get(&self, key: &CacheKey) -> Option<(L1Entry, bool)> {
        let l1 = self.l1_for(key.resource())?;
        // Not timed: a hit takes ~100 ns, less than reading the clock twice and observing a
        // histogram would add to it.
        let found = l1.get(key.as_str());
        let res = match found {
            Some(e) => {
                let now = now_ms();
                if self.l1_answers(&e, now) {
                    self.m.op(Layer::Memory, Op::Hit, key.resource()).inc();
                    Some((e, true))
                } else if now < e.physical_ms {
                    self.m.op(Layer::Memory, Op::Miss, key.resource()).inc();
                    Some((e, false))
                } else {
                    let exp = e.physical_ms;
                    l1.remove_if(key.as_str(), |v| v.physical_ms == exp);
                    self.m.op(Layer::Memory, Op::Miss, key.resource()).inc();
                    None
                }
            }
            None => {
                self.m.op(Layer::Memory, Op::Miss, key.resource()).inc();
                None
            }
        };
        res
    }

    /// Whether an L1 fill of `res` would be kept now. With Redis configured, L1 keeps copies
    /// only while a bus listens (the Redis subscriber or the Postgres listener): a copy taken
    /// while none does could outlive a write made on another instance.
    pub(super) fn l1_keeps(&self, res: Resource) -> bool {
        self.l1_for(res).is_some()
            && (self.l2.is_none() || self.subscribed.load(Ordering::Acquire) || self.pg.listening())
    }

    pub(super) fn l1_insert(&self, key: &str, e: L1Entry, res: Resource) {
        if !self.l1_keeps(res) {
            return;
        }
        if let Some(l1) = &self.l1 {
            l1.insert(key.to_owned(), e);
            self.m.op(Layer::Memory, Op::Set, res).inc();
        }
    }

    /// Whether a Redis read may answer now (configured, breaker closed, Redis lease held).
    pub(super) fn l2_usable(&self) -> bool {
        let now = now_ms();
        self.l2.is_some()
            && self.breaker.allows()
            && self.redis_lease_valid(now)
            && self.cross_region_lease_valid(now)
    }

    /// `count_miss: false` for a second look after a miss was already counted.
    pub(super) async fn l2_lookup(
        &self,
        key: &CacheKey,
        ticket: Ticket,
        count_miss: bool,
    ) -> L2Look {
        if !self.l2_usable() {
            return L2Look::Miss;
        }
        let res = key.resource();
        let miss = || {
            if count_miss {
                self.m.op(Layer::Redis, Op::Miss, res).inc();
            }
            L2Look::Miss
        };
        if self.region.gated(key.as_str()) {
            // Written in another region, and not tombstoned here yet: Redis may hold the
            // version it replaced.
            return miss();
        }
        let raw = match self.l2_get(key).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return miss(),
            Err(()) => return L2Look::Miss,
        };
        let now = now_ms();
        // Lease first: a lease regained during the GET raises `trusted_after_ms` before it
        // renews the lease. Only the Redis lease: what Redis holds is kept right by
        // tombstones written through Redis, which the Postgres bus does not carry.
        let lease = self.redis_lease_valid(now) && self.cross_region_lease_valid(now);
        let trusted = self.trusted_after_ms.load(Ordering::Acquire);
        let (value, logical, written) = match self.decode_l2(key, raw) {
            Decoded::Value(value, logical, written) => (value, logical, written),
            Decoded::Tomb(id, at) => {
                miss();
                return L2Look::Tomb(id, at);
            }
            Decoded::Bad => return miss(),
        };
        if written < trusted || !lease {
            return miss();
        }
        if now >= logical {
            miss();
            return match value {
                Some(v) if now < logical + self.s.stale_grace.as_millis() as u64 => {
                    L2Look::Stale(v)
                }
                _ => L2Look::Miss,
            };
        }
        self.m.op(Layer::Redis, Op::Hit, res).inc();
        if !self.l1_keeps(res) {
            return L2Look::Fresh(value);
        }
        let entry = L1Entry {
            bytes: value.clone().unwrap_or_default(),
            logical_ms: logical,
            physical_ms: if value.is_some() {
                logical + self.s.stale_grace.as_millis() as u64
            } else {
                logical
            },
            negative: value.is_none(),
            l2_epoch: self.l2_epoch.load(Ordering::Acquire),
            at: 0,
        };
        self.guard.fill_if_current(key.as_str(), ticket, || {
            self.l1_insert(key.as_str(), entry, res);
        });
        L2Look::Fresh(value)
    }

    /// The raw value of `key` in Redis, timed; `Err` (counted as an error) when Redis failed.
    async fn l2_get(&self, key: &CacheKey) -> Result<Option<Bytes>, ()> {
        let t = std::time::Instant::now();
        let mut get = redis::cmd("GET");
        get.arg(key.as_str());
        let got = self
            .l2_run(self.s.l2_budget, move |c| {
                async move { get.query_async::<Option<Vec<u8>>>(c).await }.boxed()
            })
            .await;
        self.m.l2_duration.observe(t.elapsed().as_secs_f64());
        got.map(|raw| raw.map(Bytes::from)).map_err(|_| {
            self.m.op(Layer::Redis, Op::Error, key.resource()).inc();
        })
    }

    /// What a value read from Redis holds; bytes that do not decode are deleted (if unchanged).
    fn decode_l2(&self, key: &CacheKey, raw: Bytes) -> Decoded {
        match wire::decode(raw.clone()) {
            Err(_) => {
                self.m.decode_errors.inc();
                log::warn!("cache: undecodable value in redis, deleting it");
                let k = key.as_str().to_owned();
                self.spawn_write(move |i| {
                    async move {
                        let script = i.del_script.clone();
                        let _ = i
                            .l2_run(i.s.l2_budget, move |c| {
                                async move {
                                    script.key(k).arg(raw.as_ref()).invoke_async::<i64>(c).await
                                }
                                .boxed()
                            })
                            .await;
                    }
                    .boxed()
                });
                Decoded::Bad
            }
            Ok(Record::Tombstone { id, at }) => Decoded::Tomb(id, at),
            Ok(Record::Value {
                payload,
                logical_exp_ms,
                written_ms,
            }) => Decoded::Value(Some(payload), logical_exp_ms, written_ms),
            Ok(Record::Negative {
                logical_exp_ms,
                written_ms,
            }) => Decoded::Value(None, logical_exp_ms, written_ms),
        }
    }
}

/// A record read from Redis: a value (or "not found") with its logical expiry and load start,
/// a tombstone with its id, or bytes that did not decode.
enum Decoded {
    Value(Option<Bytes>, u64, u64),
    Tomb(u64, u64),
    Bad,
}

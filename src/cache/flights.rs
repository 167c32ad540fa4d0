//! Single flight: after an L1 miss, one Redis read per key and worker thread, and one load per
//! key in the process (a task of its own, so a dropped caller strands nobody).

use crate::telemetry::carry_request_id;
use std::any::Any;
use std::any::TypeId;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::future::FutureExt;
use futures::future::Shared;

use super::region::{reporting_key_read, ReadAt};
use super::{lock, reads::L2Look, Cache, CacheKey, CacheRead, CacheStatus, Inner, LoadError};

#[derive(Clone)]
pub(super) enum LoadFailure {
    Err(Arc<dyn Any + Send + Sync>),
    Panicked,
}

pub(super) type SharedLoad = Shared<BoxFuture<'static, Result<CacheRead, LoadFailure>>>;

/// Removes the single-flight entry when the load task ends (also on panic), unless an
/// invalidation already replaced it with a newer flight.
pub(super) struct FlightGuard {
    inner: Arc<Inner>,
    key: (String, TypeId),
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.inner.inflight);
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl Cache {
    /// [`Cache::get_or_load`] after an L1 miss: Redis, then one load per key (single flight).
    /// `stale` is the expired L1 copy the probe found, if any.
    pub async fn load_after_l1<E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        loader: F,
        stale: Option<Bytes>,
    ) -> Result<CacheRead, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let i = &self.0;
        if i.s.bypass {
            return self.load_bypass(loader).await;
        }
        let mut l1_stale = stale;
        let l2_read = i.l2_usable();
        if l2_read {
            if let Some(read) = self.l2_read_shared(key).await.answer(&mut l1_stale) {
                return Ok(read);
            }
            // A load that ended while this thread read Redis filled L1 (its Redis fill may
            // still be on the way): no second load for it.
            if let Some(read) = i.l1_fresh_uncounted(key) {
                return Ok(read);
            }
        }
        let fkey = (key.as_str().to_owned(), TypeId::of::<E>());
        let fut = {
            let mut map = lock(&i.inflight);
            if let Some((_, f)) = map.get(&fkey) {
                i.m.coalesced.inc();
                f.clone()
            } else {
                let inner = self.0.clone();
                let key = key.clone();
                let id = i.flight_ids.fetch_add(1, Ordering::Relaxed);
                let guard = FlightGuard {
                    inner: inner.clone(),
                    key: fkey.clone(),
                    id,
                };
                // The load is shared, but started for this request: its log lines name it.
                let handle = tokio::spawn(carry_request_id(async move {
                    let _guard = guard;
                    inner.load(key, ttl, loader, l1_stale, !l2_read).await
                }));
                let shared = async move { handle.await.unwrap_or(Err(LoadFailure::Panicked)) }
                    .boxed()
                    .shared();
                map.insert(fkey, (id, shared.clone()));
                shared
            }
        };
        match fut.await {
            Ok(read) => Ok(read),
            Err(LoadFailure::Err(any)) => match any.downcast::<E>() {
                Ok(e) => Err(LoadError::Loader(e)),
                Err(_) => Err(LoadError::Panicked),
            },
            Err(LoadFailure::Panicked) => Err(LoadError::Panicked),
        }
    }

    /// This thread's Redis read of `key`, shared with its other requests for the same key
    /// (see `thread_flights`).
    pub(super) async fn l2_read_shared(&self, key: &CacheKey) -> L2Look {
        let i = &self.0;
        let ticket = i.guard.ticket();
        let (look, joined) = i
            .l2_reads
            .run(key.as_str(), ticket.seq(), || {
                let (inner, key) = (Arc::clone(&self.0), key.clone());
                // A panic must not reach the requests that joined: it becomes a miss, and the
                // load (a task of its own) reports whatever is wrong.
                std::panic::AssertUnwindSafe(
                    async move { inner.l2_lookup(&key, ticket, true).await },
                )
                .catch_unwind()
                .map(|read| read.unwrap_or(L2Look::Miss))
                .boxed()
            })
            .await;
        if joined {
            i.m.coalesced.inc();
        }
        look
    }
}

impl Inner {
    /// The single-flight body: L2 lookup, load, fills, stale fallback.
    /// `count_l2_miss: false` when the caller already read Redis and counted its miss (the
    /// look here only closes the window in which another load filled it).
    pub(super) async fn load<E, F, Fut>(
        self: Arc<Self>,
        key: CacheKey,
        ttl: Duration,
        loader: F,
        l1_stale: Option<Bytes>,
        count_l2_miss: bool,
    ) -> Result<CacheRead, LoadFailure>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let ticket = self.guard.ticket();
        let mut stale = l1_stale;
        let look = self.l2_lookup(&key, ticket, count_l2_miss).await;
        // The tombstone seen here was written after its write committed, so a read of the
        // primary below sees that write: this load may replace that tombstone, and no other.
        // A read of the replica sees it once the replica replayed the tombstone's position.
        let seen = look.tombstone();
        if let Some(read) = look.answer(&mut stale) {
            return Ok(read);
        }
        self.m.loads.inc();
        let known = self.region.primary_known();
        // Boxed: the wrappers of `reporting_key_read` would each copy a large load future
        // onto the worker's stack.
        let load = Box::pin(loader());
        let (loaded, at) = reporting_key_read(&self.region, key.as_str(), known, load).await;
        match loaded {
            Ok(value) => {
                let behind_tombstone = matches!(
                    (at, seen),
                    (ReadAt::Replica(read), Some((_, needed))) if read < needed
                );
                if behind_tombstone {
                    self.m.skipped_fills.inc();
                } else {
                    let guard = Some((ticket, seen.map(|(id, _)| id)));
                    self.fill(&key, value.clone(), ttl, guard, false, Some(at))
                        .await;
                }
                Ok(CacheRead {
                    value,
                    status: CacheStatus::Miss,
                })
            }
            Err(e) => match stale {
                Some(s) => {
                    self.m.stale_served.inc();
                    log::warn!(
                        "cache: loader failed, serving a stale {} value",
                        key.resource().as_str()
                    );
                    Ok(CacheRead {
                        value: Some(s),
                        status: CacheStatus::Stale,
                    })
                }
                None => Err(LoadFailure::Err(Arc::new(e))),
            },
        }
    }
}

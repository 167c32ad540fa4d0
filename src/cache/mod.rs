//! Layered read-through cache: an in-process tier (L1, quick_cache) in front of Redis (L2,
//! bb8 pool), built so that Redis can only make the service faster, never take it down.
//!
//! # Reads
//! `get_or_load`: L1 → (single flight per key) L2 → loader, filling upward. L1 holds the
//! serialized bytes plus a logical expiry and a later physical one (`stale_grace`), bounded
//! by entries *and* bytes with one weigher: every entry weighs at least
//! `l1_max_bytes / l1_capacity`, so the weight bound also bounds the count. An L2 hit fills
//! L1 with the remaining TTL taken from the value's header. "Not found" (`Ok(None)` from the
//! loader) is cached for `negative_ttl` in both tiers. When the loader fails and a stale value
//! (past its logical expiry, within `stale_grace`) exists in L1 or L2, it is served with
//! [`CacheStatus::Stale`]; otherwise the loader's error reaches every waiter and is not cached.
//! TTLs are jittered by the cache itself (±10 %).
//!
//! # Single flight
//! Two levels. After an L1 miss, the requests of one worker thread share one Redis GET per
//! key (`thread_flights`: no lock and no cross-thread wake-up on an L2 hit). When Redis has
//! no fresh value, the first miss of a key in the process spawns a task that looks at Redis
//! once more (a load may have filled it meanwhile), loads and fills; concurrent misses await
//! the same `Shared` future. Both count their joiners as `coalesced`. Because the load runs
//! in its own task, a caller whose future is dropped strands nobody and the fill still
//! happens. Loader errors are `E: Send + Sync + 'static`, handed to every waiter as
//! `LoadError::Loader(Arc<E>)` (one error value, many waiters: no `Clone` needed).
//!
//! # Fail fast
//! Every L2 operation (pool checkout + command) runs under one deadline (`l2_budget`).
//! Errors and timeouts feed a consecutive-failure breaker; an open breaker skips Redis at the
//! cost of one atomic load. A background task probes (PING) after the cool-down with capped
//! backoff `max(cooldown, min(n·100 ms, 3 s))`, replays pending invalidations, then closes the
//! breaker — so health turns healthy again by itself and a service started without Redis
//! upgrades when it appears. When the breaker opens the pool is replaced (its connections are
//! suspect; bb8-redis never reports a multiplexed connection as broken, so connections that saw
//! an I/O error are also marked broken individually). Fills are fire-and-forget under a
//! bounded semaphore (`try_acquire`; when full the write is dropped and counted).
//!
//! # Invalidation and the stale-set guard
//! A read that loaded an old row before a write committed must not put it back after the
//! write's invalidation:
//! 1. Per instance, [`guard`] keeps an invalidation sequence per recently invalidated key.
//!    A load takes a ticket before reading; its L1 fill is skipped when the key was
//!    invalidated since (the loaded value is still returned to the caller). Invalidations
//!    received over pub/sub bump it too, and so does an L1 clear.
//! 2. In L2, `invalidate` writes a short-lived TOMBSTONE (5 s) instead of a plain DEL, and
//!    fills go through a Lua script that refuses to overwrite a tombstone unless the load
//!    started more than `CLOCK_SKEW_MARGIN_MS` (250 ms) after the tombstone was written
//!    (both unix ms: the tombstone header's written-at vs the load's ticket), so loads that
//!    began after the write may repopulate L2 at once; readers treat a tombstone as a miss.
//!    Loads that took longer than the tombstone lives do not fill at all. Explicit `set`
//!    writes unconditionally.
//!
//! 3. L2 values carry the start of the load that read them (`written` in the header, the
//!    load's ticket). An instance that may have missed invalidations (its lease lapsed, its
//!    subscriber reconnected, its breaker closed again) stops trusting values loaded before
//!    that moment (`trusted_after_ms`, plus the 250 ms clock margin): they read as misses.
//!
//! A read that arrives after an invalidation never joins a load that started before it:
//! invalidation detaches the key's in-flight entry.
//!
//! # Pub/sub, acknowledgements and the lease
//! `invalidate` PUBLISHes `{"i": instance_id, "k": [keys], "a": ack_key}` on
//! `{prefix}:invalidate`, in the same pipeline as the tombstones (so after them). A dedicated
//! subscriber connection (outside the pool, own reconnect loop) drops those keys from its L1
//! (its own messages: nothing to drop) and acknowledges with `INCR ack_key`. Pub/sub is
//! at-most-once, so an instance clears its whole L1 when its subscriber disconnects and when it
//! re-subscribes, and, with Redis configured, L1 keeps copies only while the subscriber listens.
//!
//! The lease: L1 answers as fresh, and L2 values are trusted, only while the subscriber got
//! the answer to a PING *sent* less than `LEASE_MS` (300 ms) ago (it pings every 100 ms).
//! Redis answers a connection in order, so every message published before that PING reached
//! Redis came before its answer; those are applied before the lease is renewed. When an
//! answer arrives after the lease had lapsed, the instance clears L1 and withdraws trust from
//! older L2 values first (a writer may have answered meanwhile without reaching it).
//!
//! # Writes
//! The promise: once a write is answered as a success, no instance serves an older version.
//! `invalidate` (after the commit) drops the keys here, then, **even with the breaker open**
//! (the breaker keeps reads fast; it says nothing about whether other instances still hear
//! Redis — scenario 7 of RELIABILITY.md was exactly that), tries tombstones + publish in
//! attempts of up to 250 ms, on fresh connections after errors, for up to 700 ms. It returns:
//! - [`Invalidation::Applied`]: the pipeline went through; the writer then waits until as
//!   many acknowledgements as PUBLISH reported receivers (its own subscriber included), or
//!   until `LEASE_MS` after PUBLISH answered: a receiver that has not acknowledged by then
//!   has a lapsed lease (it pinged before the message and heard nothing since, see above).
//!   Counted in `cache_invalidation_ack_timeouts_total`.
//! - [`Invalidation::RedisUnreachable`]: an attempt failed and this instance has heard
//!   nothing from Redis for `SILENCE_MS` (a lease plus two pings). Every instance that shares
//!   the outage has a lapsed lease by then, and clears L1 and distrusts older L2 values when it
//!   hears Redis again, so the write is answered ("Redis down ⇒ requests keep succeeding").
//!   Not covered: an instance cut off from Redis alone while the others still reach it; its
//!   writes are answered, and the others may read the old value until its keys are replayed.
//! - [`Invalidation::Unconfirmed`]: Redis still answers this instance but the invalidation did
//!   not get through in 700 ms (e.g. out of memory: PING and PUBLISH work, SET does not).
//!   Others may read the old value from L2, so the write is answered 503 (it is committed; the
//!   message says so) rather than a success that could be followed by a stale read.
//!   Counted in `cache_unconfirmed_invalidations_total`.
//!
//! In the last two cases the keys wait in a bounded pending set and are replayed (tombstones +
//! publish) by the background task — every 100 ms while the breaker is closed, and before it
//! closes again; on overflow a "clear everything" message is published instead. In every case
//! the writer drops the keys from its own L1 once more at the end: a read here may have
//! refilled it from the old L2 value before the tombstone landed.
//!
//! # Bypass
//! `CacheSettings::bypass = true` makes `get_or_load` call the loader directly and answer
//! [`CacheStatus::Bypass`] (benchmarks); [`Cache::load_bypass`] does the same per call.

pub mod breaker;
pub mod guard;
pub mod keys;
mod l1;
pub mod l2;
pub mod metrics;
pub mod node_probe;
mod tasks;
mod thread_flights;
pub mod topology;
pub mod ttl;
mod types;
pub mod wire;

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use breaker::BreakerState;
pub use keys::{CacheKey, CacheKeys, Resource};
pub use node_probe::{NodeCounts, TopologyHealth};
pub use topology::{NodeAddr, NodeAuth, RedisTopology};

use breaker::Breaker;
use guard::{Guard, Ticket, TOMBSTONE_TTL};
use l2::{L2Error, L2};
use metrics::{Layer, Metrics, Op};
pub use types::*;
use wire::Record;

use l1::{L1Entry, L1Weigher, L1};
use tasks::{reconnect_loop, subscriber_loop};
use thread_flights::ThreadFlights;

#[derive(Clone)]
enum LoadFailure {
    Err(Arc<dyn Any + Send + Sync>),
    Panicked,
}

type SharedLoad = Shared<BoxFuture<'static, Result<CacheRead, LoadFailure>>>;

#[derive(Clone)]
enum L2Look {
    Fresh(Option<Bytes>),
    Stale(Bytes),
    Miss,
}

impl L2Look {
    /// The read to answer with (a fresh value or "not found"); otherwise keeps a stale value
    /// in `stale` (unless it holds one already) for when the load fails.
    fn answer(self, stale: &mut Option<Bytes>) -> Option<CacheRead> {
        match self {
            L2Look::Fresh(value) => Some(CacheRead {
                value,
                status: CacheStatus::Hit(Tier::L2),
            }),
            L2Look::Stale(b) => {
                stale.get_or_insert(b);
                None
            }
            L2Look::Miss => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct BusMessage {
    i: String,
    #[serde(default)]
    k: Vec<String>,
    #[serde(default)]
    all: bool,
    /// Where receivers acknowledge that they dropped the keys (see `invalidate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
}

/// L1 answers as fresh, and L2 values are trusted, only while this instance's lease is valid:
/// its subscriber got an answer to a PING *sent* less than `LEASE_MS` ago (it pings every
/// `PING_MS`). Messages published before that PING reached Redis were delivered before its
/// answer and are applied before the lease is renewed.
pub(crate) const LEASE_MS: u64 = 300;
pub(crate) const PING_MS: u64 = LEASE_MS / 3;
/// Budget of one attempt of the Redis part of an invalidation (tombstones + publish).
const INVALIDATION_BUDGET: Duration = Duration::from_millis(250);
/// How long a write keeps retrying the Redis part of its invalidation.
const INVALIDATION_DEADLINE: Duration = Duration::from_millis(700);
/// A writer that has heard nothing from Redis for this long (its own lease lapsed, plus two
/// ping periods of slack) may assume that nobody else hears it either: Redis is down.
const SILENCE_MS: u64 = LEASE_MS + 2 * PING_MS;
/// Added to `trusted_after_ms` when trust is withdrawn: L2 headers carry other instances'
/// clocks (the same skew bound as the tombstone check).
const TRUST_MARGIN_MS: u64 = l2::CLOCK_SKEW_MARGIN_MS;
const ACK_KEY_TTL_MS: u64 = 5_000;

const PENDING_CAP: usize = 10_000;

struct Inner {
    s: CacheSettings,
    l1: Option<L1>,
    l2: Option<L2>,
    breaker: Breaker,
    guard: Guard,
    m: Metrics,
    inflight: Mutex<HashMap<(String, TypeId), (u64, SharedLoad)>>,
    /// Redis reads after an L1 miss, shared by the requests of one worker thread.
    l2_reads: ThreadFlights<L2Look>,
    flight_ids: AtomicU64,
    writes: Arc<Semaphore>,
    pending: Mutex<HashSet<String>>,
    pending_overflow: AtomicBool,
    trusted_after_ms: AtomicU64,
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

/// Removes the single-flight entry when the load task ends (also on panic), unless an
/// invalidation already replaced it with a newer flight.
struct FlightGuard {
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
        let m = Metrics::new(registry)?;
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
                L2::new(topology, settings.l2_pool_size, settings.l2_budget, &m)
                    .map_err(|e| CacheError::InvalidRedisUrl(format!("{:?}", e.kind())))?,
            ),
        };
        let (shutdown_tx, _) = watch::channel(false);
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
            sentinel_probe: settings
                .redis
                .as_ref()
                .and_then(node_probe::SentinelProbe::for_topology),
            me: me.clone(),
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

    /// A fresh value (L1, else L2). Negative entries read as `None`.
    pub async fn get(&self, key: &CacheKey) -> Option<CacheHit> {
        self.get_inner(key, false).await
    }

    /// Like `get` but also returns values past their logical expiry (within `stale_grace`),
    /// marked `stale: true`.
    pub async fn get_with_stale(&self, key: &CacheKey) -> Option<CacheHit> {
        self.get_inner(key, true).await
    }

    async fn get_inner(&self, key: &CacheKey, allow_stale: bool) -> Option<CacheHit> {
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

    /// Store a value in both tiers, unconditionally (an explicit write: it also replaces an
    /// L2 tombstone). The L2 write is awaited, bounded by `l2_budget`.
    pub async fn set(&self, key: &CacheKey, bytes: Bytes, ttl: Duration) {
        self.0.fill(key, Some(bytes), ttl, None, true).await;
    }

    /// `invalidate(&[key])`.
    pub async fn del(&self, key: &CacheKey) -> Invalidation {
        self.invalidate(std::slice::from_ref(key)).await
    }

    /// Drop keys from L1, tombstone them in L2 and tell the other instances. Call after the
    /// write committed, and answer the write only if this does not return
    /// [`Invalidation::Unconfirmed`] (see the module doc, "Writes").
    pub async fn invalidate(&self, keys: &[CacheKey]) -> Invalidation {
        self.invalidate_reporting(keys).await.outcome
    }

    /// [`Cache::invalidate`], also saying how many subscribers received the message and how
    /// many acknowledged it (this instance's own subscriber included while [`Cache::listening`]).
    pub async fn invalidate_reporting(&self, keys: &[CacheKey]) -> InvalidationReport {
        let report = |outcome| InvalidationReport {
            outcome,
            receivers: 0,
            acknowledged: 0,
        };
        if keys.is_empty() {
            return report(Invalidation::Applied);
        }
        let i = &self.0;
        i.drop_local(keys.iter().map(|k| k.as_str()));
        for k in keys {
            i.m.op(Layer::Memory, Op::Del, k.resource()).inc();
        }
        if i.l2.is_none() {
            return report(Invalidation::Applied);
        }
        let raw: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let (mut receivers, mut acknowledged) = (0, 0);
        let started = tokio::time::Instant::now();
        let mut attempt: u32 = 0;
        // Tried even with the breaker open: the breaker keeps reads fast, but an open breaker
        // says nothing about whether the other instances still hear Redis (they may have
        // reconnected already, or their pings pass where 50 ms reads time out).
        let outcome = loop {
            let ack_key = i.next_ack_key();
            let left = INVALIDATION_DEADLINE.saturating_sub(started.elapsed());
            let budget = INVALIDATION_BUDGET.min(left).max(i.s.l2_budget);
            match i.l2_invalidate(&raw, Some(&ack_key), budget).await {
                Ok(heard) => {
                    for k in keys {
                        i.m.op(Layer::Redis, Op::Del, k.resource()).inc();
                    }
                    // A receiver that has not acknowledged a lease after PUBLISH answered has
                    // a lapsed lease: its last answered PING was sent before the message.
                    let lease = Duration::from_millis(LEASE_MS + 20);
                    acknowledged = i
                        .wait_for_acks(&ack_key, heard, tokio::time::Instant::now() + lease)
                        .await;
                    receivers = heard;
                    break Invalidation::Applied;
                }
                Err(_) if i.silent_for(now_ms()) >= SILENCE_MS => {
                    break Invalidation::RedisUnreachable
                }
                Err(_) if started.elapsed() >= INVALIDATION_DEADLINE => {
                    break Invalidation::Unconfirmed
                }
                Err(_) => {
                    attempt += 1;
                    let pause = Duration::from_millis(u64::from(attempt.min(5)) * 10);
                    tokio::time::sleep(
                        pause.min(INVALIDATION_DEADLINE.saturating_sub(started.elapsed())),
                    )
                    .await;
                }
            }
        };
        if outcome != Invalidation::Applied {
            i.add_pending(raw);
            if outcome == Invalidation::Unconfirmed {
                i.m.unconfirmed_invalidations.inc();
                log::warn!(
                    "cache: an invalidation could not be applied in Redis within {INVALIDATION_DEADLINE:?} while Redis still answers this instance; the write is not confirmed"
                );
            }
        }
        // Reads on this instance between the first drop and the tombstone may have refilled
        // L1 from the old L2 value (or an old load): drop again, now that L2 holds the
        // tombstone (or, when Redis is unreachable, once nothing will be read from it).
        i.drop_local(keys.iter().map(|k| k.as_str()));
        InvalidationReport {
            outcome,
            receivers: u64::try_from(receivers).unwrap_or(0),
            acknowledged: u64::try_from(acknowledged).unwrap_or(0),
        }
    }

    /// Whether this instance's invalidation subscriber is subscribed now (so it is one of the
    /// receivers an invalidation reports).
    pub fn listening(&self) -> bool {
        self.0.subscribed.load(Ordering::Acquire)
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
                let handle = tokio::spawn(async move {
                    let _guard = guard;
                    inner.load(key, ttl, loader, l1_stale, !l2_read).await
                });
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
    async fn l2_read_shared(&self, key: &CacheKey) -> L2Look {
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
        let msg = BusMessage {
            i: i.s.instance_id.clone(),
            k: vec![],
            all: true,
            a: None,
        };
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
                async move { i.fill(&k, Some(v), ttl, Some(ticket), true).await }
            })
            .buffer_unordered(max_concurrency.max(1))
            .filter(|ok| futures::future::ready(*ok))
            .count()
            .await
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

    /// Remove everything from this instance's L1 only (tests, admin).
    pub fn clear_l1(&self) {
        self.0.clear_l1("clear_l1");
    }
}

impl Inner {
    fn kind(&self) -> CacheType {
        if self.is_connected() {
            CacheType::Redis
        } else {
            CacheType::InMemory
        }
    }

    fn is_connected(&self) -> bool {
        self.l2.is_some()
            && self.connected.load(Ordering::Acquire)
            && self.breaker.allows()
            && !self.shut.load(Ordering::Acquire)
    }

    fn refresh_gauges(&self) {
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

    /// A fresh L1 answer for `key` without counting the lookup (a second look by a request
    /// whose miss was already counted).
    fn l1_fresh_uncounted(&self, key: &CacheKey) -> Option<CacheRead> {
        let e = self.l1_for(key.resource())?.get(key.as_str())?;
        self.l1_answers(&e, now_ms()).then(|| l1_hit(e))
    }

    /// L1, unless it is off or skips `res`.
    fn l1_for(&self, res: Resource) -> Option<&L1> {
        self.l1.as_ref().filter(|_| !self.s.l1_skip.contains(&res))
    }

    /// Whether an L1 entry may answer at `now` (fresh, and the lease held).
    fn l1_answers(&self, e: &L1Entry, now: u64) -> bool {
        now < e.logical_ms && self.lease_valid(now)
    }

    /// L1 lookup: Some((entry, fresh)). Expired-past-grace entries are removed.
    fn l1_get(&self, key: &CacheKey) -> Option<(L1Entry, bool)> {
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
    /// only while the invalidation subscriber listens: a copy taken while it does not could
    /// outlive a write made on another instance.
    fn l1_keeps(&self, res: Resource) -> bool {
        self.l1_for(res).is_some() && (self.l2.is_none() || self.subscribed.load(Ordering::Acquire))
    }

    fn l1_insert(&self, key: &str, e: L1Entry, res: Resource) {
        if !self.l1_keeps(res) {
            return;
        }
        if let Some(l1) = &self.l1 {
            l1.insert(key.to_owned(), e);
            self.m.op(Layer::Memory, Op::Set, res).inc();
        }
    }

    /// Drop keys from L1 (guarded) and detach their in-flight loads, so that a read
    /// arriving after the invalidation starts a new load instead of joining an old one.
    fn drop_local<'k>(&self, keys: impl Iterator<Item = &'k str>) {
        let mut dropped: Vec<String> = Vec::new();
        self.guard.invalidate(keys, |k| {
            if let Some(l1) = &self.l1 {
                l1.remove(k);
            }
            dropped.push(k.to_owned());
        });
        let mut map = lock(&self.inflight);
        if !map.is_empty() {
            map.retain(|(k, _), _| !dropped.contains(k));
        }
    }

    fn clear_l1(&self, why: &str) {
        log::debug!("cache: clearing L1 ({why})");
        self.guard.invalidate_all(|| {
            if let Some(l1) = &self.l1 {
                l1.clear();
            }
        });
        lock(&self.inflight).clear();
    }

    /// Run one L2 command under `budget`, feeding the breaker. Err when skipped too.
    async fn l2_run<T, F>(&self, budget: Duration, f: F) -> Result<T, L2Error>
    where
        F: for<'c> FnOnce(
            &'c mut topology::RedisConn,
        ) -> BoxFuture<'c, Result<T, redis::RedisError>>,
    {
        let Some(l2) = &self.l2 else {
            return Err(L2Error::Pool("not configured".into()));
        };
        if self.shut.load(Ordering::Acquire) {
            return Err(L2Error::Pool("shut down".into()));
        }
        match l2.run(budget, f).await {
            Ok(v) => {
                self.breaker.on_success();
                self.connected.store(true, Ordering::Release);
                Ok(v)
            }
            Err(e) => {
                match &e {
                    L2Error::Timeout => self.m.l2_timeouts.inc(),
                    _ => self.m.l2_errors.inc(),
                }
                log::debug!("cache: redis op failed: {e}");
                if self.breaker.on_failure() {
                    self.on_trip();
                }
                Err(e)
            }
        }
    }

    fn on_trip(&self) {
        log::warn!("cache: redis circuit breaker opened; serving from memory");
        self.connected.store(false, Ordering::Release);
        self.m.breaker_state.set(BreakerState::Open.gauge_value());
        if let Some(l2) = &self.l2 {
            l2.reset_pool();
        }
    }

    async fn ping(&self, budget: Duration) -> bool {
        self.l2_run(budget, |c| {
            async move { redis::cmd("PING").query_async::<String>(c).await }.boxed()
        })
        .await
        .is_ok()
    }

    /// Whether a Redis read may answer now (configured, breaker closed, lease held).
    fn l2_usable(&self) -> bool {
        self.l2.is_some() && self.breaker.allows() && self.lease_valid(now_ms())
    }

    /// `count_miss: false` for a second look after a miss was already counted.
    async fn l2_lookup(&self, key: &CacheKey, ticket: Ticket, count_miss: bool) -> L2Look {
        if !self.l2_usable() {
            return L2Look::Miss;
        }
        let res = key.resource();
        let t = std::time::Instant::now();
        let mut get = redis::cmd("GET");
        get.arg(key.as_str());
        let got = self
            .l2_run(self.s.l2_budget, move |c| {
                async move { get.query_async::<Option<Vec<u8>>>(c).await }.boxed()
            })
            .await;
        self.m.l2_duration.observe(t.elapsed().as_secs_f64());
        let raw = match got {
            Err(_) => {
                self.m.op(Layer::Redis, Op::Error, res).inc();
                return L2Look::Miss;
            }
            Ok(None) => {
                if count_miss {
                    self.m.op(Layer::Redis, Op::Miss, res).inc();
                }
                return L2Look::Miss;
            }
            Ok(Some(raw)) => Bytes::from(raw),
        };
        let now = now_ms();
        // Lease first: a lease regained during the GET raises `trusted_after_ms` before it
        // renews the lease.
        let lease = self.lease_valid(now);
        let trusted = self.trusted_after_ms.load(Ordering::Acquire);
        let (value, logical, written) = match wire::decode(raw.clone()) {
            Err(_) => {
                self.m.decode_errors.inc();
                if count_miss {
                    self.m.op(Layer::Redis, Op::Miss, res).inc();
                }
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
                return L2Look::Miss;
            }
            Ok(Record::Tombstone) => {
                if count_miss {
                    self.m.op(Layer::Redis, Op::Miss, res).inc();
                }
                return L2Look::Miss;
            }
            Ok(Record::Value {
                payload,
                logical_exp_ms,
                written_ms,
            }) => (Some(payload), logical_exp_ms, written_ms),
            Ok(Record::Negative {
                logical_exp_ms,
                written_ms,
            }) => (None, logical_exp_ms, written_ms),
        };
        if written < trusted || !lease {
            if count_miss {
                self.m.op(Layer::Redis, Op::Miss, res).inc();
            }
            return L2Look::Miss;
        }
        if now >= logical {
            if count_miss {
                self.m.op(Layer::Redis, Op::Miss, res).inc();
            }
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
        };
        self.guard.fill_if_current(key.as_str(), ticket, || {
            self.l1_insert(key.as_str(), entry, res);
        });
        L2Look::Fresh(value)
    }
}

impl Inner {
    /// Spawn a fire-and-forget L2 write under the bounded semaphore (dropped when full).
    fn spawn_write<F>(&self, f: F)
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
        tokio::spawn(async move {
            f(me).await;
            drop(permit);
        });
    }

    /// Fill L1 (guarded by `ticket` when given) and L2 (awaited or fire-and-forget).
    /// Returns false when the fill was skipped because the key was invalidated meanwhile.
    async fn fill(
        &self,
        key: &CacheKey,
        value: Option<Bytes>,
        ttl: Duration,
        ticket: Option<Ticket>,
        await_l2: bool,
    ) -> bool {
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
        };
        let filled = match ticket {
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
        let guarded = ticket.map(|t| t.wall_ms);
        if await_l2 {
            self.l2_write(k, rec, px, guarded, res).await;
        } else {
            self.spawn_write(move |i| {
                async move { i.l2_write(k, rec, px, guarded, res).await }.boxed()
            });
        }
        true
    }

    /// `guarded`: Some(load start, unix ms) = refuse to overwrite an older tombstone.
    async fn l2_write(
        &self,
        key: String,
        rec: Vec<u8>,
        px: u64,
        guarded: Option<u64>,
        res: Resource,
    ) {
        let script = self.fill_script.clone();
        let out = self
            .l2_run(self.s.l2_budget, move |c| {
                async move {
                    if let Some(start_ms) = guarded {
                        script
                            .key(key)
                            .arg(rec)
                            .arg(px)
                            .arg(&wire::tombstone_prefix()[..])
                            .arg(start_ms)
                            .arg(l2::CLOCK_SKEW_MARGIN_MS)
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

    /// The single-flight body: L2 lookup, load, fills, stale fallback.
    /// `count_l2_miss: false` when the caller already read Redis and counted its miss (the
    /// look here only closes the window in which another load filled it).
    async fn load<E, F, Fut>(
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
        if let Some(read) = look.answer(&mut stale) {
            return Ok(read);
        }
        self.m.loads.inc();
        match loader().await {
            Ok(value) => {
                self.fill(&key, value.clone(), ttl, Some(ticket), false)
                    .await;
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

    /// Tombstone `keys` in L2 and publish them, in one pipeline; answers how many subscribers
    /// received the message.
    async fn l2_invalidate(
        &self,
        keys: &[String],
        ack_key: Option<&str>,
        budget: Duration,
    ) -> Result<i64, L2Error> {
        let tomb = wire::encode(wire::FLAG_TOMBSTONE, 0, now_ms(), b"");
        let msg = serde_json::to_vec(&BusMessage {
            i: self.s.instance_id.clone(),
            k: keys.to_vec(),
            all: false,
            a: ack_key.map(str::to_owned),
        })
        .unwrap_or_default();
        let keys = keys.to_vec();
        let channel = self.channel.clone();
        let px = TOMBSTONE_TTL.as_millis() as u64;
        self.l2_run(budget, move |c| {
            async move {
                if !c.is_cluster() {
                    let mut p = redis::pipe();
                    for k in &keys {
                        p.cmd("SET").arg(k).arg(&tomb).arg("PX").arg(px).ignore();
                    }
                    p.cmd("PUBLISH").arg(channel).arg(msg);
                    let (receivers,): (i64,) = p.query_async(c).await?;
                    return Ok(receivers);
                }
                // A Cluster refuses a pipeline whose commands hash to different slots: one
                // pipeline per hash tag (a location's keys share one), then the PUBLISH, which
                // is routed to the channel's slot.
                for group in topology::group_by_hash_tag(&keys) {
                    let mut p = redis::pipe();
                    for k in group {
                        p.cmd("SET").arg(k).arg(&tomb).arg("PX").arg(px).ignore();
                    }
                    p.query_async::<()>(c).await?;
                }
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(msg)
                    .query_async::<i64>(c)
                    .await
            }
            .boxed()
        })
        .await
    }

    async fn publish(&self, msg: &BusMessage, budget: Duration) -> Result<(), L2Error> {
        let payload = serde_json::to_vec(msg).unwrap_or_default();
        let channel = self.channel.clone();
        self.l2_run(budget, move |c| {
            async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(c)
                    .await
                    .map(|_| ())
            }
            .boxed()
        })
        .await
    }

    /// `SCAN MATCH "{prefix}:*"` + `UNLINK` in batches on one node (a Cluster primary) or on
    /// the only node. Returns the keys removed.
    async fn flush_node(
        &self,
        node: Option<topology::NodeAddr>,
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

    fn add_pending(&self, keys: Vec<String>) {
        let mut p = lock(&self.pending);
        if p.len() + keys.len() > PENDING_CAP {
            self.pending_overflow.store(true, Ordering::Release);
            p.clear();
        } else {
            p.extend(keys);
        }
        self.m.pending_invalidations.set(p.len() as i64);
    }

    /// Replay invalidations whose L2 part failed. True when nothing is left.
    async fn replay_pending(&self, budget: Duration) -> bool {
        let keys: Vec<String> = lock(&self.pending).drain().collect();
        let overflow = self.pending_overflow.swap(false, Ordering::AcqRel);
        for (n, chunk) in keys.chunks(500).enumerate() {
            if self.l2_invalidate(chunk, None, budget).await.is_err() {
                self.add_pending(keys[n * 500..].to_vec());
                if overflow {
                    self.pending_overflow.store(true, Ordering::Release);
                }
                return false;
            }
        }
        if overflow {
            let msg = BusMessage {
                i: self.s.instance_id.clone(),
                k: vec![],
                all: true,
                a: None,
            };
            if self.publish(&msg, budget).await.is_err() {
                self.pending_overflow.store(true, Ordering::Release);
                return false;
            }
        }
        if !keys.is_empty() {
            log::info!("cache: replayed {} pending invalidations", keys.len());
        }
        self.m
            .pending_invalidations
            .set(lock(&self.pending).len() as i64);
        true
    }

    fn on_bus_message(self: &Arc<Self>, payload: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<BusMessage>(payload) else {
            log::warn!("cache: ignoring a malformed invalidation message");
            return;
        };
        // Our own messages are acknowledged too (the writer counts every receiver PUBLISH
        // reported), but drop nothing: the writer already did.
        if msg.i != self.s.instance_id {
            if msg.all {
                self.clear_l1("flush from another instance");
            } else {
                self.drop_local(msg.k.iter().map(String::as_str));
            }
        }
        if let Some(ack_key) = msg.a {
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.acknowledge(ack_key).await });
        }
    }

    /// Whether L1 copies may answer as fresh, and L2 values be trusted: without Redis there
    /// is nobody else to hear from; with it, only while invalidations can reach this instance.
    fn lease_valid(&self, now: u64) -> bool {
        self.l2.is_none()
            || (self.subscribed.load(Ordering::Acquire)
                && now <= self.last_heard_ms.load(Ordering::Acquire) + LEASE_MS)
    }

    /// Sentinel only: asks who the primary is now. When the Sentinels moved it, the pool is
    /// replaced (pooled connections may still reach the old primary, which keeps answering as
    /// one for a while after a manual failover), values Redis holds from before are no longer
    /// trusted (invalidations sent to the old primary are lost), and the subscriber follows.
    pub(crate) async fn follow_sentinel_primary(&self) {
        let Some(l2) = &self.l2 else { return };
        if !matches!(l2.topology, RedisTopology::Sentinel { .. }) {
            return;
        }
        let asked = tokio::time::timeout(self.probe_budget(), l2.subscriber.sentinel_primary());
        if let Ok(Some(primary)) = asked.await {
            if l2.note_primary(primary.clone()) {
                log::warn!("cache: sentinels moved the primary to {primary}; reconnecting");
                self.withdraw_trust("sentinels moved the primary");
                l2.reset_pool();
            }
        }
    }

    /// Whether `node` (where the subscriber listens) still owns the invalidation channel's
    /// slot. Always true outside a Cluster; when the owner cannot be asked, keep listening
    /// (the subscriber's own PING decides whether the connection is alive).
    pub(crate) async fn still_owns_channel(&self, node: Option<&topology::NodeAddr>) -> bool {
        let (Some(node), Some(l2)) = (node, &self.l2) else {
            return true;
        };
        if let RedisTopology::Sentinel { .. } = l2.topology {
            return l2.known_primary().is_none_or(|p| p == *node);
        }
        let channel = self.channel.clone();
        match self
            .l2_run(self.probe_budget(), move |c| {
                async move { topology::slot_owner(c, &channel).await }.boxed()
            })
            .await
        {
            Ok(owner) => owner == *node,
            Err(_) => true,
        }
    }

    /// How long since the last PING answered on the subscriber was sent.
    fn silent_for(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_heard_ms.load(Ordering::Acquire))
    }

    /// The subscriber got the answer to a PING sent at `sent_ms` (or subscribed with a
    /// request sent then). If the lease had lapsed meanwhile, a writer may have answered
    /// without reaching us (see `invalidate`): what we hold, and what Redis held, may be older
    /// than its write, so L1 is cleared and older L2 values are no longer trusted.
    pub(crate) fn heard_from_redis(&self, sent_ms: u64) {
        let last = self.last_heard_ms.load(Ordering::Acquire);
        if last != 0 && now_ms() > last + LEASE_MS {
            self.withdraw_trust("lease lapsed");
        }
        self.last_heard_ms.fetch_max(sent_ms, Ordering::AcqRel);
    }

    /// Forget L1 and stop trusting L2 values loaded before now (plus the clock margin).
    pub(crate) fn withdraw_trust(&self, why: &str) {
        self.trusted_after_ms
            .fetch_max(now_ms() + TRUST_MARGIN_MS, Ordering::AcqRel);
        self.clear_l1(why);
    }

    fn next_ack_key(&self) -> String {
        let seq = self.ack_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}:ack:{}:{seq}", self.s.prefix, self.s.instance_id)
    }

    /// Tells the writer this instance no longer serves the invalidated keys.
    async fn acknowledge(&self, ack_key: String) {
        let _ = self
            .l2_run(self.s.l2_budget.max(INVALIDATION_BUDGET), move |c| {
                async move {
                    redis::pipe()
                        .cmd("INCR")
                        .arg(&ack_key)
                        .ignore()
                        .cmd("PEXPIRE")
                        .arg(&ack_key)
                        .arg(ACK_KEY_TTL_MS)
                        .ignore()
                        .query_async::<()>(c)
                        .await
                }
                .boxed()
            })
            .await;
    }

    /// Waits until the `expected` receivers of an invalidation acknowledged it, or until
    /// `lapsed` (by then every receiver that did not has a lapsed lease: it neither serves L1
    /// nor trusts L2 until it hears Redis again, and then it clears L1 — or it has processed
    /// the message, which came before any later PING answer). Acknowledgements only make a
    /// write faster; a receiver that does not answer is counted.
    async fn wait_for_acks(
        &self,
        ack_key: &str,
        expected: i64,
        lapsed: tokio::time::Instant,
    ) -> i64 {
        if expected <= 0 {
            return 0;
        }
        let mut pause = Duration::from_micros(250);
        let mut acked = None;
        loop {
            let left = lapsed.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let key = ack_key.to_owned();
            if let Ok(n) = self
                .l2_run(left.max(self.s.l2_budget), move |c| {
                    async move {
                        redis::cmd("GET")
                            .arg(key)
                            .query_async::<Option<i64>>(c)
                            .await
                    }
                    .boxed()
                })
                .await
            {
                acked = n;
            }
            if acked.unwrap_or(0) >= expected {
                return acked.unwrap_or(0);
            }
            let left = lapsed.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        self.m.ack_timeouts.inc();
        log::warn!(
            "cache: {} of {expected} receivers acknowledged an invalidation; waited out their lease",
            acked.unwrap_or(0)
        );
        acked.unwrap_or(0)
    }

    fn probe_budget(&self) -> Duration {
        self.s.l2_budget.max(Duration::from_millis(500))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
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

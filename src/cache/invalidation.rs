//! Invalidation after a write: drop here, tombstone in Redis, publish, wait for the
//! acknowledgements; what failed waits in the pending set and is replayed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::FutureExt;

use super::{
    bus::{BusMessage, LEASE_MS, SILENCE_MS},
    guard::TOMBSTONE_TTL,
    l2::L2Error,
    lock,
    metrics::{Layer, Op},
    now_ms, topology, wire, Cache, CacheKey, Inner, Invalidation, InvalidationReport,
};

/// Budget of one attempt of the Redis part of an invalidation (tombstones + publish).
pub(super) const INVALIDATION_BUDGET: Duration = Duration::from_millis(250);
/// How long a write keeps retrying the Redis part of its invalidation.
pub(super) const INVALIDATION_DEADLINE: Duration = Duration::from_millis(700);
pub(super) const ACK_KEY_TTL_MS: u64 = 5_000;

pub(super) const PENDING_CAP: usize = 10_000;

impl Cache {
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
        // The write's commit position, when it was recorded (a request's write): replica
        // loads below it are not cached, here and wherever the Redis copy arrives.
        let at = super::region::written();
        i.drop_and_mark(keys, at);
        let raw: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        // The id the write's Postgres notice carried: receivers apply whichever copy comes
        // first, once.
        let id = i.pg.take_notice_id(&raw);
        if i.l2.is_none() {
            i.await_pg_bus_alone(id.as_deref()).await;
            return report(Invalidation::Applied);
        }
        let started = tokio::time::Instant::now();
        let published = i
            .publish_invalidation(keys, &raw, id.as_deref(), at, started)
            .await;
        i.await_pg_bus_beside_redis(&published, id.as_deref(), started)
            .await;
        i.queue_unapplied(published.outcome, raw);
        // Reads on this instance between the first drop and the tombstone may have refilled
        // L1 from the old L2 value (or an old load): drop again, now that L2 holds the
        // tombstone (or, when Redis is unreachable, once nothing will be read from it).
        i.drop_local(keys.iter().map(|k| k.as_str()));
        published
    }

    /// Whether this instance's invalidation subscriber is subscribed now (so it is one of the
    /// receivers an invalidation reports).
    pub fn listening(&self) -> bool {
        self.0.subscribed.load(Ordering::Acquire)
    }

    /// Remove everything from this instance's L1 only (tests, admin).
    pub fn clear_l1(&self) {
        self.0.clear_l1("clear_l1");
    }
}

/// The steps of [`Cache::invalidate_reporting`], in the order it takes them.
impl Inner {
    /// The first drop: L1 and in-flight loads here, and the region's note of the write.
    fn drop_and_mark(&self, keys: &[CacheKey], at: Option<u64>) {
        self.drop_local(keys.iter().map(|k| k.as_str()));
        self.region.mark(keys.iter().map(|k| k.as_str()), at, false);
        for k in keys {
            self.m.op(Layer::Memory, Op::Del, k.resource()).inc();
        }
    }

    /// No Redis: the Postgres bus is the only one. Other instances hold no lease then (L1
    /// answers as a single instance would), so acknowledgements are awaited from those heard
    /// lately, bounded by a lease, and not waited out beyond.
    async fn await_pg_bus_alone(&self, id: Option<&str>) {
        let Some(id) = id else {
            return;
        };
        if self.pg.recent_members() > 1 || !self.pg.members_known() {
            let bound = tokio::time::Instant::now() + Duration::from_millis(LEASE_MS + 20);
            self.pg.wait_for_acks(id, bound).await;
        } else {
            self.pg.forget_wait(id);
        }
    }

    /// Tombstones and publishes in Redis, retrying until [`INVALIDATION_DEADLINE`] after
    /// `started`, and waits for the receivers' acknowledgements.
    async fn publish_invalidation(
        &self,
        keys: &[CacheKey],
        raw: &[String],
        id: Option<&str>,
        at: Option<u64>,
        started: tokio::time::Instant,
    ) -> InvalidationReport {
        let mut attempt: u32 = 0;
        // Tried even with the breaker open: the breaker keeps reads fast, but an open breaker
        // says nothing about whether the other instances still hear Redis (they may have
        // reconnected already, or their pings pass where 50 ms reads time out).
        loop {
            let ack_key = self.next_ack_key();
            let left = INVALIDATION_DEADLINE.saturating_sub(started.elapsed());
            // Redis silent for longer than a lease: one short attempt (it may be back before
            // this instance's subscriber noticed), then the Postgres bus answers for it.
            let budget = if self.silent_for(now_ms()) >= SILENCE_MS {
                self.s.l2_budget
            } else {
                INVALIDATION_BUDGET.min(left).max(self.s.l2_budget)
            };
            let outcome = match self
                .l2_invalidate(raw, Some(&ack_key), id.map(str::to_owned), budget, at)
                .await
            {
                Ok(heard) => return self.published(keys, &ack_key, heard).await,
                Err(_) if self.silent_for(now_ms()) >= SILENCE_MS => Invalidation::RedisUnreachable,
                Err(_) if started.elapsed() >= INVALIDATION_DEADLINE => Invalidation::Unconfirmed,
                Err(_) => {
                    attempt += 1;
                    let pause = Duration::from_millis(u64::from(attempt.min(5)) * 10);
                    tokio::time::sleep(
                        pause.min(INVALIDATION_DEADLINE.saturating_sub(started.elapsed())),
                    )
                    .await;
                    continue;
                }
            };
            return InvalidationReport {
                outcome,
                receivers: 0,
                acknowledged: 0,
            };
        }
    }

    /// PUBLISH reached `heard` subscribers: counts the deletes and waits for their
    /// acknowledgements.
    async fn published(&self, keys: &[CacheKey], ack_key: &str, heard: i64) -> InvalidationReport {
        for k in keys {
            self.m.op(Layer::Redis, Op::Del, k.resource()).inc();
        }
        // A receiver that has not acknowledged a lease after PUBLISH answered has a lapsed
        // lease: its last answered PING was sent before the message.
        let lease = Duration::from_millis(LEASE_MS + 20);
        let acknowledged = self
            .wait_for_acks(ack_key, heard, tokio::time::Instant::now() + lease)
            .await;
        self.m.invalidations_published.inc();
        self.m
            .invalidation_receivers
            .inc_by(u64::try_from(heard).unwrap_or(0));
        self.m
            .invalidation_acks
            .inc_by(u64::try_from(acknowledged).unwrap_or(0));
        InvalidationReport {
            outcome: Invalidation::Applied,
            receivers: u64::try_from(heard).unwrap_or(0),
            acknowledged: u64::try_from(acknowledged).unwrap_or(0),
        }
    }

    /// Which instances may rest on the Postgres bus alone: all of them when Redis is
    /// unreachable; some when fewer subscribers received the Redis copy than instances send
    /// heartbeats (one still reconnecting its subscriber, say).
    async fn await_pg_bus_beside_redis(
        &self,
        published: &InvalidationReport,
        id: Option<&str>,
        started: tokio::time::Instant,
    ) {
        let Some(id) = id else {
            return;
        };
        let through_pg = match published.outcome {
            Invalidation::RedisUnreachable => true,
            Invalidation::Applied => {
                usize::try_from(published.receivers).unwrap_or(0) < self.pg.recent_members()
                    || !self.pg.members_known()
            }
            Invalidation::Unconfirmed => false,
        };
        if !through_pg {
            self.pg.forget_wait(id);
            return;
        }
        // The write's notice went through Postgres with its commit (before `started`). An
        // instance whose Postgres lease still holds heard a heartbeat sent less than a lease
        // ago; if that heartbeat was committed before the write, its lease ends within a lease
        // of `started`, else it applied the notice first. So the write is answered once every
        // instance heard from lately acknowledged the notice, or a lease after `started`: then
        // no instance can serve what it replaced.
        let lapsed = started + Duration::from_millis(LEASE_MS + 20);
        if !self.pg.wait_for_acks(id, lapsed).await {
            self.m.ack_timeouts.inc();
            tokio::time::sleep_until(lapsed).await;
        }
    }

    /// An invalidation Redis did not apply waits in the pending set for replay.
    fn queue_unapplied(&self, outcome: Invalidation, raw: Vec<String>) {
        if outcome == Invalidation::Applied {
            return;
        }
        self.add_pending(raw);
        if outcome == Invalidation::Unconfirmed {
            self.m.unconfirmed_invalidations.inc();
            log::warn!(
                "cache: an invalidation could not be applied in Redis within {INVALIDATION_DEADLINE:?} while Redis still answers this instance; the write is not confirmed"
            );
        }
    }
}

impl Inner {
    /// Drop keys from L1 (guarded) and detach their in-flight loads, so that a read
    /// arriving after the invalidation starts a new load instead of joining an old one.
    pub(super) fn drop_local<'k>(&self, keys: impl Iterator<Item = &'k str>) {
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

    pub(super) fn clear_l1(&self, why: &str) {
        log::debug!("cache: clearing L1 ({why})");
        // What caused it may have lost notices: replica loads wait for a newer floor.
        self.region.floor_pending();
        self.guard.invalidate_all(|| {
            if let Some(l1) = &self.l1 {
                l1.clear();
            }
        });
        lock(&self.inflight).clear();
    }

    /// Tombstone `keys` in L2 and publish them, in one pipeline; answers how many subscribers
    /// received the message. `at`: the invalidated write's position, when known (the
    /// tombstone and the message carry it, see `region`).
    pub(super) async fn l2_invalidate(
        &self,
        keys: &[String],
        ack_key: Option<&str>,
        id: Option<String>,
        budget: Duration,
        at: Option<u64>,
    ) -> Result<i64, L2Error> {
        // Named by a random id, never a time: see `FILL_SCRIPT`.
        let tomb = wire::encode(
            wire::FLAG_TOMBSTONE,
            at.unwrap_or(0),
            rand::random::<u64>() | 1,
            b"",
        );
        let mut msg = BusMessage::drop_keys(&self.s.instance_id, keys, ack_key, id);
        msg.r = Some(self.region.name.clone());
        msg.l = at;
        let msg = serde_json::to_vec(&msg).unwrap_or_default();
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

    /// Writes the tombstones of other regions' writes into this region's Redis (in the
    /// background: the listener must not wait on Redis), publishing them to the region's
    /// other instances; the keys stay gated here until that worked (it is tried again with
    /// the next heartbeat's answer).
    pub(super) fn tombstone_foreign(&self, t: super::region::Tombstones) {
        if self.l2.is_none() {
            self.region.tombstoned(&t.keys, t.gen);
            return;
        }
        if !self.breaker.allows() {
            // Redis is not read meanwhile; the next answer after it is back tries again.
            return;
        }
        self.spawn_write(move |i| {
            async move {
                for chunk in t.keys.chunks(500) {
                    let written = i
                        .l2_invalidate(chunk, None, None, INVALIDATION_BUDGET, Some(t.position))
                        .await;
                    if written.is_err() {
                        return;
                    }
                    i.region.tombstoned(chunk, t.gen);
                }
            }
            .boxed()
        });
    }

    pub(super) fn add_pending(&self, keys: Vec<String>) {
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
    pub(super) async fn replay_pending(&self, budget: Duration) -> bool {
        let keys: Vec<String> = lock(&self.pending).drain().collect();
        let overflow = self.pending_overflow.swap(false, Ordering::AcqRel);
        for (n, chunk) in keys.chunks(500).enumerate() {
            if self
                .l2_invalidate(chunk, None, None, budget, None)
                .await
                .is_err()
            {
                self.add_pending(keys[n * 500..].to_vec());
                if overflow {
                    self.pending_overflow.store(true, Ordering::Release);
                }
                return false;
            }
        }
        if overflow {
            let msg = BusMessage::clear_all(&self.s.instance_id);
            if self.publish(&msg, budget).await.is_err() {
                self.pending_overflow.store(true, Ordering::Release);
                return false;
            }
        }
        if !keys.is_empty() {
            self.region.ungate(&keys);
            log::info!("cache: replayed {} pending invalidations", keys.len());
        }
        self.m
            .pending_invalidations
            .set(lock(&self.pending).len() as i64);
        true
    }

    pub(super) fn next_ack_key(&self) -> String {
        let seq = self.ack_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}:ack:{}:{seq}", self.s.prefix, self.s.instance_id)
    }

    /// Tells the writer this instance no longer serves the invalidated keys.
    pub(super) async fn acknowledge(&self, ack_key: String) {
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
    pub(super) async fn wait_for_acks(
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
}

//! The invalidation bus: messages between instances over Redis pub/sub, the lease that says
//! whether this instance still hears them, and the trust it withdraws when it may not have.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::FutureExt;
use serde::Deserialize;
use serde::Serialize;

use super::{l2::L2Error, now_ms, topology, Inner};
use crate::config::{NodeAddr, RedisTopology};

#[derive(Serialize, Deserialize, Default)]
pub(super) struct BusMessage {
    pub(super) i: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) k: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) all: bool,
    /// Where receivers acknowledge that they dropped the keys (see `invalidate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) a: Option<String>,
    /// The message's id: the same write's message comes over both buses with one id, and is
    /// applied once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    /// The version the write stored (Postgres bus; informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) v: Option<i64>,
    /// A heartbeat of the Postgres bus, sent at this time (unix ms) by instance `i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hb: Option<u64>,
    /// Instance `i` acknowledges the Postgres message with this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ack: Option<String>,
    /// The sender's region (`REGION`); absent from older senders: the receiver's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) r: Option<String>,
    /// A heartbeat's generation (its answer carries the primary's position, see `region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) n: Option<u64>,
    /// The position the invalidated write committed at (its consistency token), when the
    /// sender knows it: replica loads below it are not cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) l: Option<u64>,
}

impl BusMessage {
    /// "Drop these keys", acknowledged at `ack_key` when given.
    pub(super) fn drop_keys(
        instance_id: &str,
        keys: &[String],
        ack_key: Option<&str>,
        id: Option<String>,
    ) -> Self {
        Self {
            i: instance_id.to_owned(),
            k: keys.to_vec(),
            a: ack_key.map(str::to_owned),
            id,
            ..Self::default()
        }
    }

    /// "Drop everything of this namespace" (a flush, or pending invalidations that overflowed).
    pub(super) fn clear_all(instance_id: &str) -> Self {
        Self {
            i: instance_id.to_owned(),
            all: true,
            ..Self::default()
        }
    }
}

/// L1 answers as fresh, and L2 values are trusted, only while this instance's lease is valid:
/// its subscriber got an answer to a PING *sent* less than `LEASE_MS` ago (it pings every
/// `PING_MS`). Messages published before that PING reached Redis were delivered before its
/// answer and are applied before the lease is renewed.
pub const LEASE_MS: u64 = 300;
pub(super) const PING_MS: u64 = LEASE_MS / 3;
/// A writer that has heard nothing from Redis for this long (its own lease lapsed, plus two
/// ping periods of slack) may assume that nobody else hears it either: Redis is down.
pub(super) const SILENCE_MS: u64 = LEASE_MS + 2 * PING_MS;
/// Added to `trusted_after_ms` when trust is withdrawn: L2 headers carry the clocks of the
/// instances whose loads wrote them.
pub(super) const TRUST_MARGIN_MS: u64 = 250;

impl Inner {
    pub(super) async fn publish(&self, msg: &BusMessage, budget: Duration) -> Result<(), L2Error> {
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

    pub(super) fn on_bus_message(self: &Arc<Self>, payload: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<BusMessage>(payload) else {
            log::warn!("cache: ignoring a malformed invalidation message");
            return;
        };
        // Our own messages are acknowledged too (the writer counts every receiver PUBLISH
        // reported), but drop nothing: the writer already did.
        self.apply_message(&msg, true);
        if let Some(ack_key) = msg.a {
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.acknowledge(ack_key).await });
        }
    }

    /// Drops what a message names; our own messages drop nothing (the writer already did).
    /// A write's message comes over both buses with one id. The Postgres copy is skipped when
    /// the Redis copy came first; the Redis copy is always applied: it comes after the write's
    /// tombstone is in Redis, so it also drops a copy read from Redis between the Postgres
    /// notice (sent at commit) and the tombstone.
    ///
    /// A Postgres notice of a write made in another region is also recorded as foreign: this
    /// region's Redis has no tombstone for it until this instance writes one (see `region`).
    pub(super) fn apply_message(&self, msg: &BusMessage, via_redis: bool) {
        if msg.i == self.s.instance_id || msg.hb.is_some() || msg.ack.is_some() {
            return;
        }
        if let Some(id) = &msg.id {
            if via_redis {
                self.pg.note_applied(id);
            } else if self.pg.applied_before(id) {
                return;
            }
        }
        let foreign = !via_redis && self.region.is_foreign(msg.r.as_deref());
        if msg.all {
            self.clear_l1("flush from another instance");
            if foreign {
                // Another region flushed its Redis; this region's may hold anything older.
                self.withdraw_trust("flush in another region");
            }
        } else {
            self.drop_local(msg.k.iter().map(String::as_str));
            self.region.mark(
                msg.k.iter().map(String::as_str),
                msg.l,
                foreign && self.l2.is_some(),
            );
        }
    }

    /// Whether L1 copies may answer as fresh: without Redis there is nobody else to hear
    /// from; with it, only while invalidations can reach this instance over at least one bus.
    ///
    /// With other regions on the primary, their writes come through Postgres only: then only
    /// the Postgres lease keeps L1 current.
    pub(super) fn lease_valid(&self, now: u64) -> bool {
        if self.region.multi_region() {
            return self.pg_lease_valid(now);
        }
        self.l2.is_none() || self.redis_lease_valid(now) || self.pg_lease_valid(now)
    }

    /// Redis is kept current for other regions' writes by this region's instances, which
    /// hear them through Postgres: with other regions around, its values are trusted only
    /// while the Postgres lease holds too.
    pub(super) fn cross_region_lease_valid(&self, now: u64) -> bool {
        !self.region.multi_region() || self.pg_lease_valid(now)
    }

    /// The Redis subscriber heard a PING sent less than a lease ago. L2 values are trusted
    /// only under this lease (tombstones travel through Redis alone).
    pub(super) fn redis_lease_valid(&self, now: u64) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && now <= self.last_heard_ms.load(Ordering::Acquire) + LEASE_MS
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
    pub(crate) async fn still_owns_channel(&self, node: Option<&NodeAddr>) -> bool {
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
    pub(super) fn silent_for(&self, now: u64) -> u64 {
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

    /// Stop trusting L2 values loaded before now (plus the clock margin) and L1 copies taken
    /// from Redis; forget all of L1 unless the Postgres bus kept what was loaded from
    /// Postgres current meanwhile (every write notifies through it).
    pub(crate) fn withdraw_trust(&self, why: &str) {
        self.trusted_after_ms
            .fetch_max(now_ms() + TRUST_MARGIN_MS, Ordering::AcqRel);
        self.l2_epoch.fetch_add(1, Ordering::AcqRel);
        if !self.pg_lease_valid(now_ms()) {
            self.clear_l1(why);
        }
    }
}

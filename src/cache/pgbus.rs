//! The second invalidation bus, through Postgres: every write that changes what a cached key
//! answers sends its message with `pg_notify` inside its own transaction (delivered only if it
//! commits, in commit order), and each instance holds one `LISTEN` connection (the listener
//! lives with the SQL, in `repository::postgres::listener`, and reports here).
//!
//! The lease from this bus: the listener sends a heartbeat NOTIFY every `PING_MS` and renews
//! the lease from the moment it sent it when it comes back. Postgres delivers notifications in
//! commit order, so every write committed before the heartbeat has been applied by then.
//! Messages carry an id; a Postgres copy whose Redis copy came first is not applied again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::bus::{BusMessage, LEASE_MS};
use super::{lock, now_ms, Cache, CacheKey, Inner};

/// Postgres refuses a NOTIFY payload of 8000 bytes or more: a message that would be larger
/// says "drop everything" instead.
const MAX_PAYLOAD: usize = 7_000;
/// Message ids remembered for deduplication (both copies arrive within milliseconds).
const SEEN_CAP: usize = 4_096;
/// Ids of notices whose Redis copy has not been sent yet (a write that failed after it
/// prepared one leaves its id behind; the map is emptied past this).
const NOTICES_CAP: usize = 1_024;
/// Instances not heard from for this long are forgotten.
const MEMBER_TTL: Duration = Duration::from_secs(10);

/// A write waiting for the other instances to acknowledge its Postgres notice.
#[derive(Default)]
struct AckWait {
    /// Who must acknowledge: fixed when this instance's listener received the notice itself.
    expected: Option<HashSet<String>>,
    acked: HashSet<String>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

/// The Postgres bus's state in the cache.
pub(super) struct PgBus {
    /// The listener was started (`Cache::attach_pg_bus`).
    attached: AtomicBool,
    /// The listener's connection is listening now.
    listening: AtomicBool,
    /// When the last heartbeat that came back was sent (unix ms).
    last_heard_ms: AtomicU64,
    /// Since when the listener's connection listens without a break (`None` while it does
    /// not): the heartbeats of `members` are complete only for the time after it.
    up_since: Mutex<Option<Instant>>,
    pub(super) channel: String,
    seen: Mutex<Seen>,
    /// Keys of a prepared notice (joined) → its id, taken by the Redis copy.
    notices: Mutex<HashMap<String, String>>,
    ids: AtomicU64,
    /// Instances whose heartbeats this listener receives, and when it last received one.
    members: Mutex<HashMap<String, Instant>>,
    /// Notices of this instance's writes by id, with their acknowledgements so far.
    waits: Mutex<HashMap<String, AckWait>>,
    acked: Notify,
}

impl PgBus {
    pub(super) fn new(prefix: &str) -> Self {
        // Channel names are identifiers: at most 63 bytes.
        let plain = format!("{prefix}:invalidate");
        let channel = if plain.len() <= 63 {
            plain
        } else {
            format!(
                "gwd:invalidate:{:016x}",
                xxhash_rust::xxh3::xxh3_64(prefix.as_bytes())
            )
        };
        Self {
            attached: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            last_heard_ms: AtomicU64::new(0),
            up_since: Mutex::new(None),
            channel,
            seen: Mutex::new(Seen::default()),
            notices: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
            members: Mutex::new(HashMap::new()),
            waits: Mutex::new(HashMap::new()),
            acked: Notify::new(),
        }
    }

    pub(super) fn attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    pub(super) fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Remembers that the message `id` was applied (from Redis).
    pub(super) fn note_applied(&self, id: &str) {
        let mut seen = lock(&self.seen);
        if !seen.ids.insert(id.to_owned()) {
            return;
        }
        seen.order.push_back(id.to_owned());
        if seen.order.len() > SEEN_CAP {
            if let Some(old) = seen.order.pop_front() {
                seen.ids.remove(&old);
            }
        }
    }

    /// Whether the message `id` was applied already (its Redis copy came first).
    pub(super) fn applied_before(&self, id: &str) -> bool {
        lock(&self.seen).ids.contains(id)
    }

    /// A heartbeat of `instance` arrived.
    fn heard_member(&self, instance: &str) {
        let mut members = lock(&self.members);
        let now = Instant::now();
        if let Some(at) = members.get_mut(instance) {
            *at = now;
            return;
        }
        members.retain(|_, at| at.elapsed() < MEMBER_TTL);
        members.insert(instance.to_owned(), now);
    }

    /// Whether `members` holds every instance that may rest on a heartbeat heard less than a
    /// lease ago: the listener has listened without a break for longer than that. After a
    /// reconnection, an instance whose heartbeats went by during the break may still hold a
    /// lease this instance knows nothing of.
    pub(super) fn members_known(&self) -> bool {
        let recent = Duration::from_millis(LEASE_MS + 50);
        lock(&self.up_since).is_some_and(|since| since.elapsed() >= recent)
    }

    /// Instances (this one included) whose heartbeat arrived less than a lease ago.
    pub(super) fn recent_members(&self) -> usize {
        let recent = Duration::from_millis(LEASE_MS + 50);
        lock(&self.members)
            .values()
            .filter(|at| at.elapsed() < recent)
            .count()
    }

    /// This listener received the notice `id` of one of our writes: every instance whose lease
    /// may rest on a heartbeat committed before it was heard from less than a lease ago (the
    /// heartbeats came in commit order, before the notice), and must acknowledge.
    ///
    /// While the members are not known (see `members_known`) nobody is fixed as expected:
    /// the write waits out the lease.
    fn own_notice_arrived(&self, me: &str, id: &str) {
        if !self.members_known() {
            return;
        }
        let mut waits = lock(&self.waits);
        let Some(wait) = waits.get_mut(id) else {
            return;
        };
        let recent = Duration::from_millis(LEASE_MS + 50);
        let expected = lock(&self.members)
            .iter()
            .filter(|(who, at)| who.as_str() != me && at.elapsed() < recent)
            .map(|(who, _)| who.clone())
            .collect();
        wait.expected = Some(expected);
        drop(waits);
        self.acked.notify_waiters();
    }

    fn acknowledged(&self, by: &str, id: &str) {
        if let Some(wait) = lock(&self.waits).get_mut(id) {
            wait.acked.insert(by.to_owned());
            self.acked.notify_waiters();
        }
    }

    /// Whether every instance that had to acknowledge `id` did.
    fn all_acked(&self, id: &str) -> bool {
        lock(&self.waits).get(id).is_some_and(|w| {
            w.expected
                .as_ref()
                .is_some_and(|expected| expected.is_subset(&w.acked))
        })
    }

    /// Waits until every instance that had to acknowledge the notice `id` did, or `deadline`;
    /// true when they all did.
    pub(super) async fn wait_for_acks(&self, id: &str, deadline: tokio::time::Instant) -> bool {
        let done = loop {
            let woken = self.acked.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.all_acked(id) {
                break true;
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => break self.all_acked(id),
            }
        };
        lock(&self.waits).remove(id);
        done
    }

    /// The write does not wait for the acknowledgements of `id` (Redis carried it).
    pub(super) fn forget_wait(&self, id: &str) {
        lock(&self.waits).remove(id);
    }

    /// The id prepared for these keys' notice, if the write sent one.
    pub(super) fn take_notice_id(&self, keys: &[String]) -> Option<String> {
        lock(&self.notices).remove(&keys.join("\n"))
    }
}

impl Inner {
    /// The Postgres listener heard its own heartbeat sent less than a lease ago.
    pub(super) fn pg_lease_valid(&self, now: u64) -> bool {
        self.pg.listening() && now <= self.pg.last_heard_ms.load(Ordering::Acquire) + LEASE_MS
    }
}

impl Cache {
    /// This instance listens on the Postgres bus from now on; call once the listener task is
    /// started (see `repository::postgres::listener`).
    pub fn attach_pg_bus(&self) {
        self.0.pg.attached.store(true, Ordering::Release);
    }

    /// Whether this instance listens on the Postgres bus (its listener was started).
    pub fn pg_bus_attached(&self) -> bool {
        self.0.pg.attached()
    }

    /// The channel both `LISTEN` and the writes' `pg_notify` use.
    pub fn pg_channel(&self) -> &str {
        &self.0.pg.channel
    }

    /// The payload a write sends with `pg_notify` in its transaction (`None` for no keys). The
    /// same id goes with the Redis copy sent after the commit ([`Cache::invalidate`] with the
    /// same keys), so each instance applies it once. Sent also by a process that does not
    /// listen (the CLI): its write then waits out the lease instead of acknowledgements.
    pub fn bus_notice(&self, keys: &[CacheKey]) -> Option<String> {
        let i = &self.0;
        if keys.is_empty() {
            return None;
        }
        let raw: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let id = format!(
            "{}:n{}",
            i.s.instance_id,
            i.pg.ids.fetch_add(1, Ordering::Relaxed)
        );
        let mut msg = BusMessage::drop_keys(&i.s.instance_id, &raw, None, Some(id.clone()));
        msg.r = Some(i.region.name.clone());
        let mut payload = serde_json::to_string(&msg).unwrap_or_default();
        if payload.len() > MAX_PAYLOAD {
            let mut all = BusMessage::clear_all(&i.s.instance_id);
            all.id = Some(id.clone());
            all.r = Some(i.region.name.clone());
            payload = serde_json::to_string(&all).unwrap_or_default();
        }
        {
            // Registered before the write commits: its notice may come back before the write
            // gets to invalidate. Writes that failed leave theirs: emptied past the cap.
            let mut waits = lock(&i.pg.waits);
            if waits.len() >= NOTICES_CAP {
                waits.clear();
            }
            waits.insert(id.clone(), AckWait::default());
        }
        let mut notices = lock(&i.pg.notices);
        if notices.len() >= NOTICES_CAP {
            notices.clear();
        }
        notices.insert(raw.join("\n"), id);
        Some(payload)
    }

    /// A heartbeat to send now on the listener's connection; its return renews the lease.
    pub fn pg_heartbeat(&self) -> String {
        self.pg_heartbeat_numbered().1
    }

    /// [`Cache::pg_heartbeat`] and its generation: report the primary's position its
    /// statement read with [`Cache::pg_heartbeat_answered`].
    pub fn pg_heartbeat_numbered(&self) -> (u64, String) {
        let i = &self.0;
        let gen = i.region.next_heartbeat();
        let msg = BusMessage {
            i: i.s.instance_id.clone(),
            hb: Some(now_ms()),
            r: Some(i.region.name.clone()),
            n: Some(gen),
            ..BusMessage::default()
        };
        (gen, serde_json::to_string(&msg).unwrap_or_default())
    }

    /// The statement that sent heartbeat `gen` read the primary's WAL position `position`
    /// (after every notification that had arrived when it was sent): resolves the positions
    /// invalidations here were waiting for, and tombstones other regions' writes in this
    /// region's Redis at that position (see `region`).
    pub fn pg_heartbeat_answered(&self, gen: u64, position: u64) {
        let i = &self.0;
        i.replication.primary_at(position);
        if let Some(tombstones) = i.region.heartbeat_answered(gen, position) {
            i.tombstone_foreign(tombstones);
        }
        let replayed = if i.replication.configured() {
            i.replication.replayed()
        } else {
            None
        };
        i.region.prune(replayed);
    }

    /// A write committed; the primary's position after it (its consistency token).
    pub fn note_committed(&self, position: u64) {
        self.0.region.note_primary(position);
        self.0.replication.primary_at(position);
    }

    /// A notification arrived on the channel: applies it (once) and answers the
    /// acknowledgement to send back; or renews the lease when it is this instance's own
    /// heartbeat (everything committed before it came first); or counts an acknowledgement.
    pub fn on_pg_message(&self, payload: &str) -> Option<String> {
        let i = &self.0;
        let Ok(msg) = serde_json::from_str::<BusMessage>(payload) else {
            log::warn!("cache: ignoring a malformed invalidation notification");
            return None;
        };
        let me = i.s.instance_id.as_str();
        if let Some(sent) = msg.hb {
            i.region.heard_region(msg.r.as_deref());
            // Writes wait for the acknowledgements of their own region only: another region
            // reads its replica, which no acknowledgement can hurry (see `region`).
            if !i.region.is_foreign(msg.r.as_deref()) {
                i.pg.heard_member(&msg.i);
            }
            if msg.i == me {
                i.pg.last_heard_ms.fetch_max(sent, Ordering::AcqRel);
                if let Some(gen) = msg.n {
                    i.region.heartbeat_arrived(gen);
                }
            }
            return None;
        }
        if let Some(id) = &msg.ack {
            i.pg.acknowledged(&msg.i, id);
            return None;
        }
        if msg.i == me {
            if let Some(id) = &msg.id {
                i.pg.own_notice_arrived(me, id);
            }
            return None;
        }
        i.apply_message(&msg, false);
        if i.region.is_foreign(msg.r.as_deref()) {
            return None;
        }
        let id = msg.id?;
        let ack = BusMessage {
            i: me.to_owned(),
            ack: Some(id),
            ..BusMessage::default()
        };
        serde_json::to_string(&ack).ok()
    }

    /// The listener listens (again). Notifications sent while it did not are lost: after a
    /// reconnection L1 is cleared, unless Redis kept it current meanwhile.
    ///
    /// Other regions' writes come through Postgres only: with other regions around, a
    /// reconnection also clears L1 under the Redis lease, and stops trusting what Redis
    /// held before. Replica loads fill nothing until the replica passes the first heartbeat.
    pub fn pg_listener_up(&self, reconnected: bool) {
        let i = &self.0;
        i.region.floor_pending();
        if reconnected && i.region.multi_region() {
            i.withdraw_trust("postgres invalidation listener reconnected");
            i.clear_l1("postgres invalidation listener reconnected");
        } else if reconnected && !i.redis_lease_valid(now_ms()) {
            i.clear_l1("postgres invalidation listener reconnected");
        }
        *lock(&i.pg.up_since) = Some(Instant::now());
        i.pg.listening.store(true, Ordering::Release);
    }

    /// The listener lost its connection: its lease ends now.
    pub fn pg_listener_down(&self) {
        let i = &self.0;
        i.pg.listening.store(false, Ordering::Release);
        *lock(&i.pg.up_since) = None;
        if i.l2.is_some() && !i.redis_lease_valid(now_ms()) {
            i.clear_l1("postgres invalidation listener lost");
        }
    }

    /// Whether the Postgres listener listens and its heartbeat came back within the lease.
    pub fn pg_bus_delivering(&self) -> bool {
        self.0.pg_lease_valid(now_ms())
    }

    /// Flips to `true` at shutdown, for tasks that live beside the cache.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown_tx.subscribe()
    }

    /// A task that lives beside the cache, awaited (then aborted) at shutdown.
    pub fn adopt_task(&self, task: JoinHandle<()>) {
        lock(&self.0.tasks).push(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheSettings;

    fn cache(id: &str) -> Cache {
        let s = CacheSettings {
            instance_id: id.to_owned(),
            ..CacheSettings::default()
        };
        let c = Cache::new(s, &prometheus::Registry::new()).unwrap();
        c.attach_pg_bus();
        c.pg_listener_up(false);
        // Listening for longer than a lease: the members heard are all there are.
        *lock(&c.0.pg.up_since) = Instant::now().checked_sub(Duration::from_secs(1));
        c
    }

    fn msg(payload: &str) -> BusMessage {
        serde_json::from_str(payload).unwrap()
    }

    #[test]
    fn the_own_heartbeat_renews_the_lease_and_others_do_not() {
        let me = cache("me");
        assert!(!me.pg_bus_delivering(), "no heartbeat yet");
        let other = cache("other");
        assert_eq!(me.on_pg_message(&other.pg_heartbeat()), None);
        assert!(!me.pg_bus_delivering());
        assert_eq!(me.on_pg_message(&me.pg_heartbeat()), None);
        assert!(me.pg_bus_delivering());
        me.pg_listener_down();
        assert!(!me.pg_bus_delivering());
    }

    #[test]
    fn a_notice_carries_its_keys_and_id_and_the_redis_copy_shares_the_id() {
        let writer = cache("w");
        let keys = [
            writer.keys().workflow("loc", "a"),
            writer.keys().workflows("loc"),
        ];
        let notice = msg(&writer.bus_notice(&keys).unwrap());
        assert_eq!(notice.i, "w");
        assert_eq!(notice.k, vec![keys[0].as_str(), keys[1].as_str()]);
        let raw: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(writer.0.pg.take_notice_id(&raw), notice.id);
        assert_eq!(writer.0.pg.take_notice_id(&raw), None, "taken once");
    }

    #[test]
    fn an_oversized_notice_clears_everything_instead() {
        let writer = cache("w");
        let keys: Vec<CacheKey> = (0..500)
            .map(|n| writer.keys().workflow("loc", &format!("wf-{n:04}")))
            .collect();
        let payload = writer.bus_notice(&keys).unwrap();
        assert!(payload.len() < MAX_PAYLOAD);
        let notice = msg(&payload);
        assert!(notice.all && notice.k.is_empty());
    }

    #[test]
    fn a_postgres_copy_is_skipped_after_its_redis_copy_but_still_acknowledged() {
        let (writer, reader) = (cache("w"), cache("r"));
        let keys = [writer.keys().workflow("loc", "a")];
        let payload = writer.bus_notice(&keys).unwrap();
        let id = msg(&payload).id.unwrap();
        // The Redis copy first: applied, and remembered.
        let before = reader.0.guard.seq();
        reader.0.apply_message(&msg(&payload), true);
        assert_eq!(reader.0.guard.seq(), before + 1);
        // The Postgres copy: not applied again, but acknowledged.
        let ack = reader.on_pg_message(&payload).map(|a| msg(&a));
        assert_eq!(reader.0.guard.seq(), before + 1);
        assert_eq!(ack.and_then(|a| a.ack), Some(id));
        // A Redis copy after the Postgres one is applied again (it follows the tombstone).
        let other = writer.bus_notice(&keys).unwrap();
        reader.on_pg_message(&other);
        let seq = reader.0.guard.seq();
        reader.0.apply_message(&msg(&other), true);
        assert_eq!(reader.0.guard.seq(), seq + 1);
    }

    #[tokio::test]
    async fn a_write_waits_for_the_instances_heard_lately_to_acknowledge() {
        let (writer, reader) = (cache("w"), cache("r"));
        // Both heartbeats reached the writer's listener: both are members.
        writer.on_pg_message(&reader.pg_heartbeat());
        writer.on_pg_message(&writer.pg_heartbeat());
        assert_eq!(writer.0.pg.recent_members(), 2);
        let keys = [writer.keys().workflow("loc", "a")];
        let payload = writer.bus_notice(&keys).unwrap();
        let id = msg(&payload).id.unwrap();
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        // Not before the writer's own listener got the notice back, whatever the acks.
        let ack = reader.on_pg_message(&payload).unwrap();
        writer.on_pg_message(&ack);
        let early = tokio::time::timeout(
            Duration::from_millis(50),
            writer.0.pg.wait_for_acks(&id, far),
        )
        .await;
        assert!(early.is_err(), "answered before its notice came back");
        // Another write, whose notice comes back first.
        let payload = writer.bus_notice(&keys).unwrap();
        let id = msg(&payload).id.unwrap();
        writer.on_pg_message(&payload);
        let waiting = {
            let w = writer.clone();
            let id = id.clone();
            tokio::spawn(async move { w.0.pg.wait_for_acks(&id, far).await })
        };
        tokio::task::yield_now().await;
        let ack = reader.on_pg_message(&payload).unwrap();
        writer.on_pg_message(&ack);
        assert!(waiting.await.unwrap(), "every member acknowledged");
        // Nobody acknowledges: the lease is waited out.
        let payload = writer.bus_notice(&keys).unwrap();
        let id = msg(&payload).id.unwrap();
        writer.on_pg_message(&payload);
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(!writer.0.pg.wait_for_acks(&id, soon).await);
    }

    #[tokio::test]
    async fn a_writer_whose_listener_just_reconnected_waits_out_the_lease() {
        let (writer, reader) = (cache("w"), cache("r"));
        writer.on_pg_message(&reader.pg_heartbeat());
        // The writer's listener was away: the reader's later heartbeats went by unheard, so
        // the reader may hold a lease the writer's member list says nothing of.
        writer.pg_listener_down();
        writer.pg_listener_up(true);
        assert!(!writer.0.pg.members_known());
        let keys = [writer.keys().workflow("loc", "a")];
        let payload = writer.bus_notice(&keys).unwrap();
        let id = msg(&payload).id.unwrap();
        writer.on_pg_message(&payload);
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(
            !writer.0.pg.wait_for_acks(&id, soon).await,
            "decided on an incomplete member list"
        );
        // Once it has listened for a whole lease, the members it heard are all there are.
        *lock(&writer.0.pg.up_since) = Instant::now().checked_sub(Duration::from_secs(1));
        let payload = writer.bus_notice(&keys).unwrap();
        let id = msg(&payload).id.unwrap();
        writer.on_pg_message(&payload);
        let ack = reader.on_pg_message(&payload).unwrap();
        writer.on_pg_message(&ack);
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        assert!(writer.0.pg.wait_for_acks(&id, far).await);
    }
}

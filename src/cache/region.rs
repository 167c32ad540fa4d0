//! Several regions (issue 21): one primary takes every write; a region may read a streaming
//! replica, and keeps its own Redis. Positions are the primary's WAL positions (LSNs, as u64).
//!
//! What this file keeps, per instance:
//! - **Required positions.** An invalidation of a key that this instance applied names the
//!   position its write committed at, or a bound above it: the writer's consistency token
//!   when the message carries one, else the position the primary answered to the next
//!   heartbeat sent after the message arrived (read after the commit, so at least its
//!   position). Until that bound is known the key's requirement is *pending*. A load from the
//!   replica that read at a position below a key's requirement (or while it is pending) is
//!   served but fills neither tier: the region never caches a row older than an invalidation
//!   it applied. Loads from the primary read after the invalidation was applied, and need no
//!   position (the stale-set guard covers them).
//! - **Foreign writes.** A write made in another region reaches this one only through the
//!   primary's notifications, and nobody here tombstoned this region's Redis for it: until
//!   this instance has written the tombstone itself (once the key's position is known), Redis
//!   values of the key are not read here (`gated`).
//! - **The floor.** Notifications sent while the listener did not listen are lost; after it
//!   (re)connects, replica loads fill nothing until the replica has replayed the position of
//!   the first heartbeat after the connection.
//! - **Answers from the primary.** When a load of a key reads the primary (the replica too
//!   far behind, a token read that gave up waiting), the repository reads the primary's
//!   position after it; later loads of that key are kept off the replica until it has
//!   replayed that far. So a copy the instance answered from the primary and then lost
//!   (evicted, expired, invalidated) is not followed by the replica's older row.
//! - **The applied watermark.** When this instance's heartbeat comes back, every write that
//!   committed before the heartbeat read the primary's position has been applied here
//!   (notifications arrive in commit order). A read carrying a token at or below it may be
//!   answered from L1.
//!
//! The task-locals carry positions between layers without threading them through every
//! signature: the request's token down to the repository ([`required`]), the position a
//! load read at back up to the cache ([`note_read_at`]), and a write's commit position up to
//! the HTTP layer ([`note_write`]).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::lock;

tokio::task_local! {
    /// The position a request's reads must reflect (its `X-Consistency-Token`).
    static REQUIRED: u64;
    /// Where the current load read (reported by the repository).
    static READ_AT: Cell<Option<ReadAt>>;
    /// The highest commit position of the writes done in the current request.
    static WROTE_AT: Cell<Option<u64>>;
    /// The current load's key: how far the replica must have replayed to answer it, and the
    /// primary's position after this load's read of the primary, if it read there.
    static PRIMARY_SERVED: (Option<u64>, Cell<Option<u64>>);
}

/// Where a load read, and a position its answer reflects at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// The primary, which had committed at least up to this position before the read.
    Primary(u64),
    /// The replica, which had replayed this position before the read began.
    Replica(u64),
}

impl ReadAt {
    /// The position the answer reflects at least.
    pub fn position(self) -> u64 {
        match self {
            ReadAt::Primary(at) | ReadAt::Replica(at) => at,
        }
    }
}

/// The position the current request's reads must reflect, if it carried a token.
pub fn required() -> Option<u64> {
    REQUIRED.try_with(|at| *at).ok()
}

/// Runs `work` as a request whose reads must reflect `position`.
pub async fn with_required<F: Future>(position: u64, work: F) -> F::Output {
    REQUIRED.scope(position, work).await
}

/// The repository says that the current load read the replica, which had replayed
/// `position` before the read began (nothing outside a load). A load that says nothing read
/// the primary.
pub fn note_replica_read(position: u64) {
    let _ = READ_AT.try_with(|cell| cell.set(Some(ReadAt::Replica(position))));
}

/// How far the replica must have replayed before it answers the current load (its key was
/// answered from the primary at that position).
pub fn replica_floor() -> Option<u64> {
    PRIMARY_SERVED.try_with(|(floor, _)| *floor).ok().flatten()
}

/// Whether the current load wants the primary's position after a read of the primary (a
/// load of a key, in a region that reads a replica).
pub fn wants_primary_position() -> bool {
    PRIMARY_SERVED.try_with(|_| ()).is_ok()
}

/// The current load read the primary, which was at `position` after that read.
pub fn note_primary_read(position: u64) {
    let _ = PRIMARY_SERVED.try_with(|(_, after)| after.set(Some(position)));
}

/// [`reporting_read_at`] for a load of `key`. In a region that reads a replica, the load
/// stays off the replica until it has replayed what the key was last answered from the
/// primary at, and a read of the primary raises that.
pub(super) async fn reporting_key_read<F: Future>(
    region: &Region,
    key: &str,
    primary_known: u64,
    load: F,
) -> (F::Output, ReadAt) {
    if !region.replica {
        return reporting_read_at(primary_known, load).await;
    }
    let floor = region.served_floor(key);
    let (out, at, after) = PRIMARY_SERVED
        .scope((floor, Cell::new(None)), async move {
            let (out, at) = reporting_read_at(primary_known, load).await;
            (out, at, PRIMARY_SERVED.with(|(_, after)| after.get()))
        })
        .await;
    if let Some(after) = after {
        region.served_from_primary(key, after);
    }
    (out, at)
}

/// Runs a load begun when the primary was known to be at `primary_known`, answering where
/// it read.
pub(super) async fn reporting_read_at<F: Future>(
    primary_known: u64,
    load: F,
) -> (F::Output, ReadAt) {
    READ_AT
        .scope(Cell::new(None), async move {
            let out = load.await;
            let at = READ_AT
                .with(Cell::get)
                .unwrap_or(ReadAt::Primary(primary_known));
            (out, at)
        })
        .await
}

/// A write committed; `position` is the primary's WAL position after the commit.
pub fn note_write(position: u64) {
    let _ = WROTE_AT.try_with(|cell| {
        cell.set(Some(cell.get().map_or(position, |p| p.max(position))));
    });
}

/// The commit position of the current request's writes so far (`None` outside a
/// [`recording_writes`] scope or before a write).
pub fn written() -> Option<u64> {
    WROTE_AT.try_with(Cell::get).ok().flatten()
}

/// Whether the current task records its writes' positions (a request does).
pub fn recording() -> bool {
    WROTE_AT.try_with(|_| ()).is_ok()
}

/// Runs `work` (a request) recording the commit positions of its writes: `work` reads them
/// with [`written`] before it ends.
pub async fn recording_writes<F: Future>(work: F) -> F::Output {
    WROTE_AT.scope(Cell::new(None), work).await
}

/// What a key needs of a replica load before it may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The bound arrives with the answer to heartbeat `gen` (or a later one).
    Pending(u64),
    At(u64),
}

impl Need {
    /// Both requirements at once: a pending one stays pending (until the later heartbeat).
    fn merge(self, other: Need) -> Need {
        match (self, other) {
            (Need::Pending(a), Need::Pending(b)) => Need::Pending(a.max(b)),
            (Need::Pending(g), _) | (_, Need::Pending(g)) => Need::Pending(g),
            (Need::At(a), Need::At(b)) => Need::At(a.max(b)),
        }
    }

    fn allows(self, read_at: u64) -> bool {
        matches!(self, Need::At(at) if read_at >= at)
    }
}

#[derive(Debug, Clone, Copy)]
struct Required {
    need: Need,
    /// A foreign write, not yet tombstoned in this region's Redis by this instance: the
    /// heartbeat generation it was marked in (a later mark is cleared only by a later
    /// tombstone).
    gate: Option<u64>,
}

/// Past this many remembered keys, the map is dropped for a floor (every replica load waits
/// for the replica to pass the newest position) and the gated keys go to the pending set.
const REQUIRED_CAP: usize = 50_000;

#[derive(Default)]
struct State {
    keys: HashMap<String, Required>,
    /// Replica loads fill nothing below this (`Pending`: until a heartbeat answers).
    floor: Option<Need>,
    /// Heartbeat generation → the primary's position its statement read.
    heartbeats: BTreeMap<u64, u64>,
    /// The newest own heartbeat generation that came back on the listener.
    arrived: Option<u64>,
    /// Keys answered from the primary → the primary's position after that read.
    served: HashMap<String, u64>,
    /// The same for every key (past `REQUIRED_CAP` keys in `served`).
    served_all: u64,
}

/// A region's view of the primary's positions (see the module doc).
pub(super) struct Region {
    pub(super) name: String,
    /// This instance reads a replica: invalidations record the positions loads must reach.
    replica: bool,
    /// The newest position known to be committed on the primary.
    primary_known: AtomicU64,
    /// Every write committed below this has been applied here.
    applied: AtomicU64,
    /// The heartbeat generation being prepared (marks made now resolve with its answer).
    gen: AtomicU64,
    /// `state.keys.len()` and whether a floor is set, readable without the lock.
    remembered: AtomicUsize,
    floored: AtomicBool,
    /// `state.served` or `state.served_all` holds a position, readable without the lock.
    serving: AtomicBool,
    /// A heartbeat of an instance in another region was heard: Redis alone no longer keeps
    /// this instance current (other regions' writes come through Postgres only).
    foreign_seen: AtomicBool,
    state: Mutex<State>,
}

/// What resolving a heartbeat's position asks of the cache: write these foreign keys'
/// tombstones at this position into the region's Redis.
pub(super) struct Tombstones {
    pub keys: Vec<String>,
    pub position: u64,
    pub gen: u64,
}

impl Region {
    pub(super) fn new(name: &str, replica: bool) -> Self {
        let state = State {
            // Nothing was heard yet: a replica row may predate a write whose notice nobody
            // here received.
            floor: replica.then_some(Need::Pending(0)),
            ..State::default()
        };
        Self {
            name: name.to_owned(),
            replica,
            primary_known: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            gen: AtomicU64::new(0),
            remembered: AtomicUsize::new(0),
            floored: AtomicBool::new(replica),
            serving: AtomicBool::new(false),
            foreign_seen: AtomicBool::new(false),
            state: Mutex::new(state),
        }
    }

    pub(super) fn is_foreign(&self, region: Option<&str>) -> bool {
        region.is_some_and(|r| r != self.name)
    }

    pub(super) fn heard_region(&self, region: Option<&str>) {
        if self.is_foreign(region) {
            self.foreign_seen.store(true, Ordering::Release);
        }
    }

    /// Whether instances of other regions share the primary (heard at least once).
    pub(super) fn multi_region(&self) -> bool {
        self.foreign_seen.load(Ordering::Acquire)
    }

    pub(super) fn primary_known(&self) -> u64 {
        self.primary_known.load(Ordering::Acquire)
    }

    pub(super) fn note_primary(&self, position: u64) {
        self.primary_known.fetch_max(position, Ordering::AcqRel);
    }

    pub(super) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Keys were invalidated here: by a message naming its write's position (`at`), or not
    /// (pending until the next heartbeat answers); `foreign`: written in another region.
    pub(super) fn mark<'k>(
        &self,
        keys: impl Iterator<Item = &'k str>,
        at: Option<u64>,
        foreign: bool,
    ) {
        if !self.replica && !foreign {
            return;
        }
        let gen = self.gen.load(Ordering::Acquire);
        let need = match at {
            Some(at) => Need::At(at),
            None => Need::Pending(gen),
        };
        let mut st = lock(&self.state);
        for k in keys {
            let entry = st
                .keys
                .entry(k.to_owned())
                .or_insert(Required { need, gate: None });
            entry.need = entry.need.merge(need);
            if foreign {
                entry.gate = Some(gen);
            }
        }
        if st.keys.len() > REQUIRED_CAP {
            // Too much to remember: every replica load waits for the newest position known.
            st.keys.clear();
            let floor = st
                .floor
                .map_or(Need::Pending(gen), |f| f.merge(Need::Pending(gen)));
            st.floor = Some(floor);
            self.floored.store(true, Ordering::Release);
        }
        self.remembered.store(st.keys.len(), Ordering::Release);
    }

    /// A load of `key` read the primary, which was at `position` after the read: the replica
    /// answers the key again once it has replayed that far.
    pub(super) fn served_from_primary(&self, key: &str, position: u64) {
        if !self.replica {
            return;
        }
        let mut st = lock(&self.state);
        let at = st.served.entry(key.to_owned()).or_insert(0);
        *at = (*at).max(position);
        if st.served.len() > REQUIRED_CAP {
            // Too many to remember one by one: the newest position holds for every key.
            let newest = st.served.values().copied().max().unwrap_or(0);
            st.served.clear();
            st.served_all = st.served_all.max(newest);
        }
        self.serving.store(true, Ordering::Release);
    }

    /// How far the replica must have replayed before it answers a load of `key`.
    pub(super) fn served_floor(&self, key: &str) -> Option<u64> {
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        let st = lock(&self.state);
        let at = st.served.get(key).copied().unwrap_or(0).max(st.served_all);
        (at > 0).then_some(at)
    }

    /// Every key of the region is invalidated (a cleared L1 whose cause may have lost
    /// notices): replica loads fill nothing until the next heartbeat's position is replayed.
    pub(super) fn floor_pending(&self) {
        if !self.replica {
            return;
        }
        let gen = self.gen.load(Ordering::Acquire);
        let mut st = lock(&self.state);
        st.floor = Some(
            st.floor
                .map_or(Need::Pending(gen), |f| f.merge(Need::Pending(gen))),
        );
        self.floored.store(true, Ordering::Release);
    }

    /// The generation of the heartbeat about to be sent: marks made before this call resolve
    /// with its answer.
    pub(super) fn next_heartbeat(&self) -> u64 {
        self.gen.fetch_add(1, Ordering::AcqRel)
    }

    /// Heartbeat `gen`'s statement read `position` on the primary. Resolves what was pending
    /// on it, and answers the foreign keys to tombstone at that position.
    pub(super) fn heartbeat_answered(&self, gen: u64, position: u64) -> Option<Tombstones> {
        self.note_primary(position);
        let mut st = lock(&self.state);
        st.heartbeats.insert(gen, position);
        while st.heartbeats.len() > 64 {
            st.heartbeats.pop_first();
        }
        self.advance_applied(&mut st);
        if let Some(Need::Pending(g)) = st.floor {
            if g <= gen {
                st.floor = Some(Need::At(position));
            }
        }
        let mut keys = Vec::new();
        for (k, r) in st.keys.iter_mut() {
            if let Need::Pending(g) = r.need {
                if g <= gen {
                    r.need = Need::At(position);
                }
            }
            if r.gate.is_some_and(|g| g <= gen) && matches!(r.need, Need::At(_)) {
                keys.push(k.clone());
            }
        }
        (!keys.is_empty()).then_some(Tombstones {
            keys,
            position,
            gen,
        })
    }

    /// This instance's heartbeat `gen` came back on the listener.
    pub(super) fn heartbeat_arrived(&self, gen: u64) {
        let mut st = lock(&self.state);
        st.arrived = Some(st.arrived.map_or(gen, |a| a.max(gen)));
        self.advance_applied(&mut st);
    }

    fn advance_applied(&self, st: &mut State) {
        let Some(arrived) = st.arrived else { return };
        let done: Vec<u64> = st.heartbeats.range(..=arrived).map(|(g, _)| *g).collect();
        for g in done {
            if let Some(position) = st.heartbeats.remove(&g) {
                self.applied.fetch_max(position, Ordering::AcqRel);
            }
        }
    }

    /// The tombstones of `keys` (marked up to generation `gen`) are in the region's Redis.
    pub(super) fn tombstoned(&self, keys: &[String], gen: u64) {
        let mut st = lock(&self.state);
        for k in keys {
            if let Some(r) = st.keys.get_mut(k) {
                if r.gate.is_some_and(|g| g <= gen) {
                    r.gate = None;
                }
            }
        }
    }

    /// Replayed invalidations reached Redis: their keys are no longer gated.
    pub(super) fn ungate(&self, keys: &[String]) {
        self.tombstoned(keys, u64::MAX);
    }

    /// Forgets what the replica has passed (`replayed`), and, without a replica, what is
    /// resolved: only gated keys and requirements above the replica's position matter.
    pub(super) fn prune(&self, replayed: Option<u64>) {
        if self.remembered.load(Ordering::Acquire) == 0
            && !self.floored.load(Ordering::Acquire)
            && !self.serving.load(Ordering::Acquire)
        {
            return;
        }
        let mut st = lock(&self.state);
        if let Some(replayed) = replayed {
            st.served.retain(|_, at| *at > replayed);
            if st.served_all <= replayed {
                st.served_all = 0;
            }
        }
        self.serving.store(
            !st.served.is_empty() || st.served_all > 0,
            Ordering::Release,
        );
        st.keys.retain(|_, r| {
            r.gate.is_some()
                || match (r.need, replayed) {
                    (Need::Pending(_), _) => true,
                    (Need::At(at), Some(replayed)) => at > replayed,
                    (Need::At(_), None) => self.replica,
                }
        });
        if let (Some(Need::At(at)), Some(replayed)) = (st.floor, replayed) {
            if replayed >= at {
                st.floor = None;
            }
        }
        self.floored.store(st.floor.is_some(), Ordering::Release);
        self.remembered.store(st.keys.len(), Ordering::Release);
    }

    /// Whether a value of `key` loaded at `at` may be cached.
    pub(super) fn fill_allowed(&self, key: &str, at: Option<ReadAt>) -> bool {
        let Some(ReadAt::Replica(read)) = at else {
            return true;
        };
        if self.remembered.load(Ordering::Acquire) == 0 && !self.floored.load(Ordering::Acquire) {
            return true;
        }
        let st = lock(&self.state);
        if st.floor.is_some_and(|f| !f.allows(read)) {
            return false;
        }
        st.keys.get(key).is_none_or(|r| r.need.allows(read))
    }

    /// Whether Redis values of `key` must not be read here (a foreign write not yet
    /// tombstoned by this instance).
    pub(super) fn gated(&self, key: &str) -> bool {
        if self.remembered.load(Ordering::Acquire) == 0 {
            return false;
        }
        lock(&self.state)
            .keys
            .get(key)
            .is_some_and(|r| r.gate.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(k: &'a [&'static str]) -> impl Iterator<Item = &'static str> + 'a {
        k.iter().copied()
    }

    #[test]
    fn a_replica_load_below_an_applied_invalidation_is_not_cached() {
        let r = Region::new("b", true);
        // Before any heartbeat answered, nothing from the replica is cached.
        assert!(!r.fill_allowed("k", Some(ReadAt::Replica(100))));
        assert!(r.fill_allowed("k", Some(ReadAt::Primary(0))));
        let gen = r.next_heartbeat();
        r.heartbeat_answered(gen, 50);
        assert!(r.fill_allowed("k", Some(ReadAt::Replica(50))));
        assert!(!r.fill_allowed("k", Some(ReadAt::Replica(49))));
        // A message with its write's token.
        r.mark(keys(&["k"]), Some(200), false);
        assert!(!r.fill_allowed("k", Some(ReadAt::Replica(199))));
        assert!(r.fill_allowed("k", Some(ReadAt::Replica(200))));
        assert!(r.fill_allowed("other", Some(ReadAt::Replica(60))));
        // A notice without one: pending until the next heartbeat answers.
        r.mark(keys(&["k"]), None, false);
        assert!(!r.fill_allowed("k", Some(ReadAt::Replica(10_000))));
        let gen = r.next_heartbeat();
        assert!(r.heartbeat_answered(gen, 300).is_none(), "nothing foreign");
        assert!(!r.fill_allowed("k", Some(ReadAt::Replica(299))));
        assert!(r.fill_allowed("k", Some(ReadAt::Replica(300))));
        // Once the replica passed it, it is forgotten.
        r.prune(Some(300));
        assert_eq!(r.remembered.load(Ordering::Acquire), 0);
    }

    #[test]
    fn foreign_writes_gate_redis_until_tombstoned_at_the_heartbeat_position() {
        let r = Region::new("b", false);
        assert!(r.is_foreign(Some("a")) && !r.is_foreign(Some("b")) && !r.is_foreign(None));
        r.mark(keys(&["own"]), None, false);
        assert_eq!(
            r.remembered.load(Ordering::Acquire),
            0,
            "no replica: nothing to keep"
        );
        r.mark(keys(&["k1", "k2"]), None, true);
        assert!(r.gated("k1") && r.gated("k2") && !r.gated("k3"));
        let gen = r.next_heartbeat();
        // A foreign notice arriving while heartbeat `gen` is out resolves with the next one.
        r.mark(keys(&["k3"]), None, true);
        let t = r.heartbeat_answered(gen, 77).unwrap();
        let mut named = t.keys.clone();
        named.sort();
        assert_eq!(
            (named, t.position),
            (vec!["k1".to_owned(), "k2".into()], 77)
        );
        r.tombstoned(&t.keys, t.gen);
        assert!(!r.gated("k1") && r.gated("k3"));
        r.prune(None);
        assert_eq!(r.remembered.load(Ordering::Acquire), 1, "k3 stays gated");
    }

    #[test]
    fn the_applied_watermark_needs_the_heartbeat_back_and_its_position() {
        let r = Region::new("a", false);
        let g1 = r.next_heartbeat();
        r.heartbeat_answered(g1, 10);
        assert_eq!(r.applied(), 0, "not back yet");
        r.heartbeat_arrived(g1);
        assert_eq!(r.applied(), 10);
        let g2 = r.next_heartbeat();
        r.heartbeat_arrived(g2);
        assert_eq!(r.applied(), 10, "its position is not known yet");
        r.heartbeat_answered(g2, 20);
        assert_eq!(r.applied(), 20);
        assert_eq!(r.primary_known(), 20);
    }

    #[tokio::test]
    async fn a_key_answered_from_the_primary_stays_off_the_replica_until_it_replayed_that_far() {
        let r = Region::new("b", true);
        assert_eq!(r.served_floor("k"), None);
        // Read the primary: the repository reports its position after the read.
        let (_, at) = reporting_key_read(&r, "k", 3, async {
            assert!(wants_primary_position());
            assert_eq!(replica_floor(), None);
            note_primary_read(40);
        })
        .await;
        assert_eq!(at, ReadAt::Primary(3));
        assert_eq!(r.served_floor("k"), Some(40));
        assert_eq!(r.served_floor("other"), None);
        let floor = reporting_key_read(&r, "k", 3, async { replica_floor() }).await;
        assert_eq!(floor.0, Some(40), "the next load of the key carries it");
        r.prune(Some(39));
        assert_eq!(r.served_floor("k"), Some(40));
        r.prune(Some(40));
        assert_eq!(r.served_floor("k"), None, "replayed: forgotten");
        // Without a replica nothing is asked or kept.
        let single = Region::new("a", false);
        let asked = reporting_key_read(&single, "k", 3, async { wants_primary_position() }).await;
        assert!(!asked.0);
        single.served_from_primary("k", 9);
        assert_eq!(single.served_floor("k"), None);
        assert!(!wants_primary_position());
    }

    #[tokio::test]
    async fn task_locals_carry_positions_within_their_scope_only() {
        assert_eq!(required(), None);
        note_write(5);
        assert_eq!(written(), None);
        let inside = with_required(42, async { required() }).await;
        assert_eq!(inside, Some(42));
        let wrote = recording_writes(async {
            note_write(7);
            note_write(3);
            written()
        })
        .await;
        assert_eq!(wrote, Some(7));
        let (_, at) = reporting_read_at(3, async { note_replica_read(9) }).await;
        assert_eq!(at, ReadAt::Replica(9));
        let (_, at) = reporting_read_at(3, async {}).await;
        assert_eq!(at, ReadAt::Primary(3));
    }
}

//! Per-instance stale-set guard: an invalidation sequence per key.
//!
//! A load (or an L2→L1 fill) takes a ticket (the current sequence) before it reads; its
//! L1 fill happens under the same lock that invalidations take, and is skipped when the
//! key was invalidated after the ticket, when the whole L1 was cleared after it (`floor`), or
//! when the load took longer than the L2 tombstone lives. Entries older than that are
//! pruned, so the map only holds keys invalidated in the last few seconds; if it still
//! grows past its bound, `floor` is raised instead (every in-flight fill is skipped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an L2 tombstone lives, and the longest load whose result may still fill.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(5);
const PRUNE_AT: usize = 1_024;
const HARD_CAP: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    seq: u64,
    at: Instant,
    /// Wall-clock start (unix ms), compared with L2 tombstones by the fill script.
    pub wall_ms: u64,
}

impl Ticket {
    /// The invalidation sequence the ticket was taken at (see [`Guard::seq`]).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn expired(&self) -> bool {
        self.at.elapsed() >= TOMBSTONE_TTL
    }
}

#[derive(Default)]
struct State {
    seq: u64,
    floor: u64,
    recent: HashMap<String, (u64, Instant)>,
}

#[derive(Default)]
pub struct Guard {
    state: Mutex<State>,
    /// `state.seq`, readable without the lock (written under it).
    seq: AtomicU64,
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken without the lock (every L1 miss takes one). Seeing an invalidation's number
    /// means that invalidation had begun before this read: a fill it must lose is refused by
    /// [`Guard::fill_if_current`] (under the lock), and the second drop that
    /// [`Cache::invalidate`](super::Cache::invalidate) makes once the tombstone is in Redis
    /// begins only after the tombstone landed, so a read ticketed after it cannot see the old
    /// value in Redis.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            seq: self.seq(),
            at: Instant::now(),
            wall_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// The number of invalidations so far, without taking the lock: a reader that sees the
    /// same number as a ticket's knows nothing was invalidated since that ticket.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Record an invalidation of `keys` and run `drop_local` (L1 removal) under the lock.
    pub fn invalidate<'k>(
        &self,
        keys: impl Iterator<Item = &'k str>,
        mut drop_local: impl FnMut(&str),
    ) {
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        self.seq.store(seq, Ordering::Release);
        let now = Instant::now();
        for k in keys {
            st.recent.insert(k.to_owned(), (seq, now));
            drop_local(k);
        }
        if st.recent.len() > PRUNE_AT {
            st.recent.retain(|_, (_, at)| at.elapsed() < TOMBSTONE_TTL);
            if st.recent.len() > HARD_CAP {
                st.floor = seq;
                st.recent.clear();
            }
        }
    }

    /// Everything is invalidated (L1 cleared): every earlier ticket loses its fill.
    pub fn invalidate_all(&self, clear_local: impl FnOnce()) {
        let mut st = self.lock();
        st.seq += 1;
        st.floor = st.seq;
        self.seq.store(st.seq, Ordering::Release);
        st.recent.clear();
        clear_local();
    }

    /// Run `fill` if no invalidation of `key` happened since `ticket`; returns whether it ran.
    pub fn fill_if_current(&self, key: &str, ticket: Ticket, fill: impl FnOnce()) -> bool {
        if ticket.expired() {
            return false;
        }
        let st = self.lock();
        if !Self::current(&st, key, ticket) {
            return false;
        }
        fill();
        true
    }

    /// Is a fill for `key` taken at `ticket` still allowed (no lock held afterwards)?
    pub fn is_current(&self, key: &str, ticket: Ticket) -> bool {
        !ticket.expired() && Self::current(&self.lock(), key, ticket)
    }

    fn current(st: &State, key: &str, ticket: Ticket) -> bool {
        st.floor <= ticket.seq && st.recent.get(key).is_none_or(|(s, _)| *s <= ticket.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_after_invalidation_is_skipped() {
        let g = Guard::default();
        let t = g.ticket();
        g.invalidate(["a"].into_iter(), |_| {});
        assert!(!g.fill_if_current("a", t, || {}));
        assert!(g.fill_if_current("b", t, || {}), "other keys unaffected");
        let t2 = g.ticket();
        assert!(
            g.fill_if_current("a", t2, || {}),
            "a load started after is fine"
        );
        g.invalidate_all(|| {});
        assert!(!g.is_current("b", t2));
        assert_eq!(g.seq(), g.ticket().seq());
        assert_ne!(g.seq(), t2.seq());
        assert!(g.is_current("b", g.ticket()));
    }
}

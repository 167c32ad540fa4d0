//! Where this region's replica stands: the position it has replayed (sampled by the
//! repository's replica watcher), how far behind the primary that is in time, and waiting
//! for it to reach a position (a read carrying a consistency token).
//!
//! The lag is measured against the primary's positions as this instance sampled them (every
//! heartbeat of the Postgres bus reads one): the replica is as old as the earliest primary
//! sample it has not replayed yet, and caught up when it has replayed the newest one. No
//! clock of another machine is involved, and an idle primary does not make the lag grow.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::lock;

/// Primary samples kept (one per heartbeat, ~100 ms apart: about 25 s).
const SAMPLES: usize = 256;
/// A replica not sampled successfully for this long is considered down.
const STALE_AFTER: Duration = Duration::from_millis(1_000);

#[derive(Default)]
struct Positions {
    /// (when it was read, the primary's position), oldest first.
    primary: VecDeque<(Instant, u64)>,
    /// The replica's replayed position and when it was read.
    replica: Option<(Instant, u64)>,
    /// The last sample failed (since when).
    down_since: Option<Instant>,
}

/// The replica's state as health and routing see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaState {
    /// It answered its last sample, less than a second ago.
    pub up: bool,
    /// How far behind the primary its replayed position is (while up; else how long since
    /// it last answered, on top of the lag it had).
    pub lag: Duration,
    pub replayed: u64,
}

/// Shared between the cache (which prunes by it), the replica watcher (which feeds it) and
/// the reads (which route by it).
pub struct Replication {
    positions: Mutex<Positions>,
    /// The replayed position, for waiters.
    replayed: watch::Sender<u64>,
    /// Asks the watcher for a sample now (a waiter wants a newer position).
    wanted: Notify,
    configured: bool,
}

impl Replication {
    pub fn new(configured: bool) -> Self {
        Self {
            positions: Mutex::new(Positions::default()),
            replayed: watch::channel(0).0,
            wanted: Notify::new(),
            configured,
        }
    }

    /// Whether this instance has a replica to read.
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The primary was at `position` (read now).
    pub fn primary_at(&self, position: u64) {
        let mut p = lock(&self.positions);
        if p.primary.back().is_some_and(|(_, last)| *last >= position) {
            // Unchanged (an idle primary): the first time it was seen there is what counts.
            return;
        }
        p.primary.push_back((Instant::now(), position));
        while p.primary.len() > SAMPLES {
            p.primary.pop_front();
        }
    }

    /// The replica answered: it has replayed up to `position`.
    pub fn replica_at(&self, position: u64) {
        {
            let mut p = lock(&self.positions);
            p.replica = Some((Instant::now(), position));
            p.down_since = None;
        }
        self.replayed.send_if_modified(|old| {
            let newer = position > *old;
            if newer {
                *old = position;
            }
            newer
        });
    }

    /// The replica did not answer its sample.
    pub fn replica_down(&self) {
        let mut p = lock(&self.positions);
        p.down_since.get_or_insert_with(Instant::now);
    }

    /// The replayed position as last sampled (a lower bound of what a read begun now sees),
    /// while the replica is up.
    pub fn replayed(&self) -> Option<u64> {
        let state = self.state()?;
        state.up.then_some(state.replayed)
    }

    /// `None` without a replica, or before its first answer.
    pub fn state(&self) -> Option<ReplicaState> {
        if !self.configured {
            return None;
        }
        let p = lock(&self.positions);
        let (at, replayed) = p.replica?;
        let behind_since = p
            .primary
            .iter()
            .find(|(_, position)| *position > replayed)
            .map(|(seen, _)| *seen);
        // Measured when the replica was sampled: it lacked what the primary had then.
        let lag = behind_since.map_or(Duration::ZERO, |since| at.saturating_duration_since(since));
        let silent = at.elapsed();
        let up = p.down_since.is_none() && silent < STALE_AFTER;
        Some(ReplicaState {
            up,
            lag: if up { lag } else { lag + silent },
            replayed,
        })
    }

    /// Waits until the replica has replayed `position`, at most `max`; whether it did.
    pub async fn wait_for(&self, position: u64, max: Duration) -> bool {
        let mut rx = self.replayed.subscribe();
        let deadline = tokio::time::Instant::now() + max;
        loop {
            if *rx.borrow_and_update() >= position && self.replayed().is_some() {
                return true;
            }
            self.wanted.notify_one();
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => {
                    return *rx.borrow() >= position && self.replayed().is_some();
                }
            }
        }
    }

    /// Resolves when a waiter wants a fresh sample (the watcher then samples at once).
    pub async fn sample_wanted(&self) {
        self.wanted.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_primary_position_not_replayed() {
        let r = Replication::new(true);
        assert_eq!(r.state(), None, "not sampled yet");
        r.primary_at(10);
        r.replica_at(10);
        let s = r.state().unwrap();
        assert!(s.up && s.lag.is_zero() && s.replayed == 10);
        r.primary_at(20);
        std::thread::sleep(Duration::from_millis(30));
        r.primary_at(20); // an idle primary adds no sample
        r.replica_at(10);
        let lag = r.state().unwrap().lag;
        assert!(lag >= Duration::from_millis(30), "{lag:?}");
        r.replica_at(20);
        assert!(r.state().unwrap().lag.is_zero());
        r.replica_down();
        let s = r.state().unwrap();
        assert!(!s.up);
        assert_eq!(r.replayed(), None);
        assert!(Replication::new(false).state().is_none());
    }

    #[tokio::test]
    async fn a_waiter_is_woken_when_the_replica_replays_its_position() {
        let r = std::sync::Arc::new(Replication::new(true));
        r.replica_at(5);
        assert!(r.wait_for(5, Duration::ZERO).await);
        assert!(!r.wait_for(6, Duration::from_millis(20)).await);
        let feeder = {
            let r = r.clone();
            tokio::spawn(async move {
                r.sample_wanted().await;
                r.replica_at(9);
            })
        };
        assert!(r.wait_for(8, Duration::from_secs(5)).await);
        feeder.await.unwrap();
    }
}

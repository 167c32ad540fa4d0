//! Reads from this region's replica (`DATABASE_READ_URL`, issue 21), and the watcher that
//! samples how far it has replayed.
//!
//! [`Reads`] picks, per read, where it goes: the replica while it answers and is at most
//! `MAX_REPLICA_LAG_MS` behind the primary; for a read that must reflect a position (a
//! consistency token, `cache::region::required`) the replica once it has replayed that
//! position, waited for up to `READ_YOUR_WRITES_WAIT_MS`; otherwise the primary. A read of the
//! replica tells the cache the position the replica had replayed before it began
//! (`cache::region::note_replica_read`), so the cache knows how new the answer is at least.
//! A replica that fails a read is marked down and the read goes to the primary.
//!
//! Monotonic reads across a switch: a cache load of a key that read the primary also reads
//! the primary's position after it (one more round trip, on that path only), and the cache
//! keeps later loads of that key off the replica until it has replayed that far
//! (`cache::region::replica_floor`), so a copy answered from the primary and then evicted is
//! not followed by the replica's older row.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

use super::database::HotReads;
use super::positions::{position, PRIMARY_POSITION_SQL, REPLAYED_POSITION_SQL};
use super::{connection_was_lost, Db};
use crate::cache::{region, Cache, Replication};

/// Where one read runs: a pool, and the dedicated connections of the hottest read, if any.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub db: &'a Db,
    pub hot: Option<&'a HotReads>,
}

/// The replica's pools and limits.
struct Replica {
    db: Db,
    hot: Option<HotReads>,
    replication: Arc<Replication>,
    max_lag: Duration,
    wait: Duration,
}

/// The read side of the repositories: the primary, and this region's replica if any.
#[derive(Clone)]
pub struct Reads {
    primary: Db,
    primary_hot: Option<HotReads>,
    replica: Option<Arc<Replica>>,
    /// `database_reads_total{target}`.
    counted: Option<IntCounterVec>,
}

impl From<Db> for Reads {
    fn from(primary: Db) -> Reads {
        Reads {
            primary,
            primary_hot: None,
            replica: None,
            counted: None,
        }
    }
}

/// What a region's replica needs besides its pools.
pub struct ReplicaLimits {
    pub replication: Arc<Replication>,
    /// `MAX_REPLICA_LAG_MS`.
    pub max_lag: Duration,
    /// `READ_YOUR_WRITES_WAIT_MS`.
    pub wait: Duration,
}

impl Reads {
    /// Reads on the primary's pool, and its dedicated connections for the hottest read.
    pub fn primary(primary: Db, hot: Option<HotReads>) -> Reads {
        Reads {
            primary_hot: hot,
            ..Reads::from(primary)
        }
    }

    /// Reads go to `db` (the replica) while `limits` allow.
    pub fn with_replica(mut self, db: Db, hot: Option<HotReads>, limits: ReplicaLimits) -> Reads {
        self.replica = Some(Arc::new(Replica {
            db,
            hot,
            replication: limits.replication,
            max_lag: limits.max_lag,
            wait: limits.wait,
        }));
        self
    }

    /// Counts each read by where it went (`replica` or `primary`).
    pub fn counted(mut self, counter: IntCounterVec) -> Reads {
        self.counted = Some(counter);
        self
    }

    /// The primary's pool (reads that are part of a write).
    pub fn primary_db(&self) -> &Db {
        &self.primary
    }

    /// Runs `read` where this read should go (see the module doc).
    pub async fn run<'s, T, F, Fut>(&'s self, read: F) -> Result<T, sqlx::Error>
    where
        F: Fn(Target<'s>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(replica) = &self.replica {
            if let Some(replayed) = replica.usable().await {
                let target = Target {
                    db: &replica.db,
                    hot: replica.hot.as_ref(),
                };
                match read(target).await {
                    Ok(value) => {
                        region::note_replica_read(replayed);
                        self.count("replica");
                        return Ok(value);
                    }
                    Err(error) if unavailable(&error) => {
                        log::warn!("the replica failed a read ({error}); reading the primary");
                        replica.replication.replica_down();
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        self.count("primary");
        let value = read(Target {
            db: &self.primary,
            hot: self.primary_hot.as_ref(),
        })
        .await?;
        if self.replica.is_some() && region::wants_primary_position() {
            self.note_primary_position().await;
        }
        Ok(value)
    }

    /// A cache load was answered from the primary: the primary's position now covers
    /// everything that read saw (see the module doc). A failure costs that guarantee for this
    /// key (logged), never the read.
    async fn note_primary_position(&self) {
        let read = async {
            let mut conn = self.primary.pool().acquire().await?;
            position(&mut conn, PRIMARY_POSITION_SQL).await
        };
        match read.await {
            Ok(Some(at)) => region::note_primary_read(at),
            Ok(None) => log::debug!("the primary answered no WAL position after a read"),
            Err(error) => log::warn!("no primary position after a read of the primary: {error}"),
        }
    }

    fn count(&self, target: &str) {
        if let Some(counter) = &self.counted {
            counter.with_label_values(&[target]).inc();
        }
    }
}

impl Replica {
    /// The position the replica had replayed, when this read may go there.
    async fn usable(&self) -> Option<u64> {
        let state = self.replication.state()?;
        if !state.up || state.lag > self.max_lag {
            return None;
        }
        // The key was answered from the primary at a position the replica has not replayed:
        // the primary again (waiting could last the replica's whole lag).
        if region::replica_floor().is_some_and(|floor| state.replayed < floor) {
            return None;
        }
        match region::required() {
            Some(needed) if state.replayed < needed => {
                if !self.replication.wait_for(needed, self.wait).await {
                    return None;
                }
                self.replication.replayed()
            }
            _ => Some(state.replayed),
        }
    }
}

/// The replica cannot answer now (as opposed to an error about the read itself).
fn unavailable(error: &sqlx::Error) -> bool {
    connection_was_lost(error)
        || matches!(
            error,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
        )
        // "canceling statement due to conflict with recovery": a replica-only failure.
        || matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}

/// How often the watcher samples the replica (and at once when a read waits for it).
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// A sample or connection attempt taking longer counts as the replica being down.
const ANSWER_WITHIN: Duration = Duration::from_millis(500);
/// What `pg_stat_activity` shows for the watcher's connection.
pub const WATCHER_APPLICATION_NAME: &str = "gwd-replica-watcher";

/// Samples the replica's replayed position into the cache's [`Replication`] until the cache
/// shuts down (one connection of its own, outside the pools).
pub fn spawn_watcher(cache: &Cache, options: sqlx::postgres::PgConnectOptions) -> JoinHandle<()> {
    let replication = cache.replication();
    let mut shutdown = cache.shutdown_signal();
    let options = options.application_name(WATCHER_APPLICATION_NAME);
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let connected =
                tokio::time::timeout(ANSWER_WITHIN, PgConnection::connect_with(&options)).await;
            match connected {
                Ok(Ok(mut conn)) => {
                    failures = 0;
                    let lost = watch(&mut conn, &replication, &mut shutdown).await;
                    let _ = conn.close().await;
                    if !lost {
                        return;
                    }
                }
                Ok(Err(error)) => {
                    if failures == 0 {
                        log::warn!("the replica watcher cannot connect: {error}");
                    }
                    failures = failures.saturating_add(1);
                }
                Err(_) => failures = failures.saturating_add(1),
            }
            replication.replica_down();
            let backoff = Duration::from_millis(100 * u64::from(failures.clamp(1, 10)));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// Samples on `conn` until it fails (true) or shutdown (false).
async fn watch(
    conn: &mut PgConnection,
    replication: &Replication,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        match tokio::time::timeout(ANSWER_WITHIN, position(conn, REPLAYED_POSITION_SQL)).await {
            Ok(Ok(Some(replayed))) => replication.replica_at(replayed),
            Ok(Ok(None)) => replication.replica_down(),
            Ok(Err(error)) => {
                log::warn!("the replica watcher lost its connection: {error}");
                return true;
            }
            Err(_) => return true,
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            // A read waits for a newer position: sample again soon (not in a tight loop).
            _ = replication.sample_wanted() => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ = shutdown.changed() => return false,
        }
    }
}

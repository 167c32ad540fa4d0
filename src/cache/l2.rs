//! The Redis tier: bb8 pools (one per thread) of multiplexed connections to the configured
//! topology, every operation (checkout + command) under one budget.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8::{ErrorSink, ManageConnection, Pool};
use redis::RedisError;
use thread_local::ThreadLocal;
use tokio::time::{timeout_at, Instant};

use super::connect::Endpoints;
use super::metrics::CacheMetrics;
use super::topology::{Connector, RedisConn, SubscriberTarget};
use crate::config::{NodeAddr, RedisTls, RedisTopology};

/// A pooled connection plus its health. Both connection kinds are multiplexed: a caller takes
/// a clone and hands the pooled one straight back, so concurrent commands share a few
/// connections and are pipelined on them (one write and one read for many requests, on our
/// side and on Redis's). The bb8 managers never report a multiplexed connection as broken,
/// so after an I/O error, a READONLY reply (a demoted primary) or repeated timeouts a caller
/// marks the shared health here and bb8 drops the connection the next time it comes back,
/// instead of handing a dead connection out forever.
pub struct L2Conn {
    conn: RedisConn,
    health: Arc<ConnHealth>,
}

#[derive(Default)]
struct ConnHealth {
    broken: AtomicBool,
    timeouts: AtomicU8,
}

impl ConnHealth {
    fn timed_out(&self) {
        if self
            .timeouts
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
            >= 3
        {
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Clone, Debug)]
pub struct L2Manager(Connector, Endpoints);

impl ManageConnection for L2Manager {
    type Connection = L2Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<L2Conn, RedisError> {
        let connected = self.0.connect().await;
        self.1.note_connect(connected.as_ref().map(|_| ()));
        let conn = connected?;
        Ok(L2Conn {
            conn,
            health: Arc::default(),
        })
    }

    async fn is_valid(&self, conn: &mut L2Conn) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query_async::<String>(&mut conn.conn)
            .await
            .map(|_| ())
    }

    fn has_broken(&self, conn: &mut L2Conn) -> bool {
        conn.health.broken.load(Ordering::Relaxed)
    }
}

/// Logs and counts connection errors (bb8's error sink).
#[derive(Clone)]
struct Sink(prometheus::IntCounter);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl ErrorSink<RedisError> for Sink {
    fn sink(&self, error: RedisError) {
        self.0.inc();
        log::warn!("cache: redis connection failed: {error}");
    }
    fn boxed_clone(&self) -> Box<dyn ErrorSink<RedisError>> {
        Box::new(self.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error("redis operation exceeded its budget")]
    Timeout,
    #[error("redis error: {0}")]
    Redis(#[from] RedisError),
    #[error("redis pool: {0}")]
    Pool(String),
}

/// One pool per thread that uses Redis. A multiplexed connection's I/O runs as a task on
/// the runtime that opened it; each actix worker is a runtime of its own, so a connection
/// shared across workers would cost every command two cross-thread wake-ups (measured: a
/// fifth of the server's CPU on the L2-hit path). Each thread's slot has a lock of its own,
/// uncontended but for [`L2::reset_pool`], which empties every slot after an outage (every
/// connection is suspect then; new ones connect lazily).
pub struct L2 {
    manager: L2Manager,
    pools: ThreadLocal<Mutex<Option<Pool<L2Manager>>>>,
    size: u32,
    sink: Sink,
    connect_timeout: Duration,
    pub topology: RedisTopology,
    /// Addresses and TLS for every connection of this tier (pools, subscriber, probes).
    pub endpoints: Endpoints,
    pub subscriber: SubscriberTarget,
    /// The primary last named by the Sentinels (Sentinel topology only).
    known_primary: Mutex<Option<NodeAddr>>,
}

impl L2 {
    pub fn new(
        topology: &RedisTopology,
        tls: &RedisTls,
        size: u32,
        budget: Duration,
        metrics: &CacheMetrics,
    ) -> Result<L2, RedisError> {
        let endpoints = Endpoints::new(tls);
        let manager = L2Manager(
            Connector::new(topology, &endpoints, budget)?,
            endpoints.clone(),
        );
        let subscriber = SubscriberTarget::new(topology, &endpoints)?;
        let sink = Sink(metrics.l2_connect_errors.clone());
        let connect_timeout = budget.max(Duration::from_millis(250));
        Ok(L2 {
            manager,
            pools: ThreadLocal::new(),
            size,
            sink,
            connect_timeout,
            topology: topology.clone(),
            endpoints,
            subscriber,
            known_primary: Mutex::new(None),
        })
    }

    /// This thread's pool (built on first use, so its connections run on this thread's
    /// runtime).
    pub fn pool(&self) -> Pool<L2Manager> {
        let mut slot = self
            .pools
            .get_or_default()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| {
            build_pool(
                self.manager.clone(),
                self.size,
                self.connect_timeout,
                self.sink.clone(),
            )
        })
        .clone()
    }

    /// Drop every pooled connection (they reconnect on demand).
    pub fn reset_pool(&self) {
        for slot in self.pools.iter() {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    pub fn known_primary(&self) -> Option<NodeAddr> {
        self.known_primary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the primary the Sentinels name; true when it replaced a different one.
    pub fn note_primary(&self, primary: NodeAddr) -> bool {
        let mut known = self.known_primary.lock().unwrap_or_else(|e| e.into_inner());
        let changed = known.as_ref().is_some_and(|k| *k != primary);
        *known = Some(primary);
        changed
    }

    /// Connections and idle connections over every thread's pool.
    pub fn pool_state(&self) -> (u32, u32) {
        self.pools
            .iter()
            .filter_map(|slot| {
                let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                slot.as_ref().map(Pool::state)
            })
            .fold((0, 0), |(c, i), s| {
                (c + s.connections, i + s.idle_connections)
            })
    }

    /// Run one command: checkout + command under one deadline.
    pub async fn run<T, F>(&self, budget: Duration, f: F) -> Result<T, L2Error>
    where
        F: for<'c> FnOnce(
            &'c mut RedisConn,
        ) -> futures::future::BoxFuture<'c, Result<T, RedisError>>,
    {
        let deadline = Instant::now() + budget;
        let pool = self.pool();
        let (mut conn, health) = loop {
            let pooled = match timeout_at(deadline, pool.get()).await {
                Err(_) => return Err(L2Error::Timeout),
                Ok(Err(bb8::RunError::TimedOut)) => return Err(L2Error::Timeout),
                Ok(Err(bb8::RunError::User(e))) => return Err(L2Error::Redis(e)),
                Ok(Ok(pooled)) => pooled,
            };
            // Marked broken by another caller after it went back to the pool: returning it
            // now makes bb8 drop it, and the next checkout connects afresh.
            if !pooled.health.broken.load(Ordering::Relaxed) {
                // Back to the pool at once: the clone shares the multiplexed connection.
                break (pooled.conn.clone(), Arc::clone(&pooled.health));
            }
        };
        match timeout_at(deadline, f(&mut conn)).await {
            Err(_) => {
                health.timed_out();
                Err(L2Error::Timeout)
            }
            Ok(Err(e)) => {
                if conn.is_fatal(&e) {
                    health.broken.store(true, Ordering::Relaxed);
                    // Connections die together (a restart, a failover, CLIENT KILL, a cut
                    // network) and every thread's pool may hold one that nothing has used
                    // since: drop them all now rather than fail one command per pool later.
                    self.reset_pool();
                }
                Err(L2Error::Redis(e))
            }
            Ok(Ok(v)) => {
                health.timeouts.store(0, Ordering::Relaxed);
                Ok(v)
            }
        }
    }
}

fn build_pool(
    manager: L2Manager,
    size: u32,
    connect_timeout: Duration,
    sink: Sink,
) -> Pool<L2Manager> {
    Pool::builder()
        .max_size(size.max(1))
        .min_idle(None)
        .test_on_check_out(false)
        .retry_connection(false)
        .connection_timeout(connect_timeout)
        .error_sink(Box::new(sink))
        .build_unchecked(manager)
}

/// Fill guarded against tombstones: a tombstone is replaced only by a load that saw that very
/// tombstone (by its id, bytes 12..19) before it read Postgres, i.e. a load that began after
/// the invalidated write committed; any other tombstone (one written after the load looked,
/// or one the load never saw) is kept. No clocks are compared.
/// KEYS[1] key; ARGV[1] value; ARGV[2] px; ARGV[3] tombstone prefix; ARGV[4] the id (8 bytes,
/// big endian) of the tombstone the load saw, or empty.
pub const FILL_SCRIPT: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 19 and string.sub(cur, 1, 3) == ARGV[3] then
  if string.sub(cur, 12, 19) ~= ARGV[4] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// Delete only if the value is still the one we saw (for undecodable values).
pub const DEL_IF_EQ_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// `INCR` a fixed-window counter and start its window (`PEXPIRE ARGV[1]` ms) when it is new or
/// somehow has no expiry; returns `{count, ms left in the window}`.
pub const WINDOW_COUNTER_SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if n == 1 or left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
"#;

/// Escape a prefix for SCAN MATCH.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

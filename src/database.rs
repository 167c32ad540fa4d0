//! The Postgres pool and migrations.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::{Mutex, MutexGuard, Semaphore, SemaphorePermit};

use crate::config::{mask_url, DatabaseSettings};

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL ({url}) is not usable: {reason}")]
    Options { url: String, reason: String },
    #[error("could not migrate the database at {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A pool with explicit bounds. It connects lazily, so the service starts (and reports
/// `unhealthy`) while Postgres is down instead of refusing to start.
pub fn connect_lazy(settings: &DatabaseSettings) -> Result<PgPool, DatabaseError> {
    pool(settings, settings.max_connections)
}

/// The server's pool and, out of the same `DATABASE_MAX_CONNECTIONS` budget, the dedicated
/// connections of the hottest read (see [`HotConnections`]): half of the budget when it is at
/// least [`MIN_BUDGET_FOR_HOT`], else none (everything goes through the pool).
pub fn connect_lazy_split(
    settings: &DatabaseSettings,
) -> Result<(PgPool, Option<HotConnections>), DatabaseError> {
    let hot = if settings.max_connections >= MIN_BUDGET_FOR_HOT {
        settings.max_connections / 2
    } else {
        0
    };
    let pool = pool(settings, settings.max_connections - hot)?;
    let hot = (hot > 0).then(|| -> Result<_, DatabaseError> {
        Ok(HotConnections {
            slots: (0..hot).map(|_| Mutex::new(None)).collect(),
            free: Semaphore::new(hot as usize),
            next: AtomicUsize::new(0),
            options: connect_options(settings)?,
            acquire_timeout: settings.acquire_timeout,
        })
    });
    Ok((pool, hot.transpose()?))
}

/// Below this budget the pool keeps every connection.
const MIN_BUDGET_FOR_HOT: u32 = 4;

/// A few connections held outside the pool for the one read on every cache miss (a workflow
/// by id). sqlx's pool pings every connection when it is released (unconditionally, in
/// 0.8): a second round trip per read, which Postgres and this process both pay. These are
/// checked out without a ping and never released to the pool. Each lives in a slot: taken
/// out while a statement runs and put back after it completed; a statement that was dropped
/// mid-way (a request deadline) or lost its connection drops the connection, and the slot
/// connects again on its next use (bounded by `DATABASE_ACQUIRE_TIMEOUT_MS`).
pub struct HotConnections {
    slots: Vec<Mutex<Option<PgConnection>>>,
    /// One permit per slot nobody holds.
    free: Semaphore,
    next: AtomicUsize,
    options: PgConnectOptions,
    acquire_timeout: Duration,
}

/// A slot, held for one statement.
pub struct HotSlot<'a> {
    slot: MutexGuard<'a, Option<PgConnection>>,
    hot: &'a HotConnections,
    _permit: SemaphorePermit<'a>,
}

impl HotConnections {
    /// How many connections there are (a read retries one more time than that).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// A free slot, waiting in line (first come, first served) for one to be freed within
    /// the acquire timeout (`PoolTimedOut`, like the pool's).
    pub async fn checkout(&self) -> Result<HotSlot<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.free.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        // A permit guarantees a slot nobody holds; the rotating start spreads the use.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        for i in 0..n {
            if let Some(Ok(slot)) = self.slots.get((start + i) % n).map(Mutex::try_lock) {
                return Ok(HotSlot {
                    slot,
                    hot: self,
                    _permit: permit,
                });
            }
        }
        Err(sqlx::Error::PoolClosed)
    }
}

impl HotSlot<'_> {
    /// The slot's connection, taken out of it (connected first if the slot is empty).
    pub async fn take(&mut self) -> Result<PgConnection, sqlx::Error> {
        if let Some(conn) = self.slot.take() {
            return Ok(conn);
        }
        tokio::time::timeout(
            self.hot.acquire_timeout,
            PgConnection::connect_with(&self.hot.options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// Puts a connection whose statement completed back.
    pub fn put_back(&mut self, conn: PgConnection) {
        *self.slot = Some(conn);
    }
}

fn pool(settings: &DatabaseSettings, max_connections: u32) -> Result<PgPool, DatabaseError> {
    let options = connect_options(settings)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        // sqlx's default pings before every checkout: a second round trip on every read.
        // Only a connection that sat idle is pinged (the server may have closed it meanwhile);
        // reads on a connection that died anyway are retried, writes ping their own.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, DatabaseError> {
    let statement_timeout = settings.statement_timeout.as_millis().to_string();
    let options =
        PgConnectOptions::from_url(&settings.url).map_err(|error| DatabaseError::Options {
            url: mask_url(&settings.url),
            // sqlx's message may quote the URL; keep only its kind.
            reason: match error {
                sqlx::Error::Configuration(_) => "invalid connection options".to_owned(),
                _ => "unsupported URL".to_owned(),
            },
        })?;
    Ok(options
        .application_name("ghl-workflow-debugger")
        .options([("statement_timeout", statement_timeout.as_str())])
        .log_statements(log::LevelFilter::Debug)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1)))
}

/// Applies the migrations in `migrations/` (the same files `sqlx migrate run` applies).
/// Safe to run concurrently from several instances: sqlx takes an advisory lock.
pub async fn migrate(pool: &PgPool, settings: &DatabaseSettings) -> Result<(), DatabaseError> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .map_err(|source| DatabaseError::Migrate {
            url: mask_url(&settings.url),
            source,
        })
}

/// Creates the database named in the URL when it does not exist yet (for `make dev`).
pub async fn ensure_database_exists(settings: &DatabaseSettings) -> Result<(), sqlx::Error> {
    let target =
        connect_options(settings).map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = target.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound; quote it the way Postgres does.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("create database {quoted}"))
            .execute(&mut admin)
            .await?;
        log::info!("created database {name}");
    }
    Ok(())
}

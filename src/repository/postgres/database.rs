//! The Postgres pool and migrations.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::config::{mask_url, DatabaseSettings, PoolerMode};

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
    #[error(
        "the server at DATABASE_URL ({url}) refused the startup parameter `{parameter}`: it looks \
         like a connection pooler (PgBouncer, Supavisor). Set DATABASE_POOLER=transaction (the \
         service then sends no such parameter, and DATABASE_LISTEN_URL must name a direct \
         connection), or add `{parameter}` to the pooler's ignore_startup_parameters"
    )]
    PoolerRefused { url: String, parameter: String },
    #[error(
        "the server at DATABASE_URL ({url}) did not apply the statement_timeout sent as a \
         startup parameter ({expected} ms sent, {found} ms in effect): it looks like a \
         connection pooler (PgBouncer, Supavisor) that ignores startup parameters \
         (ignore_startup_parameters). Behind a transaction-mode pooler the timeout is lost and \
         prepared statements fail. Set DATABASE_POOLER=transaction (the timeout is then set in \
         every transaction) and DATABASE_LISTEN_URL to a direct connection"
    )]
    PoolerIgnored {
        url: String,
        expected: u128,
        found: String,
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
/// connections of the hottest read (see [`HotReads`]): half of the budget when it is at
/// least [`MIN_BUDGET_FOR_HOT`], else none (everything goes through the pool).
pub fn connect_lazy_split(
    settings: &DatabaseSettings,
) -> Result<(PgPool, Option<HotReads>), DatabaseError> {
    // Behind a transaction-mode pooler every statement needs its own transaction (see
    // `pooled`), which the dedicated connections would not have.
    let hot =
        if settings.max_connections >= MIN_BUDGET_FOR_HOT && settings.pooler == PoolerMode::None {
            settings.max_connections / 2
        } else {
            0
        };
    let pool = pool(settings, settings.max_connections - hot)?;
    let hot = (hot > 0).then(|| -> Result<_, DatabaseError> {
        let manager = HotConnectionManager {
            options: connect_options(settings)?,
        };
        Ok(bb8::Pool::builder()
            .max_size(hot)
            .min_idle(None)
            .test_on_check_out(false)
            .connection_timeout(settings.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .build_unchecked(manager))
    });
    hot.transpose().map(|hot| (pool, hot))
}

/// Below this budget the pool keeps every connection.
const MIN_BUDGET_FOR_HOT: u32 = 4;

/// A few connections kept apart from sqlx's pool for the one read on every cache miss (a
/// workflow by id): sqlx 0.8 pings every connection it takes back (unconditionally), a second
/// round trip per read that Postgres and this process both pay. This bb8 pool of plain sqlx
/// connections pings none; a connection whose statement did not complete (its connection was
/// lost, or a request deadline dropped it mid-way) is reported broken and never reused.
pub type HotReads = bb8::Pool<HotConnectionManager>;

pub struct HotConnectionManager {
    options: PgConnectOptions,
}

/// A dedicated connection, and whether a statement started on it has not completed.
pub struct HotConnection {
    pub conn: PgConnection,
    pub in_statement: bool,
}

impl bb8::ManageConnection for HotConnectionManager {
    type Connection = HotConnection;
    type Error = sqlx::Error;

    async fn connect(&self) -> Result<HotConnection, sqlx::Error> {
        let conn = PgConnection::connect_with(&self.options).await?;
        Ok(HotConnection {
            conn,
            in_statement: false,
        })
    }

    async fn is_valid(&self, conn: &mut HotConnection) -> Result<(), sqlx::Error> {
        conn.conn.ping().await
    }

    fn has_broken(&self, conn: &mut HotConnection) -> bool {
        conn.in_statement
    }
}

/// A dedicated connection within the acquire timeout (`PoolTimedOut` after it, like sqlx's pool).
pub async fn hot_connection(
    hot: &HotReads,
) -> Result<bb8::PooledConnection<'_, HotConnectionManager>, sqlx::Error> {
    hot.get().await.map_err(|error| match error {
        bb8::RunError::User(error) => error,
        bb8::RunError::TimedOut => sqlx::Error::PoolTimedOut,
    })
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
    let options = url_options(&settings.url)?;
    Ok(match settings.pooler {
        PoolerMode::None => with_statement_timeout(options, settings),
        // A transaction-mode pooler refuses startup parameters it does not know
        // (`extra_float_digits`, `options`), and cannot keep named statements between
        // transactions: the timeout is set per transaction instead (`pooled::Db`), and the
        // statement cache is off.
        PoolerMode::Transaction => options.extra_float_digits(None).statement_cache_capacity(0),
    })
}

fn with_statement_timeout(
    options: PgConnectOptions,
    settings: &DatabaseSettings,
) -> PgConnectOptions {
    let statement_timeout = settings.statement_timeout.as_millis().to_string();
    options.options([("statement_timeout", statement_timeout.as_str())])
}

fn url_options(url: &url::Url) -> Result<PgConnectOptions, DatabaseError> {
    let options = PgConnectOptions::from_url(url).map_err(|error| DatabaseError::Options {
        url: mask_url(url),
        // sqlx's message may quote the URL; keep only its kind.
        reason: match error {
            sqlx::Error::Configuration(_) => "invalid connection options".to_owned(),
            _ => "unsupported URL".to_owned(),
        },
    })?;
    Ok(options
        .application_name("ghl-workflow-debugger")
        .log_statements(log::LevelFilter::Debug)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1)))
}

/// Options for a direct session (`DATABASE_LISTEN_URL`, else `DATABASE_URL`): migrations and
/// anything else that needs a session of its own, never through a pooler.
pub fn direct_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, DatabaseError> {
    let options = url_options(settings.direct_url())?;
    Ok(with_statement_timeout(options, settings))
}

/// The pools of a region's replica (`DATABASE_READ_URL`), split like the primary's, with a
/// shorter acquire timeout: a replica that does not hand out a connection quickly is skipped
/// for the primary rather than waited for. `None` without a replica.
pub fn connect_replica(
    settings: &DatabaseSettings,
    read_url: Option<&url::Url>,
) -> Result<Option<(PgPool, Option<HotReads>, PgConnectOptions)>, DatabaseError> {
    let Some(url) = read_url else {
        return Ok(None);
    };
    let replica = DatabaseSettings {
        url: url.clone(),
        listen_url: None,
        acquire_timeout: settings.acquire_timeout.min(REPLICA_ACQUIRE_TIMEOUT),
        ..settings.clone()
    };
    let (pool, hot) = connect_lazy_split(&replica)?;
    Ok(Some((pool, hot, connect_options(&replica)?)))
}

/// Longest a read waits for a replica connection before it reads the primary instead.
const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(300);

/// One connection attempt through `DATABASE_URL`, bounded by the acquire timeout: a pooler
/// that refuses a startup parameter, or (without `DATABASE_POOLER`) one that silently drops
/// them, is a configuration error worth refusing to start for (requests would fail, or run
/// without a statement timeout), explained with the setting to change. Any other failure
/// (Postgres down) is left to health and the pool, as before.
pub async fn check_startup_parameters(settings: &DatabaseSettings) -> Result<(), DatabaseError> {
    let options = connect_options(settings)?;
    let attempt = tokio::time::timeout(settings.acquire_timeout, async {
        let mut conn = PgConnection::connect_with(&options).await?;
        let found = match settings.pooler {
            PoolerMode::None => statement_timeout_in_effect(&mut conn).await,
            // Nothing was sent as a startup parameter: nothing to find.
            PoolerMode::Transaction => Ok(None),
        };
        let _ = conn.close().await;
        found
    })
    .await;
    let url = || mask_url(&settings.url);
    let expected = settings.statement_timeout.as_millis();
    match attempt {
        Ok(Ok(Some(found))) if found != expected.to_string() => Err(DatabaseError::PoolerIgnored {
            url: url(),
            expected,
            found,
        }),
        Ok(Err(error)) => match refused_parameter(&error) {
            Some(parameter) => Err(DatabaseError::PoolerRefused {
                url: url(),
                parameter,
            }),
            None => Ok(()),
        },
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

/// The session's `statement_timeout` in milliseconds, as text. A runtime query on purpose:
/// the simple query protocol (no prepared statement) answers even behind the pooler this
/// check is looking for, where a named statement could fail before telling anything.
async fn statement_timeout_in_effect(
    conn: &mut PgConnection,
) -> Result<Option<String>, sqlx::Error> {
    use sqlx::Row as _;
    let rows = sqlx::raw_sql("select setting from pg_settings where name = 'statement_timeout'")
        .fetch_all(conn)
        .await?;
    rows.first()
        .map(|row| row.try_get::<String, _>(0))
        .transpose()
}

/// PgBouncer's `unsupported startup parameter: NAME` (Supavisor words it alike).
fn refused_parameter(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    let message = db.message();
    let (_, rest) = message.split_once("unsupported startup parameter")?;
    let name: String = rest
        .trim_start_matches([':', ' ', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(if name.is_empty() {
        "options".to_owned()
    } else {
        name
    })
}

/// Applies the migrations in `migrations/` (the same files `sqlx migrate run` applies).
/// Safe to run concurrently from several instances: sqlx takes an advisory lock.
///
/// With `DATABASE_LISTEN_URL` set (required behind a transaction-mode pooler) they run on a
/// direct connection to it: the migrator's advisory lock is session state a pooler would not
/// keep.
pub async fn migrate(pool: &PgPool, settings: &DatabaseSettings) -> Result<(), DatabaseError> {
    let failed = |source| DatabaseError::Migrate {
        url: mask_url(settings.direct_url()),
        source,
    };
    let migrator = sqlx::migrate!("./migrations");
    if settings.listen_url.is_none() {
        return migrator.run(pool).await.map_err(failed);
    }
    let mut direct = PgConnection::connect_with(&direct_options(settings)?)
        .await
        .map_err(|e| failed(sqlx::migrate::MigrateError::Execute(e)))?;
    let migrated = migrator.run(&mut direct).await.map_err(failed);
    let _ = direct.close().await;
    migrated
}

/// Creates the database named in the URL when it does not exist yet (for `make dev`).
pub async fn ensure_database_exists(settings: &DatabaseSettings) -> Result<(), sqlx::Error> {
    let target =
        direct_options(settings).map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = target.clone().database("postgres").connect().await?;
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from pg_database where datname = $1) as "exists!""#,
        &name,
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // A runtime query: the statement's text holds the database's name (identifiers
        // cannot be bound), so there is no fixed statement for the macros to check. The name
        // is quoted the way Postgres does.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("create database {quoted}"))
            .execute(&mut admin)
            .await?;
        log::info!("created database {name}");
    }
    Ok(())
}

/// One trivial round trip: whether Postgres answers at all (health and readiness).
///
/// A runtime query on purpose, sent with the simple query protocol (one `Query` message, no
/// parameters): a `query!` statement is parsed as a *named* prepared statement in one round
/// trip and bound in another, and behind a transaction-mode pooler the two may land on
/// different server sessions (`prepared statement … does not exist`), or the name may
/// collide with one another client left there (`… already exists`). The simple protocol
/// leaves nothing on the session and the pooler runs it as a transaction of its own, so the
/// probe needs neither pooler mode's wrapping transaction (`pooled::Db`, three more round
/// trips per probe) nor to know which mode is on: it answers the same in both.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("select 1").execute(pool).await.map(|_| ())
}

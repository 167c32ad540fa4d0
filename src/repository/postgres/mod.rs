//! The only place SQL lives.
//!
//! Every fixed statement is a `sqlx::query!` / `query_as!` / `query_scalar!`: its parameters
//! and columns are checked against the schema at compile time, offline, from the statement
//! descriptions committed in `.sqlx/` (regenerated with `make sqlx-prepare`, see
//! `docs/sql.md`). A runtime query (`sqlx::query(…)`, `execute(&str)`) remains only where no
//! fixed statement exists, with the reason next to it.

mod analyses;
mod api_keys;
pub mod database;
pub mod listener;
mod locations;
pub mod notify;
pub mod pooled;
pub mod positions;
pub mod replica;
pub mod seed;
mod subscriptions;
mod webhooks;
mod workflows;

pub use analyses::PgAnalysisRepository;
pub use api_keys::PgApiKeyRepository;
pub use locations::PgLocationRepository;
pub use notify::Notifier;
pub use pooled::Db;
pub use replica::Reads;
pub use subscriptions::PgSubscriptionRepository;
pub use webhooks::{PgWebhookStore, WebhookEffect};
pub use workflows::{PgWorkflowRepository, TOMBSTONES_PER_LOCATION};

/// Attempts at a statement whose pooled connection turned out to be dead: after a mass
/// termination every pooled connection may be dead, and each failed attempt retires one (the
/// pool drops a connection whose release check fails), so one more than the pool holds
/// always reaches a live or a new connection.
fn lost_connection_attempts(pool: &sqlx::PgPool) -> u32 {
    pool.options().get_max_connections() + 1
}

/// A pooled connection for a write, checked with a ping first. The pool does not test the
/// connections it hands out (a ping before every query would double the round trips of every
/// read; reads retry instead, see [`read_retrying`]), but a write cannot be sent twice: one
/// whose connection died mid-way may have committed. So writes pay the ping and take another
/// connection when it fails — nothing was sent yet.
async fn writable(db: &Db) -> Result<pooled::Writable, sqlx::Error> {
    use sqlx::Connection as _;
    let attempts = lost_connection_attempts(db);
    let mut attempt = 1;
    loop {
        let mut conn = db.acquire().await?;
        match conn.ping().await {
            Ok(()) => return Ok(pooled::Writable::new(conn, db)),
            Err(error) => {
                conn.close_on_drop();
                if attempt >= attempts || !connection_was_lost(&error) {
                    return Err(error);
                }
                log::debug!("a pooled connection was dead before a write ({error}); another");
                attempt += 1;
            }
        }
    }
}

/// Runs an idempotent read again when its pooled connection turned out to be dead.
///
/// A pooled connection can be terminated (`pg_terminate_backend`, a failover, a middlebox
/// reset) while it sits in the pool, and the pool only checks connections that sat idle for
/// a while. That is not the database being unavailable: another attempt answers. A lost
/// connection fails fast, and with the server really gone the next attempt ends in the pool's
/// acquire timeout, which is not retried. Only reads are retried — a write whose connection
/// died may have committed (writes check their connection first, see [`writable`]).
async fn read_retrying<T, Fut>(
    pool: &sqlx::PgPool,
    read: impl FnMut() -> Fut,
) -> Result<T, sqlx::Error>
where
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    retrying(lost_connection_attempts(pool), read).await
}

async fn retrying<T, Fut>(attempts: u32, mut read: impl FnMut() -> Fut) -> Result<T, sqlx::Error>
where
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Err(error) if attempt < attempts && connection_was_lost(&error) => {
                log::debug!("a pooled connection was lost during a read ({error}); retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// I/O and protocol errors, `admin_shutdown` / `crash_shutdown`, and connection exceptions
/// (class 08).
fn connection_was_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code == "57P01" || code == "57P02" || code.starts_with("08")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lost_connections_are_retried() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(connection_was_lost(&io));
        assert!(!connection_was_lost(&sqlx::Error::PoolTimedOut));
        assert!(!connection_was_lost(&sqlx::Error::RowNotFound));
    }

    #[tokio::test]
    async fn a_lost_connection_is_retried_a_bounded_number_of_times() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let lost = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()))
        };
        assert!(retrying(4, lost).await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);

        let calls = std::sync::atomic::AtomicU32::new(0);
        let timed_out = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(sqlx::Error::PoolTimedOut)
        };
        assert!(retrying(4, timed_out).await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

//! The only place SQL lives.

mod analyses;
mod api_keys;
mod locations;
mod subscriptions;
mod webhooks;
mod workflows;

pub use analyses::PgAnalysisRepository;
pub use api_keys::PgApiKeyRepository;
pub use locations::PgLocationRepository;
pub use subscriptions::PgSubscriptionRepository;
pub use webhooks::{PgWebhookStore, WebhookEffect};
pub use workflows::PgWorkflowRepository;

/// Attempts of an idempotent read whose pooled connection turned out to be dead.
const READ_ATTEMPTS: u32 = 3;

/// Runs an idempotent read again (up to [`READ_ATTEMPTS`] in all) when its pooled connection
/// turned out to be dead.
///
/// A pooled connection can be terminated (`pg_terminate_backend`, a failover, a middlebox
/// reset) after the pool's liveness check and before the query runs. That is not the database
/// being unavailable: another attempt answers. After a mass termination the next pooled
/// connection may be dying too (a loaded server delivers the terminations over some
/// milliseconds), hence more than one retry; a lost connection fails fast, and with the
/// server really gone the next attempt ends in the pool's acquire timeout, which is not
/// retried. Only reads are retried — a write whose connection died may have committed.
async fn read_retrying<T, Fut>(mut read: impl FnMut() -> Fut) -> Result<T, sqlx::Error>
where
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Err(error) if attempt < READ_ATTEMPTS && connection_was_lost(&error) => {
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
        assert!(read_retrying(lost).await.is_err());
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            READ_ATTEMPTS
        );

        let calls = std::sync::atomic::AtomicU32::new(0);
        let timed_out = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(sqlx::Error::PoolTimedOut)
        };
        assert!(read_retrying(timed_out).await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

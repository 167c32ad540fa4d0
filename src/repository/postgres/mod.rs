//! The only place SQL lives.

mod api_keys;
mod locations;
mod subscriptions;
mod webhooks;
mod workflows;

pub use api_keys::PgApiKeyRepository;
pub use locations::PgLocationRepository;
pub use subscriptions::PgSubscriptionRepository;
pub use webhooks::{PgWebhookStore, WebhookEffect};
pub use workflows::PgWorkflowRepository;

/// Runs an idempotent read once more when its pooled connection turned out to be dead.
///
/// A pooled connection can be terminated (`pg_terminate_backend`, a failover, a middlebox
/// reset) after the pool's liveness check and before the query runs. That is not the database
/// being unavailable: a second attempt on a fresh connection answers. Only reads are retried —
/// a write whose connection died may or may not have committed.
async fn read_retrying<T, Fut>(mut read: impl FnMut() -> Fut) -> Result<T, sqlx::Error>
where
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match read().await {
        Err(error) if connection_was_lost(&error) => {
            log::debug!("a pooled connection was lost during a read ({error}); retrying once");
            read().await
        }
        other => other,
    }
}

/// I/O errors, `admin_shutdown` / `crash_shutdown`, and connection exceptions (class 08).
fn connection_was_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
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
}

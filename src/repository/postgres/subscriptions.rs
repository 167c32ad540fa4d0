use chrono::{DateTime, Utc};

use super::read_retrying;

use crate::repository::{
    Fetched, ReadSource, RepositoryError, Subscription, SubscriptionRepository,
};

#[derive(Clone)]
pub struct PgSubscriptionRepository {
    pool: super::Db,
}

impl PgSubscriptionRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        Self { pool: pool.into() }
    }
}

struct SubscriptionRow {
    plan: String,
    status: String,
    current_period_end: Option<DateTime<Utc>>,
}

#[async_trait::async_trait]
impl SubscriptionRepository for PgSubscriptionRepository {
    async fn get(&self, location_id: &str) -> Result<Fetched<Subscription>, RepositoryError> {
        let row: Option<SubscriptionRow> = read_retrying(&self.pool, || {
            sqlx::query_as!(
                SubscriptionRow,
                r#"select plan, status, current_period_end from subscriptions where location_id = $1"#,
                location_id,
            )
            .fetch_optional(&self.pool)
        })
        .await?;
        let subscription = match row {
            Some(row) => Subscription {
                location_id: location_id.to_owned(),
                plan: row.plan,
                status: row.status,
                current_period_end: row.current_period_end,
            },
            None => Subscription::free(location_id),
        };
        Fetched::encode(&subscription, ReadSource::Bypass)
    }

    async fn forget(&self, _location_id: &str) {}
}

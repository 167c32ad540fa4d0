use chrono::{DateTime, Utc};

use crate::repository::{Location, LocationRepository, RepositoryError};

#[derive(Clone)]
pub struct PgLocationRepository {
    pool: super::Db,
    notifier: super::notify::Notifier,
}

impl PgLocationRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        Self {
            pool: pool.into(),
            notifier: super::notify::Notifier::default(),
        }
    }

    /// Sends each write's cache invalidation in its transaction.
    pub fn with_notifier(mut self, notifier: super::notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }
}

struct LocationRow {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    uninstalled_at: Option<DateTime<Utc>>,
}

impl From<LocationRow> for Location {
    fn from(row: LocationRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            uninstalled_at: row.uninstalled_at,
        }
    }
}

#[async_trait::async_trait]
impl LocationRepository for PgLocationRepository {
    async fn create_with_key(
        &self,
        id: &str,
        name: &str,
        key_hash: &[u8],
    ) -> Result<Location, RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query_as!(
            LocationRow,
            r#"insert into locations (id, name) values ($1, $2)
               on conflict (id) do nothing
               returning id, name, created_at, uninstalled_at"#,
            id,
            name,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or(RepositoryError::Conflict("Location"))?;
        sqlx::query!(
            r#"insert into api_keys (location_id, key_hash, label) values ($1, $2, 'initial')"#,
            id,
            key_hash,
        )
        .execute(&mut *tx)
        .await?;
        // A lookup of the new key's hash may be cached as "not found".
        self.notifier
            .notice_with(|cache| vec![crate::repository::cached::api_key_key(cache, key_hash)])
            .send(&mut tx, None)
            .await?;
        tx.commit().await?;
        self.notifier.committed(&mut conn).await;
        Ok(row.into())
    }
}

use uuid::Uuid;

use super::notify::Notifier;
use super::read_retrying;

use crate::repository::cached::api_key_key;
use crate::repository::{ApiKeyOwner, ApiKeyRepository, RepositoryError};

#[derive(Clone)]
pub struct PgApiKeyRepository {
    pool: super::Db,
    /// Owner lookups (the region's replica, or the primary).
    reads: super::Reads,
    notifier: Notifier,
}

impl PgApiKeyRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        let pool: super::Db = pool.into();
        Self {
            reads: super::Reads::from(pool.clone()),
            pool,
            notifier: Notifier::default(),
        }
    }

    /// Looks owners up as `reads` routes them (a region's replica).
    pub fn with_reads(mut self, reads: super::Reads) -> Self {
        self.reads = reads;
        self
    }

    /// Sends each write's cache invalidation in its transaction.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }
}

struct OwnerRow {
    key_id: Uuid,
    location_id: String,
}

#[async_trait::async_trait]
impl ApiKeyRepository for PgApiKeyRepository {
    async fn find_owner(&self, key_hash: &[u8]) -> Result<Option<ApiKeyOwner>, RepositoryError> {
        let row: Option<OwnerRow> = self
            .reads
            .run(|t| {
                read_retrying(t.db, move || {
                    sqlx::query_as!(
                        OwnerRow,
                        r#"select k.id as key_id, k.location_id
                           from api_keys k
                           join locations l on l.id = k.location_id
                           where k.key_hash = $1 and k.revoked_at is null and l.uninstalled_at is null"#,
                        key_hash,
                    )
                    .fetch_optional(t.db)
                })
            })
            .await?;
        Ok(row.map(|row| ApiKeyOwner {
            key_id: row.key_id,
            location_id: row.location_id,
        }))
    }

    async fn create(
        &self,
        location_id: &str,
        key_hash: &[u8],
        label: &str,
    ) -> Result<Uuid, RepositoryError> {
        let exists = sqlx::query_scalar!(
            r#"select exists (select 1 from locations where id = $1) as "exists!""#,
            location_id,
        )
        .fetch_one(&self.pool)
        .await?;
        if !exists {
            return Err(RepositoryError::NotFound("Location"));
        }
        // A lookup of this hash before it existed may be cached as "not found".
        let notice = self
            .notifier
            .notice_with(|cache| vec![api_key_key(cache, key_hash)]);
        let mut conn = super::writable(&self.pool).await?;
        let id = sqlx::query_scalar!(
            r#"with k as (
                   insert into api_keys (location_id, key_hash, label) values ($1, $2, $3)
                   returning id
               )
               select id as "id!" from k, lateral (select cache_notify($4, $5, null)) n"#,
            location_id,
            key_hash,
            label,
            notice.channel.as_deref(),
            notice.payload.as_deref(),
        )
        .fetch_one(conn.conn().await?)
        .await?;
        conn.finish().await?;
        self.notifier.committed(&mut conn).await;
        Ok(id)
    }

    async fn revoke(&self, key_id: Uuid) -> Result<Vec<u8>, RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let mut tx = conn.begin().await?;
        let hash = sqlx::query_scalar!(
            r#"update api_keys set revoked_at = coalesce(revoked_at, now())
               where id = $1 returning key_hash"#,
            key_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let hash = hash.ok_or(RepositoryError::NotFound("API key"))?;
        // The hash is known only now: the notice goes as a statement of its own.
        self.notifier
            .notice_with(|cache| vec![api_key_key(cache, &hash)])
            .send(&mut tx, None)
            .await?;
        tx.commit().await?;
        self.notifier.committed(&mut conn).await;
        Ok(hash)
    }

    async fn forget(&self, _key_hashes: &[Vec<u8>]) {}
}

use uuid::Uuid;

use super::read_retrying;

use crate::repository::{ApiKeyOwner, ApiKeyRepository, RepositoryError};

#[derive(Clone)]
pub struct PgApiKeyRepository {
    pool: super::Db,
}

impl PgApiKeyRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        Self { pool: pool.into() }
    }
}

#[derive(sqlx::FromRow)]
struct OwnerRow {
    key_id: Uuid,
    location_id: String,
}

#[async_trait::async_trait]
impl ApiKeyRepository for PgApiKeyRepository {
    async fn find_owner(&self, key_hash: &[u8]) -> Result<Option<ApiKeyOwner>, RepositoryError> {
        let row: Option<OwnerRow> = read_retrying(&self.pool, || {
            sqlx::query_as(
                r#"select k.id as key_id, k.location_id
                   from api_keys k
                   join locations l on l.id = k.location_id
                   where k.key_hash = $1 and k.revoked_at is null and l.uninstalled_at is null"#,
            )
            .bind(key_hash)
            .fetch_optional(&self.pool)
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
        let exists: bool =
            sqlx::query_scalar(r#"select exists (select 1 from locations where id = $1)"#)
                .bind(location_id)
                .fetch_one(&self.pool)
                .await?;
        if !exists {
            return Err(RepositoryError::NotFound("Location"));
        }
        let mut conn = super::writable(&self.pool).await?;
        let id = sqlx::query_scalar(
            r#"insert into api_keys (location_id, key_hash, label) values ($1, $2, $3) returning id"#,
        )
        .bind(location_id)
        .bind(key_hash)
        .bind(label)
        .fetch_one(conn.conn().await?)
        .await?;
        conn.finish().await?;
        Ok(id)
    }

    async fn revoke(&self, key_id: Uuid) -> Result<Vec<u8>, RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let hash: Option<Vec<u8>> = sqlx::query_scalar(
            r#"update api_keys set revoked_at = coalesce(revoked_at, now())
               where id = $1 returning key_hash"#,
        )
        .bind(key_id)
        .fetch_optional(conn.conn().await?)
        .await?;
        conn.finish().await?;
        hash.ok_or(RepositoryError::NotFound("API key"))
    }

    async fn forget(&self, _key_hashes: &[Vec<u8>]) {}
}

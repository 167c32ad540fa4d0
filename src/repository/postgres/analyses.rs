use chrono::{DateTime, Utc};

use crate::repository::{
    AnalysisRepository, HistoryEntry, HistoryPage, NewAnalysis, RepositoryError,
};

#[derive(Clone)]
pub struct PgAnalysisRepository {
    pool: super::Db,
}

impl PgAnalysisRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        Self { pool: pool.into() }
    }
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    id: i64,
    workflow_id: String,
    workflow_version: i64,
    rules_version: String,
    health_score: i16,
    issues_found: i32,
    created_at: DateTime<Utc>,
    total: i64,
}

#[async_trait::async_trait]
impl AnalysisRepository for PgAnalysisRepository {
    async fn record(
        &self,
        location_id: &str,
        analysis: &NewAnalysis<'_>,
    ) -> Result<(), RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        sqlx::query(
            r#"insert into analyses
                   (location_id, workflow_id, workflow_version, rules_version, health_score, issues_found, result)
               values ($1, $2, $3, $4, $5, $6, $7)
               on conflict (location_id, workflow_id, workflow_version, rules_version) do nothing"#,
        )
        .bind(location_id)
        .bind(analysis.workflow_id)
        .bind(analysis.workflow_version)
        .bind(analysis.rules_version)
        .bind(analysis.health_score)
        .bind(analysis.issues_found)
        .bind(sqlx::types::Json(analysis.result))
        .execute(conn.conn().await?)
        .await?;
        conn.finish().await?;
        Ok(())
    }

    async fn history(
        &self,
        location_id: &str,
        since: DateTime<Utc>,
        offset: i64,
        limit: i64,
    ) -> Result<HistoryPage, RepositoryError> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            r#"select id, workflow_id, workflow_version, rules_version, health_score, issues_found,
                      created_at, count(*) over () as total
               from analyses
               where location_id = $1 and created_at >= $2
               order by created_at desc, id desc
               offset $3 limit $4"#,
        )
        .bind(location_id)
        .bind(since)
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let total = match rows.first() {
            Some(row) => row.total,
            None => self.count(location_id, since).await?,
        };
        let entries = rows
            .into_iter()
            .map(|row| HistoryEntry {
                id: row.id,
                workflow_id: row.workflow_id,
                workflow_version: row.workflow_version,
                rules_version: row.rules_version,
                health_score: row.health_score,
                issues_found: row.issues_found,
                created_at: row.created_at,
            })
            .collect();
        Ok(HistoryPage { entries, total })
    }
}

impl PgAnalysisRepository {
    /// The total when the requested page is past the end (no row carries it).
    async fn count(&self, location_id: &str, since: DateTime<Utc>) -> Result<i64, RepositoryError> {
        Ok(sqlx::query_scalar(
            r#"select count(*) from analyses where location_id = $1 and created_at >= $2"#,
        )
        .bind(location_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }
}

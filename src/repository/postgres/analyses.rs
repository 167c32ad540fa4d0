use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::domain::overview::{AnalysisStatus, OverviewRow, RowAnalysis};
use crate::repository::{
    AnalysisRepository, HistoryEntry, HistoryPage, NewAnalysis, RepositoryError,
};

#[derive(Clone)]
pub struct PgAnalysisRepository {
    pool: super::Db,
    /// History pages (the region's replica, or the primary).
    reads: super::Reads,
}

impl PgAnalysisRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        let pool: super::Db = pool.into();
        Self {
            reads: super::Reads::from(pool.clone()),
            pool,
        }
    }

    /// Reads history as `reads` routes them (a region's replica).
    pub fn with_reads(mut self, reads: super::Reads) -> Self {
        self.reads = reads;
        self
    }
}

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

/// A workflow and the head of its current version's recorded analysis, if any.
struct OverviewRecord {
    id: String,
    name: String,
    status: String,
    version: i64,
    step_count: i32,
    trigger_count: i32,
    updated_at: DateTime<Utc>,
    analysis: Option<Json<RowAnalysis>>,
}

#[async_trait::async_trait]
impl AnalysisRepository for PgAnalysisRepository {
    async fn overview_rows(
        &self,
        location_id: &str,
        rules_version: &str,
    ) -> Result<Vec<OverviewRow>, RepositoryError> {
        // The unique (location, workflow, version, rules version) index answers the join;
        // only the head of each report is read, not its issues. On the primary, never a
        // replica: reads record analyses (on the primary) and then drop the overview, whose
        // next load must see them, or it would show them pending and compute them again.
        let records: Vec<OverviewRecord> = super::read_retrying(&self.pool, || {
            sqlx::query_as!(
                OverviewRecord,
                r#"select w.id, w.name, w.status, w.version, w.step_count, w.trigger_count,
                          w.updated_at,
                          case when a.id is null then null else jsonb_build_object(
                              'healthScore', a.result -> 'healthScore',
                              'grade', a.result -> 'grade',
                              'issuesSummary', a.result -> 'issuesSummary',
                              'rulesVersion', a.rules_version,
                              'analyzedAt', a.result -> 'analyzedAt') end
                          as "analysis: Json<RowAnalysis>"
                   from workflows w
                   left join analyses a
                     on a.location_id = w.location_id and a.workflow_id = w.id
                    and a.workflow_version = w.version and a.rules_version = $2
                   where w.location_id = $1
                   order by w.updated_at desc, w.id"#,
                location_id,
                rules_version,
            )
            .fetch_all(&self.pool)
        })
        .await?;
        Ok(records
            .into_iter()
            .map(|record| {
                let analysis = record.analysis.map(|json| json.0);
                OverviewRow {
                    id: record.id,
                    name: record.name,
                    status: record.status,
                    version: record.version,
                    step_count: record.step_count,
                    trigger_count: record.trigger_count,
                    updated_at: record.updated_at,
                    analysis_status: if analysis.is_some() {
                        AnalysisStatus::Done
                    } else {
                        AnalysisStatus::Pending
                    },
                    analysis,
                }
            })
            .collect())
    }

    async fn record(
        &self,
        location_id: &str,
        analysis: &NewAnalysis<'_>,
    ) -> Result<Option<serde_json::Value>, RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let inserted = sqlx::query_scalar!(
            r#"insert into analyses
                   (location_id, workflow_id, workflow_version, rules_version, health_score, issues_found, result)
               values ($1, $2, $3, $4, $5, $6, $7)
               on conflict (location_id, workflow_id, workflow_version, rules_version) do nothing
               returning id"#,
            location_id,
            analysis.workflow_id,
            analysis.workflow_version,
            analysis.rules_version,
            analysis.health_score,
            analysis.issues_found,
            analysis.result,
        )
        .fetch_optional(conn.conn().await?)
        .await?;
        if inserted.is_some() {
            conn.finish().await?;
            return Ok(None);
        }
        // Analyzed again (its cached copy expired): the first record stands.
        let recorded = sqlx::query_scalar!(
            r#"select result from analyses
               where location_id = $1 and workflow_id = $2 and workflow_version = $3
                 and rules_version = $4"#,
            location_id,
            analysis.workflow_id,
            analysis.workflow_version,
            analysis.rules_version,
        )
        .fetch_optional(conn.conn().await?)
        .await?;
        conn.finish().await?;
        Ok(recorded)
    }

    async fn history(
        &self,
        location_id: &str,
        since: DateTime<Utc>,
        offset: i64,
        limit: i64,
    ) -> Result<HistoryPage, RepositoryError> {
        let rows = self
            .reads
            .run(|t| {
                sqlx::query_as!(
                    HistoryRow,
                    r#"select id, workflow_id, workflow_version, rules_version, health_score,
                              issues_found, created_at, count(*) over () as "total!"
                       from analyses
                       where location_id = $1 and created_at >= $2
                       order by created_at desc, id desc
                       offset $3 limit $4"#,
                    location_id,
                    since,
                    offset,
                    limit,
                )
                .fetch_all(t.db)
            })
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
        Ok(self
            .reads
            .run(|t| {
                sqlx::query_scalar!(
                    r#"select count(*) as "count!" from analyses where location_id = $1 and created_at >= $2"#,
                    location_id,
                    since,
                )
                .fetch_one(t.db)
            })
            .await?)
    }
}

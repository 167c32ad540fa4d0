use sqlx::PgPool;

use super::{connection_was_lost, read_retrying, retrying};

use crate::repository::postgres::database::{hot_connection, HotReads};

use crate::repository::{
    Fetched, NewWorkflow, PutOutcome, ReadSource, RepositoryError, StoredWorkflow,
    WorkflowRepository, WorkflowSummary,
};

#[derive(Clone)]
pub struct PgWorkflowRepository {
    pool: PgPool,
    /// When set, [`WorkflowRepository::get`] (every cache miss) runs on these instead of the pool.
    hot: Option<HotReads>,
}

impl PgWorkflowRepository {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, hot: None }
    }

    pub fn with_hot_reads(mut self, hot: Option<HotReads>) -> Self {
        self.hot = hot;
        self
    }
}

/// One attempt at `GET_SQL` on a dedicated connection. The connection is reused only when
/// the statement completed (a row, no row, or an error Postgres answered); one that was lost,
/// or whose statement was dropped mid-way, stays marked and the pool discards it.
async fn hot_get(
    hot: &HotReads,
    location_id: &str,
    id: &str,
) -> Result<Option<RawWorkflowRow>, sqlx::Error> {
    let mut conn = hot_connection(hot).await?;
    conn.in_statement = true;
    let result = sqlx::query_as(GET_SQL)
        .bind(location_id)
        .bind(id)
        .fetch_optional(&mut conn.conn)
        .await;
    conn.in_statement = match &result {
        Ok(_) => false,
        Err(error @ sqlx::Error::Database(_)) => connection_was_lost(error),
        Err(_) => true,
    };
    result
}

/// A workflow row, and whether the write that returned it inserted it.
#[derive(sqlx::FromRow)]
struct WorkflowRow<D = serde_json::Value> {
    #[sqlx(flatten)]
    workflow: StoredWorkflow<D>,
    inserted: Option<bool>,
}

/// A read only passes the definition on: kept as the JSON text Postgres sent, not parsed into
/// a tree and written out again (that was ~8 % of the miss path).
type RawWorkflowRow = WorkflowRow<Box<serde_json::value::RawValue>>;

const GET_SQL: &str = r#"
    select id, name, status, version, step_count, trigger_count, created_at, updated_at,
           definition, null::bool as inserted
    from workflows
    where location_id = $1 and id = $2"#;

/// Creates version 1 or replaces with version + 1; `xmax = 0` tells an insert from an update.
const UPSERT_SQL: &str = r#"
    insert into workflows
        (location_id, id, name, status, version, definition, step_count, trigger_count)
    values ($1, $2, $3, $4, 1, $5, $6, $7)
    on conflict (location_id, id) do update
    set name = excluded.name, status = excluded.status, definition = excluded.definition,
        step_count = excluded.step_count, trigger_count = excluded.trigger_count,
        version = workflows.version + 1, updated_at = now()
    returning id, name, status, version, step_count, trigger_count, created_at, updated_at,
              definition, (xmax = 0) as inserted"#;

/// Replaces only when the stored version is the one the client saw (`If-Match`).
const CONDITIONAL_UPDATE_SQL: &str = r#"
    update workflows
    set name = $3, status = $4, definition = $5, step_count = $6, trigger_count = $7,
        version = version + 1, updated_at = now()
    where location_id = $1 and id = $2 and version = $8
    returning id, name, status, version, step_count, trigger_count, created_at, updated_at,
              definition, false as inserted"#;

#[async_trait::async_trait]
impl WorkflowRepository for PgWorkflowRepository {
    async fn list(
        &self,
        location_id: &str,
    ) -> Result<Fetched<Vec<WorkflowSummary>>, RepositoryError> {
        let summaries: Vec<WorkflowSummary> = read_retrying(&self.pool, || {
            sqlx::query_as(
                r#"select id, name, status, version, step_count, trigger_count, updated_at
                   from workflows
                   where location_id = $1
                   order by updated_at desc, id"#,
            )
            .bind(location_id)
            .fetch_all(&self.pool)
        })
        .await?;
        Fetched::encode(&summaries, ReadSource::Bypass)
    }

    async fn get(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Fetched<StoredWorkflow>, RepositoryError> {
        let row: Option<RawWorkflowRow> = match &self.hot {
            // Every dedicated connection may have been lost at once: one more attempt than
            // there are reaches a new one.
            Some(hot) => {
                let attempts = hot.state().connections.max(1) + 1;
                retrying(attempts, || hot_get(hot, location_id, id)).await?
            }
            None => {
                read_retrying(&self.pool, || {
                    sqlx::query_as(GET_SQL)
                        .bind(location_id)
                        .bind(id)
                        .fetch_optional(&self.pool)
                })
                .await?
            }
        };
        let workflow = row.ok_or(RepositoryError::NotFound("Workflow"))?.workflow;
        Ok(Fetched::from_json(
            serde_json::to_vec(&workflow)?.into(),
            ReadSource::Bypass,
        ))
    }

    async fn put(
        &self,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
        if_match: Option<i64>,
    ) -> Result<PutOutcome, RepositoryError> {
        let sql = if if_match.is_some() {
            CONDITIONAL_UPDATE_SQL
        } else {
            UPSERT_SQL
        };
        let query = sqlx::query_as::<_, WorkflowRow>(sql)
            .bind(location_id)
            .bind(id)
            .bind(&workflow.name)
            .bind(workflow.status)
            .bind(sqlx::types::Json(&workflow.definition))
            .bind(workflow.step_count)
            .bind(workflow.trigger_count);
        let query = match if_match {
            Some(expected) => query.bind(expected),
            None => query,
        };
        let mut conn = super::writable(&self.pool).await?;
        let row = query.fetch_optional(&mut *conn).await?;
        drop(conn);
        match row {
            Some(row) if row.inserted == Some(true) => Ok(PutOutcome::Created(row.workflow)),
            Some(row) => Ok(PutOutcome::Replaced(row.workflow)),
            None => Err(RepositoryError::PreconditionFailed {
                current: self.current_version(location_id, id).await?,
            }),
        }
    }

    async fn delete(&self, location_id: &str, id: &str) -> Result<(), RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let deleted = sqlx::query(r#"delete from workflows where location_id = $1 and id = $2"#)
            .bind(location_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(RepositoryError::NotFound("Workflow"));
        }
        Ok(())
    }

    async fn forget(&self, _location_id: &str, _id: &str) {}

    async fn definitions(
        &self,
        location_id: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, RepositoryError> {
        let rows: Vec<(String, sqlx::types::Json<serde_json::Value>)> = sqlx::query_as(
            r#"select id, definition from workflows where location_id = $1 order by id"#,
        )
        .bind(location_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, definition)| (id, definition.0))
            .collect())
    }
}

impl PgWorkflowRepository {
    /// The most recently updated workflows of every location (cache warming).
    pub async fn recently_updated(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, StoredWorkflow)>, RepositoryError> {
        let rows: Vec<(String, sqlx::types::Json<StoredWorkflow>)> = sqlx::query_as(
            r#"select location_id,
                      json_build_object(
                          'id', id, 'name', name, 'status', status, 'version', version,
                          'stepCount', step_count, 'triggerCount', trigger_count,
                          'createdAt', created_at, 'updatedAt', updated_at, 'definition', definition)
               from workflows
               order by updated_at desc
               limit $1"#,
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(location, workflow)| (location, workflow.0))
            .collect())
    }

    async fn current_version(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Option<i64>, RepositoryError> {
        Ok(sqlx::query_scalar(
            r#"select version from workflows where location_id = $1 and id = $2"#,
        )
        .bind(location_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

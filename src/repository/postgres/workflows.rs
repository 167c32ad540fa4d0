use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde_json::value::RawValue;
use sqlx::types::Json;

use super::notify::Notifier;
use super::replica::Reads;
use super::{connection_was_lost, read_retrying, retrying};

use crate::repository::postgres::database::{hot_connection, HotReads};

use crate::repository::cached::workflow_keys;
use crate::repository::{
    Fetched, IfMatch, ImportState, LocationRow, NewWorkflow, PutOutcome, ReadSource,
    RepositoryError, StoredWorkflow, WorkflowRepository, WorkflowSummary,
};

#[derive(Clone)]
pub struct PgWorkflowRepository {
    pool: super::Db,
    /// Where reads go (the region's replica or the primary); [`WorkflowRepository::get`]
    /// (every cache miss) runs on the target's dedicated connections when it has them.
    reads: Reads,
    /// Workflows a location may have; creating one more is refused (`MAX_WORKFLOWS_PER_LOCATION`).
    max_per_location: u32,
    /// Sends each write's cache invalidation in its transaction.
    notifier: Notifier,
}

impl PgWorkflowRepository {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        let pool: super::Db = pool.into();
        Self {
            reads: Reads::from(pool.clone()),
            pool,
            max_per_location: crate::config::DEFAULT_MAX_WORKFLOWS_PER_LOCATION,
            notifier: Notifier::default(),
        }
    }

    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    fn notice(&self, location_id: &str, id: &str) -> super::notify::Notice {
        self.notifier
            .notice_with(|cache| workflow_keys(cache, location_id, id))
    }

    pub fn with_max_per_location(mut self, max: u32) -> Self {
        self.max_per_location = max;
        self
    }

    /// Dedicated connections to the primary for reads by id.
    pub fn with_hot_reads(mut self, hot: Option<HotReads>) -> Self {
        self.reads = Reads::primary(self.pool.clone(), hot);
        self
    }

    /// Reads as `reads` routes them (a region's replica).
    pub fn with_reads(mut self, reads: Reads) -> Self {
        self.reads = reads;
        self
    }
}

/// A workflow row, and whether the write that returned it inserted it (`None`: a read).
struct WorkflowRow<D> {
    id: String,
    name: String,
    status: String,
    version: i64,
    step_count: i32,
    trigger_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    source_version: Option<i64>,
    source_format: Option<String>,
    definition: Json<D>,
    inserted: Option<bool>,
}

impl<D> WorkflowRow<D> {
    fn workflow(self) -> StoredWorkflow<D> {
        StoredWorkflow {
            id: self.id,
            name: self.name,
            status: self.status,
            version: self.version,
            step_count: self.step_count,
            trigger_count: self.trigger_count,
            created_at: self.created_at,
            updated_at: self.updated_at,
            source_version: self.source_version,
            source_format: self.source_format,
            definition: self.definition.0,
        }
    }
}

/// What a write returns: the definition parsed.
type WrittenRow = WorkflowRow<serde_json::Value>;

/// A read only passes the definition on: kept as the JSON text Postgres sent, not parsed into
/// a tree and written out again (that was ~8 % of the miss path).
type RawWorkflowRow = WorkflowRow<Box<RawValue>>;

/// A workflow by id (every cache miss), on a pool or on a dedicated connection: one
/// statement text for both, so one entry in `.sqlx/`.
macro_rules! get_workflow {
    ($location_id:expr, $id:expr) => {
        sqlx::query_as!(
            RawWorkflowRow,
            r#"select id, name, status, version, step_count, trigger_count, created_at,
                      updated_at, source_version,
                      case when source_json is not null then 'ghl' end as source_format,
                      definition as "definition: Json<Box<RawValue>>",
                      null::bool as inserted
               from workflows
               where location_id = $1 and id = $2"#,
            $location_id,
            $id,
        )
    };
}

/// One attempt at [`get_workflow!`] on a dedicated connection. The connection is reused only
/// when the statement completed (a row, no row, or an error Postgres answered); one that was
/// lost, or whose statement was dropped mid-way, stays marked and the pool discards it.
async fn hot_get(
    hot: &HotReads,
    location_id: &str,
    id: &str,
) -> Result<Option<RawWorkflowRow>, sqlx::Error> {
    let mut conn = hot_connection(hot).await?;
    conn.in_statement = true;
    let result = get_workflow!(location_id, id)
        .fetch_optional(&mut conn.conn)
        .await;
    conn.in_statement = match &result {
        Ok(_) => false,
        Err(error @ sqlx::Error::Database(_)) => connection_was_lost(error),
        Err(_) => true,
    };
    result
}

/// Tombstones (last versions of deleted workflows) a location keeps: the newest ones by
/// deletion. Past them, a tenant creating and deleting fresh ids would grow the table without
/// end. A re-created workflow whose tombstone was pruned still starts after every analyzed
/// version of its predecessor (its creation reads `analyses` too), so no cached analysis or
/// history row is answered for it; only a client's ETag of a workflow deleted this many
/// deletions ago could match again.
pub const TOMBSTONES_PER_LOCATION: i64 = 10_000;

/// Most tombstones one delete prunes, so the statement stays short after an operator's bulk
/// delete; each delete adds at most one.
const TOMBSTONES_PRUNED_PER_DELETE: i64 = 100;

/// Drops the location's tombstones past its newest [`TOMBSTONES_PER_LOCATION`] (at most
/// [`TOMBSTONES_PRUNED_PER_DELETE`]): after each delete (of the API or of a webhook).
pub(super) async fn prune_tombstones(
    conn: &mut sqlx::PgConnection,
    location_id: &str,
) -> Result<u64, sqlx::Error> {
    let pruned = sqlx::query!(
        r#"delete from workflow_tombstones
           where location_id = $1 and workflow_id in (
               select workflow_id from workflow_tombstones
               where location_id = $1
               order by deleted_at desc, workflow_id desc
               offset $2 limit $3)"#,
        location_id,
        TOMBSTONES_PER_LOCATION,
        TOMBSTONES_PRUNED_PER_DELETE,
    )
    .execute(conn)
    .await?;
    Ok(pruned.rows_affected())
}

/// The source columns' values of a write (both null for a §7 document).
fn source_of(workflow: &NewWorkflow) -> (Option<&str>, Option<i64>) {
    match &workflow.source {
        Some(source) => (Some(source.json.as_str()), source.version),
        None => (None, None),
    }
}

#[async_trait::async_trait]
impl WorkflowRepository for PgWorkflowRepository {
    async fn list(
        &self,
        location_id: &str,
    ) -> Result<Fetched<Vec<WorkflowSummary>>, RepositoryError> {
        let summaries: Vec<WorkflowSummary> = self
            .reads
            .run(|t| {
                read_retrying(t.db, move || {
                    sqlx::query_as!(
                        WorkflowSummary,
                        r#"select id, name, status, version, step_count, trigger_count, updated_at
                           from workflows
                           where location_id = $1
                           order by updated_at desc, id"#,
                        location_id,
                    )
                    .fetch_all(t.db)
                })
            })
            .await?;
        Fetched::encode(&summaries, ReadSource::Bypass)
    }

    async fn get(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Fetched<StoredWorkflow>, RepositoryError> {
        let row: Option<RawWorkflowRow> = self
            .reads
            .run(|t| async move {
                match t.hot {
                    // Every dedicated connection may have been lost at once: one more attempt
                    // than there are reaches a new one.
                    Some(hot) => {
                        let attempts = hot.state().connections.max(1) + 1;
                        retrying(attempts, || hot_get(hot, location_id, id)).await
                    }
                    None => {
                        read_retrying(t.db, || get_workflow!(location_id, id).fetch_optional(t.db))
                            .await
                    }
                }
            })
            .await?;
        let workflow = row.ok_or(RepositoryError::NotFound("Workflow"))?.workflow();
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
        if_match: Option<IfMatch>,
    ) -> Result<PutOutcome, RepositoryError> {
        let notice = self.notice(location_id, id);
        let mut conn = super::writable(&self.pool).await?;
        let replaced = Self::replace_row(
            conn.conn().await?,
            location_id,
            id,
            workflow,
            if_match,
            &notice,
        )
        .await?;
        conn.finish().await?;
        if let Some(row) = replaced {
            self.notifier.committed(&mut conn).await;
            return Ok(PutOutcome::Replaced(row.workflow()));
        }
        if if_match.is_some() {
            drop(conn);
            return Err(RepositoryError::PreconditionFailed {
                current: self.current_version(location_id, id).await?,
            });
        }
        self.create(conn, location_id, id, workflow, &notice).await
    }

    async fn delete(&self, location_id: &str, id: &str) -> Result<(), RepositoryError> {
        let notice = self.notice(location_id, id);
        let mut conn = super::writable(&self.pool).await?;
        // Deletes, sending the cache's notice (`$3`, `$4`) with the deleted version in the
        // same statement.
        let deleted = sqlx::query_scalar!(
            r#"with d as (delete from workflows where location_id = $1 and id = $2 returning version)
               select cache_notify($3, $4, d.version) from d"#,
            location_id,
            id,
            notice.channel.as_deref(),
            notice.payload.as_deref(),
        )
        .fetch_optional(conn.conn().await?)
        .await?;
        conn.finish().await?;
        if deleted.is_none() {
            return Err(RepositoryError::NotFound("Workflow"));
        }
        self.notifier.committed(&mut conn).await;
        // Housekeeping, in a statement of its own: the delete stands whether or not its
        // location's old tombstones go.
        let pruned = match conn.conn().await {
            Ok(db) => prune_tombstones(db, location_id).await,
            Err(error) => Err(error),
        };
        if let Err(error) = pruned.and(conn.finish().await) {
            log::warn!("old workflow tombstones of a location were not pruned: {error}");
        }
        Ok(())
    }

    async fn forget(&self, _location_id: &str, _id: &str) {}

    async fn import_state(
        &self,
        location_id: &str,
        id: &str,
        source: &str,
    ) -> Result<Option<ImportState>, RepositoryError> {
        // Is the stored original the one being imported, and at which source version is it.
        let row = read_retrying(&self.pool, || {
            sqlx::query!(
                r#"select version, source_version,
                          coalesce(source_json = $3, false) as "same_source!"
                   from workflows
                   where location_id = $1 and id = $2"#,
                location_id,
                id,
                source,
            )
            .fetch_optional(&self.pool)
        })
        .await?;
        Ok(row.map(|row| ImportState {
            version: row.version,
            source_version: row.source_version,
            same_source: row.same_source,
        }))
    }

    async fn original(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<(Option<bytes::Bytes>, ReadSource), RepositoryError> {
        // A null `source_json`: the workflow was not imported.
        let row: Option<Option<String>> = read_retrying(&self.pool, || {
            sqlx::query_scalar!(
                r#"select source_json from workflows where location_id = $1 and id = $2"#,
                location_id,
                id,
            )
            .fetch_optional(&self.pool)
        })
        .await?;
        let original = row.ok_or(RepositoryError::NotFound("Workflow"))?;
        Ok((original.map(bytes::Bytes::from), ReadSource::Bypass))
    }

    async fn location_workflows(
        &self,
        location_id: &str,
        with_definition: usize,
        rows: &tokio::sync::mpsc::Sender<LocationRow>,
    ) -> Result<(), RepositoryError> {
        let with_definition = i64::try_from(with_definition).unwrap_or(i64::MAX);
        self.reads
            .run(|t| async move {
                if rows.send(LocationRow::Restart).await.is_err() {
                    return Ok(());
                }
                // Past the first `$2`, Postgres reads (and sends) no definition at all.
                let mut stream = sqlx::query!(
                    r#"select id, status = 'published' as "published!",
                              case when row_number() over (order by id) <= $2 then definition
                              end as definition
                       from workflows
                       where location_id = $1
                       order by id"#,
                    location_id,
                    with_definition,
                )
                .fetch(t.db);
                while let Some(row) = stream.try_next().await? {
                    let row = LocationRow::Workflow {
                        id: row.id,
                        published: row.published,
                        definition: row.definition,
                    };
                    if rows.send(row).await.is_err() {
                        break;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

impl PgWorkflowRepository {
    /// The most recently updated workflows of every location (cache warming).
    pub async fn recently_updated(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, StoredWorkflow)>, RepositoryError> {
        let rows = sqlx::query!(
            r#"select location_id,
                      json_build_object(
                          'id', id, 'name', name, 'status', status, 'version', version,
                          'stepCount', step_count, 'triggerCount', trigger_count,
                          'createdAt', created_at, 'updatedAt', updated_at,
                          'sourceVersion', source_version,
                          'sourceFormat', case when source_json is not null then 'ghl' end,
                          'definition', definition)
                      as "workflow!: Json<StoredWorkflow>"
               from workflows
               order by updated_at desc
               limit $1"#,
            limit,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.location_id, row.workflow.0))
            .collect())
    }

    async fn current_version(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Option<i64>, RepositoryError> {
        Ok(sqlx::query_scalar!(
            r#"select version from workflows where location_id = $1 and id = $2"#,
            location_id,
            id,
        )
        .fetch_optional(&self.pool)
        .await?)
    }
}

/// The steps of [`WorkflowRepository::put`].
impl PgWorkflowRepository {
    /// A creation (rare next to replacements) pays for its transaction and lock.
    async fn create(
        &self,
        mut conn: super::pooled::Writable,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
        notice: &super::notify::Notice,
    ) -> Result<PutOutcome, RepositoryError> {
        let mut tx = conn.begin().await?;
        Self::lock_location(&mut tx, location_id).await?;
        let Some(row) = self.insert_row(&mut tx, location_id, id, workflow).await? else {
            return Err(RepositoryError::WorkflowLimit {
                limit: self.max_per_location,
            });
        };
        notice.send(&mut tx, Some(row.version)).await?;
        tx.commit().await?;
        self.notifier.committed(&mut conn).await;
        let inserted = row.inserted == Some(true);
        let workflow = row.workflow();
        Ok(if inserted {
            PutOutcome::Created(workflow)
        } else {
            PutOutcome::Replaced(workflow)
        })
    }

    /// Creates the workflow after the last version of any deleted predecessor (the
    /// tombstone the delete trigger wrote; see the `workflow_tombstones` migration) and
    /// after any analysis still kept of it (its tombstone may have been pruned), while
    /// the location has fewer than `$8` workflows. No row back: the limit is reached.
    /// Should the id have been created meanwhile, it is replaced instead, and its version
    /// still only goes up. `$9`, `$10`: the GoHighLevel original and its version, as in
    /// [`Self::replace_row`].
    async fn insert_row(
        &self,
        conn: &mut sqlx::PgConnection,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
    ) -> Result<Option<WrittenRow>, sqlx::Error> {
        let (source_json, source_version) = source_of(workflow);
        let row = sqlx::query_as!(
            WrittenRow,
            r#"with tombstone as (
                   delete from workflow_tombstones where location_id = $1 and workflow_id = $2
                   returning last_version
               )
               insert into workflows
                   (location_id, id, name, status, version, definition, step_count, trigger_count,
                    source_json, source_version)
               select $1, $2, $3, $4,
                      greatest((select last_version from tombstone),
                               (select max(workflow_version) from analyses
                                where location_id = $1 and workflow_id = $2), 0) + 1, $5,
                      $6, $7, $9, $10
               where exists (select 1 from workflows where location_id = $1 and id = $2)
                  or (select count(*) from workflows where location_id = $1) < $8
               on conflict (location_id, id) do update
               set name = excluded.name, status = excluded.status,
                   definition = excluded.definition, step_count = excluded.step_count,
                   trigger_count = excluded.trigger_count, source_json = excluded.source_json,
                   source_version = excluded.source_version,
                   version = greatest(workflows.version, excluded.version - 1) + 1,
                   updated_at = now()
               returning id, name, status, version, step_count, trigger_count, created_at,
                         updated_at, source_version,
                         case when source_json is not null then 'ghl' end as source_format,
                         definition, (xmax = 0) as inserted"#,
            location_id,
            id,
            &workflow.name,
            workflow.status,
            &workflow.definition,
            workflow.step_count,
            workflow.trigger_count,
            i64::from(self.max_per_location),
            source_json,
            source_version,
        )
        .fetch_optional(conn)
        .await?;
        Ok(row)
    }

    /// Creations of one location take turns on its row, so the count the insert below
    /// checks cannot be overtaken by a concurrent creation (`no key update` leaves the
    /// foreign-key checks of other writes unblocked).
    async fn lock_location(
        conn: &mut sqlx::PgConnection,
        location_id: &str,
    ) -> Result<(), RepositoryError> {
        let location = sqlx::query_scalar!(
            r#"select 1 as "locked!" from locations where id = $1 for no key update"#,
            location_id,
        )
        .fetch_optional(conn)
        .await?;
        if location.is_none() {
            return Err(RepositoryError::NotFound("Location"));
        }
        Ok(())
    }

    /// Replaces a stored workflow: version + 1; with `$8` (`If-Match`), only when the stored
    /// version is the one the client saw (`If-Match: *` binds none: any version is
    /// replaced). The cache's notice (`$9`, `$10`, see `cache_notify`) goes in the same
    /// statement, so in the same transaction, at no extra round trip. `$11`, `$12`: the
    /// GoHighLevel original and its version (null for a §7 document: a PUT over an
    /// imported workflow drops what no longer describes it). The CTE's columns are not
    /// null whenever it returns a row (`!`).
    async fn replace_row(
        conn: &mut sqlx::PgConnection,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
        if_match: Option<IfMatch>,
        notice: &super::notify::Notice,
    ) -> Result<Option<WrittenRow>, sqlx::Error> {
        let (source_json, source_version) = source_of(workflow);
        let replace = sqlx::query!(
            r#"with w as (
                   update workflows
                   set name = $3, status = $4, definition = $5, step_count = $6,
                       trigger_count = $7, source_json = $11, source_version = $12,
                       version = version + 1, updated_at = now()
                   where location_id = $1 and id = $2 and ($8::bigint is null or version = $8)
                   returning id, name, status, version, step_count, trigger_count, created_at,
                             updated_at, source_version,
                             case when source_json is not null then 'ghl' end as source_format,
                             definition
               )
               select w.id as "id!", w.name as "name!", w.status as "status!",
                      w.version as "version!", w.step_count as "step_count!",
                      w.trigger_count as "trigger_count!", w.created_at as "created_at!",
                      w.updated_at as "updated_at!", w.source_version, w.source_format,
                      w.definition as "definition!",
                      cache_notify($9, $10, w.version) as notified
               from w"#,
            location_id,
            id,
            &workflow.name,
            workflow.status,
            &workflow.definition,
            workflow.step_count,
            workflow.trigger_count,
            if_match.and_then(IfMatch::version),
            notice.channel.as_deref(),
            notice.payload.as_deref(),
            source_json,
            source_version,
        )
        .map(|r| WrittenRow {
            id: r.id,
            name: r.name,
            status: r.status,
            version: r.version,
            step_count: r.step_count,
            trigger_count: r.trigger_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
            source_version: r.source_version,
            source_format: r.source_format,
            definition: Json(r.definition),
            inserted: Some(false),
        });
        replace.fetch_optional(conn).await
    }
}

//! Statements that survive a transaction-mode pooler (PgBouncer, Supavisor).
//!
//! Such a pooler hands this process's connection a server session per *transaction*: between
//! two transactions the session may change. sqlx runs a statement with arguments in two
//! round trips (parse, then bind and execute), each ending in a Sync after which a pooler may
//! switch sessions, and it keeps named prepared statements for the connection's lifetime. So
//! in pooler mode ([`Db`] built with [`PoolerMode::Transaction`]) every statement runs inside
//! an explicit transaction, which pins one server session from parse to commit, and that
//! transaction starts with the session state this service relies on:
//! `SET LOCAL statement_timeout` (startup `options` do not pass a pooler) and
//! `DEALLOCATE ALL` (the statements an earlier transaction of any client left on that session:
//! with the statement cache off, sqlx names statements per connection, so names would
//! collide). Directly connected, [`Db`] is the pool itself: nothing changes.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgQueryResult, PgRow, PgTypeInfo};
use sqlx::{Connection as _, Either, Execute, Executor, PgConnection, PgPool, Postgres};

use crate::config::{DatabaseSettings, PoolerMode};

/// The pool, and how a transaction starts when it is behind a transaction-mode pooler.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    /// `Some` in pooler mode: the statement that opens every transaction.
    begin: Option<Arc<str>>,
}

impl Db {
    pub fn new(pool: PgPool, settings: &DatabaseSettings) -> Db {
        // Runtime SQL, not a `query!`: the timeout is part of the text (`SET` takes no
        // parameters) and it is three statements, which only the simple query protocol runs
        // (`execute(&str)`, `begin_with`): no prepared statement, nothing for the macros to
        // describe.
        let begin = (settings.pooler == PoolerMode::Transaction).then(|| {
            format!(
                "BEGIN; SET LOCAL statement_timeout = {}; DEALLOCATE ALL",
                settings.statement_timeout.as_millis()
            )
            .into()
        });
        Db { pool, begin }
    }

    /// A pool known to reach Postgres directly, never through a pooler (unit tests). There
    /// is deliberately no `From<PgPool>`: a repository built from a bare pool would silently
    /// skip pooler mode (startup's cache warming and the CLI once did); anything built from
    /// settings goes through [`Db::new`].
    pub fn direct(pool: PgPool) -> Db {
        Db { pool, begin: None }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn is_pooled(&self) -> bool {
        self.begin.is_some()
    }
}

impl std::ops::Deref for Db {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let Some(begin) = self.begin.clone() else {
            return (&self.pool).fetch_many(query);
        };
        let pool = self.pool.clone();
        // The rows are collected before the commit: a stream cannot outlive its transaction.
        let rows = async move {
            let mut conn = pool.acquire().await?;
            let mut tx = (*conn).begin_with(begin.to_string()).await?;
            let rows = (&mut *tx).fetch_many(query).try_collect::<Vec<_>>().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        };
        Box::pin(
            futures::stream::once(rows)
                .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok)))
                .try_flatten(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let Some(begin) = self.begin.clone() else {
            return (&self.pool).fetch_optional(query);
        };
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let mut tx = (*conn).begin_with(begin.to_string()).await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<sqlx::postgres::PgStatement<'q>, sqlx::Error>> {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>> {
        (&self.pool).describe(sql)
    }
}

/// A connection checked out for a write (see `writable`). Statements go through
/// [`Writable::conn`] and end with [`Writable::finish`], or run in [`Writable::begin`]'s
/// transaction; in pooler mode both open the pinning transaction, and `finish` commits it
/// before the write is acknowledged.
pub struct Writable {
    conn: PoolConnection<Postgres>,
    begin: Option<Arc<str>>,
    open: bool,
}

impl Writable {
    pub(super) fn new(conn: PoolConnection<Postgres>, db: &Db) -> Writable {
        Writable {
            conn,
            begin: db.begin.clone(),
            open: false,
        }
    }

    /// The connection for single statements (in pooler mode inside an open transaction).
    pub async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if let (Some(begin), false) = (&self.begin, self.open) {
            (*self.conn).execute(&**begin).await?;
            self.open = true;
        }
        Ok(&mut self.conn)
    }

    /// Commits what [`Writable::conn`]'s statements did (pooler mode; a direct connection
    /// committed each one already).
    pub async fn finish(&mut self) -> Result<(), sqlx::Error> {
        if self.open {
            // Transaction control, sent as text (simple protocol) like `begin` above.
            (*self.conn).execute("COMMIT").await?;
            self.open = false;
        }
        Ok(())
    }

    /// The connection outside any transaction (after `finish`): for a simple query that
    /// needs none, such as the position after a commit.
    pub(super) fn committed_conn(&mut self) -> Option<&mut PgConnection> {
        (!self.open).then_some(&mut *self.conn)
    }

    /// A transaction (after `finish` of any single statements).
    pub async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Postgres>, sqlx::Error> {
        self.finish().await?;
        match &self.begin {
            Some(begin) => (*self.conn).begin_with(begin.to_string()).await,
            None => (*self.conn).begin().await,
        }
    }
}

impl Drop for Writable {
    fn drop(&mut self) {
        if self.open {
            // A transaction left open (an error before `finish`) must not go back to the
            // pool: closing the connection rolls it back.
            self.conn.close_on_drop();
        }
    }
}

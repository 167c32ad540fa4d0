//! WAL positions (LSNs): the primary's after a commit (a write's consistency token) and when
//! a heartbeat is sent, the replica's replayed one. Postgres prints them as `X/Y` (two hex
//! halves); the service holds them as one u64.

use futures::future::BoxFuture;
use sqlx::{PgConnection, Row};

/// `16/B374D848` → `0x16_B374_D848`.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// The primary's written WAL position now. After a commit returned (with
/// `synchronous_commit` on, the default) it covers that commit: a replica that replayed it
/// has the write. A simple query: one round trip, and safe through a transaction pooler.
pub const PRIMARY_POSITION_SQL: &str = "select pg_current_wal_lsn()::text";

/// What a replica has replayed; a server that is not in recovery (a promoted replica, or a
/// primary named as the read URL) answers its own written position.
pub const REPLAYED_POSITION_SQL: &str = "select (case when pg_is_in_recovery() \
     then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text";

/// Runs a position query (`PRIMARY_POSITION_SQL` or `REPLAYED_POSITION_SQL`) on `conn`.
/// (Boxed: callers inside `async_trait` methods need a future whose `Send` does not depend
/// on the connection's lifetime.)
pub fn position<'c>(
    conn: &'c mut PgConnection,
    sql: &'static str,
) -> BoxFuture<'c, Result<Option<u64>, sqlx::Error>> {
    Box::pin(async move {
        // A runtime query, not a `query!`: a bare string is sent with the simple query
        // protocol (no prepared statement), which is what makes it safe outside a transaction
        // behind a transaction-mode pooler (after a write's commit, see `pooled.rs`).
        let row = sqlx::Executor::fetch_one(&mut *conn, sql).await?;
        let text: Option<String> = row.try_get(0)?;
        Ok(text.as_deref().and_then(parse_lsn))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_into_ordered_numbers() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        for bad in ["", "16", "x/1", "1/2/3", "100000000/0"] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
        }
    }
}

//! Invalidation notices sent with `pg_notify` inside the writing transaction (the cache's
//! second bus, see `docs/cache.md`), and the keys each write changes.

use crate::cache::{region, Cache, CacheKey};

/// Builds the notice a write sends; holds nothing when the bus is not attached (a repository
/// used outside the service, e.g. by the CLI or cache warming).
#[derive(Clone, Default)]
pub struct Notifier {
    cache: Option<Cache>,
}

/// What one write sends: `cache_notify($channel, $payload, version)` (see the
/// `cache_notify` migration); both `None` sends nothing.
pub(super) struct Notice {
    pub channel: Option<String>,
    pub payload: Option<String>,
}

impl Notifier {
    pub fn new(cache: Cache) -> Self {
        Self { cache: Some(cache) }
    }

    /// The notice for a write of `keys`; the cache remembers its id for the Redis copy.
    pub(super) fn notice(&self, keys: &[CacheKey]) -> Notice {
        let Some(cache) = &self.cache else {
            return Notice::none();
        };
        match cache.bus_notice(keys) {
            Some(payload) => Notice {
                channel: Some(cache.pg_channel().to_owned()),
                payload: Some(payload),
            },
            None => Notice::none(),
        }
    }

    /// The notice built from the keys `keys` makes (nothing without a cache).
    pub(super) fn notice_with(&self, keys: impl FnOnce(&Cache) -> Vec<CacheKey>) -> Notice {
        match &self.cache {
            Some(cache) => self.notice(&keys(cache)),
            None => Notice::none(),
        }
    }
}

impl Notifier {
    /// A write committed on `conn`: reads the primary's position after it (one round trip)
    /// and records it as the request's consistency token (`cache::region::note_write`) and
    /// as a position the primary is known to have reached. Only inside a request that
    /// records its writes; a failure costs the token, never the write.
    pub(super) async fn committed(&self, conn: &mut super::pooled::Writable) {
        if !region::recording() {
            return;
        }
        let Some(conn) = conn.committed_conn() else {
            return;
        };
        match super::positions::position(conn, super::positions::PRIMARY_POSITION_SQL).await {
            Ok(Some(position)) => {
                region::note_write(position);
                if let Some(cache) = &self.cache {
                    cache.note_committed(position);
                }
            }
            Ok(None) => log::debug!("the primary answered no WAL position after a commit"),
            Err(error) => log::debug!("no WAL position after a commit: {error}"),
        }
    }
}

impl Notice {
    pub fn none() -> Self {
        Self {
            channel: None,
            payload: None,
        }
    }

    /// Sends it on `conn`, inside the transaction open there.
    pub(super) async fn send(
        &self,
        conn: &mut sqlx::PgConnection,
        version: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        if self.payload.is_none() {
            return Ok(());
        }
        sqlx::query!(
            "select cache_notify($1, $2, $3)",
            self.channel.as_deref(),
            self.payload.as_deref(),
            version,
        )
        .fetch_one(conn)
        .await
        .map(|_| ())
    }
}

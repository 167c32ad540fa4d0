//! Operator subcommands: locations and API keys, printed once on creation.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{ttl, Cache, CacheSettings, Invalidation, LEASE_MS};
use crate::config::Settings;
use crate::domain::api_key::{api_key_hash, generate_api_key};
use crate::domain::ids::is_valid_location_id;
use crate::domain::stored_text::{check_nul, check_text, LOCATION_NAME_CHARS};
use crate::repository::cached::{CachedApiKeyRepository, ReadThrough};
use crate::repository::postgres::database;
use crate::repository::postgres::{Db, Notifier, PgApiKeyRepository, PgLocationRepository};
use crate::repository::{ApiKeyRepository, LocationRepository, RepositoryError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] database::DatabaseError),
    #[error("{0}")]
    Repository(String),
}

impl From<RepositoryError> for AdminError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Database(error) => {
                Self::Repository(format!("database error: {error}"))
            }
            other => Self::Repository(other.to_string()),
        }
    }
}

/// The service's own view of `DATABASE_URL`: the commands honour `DATABASE_POOLER` like the
/// server does (each statement in its own transaction behind a transaction-mode pooler), so
/// they run wherever the server runs, with no direct connection of their own.
fn connect(settings: &Settings) -> Result<Db, AdminError> {
    let pool = database::connect_lazy(&settings.database)?;
    Ok(Db::new(pool, &settings.database))
}

pub async fn create_location(settings: &Settings, id: &str, name: &str) -> Result<(), AdminError> {
    let name = name.trim();
    if !is_valid_location_id(id) {
        return Err(AdminError::Invalid(
            "--id must be 1-64 letters, digits, '_' or '-' (a GoHighLevel location id)".to_owned(),
        ));
    }
    if let Some(error) = check_text("--name", name, LOCATION_NAME_CHARS) {
        return Err(AdminError::Invalid(format!(
            "{} {}",
            error.field, error.message
        )));
    }
    let pool = connect(settings)?;
    let key = generate_api_key();
    let location = PgLocationRepository::new(pool.clone())
        .create_with_key(id, name, &api_key_hash(&key))
        .await;
    pool.close().await;
    let location = location?;
    println!("created location {} ({})", location.id, location.name);
    println!("api key (shown once, store it now): {key}");
    Ok(())
}

pub async fn create_key(
    settings: &Settings,
    location_id: &str,
    label: &str,
) -> Result<(), AdminError> {
    if let Some(error) = check_nul("--label", label) {
        return Err(AdminError::Invalid(format!(
            "{} {}",
            error.field, error.message
        )));
    }
    let pool = connect(settings)?;
    let key = generate_api_key();
    let created = PgApiKeyRepository::new(pool.clone())
        .create(location_id, &api_key_hash(&key), label)
        .await;
    pool.close().await;
    let key_id = created?;
    println!("created key {key_id} for location {location_id}");
    println!("api key (shown once, store it now): {key}");
    Ok(())
}

/// How a revocation ended, for the exit code: the key is revoked in the database either way;
/// `Unconfirmed` means running instances may still accept it for a while (printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Confirmed,
    Unconfirmed,
}

/// Revokes in Postgres, then invalidates the key's cached lookup on every running instance
/// through Redis and waits for their acknowledgements. Prints what happened: confirmed by how
/// many instances, or — no Redis here, Redis unreachable, nobody listening, someone silent —
/// how long running instances may still accept the key.
pub async fn revoke_key(settings: &Settings, key_id: &str) -> Result<Revocation, AdminError> {
    let key_id = uuid::Uuid::parse_str(key_id).map_err(|_| {
        AdminError::Invalid("--id must be the key id (a UUID) printed at creation".to_owned())
    })?;
    let pool = connect(settings)?;
    let cache_settings = CacheSettings::from_config(&settings.cache);
    let stale_grace = cache_settings.stale_grace;
    let cache = Cache::new(cache_settings, &prometheus::Registry::new())
        .map_err(|error| AdminError::Repository(format!("cache: {error}")))?;
    let redis = settings.cache.topology.is_some();
    // Subscribed, this process's own subscriber is one of the receivers; it does not count.
    let listening = redis && cache.wait_ready(Duration::from_secs(3)).await && cache.listening();
    let keys = CachedApiKeyRepository::new(
        // The revocation also goes through Postgres, in its transaction, to every instance
        // listening there (Redis down or not).
        Arc::new(PgApiKeyRepository::new(pool.clone()).with_notifier(Notifier::new(cache.clone()))),
        ReadThrough::new(cache.clone(), settings.request_timeout),
    );
    let revoked = keys.revoke_reporting(key_id).await;
    cache.shutdown().await;
    pool.close().await;
    let (_, report) = revoked?;
    println!("revoked key {key_id} in the database");
    let own = u64::from(listening);
    let heard = report.receivers.saturating_sub(own);
    let confirmed = report.acknowledged.saturating_sub(own);
    let problem = match report.outcome {
        _ if !redis => "no Redis is configured here (REDIS_URL, REDIS_CLUSTER_NODES or \
                        REDIS_SENTINELS), so no running instance was told"
            .to_owned(),
        Invalidation::RedisUnreachable | Invalidation::Unconfirmed => {
            "Redis could not be reached (or refused the invalidation), so no running instance \
             was told"
                .to_owned()
        }
        Invalidation::Applied if heard == 0 => format!(
            "no running instance is listening on Redis under CACHE_PREFIX {:?}, so none \
             acknowledged",
            settings.cache.prefix
        ),
        Invalidation::Applied if confirmed < heard => format!(
            "only {confirmed} of {heard} running instances acknowledged; the others did not \
             answer within their {} ms lease (they have lost Redis: they stop answering from \
             memory and drop their copies when they hear Redis again)",
            LEASE_MS
        ),
        Invalidation::Applied => {
            println!(
                "confirmed by {confirmed} running instance{}: the key is refused everywhere now",
                if confirmed == 1 { "" } else { "s" }
            );
            return Ok(Revocation::Confirmed);
        }
    };
    let ttl = ttl::USER.as_secs();
    let longest = ttl + ttl / 10;
    eprintln!(
        "warning: the revocation is not confirmed: {problem}.\n\
         An instance that has the key cached may accept it for up to {longest} s \
         (the API-key cache TTL, {ttl} s plus up to 10 % jitter, in memory (L1) and in Redis), \
         and while Postgres is unreachable a stale copy for up to {} s more. Run the command \
         again once Redis is reachable to confirm, or restart the instances.",
        stale_grace.as_secs()
    );
    Ok(Revocation::Unconfirmed)
}

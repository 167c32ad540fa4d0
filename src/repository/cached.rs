//! Caching decorators: the same repository traits, read through the layered cache.
//!
//! Reads go L1 → L2 → Postgres (single flight per key, "not found" cached briefly, stale
//! values served when Postgres fails). Writes commit in Postgres first, then invalidate every
//! key they touch in both tiers and on every instance; the cache's stale-set guard keeps a
//! read that loaded the old row before the commit from putting it back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{
    region, ttl, Cache, CacheKey, Invalidation, InvalidationReport, L1Probe, LoadError,
};
use crate::domain::analysis::RULES_VERSION;
use crate::repository::{
    within, ApiKeyOwner, ApiKeyRepository, Fetched, IfMatch, ImportState, LocationRow, NewWorkflow,
    PutOutcome, ReadSource, RepositoryError, StoredWorkflow, Subscription, SubscriptionRepository,
    WorkflowRepository, WorkflowSummary,
};

/// How the decorators read: through the cache, within the request deadline.
#[derive(Clone)]
pub struct ReadThrough {
    pub cache: Cache,
    /// Longest a read waits on Postgres; past it a stale value is served if there is one,
    /// else a 503 (a hung Postgres cannot enforce its own `statement_timeout`).
    deadline: Duration,
    /// `CACHE_BYPASS`: skip both tiers (benchmarks of the uncached path).
    bypass: bool,
}

impl ReadThrough {
    pub fn new(cache: Cache, deadline: Duration) -> Self {
        Self {
            cache,
            deadline,
            bypass: false,
        }
    }

    /// The reads of workflows and analyses: they skip both tiers when the cache is set to
    /// (`CACHE_BYPASS`), while auth and plan lookups stay cached.
    pub fn entity_reads(&self) -> Self {
        Self {
            bypass: self.cache.settings().bypass_entity_reads,
            ..self.clone()
        }
    }

    /// Reads `key`; the loader `make_load` returns answers `Ok(None)` for "not found".
    /// `make_load` is called only when the in-process tier cannot answer: a hit neither clones
    /// what a load would need nor sets up a deadline (Arc clones are atomic operations on
    /// cache lines every HTTP worker shares).
    pub async fn read<T, M, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        not_found: &'static str,
        make_load: M,
    ) -> Result<Fetched<T>, RepositoryError>
    where
        T: Serialize + DeserializeOwned,
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, RepositoryError>> + Send + 'static,
    {
        if let Some(position) = region::required() {
            return self.read_at(key, ttl, not_found, make_load, position).await;
        }
        let read = if self.bypass {
            tokio::time::timeout(self.deadline, self.cache.load_bypass(make_load())).await
        } else {
            let stale = match self.cache.probe_l1(key) {
                L1Probe::Fresh(read) => return loaded(Ok(read), not_found),
                L1Probe::Missed { stale } => stale,
            };
            let rest = self.cache.load_after_l1(key, ttl, make_load(), stale);
            tokio::time::timeout(self.deadline, rest).await
        };
        match read {
            Ok(read) => loaded(read, not_found),
            // The load goes on in its own task and fills the cache when Postgres answers.
            Err(_) => match self.cache.get_with_stale(key).await {
                Some(hit) => Ok(Fetched::from_json(hit.bytes, ReadSource::Stale)),
                None => Err(RepositoryError::TimedOut),
            },
        }
    }

    /// [`ReadThrough::read`] for a request carrying a consistency token: answered only with
    /// a value known to reflect `position` (see `cache::token_reads`); never a stale one.
    async fn read_at<T, M, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        not_found: &'static str,
        make_load: M,
        position: u64,
    ) -> Result<Fetched<T>, RepositoryError>
    where
        T: Serialize + DeserializeOwned,
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, RepositoryError>> + Send + 'static,
    {
        let load = if self.bypass {
            // Boxed so the wrapper moves a pointer, not the load, on the worker's stack.
            region::with_required(position, Box::pin(self.cache.load_bypass(make_load()))).await
        } else {
            if let L1Probe::Fresh(read) = self.cache.probe_l1_at(key, position) {
                return loaded(Ok(read), not_found);
            }
            let load = self.cache.load_at(key, ttl, position, make_load());
            match tokio::time::timeout(self.deadline, load).await {
                Ok(read) => read,
                Err(_) => return Err(RepositoryError::TimedOut),
            }
        };
        loaded(load, not_found)
    }

    /// Longest a request waits on work it cannot do itself (Postgres, the analysis pool).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Database work that is not a cached read (a write, a history page), within the same
    /// deadline.
    pub async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        within(self.deadline, work).await
    }
}

/// Turns a cache read into the repository's answer.
pub(crate) fn loaded<T: Serialize + DeserializeOwned>(
    read: Result<crate::cache::CacheRead, LoadError<RepositoryError>>,
    not_found: &'static str,
) -> Result<Fetched<T>, RepositoryError> {
    match read {
        Ok(read) => match read.value {
            Some(json) => Ok(Fetched::from_json(json, read.status.into())),
            None => Err(RepositoryError::NotFound(not_found)),
        },
        Err(LoadError::Loader(error)) => Err(RepositoryError::Shared(error)),
        Err(LoadError::Panicked) => Err(RepositoryError::Computation(
            "the load of a cached value panicked".to_owned(),
        )),
    }
}

/// `Ok(None)` for a missing row, so "not found" can be cached.
fn found<T>(result: Result<Fetched<T>, RepositoryError>) -> Result<Option<Bytes>, RepositoryError> {
    match result {
        Ok(fetched) => Ok(Some(fetched.json)),
        Err(RepositoryError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Every cached key a write of workflow `id` changes (the location-wide analysis reads every
/// workflow of the location). The Postgres write's notice and the invalidation after it name
/// the same keys in the same order (that is how the two copies share an id).
pub(crate) fn workflow_keys(cache: &Cache, location_id: &str, id: &str) -> Vec<CacheKey> {
    let keys = cache.keys();
    // The location-wide analysis reads every workflow of the location; the overview shows
    // every workflow's summary and score.
    vec![
        keys.workflow(location_id, id),
        keys.workflow_original(location_id, id),
        keys.workflows(location_id),
        keys.location_analysis(location_id, RULES_VERSION),
        keys.overview(location_id, RULES_VERSION),
    ]
}

/// The cached owner lookup of an API key hash.
pub(crate) fn api_key_key(cache: &Cache, key_hash: &[u8]) -> CacheKey {
    // Built on every authenticated request: encode into a stack buffer, not a char iterator.
    let mut hex_buf = [0u8; 64];
    match hex::encode_to_slice(key_hash, &mut hex_buf) {
        Ok(()) => cache
            .keys()
            .api_key(std::str::from_utf8(&hex_buf).unwrap_or_default()),
        Err(_) => cache.keys().api_key(&hex::encode(key_hash)),
    }
}

/// The cached lookups of these API key hashes.
pub(crate) fn api_key_keys(cache: &Cache, key_hashes: &[Vec<u8>]) -> Vec<CacheKey> {
    key_hashes
        .iter()
        .map(|hash| api_key_key(cache, hash))
        .collect()
}

/// The cached subscription of a location.
pub(crate) fn subscription_keys(cache: &Cache, location_id: &str) -> Vec<CacheKey> {
    vec![cache.keys().subscription(location_id)]
}

pub struct CachedWorkflowRepository {
    inner: Arc<dyn WorkflowRepository>,
    reads: ReadThrough,
    cache: Cache,
}

impl CachedWorkflowRepository {
    pub fn new(inner: Arc<dyn WorkflowRepository>, reads: ReadThrough) -> Self {
        let cache = reads.cache.clone();
        Self {
            inner,
            reads,
            cache,
        }
    }

    /// After a committed write: `Err(NotPropagated)` when the write must not be answered as
    /// a success (see `Cache::invalidate`).
    async fn invalidate(&self, location_id: &str, id: &str) -> Result<(), RepositoryError> {
        let outcome = self
            .cache
            .invalidate(&workflow_keys(&self.cache, location_id, id))
            .await;
        match outcome {
            Invalidation::Unconfirmed => Err(RepositoryError::NotPropagated),
            Invalidation::Applied | Invalidation::RedisUnreachable => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl WorkflowRepository for CachedWorkflowRepository {
    async fn list(
        &self,
        location_id: &str,
    ) -> Result<Fetched<Vec<WorkflowSummary>>, RepositoryError> {
        let key = self.cache.keys().workflows(location_id);
        self.reads
            .read(&key, ttl::MEDIUM, "Workflows", || {
                let (inner, location_id) = (Arc::clone(&self.inner), location_id.to_owned());
                move || async move { found(inner.list(&location_id).await) }
            })
            .await
    }

    async fn get(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Fetched<StoredWorkflow>, RepositoryError> {
        let key = self.cache.keys().workflow(location_id, id);
        self.reads
            .read(&key, ttl::WORKFLOW, "Workflow", || {
                let (inner, location_id, id) = (
                    Arc::clone(&self.inner),
                    location_id.to_owned(),
                    id.to_owned(),
                );
                move || async move { found(inner.get(&location_id, &id).await) }
            })
            .await
    }

    async fn put(
        &self,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
        if_match: Option<IfMatch>,
    ) -> Result<PutOutcome, RepositoryError> {
        let outcome = self
            .reads
            .bounded(self.inner.put(location_id, id, workflow, if_match))
            .await?;
        self.invalidate(location_id, id).await?;
        Ok(outcome)
    }

    async fn delete(&self, location_id: &str, id: &str) -> Result<(), RepositoryError> {
        self.reads
            .bounded(self.inner.delete(location_id, id))
            .await?;
        self.invalidate(location_id, id).await
    }

    // Webhooks: a retried delivery is a duplicate and changes nothing, so a 503 would not
    // help; the keys stay queued for replay (see `Cache::invalidate`).
    async fn forget(&self, location_id: &str, id: &str) {
        let _ = self.invalidate(location_id, id).await;
    }

    async fn import_state(
        &self,
        location_id: &str,
        id: &str,
        source: &str,
    ) -> Result<Option<ImportState>, RepositoryError> {
        self.reads
            .bounded(self.inner.import_state(location_id, id, source))
            .await
    }

    async fn original(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<(Option<Bytes>, ReadSource), RepositoryError> {
        let key = self.cache.keys().workflow_original(location_id, id);
        let fetched: Fetched<serde_json::Value> = self
            .reads
            .read(&key, ttl::WORKFLOW, "Workflow", || {
                let (inner, location_id, id) = (
                    Arc::clone(&self.inner),
                    location_id.to_owned(),
                    id.to_owned(),
                );
                move || async move {
                    match inner.original(&location_id, &id).await {
                        Ok((original, _)) => Ok(Some(original.unwrap_or_else(not_imported))),
                        Err(RepositoryError::NotFound(_)) => Ok(None),
                        Err(error) => Err(error),
                    }
                }
            })
            .await?;
        let original = (fetched.json != NOT_IMPORTED).then_some(fetched.json);
        Ok((original, fetched.source))
    }

    async fn location_workflows(
        &self,
        location_id: &str,
        with_definition: usize,
        rows: &tokio::sync::mpsc::Sender<LocationRow>,
    ) -> Result<(), RepositoryError> {
        // The deadline is Postgres's: each row must come within it. The time the analysis
        // takes over the rows before (it paces the read) does not count.
        let (read_tx, mut read_rx) = tokio::sync::mpsc::channel(1);
        let inner = &self.inner;
        let read = async move {
            inner
                .location_workflows(location_id, with_definition, &read_tx)
                .await
        };
        tokio::pin!(read);
        let mut read_result = None;
        loop {
            tokio::select! {
                result = &mut read, if read_result.is_none() => read_result = Some(result),
                row = within(self.reads.deadline, async { Ok(read_rx.recv().await) }) => {
                    match row? {
                        Some(row) => {
                            if rows.send(row).await.is_err() {
                                // The analysis stopped: dropping the read ends it.
                                return Ok(());
                            }
                        }
                        // The read ended (its sender is gone with it).
                        None => {
                            return match read_result {
                                Some(result) => result,
                                None => read.await,
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the cache holds under a workflow's original when it was not imported (an original is
/// always a JSON object, so it is never this).
const NOT_IMPORTED: &[u8] = b"null";

fn not_imported() -> Bytes {
    Bytes::from_static(NOT_IMPORTED)
}

pub struct CachedSubscriptionRepository {
    inner: Arc<dyn SubscriptionRepository>,
    reads: ReadThrough,
}

impl CachedSubscriptionRepository {
    pub fn new(inner: Arc<dyn SubscriptionRepository>, reads: ReadThrough) -> Self {
        Self { inner, reads }
    }
}

#[async_trait::async_trait]
impl SubscriptionRepository for CachedSubscriptionRepository {
    async fn get(&self, location_id: &str) -> Result<Fetched<Subscription>, RepositoryError> {
        let key = self.reads.cache.keys().subscription(location_id);
        self.reads
            .read(&key, ttl::MEDIUM, "Subscription", || {
                let (inner, location_id) = (Arc::clone(&self.inner), location_id.to_owned());
                move || async move { found(inner.get(&location_id).await) }
            })
            .await
    }

    async fn forget(&self, location_id: &str) {
        let cache = &self.reads.cache;
        cache
            .invalidate(&subscription_keys(cache, location_id))
            .await;
    }
}

pub struct CachedApiKeyRepository {
    inner: Arc<dyn ApiKeyRepository>,
    reads: ReadThrough,
    cache: Cache,
}

impl CachedApiKeyRepository {
    pub fn new(inner: Arc<dyn ApiKeyRepository>, reads: ReadThrough) -> Self {
        let cache = reads.cache.clone();
        Self {
            inner,
            reads,
            cache,
        }
    }

    fn key(&self, key_hash: &[u8]) -> CacheKey {
        api_key_key(&self.cache, key_hash)
    }

    /// Revokes, then invalidates the key's cached lookup everywhere, saying how far the
    /// invalidation got (the CLI reports it: a revocation nobody heard is not effective yet).
    pub async fn revoke_reporting(
        &self,
        key_id: uuid::Uuid,
    ) -> Result<(Vec<u8>, InvalidationReport), RepositoryError> {
        let key_hash = self.inner.revoke(key_id).await?;
        let report = self
            .cache
            .invalidate_reporting(&[self.key(&key_hash)])
            .await;
        Ok((key_hash, report))
    }

    /// The cached owner record of a key hash; `None` for an unknown or revoked key.
    async fn read_owner(
        &self,
        key_hash: &[u8],
    ) -> Result<Option<Fetched<ApiKeyOwner>>, RepositoryError> {
        let key = self.key(key_hash);
        let read = self
            .reads
            .read::<ApiKeyOwner, _, _, _>(&key, ttl::USER, "API key", || {
                let (inner, hash) = (Arc::clone(&self.inner), key_hash.to_vec());
                move || async move {
                    match inner.find_owner(&hash).await? {
                        Some(owner) => Ok(Some(Bytes::from(serde_json::to_vec(&owner)?))),
                        None => Ok(None),
                    }
                }
            })
            .await;
        match read {
            Ok(fetched) => Ok(Some(fetched)),
            Err(RepositoryError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[async_trait::async_trait]
impl ApiKeyRepository for CachedApiKeyRepository {
    async fn find_owner(&self, key_hash: &[u8]) -> Result<Option<ApiKeyOwner>, RepositoryError> {
        self.read_owner(key_hash)
            .await?
            .map(|fetched| fetched.decode())
            .transpose()
    }

    async fn find_location(&self, key_hash: &[u8]) -> Result<Option<String>, RepositoryError> {
        self.read_owner(key_hash)
            .await?
            .map(|fetched| fetched.location_id())
            .transpose()
    }

    async fn create(
        &self,
        location_id: &str,
        key_hash: &[u8],
        label: &str,
    ) -> Result<uuid::Uuid, RepositoryError> {
        let created = self.inner.create(location_id, key_hash, label).await?;
        // A lookup of this hash before it existed may be cached as "not found".
        self.cache.invalidate(&[self.key(key_hash)]).await;
        Ok(created)
    }

    async fn revoke(&self, key_id: uuid::Uuid) -> Result<Vec<u8>, RepositoryError> {
        self.revoke_reporting(key_id)
            .await
            .map(|(key_hash, _)| key_hash)
    }

    async fn forget(&self, key_hashes: &[Vec<u8>]) {
        self.cache
            .invalidate(&api_key_keys(&self.cache, key_hashes))
            .await;
    }
}

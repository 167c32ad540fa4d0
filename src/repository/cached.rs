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

use crate::cache::{ttl, Cache, CacheKey, LoadError};
use crate::domain::analysis::RULES_VERSION;
use crate::repository::{
    ApiKeyOwner, ApiKeyRepository, Fetched, NewWorkflow, PutOutcome, RepositoryError,
    StoredWorkflow, Subscription, SubscriptionRepository, WorkflowRepository, WorkflowSummary,
};

/// Reads `key` through the cache; `load` answers `Ok(None)` for "not found".
async fn read_through<T, F, Fut>(
    cache: &Cache,
    key: &CacheKey,
    ttl: Duration,
    not_found: &'static str,
    load: F,
) -> Result<Fetched<T>, RepositoryError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<Bytes>, RepositoryError>> + Send + 'static,
{
    loaded(cache.get_or_load(key, ttl, load).await, not_found)
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

pub struct CachedWorkflowRepository {
    inner: Arc<dyn WorkflowRepository>,
    cache: Cache,
    /// `CACHE_BYPASS`: workflow reads skip both tiers (benchmarks of the uncached path).
    bypass: bool,
}

impl CachedWorkflowRepository {
    pub fn new(inner: Arc<dyn WorkflowRepository>, cache: Cache, bypass: bool) -> Self {
        Self {
            inner,
            cache,
            bypass,
        }
    }

    async fn read<T, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        not_found: &'static str,
        load: F,
    ) -> Result<Fetched<T>, RepositoryError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<Bytes>, RepositoryError>> + Send + 'static,
    {
        if self.bypass {
            loaded(self.cache.load_bypass(load).await, not_found)
        } else {
            read_through(&self.cache, key, ttl, not_found, load).await
        }
    }

    async fn invalidate(&self, location_id: &str, id: &str) {
        let keys = self.cache.keys();
        // The location-wide analysis reads every workflow of the location.
        self.cache
            .invalidate(&[
                keys.workflow(location_id, id),
                keys.workflows(location_id),
                keys.location_analysis(location_id, RULES_VERSION),
            ])
            .await;
    }
}

#[async_trait::async_trait]
impl WorkflowRepository for CachedWorkflowRepository {
    async fn list(
        &self,
        location_id: &str,
    ) -> Result<Fetched<Vec<WorkflowSummary>>, RepositoryError> {
        let key = self.cache.keys().workflows(location_id);
        let (inner, location_id) = (Arc::clone(&self.inner), location_id.to_owned());
        self.read(&key, ttl::MEDIUM, "Workflows", move || async move {
            found(inner.list(&location_id).await)
        })
        .await
    }

    async fn get(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Fetched<StoredWorkflow>, RepositoryError> {
        let key = self.cache.keys().workflow(location_id, id);
        let (inner, location_id, id) = (
            Arc::clone(&self.inner),
            location_id.to_owned(),
            id.to_owned(),
        );
        self.read(&key, ttl::WORKFLOW, "Workflow", move || async move {
            found(inner.get(&location_id, &id).await)
        })
        .await
    }

    async fn put(
        &self,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
        if_match: Option<i64>,
    ) -> Result<PutOutcome, RepositoryError> {
        let outcome = self.inner.put(location_id, id, workflow, if_match).await?;
        self.invalidate(location_id, id).await;
        Ok(outcome)
    }

    async fn delete(&self, location_id: &str, id: &str) -> Result<(), RepositoryError> {
        self.inner.delete(location_id, id).await?;
        self.invalidate(location_id, id).await;
        Ok(())
    }

    async fn forget(&self, location_id: &str, id: &str) {
        self.invalidate(location_id, id).await;
    }

    async fn definitions(
        &self,
        location_id: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, RepositoryError> {
        self.inner.definitions(location_id).await
    }
}

pub struct CachedSubscriptionRepository {
    inner: Arc<dyn SubscriptionRepository>,
    cache: Cache,
}

impl CachedSubscriptionRepository {
    pub fn new(inner: Arc<dyn SubscriptionRepository>, cache: Cache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl SubscriptionRepository for CachedSubscriptionRepository {
    async fn get(&self, location_id: &str) -> Result<Fetched<Subscription>, RepositoryError> {
        let key = self.cache.keys().subscription(location_id);
        let (inner, location_id) = (Arc::clone(&self.inner), location_id.to_owned());
        read_through(
            &self.cache,
            &key,
            ttl::MEDIUM,
            "Subscription",
            move || async move { found(inner.get(&location_id).await) },
        )
        .await
    }

    async fn forget(&self, location_id: &str) {
        self.cache
            .invalidate(&[self.cache.keys().subscription(location_id)])
            .await;
    }
}

pub struct CachedApiKeyRepository {
    inner: Arc<dyn ApiKeyRepository>,
    cache: Cache,
}

impl CachedApiKeyRepository {
    pub fn new(inner: Arc<dyn ApiKeyRepository>, cache: Cache) -> Self {
        Self { inner, cache }
    }

    fn key(&self, key_hash: &[u8]) -> CacheKey {
        self.cache.keys().api_key(&hex::encode(key_hash))
    }
}

#[async_trait::async_trait]
impl ApiKeyRepository for CachedApiKeyRepository {
    async fn find_owner(&self, key_hash: &[u8]) -> Result<Option<ApiKeyOwner>, RepositoryError> {
        let key = self.key(key_hash);
        let (inner, hash) = (Arc::clone(&self.inner), key_hash.to_vec());
        let read = read_through::<ApiKeyOwner, _, _>(
            &self.cache,
            &key,
            ttl::USER,
            "API key",
            move || async move {
                match inner.find_owner(&hash).await? {
                    Some(owner) => Ok(Some(Bytes::from(serde_json::to_vec(&owner)?))),
                    None => Ok(None),
                }
            },
        )
        .await;
        match read {
            Ok(fetched) => Ok(Some(fetched.decode()?)),
            Err(RepositoryError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
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
        let key_hash = self.inner.revoke(key_id).await?;
        self.cache.invalidate(&[self.key(&key_hash)]).await;
        Ok(key_hash)
    }

    async fn forget(&self, key_hashes: &[Vec<u8>]) {
        let keys: Vec<CacheKey> = key_hashes.iter().map(|hash| self.key(hash)).collect();
        self.cache.invalidate(&keys).await;
    }
}

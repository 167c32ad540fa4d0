//! `CACHE_WARM=true`: the most recently updated workflows are put in both cache tiers at
//! startup, bounded in count and time, in the background (readiness does not wait for it).

use std::time::Duration;

use bytes::Bytes;

use crate::cache::{ttl, Cache};
use crate::repository::postgres::PgWorkflowRepository;

/// How many workflows are preloaded at most.
const WARM_COUNT: i64 = 1_000;
/// How long warming may take before it gives up (the cache fills on demand anyway).
const WARM_BUDGET: Duration = Duration::from_secs(10);
const WARM_CONCURRENCY: usize = 8;

pub fn spawn_warming(cache: Cache, workflows: PgWorkflowRepository) {
    tokio::spawn(async move {
        match tokio::time::timeout(WARM_BUDGET, warm(&cache, &workflows)).await {
            Ok(Ok(count)) => log::info!("cache warmed with {count} workflows"),
            Ok(Err(error)) => log::warn!(
                "cache warming skipped: {}",
                crate::telemetry::error_chain(&error)
            ),
            Err(_) => log::warn!("cache warming stopped after {WARM_BUDGET:?}"),
        }
    });
}

async fn warm(
    cache: &Cache,
    workflows: &PgWorkflowRepository,
) -> Result<usize, crate::repository::RepositoryError> {
    // L1 only keeps copies once the invalidation subscriber listens.
    cache.wait_ready(WARM_BUDGET / 2).await;
    // Before the read: a write committed after it invalidates, and then must win.
    let ticket = cache.begin_warming();
    let recent = workflows.recently_updated(WARM_COUNT).await?;
    let mut entries = Vec::with_capacity(recent.len());
    for (location_id, workflow) in recent {
        let key = cache.keys().workflow(&location_id, &workflow.id);
        entries.push((
            key,
            Bytes::from(serde_json::to_vec(&workflow)?),
            ttl::WORKFLOW,
        ));
    }
    Ok(cache.warm(ticket, entries, WARM_CONCURRENCY).await)
}

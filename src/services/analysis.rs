//! Serving analyses. An analysis is computed off the HTTP workers, on the bounded analysis pool,
//! once per (location, workflow, version, rules version): cached under a key holding all four
//! (a new version or a new rule set is never answered with an old analysis) and recorded in
//! `analyses` the first time.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::json_scan::{mentions, scan_version};
use crate::cache::{ttl, Cache, CacheKey};
use crate::domain::analysis::{
    analyze_location, analyze_workflow, findings_involving, AnalysisReport, Issue, LocationReport,
    LocationWorkflow, RULES_VERSION,
};
use crate::domain::plan::Plan;
use crate::domain::workflow::WorkflowDocument;
use crate::repository::cached::ReadThrough;
use crate::repository::{
    AnalysisRepository, Fetched, HistoryPage, NewAnalysis, ReadSource, RepositoryError,
    StoredWorkflow, WorkflowRepository,
};
use crate::services::analysis_pool::{AnalysisPool, PoolError};

/// A stored workflow's analysis as cached, plus the cross-workflow findings that involve it.
pub struct WorkflowAnalysis {
    /// The serialized [`AnalysisReport`] of the workflow alone.
    pub json: Bytes,
    pub location_findings: Vec<Issue>,
    pub source: ReadSource,
}

impl WorkflowAnalysis {
    /// The full report: the workflow's own findings and the location-wide ones.
    pub fn into_report(self) -> Result<AnalysisReport, RepositoryError> {
        let mut report: AnalysisReport = serde_json::from_slice(&self.json)?;
        report.add_location_findings(self.location_findings);
        Ok(report)
    }
}

#[derive(serde::Deserialize)]
struct WorkflowHead {
    version: i64,
}

#[derive(Clone)]
pub struct AnalysisService {
    workflows: Arc<dyn WorkflowRepository>,
    analyses: Arc<dyn AnalysisRepository>,
    /// Location reports: always through the cache.
    reads: ReadThrough,
    /// Per-workflow analyses: `CACHE_BYPASS` computes them on every request (benchmarks).
    analysis_reads: ReadThrough,
    cache: Cache,
    /// Where analyses run: never on the HTTP workers, at most `ANALYSIS_CONCURRENCY` at once.
    pool: AnalysisPool,
}

impl AnalysisService {
    pub fn new(
        workflows: Arc<dyn WorkflowRepository>,
        analyses: Arc<dyn AnalysisRepository>,
        reads: ReadThrough,
        pool: AnalysisPool,
    ) -> Self {
        Self {
            workflows,
            analyses,
            cache: reads.cache.clone(),
            analysis_reads: reads.entity_reads(),
            reads,
            pool,
        }
    }

    async fn read_through<M, F, Fut>(
        &self,
        key: &CacheKey,
        make_load: M,
    ) -> Result<(Bytes, ReadSource), RepositoryError>
    where
        M: FnOnce() -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Option<Bytes>, RepositoryError>> + Send + 'static,
    {
        let fetched: Fetched<AnalysisReport> = self
            .analysis_reads
            .read(key, ttl::ANALYSIS, "Analysis", make_load)
            .await?;
        Ok((fetched.json, fetched.source))
    }

    /// The analysis of a stored workflow's current version and the location-wide findings
    /// that involve it. The cached report stays serialized, so the common case (no
    /// cross-workflow finding, a paid plan) is written out without being parsed.
    pub async fn workflow_analysis(
        &self,
        location_id: &str,
        workflow_id: &str,
    ) -> Result<WorkflowAnalysis, RepositoryError> {
        let fetched = self.workflows.get(location_id, workflow_id).await?;
        // Only the version is needed to find the analysis; the definition is parsed on a miss.
        let version = match scan_version(&fetched.json) {
            Some(version) => version,
            None => serde_json::from_slice::<WorkflowHead>(&fetched.json)?.version,
        };
        let key = self
            .cache
            .keys()
            .analysis(location_id, workflow_id, version, RULES_VERSION);
        let (json, source) = self
            .read_through(&key, || {
                let (service, location) = (self.clone(), location_id.to_owned());
                move || async move {
                    let stored = fetched.decode()?;
                    service
                        .compute_and_record(&location, stored)
                        .await
                        .map(Some)
                }
            })
            .await?;
        let location = self.location_fetched(location_id).await?;
        // A report that never names the workflow has no finding involving it: the common case
        // answers without parsing the location report.
        let location_findings = if mentions(&location.json, workflow_id)? {
            findings_involving(&location.decode()?, workflow_id)
        } else {
            Vec::new()
        };
        Ok(WorkflowAnalysis {
            json,
            location_findings,
            source,
        })
    }

    /// Cross-workflow findings of a whole location (always cached: `CACHE_BYPASS` measures
    /// the per-workflow analysis, not a location-wide one per request).
    pub async fn location_report(
        &self,
        location_id: &str,
    ) -> Result<(LocationReport, ReadSource), RepositoryError> {
        let fetched = self.location_fetched(location_id).await?;
        Ok((fetched.decode()?, fetched.source))
    }

    /// The location report as cached (serialized).
    async fn location_fetched(
        &self,
        location_id: &str,
    ) -> Result<Fetched<LocationReport>, RepositoryError> {
        let key = self
            .cache
            .keys()
            .location_analysis(location_id, RULES_VERSION);
        let fetched: Fetched<LocationReport> = self
            .reads
            .read(&key, ttl::ANALYSIS, "Location analysis", || {
                let (service, location) = (self.clone(), location_id.to_owned());
                move || async move { service.compute_location(&location).await.map(Some) }
            })
            .await?;
        Ok(fetched)
    }

    /// Runs `work` (parsing a large request body, say) on the analysis pool instead of an
    /// HTTP worker, within the request deadline: analysis threads yield the CPU to request
    /// handling, so on a saturated instance the request answers 503 rather than waiting on.
    pub async fn off_workers<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        tokio::time::timeout(self.reads.deadline(), self.on_analysis_threads(work))
            .await
            .unwrap_or(Err(RepositoryError::AnalysisBusy))
    }

    /// A document that is not stored: analyzed, neither cached nor recorded. Returns the
    /// serialized report as the plan may see it (written out on the pool too: a large
    /// document's report is large).
    pub async fn ad_hoc_report(
        &self,
        document: WorkflowDocument,
        workflow_id: String,
        plan: Plan,
    ) -> Result<Bytes, RepositoryError> {
        self.off_workers(move || {
            let report = analyze_workflow(&workflow_id, 0, &document, Utc::now()).for_plan(plan);
            serde_json::to_vec(&report).map(Bytes::from)
        })
        .await?
        .map_err(RepositoryError::from)
    }

    /// Stored analyses within the plan's retention, newest first.
    pub async fn history(
        &self,
        location_id: &str,
        plan: Plan,
        offset: i64,
        limit: i64,
    ) -> Result<HistoryPage, RepositoryError> {
        let days = i64::from(plan.limits().history_retention_days);
        let since: DateTime<Utc> = Utc::now() - ChronoDuration::days(days);
        self.analyses
            .history(location_id, since, offset, limit)
            .await
    }

    async fn compute_and_record(
        &self,
        location_id: &str,
        stored: StoredWorkflow,
    ) -> Result<Bytes, RepositoryError> {
        let (id, version) = (stored.id.clone(), stored.version);
        let report = self
            .on_analysis_threads(move || {
                let document =
                    WorkflowDocument::from_json(&stored.definition).map_err(|errors| {
                        RepositoryError::Computation(format!(
                            "stored workflow is not a document: {errors:?}"
                        ))
                    })?;
                Ok::<_, RepositoryError>(analyze_workflow(&id, version, &document, Utc::now()))
            })
            .await??;
        let result = serde_json::to_value(&report)?;
        self.analyses
            .record(
                location_id,
                &NewAnalysis {
                    workflow_id: &report.workflow_id,
                    workflow_version: report.version,
                    rules_version: &report.rules_version,
                    health_score: i16::try_from(report.health_score).unwrap_or(0),
                    issues_found: i32::try_from(report.issues.len()).unwrap_or(i32::MAX),
                    result: &result,
                },
            )
            .await?;
        Ok(Bytes::from(serde_json::to_vec(&result)?))
    }

    async fn compute_location(&self, location_id: &str) -> Result<Bytes, RepositoryError> {
        let definitions = self.workflows.definitions(location_id).await?;
        let report = self
            .on_analysis_threads(move || {
                // A stored definition that no longer parses is left out rather than failing
                // the whole location.
                let documents: Vec<(String, WorkflowDocument)> = definitions
                    .into_iter()
                    .filter_map(|(id, definition)| {
                        Some((id, WorkflowDocument::from_json(&definition).ok()?))
                    })
                    .collect();
                let workflows: Vec<LocationWorkflow<'_>> = documents
                    .iter()
                    .map(|(id, doc)| LocationWorkflow { id, doc })
                    .collect();
                analyze_location(&workflows, Utc::now())
            })
            .await?;
        Ok(Bytes::from(serde_json::to_vec(&report)?))
    }

    async fn on_analysis_threads<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.pool
            .run(work)
            .await
            .map_err(|error: PoolError| RepositoryError::Computation(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheSettings;
    use crate::config::AnalysisPriority;
    use crate::repository::postgres::{PgAnalysisRepository, PgWorkflowRepository};
    use std::time::Duration;

    /// A service whose pool has one thread and whose requests wait at most 50 ms. Its
    /// repositories are never reached here (the pool alone is exercised).
    fn service_with_one_thread() -> AnalysisService {
        let cache = Cache::new(CacheSettings::default(), &prometheus::Registry::new())
            .expect("in-process cache");
        let db =
            sqlx::PgPool::connect_lazy("postgres://unused@127.0.0.1:1/unused").expect("lazy pool");
        AnalysisService::new(
            Arc::new(PgWorkflowRepository::new(db.clone())),
            Arc::new(PgAnalysisRepository::new(db)),
            ReadThrough::new(cache, Duration::from_millis(50)),
            AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool"),
        )
    }

    #[tokio::test]
    async fn work_the_pool_cannot_start_within_the_deadline_is_refused_not_queued_forever() {
        let service = service_with_one_thread();
        let occupied = service.clone();
        let first = tokio::spawn(async move {
            occupied
                .off_workers(|| std::thread::sleep(Duration::from_millis(300)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;

        let waiting = service.off_workers(|| "late").await;
        let _ = first.await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        let later = service.off_workers(|| "on time").await;

        assert!(matches!(waiting, Err(RepositoryError::AnalysisBusy)));
        assert_eq!(later.expect("a free thread"), "on time");
    }
}

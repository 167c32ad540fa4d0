//! Serving analyses. An analysis is computed off the HTTP workers, on a bounded blocking pool,
//! once per (location, workflow, version, rules version): cached under a key holding all four
//! (a new version or a new rule set is never answered with an old analysis) and recorded in
//! `analyses` the first time.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use tokio::sync::Semaphore;

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
    reads: ReadThrough,
    cache: Cache,
    /// Bounds how many analyses run at once, so they cannot starve the HTTP workers.
    permits: Arc<Semaphore>,
    /// `CACHE_BYPASS`: analyses are computed on every request (benchmarks).
    bypass: bool,
}

impl AnalysisService {
    pub fn new(
        workflows: Arc<dyn WorkflowRepository>,
        analyses: Arc<dyn AnalysisRepository>,
        reads: ReadThrough,
        concurrency: usize,
        bypass: bool,
    ) -> Self {
        Self {
            workflows,
            analyses,
            cache: reads.cache.clone(),
            reads,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            bypass,
        }
    }

    async fn read_through<F, Fut>(
        &self,
        key: &CacheKey,
        load: F,
    ) -> Result<(Bytes, ReadSource), RepositoryError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Option<Bytes>, RepositoryError>> + Send + 'static,
    {
        let fetched: Fetched<AnalysisReport> = self
            .reads
            .clone()
            .bypassing(self.bypass)
            .read(key, ttl::ANALYSIS, "Analysis", load)
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
        let head: WorkflowHead = serde_json::from_slice(&fetched.json)?;
        let key = self
            .cache
            .keys()
            .analysis(location_id, workflow_id, head.version, RULES_VERSION);
        let (service, location) = (self.clone(), location_id.to_owned());
        let (json, source) = self
            .read_through(&key, move || async move {
                let stored = fetched.decode()?;
                service
                    .compute_and_record(&location, stored)
                    .await
                    .map(Some)
            })
            .await?;
        let (location_report, _) = self.location_report(location_id).await?;
        Ok(WorkflowAnalysis {
            json,
            location_findings: findings_involving(&location_report, workflow_id),
            source,
        })
    }

    /// Cross-workflow findings of a whole location (always cached: `CACHE_BYPASS` measures
    /// the per-workflow analysis, not a location-wide one per request).
    pub async fn location_report(
        &self,
        location_id: &str,
    ) -> Result<(LocationReport, ReadSource), RepositoryError> {
        let key = self
            .cache
            .keys()
            .location_analysis(location_id, RULES_VERSION);
        let (service, location) = (self.clone(), location_id.to_owned());
        let fetched: Fetched<LocationReport> = self
            .reads
            .read(
                &key,
                ttl::ANALYSIS,
                "Location analysis",
                move || async move { service.compute_location(&location).await.map(Some) },
            )
            .await?;
        Ok((fetched.decode()?, fetched.source))
    }

    /// A document that is not stored: analyzed, neither cached nor recorded.
    pub async fn ad_hoc_report(
        &self,
        document: WorkflowDocument,
        workflow_id: String,
    ) -> Result<AnalysisReport, RepositoryError> {
        self.on_blocking_pool(move || analyze_workflow(&workflow_id, 0, &document, Utc::now()))
            .await
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
            .on_blocking_pool(move || {
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
            .on_blocking_pool(move || {
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

    async fn on_blocking_pool<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| RepositoryError::Computation("the analysis pool is closed".to_owned()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| RepositoryError::Computation(error.to_string()))
    }
}

//! Serving analyses. An analysis is computed off the HTTP workers, on the bounded analysis pool,
//! once per (location, workflow, version, rules version): cached under a key holding all four
//! (a new version or a new rule set is never answered with an old analysis) and recorded in
//! `analyses` the first time.
//!
//! Every analysis runs within `ANALYSIS_BUDGET_MS` of its thread's CPU time and stops when its
//! caller stops waiting (see `domain::analysis::budget`). A stored workflow found too complex
//! is remembered per instance for [`TOO_COMPLEX_TTL`] under its analysis key (which holds its
//! version): asking again answers the same 422 without spending another budget, and a new
//! version is analyzed afresh. It is never cached as a report nor recorded in history. A
//! stored analysis is not cancelled with its request: it is a cache load shared by every
//! request for it, and its report (within the budget) serves the retry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use tokio::sync::{mpsc, oneshot};

use super::json_scan::{mentions, scan_version};
use crate::cache::{ttl, Cache, CacheKey};
use crate::domain::analysis::location::MAX_LOCATION_WORKFLOWS;
use crate::domain::analysis::{
    analyze_location_facts_within, analyze_workflow_within, findings_involving, AnalysisAbandoned,
    AnalysisReport, Budget, Issue, LocationFacts, LocationReport, RULES_VERSION,
};
use crate::domain::plan::Plan;
use crate::domain::workflow::WorkflowDocument;
use crate::repository::cached::ReadThrough;
use crate::repository::{
    AnalysisRepository, Fetched, HistoryPage, LocationRow, NewAnalysis, ReadSource,
    RepositoryError, StoredWorkflow, WorkflowRepository,
};
use crate::services::analysis_pool::{thread_cpu_clock, AnalysisPool, Owner, PoolError};

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

/// Workflows of a location read ahead of its analysis (each holding its definition).
const LOCATION_ROWS_IN_FLIGHT: usize = 2;

/// How long a stored version found too complex is answered so without a new attempt.
pub const TOO_COMPLEX_TTL: Duration = Duration::from_secs(60);
/// Stored versions remembered as too complex (per instance).
const TOO_COMPLEX_ENTRIES: usize = 1024;

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
    /// `ANALYSIS_BUDGET_MS`: CPU time one analysis may take.
    budget: Duration,
    /// Analysis keys of stored versions found too complex, with when.
    too_complex: Arc<quick_cache::sync::Cache<String, Instant>>,
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
            budget: DEFAULT_BUDGET,
            too_complex: Arc::new(quick_cache::sync::Cache::new(TOO_COMPLEX_ENTRIES)),
        }
    }

    /// The CPU time each analysis may take (`ANALYSIS_BUDGET_MS`).
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Whether the analysis under `key` was found too complex within the last
    /// [`TOO_COMPLEX_TTL`].
    fn known_too_complex(&self, key: &CacheKey) -> bool {
        match self.too_complex.get(key.as_str()) {
            Some(at) if at.elapsed() < TOO_COMPLEX_TTL => true,
            Some(_) => {
                self.too_complex.remove(key.as_str());
                false
            }
            None => false,
        }
    }

    /// Whether this version's analysis is remembered as too complex (the overview shows it so
    /// instead of waiting for it).
    pub(crate) fn version_too_complex(
        &self,
        location_id: &str,
        workflow_id: &str,
        version: i64,
    ) -> bool {
        let key = self
            .cache
            .keys()
            .analysis(location_id, workflow_id, version, RULES_VERSION);
        self.known_too_complex(&key)
    }

    /// After an analysis is recorded: the location's overview shows it (or its location-wide
    /// findings) from now on. In its own task: the analysis is answered without waiting for
    /// the other instances.
    fn overview_changed(&self, location_id: &str) {
        let cache = self.cache.clone();
        let key = cache.keys().overview(location_id, RULES_VERSION);
        tokio::spawn(crate::telemetry::carry_request_id(async move {
            cache.invalidate(&[key]).await;
        }));
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
        if self.known_too_complex(&key) {
            return Err(RepositoryError::Abandoned(AnalysisAbandoned::TooComplex {
                budget: self.budget,
            }));
        }
        let read = self
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
            .await;
        if let Err(error) = &read {
            if is_too_complex(error) {
                self.too_complex
                    .insert(key.as_str().to_owned(), Instant::now());
            }
        }
        let (json, source) = read?;
        let location_findings = match self.location_fetched(location_id).await {
            // A report that never names the workflow has no finding involving it: the common
            // case answers without parsing the location report.
            Ok(location) if mentions(&location.json, workflow_id)? => {
                findings_involving(&location.decode()?, workflow_id)
            }
            Ok(_) => Vec::new(),
            // The workflow's own analysis stands without the location-wide findings rather
            // than every workflow of a too-complex location failing with it.
            Err(error) if is_too_complex(&error) => Vec::new(),
            Err(error) => return Err(error),
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
    pub(crate) async fn location_fetched(
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

    /// Runs `work` (parsing a large request body, say) for `location` on the analysis pool
    /// instead of an HTTP worker, within the request deadline: analysis threads yield the CPU
    /// to request handling, so on a saturated instance the request answers 503 rather than
    /// waiting on.
    pub async fn off_workers<T, F>(&self, location_id: &str, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.within_deadline(location_id, move |_| work()).await
    }

    /// [`Self::off_workers`] for work that reads the cancel flag.
    async fn within_deadline<T, F>(&self, location_id: &str, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce(&AtomicBool) -> T + Send + 'static,
    {
        let started = Arc::new(AtomicBool::new(false));
        let marked = Arc::clone(&started);
        let job = move |cancel: &AtomicBool| {
            marked.store(true, Ordering::Relaxed);
            work(cancel)
        };
        // On the deadline the pool's future is dropped, which raises the cancel flag.
        match tokio::time::timeout(
            self.reads.deadline(),
            self.on_analysis_threads(Owner::Location(location_id), job),
        )
        .await
        {
            Ok(result) => result,
            // Started: it stops at its next check, and the caller is told it did not finish.
            Err(_) if started.load(Ordering::Relaxed) => {
                Err(RepositoryError::Abandoned(AnalysisAbandoned::Cancelled))
            }
            Err(_) => Err(RepositoryError::AnalysisBusy),
        }
    }

    /// A document that is not stored, posted by `location_id`: analyzed, neither cached nor
    /// recorded. Returns the serialized report as the plan may see it (written out on the
    /// pool too: a large document's report is large).
    pub async fn ad_hoc_report(
        &self,
        location_id: &str,
        document: WorkflowDocument,
        workflow_id: String,
        plan: Plan,
    ) -> Result<Bytes, RepositoryError> {
        let limit = self.budget;
        self.within_deadline(location_id, move |cancel| {
            let budget = Budget::new(limit, thread_cpu_clock()).cancelled_by(cancel);
            let report = analyze_workflow_within(&workflow_id, 0, &document, Utc::now(), &budget)?
                .for_plan(plan);
            Ok(Bytes::from(serde_json::to_vec(&report)?))
        })
        .await?
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
        let limit = self.budget;
        let report = self
            .on_analysis_threads(Owner::Location(location_id), move |cancel| {
                let budget = Budget::new(limit, thread_cpu_clock()).cancelled_by(cancel);
                let document =
                    WorkflowDocument::from_json(&stored.definition).map_err(|errors| {
                        RepositoryError::Computation(format!(
                            "stored workflow is not a document: {errors:?}"
                        ))
                    })?;
                Ok::<_, RepositoryError>(analyze_workflow_within(
                    &id,
                    version,
                    &document,
                    Utc::now(),
                    &budget,
                )?)
            })
            .await??;
        let result = serde_json::to_value(&report)?;
        // The recorded analysis is the one answered (and the one the overview shows): an
        // analysis computed again after its cached copy expired keeps its first numbers and
        // `analyzedAt`.
        let recorded = self
            .analyses
            .record(
                location_id,
                &NewAnalysis {
                    workflow_id: &report.workflow_id,
                    workflow_version: report.version,
                    rules_version: &report.rules_version,
                    health_score: i16::try_from(report.health_score).unwrap_or(0),
                    // Every finding, the ones past the per-rule cap included.
                    issues_found: i32::try_from(report.issues_summary.total).unwrap_or(i32::MAX),
                    result: &result,
                },
            )
            .await?;
        self.overview_changed(location_id);
        Ok(Bytes::from(serde_json::to_vec(
            recorded.as_ref().unwrap_or(&result),
        )?))
    }

    /// The location's workflows come over a short channel, in id order, while the analysis
    /// thread takes each document's facts and drops it: memory follows the location's facts
    /// (and the few documents in flight, see [`LOCATION_ROWS_IN_FLIGHT`]), not the size of
    /// its documents.
    /// Only the first [`MAX_LOCATION_WORKFLOWS`] are read with their definitions.
    async fn compute_location(&self, location_id: &str) -> Result<Bytes, RepositoryError> {
        let (rows_tx, mut rows) = mpsc::channel::<LocationRow>(LOCATION_ROWS_IN_FLIGHT);
        let (started_tx, started) = oneshot::channel::<()>();
        let limit = self.budget;
        let analysis = self.on_analysis_threads(Owner::Location(location_id), move |cancel| {
            let _ = started_tx.send(());
            let budget = Budget::new(limit, thread_cpu_clock()).cancelled_by(cancel);
            let mut facts = LocationFacts::new();
            while let Some(row) = rows.blocking_recv() {
                budget.check()?;
                match row {
                    LocationRow::Restart => facts = LocationFacts::new(),
                    LocationRow::Workflow {
                        id,
                        definition: Some(definition),
                        ..
                    } if facts.wants_steps() => {
                        // A stored definition that no longer parses is left out rather than
                        // failing the whole location.
                        if let Ok(doc) = WorkflowDocument::from_json(&definition) {
                            facts.add_document_within(&id, &doc, &budget)?;
                        }
                    }
                    LocationRow::Workflow { id, published, .. } => {
                        facts.add_existing(&id, published)
                    }
                }
            }
            analyze_location_facts_within(&facts, Utc::now(), &budget)
        });
        let read = async {
            let rows_tx = rows_tx;
            // Only once the analysis has its thread: no connection waits in the pool's queue.
            if started.await.is_err() {
                return Ok(());
            }
            self.workflows
                .location_workflows(location_id, MAX_LOCATION_WORKFLOWS, &rows_tx)
                .await
        };
        let (report, read) = tokio::join!(analysis, read);
        // A read that failed half-way left the analysis with part of the location.
        read?;
        let report = report??;
        self.overview_changed(location_id);
        Ok(Bytes::from(serde_json::to_vec(&report)?))
    }

    async fn on_analysis_threads<T, F>(
        &self,
        owner: Owner<'_>,
        work: F,
    ) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce(&AtomicBool) -> T + Send + 'static,
    {
        self.pool
            .run(owner, work)
            .await
            .map_err(|error| match error {
                PoolError::LocationBusy => RepositoryError::LocationBusy,
                other => RepositoryError::Computation(other.to_string()),
            })
    }
}

/// CPU time an analysis may take unless `ANALYSIS_BUDGET_MS` says otherwise.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(1_000);

/// Whether `error` (or the shared failure it wraps) is a too-complex analysis.
pub(crate) fn is_too_complex(error: &RepositoryError) -> bool {
    match error {
        RepositoryError::Abandoned(AnalysisAbandoned::TooComplex { .. }) => true,
        RepositoryError::Shared(inner) => is_too_complex(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheSettings;
    use crate::config::AnalysisPriority;
    use crate::repository::postgres::{PgAnalysisRepository, PgWorkflowRepository};
    use std::time::Duration;

    fn service_with_smallest_pool() -> AnalysisService {
        service_with_smallest_pool_waiting(Duration::from_millis(50))
    }

    /// A chain of `n` webhooks (analysis costs about 10 µs of CPU a step in a debug build).
    fn webhook_chain(n: usize) -> WorkflowDocument {
        let steps: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let next = (i + 1 < n).then(|| format!("s{}", i + 1));
                serde_json::json!({"id": format!("s{i}"), "type": "webhook", "next": next,
                    "config": {"url": format!("http://10.0.0.{}/h", i % 250)}})
            })
            .collect();
        WorkflowDocument::from_json(&serde_json::json!({"name": "chain", "status": "published",
            "start": "s0", "triggers": [{"id": "t", "type": "form_submitted"}], "steps": steps}))
        .expect("a document")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_timed_out_frees_the_thread_for_the_next_location() {
        // A's and C's work (one of the pool's two threads each) runs until it is told to stop
        // (at most 30 s): without the cancel flag both threads would stay on it past B's
        // deadline, and B would answer busy. (That the engine stops at its next check once
        // the flag is up is the budget's own test.)
        let deadline = Duration::from_millis(250);
        let service =
            service_with_smallest_pool_waiting(deadline).with_budget(Duration::from_secs(60));
        let spin = |cancel: &AtomicBool| {
            let started = std::time::Instant::now();
            while !cancel.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                std::hint::spin_loop();
            }
        };

        let (a, c) = tokio::join!(
            service.within_deadline("A", spin),
            service.within_deadline("C", spin)
        );
        let b = service
            .ad_hoc_report("B", webhook_chain(3), "small".to_owned(), Plan::Agency)
            .await;

        for held in [a, c] {
            assert!(
                matches!(
                    held,
                    Err(RepositoryError::Abandoned(AnalysisAbandoned::Cancelled))
                ),
                "{held:?}"
            );
        }
        let report: AnalysisReport =
            serde_json::from_slice(&b.expect("B is answered")).expect("a report");
        assert_eq!(report.workflow_id, "small");
    }

    #[tokio::test]
    async fn an_ad_hoc_document_over_the_budget_is_too_complex() {
        let budget = Duration::from_millis(1);
        let service =
            service_with_smallest_pool_waiting(Duration::from_secs(60)).with_budget(budget);

        let result = service
            .ad_hoc_report("A", webhook_chain(20_000), "big".to_owned(), Plan::Agency)
            .await;

        assert!(
            matches!(
                result,
                Err(RepositoryError::Abandoned(AnalysisAbandoned::TooComplex { budget: b })) if b == budget
            ),
            "{result:?}"
        );
    }

    /// A service whose pool has the fewest threads a pool has (two, one per location) and
    /// whose requests wait at most `deadline`. Its repositories are never reached here (the
    /// pool alone is exercised).
    fn service_with_smallest_pool_waiting(deadline: Duration) -> AnalysisService {
        let cache = Cache::new(CacheSettings::default(), &prometheus::Registry::new())
            .expect("in-process cache");
        let db =
            sqlx::PgPool::connect_lazy("postgres://unused@127.0.0.1:1/unused").expect("lazy pool");
        AnalysisService::new(
            Arc::new(PgWorkflowRepository::new(
                crate::repository::postgres::Db::direct(db.clone()),
            )),
            Arc::new(PgAnalysisRepository::new(
                crate::repository::postgres::Db::direct(db),
            )),
            ReadThrough::new(cache, deadline),
            AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool"),
        )
    }

    #[tokio::test]
    async fn work_the_pool_cannot_start_within_the_deadline_is_refused_not_queued_forever() {
        let service = service_with_smallest_pool();
        let occupy = |location: &'static str| {
            let occupied = service.clone();
            tokio::spawn(async move {
                occupied
                    .off_workers(location, || std::thread::sleep(Duration::from_millis(300)))
                    .await
            })
        };
        let (first, second) = (occupy("a"), occupy("c"));
        tokio::time::sleep(Duration::from_millis(20)).await;

        let waiting = service.off_workers("b", || "late").await;
        let _ = (first.await, second.await);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let later = service.off_workers("b", || "on time").await;

        assert!(matches!(waiting, Err(RepositoryError::AnalysisBusy)));
        assert_eq!(later.expect("a free thread"), "on time");
    }
}

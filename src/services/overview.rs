//! The location overview: every workflow with its health score (`GET /api/workflows` with
//! `include=analysis`, a health sort or filter) and the location's totals (`GET /api/summary`).
//!
//! Both are cut from one cache entry per location ([`crate::cache::CacheKeys::overview`]),
//! loaded with one query (workflows joined with the recorded analyses of their current
//! versions) plus the cached location-wide analysis. It is dropped by the writes that drop a
//! workflow and by every analysis of the location that finishes, so no page shows a score
//! older than the last acknowledged write.
//!
//! A workflow whose analysis is not recorded yet is shown `pending`, and the location's
//! pending analyses are computed in the background: one task per location at a time (so it
//! holds at most one of the location's places on the analysis pool, and the pool's lanes make
//! locations take turns), at most [`MAX_BACKGROUND_LOCATIONS`] locations at once. A read never
//! waits for them; it waits at most [`LOCATION_WAIT`] for the location-wide analysis.

use crate::telemetry::carry_request_id;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::cache::ttl;
use crate::domain::analysis::{Issue, LocationReport, RULES_VERSION};
use crate::domain::overview::{AnalysisStatus, Overview, OverviewRow, RowFilter, Sort};
use crate::domain::pagination::Page;
use crate::repository::cached::ReadThrough;
use crate::repository::{
    AnalysisRepository, Fetched, ReadSource, RepositoryError, WorkflowSummary,
};
use crate::services::analysis::{is_too_complex, AnalysisService};

/// Longest an overview load waits for the location-wide analysis before showing the rows
/// pending (it goes on and drops the overview when done).
pub const LOCATION_WAIT: Duration = Duration::from_millis(300);
/// Locations whose pending analyses are computed in the background at once, per instance.
pub const MAX_BACKGROUND_LOCATIONS: usize = 8;
/// Parsed overviews kept (the busiest locations), and the bytes they may hold.
const KEPT_OVERVIEWS: usize = 64;
const KEPT_OVERVIEW_BYTES: u64 = 32 * 1024 * 1024;

/// What the list asks of the overview.
#[derive(Debug, Clone, Default)]
pub struct OverviewQuery {
    pub filter: RowFilter,
    pub sort: Sort,
    /// Whether each row carries `analysis` and `analysisStatus`.
    pub include_analysis: bool,
}

#[derive(Clone)]
pub struct OverviewService {
    inner: Arc<Inner>,
}

struct Inner {
    analysis: AnalysisService,
    analyses: Arc<dyn AnalysisRepository>,
    reads: ReadThrough,
    parsed: quick_cache::sync::Cache<String, Arc<ParsedOverview>, ParsedWeigher>,
    /// Locations with a background task computing their pending analyses.
    running: Mutex<HashSet<String>>,
}

impl OverviewService {
    pub fn new(
        analysis: AnalysisService,
        analyses: Arc<dyn AnalysisRepository>,
        reads: ReadThrough,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                analysis,
                analyses,
                reads,
                parsed: quick_cache::sync::Cache::with_weighter(
                    KEPT_OVERVIEWS,
                    KEPT_OVERVIEW_BYTES,
                    ParsedWeigher,
                ),
                running: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The `data` of one list page: `{workflows, count, pagination}`, as `GET /api/workflows`
    /// answers it.
    pub async fn page(
        &self,
        location_id: &str,
        query: &OverviewQuery,
        page: Page,
    ) -> Result<(Vec<u8>, ReadSource), RepositoryError> {
        let (parsed, source) = self.read(location_id).await?;
        Ok((parsed.page_json(query, page), source))
    }

    /// The `data` of `GET /api/summary`.
    pub async fn summary(
        &self,
        location_id: &str,
    ) -> Result<(Vec<u8>, ReadSource), RepositoryError> {
        let (parsed, source) = self.read(location_id).await?;
        let json = parsed
            .summary
            .get_or_init(|| serde_json::to_vec(&parsed.overview.summary()).unwrap_or_default());
        Ok((json.clone(), source))
    }

    async fn read(
        &self,
        location_id: &str,
    ) -> Result<(Arc<ParsedOverview>, ReadSource), RepositoryError> {
        let key = self
            .inner
            .reads
            .cache
            .keys()
            .overview(location_id, RULES_VERSION);
        let fetched: Fetched<Overview> = self
            .inner
            .reads
            .read(&key, ttl::MEDIUM, "Overview", || {
                let (inner, location) = (Arc::clone(&self.inner), location_id.to_owned());
                move || async move { inner.load(&location).await.map(Some) }
            })
            .await?;
        let parsed = self.parsed_of(location_id, &fetched)?;
        if !parsed.pending.is_empty() || parsed.overview.location_findings.is_none() {
            self.compute_pending(location_id, &parsed);
        }
        Ok((parsed, fetched.source))
    }

    /// The parsed overview of these very bytes: an L1 hit's is kept and reused (the
    /// pointer-equality scheme of `summary_pages`), any other read is parsed once.
    fn parsed_of(
        &self,
        location_id: &str,
        fetched: &Fetched<Overview>,
    ) -> Result<Arc<ParsedOverview>, RepositoryError> {
        let from_l1 = fetched.source == (ReadSource::Hit { tier: "l1" });
        if from_l1 {
            if let Some(parsed) = self.inner.parsed.get(location_id) {
                if parsed.is_of(&fetched.json) {
                    return Ok(parsed);
                }
            }
        }
        let parsed = Arc::new(ParsedOverview::new(fetched.json.clone())?);
        if from_l1 {
            self.inner
                .parsed
                .insert(location_id.to_owned(), Arc::clone(&parsed));
        }
        Ok(parsed)
    }

    /// Starts the location's background task unless it runs or too many do.
    fn compute_pending(&self, location_id: &str, parsed: &ParsedOverview) {
        {
            let mut running = self
                .inner
                .running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if running.contains(location_id) || running.len() >= MAX_BACKGROUND_LOCATIONS {
                return;
            }
            running.insert(location_id.to_owned());
        }
        let task = Running {
            inner: Arc::clone(&self.inner),
            location: location_id.to_owned(),
        };
        let pending = parsed.pending.clone();
        tokio::spawn(carry_request_id(async move {
            let analysis = &task.inner.analysis;
            // Every workflow's analysis reads the location-wide one: it goes first.
            let _ = analysis.location_report(&task.location).await;
            for id in pending {
                // Each finished analysis drops the overview (AnalysisService). When the pool
                // or the database cannot take more now, the next read starts over.
                match analysis.workflow_analysis(&task.location, &id).await {
                    Err(RepositoryError::AnalysisBusy)
                    | Err(RepositoryError::LocationBusy)
                    | Err(RepositoryError::TimedOut) => break,
                    _ => {}
                }
            }
        }));
    }
}

/// A running background task: its location leaves the set when it ends, however it ends.
struct Running {
    inner: Arc<Inner>,
    location: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.location);
    }
}

impl Inner {
    /// The overview as cached: the recorded analyses of the current versions, each with the
    /// location-wide findings that involve it (as `GET /api/workflows/{id}/analysis` adds
    /// them).
    async fn load(&self, location_id: &str) -> Result<Bytes, RepositoryError> {
        let mut rows = self
            .reads
            .bounded(self.analyses.overview_rows(location_id, RULES_VERSION))
            .await?;
        let location =
            match tokio::time::timeout(LOCATION_WAIT, self.analysis.location_fetched(location_id))
                .await
            {
                Ok(Ok(fetched)) => LocationFindings::Known(fetched.decode()?),
                // The workflows' analyses are then answered without location-wide findings.
                Ok(Err(error)) if is_too_complex(&error) => LocationFindings::TooComplex,
                _ => LocationFindings::Pending,
            };
        for row in &mut rows {
            if row.analysis.is_none()
                && self
                    .analysis
                    .version_too_complex(location_id, &row.id, row.version)
            {
                row.analysis_status = AnalysisStatus::TooComplex;
            }
        }
        let location_findings = match &location {
            LocationFindings::Known(report) => {
                add_location_findings(&mut rows, report);
                Some(report.issues_summary.total)
            }
            LocationFindings::TooComplex => Some(0),
            LocationFindings::Pending => {
                // A score without the location-wide findings would differ from the
                // workflow's analysis: it waits for them.
                for row in &mut rows {
                    if row.analysis.take().is_some() {
                        row.analysis_status = AnalysisStatus::Pending;
                    }
                }
                None
            }
        };
        let overview = Overview {
            rules_version: RULES_VERSION.to_owned(),
            rows,
            location_findings,
        };
        Ok(Bytes::from(serde_json::to_vec(&overview)?))
    }
}

enum LocationFindings {
    Known(LocationReport),
    TooComplex,
    Pending,
}

fn add_location_findings(rows: &mut [OverviewRow], report: &LocationReport) {
    let mut involving: HashMap<&str, Vec<&Issue>> = HashMap::new();
    for issue in &report.issues {
        for id in &issue.workflow_ids {
            let findings = involving.entry(id.as_str()).or_default();
            // A finding naming a workflow twice is still one finding of its analysis.
            if !findings.iter().any(|seen| std::ptr::eq(*seen, issue)) {
                findings.push(issue);
            }
        }
    }
    for row in rows {
        if let Some(findings) = involving.get(row.id.as_str()) {
            row.analysis = row
                .analysis
                .take()
                .map(|analysis| analysis.with_location_findings(findings));
        }
    }
}

/// An overview as served: parsed, its rows written out once, its orders made when first
/// asked for.
struct ParsedOverview {
    json: Bytes,
    overview: Overview,
    /// Each row as the list shows it with `include=analysis`.
    with_analysis: Vec<Box<[u8]>>,
    /// Each row as the plain list shows it (a workflow summary).
    plain: Vec<Box<[u8]>>,
    orders: [OnceLock<Vec<u32>>; 4],
    summary: OnceLock<Vec<u8>>,
    /// Ids of the rows whose analysis is pending.
    pending: Vec<String>,
}

impl ParsedOverview {
    fn new(json: Bytes) -> Result<Self, RepositoryError> {
        let overview: Overview = serde_json::from_slice(&json)?;
        let mut with_analysis = Vec::with_capacity(overview.rows.len());
        let mut plain = Vec::with_capacity(overview.rows.len());
        for row in &overview.rows {
            with_analysis.push(serde_json::to_vec(row)?.into_boxed_slice());
            plain.push(serde_json::to_vec(&summary_of(row))?.into_boxed_slice());
        }
        let pending = overview
            .rows
            .iter()
            .filter(|row| row.analysis_status == AnalysisStatus::Pending)
            .map(|row| row.id.clone())
            .collect();
        Ok(Self {
            json,
            overview,
            with_analysis,
            plain,
            orders: Default::default(),
            summary: OnceLock::new(),
            pending,
        })
    }

    fn is_of(&self, json: &Bytes) -> bool {
        self.json.as_ptr() == json.as_ptr() && self.json.len() == json.len()
    }

    fn page_json(&self, query: &OverviewQuery, page: Page) -> Vec<u8> {
        let order =
            self.orders[query.sort.index()].get_or_init(|| query.sort.order(&self.overview.rows));
        let matching: Vec<usize> = order
            .iter()
            .map(|i| *i as usize)
            .filter(|i| query.filter.keeps(&self.overview.rows[*i]))
            .collect();
        let start = page.offset().min(matching.len());
        let end = start
            .saturating_add(page.limit as usize)
            .min(matching.len());
        let rows = if query.include_analysis {
            &self.with_analysis
        } else {
            &self.plain
        };
        let shown = &matching[start..end];
        let mut data =
            Vec::with_capacity(shown.iter().map(|i| rows[*i].len() + 1).sum::<usize>() + 128);
        data.extend_from_slice(br#"{"workflows":["#);
        for (n, i) in shown.iter().enumerate() {
            if n > 0 {
                data.push(b',');
            }
            data.extend_from_slice(&rows[*i]);
        }
        data.extend_from_slice(br#"],"count":"#);
        data.extend_from_slice(itoa::Buffer::new().format(shown.len()).as_bytes());
        data.extend_from_slice(br#","pagination":"#);
        // A struct of numbers and a bool into a Vec: serializing cannot fail.
        let _ = serde_json::to_writer(&mut data, &page.describe(matching.len()));
        data.push(b'}');
        data
    }
}

fn summary_of(row: &OverviewRow) -> WorkflowSummary {
    WorkflowSummary {
        id: row.id.clone(),
        name: row.name.clone(),
        status: row.status.clone(),
        version: row.version,
        step_count: row.step_count,
        trigger_count: row.trigger_count,
        updated_at: row.updated_at,
    }
}

#[derive(Clone)]
struct ParsedWeigher;

impl quick_cache::Weighter<String, Arc<ParsedOverview>> for ParsedWeigher {
    fn weight(&self, _: &String, parsed: &Arc<ParsedOverview>) -> u64 {
        // The parsed rows and the written-out ones take about three times the JSON.
        3 * parsed.json.len() as u64 + 1
    }
}

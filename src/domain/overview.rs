//! A location's overview: every workflow with the health of its current version, sortable and
//! filterable, and the location's totals. Pure: the service fills it from Postgres and the
//! cache, this module orders, filters and sums it.
//!
//! A row's numbers are the ones `GET /api/workflows/{id}/analysis` answers: the workflow's
//! own analysis plus the location-wide findings that involve it ([`with_location_findings`]
//! adds them exactly as `AnalysisReport::add_location_findings` does).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::analysis::{grade, Issue, IssuesSummary, Severity};
use super::workflow::FieldError;

/// The numbers `GET /api/workflows/{id}/analysis` answers for the workflow's current
/// version (its own findings plus the location-wide findings that involve it); shown on
/// every plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowAnalysis {
    #[schema(maximum = 100)]
    pub health_score: u32,
    #[schema(schema_with = super::schema::grade)]
    pub grade: String,
    pub issues_summary: IssuesSummary,
    pub rules_version: String,
    #[schema(format = DateTime)]
    pub analyzed_at: String,
}

impl RowAnalysis {
    /// The analysis with `findings` (location-wide, involving this workflow) counted in.
    pub fn with_location_findings(mut self, findings: &[&Issue]) -> Self {
        if findings.is_empty() {
            return self;
        }
        let s = &mut self.issues_summary;
        for finding in findings {
            let count = match finding.severity {
                Severity::Critical => &mut s.critical,
                Severity::High => &mut s.high,
                Severity::Medium => &mut s.medium,
                Severity::Low => &mut s.low,
            };
            *count = count.saturating_add(1);
        }
        s.total = s.critical + s.high + s.medium + s.low;
        self.health_score = s.health_score();
        self.grade = grade(self.health_score).to_owned();
        self
    }

    /// Whether at least one finding is at `level` or more severe.
    fn reaches(&self, level: Severity) -> bool {
        let s = &self.issues_summary;
        [
            (Severity::Critical, s.critical),
            (Severity::High, s.high),
            (Severity::Medium, s.medium),
            (Severity::Low, s.low),
        ]
        .iter()
        .any(|(severity, count)| *severity <= level && *count > 0)
    }
}

/// Where a row's analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AnalysisStatus {
    /// `analysis` holds the numbers.
    Done,
    /// Not computed yet (or the location-wide findings are not): being computed.
    Pending,
    /// The current version is too complex to analyze within the analysis budget.
    TooComplex,
}

/// One workflow of the overview: its summary (as `GET /api/workflows` lists it) and its
/// health (a row of `GET /api/workflows?include=analysis`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ScoredWorkflowSummary)]
pub struct OverviewRow {
    pub id: String,
    pub name: String,
    #[schema(schema_with = super::schema::workflow_status)]
    pub status: String,
    #[schema(minimum = 1)]
    pub version: i64,
    #[schema(minimum = 0)]
    pub step_count: i32,
    #[schema(minimum = 0)]
    pub trigger_count: i32,
    pub updated_at: DateTime<Utc>,
    /// `null` until `analysisStatus` is `done`.
    pub analysis: Option<RowAnalysis>,
    /// `pending`: being computed in the background, ask again (no write needed);
    /// `tooComplex`: the current version cannot be analyzed within the analysis budget.
    pub analysis_status: AnalysisStatus,
}

/// A location's overview as cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub rules_version: String,
    pub rows: Vec<OverviewRow>,
    /// Findings of the location-wide analysis (`None` while it is pending).
    pub location_findings: Option<u32>,
}

/// `sort=`: the list's order; equal keys are ordered by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Worst first; rows without a score last.
    HealthScore,
    /// Best first; rows without a score last.
    HealthScoreDesc,
    Name,
    #[default]
    UpdatedAtDesc,
}

impl Sort {
    pub const ALL: [Sort; 4] = [
        Sort::HealthScore,
        Sort::HealthScoreDesc,
        Sort::Name,
        Sort::UpdatedAtDesc,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sort| sort.as_str() == text)
    }

    /// As `sort=` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HealthScore => "healthScore",
            Self::HealthScoreDesc => "-healthScore",
            Self::Name => "name",
            Self::UpdatedAtDesc => "-updatedAt",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Row indices of `rows` in this order.
    pub fn order(self, rows: &[OverviewRow]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        let row = |i: &u32| &rows[*i as usize];
        let score = |i: &u32| row(i).analysis.as_ref().map(|a| a.health_score);
        order.sort_by(|a, b| {
            let by_key = match self {
                Sort::HealthScore | Sort::HealthScoreDesc => match (score(a), score(b)) {
                    (Some(x), Some(y)) if self == Sort::HealthScore => x.cmp(&y),
                    (Some(x), Some(y)) => y.cmp(&x),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                },
                Sort::Name => row(a).name.cmp(&row(b).name),
                Sort::UpdatedAtDesc => row(b).updated_at.cmp(&row(a).updated_at),
            };
            by_key.then_with(|| row(a).id.cmp(&row(b).id))
        });
        order
    }
}

/// The grades a score can have, worst last (CONTRACT §8).
pub const GRADES: [&str; 5] = [
    "Excellent",
    "Good",
    "Needs Attention",
    "High Risk",
    "Critical",
];

/// What the overview list keeps: by status, grades and a least severity.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    pub status: Option<String>,
    /// Grade names as [`GRADES`] spells them; any of them matches.
    pub grades: Vec<&'static str>,
    pub min_severity: Option<Severity>,
}

impl RowFilter {
    /// `grade=` as sent: one or more grade names, comma-separated, any case.
    pub fn parse_grades(text: &str, errors: &mut Vec<FieldError>) -> Vec<&'static str> {
        let mut grades = Vec::new();
        for part in text.split(',') {
            match GRADES
                .iter()
                // Spaces only (not tabs or other blanks): what the document's pattern says.
                .find(|grade| grade.eq_ignore_ascii_case(part.trim_matches(' ')))
            {
                Some(grade) if !grades.contains(grade) => grades.push(*grade),
                Some(_) => {}
                None => {
                    errors.push(FieldError::new(
                        "grade",
                        format!(
                            "must be one or more of {}, comma-separated",
                            GRADES.join(", ")
                        ),
                    ));
                    return Vec::new();
                }
            }
        }
        grades
    }

    pub fn parse_severity(text: &str) -> Option<Severity> {
        match text {
            "critical" => Some(Severity::Critical),
            "high" => Some(Severity::High),
            "medium" => Some(Severity::Medium),
            "low" => Some(Severity::Low),
            _ => None,
        }
    }

    /// A filter on the analysis leaves out rows without one.
    pub fn keeps(&self, row: &OverviewRow) -> bool {
        if self.status.as_deref().is_some_and(|s| s != row.status) {
            return false;
        }
        if self.grades.is_empty() && self.min_severity.is_none() {
            return true;
        }
        let Some(analysis) = &row.analysis else {
            return false;
        };
        (self.grades.is_empty() || self.grades.contains(&analysis.grade.as_str()))
            && self
                .min_severity
                .is_none_or(|level| analysis.reaches(level))
    }
}

/// `GET /api/summary`: the location's totals.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationSummary {
    pub rules_version: String,
    pub workflows: WorkflowTotals,
    /// The analyzed workflows' findings, summed (a location-wide finding counts once for
    /// each workflow it involves, as each workflow's analysis shows it).
    pub issues_by_severity: IssuesSummary,
    /// Findings of the location-wide analysis (`null` while it is pending).
    pub location_findings: Option<u32>,
    /// The 5 lowest scores, then by id.
    #[schema(max_items = 5)]
    pub worst_workflows: Vec<WorstWorkflow>,
    /// Workflows whose analysis is not in these totals yet (being computed).
    pub pending_analyses: usize,
    /// Workflows whose current version is too complex to analyze.
    pub too_complex: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTotals {
    pub total: usize,
    /// Workflows per stored status.
    pub by_status: BTreeMap<String, usize>,
    /// Every grade, 0 included; analyzed workflows only.
    pub by_grade: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorstWorkflow {
    pub id: String,
    pub name: String,
    #[schema(maximum = 100)]
    pub health_score: u32,
    #[schema(schema_with = super::schema::grade)]
    pub grade: String,
}

/// How many workflows the summary names as the worst.
pub const WORST_SHOWN: usize = 5;

impl Overview {
    pub fn summary(&self) -> LocationSummary {
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_grade: BTreeMap<&'static str, usize> =
            GRADES.iter().map(|grade| (*grade, 0)).collect();
        let mut issues = IssuesSummary::default();
        let (mut pending, mut too_complex) = (0, 0);
        for row in &self.rows {
            *by_status.entry(row.status.clone()).or_default() += 1;
            match row.analysis_status {
                AnalysisStatus::Pending => pending += 1,
                AnalysisStatus::TooComplex => too_complex += 1,
                AnalysisStatus::Done => {}
            }
            if let Some(analysis) = &row.analysis {
                if let Some(count) = GRADES
                    .iter()
                    .find(|grade| **grade == analysis.grade)
                    .and_then(|grade| by_grade.get_mut(grade))
                {
                    *count += 1;
                }
                let s = &analysis.issues_summary;
                issues.critical = issues.critical.saturating_add(s.critical);
                issues.high = issues.high.saturating_add(s.high);
                issues.medium = issues.medium.saturating_add(s.medium);
                issues.low = issues.low.saturating_add(s.low);
            }
        }
        issues.total = issues
            .critical
            .saturating_add(issues.high)
            .saturating_add(issues.medium)
            .saturating_add(issues.low);
        let worst_workflows = Sort::HealthScore
            .order(&self.rows)
            .into_iter()
            .filter_map(|i| {
                let row = &self.rows[i as usize];
                row.analysis.as_ref().map(|analysis| WorstWorkflow {
                    id: row.id.clone(),
                    name: row.name.clone(),
                    health_score: analysis.health_score,
                    grade: analysis.grade.clone(),
                })
            })
            .take(WORST_SHOWN)
            .collect();
        LocationSummary {
            rules_version: self.rules_version.clone(),
            workflows: WorkflowTotals {
                total: self.rows.len(),
                by_status,
                by_grade,
            },
            issues_by_severity: issues,
            location_findings: self.location_findings,
            worst_workflows,
            pending_analyses: pending,
            too_complex,
        }
    }
}

#[cfg(test)]
#[path = "overview_tests.rs"]
mod tests;

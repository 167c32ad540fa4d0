//! The workflow analysis engine (pure, no I/O).
//!
//! [`analyze_workflow`] builds the step graph ([`graph`]), runs every rule of
//! [`rules::rule_set`] and assembles the CONTRACT §8 [`AnalysisReport`].
//! [`analyze_location`] runs the cross-workflow rules ([`location`]).
//!
//! Decisions:
//! - `performance.complexity` is the cyclomatic number `E − N + 2` (at least 1) of the step
//!   graph: `low` ≤ 10, `medium` ≤ 20, `high` above.
//! - `performance.maxPathWaitSeconds` is the heaviest sum of waits along any path from the
//!   entry step, computed on the SCC condensation: the waits of a cycle are counted once.
//!   A wait counts its `duration`; an event wait its `timeout`; a `wait.until` the time left
//!   until that date from the analysis time (0 when past).
//! - Issues are ordered by severity (critical first), then by rule id, then in the order the
//!   rule emitted them (document/step order).
//! - A report lists at most [`MAX_ISSUES_PER_RULE`] findings of one rule (the first ones in
//!   that order); the rest are counted in `issuesOmitted` (per rule and severity) and still
//!   count in `issuesSummary`, the score and the recommendations. A huge document's report
//!   stays small enough to cache and send, and says how much it left out.
//! - [`analyze_workflow_within`] stops at the first check past its [`Budget`] (between
//!   rules, every [`budget::CHECK_EVERY`] steps of the per-step pass) with
//!   [`AnalysisAbandoned`] instead of a report.

pub mod budget;
pub mod graph;
pub mod location;
mod location_facts;
pub mod rule;
pub mod rules;

pub use budget::{AnalysisAbandoned, Budget};
pub use location::{
    analyze_location, analyze_location_facts_within, analyze_location_within, findings_involving,
    LocationFacts, LocationLimits, LocationReport, LocationWorkflow,
};
pub use rule::{Category, Issue, Rule, RuleContext, Severity, StepIndex};

use crate::domain::workflow::{StepType, WorkflowDocument};
use budget::{Checkpoint, Unlimited};
use chrono::{DateTime, SecondsFormat, Utc};
use graph::Graph;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `performance.complexity` values, least complex first.
pub const COMPLEXITIES: [&str; 3] = ["low", "medium", "high"];

/// Version of the rule set; part of every analysis cache key.
pub const RULES_VERSION: &str = "2026.12.1";

/// Findings of one rule a report lists; the rest are counted in `issuesOmitted`.
pub const MAX_ISSUES_PER_RULE: usize = 50;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuesSummary {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub total: u32,
}

impl IssuesSummary {
    pub fn from_issues(issues: &[Issue]) -> IssuesSummary {
        let mut s = IssuesSummary::default();
        for i in issues {
            match i.severity {
                Severity::Critical => s.critical += 1,
                Severity::High => s.high += 1,
                Severity::Medium => s.medium += 1,
                Severity::Low => s.low += 1,
            }
        }
        s.total = s.critical + s.high + s.medium + s.low;
        s
    }
    /// The summary of `issues` and of the findings `omitted` from them.
    pub fn with_omitted(issues: &[Issue], omitted: &[OmittedIssues]) -> IssuesSummary {
        let mut s = IssuesSummary::from_issues(issues);
        for o in omitted {
            let count = &mut match o.severity {
                Severity::Critical => &mut s.critical,
                Severity::High => &mut s.high,
                Severity::Medium => &mut s.medium,
                Severity::Low => &mut s.low,
            };
            **count = count.saturating_add(o.count);
        }
        s.total = s.critical + s.high + s.medium + s.low;
        s
    }
    /// `max(0, 100 − 25·critical − 15·high − 5·medium − 2·low)`.
    pub fn health_score(&self) -> u32 {
        let penalty = 25u64 * u64::from(self.critical)
            + 15 * u64::from(self.high)
            + 5 * u64::from(self.medium)
            + 2 * u64::from(self.low);
        100u64.saturating_sub(penalty) as u32
    }
}

/// Grade of a health score (CONTRACT §8).
pub fn grade(score: u32) -> &'static str {
    match score {
        90.. => "Excellent",
        70..=89 => "Good",
        50..=69 => "Needs Attention",
        30..=49 => "High Risk",
        _ => "Critical",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Performance {
    pub steps: usize,
    pub max_path_wait_seconds: u64,
    /// From the cyclomatic number of the step graph: `low` up to 10, `medium` up to 20.
    #[schema(schema_with = crate::domain::schema::complexity)]
    pub complexity: String,
}

/// Findings of one rule and severity left out of a report's `issues` (past the first
/// `MAX_ISSUES_PER_RULE` = 50); they count in its summary and score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OmittedIssues {
    pub rule: String,
    pub severity: Severity,
    pub count: u32,
}

/// Keeps the first [`MAX_ISSUES_PER_RULE`] findings of each rule in `issues` (sorted, so a
/// rule's findings are together and in their order) and adds the others to `omitted`.
pub(crate) fn cap_issues_per_rule(issues: &mut Vec<Issue>, omitted: &mut Vec<OmittedIssues>) {
    let mut kept_of_rule = 0usize;
    let mut current_rule: Option<String> = None;
    issues.retain(|issue| {
        if current_rule.as_deref() != Some(issue.rule.as_str()) {
            current_rule = Some(issue.rule.clone());
            kept_of_rule = 0;
        }
        if kept_of_rule < MAX_ISSUES_PER_RULE {
            kept_of_rule += 1;
            return true;
        }
        match omitted
            .iter_mut()
            .find(|o| o.rule == issue.rule && o.severity == issue.severity)
        {
            Some(o) => o.count = o.count.saturating_add(1),
            None => omitted.push(OmittedIssues {
                rule: issue.rule.clone(),
                severity: issue.severity,
                count: 1,
            }),
        }
        false
    });
    omitted.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then_with(|| a.rule.cmp(&b.rule))
    });
}

/// Free plan only: how much was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Upgrade {
    pub hidden: usize,
    pub message: String,
}

/// The CONTRACT §8 analysis result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Analysis)]
pub struct AnalysisReport {
    pub workflow_id: String,
    pub workflow_name: String,
    pub version: i64,
    pub rules_version: String,
    #[schema(maximum = 100)]
    pub health_score: u32,
    #[schema(schema_with = crate::domain::schema::grade)]
    pub grade: String,
    pub issues_summary: IssuesSummary,
    pub issues: Vec<Issue>,
    /// Present only when a rule found more than 50 issues (`MAX_ISSUES_PER_RULE`): the
    /// findings past the first 50 of a rule, counted per rule and severity (they count in
    /// `issuesSummary` and the score).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues_omitted: Vec<OmittedIssues>,
    pub recommendations: Vec<String>,
    pub performance: Performance,
    #[schema(format = DateTime)]
    pub analyzed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub upgrade: Option<Upgrade>,
}

impl AnalysisReport {
    /// The report as `plan` may see it: whole on a plan with full analysis, else truncated
    /// as [`AnalysisReport::truncate_for_free_plan`] says.
    pub fn for_plan(mut self, plan: crate::domain::plan::Plan) -> Self {
        if !plan.features().full_analysis {
            self.truncate_for_free_plan();
        }
        self
    }

    /// Free plan: the first 3 issues and 2 recommendations. `issuesSummary`, the score and
    /// the grade still describe every issue. `upgrade` is always set (`hidden` may be 0).
    pub fn truncate_for_free_plan(&mut self) {
        const FREE_ISSUES: usize = 3;
        const FREE_RECOMMENDATIONS: usize = 2;
        let omitted: usize = self.issues_omitted.iter().map(|o| o.count as usize).sum();
        let hidden = self.issues.len().saturating_sub(FREE_ISSUES) + omitted;
        self.issues.truncate(FREE_ISSUES);
        // `hidden` counts them; which rules they belong to is part of what is hidden.
        self.issues_omitted.clear();
        self.recommendations.truncate(FREE_RECOMMENDATIONS);
        let message = if hidden == 0 {
            "Upgrade to a paid plan for location-wide analysis and full history.".to_string()
        } else {
            format!(
                "{hidden} more issue{} hidden on the free plan; upgrade to see every issue and fix.",
                if hidden == 1 { " is" } else { "s are" }
            )
        };
        self.upgrade = Some(Upgrade { hidden, message });
    }

    pub fn has_critical(&self) -> bool {
        self.issues_summary.critical > 0
    }

    /// Adds the location-wide findings that involve this workflow (a cascade it is part of, a
    /// missing target it names) and recomputes what depends on the issue list.
    pub fn add_location_findings(&mut self, findings: Vec<Issue>) {
        if findings.is_empty() {
            return;
        }
        self.issues.extend(findings);
        sort_issues(&mut self.issues);
        cap_issues_per_rule(&mut self.issues, &mut self.issues_omitted);
        self.issues_summary = IssuesSummary::with_omitted(&self.issues, &self.issues_omitted);
        self.health_score = self.issues_summary.health_score();
        self.grade = grade(self.health_score).to_string();
        self.recommendations = recommendations(&self.issues, &self.issues_omitted);
    }
}

/// Orders issues: severity, then rule id, keeping each rule's own (step) order.
pub(crate) fn sort_issues(issues: &mut [Issue]) {
    issues.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then_with(|| a.rule.cmp(&b.rule))
    });
}

pub(crate) fn category_of(rule_id: &str) -> Category {
    rules::rule_set()
        .iter()
        .find(|r| r.id() == rule_id)
        .map(|r| r.category())
        .unwrap_or(Category::CrossWorkflow)
}

/// One recommendation per category present (listed or omitted findings), most severe
/// category first.
pub(crate) fn recommendations(issues: &[Issue], omitted: &[OmittedIssues]) -> Vec<String> {
    let mut cats: Vec<(Severity, Category, Vec<&str>, usize)> = Vec::new();
    let findings = issues
        .iter()
        .map(|i| (i.rule.as_str(), i.severity, 1usize))
        .chain(
            omitted
                .iter()
                .map(|o| (o.rule.as_str(), o.severity, o.count as usize)),
        );
    let mut last: Option<(&str, Category)> = None;
    for (rule, severity, count) in findings {
        // Findings of a rule are adjacent: its category is looked up once per run of them.
        let c = match last {
            Some((r, c)) if r == rule => c,
            _ => category_of(rule),
        };
        last = Some((rule, c));
        match cats.iter_mut().find(|x| x.1 == c) {
            Some(entry) => {
                entry.0 = entry.0.min(severity);
                entry.3 += count;
                if !entry.2.contains(&rule) {
                    entry.2.push(rule);
                }
            }
            None => cats.push((severity, c, vec![rule], count)),
        }
    }
    cats.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    cats.into_iter()
        .map(|(sev, cat, rules, count)| {
            let (label, advice) = match cat {
                Category::Structure => (
                    "Structure",
                    "fix the flow first: make sure every step is connected, reachable and that loops wait and can end",
                ),
                Category::Configuration => (
                    "Configuration",
                    "complete the step settings, use secure public webhook URLs and keep secrets in custom values",
                ),
                Category::TriggersAndMessaging => (
                    "Triggers and messaging",
                    "avoid re-triggering the workflow, space messages with waits and respect quiet hours",
                ),
                Category::CrossWorkflow => (
                    "Cross-workflow",
                    "break cascades between workflows and point add/remove steps at existing, published workflows",
                ),
            };
            format!(
                "{label} ({count} issue{}, up to {}: {}): {advice}.",
                if count == 1 { "" } else { "s" },
                sev.as_str(),
                rules.join(", ")
            )
        })
        .collect()
}

/// Wait seconds a step contributes to a path (see module docs).
pub(crate) fn wait_seconds(step: &crate::domain::workflow::Step, now: DateTime<Utc>) -> u64 {
    if step.step_type != StepType::Wait {
        return 0;
    }
    let c = &step.config;
    if let Some(d) =
        rules::common::get_present(c, &["duration"]).and_then(rules::common::parse_duration)
    {
        return d;
    }
    if let Some(until) = rules::common::get_str(c, &["until"]).and_then(rules::common::parse_until)
    {
        return u64::try_from((until - now).num_seconds()).unwrap_or(0);
    }
    rules::common::get_present(c, &["timeout"])
        .and_then(rules::common::parse_duration)
        .unwrap_or(0)
}

/// Analyses one workflow document, however long it takes (the command line, tests,
/// benches). The service uses [`analyze_workflow_within`].
pub fn analyze_workflow(
    workflow_id: &str,
    version: i64,
    doc: &WorkflowDocument,
    now: DateTime<Utc>,
) -> AnalysisReport {
    let Ok(report) = analyze(workflow_id, version, doc, now, &Unlimited);
    report
}

/// Analyses one workflow document within `budget`: `Err` as soon as a check finds it spent
/// or cancelled (see [`budget`]).
pub fn analyze_workflow_within(
    workflow_id: &str,
    version: i64,
    doc: &WorkflowDocument,
    now: DateTime<Utc>,
    budget: &Budget<'_>,
) -> Result<AnalysisReport, AnalysisAbandoned> {
    analyze(workflow_id, version, doc, now, budget)
}

fn analyze<C: Checkpoint>(
    workflow_id: &str,
    version: i64,
    doc: &WorkflowDocument,
    now: DateTime<Utc>,
    budget: &C,
) -> Result<AnalysisReport, C::Stop> {
    let graph = Graph::build(doc);
    budget.check()?;
    let reachable = graph::bfs(&graph.adj, graph.entry, |_| true);
    let sccs = graph::tarjan(&graph.adj, |_| true);
    budget.check()?;
    let index = StepIndex::build(doc);
    let ctx = RuleContext {
        doc,
        graph: &graph,
        reachable: &reachable,
        sccs: &sccs,
        index: &index,
        now,
    };
    let (per_step, whole): (Vec<&dyn Rule>, Vec<&dyn Rule>) =
        rules::rule_set().iter().partition(|r| r.is_per_step());
    let mut issues: Vec<Issue> = Vec::new();
    for rule in &whole {
        budget.check()?;
        issues.extend(rule.check(&ctx));
    }
    let mut weights = vec![0u64; doc.steps.len()];
    // One fused pass for the per-step rules: each step's data is loaded once for all of them.
    // Sorting below is stable, so each rule's findings stay in step order.
    for (i, step) in doc.steps.iter().enumerate() {
        budget.check_every(i)?;
        for r in &per_step {
            r.check_step(&ctx, i, step, &mut issues);
        }
        if step.step_type == StepType::Wait {
            weights[i] = wait_seconds(step, now);
        }
    }
    budget.check()?;
    sort_issues(&mut issues);
    let mut issues_omitted = Vec::new();
    cap_issues_per_rule(&mut issues, &mut issues_omitted);
    let summary = IssuesSummary::with_omitted(&issues, &issues_omitted);
    let score = summary.health_score();

    let max_wait = graph::longest_path_weight(&graph.adj, &sccs, graph.entry, &weights);
    let cyclomatic = (graph.edge_count as i64 - graph.len() as i64 + 2).max(1);
    let complexity = match cyclomatic {
        ..=10 => COMPLEXITIES[0],
        11..=20 => COMPLEXITIES[1],
        _ => COMPLEXITIES[2],
    };

    Ok(AnalysisReport {
        workflow_id: workflow_id.to_string(),
        workflow_name: doc.name.clone(),
        version,
        rules_version: RULES_VERSION.to_string(),
        health_score: score,
        grade: grade(score).to_string(),
        issues_summary: summary,
        recommendations: recommendations(&issues, &issues_omitted),
        issues,
        issues_omitted,
        performance: Performance {
            steps: doc.steps.len(),
            max_path_wait_seconds: max_wait,
            complexity: complexity.to_string(),
        },
        analyzed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        upgrade: None,
    })
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;

//! Location-wide (cross-workflow) rules: `workflow-cascade-loop`, `missing-target-workflow`,
//! `draft-target-workflow`.
//!
//! Cascade edges: A → B when a step reachable in A adds tag X (`add_tag` with `config.tag`
//! or `config.tags`) and B has a `contact_tag_added` trigger whose `filters.tag` is X
//! (case-insensitive; triggers without a tag filter are not linked, to keep the graph
//! precise); and A → B when a reachable `add_to_workflow` step in A names B. Every strongly
//! connected set of two or more workflows is one finding; a single workflow is reported only
//! when it adds itself with `add_to_workflow` (its tag self-loops are `self-retrigger`).
//! Draft workflows take part (they loop as soon as they are published).

use super::budget::{AnalysisAbandoned, Budget, Checkpoint, Unlimited};
use super::graph;
pub use super::location_facts::LocationFacts;
use super::location_facts::{StepAction, StepFacts, WorkflowFacts};
use super::rule::{id_list, Issue, Severity};
use super::rules::common::get_present;
use super::{
    cap_issues_per_rule, sort_issues, IssuesSummary, OmittedIssues, MAX_ISSUES_PER_RULE,
    RULES_VERSION,
};
use crate::domain::workflow::WorkflowDocument;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Workflows of a location whose steps are looked at (in the order given; the service gives
/// them by id). Every workflow still counts as an existing target of `add_to_workflow` (the
/// ones past the cap are held by id only when named, see [`LocationFacts`]).
pub const MAX_LOCATION_WORKFLOWS: usize = 2_000;
/// Cascade edges looked at; past it no more edges are added.
pub const MAX_LOCATION_EDGES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct LocationWorkflow<'a> {
    pub id: &'a str,
    pub doc: &'a WorkflowDocument,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationReport {
    pub rules_version: String,
    /// How many workflows were analyzed.
    pub workflows: usize,
    pub issues_summary: IssuesSummary,
    /// Every finding has `workflowIds` (and the `stepIds` involved).
    pub issues: Vec<Issue>,
    /// Present only when a rule found more than 50 issues (`MAX_ISSUES_PER_RULE`): the
    /// findings past the first 50 of a rule, counted per rule and severity (they count in
    /// `issuesSummary` and the score).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues_omitted: Vec<OmittedIssues>,
    /// Present only when a cap was reached: the findings then cover part of the location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limits: Option<LocationLimits>,
    #[schema(format = DateTime)]
    pub analyzed_at: String,
}

/// What a location analysis looked at when it reached a cap (`MAX_LOCATION_WORKFLOWS` =
/// 2000 workflows, `MAX_LOCATION_EDGES` = 100000 cascade edges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationLimits {
    pub workflows_considered: usize,
    pub workflows_total: usize,
    pub edges_considered: usize,
    pub truncated: bool,
}

impl LocationReport {
    pub fn has_critical(&self) -> bool {
        self.issues_summary.critical > 0
    }
}

/// The location findings that involve `workflow_id`.
pub fn findings_involving(report: &LocationReport, workflow_id: &str) -> Vec<Issue> {
    report
        .issues
        .iter()
        .filter(|i| i.workflow_ids.iter().any(|w| w == workflow_id))
        .cloned()
        .collect()
}

/// Tags named by `config.tag` (string) or `config.tags` (array of strings / one string),
/// trimmed, lower-cased, each once (first-seen order).
pub(crate) fn tags_of(config: &serde_json::Map<String, Value>) -> Vec<String> {
    distinct_tags(config)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

/// [`tags_of`] borrowing from the document where a tag needs no change: a step listing one tag
/// thousands of times costs one entry, not thousands of strings.
pub(crate) fn distinct_tags(config: &serde_json::Map<String, Value>) -> Vec<Cow<'_, str>> {
    let listed = |key| {
        config
            .get(key)
            .and_then(Value::as_array)
            .map_or(1, Vec::len)
    };
    // Up to 16 tags, searching those kept beats two hash sets (same tags, same order).
    let small = listed("tag") + listed("tags") <= 16;
    let mut raw_seen: HashSet<&str> = HashSet::new();
    let mut seen: HashSet<Cow<'_, str>> = HashSet::new();
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    let raws = ["tag", "tags"].into_iter().flat_map(|key| {
        let values: Box<dyn Iterator<Item = &str>> = match config.get(key) {
            Some(Value::String(s)) => Box::new(std::iter::once(s.as_str())),
            Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
            _ => Box::new(std::iter::empty()),
        };
        values
    });
    for raw in raws {
        if !small && !raw_seen.insert(raw) {
            continue;
        }
        let Some(tag) = normalized_tag(raw) else {
            continue;
        };
        let first = match small {
            true => !out.contains(&tag),
            false => seen.insert(tag.clone()),
        };
        if first {
            out.push(tag);
        }
    }
    out
}

/// Trimmed and lower-cased; borrowed when that changes nothing. `None` for a blank tag.
fn normalized_tag(raw: &str) -> Option<Cow<'_, str>> {
    let tag = raw.trim();
    if tag.is_empty() {
        return None;
    }
    if tag.chars().all(|c| c.to_lowercase().eq(std::iter::once(c))) {
        Some(Cow::Borrowed(tag))
    } else {
        Some(Cow::Owned(tag.to_lowercase()))
    }
}

/// The workflows a step names in `config.workflowId` (or `workflow_id`): one id, or a list
/// of them (an imported GoHighLevel `remove_from_workflow` names several).
pub(crate) fn target_workflows(config: &serde_json::Map<String, Value>) -> Vec<&str> {
    let ids: Box<dyn Iterator<Item = &str>> =
        match get_present(config, &["workflowId", "workflow_id"]) {
            Some(Value::String(s)) => Box::new(std::iter::once(s.as_str())),
            Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
            _ => Box::new(std::iter::empty()),
        };
    let mut seen: HashSet<&str> = HashSet::new();
    ids.map(str::trim)
        .filter(|id| !id.is_empty() && seen.insert(id))
        .collect()
}

/// A → `to` because step `step_id` of A adds a tag `to` is triggered by, or adds contacts to
/// `to`. One per (step, target): the step's id is borrowed from the location's facts.
struct Edge<'a> {
    to: usize,
    step_id: &'a str,
    via_add_to_workflow: bool,
}

/// The cross-workflow findings of a location, however long they take (command line, tests).
pub fn analyze_location(workflows: &[LocationWorkflow<'_>], now: DateTime<Utc>) -> LocationReport {
    let Ok(facts) = facts_of(workflows, &Unlimited);
    let Ok(report) = analyze(&facts, now, &Unlimited);
    report
}

/// [`analyze_location`] within `budget` (checked per workflow and every few steps and edges).
pub fn analyze_location_within(
    workflows: &[LocationWorkflow<'_>],
    now: DateTime<Utc>,
    budget: &Budget<'_>,
) -> Result<LocationReport, AnalysisAbandoned> {
    analyze(&facts_of(workflows, budget)?, now, budget)
}

/// The findings of a location whose facts were gathered one workflow at a time (the service
/// reads a location's documents one by one), within `budget`.
pub fn analyze_location_facts_within(
    facts: &LocationFacts,
    now: DateTime<Utc>,
    budget: &Budget<'_>,
) -> Result<LocationReport, AnalysisAbandoned> {
    analyze(facts, now, budget)
}

fn facts_of<C: Checkpoint>(
    workflows: &[LocationWorkflow<'_>],
    budget: &C,
) -> Result<LocationFacts, C::Stop> {
    let mut facts = LocationFacts::new();
    for (i, w) in workflows.iter().enumerate() {
        budget.check_every(i)?;
        facts.add_document(w.id, w.doc, budget)?;
    }
    Ok(facts)
}

/// Findings of one rule counted rather than built once [`MAX_ISSUES_PER_RULE`] are kept: a
/// location can name thousands of missing targets.
#[derive(Default)]
struct Capped {
    issues: Vec<Issue>,
    omitted: Vec<OmittedIssues>,
}

impl Capped {
    fn push(&mut self, rule: &str, severity: Severity, make: impl FnOnce() -> Issue) {
        let kept = self.issues.iter().filter(|i| i.rule == rule).count();
        if kept < MAX_ISSUES_PER_RULE {
            self.issues.push(make());
            return;
        }
        match self.omitted.iter_mut().find(|o| o.rule == rule) {
            Some(o) => o.count = o.count.saturating_add(1),
            None => self.omitted.push(OmittedIssues {
                rule: rule.to_owned(),
                severity,
                count: 1,
            }),
        }
    }
}

fn analyze<C: Checkpoint>(
    facts: &LocationFacts,
    now: DateTime<Utc>,
    budget: &C,
) -> Result<LocationReport, C::Stop> {
    let workflows = &facts.workflows[..];
    let considered = &workflows[..facts.considered];
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(workflows.len());
    for (i, w) in workflows.iter().enumerate() {
        by_id.entry(w.id.as_str()).or_insert(i);
    }
    let links = Links {
        workflows,
        considered: considered.len(),
        by_id,
        triggered_by_tag: tag_triggers(considered, budget)?,
    };
    let mut found = Capped::default();
    let mut edges = Edges::new(considered.len());
    for w in considered {
        budget.check()?;
        edges.add_workflow(w, &links, &mut found, budget)?;
    }
    cascade_loops(workflows, &edges.lists, budget, &mut found)?;

    let Capped {
        mut issues,
        mut omitted,
    } = found;
    sort_issues(&mut issues);
    cap_issues_per_rule(&mut issues, &mut omitted);
    let truncated = considered.len() < facts.total || edges.capped;
    Ok(LocationReport {
        rules_version: RULES_VERSION.to_string(),
        workflows: facts.total,
        issues_summary: IssuesSummary::with_omitted(&issues, &omitted),
        issues,
        issues_omitted: omitted,
        limits: truncated.then_some(LocationLimits {
            workflows_considered: considered.len(),
            workflows_total: facts.total,
            edges_considered: edges.count,
            truncated,
        }),
        analyzed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// The workflows (of those considered) that each tag triggers, each listed once per tag.
fn tag_triggers<'a, C: Checkpoint>(
    considered: &'a [WorkflowFacts],
    budget: &C,
) -> Result<HashMap<&'a str, Vec<usize>>, C::Stop> {
    let mut triggered_by_tag: HashMap<&'a str, Vec<usize>> = HashMap::new();
    for (i, w) in considered.iter().enumerate() {
        budget.check_every(i)?;
        for tag in &w.trigger_tags {
            let list = triggered_by_tag.entry(tag.as_str()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    Ok(triggered_by_tag)
}

/// What a step can point at: every workflow held by id, and the workflows each tag triggers
/// (among the first `considered`, which alone get edges).
struct Links<'a> {
    workflows: &'a [WorkflowFacts],
    considered: usize,
    by_id: HashMap<&'a str, usize>,
    triggered_by_tag: HashMap<&'a str, Vec<usize>>,
}

/// The edges between workflows, at most [`MAX_LOCATION_EDGES`], one per (step, target).
struct Edges<'a> {
    lists: Vec<Vec<Edge<'a>>>,
    /// The edges of the workflow being added.
    current: Vec<Edge<'a>>,
    count: usize,
    capped: bool,
    /// `last_step[t]`: the serial of the last step that got an edge to workflow t.
    last_step: Vec<usize>,
    step_serial: usize,
    /// Tag lookups so far, for the budget's checks.
    work: usize,
}

impl<'a> Edges<'a> {
    fn new(considered: usize) -> Self {
        Self {
            lists: Vec::with_capacity(considered),
            current: Vec::new(),
            count: 0,
            capped: false,
            last_step: vec![usize::MAX; considered],
            step_serial: 0,
            work: 0,
        }
    }

    /// The edges of one workflow's reachable steps, and its missing or draft targets.
    fn add_workflow<C: Checkpoint>(
        &mut self,
        w: &'a WorkflowFacts,
        links: &Links<'a>,
        found: &mut Capped,
        budget: &C,
    ) -> Result<(), C::Stop> {
        for (si, step) in w.steps.iter().enumerate() {
            budget.check_every(si)?;
            self.step_serial += 1;
            match &step.action {
                StepAction::Names { adds, targets } => {
                    for target in targets {
                        self.workflow_step(w, step, *adds, target, links, found);
                    }
                }
                StepAction::AddsTags(tags) if !self.capped => {
                    self.tag_step(step, tags, links, budget)?;
                }
                StepAction::AddsTags(_) => {}
            }
        }
        self.lists.push(std::mem::take(&mut self.current));
        Ok(())
    }

    /// `add_to_workflow` (`adds`) / `remove_from_workflow`: a missing or draft target is a
    /// finding; a reachable `add_to_workflow` is an edge.
    fn workflow_step(
        &mut self,
        w: &WorkflowFacts,
        step: &'a StepFacts,
        adds: bool,
        target: &str,
        links: &Links<'a>,
        found: &mut Capped,
    ) {
        if target.contains("{{") {
            return;
        }
        let Some(&t) = links.by_id.get(target) else {
            found.push("missing-target-workflow", Severity::High, || {
                missing_target(&w.id, &step.id, target)
            });
            return;
        };
        if !adds {
            return;
        }
        if !links.workflows[t].published {
            found.push("draft-target-workflow", Severity::Medium, || {
                draft_target(&w.id, &step.id, target)
            });
        }
        // A target past the cap has no edges of its own: no cycle runs through it.
        if step.reachable && t < links.considered {
            if self.count < MAX_LOCATION_EDGES {
                self.count += 1;
                self.current.push(Edge {
                    to: t,
                    step_id: &step.id,
                    via_add_to_workflow: true,
                });
            } else {
                self.capped = true;
            }
        }
    }

    /// `add_tag`: an edge to every workflow a tag it adds triggers.
    fn tag_step<C: Checkpoint>(
        &mut self,
        step: &'a StepFacts,
        tags: &[String],
        links: &Links<'a>,
        budget: &C,
    ) -> Result<(), C::Stop> {
        for tag in tags {
            let triggered = links.triggered_by_tag.get(tag.as_str());
            for &t in triggered.map(Vec::as_slice).unwrap_or(&[]) {
                self.work += 1;
                budget.check_every(self.work)?;
                if self.last_step[t] == self.step_serial {
                    continue;
                }
                self.last_step[t] = self.step_serial;
                if self.count == MAX_LOCATION_EDGES {
                    self.capped = true;
                    return Ok(());
                }
                self.count += 1;
                self.current.push(Edge {
                    to: t,
                    step_id: &step.id,
                    via_add_to_workflow: false,
                });
            }
        }
        Ok(())
    }
}

/// One `workflow-cascade-loop` finding per cycle of workflows that start each other.
fn cascade_loops<C: Checkpoint>(
    workflows: &[WorkflowFacts],
    edges: &[Vec<Edge<'_>>],
    budget: &C,
    found: &mut Capped,
) -> Result<(), C::Stop> {
    // A tag a workflow adds to itself is not a cascade; adding contacts to itself is.
    let adj: Vec<Vec<usize>> = edges
        .iter()
        .enumerate()
        .map(|(i, es)| {
            let mut v: Vec<usize> = es
                .iter()
                .filter(|e| e.to != i || e.via_add_to_workflow)
                .map(|e| e.to)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    budget.check()?;
    let sccs = graph::tarjan(&graph::Csr::from_lists(&adj), |_| true);
    budget.check()?;
    let mut cycles: Vec<&[usize]> = sccs
        .components
        .iter()
        .zip(&sccs.cyclic)
        .filter(|(_, &c)| c)
        .map(|(m, _)| m)
        .collect();
    cycles.sort_by_key(|m| m.first().copied());
    for members in cycles {
        budget.check()?;
        found.issues.push(cascade_issue(
            workflows, edges, &sccs.comp, members, budget,
        )?);
    }
    Ok(())
}

fn cascade_issue<C: Checkpoint>(
    workflows: &[WorkflowFacts],
    edges: &[Vec<Edge<'_>>],
    comp_of: &[usize],
    members: &[usize],
    budget: &C,
) -> Result<Issue, C::Stop> {
    let comp = comp_of[members[0]];
    let workflow_ids: Vec<String> = members.iter().map(|&m| workflows[m].id.clone()).collect();
    let mut step_ids: Vec<String> = Vec::new();
    let mut steps_seen: HashSet<&str> = HashSet::new();
    let mut links: Vec<String> = Vec::new();
    for &m in members {
        for (k, e) in edges[m].iter().enumerate() {
            budget.check_every(k)?;
            if comp_of[e.to] == comp && (e.to != m || e.via_add_to_workflow) {
                if steps_seen.insert(e.step_id) {
                    step_ids.push(e.step_id.to_owned());
                }
                if links.len() < 10 {
                    let link = format!(
                        "\"{}\" (step \"{}\") → \"{}\"",
                        workflows[m].id, e.step_id, workflows[e.to].id
                    );
                    if !links.contains(&link) {
                        links.push(link);
                    }
                }
            }
        }
    }
    let mut issue = Issue::new(
        "workflow-cascade-loop",
        Severity::Critical,
        "Workflows trigger each other in a loop",
        format!(
            "Workflows {} start each other in a cycle: {}. A contact entering any of them is passed around indefinitely.",
            id_list(&workflow_ids),
            links.join(", ")
        ),
        step_ids,
        "Break the cycle: remove one of the add_tag / add_to_workflow steps listed, or add a trigger filter (or a remove_tag before re-adding) so the chain cannot return to its start.",
    );
    issue.workflow_ids = workflow_ids;
    Ok(issue)
}

fn missing_target(workflow: &str, step: &str, target: &str) -> Issue {
    let mut i = Issue::new(
        "missing-target-workflow",
        Severity::High,
        "Step targets a workflow that does not exist",
        format!("Step \"{step}\" of workflow \"{workflow}\" names workflow \"{target}\", which this location does not have."),
        vec![step.to_string()],
        "Point the step at an existing workflow id, or remove the step.",
    );
    i.workflow_ids = vec![workflow.to_string(), target.to_string()];
    i
}

fn draft_target(workflow: &str, step: &str, target: &str) -> Issue {
    let mut i = Issue::new(
        "draft-target-workflow",
        Severity::Medium,
        "Contacts are added to a draft workflow",
        format!("Step \"{step}\" of workflow \"{workflow}\" adds contacts to workflow \"{target}\", which is a draft and will not run them."),
        vec![step.to_string()],
        "Publish the target workflow, or point the step at a published one.",
    );
    i.workflow_ids = vec![workflow.to_string(), target.to_string()];
    i
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;

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

use super::graph::{self, Graph};
use super::rule::{id_list, Issue, Severity};
use super::rules::common::get_str;
use super::{sort_issues, IssuesSummary, RULES_VERSION};
use crate::domain::workflow::{StepType, TriggerType, WorkflowDocument};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
pub struct LocationWorkflow<'a> {
    pub id: &'a str,
    pub doc: &'a WorkflowDocument,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationReport {
    pub rules_version: String,
    pub workflows: usize,
    pub issues_summary: IssuesSummary,
    /// Every finding has `workflowIds` (and the `stepIds` involved).
    pub issues: Vec<Issue>,
    pub analyzed_at: String,
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

/// Tags named by `config.tag` (string) or `config.tags` (array of strings / one string).
pub(crate) fn tags_of(config: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["tag", "tags"] {
        match config.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => out.push(s.trim().to_lowercase()),
            Some(Value::Array(items)) => out.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().to_lowercase()),
            ),
            _ => {}
        }
    }
    out
}

pub(crate) fn target_workflow(config: &serde_json::Map<String, Value>) -> Option<&str> {
    get_str(config, &["workflowId", "workflow_id"]).map(str::trim)
}

struct Edge {
    to: usize,
    step_id: String,
    via_add_to_workflow: bool,
}

pub fn analyze_location(workflows: &[LocationWorkflow<'_>], now: DateTime<Utc>) -> LocationReport {
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(workflows.len());
    for (i, w) in workflows.iter().enumerate() {
        by_id.entry(w.id).or_insert(i);
    }
    let mut triggered_by_tag: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, w) in workflows.iter().enumerate() {
        for t in &w.doc.triggers {
            if t.trigger_type == TriggerType::ContactTagAdded {
                for tag in tags_of(&t.filters) {
                    let list = triggered_by_tag.entry(tag).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
    }

    let mut issues = Vec::new();
    let mut edges: Vec<Vec<Edge>> = Vec::with_capacity(workflows.len());
    for w in workflows.iter() {
        let g = Graph::build(w.doc);
        let reachable = graph::bfs(&g.adj, g.entry, |_| true);
        let mut out = Vec::new();
        for (si, step) in w.doc.steps.iter().enumerate() {
            let is_reachable = reachable.get(si).copied().unwrap_or(false);
            match step.step_type {
                StepType::AddToWorkflow | StepType::RemoveFromWorkflow => {
                    let Some(target) = target_workflow(&step.config) else {
                        continue;
                    };
                    if target.contains("{{") {
                        continue;
                    }
                    match by_id.get(target) {
                        None => issues.push(missing_target(w.id, &step.id, target)),
                        Some(&t) => {
                            if step.step_type == StepType::AddToWorkflow {
                                if !workflows[t].doc.status.is_published() {
                                    issues.push(draft_target(w.id, &step.id, target));
                                }
                                if is_reachable {
                                    out.push(Edge {
                                        to: t,
                                        step_id: step.id.clone(),
                                        via_add_to_workflow: true,
                                    });
                                }
                            }
                        }
                    }
                }
                StepType::AddTag if is_reachable => {
                    for tag in tags_of(&step.config) {
                        for &t in triggered_by_tag.get(&tag).map(Vec::as_slice).unwrap_or(&[]) {
                            out.push(Edge {
                                to: t,
                                step_id: step.id.clone(),
                                via_add_to_workflow: false,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        edges.push(out);
    }

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
    let sccs = graph::tarjan(&graph::Csr::from_lists(&adj), |_| true);
    let mut cycles: Vec<&[usize]> = sccs
        .components
        .iter()
        .zip(&sccs.cyclic)
        .filter(|(_, &c)| c)
        .map(|(m, _)| m)
        .collect();
    cycles.sort_by_key(|m| m.first().copied());
    for members in cycles {
        let comp = sccs.comp[members[0]];
        let workflow_ids: Vec<String> = members
            .iter()
            .map(|&m| workflows[m].id.to_string())
            .collect();
        let mut step_ids: Vec<String> = Vec::new();
        let mut links: Vec<String> = Vec::new();
        for &m in members {
            for e in &edges[m] {
                if sccs.comp[e.to] == comp && (e.to != m || e.via_add_to_workflow) {
                    if !step_ids.contains(&e.step_id) {
                        step_ids.push(e.step_id.clone());
                    }
                    let link = format!(
                        "\"{}\" (step \"{}\") → \"{}\"",
                        workflows[m].id, e.step_id, workflows[e.to].id
                    );
                    if links.len() < 10 && !links.contains(&link) {
                        links.push(link);
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
        issues.push(issue);
    }

    sort_issues(&mut issues);
    LocationReport {
        rules_version: RULES_VERSION.to_string(),
        workflows: workflows.len(),
        issues_summary: IssuesSummary::from_issues(&issues),
        issues,
        analyzed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
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
mod tests {
    use super::*;
    use serde_json::json;

    fn wf(v: Value) -> WorkflowDocument {
        WorkflowDocument::from_json(&v).expect("valid test document")
    }

    fn tag_wf(trigger_tag: &str, adds: &str) -> WorkflowDocument {
        wf(json!({"name": "w", "status": "published",
            "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": trigger_tag}}],
            "start": "s1",
            "steps": [{"id": "s1", "type": "add_tag", "config": {"tag": adds}}]}))
    }

    #[test]
    fn tag_cascade_is_reported_with_workflows_and_steps() {
        let a = tag_wf("y", "x");
        let b = tag_wf("x", "y");
        let c = tag_wf("z", "x");
        let ws = [
            LocationWorkflow { id: "A", doc: &a },
            LocationWorkflow { id: "B", doc: &b },
            LocationWorkflow { id: "C", doc: &c },
        ];
        let r = analyze_location(&ws, Utc::now());
        assert_eq!(r.issues.len(), 1);
        assert_eq!(r.issues[0].rule, "workflow-cascade-loop");
        assert_eq!(r.issues[0].workflow_ids, vec!["A", "B"]);
        assert_eq!(r.issues[0].step_ids, vec!["s1"]);
        assert_eq!(findings_involving(&r, "B").len(), 1);
        assert!(findings_involving(&r, "C").is_empty());
    }

    #[test]
    fn chain_without_return_is_not_a_cascade() {
        let a = tag_wf("y", "x");
        let b = tag_wf("x", "z");
        let ws = [
            LocationWorkflow { id: "A", doc: &a },
            LocationWorkflow { id: "B", doc: &b },
        ];
        assert!(analyze_location(&ws, Utc::now()).issues.is_empty());
        // A tag self-loop is self-retrigger's business, not a cascade.
        let s = tag_wf("x", "x");
        assert!(
            analyze_location(&[LocationWorkflow { id: "S", doc: &s }], Utc::now())
                .issues
                .is_empty()
        );
    }

    #[test]
    fn add_to_workflow_self_loop_missing_and_draft_targets() {
        let a = wf(
            json!({"name": "a", "status": "published", "start": "s1", "triggers": [{"id": "t", "type": "form_submitted"}],
            "steps": [
                {"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "A"}, "next": "s2"},
                {"id": "s2", "type": "add_to_workflow", "config": {"workflowId": "D"}, "next": "s3"},
                {"id": "s3", "type": "remove_from_workflow", "config": {"workflowId": "GONE"}}
            ]}),
        );
        let d = wf(json!({"name": "d", "status": "draft", "steps": []}));
        let ws = [
            LocationWorkflow { id: "A", doc: &a },
            LocationWorkflow { id: "D", doc: &d },
        ];
        let r = analyze_location(&ws, Utc::now());
        let rules: Vec<_> = r.issues.iter().map(|i| i.rule.as_str()).collect();
        assert_eq!(
            rules,
            vec![
                "workflow-cascade-loop",
                "missing-target-workflow",
                "draft-target-workflow"
            ]
        );
        assert_eq!(r.issues[0].workflow_ids, vec!["A"]);
        assert_eq!(r.issues[1].step_ids, vec!["s3"]);
    }

    #[test]
    fn published_existing_target_is_fine() {
        let a = wf(json!({"name": "a", "status": "published", "start": "s1",
            "steps": [{"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "B"}}]}));
        let b = wf(json!({"name": "b", "status": "published", "steps": []}));
        let ws = [
            LocationWorkflow { id: "A", doc: &a },
            LocationWorkflow { id: "B", doc: &b },
        ];
        assert!(analyze_location(&ws, Utc::now()).issues.is_empty());
    }
}

//! `templates` → our steps: the flat array of builder nodes becomes a graph our rules read.
//!
//! - `next` (string, array or absent) is the truth; `parentKey` is not read.
//! - An if/else condition node becomes an `if_else` step: one branch per `next` but the
//!   last, which is the `else` (the "None" branch). Its branch nodes become pass-through
//!   steps of type [`IF_ELSE_BRANCH`] whose `next` starts the branch (none: empty branch).
//! - A multi-path node (`cat: "multi-path"`, or any `next` array on a non-if/else node) gets
//!   one branch per path (a `transition` pass-through step each).
//! - Entry: the top-level step (no `parent`) that no `next` names, lowest `order` first,
//!   then array position; else any step no `next` names; else the first step.

use super::attributes::{config_for, StepFacts};
use super::types::{self, IF_ELSE_BRANCH, REMOVE_FROM_ALL_WORKFLOWS, WORKFLOW_SPLIT};
use super::wrapping::kind_of;
use super::ImportNote;
use crate::domain::analysis::graph::FastMap;
use crate::domain::workflow::{normalize_type_name, number_of, Branch, Step, StepType};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// `templates[3]`-style location of a step, rendered only when a note needs it.
struct Here<'a> {
    path: &'a str,
    pos: usize,
}

impl fmt::Display for Here<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.path, self.pos)
    }
}

struct Node<'a> {
    pos: usize,
    obj: &'a Map<String, Value>,
    id: String,
    next: Vec<String>,
    /// `next` was an array (a fan-out, even of one).
    next_is_array: bool,
}

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_next(
    obj: &Map<String, Value>,
    path: &Here<'_>,
    notes: &mut Vec<ImportNote>,
) -> (Vec<String>, bool) {
    match obj.get("next") {
        None | Some(Value::Null) => (Vec::new(), false),
        Some(Value::String(s)) if s.trim().is_empty() => (Vec::new(), false),
        Some(v @ (Value::String(_) | Value::Number(_))) => {
            (id_of(Some(v)).into_iter().collect(), false)
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                match id_of(Some(item)) {
                    Some(id) => out.push(id),
                    None => notes.push(ImportNote::new(
                        format!("{path}.next[{k}]"),
                        format!("must be a step id; got {} (ignored)", kind_of(item)),
                    )),
                }
            }
            (out, true)
        }
        Some(other) => {
            notes.push(ImportNote::new(
                format!("{path}.next"),
                format!(
                    "must be a step id or an array of step ids; got {} (read as the end of the path)",
                    kind_of(other)
                ),
            ));
            (Vec::new(), false)
        }
    }
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// Our steps and the entry step id.
pub(super) fn map_steps(
    templates: &[Value],
    path: &str,
    notes: &mut Vec<ImportNote>,
) -> (Vec<Step>, Option<String>) {
    let mut nodes: Vec<Node<'_>> = Vec::with_capacity(templates.len());
    for (pos, t) in templates.iter().enumerate() {
        let here = Here { path, pos };
        let Some(obj) = t.as_object() else {
            notes.push(ImportNote::new(
                here.to_string(),
                format!("must be an object; got {} (ignored)", kind_of(t)),
            ));
            continue;
        };
        let id = match id_of(obj.get("id")) {
            Some(id) => id,
            None => {
                let synthetic = format!("templates[{pos}]");
                notes.push(ImportNote::new(
                    format!("{here}.id"),
                    format!("is missing or not a string; the step is called \"{synthetic}\""),
                ));
                synthetic
            }
        };
        let (next, next_is_array) = parse_next(obj, &here, notes);
        nodes.push(Node {
            pos,
            obj,
            id,
            next,
            next_is_array,
        });
    }

    let mut by_id: FastMap<&str, usize> = FastMap::default();
    by_id.reserve(nodes.len());
    for (k, n) in nodes.iter().enumerate() {
        by_id.entry(n.id.as_str()).or_insert(k);
    }
    let start = entry(&nodes);
    let steps = nodes
        .iter()
        .map(|n| map_node(n, &nodes, &by_id, path, notes))
        .collect();
    (steps, start)
}

fn entry(nodes: &[Node<'_>]) -> Option<String> {
    let named: HashSet<&str, foldhash::fast::RandomState> = nodes
        .iter()
        .flat_map(|n| n.next.iter().map(String::as_str))
        .collect();
    let top_level = |n: &Node<'_>| match n.obj.get("parent") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    };
    let order = |n: &Node<'_>| number_of(n.obj.get("order")).unwrap_or(f64::INFINITY);
    nodes
        .iter()
        .filter(|n| !named.contains(n.id.as_str()))
        .min_by(|a, b| {
            top_level(b)
                .cmp(&top_level(a))
                .then(order(a).total_cmp(&order(b)))
                .then(a.pos.cmp(&b.pos))
        })
        .or(nodes.first())
        .map(|n| n.id.clone())
}

fn name_of(nodes: &[Node<'_>], by_id: &FastMap<&str, usize>, id: &str) -> Option<String> {
    by_id
        .get(id)
        .and_then(|&k| text(nodes[k].obj, "name"))
        .map(str::to_string)
}

fn map_node(
    n: &Node<'_>,
    nodes: &[Node<'_>],
    by_id: &FastMap<&str, usize>,
    path: &str,
    notes: &mut Vec<ImportNote>,
) -> Step {
    let here = Here { path, pos: n.pos };
    let obj = n.obj;
    let raw_type = match obj.get("type") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => "",
        Some(other) => {
            notes.push(ImportNote::new(
                format!("{here}.type"),
                format!(
                    "must be a string; got {} (reported as a step without a type)",
                    kind_of(other)
                ),
            ));
            ""
        }
    };
    let norm = normalize_type_name(raw_type);
    let attributes = obj.get("attributes");
    let attr = |k: &str| attributes.and_then(|a| a.get(k));
    let node_type = text(obj, "nodeType").unwrap_or("");
    let multi_path = text(obj, "cat") == Some("multi-path");

    let mut step_type = types::step_type(raw_type);
    let mut branches: Vec<Branch> = Vec::new();
    let mut next: Option<String> = None;
    let mut else_next: Option<String> = None;
    let mut drop_branches_attr = false;

    if norm == "if_else" {
        let is_branch_node = node_type.starts_with("branch")
            || (node_type != "condition-node"
                && !n.next_is_array
                && attr("branches")
                    .and_then(Value::as_array)
                    .is_none_or(|b| b.is_empty()));
        if is_branch_node {
            step_type = StepType::Unknown(IF_ELSE_BRANCH.to_string());
            next = n.next.first().cloned();
            if n.next.len() > 1 {
                note_fan_out(&here, notes);
                branches = plain_branches(&n.next[1..], nodes, by_id);
            }
        } else {
            step_type = StepType::IfElse;
            drop_branches_attr = true;
            let defs: &[Value] = attr("branches")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if let Some((last, rest)) = n.next.split_last() {
                else_next = Some(last.clone());
                if defs.len() != rest.len() {
                    notes.push(ImportNote::new(
                        format!("{here}.next"),
                        format!(
                            "names {} branch node(s) and an else, but attributes.branches defines {} branch(es)",
                            rest.len(),
                            defs.len()
                        ),
                    ));
                }
                branches = rest
                    .iter()
                    .enumerate()
                    .map(|(k, target)| {
                        let def = defs.get(k);
                        Branch {
                            name: def
                                .and_then(|d| d.get("name"))
                                .and_then(Value::as_str)
                                .map(str::to_string)
                                .or_else(|| name_of(nodes, by_id, target)),
                            condition: def.cloned().unwrap_or(Value::Null),
                            next: Some(target.clone()),
                            percent: None,
                        }
                    })
                    .collect();
            } else {
                notes.push(ImportNote::new(
                    format!("{here}.next"),
                    "the condition node names no branch nodes: every contact leaves the workflow here",
                ));
            }
        }
    } else {
        if norm == "remove_from_workflow" && attr("allWorkflows") == Some(&Value::Bool(true)) {
            step_type = StepType::Unknown(REMOVE_FROM_ALL_WORKFLOWS.to_string());
        }
        if multi_path || n.next.len() > 1 {
            if !multi_path {
                note_fan_out(&here, notes);
            }
            branches = plain_branches(&n.next, nodes, by_id);
            if norm == WORKFLOW_SPLIT {
                let weights = attr("extras")
                    .or_else(|| obj.get("extras"))
                    .and_then(|e| e.get("weightDistribution"))
                    .or_else(|| attr("weightDistribution"));
                for b in &mut branches {
                    b.percent = b
                        .next
                        .as_deref()
                        .and_then(|id| number_of(weights.and_then(|w| w.get(id))));
                }
                if !branches.is_empty() && branches.iter().all(|b| b.percent.is_some()) {
                    step_type = StepType::Split;
                }
            }
        } else {
            next = n.next.first().cloned();
        }
    }

    let incomplete = obj.get("incompleteData") == Some(&Value::Bool(true));
    let config = config_for(
        &step_type,
        attributes,
        &StepFacts {
            ghl_type: raw_type,
            incomplete,
            path: &here,
            // Moved into the branches' conditions.
            skip: drop_branches_attr.then_some("branches"),
        },
        notes,
    );
    Step {
        id: n.id.clone(),
        step_type,
        name: text(obj, "name").map(str::to_string),
        config,
        next,
        branches,
        else_next,
    }
}

fn note_fan_out(here: &Here<'_>, notes: &mut Vec<ImportNote>) {
    notes.push(ImportNote::new(
        format!("{here}.next"),
        "is an array on a step that does not branch; every id in it is followed",
    ));
}

fn plain_branches(
    targets: &[String],
    nodes: &[Node<'_>],
    by_id: &FastMap<&str, usize>,
) -> Vec<Branch> {
    targets
        .iter()
        .map(|t| Branch {
            name: name_of(nodes, by_id, t),
            condition: Value::Null,
            next: Some(t.clone()),
            percent: None,
        })
        .collect()
}

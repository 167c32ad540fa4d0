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
//! - The templates are taken apart, not copied: each is read into a [`Template`] in one pass
//!   over its keys (the keys the importer does not read are dropped on the way; the values
//!   are moved, not rebuilt as a serde round trip would), and its `attributes`, `id` and
//!   `next` are moved into our step. A 10,000-step document used to
//!   spend most of its import copying attribute maps and searching template maps.

use super::attributes::{config_for, StepFacts};
use super::types::{self, IF_ELSE_BRANCH, REMOVE_FROM_ALL_WORKFLOWS, WORKFLOW_SPLIT};
use super::wrapping::kind_of;
use super::ImportNote;
use crate::domain::analysis::graph::FastMap;
use crate::domain::workflow::{normalize_type_name, number_of, Branch, Step, StepType};
use serde_json::{Map, Value};
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

/// The keys of a template the importer reads, each of any JSON type (a wrong type is noted
/// or read as absent where it is used, never refused).
#[derive(Default)]
struct Template {
    id: Option<Value>,
    kind: Option<Value>,
    name: Option<Value>,
    attributes: Option<Value>,
    next: Option<Value>,
    order: Option<Value>,
    cat: Option<Value>,
    node_type: Option<Value>,
    parent: Option<Value>,
    incomplete_data: Option<Value>,
    extras: Option<Value>,
}

impl Template {
    fn take(obj: Map<String, Value>) -> Self {
        let mut t = Template::default();
        for (key, value) in obj {
            let slot = match key.as_str() {
                "id" => &mut t.id,
                "type" => &mut t.kind,
                "name" => &mut t.name,
                "attributes" => &mut t.attributes,
                "next" => &mut t.next,
                "order" => &mut t.order,
                "cat" => &mut t.cat,
                "nodeType" => &mut t.node_type,
                "parent" => &mut t.parent,
                "incompleteData" => &mut t.incomplete_data,
                "extras" => &mut t.extras,
                _ => continue,
            };
            // A JSON null reads as absent, as `get` followed by a null check did.
            *slot = Some(value).filter(|v| !v.is_null());
        }
        t
    }
}

/// One template as the mapping reads it (its `attributes` are kept apart, to be moved).
struct Node {
    pos: usize,
    id: String,
    /// `next` was an array (a fan-out, even of one).
    next_is_array: bool,
    name: Option<String>,
    node_type: Option<String>,
    cat: Option<String>,
    /// Not inside a branch or path (`parent` absent, null or empty).
    top_level: bool,
    order: f64,
    incomplete: bool,
    extras: Option<Value>,
}

fn string_of(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn id_of(v: Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_next(
    next: Option<Value>,
    path: &Here<'_>,
    notes: &mut Vec<ImportNote>,
) -> (Vec<String>, bool) {
    match next {
        None | Some(Value::Null) => (Vec::new(), false),
        Some(Value::String(s)) if s.trim().is_empty() => (Vec::new(), false),
        Some(v @ (Value::String(_) | Value::Number(_))) => (id_of(v).into_iter().collect(), false),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (k, item) in items.into_iter().enumerate() {
                let kind = kind_of(&item);
                match id_of(item) {
                    Some(id) => out.push(id),
                    None => notes.push(ImportNote::new(
                        format!("{path}.next[{k}]"),
                        format!("must be a step id; got {kind} (ignored)"),
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
                    kind_of(&other)
                ),
            ));
            (Vec::new(), false)
        }
    }
}

/// Our steps and the entry step id.
pub(super) fn map_steps(
    templates: Vec<Value>,
    path: &str,
    notes: &mut Vec<ImportNote>,
) -> (Vec<Step>, Option<String>) {
    let mut nodes: Vec<Node> = Vec::with_capacity(templates.len());
    let mut attributes: Vec<Option<Value>> = Vec::with_capacity(templates.len());
    let mut kinds: Vec<Option<Value>> = Vec::with_capacity(templates.len());
    let mut nexts: Vec<Vec<String>> = Vec::with_capacity(templates.len());
    for (pos, t) in templates.into_iter().enumerate() {
        let here = Here { path, pos };
        let Value::Object(obj) = t else {
            notes.push(ImportNote::new(
                here.to_string(),
                format!("must be an object; got {} (ignored)", kind_of(&t)),
            ));
            continue;
        };
        let t = Template::take(obj);
        let id = match t.id.and_then(id_of) {
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
        let (next, next_is_array) = parse_next(t.next, &here, notes);
        attributes.push(t.attributes);
        kinds.push(t.kind);
        nexts.push(next);
        let top_level = match &t.parent {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        nodes.push(Node {
            pos,
            id,
            next_is_array,
            name: string_of(t.name),
            node_type: string_of(t.node_type),
            cat: string_of(t.cat),
            top_level,
            order: number_of(t.order.as_ref()).unwrap_or(f64::INFINITY),
            incomplete: t.incomplete_data == Some(Value::Bool(true)),
            extras: t.extras,
        });
    }

    let mut by_id: FastMap<&str, usize> = FastMap::default();
    by_id.reserve(nodes.len());
    for (k, n) in nodes.iter().enumerate() {
        by_id.entry(n.id.as_str()).or_insert(k);
    }
    let start = entry(&nodes, &nexts, &by_id);
    // Each step's own parts are moved into it; only ids and names are read across steps.
    let mut steps: Vec<Step> = nodes
        .iter()
        .zip(kinds.into_iter().zip(attributes).zip(nexts))
        .map(|(n, ((kind, attributes), next))| {
            let own = Own {
                kind,
                attributes,
                next,
            };
            map_node(n, own, &nodes, &by_id, path, notes)
        })
        .collect();
    // Ids and names were read by other steps' mapping (`by_id`, branch names): moved now.
    drop(by_id);
    for (step, node) in steps.iter_mut().zip(nodes) {
        step.id = node.id;
        step.name = node.name;
    }
    (steps, start)
}

fn entry(nodes: &[Node], nexts: &[Vec<String>], by_id: &FastMap<&str, usize>) -> Option<String> {
    // Marked on the first step of each id a `next` names: a duplicate of a named id is
    // named too (it is `by_id`'s first step of that id that is looked at).
    let mut named = vec![false; nodes.len()];
    for target in nexts.iter().flatten() {
        if let Some(&k) = by_id.get(target.as_str()) {
            named[k] = true;
        }
    }
    let is_named = |n: &Node| by_id.get(n.id.as_str()).is_some_and(|&k| named[k]);
    nodes
        .iter()
        .filter(|n| !is_named(n))
        .min_by(|a, b| {
            b.top_level
                .cmp(&a.top_level)
                .then(a.order.total_cmp(&b.order))
                .then(a.pos.cmp(&b.pos))
        })
        .or(nodes.first())
        .map(|n| n.id.clone())
}

fn name_of(nodes: &[Node], by_id: &FastMap<&str, usize>, id: &str) -> Option<String> {
    by_id.get(id).and_then(|&k| nodes[k].name.clone())
}

/// What of a template only its own step reads (moved into it).
struct Own {
    kind: Option<Value>,
    attributes: Option<Value>,
    next: Vec<String>,
}

fn map_node(
    n: &Node,
    own: Own,
    nodes: &[Node],
    by_id: &FastMap<&str, usize>,
    path: &str,
    notes: &mut Vec<ImportNote>,
) -> Step {
    let Own {
        kind,
        mut attributes,
        next: next_ids,
    } = own;
    let here = Here { path, pos: n.pos };
    let raw_type = match &kind {
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
    let attr = |k: &str| attributes.as_ref().and_then(|a| a.get(k));
    let node_type = n.node_type.as_deref().unwrap_or("");
    let multi_path = n.cat.as_deref() == Some("multi-path");

    let mut step_type = types::step_type(raw_type);
    let mut branches: Vec<Branch> = Vec::new();
    let mut next: Option<String> = None;
    let mut else_next: Option<String> = None;

    if norm == "if_else" {
        let is_branch_node = node_type.starts_with("branch")
            || (node_type != "condition-node"
                && !n.next_is_array
                && attr("branches")
                    .and_then(Value::as_array)
                    .is_none_or(|b| b.is_empty()));
        if is_branch_node {
            step_type = StepType::Unknown(IF_ELSE_BRANCH.to_string());
            let mut ids = next_ids.into_iter();
            next = ids.next();
            let rest: Vec<String> = ids.collect();
            if !rest.is_empty() {
                note_fan_out(&here, notes);
                branches = plain_branches(rest, nodes, by_id);
            }
        } else {
            step_type = StepType::IfElse;
            // Moved into the branches' conditions, not kept in the config as well.
            let defs = match attributes
                .as_mut()
                .and_then(Value::as_object_mut)
                .and_then(|a| a.remove("branches"))
            {
                Some(Value::Array(defs)) => defs,
                _ => Vec::new(),
            };
            let mut rest = next_ids;
            if let Some(last) = rest.pop() {
                else_next = Some(last);
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
                let mut defs = defs.into_iter();
                branches = rest
                    .into_iter()
                    .map(|target| {
                        let def = defs.next();
                        Branch {
                            name: def
                                .as_ref()
                                .and_then(|d| d.get("name"))
                                .and_then(Value::as_str)
                                .map(str::to_string)
                                .or_else(|| name_of(nodes, by_id, &target)),
                            condition: def.unwrap_or(Value::Null),
                            next: Some(target),
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
        if multi_path || next_ids.len() > 1 {
            if !multi_path {
                note_fan_out(&here, notes);
            }
            branches = plain_branches(next_ids, nodes, by_id);
            if norm == WORKFLOW_SPLIT {
                let weights = attr("extras")
                    .or(n.extras.as_ref())
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
            next = next_ids.into_iter().next();
        }
    }

    // The builder's type name itself becomes `config.ghl` (a wrong-typed one: empty).
    let ghl_type = match kind {
        Some(Value::String(name)) => name,
        _ => String::new(),
    };
    let config = config_for(
        &step_type,
        attributes,
        StepFacts {
            ghl_type,
            incomplete: n.incomplete,
            path: &here,
        },
        notes,
    );
    Step {
        // Both moved in by `map_steps` once every step is mapped.
        id: String::new(),
        step_type,
        name: None,
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
    targets: Vec<String>,
    nodes: &[Node],
    by_id: &FastMap<&str, usize>,
) -> Vec<Branch> {
    targets
        .into_iter()
        .map(|t| Branch {
            name: name_of(nodes, by_id, &t),
            condition: Value::Null,
            next: Some(t),
            percent: None,
        })
        .collect()
}

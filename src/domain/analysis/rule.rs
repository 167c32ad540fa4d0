//! The `Rule` trait, severities, findings and the context rules read.

use super::graph::{FastMap, Graph, Sccs};
use super::rules::common::{check_url, get_str, UrlCheck};
use crate::domain::workflow::{Step, StepType, WorkflowDocument};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::mem::{discriminant, Discriminant};
use std::rc::Rc;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
    /// Score penalty per finding (CONTRACT §8).
    pub fn penalty(self) -> u32 {
        match self {
            Severity::Critical => 25,
            Severity::High => 15,
            Severity::Medium => 5,
            Severity::Low => 2,
        }
    }
}

/// Recommendation category of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Structure,
    Configuration,
    TriggersAndMessaging,
    CrossWorkflow,
}

/// One finding (CONTRACT §8 `issues[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    pub rule: String,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub step_ids: Vec<String>,
    /// Only for cross-workflow findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow_ids: Vec<String>,
    pub fix: String,
}

impl Issue {
    pub fn new(
        rule: &str,
        severity: Severity,
        title: impl Into<String>,
        message: impl Into<String>,
        step_ids: Vec<String>,
        fix: impl Into<String>,
    ) -> Issue {
        Issue {
            rule: rule.to_string(),
            severity,
            title: title.into(),
            message: message.into(),
            step_ids,
            workflow_ids: Vec::new(),
            fix: fix.into(),
        }
    }
}

/// Steps grouped by type, built once per analysis so rules visit only the steps they
/// care about (and type tests use a dense array instead of the large `Step` records).
#[derive(Debug, Default)]
pub struct StepIndex {
    kinds: Vec<Discriminant<StepType>>,
    by_kind: FastMap<Discriminant<StepType>, Vec<usize>>,
    /// The last parsed webhook URL: the engine runs the three URL rules on one step in a
    /// row, so the URL is parsed once per step without a pass of its own.
    url_slot: RefCell<Option<(usize, Rc<UrlCheck>)>>,
}

impl StepIndex {
    pub fn build(doc: &WorkflowDocument) -> StepIndex {
        let mut index = StepIndex {
            kinds: Vec::with_capacity(doc.steps.len()),
            by_kind: FastMap::default(),
            url_slot: RefCell::new(None),
        };
        for (i, s) in doc.steps.iter().enumerate() {
            let d = discriminant(&s.step_type);
            index.kinds.push(d);
            index.by_kind.entry(d).or_default().push(i);
        }
        index
    }
    /// Indices (ascending) of the steps of type `t` (any unknown type for `Unknown(_)`).
    pub fn of(&self, t: &StepType) -> &[usize] {
        self.by_kind
            .get(&discriminant(t))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    /// The parsed `config.url` of step `i` (= `step`), when it has one.
    pub fn webhook_url(&self, i: usize, step: &Step) -> Option<Rc<UrlCheck>> {
        let raw = get_str(&step.config, &["url"])?;
        let mut slot = self.url_slot.borrow_mut();
        match slot.as_ref() {
            Some((j, check)) if *j == i => Some(Rc::clone(check)),
            _ => {
                let check = Rc::new(check_url(raw));
                *slot = Some((i, Rc::clone(&check)));
                Some(check)
            }
        }
    }
    /// Whether step `i` has type `t`.
    pub fn is(&self, i: usize, t: &StepType) -> bool {
        self.kinds.get(i).is_some_and(|k| *k == discriminant(t))
    }
}

/// Everything a rule may look at; built once per analysis.
pub struct RuleContext<'a> {
    pub doc: &'a WorkflowDocument,
    pub graph: &'a Graph<'a>,
    /// Reachable from the entry step.
    pub reachable: &'a [bool],
    pub sccs: &'a Sccs,
    pub index: &'a StepIndex,
    pub now: DateTime<Utc>,
}

impl RuleContext<'_> {
    pub fn step(&self, i: usize) -> &Step {
        &self.doc.steps[i]
    }
    /// Steps of the given types, in document order.
    pub fn steps_of(&self, types: &[StepType]) -> Vec<(usize, &Step)> {
        let mut idx: Vec<usize> = types
            .iter()
            .flat_map(|t| self.index.of(t).iter().copied())
            .collect();
        if types.len() > 1 {
            idx.sort_unstable();
        }
        idx.into_iter().map(|i| (i, &self.doc.steps[i])).collect()
    }
    /// Reachable steps in document order.
    pub fn reachable_steps(&self) -> impl Iterator<Item = (usize, &Step)> {
        self.doc
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| self.reachable.get(*i).copied().unwrap_or(false))
    }
}

pub trait Rule: Send + Sync {
    fn id(&self) -> &'static str;
    fn category(&self) -> Category;
    /// All findings of this rule. Per-step rules keep the default, which runs
    /// [`Rule::check_step`] over every step in document order.
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let mut out = Vec::new();
        for (i, step) in ctx.doc.steps.iter().enumerate() {
            self.check_step(ctx, i, step, &mut out);
        }
        out
    }
    /// True for rules that judge one step at a time; the engine runs those in one fused
    /// pass over the steps, so each step's data is loaded once for all of them.
    fn is_per_step(&self) -> bool {
        false
    }
    /// Findings for step `i` (per-step rules only).
    fn check_step(&self, _ctx: &RuleContext, _i: usize, _step: &Step, _out: &mut Vec<Issue>) {}
}

/// Formats a list of ids for a message: `"s1", "s2" and 3 more`.
pub fn id_list<S: AsRef<str>>(ids: &[S]) -> String {
    id_list_of(ids, ids.len())
}

/// Like [`id_list`] when `ids` holds only the first of `total` ids.
pub fn id_list_of<S: AsRef<str>>(ids: &[S], total: usize) -> String {
    const SHOWN: usize = 10;
    let quoted: Vec<String> = ids
        .iter()
        .take(SHOWN)
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    let mut text = quoted.join(", ");
    let shown = ids.len().min(SHOWN);
    if total > shown {
        text.push_str(&format!(" and {} more", total - shown));
    }
    text
}

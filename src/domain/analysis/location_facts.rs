//! What the location rules need of each workflow, taken from its document one workflow at a
//! time. A location analysis holds these facts — the tags its triggers listen for, the
//! workflows its steps name, the tags its reachable steps add — and never more than one
//! document, so its memory follows the distinct facts of the location, not the size of the
//! stored documents.

use super::budget::{AnalysisAbandoned, Budget, Checkpoint};
use super::graph::{self, Graph};
use super::location::{distinct_tags, tags_of, target_workflows, MAX_LOCATION_WORKFLOWS};
use crate::domain::workflow::{StepType, TriggerType, WorkflowDocument};
use std::collections::HashSet;

/// One workflow's part in the location rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowFacts {
    pub(super) id: String,
    pub(super) published: bool,
    /// The tags its `contact_tag_added` triggers filter on (trimmed, lower-cased, each once).
    pub(super) trigger_tags: Vec<String>,
    /// Its steps that name workflows, and its reachable steps that add tags, in document
    /// order (no other step takes part in a location rule).
    pub(super) steps: Vec<StepFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StepFacts {
    pub(super) id: String,
    pub(super) reachable: bool,
    pub(super) action: StepAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepAction {
    /// `add_to_workflow` (`adds`) or `remove_from_workflow`: the workflows it names.
    Names { adds: bool, targets: Vec<String> },
    /// A reachable `add_tag`: the tags it adds.
    AddsTags(Vec<String>),
}

impl WorkflowFacts {
    /// A workflow whose steps are not looked at (past the cap): it exists, as a target.
    fn existing(id: &str, published: bool) -> Self {
        Self {
            id: id.to_owned(),
            published,
            trigger_tags: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// The facts of workflow `id`'s document, checking `budget` every few steps.
    pub(super) fn of<C: Checkpoint>(
        id: &str,
        doc: &WorkflowDocument,
        budget: &C,
    ) -> Result<Self, C::Stop> {
        let g = Graph::build(doc);
        let reachable = graph::bfs(&g.adj, g.entry, |_| true);
        let mut seen = HashSet::new();
        let mut trigger_tags = Vec::new();
        let tag_triggers = doc
            .triggers
            .iter()
            .filter(|t| t.trigger_type == TriggerType::ContactTagAdded);
        for (ti, trigger) in tag_triggers.enumerate() {
            budget.check_every(ti)?;
            for tag in distinct_tags(&trigger.filters) {
                if seen.insert(tag.clone()) {
                    trigger_tags.push(tag.into_owned());
                }
            }
        }
        let mut steps = Vec::new();
        for (si, step) in doc.steps.iter().enumerate() {
            budget.check_every(si)?;
            let reachable = reachable.get(si).copied().unwrap_or(false);
            let action = match step.step_type {
                StepType::AddToWorkflow | StepType::RemoveFromWorkflow => StepAction::Names {
                    adds: step.step_type == StepType::AddToWorkflow,
                    targets: target_workflows(&step.config)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                },
                StepType::AddTag if reachable => StepAction::AddsTags(tags_of(&step.config)),
                _ => continue,
            };
            steps.push(StepFacts {
                id: step.id.clone(),
                reachable,
                action,
            });
        }
        Ok(Self {
            id: id.to_owned(),
            published: doc.status.is_published(),
            trigger_tags,
            steps,
        })
    }
}

/// The facts of a location's workflows, added one at a time in the order the cap applies
/// (the service adds them by id): the first [`MAX_LOCATION_WORKFLOWS`] with what their steps
/// do; the rest are counted, and kept (as existing targets, with their status) only when one
/// of those names them.
#[derive(Debug, Default)]
pub struct LocationFacts {
    /// The considered workflows, then the named ones past the cap.
    pub(super) workflows: Vec<WorkflowFacts>,
    pub(super) considered: usize,
    /// Every workflow added.
    pub(super) total: usize,
    /// The workflows the considered ones name, once the first one past the cap came.
    named: Option<HashSet<String>>,
}

impl LocationFacts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the next workflow's steps are looked at; past the cap only its id and status
    /// matter (see [`Self::add_existing`]).
    pub fn wants_steps(&self) -> bool {
        self.considered < MAX_LOCATION_WORKFLOWS && self.named.is_none()
    }

    /// Adds the next workflow with its document, within `budget`.
    pub fn add_document_within(
        &mut self,
        id: &str,
        doc: &WorkflowDocument,
        budget: &Budget<'_>,
    ) -> Result<(), AnalysisAbandoned> {
        self.add_document(id, doc, budget)
    }

    pub(super) fn add_document<C: Checkpoint>(
        &mut self,
        id: &str,
        doc: &WorkflowDocument,
        budget: &C,
    ) -> Result<(), C::Stop> {
        if !self.wants_steps() {
            self.add_existing(id, doc.status.is_published());
            return Ok(());
        }
        let facts = WorkflowFacts::of(id, doc, budget)?;
        self.workflows.push(facts);
        self.considered += 1;
        self.total += 1;
        Ok(())
    }

    /// Adds the next workflow by its id and status alone (past the cap).
    pub fn add_existing(&mut self, id: &str, published: bool) {
        self.total += 1;
        let considered = &self.workflows[..self.considered];
        let named = self.named.get_or_insert_with(|| names(considered));
        if named.contains(id) {
            self.workflows.push(WorkflowFacts::existing(id, published));
        }
    }

    /// How many workflows' facts are held (the considered ones and the named ones past the
    /// cap), next to how many were added.
    pub fn held(&self) -> usize {
        self.workflows.len()
    }
}

/// Every workflow the steps of `workflows` name.
fn names(workflows: &[WorkflowFacts]) -> HashSet<String> {
    workflows
        .iter()
        .flat_map(|w| &w.steps)
        .filter_map(|s| match &s.action {
            StepAction::Names { targets, .. } => Some(targets),
            StepAction::AddsTags(_) => None,
        })
        .flatten()
        .cloned()
        .collect()
}

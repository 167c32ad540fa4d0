use crate::domain::analysis::graph::FastMap;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};

/// `duplicate-id`: two steps or two triggers share an id.
pub struct DuplicateId;

fn duplicates<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut counts: FastMap<&str, usize> = FastMap::default();
    counts.reserve(64);
    let mut order = Vec::new();
    for id in ids.filter(|i| !i.trim().is_empty()) {
        let c = counts.entry(id).or_insert(0);
        *c += 1;
        if *c == 2 {
            order.push(id);
        }
    }
    order.into_iter().map(|id| (id, counts[id])).collect()
}

impl Rule for DuplicateId {
    fn id(&self) -> &'static str {
        "duplicate-id"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        // Step duplicates were found while building the graph's id index.
        let mut counts: FastMap<usize, usize> = FastMap::default();
        let mut order = Vec::new();
        for &(first, _) in &ctx.graph.duplicate_ids {
            let c = counts.entry(first).or_insert(1);
            if *c == 1 {
                order.push(first);
            }
            *c += 1;
        }
        let mut issues: Vec<Issue> = order
            .into_iter()
            .map(|first| (ctx.step(first).id.as_str(), counts.get(&first).copied().unwrap_or(2)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(id, n)| {
                Issue::new(
                    self.id(),
                    Severity::Critical,
                    "Several steps share an id",
                    format!("{n} steps use the id \"{id}\"; references to it are ambiguous (the first one is used)."),
                    vec![id.to_string()],
                    format!("Give each step with id \"{id}\" a unique id and update the references to it."),
                )
            })
            .collect();
        issues.extend(
            duplicates(ctx.doc.triggers.iter().map(|t| t.id.as_str()))
                .into_iter()
                .map(|(id, n)| {
                    Issue::new(
                        self.id(),
                        Severity::Critical,
                        "Several triggers share an id",
                        format!("{n} triggers use the id \"{id}\"."),
                        Vec::new(),
                        format!("Give each trigger with id \"{id}\" a unique id."),
                    )
                }),
        );
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_steps_and_triggers() {
        let mut v = wf(json!([{"id": "s1", "type": "end"}, {"id": "s1", "type": "end"}]));
        v["triggers"] =
            json!([{"id": "t", "type": "form_submitted"}, {"id": "t", "type": "contact_created"}]);
        let issues = run(&DuplicateId, v);
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].step_ids, vec!["s1"]);
    }

    #[test]
    fn silent_for_unique_ids() {
        assert!(run(
            &DuplicateId,
            wf(json!([{"id": "s1", "type": "end"}, {"id": "s2", "type": "end"}]))
        )
        .is_empty());
    }
}

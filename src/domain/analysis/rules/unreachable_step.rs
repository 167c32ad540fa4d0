use crate::domain::analysis::rule::{id_list, Category, Issue, Rule, RuleContext, Severity};

/// `unreachable-step`: steps that no path from `start` reaches (one finding listing them).
pub struct UnreachableStep;

impl Rule for UnreachableStep {
    fn id(&self) -> &'static str {
        "unreachable-step"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        if !ctx.graph.start_valid {
            return Vec::new(); // missing-start is the real problem
        }
        let ids: Vec<String> = ctx
            .doc
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| !ctx.reachable.get(*i).copied().unwrap_or(false))
            .map(|(_, s)| s.id.clone())
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        vec![Issue::new(
            self.id(),
            Severity::Low,
            "Steps can never run",
            format!(
                "No path from the start step reaches step{} {}.",
                if ids.len() == 1 { "" } else { "s" },
                id_list(&ids)
            ),
            ids,
            "Connect these steps to the flow (a next, branch or goto pointing at them) or delete them.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_orphan_steps() {
        let issues = run(
            &UnreachableStep,
            wf(
                json!([{"id": "s1", "type": "end"}, {"id": "s2", "type": "add_tag", "config": {"tag": "x"}, "next": "s3"}, {"id": "s3", "type": "end"}]),
            ),
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].step_ids, vec!["s2", "s3"]);
    }

    #[test]
    fn silent_when_everything_is_connected() {
        let issues = run(
            &UnreachableStep,
            wf(
                json!([{"id": "s1", "type": "goto", "config": {"target": "s2"}}, {"id": "s2", "type": "end"}]),
            ),
        );
        assert!(issues.is_empty());
    }
}

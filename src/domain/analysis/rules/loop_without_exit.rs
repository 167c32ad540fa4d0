use crate::domain::analysis::rule::{id_list, Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::StepType;

/// `loop-without-exit`: a reachable strongly connected set of steps that nothing leaves.
///
/// Counted as a way out: an edge to a step outside the set, an `if_else` without `else`
/// (non-matching contacts drop out) and a dangling reference (contacts stop there).
pub struct LoopWithoutExit;

/// Per component of `ctx.sccs`: whether contacts can leave it. One pass over the steps and
/// their edges (O(N + E)), so rules can ask about any number of components.
pub(crate) fn components_with_exit(ctx: &RuleContext) -> Vec<bool> {
    let mut exits = vec![false; ctx.sccs.components.len()];
    for (v, step) in ctx.doc.steps.iter().enumerate() {
        let comp = ctx.sccs.comp[v];
        let Some(exit) = exits.get_mut(comp) else {
            continue;
        };
        if *exit {
            continue;
        }
        *exit = ctx.graph.adj[v].iter().any(|&w| ctx.sccs.comp[w] != comp)
            || (step.step_type == StepType::IfElse
                && step.else_next.as_deref().is_none_or(str::is_empty))
            || ctx.graph.has_dangling[v];
    }
    exits
}

impl Rule for LoopWithoutExit {
    fn id(&self) -> &'static str {
        "loop-without-exit"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let mut issues = Vec::new();
        let exits = components_with_exit(ctx);
        let mut comps: Vec<usize> = (0..ctx.sccs.components.len())
            .filter(|&c| ctx.sccs.cyclic[c] && !exits[c])
            .filter(|&c| ctx.sccs.components[c].iter().any(|&v| ctx.reachable[v]))
            .collect();
        comps.sort_by_key(|&c| ctx.sccs.components[c].first().copied());
        for c in comps {
            let ids: Vec<String> = ctx.sccs.components[c]
                .iter()
                .map(|&v| ctx.step(v).id.clone())
                .collect();
            issues.push(Issue::new(
                self.id(),
                Severity::Critical,
                "Loop with no way out",
                format!("Steps {} form a loop that no path leaves: contacts who enter it never finish the workflow.", id_list(&ids)),
                ids,
                "Add an exit: an if_else branch (with a condition such as a tag or reply) that continues outside the loop or ends the workflow.",
            ));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_closed_loop() {
        let issues = run(
            &LoopWithoutExit,
            wf(json!([
                {"id": "s1", "type": "send_email", "config": {"subject": "a", "body": "b"}, "next": "s2"},
                {"id": "s2", "type": "wait", "config": {"duration": "1d"}, "next": "s3"},
                {"id": "s3", "type": "goto", "config": {"target": "s1"}}
            ])),
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].step_ids, vec!["s1", "s2", "s3"]);
    }

    #[test]
    fn silent_when_a_branch_leaves() {
        let issues = run(
            &LoopWithoutExit,
            wf(json!([
                {"id": "s1", "type": "wait", "config": {"duration": "1d"}, "next": "s2"},
                {"id": "s2", "type": "if_else", "branches": [{"condition": {}, "next": "s3"}], "else": "s1"},
                {"id": "s3", "type": "end"}
            ])),
        );
        assert!(issues.is_empty());
    }
}

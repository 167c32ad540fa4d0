use super::loop_without_exit::components_with_exit;
use crate::domain::analysis::graph;
use crate::domain::analysis::rule::{id_list, Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::StepType;

/// `loop-without-wait`: a cycle without any `wait` step, inside a loop contacts can leave
/// (closed loops are `loop-without-exit`). Found as the cyclic components of the graph with
/// wait steps removed, so a loop that has a wait on one path but not on another is caught.
pub struct LoopWithoutWait;

impl Rule for LoopWithoutWait {
    fn id(&self) -> &'static str {
        "loop-without-wait"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let steps = &ctx.doc.steps;
        // A wait-free cycle lies inside a cyclic component of the whole graph: the steps of
        // no other component need to be searched again.
        let sccs = ctx.sccs;
        let in_cycle = |v: usize| sccs.comp.get(v).and_then(|&c| sccs.cyclic.get(c)) == Some(&true);
        let no_wait = graph::tarjan(&ctx.graph.adj, |v| {
            in_cycle(v) && !ctx.index.is(v, &StepType::Wait)
        });
        // Several wait-free cycles can lie in one large component: its exit is found once.
        let exits = components_with_exit(ctx);
        let mut found: Vec<&[usize]> = no_wait
            .components
            .iter()
            .zip(&no_wait.cyclic)
            .filter(|(m, &cyclic)| cyclic && m.iter().any(|&v| ctx.reachable[v]))
            .map(|(m, _)| m)
            .filter(|m| exits.get(ctx.sccs.comp[m[0]]).copied().unwrap_or(false))
            .collect();
        found.sort_by_key(|m| m.first().copied());
        found
            .into_iter()
            .map(|members| {
                let ids: Vec<String> = members.iter().map(|&v| steps[v].id.clone()).collect();
                Issue::new(
                    self.id(),
                    Severity::High,
                    "Loop without a wait",
                    format!(
                        "Steps {} form a loop with no wait step: contacts spin through it instantly, repeating its actions until an action limit stops them.",
                        id_list(&ids)
                    ),
                    ids,
                    "Put a wait step (for example {\"duration\": \"1d\"}) inside the loop, or restructure it so the loop is not needed.",
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_exitable_loop_without_wait() {
        let issues = run(
            &LoopWithoutWait,
            wf(json!([
                {"id": "s1", "type": "add_tag", "config": {"tag": "x"}, "next": "s2"},
                {"id": "s2", "type": "if_else", "branches": [{"condition": {}, "next": "s3"}], "else": "s1"},
                {"id": "s3", "type": "end"}
            ])),
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].step_ids, vec!["s1", "s2"]);
    }

    #[test]
    fn fires_for_wait_free_inner_cycle() {
        // s1 -> s2(wait) -> s3 -> s1 has a wait, but s3 -> s4 -> s3 does not.
        let issues = run(
            &LoopWithoutWait,
            wf(json!([
                {"id": "s1", "type": "add_tag", "config": {"tag": "x"}, "next": "s2"},
                {"id": "s2", "type": "wait", "config": {"duration": "1h"}, "next": "s3"},
                {"id": "s3", "type": "if_else", "branches": [{"condition": {}, "next": "s1"}, {"condition": {}, "next": "s5"}], "else": "s4"},
                {"id": "s4", "type": "goto", "config": {"target": "s3"}},
                {"id": "s5", "type": "end"}
            ])),
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].step_ids, vec!["s3", "s4"]);
    }

    #[test]
    fn silent_when_loop_waits() {
        let issues = run(
            &LoopWithoutWait,
            wf(json!([
                {"id": "s1", "type": "wait", "config": {"duration": "1d"}, "next": "s2"},
                {"id": "s2", "type": "if_else", "branches": [{"condition": {}, "next": "s3"}], "else": "s1"},
                {"id": "s3", "type": "end"}
            ])),
        );
        assert!(issues.is_empty());
    }
}

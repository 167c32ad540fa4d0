use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};

/// `dangling-reference`: a `next`, `else`, branch `next` or goto target names no step.
pub struct DanglingReference;

impl Rule for DanglingReference {
    fn id(&self) -> &'static str {
        "dangling-reference"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        ctx.graph
            .dangling
            .iter()
            .map(|d| {
                let step = ctx.step(d.step);
                Issue::new(
                    self.id(),
                    Severity::Critical,
                    "Step points to a missing step",
                    format!(
                        "Step {}'s {} points to \"{}\", which does not exist; contacts stop there.",
                        label(step),
                        d.field,
                        d.target
                    ),
                    vec![step.id.clone()],
                    format!("Change {} of step \"{}\" to an existing step id, or add the missing step \"{}\".", d.field, step.id, d.target),
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
    fn fires_for_next_else_and_goto() {
        let issues = run(
            &DanglingReference,
            wf(json!([
                {"id": "s1", "type": "add_tag", "config": {"tag": "a"}, "next": "x1"},
                {"id": "s2", "type": "if_else", "branches": [{"next": "s1"}], "else": "x2"},
                {"id": "s3", "type": "goto", "config": {"target": "x3"}}
            ])),
        );
        assert_eq!(issues.len(), 3);
        assert_eq!(issues[1].step_ids, vec!["s2"]);
        assert!(issues[2].message.contains("x3"));
    }

    #[test]
    fn silent_when_all_targets_exist() {
        let issues = run(
            &DanglingReference,
            wf(json!([
                {"id": "s1", "type": "goto", "config": {"target": "s2"}},
                {"id": "s2", "type": "end"}
            ])),
        );
        assert!(issues.is_empty());
    }
}

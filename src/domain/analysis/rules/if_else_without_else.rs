use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `if-else-without-else`: an `if_else` with no `else` path.
pub struct IfElseWithoutElse;

impl Rule for IfElseWithoutElse {
    fn id(&self) -> &'static str {
        "if-else-without-else"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, out: &mut Vec<Issue>) {
        if s.step_type == StepType::IfElse && s.else_next.as_deref().is_none_or(str::is_empty) {
            out.push(Issue::new(
                    self.id(),
                    Severity::Low,
                    "Condition without an else path",
                    format!("If/else step {} has no \"else\": contacts matching no branch silently leave the workflow.", label(s)),
                    vec![s.id.clone()],
                    format!("Add an \"else\" to step \"{}\" (an end step makes the drop-out explicit).", s.id),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_without_else() {
        let v = wf(
            json!([{"id": "s1", "type": "If-Else", "branches": [{"condition": {}, "next": "s2"}]}, {"id": "s2", "type": "end"}]),
        );
        assert_eq!(run(&IfElseWithoutElse, v)[0].step_ids, vec!["s1"]);
    }

    #[test]
    fn silent_with_else() {
        let v = wf(
            json!([{"id": "s1", "type": "if_else", "branches": [{"condition": {}, "next": "s2"}], "else": "s2"}, {"id": "s2", "type": "end"}]),
        );
        assert!(run(&IfElseWithoutElse, v).is_empty());
    }
}

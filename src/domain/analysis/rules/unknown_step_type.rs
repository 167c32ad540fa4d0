use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `unknown-step-type`: a step type the analyzer does not know (kept, never rejected).
pub struct UnknownStepType;

impl Rule for UnknownStepType {
    fn id(&self) -> &'static str {
        "unknown-step-type"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, out: &mut Vec<Issue>) {
        if let StepType::Unknown(t) = &s.step_type {
            // The builder's own actions (math_operation, ivr_say, …) are known, just opaque.
            if crate::domain::ghl::is_known_step_type(t) {
                return;
            }
            out.push(Issue::new(
                    self.id(),
                    Severity::Low,
                    "Unknown step type",
                    if t.is_empty() {
                        format!("Step {} has no type; it cannot be checked.", label(s))
                    } else {
                        format!("Step {} has type \"{t}\", which is not a known step type; it cannot be checked.", label(s))
                    },
                    vec![s.id.clone()],
                    "Use a supported step type (send_email, send_sms, wait, if_else, …) or check the spelling.",
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
    fn fires_for_unknown_and_missing_type() {
        let v = wf(json!([{"id": "s1", "type": "teleport", "next": "s2"}, {"id": "s2"}]));
        assert_eq!(run(&UnknownStepType, v).len(), 2);
    }

    #[test]
    fn silent_for_known_types_in_any_spelling() {
        let v = wf(
            json!([{"id": "s1", "type": "Add-Tag", "config": {"tag": "x"}, "next": "s2"}, {"id": "s2", "type": "END"}]),
        );
        assert!(run(&UnknownStepType, v).is_empty());
        let v = wf(
            json!([{"id": "s1", "type": "math_operation", "next": "s2"}, {"id": "s2", "type": "task-notification"}]),
        );
        assert!(run(&UnknownStepType, v).is_empty());
    }
}

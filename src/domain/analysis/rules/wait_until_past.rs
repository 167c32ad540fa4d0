use super::common::{get_str, parse_until};
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `wait-until-past`: a `wait.until` date earlier than the analysis time.
pub struct WaitUntilPast;

impl Rule for WaitUntilPast {
    fn id(&self) -> &'static str {
        "wait-until-past"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, ctx: &RuleContext, _i: usize, s: &Step, issues: &mut Vec<Issue>) {
        if !matches!(s.step_type, StepType::Wait) {
            return;
        }
        let Some(raw) = get_str(&s.config, &["until"]) else {
            return;
        };
        let Some(until) = parse_until(raw) else {
            return;
        };
        if until < ctx.now {
            issues.push(Issue::new(
                self.id(),
                Severity::Medium,
                "Wait until a date in the past",
                format!("Wait step {} waits until {raw}, which has already passed: the wait is skipped.", label(s)),
                vec![s.id.clone()],
                format!("Set config.until of step \"{}\" to a future date or replace it with a duration.", s.id),
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
    fn fires_for_past_date() {
        let v =
            wf(json!([{"id": "s1", "type": "wait", "config": {"until": "2025-01-01T09:00:00Z"}}]));
        assert_eq!(run(&WaitUntilPast, v).len(), 1);
    }

    #[test]
    fn silent_for_future_date() {
        let v = wf(
            json!([{"id": "s1", "type": "wait", "config": {"until": "2027-01-01T09:00:00-06:00"}}]),
        );
        assert!(run(&WaitUntilPast, v).is_empty());
    }
}

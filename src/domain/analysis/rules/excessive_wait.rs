use super::common::{get_present, parse_duration};
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `excessive-wait`: a single wait `duration` (or event-wait `timeout`) above 30 days.
/// `until` dates are deliberate and not judged here.
pub struct ExcessiveWait;

pub const MAX_WAIT_SECONDS: u64 = 30 * 86_400;

impl Rule for ExcessiveWait {
    fn id(&self) -> &'static str {
        "excessive-wait"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, issues: &mut Vec<Issue>) {
        if s.step_type != StepType::Wait {
            return;
        }
        for key in ["duration", "timeout"] {
            let Some(secs) = get_present(&s.config, &[key]).and_then(parse_duration) else {
                continue;
            };
            if secs > MAX_WAIT_SECONDS {
                issues.push(Issue::new(
                    self.id(),
                    Severity::Medium,
                    "Very long wait",
                    format!("Wait step {} has a {key} of {} days; contacts sit idle for more than a month and the context is stale when they resume.", label(s), secs / 86_400),
                    vec![s.id.clone()],
                    format!("Shorten the {key} of step \"{}\" to 30 days or less, or use a date-based trigger/wait until a specific date.", s.id),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_above_30_days() {
        let v = wf(json!([{"id": "s1", "type": "wait", "config": {"duration": "31d"}}]));
        assert_eq!(run(&ExcessiveWait, v).len(), 1);
        let v = wf(json!([{"id": "s1", "type": "wait", "config": {"duration": "5w"}}]));
        assert_eq!(run(&ExcessiveWait, v).len(), 1);
    }

    #[test]
    fn silent_at_30_days() {
        let v = wf(json!([{"id": "s1", "type": "wait", "config": {"duration": "30d"}}]));
        assert!(run(&ExcessiveWait, v).is_empty());
    }
}

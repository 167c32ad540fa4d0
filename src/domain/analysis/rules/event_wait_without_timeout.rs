use super::common::get_present;
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `event-wait-without-timeout`: a wait for an event with no `timeout`.
pub struct EventWaitWithoutTimeout;

impl Rule for EventWaitWithoutTimeout {
    fn id(&self) -> &'static str {
        "event-wait-without-timeout"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, out: &mut Vec<Issue>) {
        if s.step_type == StepType::Wait
            && get_present(&s.config, &["event"]).is_some()
            && get_present(&s.config, &["timeout"]).is_none()
        {
            out.push(Issue::new(
                    self.id(),
                    Severity::Medium,
                    "Event wait without a timeout",
                    format!("Wait step {} waits for an event but has no timeout: contacts for whom it never happens wait forever.", label(s)),
                    vec![s.id.clone()],
                    format!("Add config.timeout (for example \"7d\") to step \"{}\" and handle the timed-out contacts.", s.id),
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
    fn fires_without_timeout() {
        let v = wf(json!([{"id": "s1", "type": "wait", "config": {"event": "email_opened"}}]));
        assert_eq!(run(&EventWaitWithoutTimeout, v).len(), 1);
    }

    #[test]
    fn silent_with_timeout_or_duration() {
        let v = wf(json!([
            {"id": "s1", "type": "wait", "config": {"event": "email_opened", "timeout": "3d"}, "next": "s2"},
            {"id": "s2", "type": "wait", "config": {"duration": "3d"}}
        ]));
        assert!(run(&EventWaitWithoutTimeout, v).is_empty());
    }
}

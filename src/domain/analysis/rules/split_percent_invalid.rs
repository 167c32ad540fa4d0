use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `split-percent-invalid`: `split` branch percentages missing or not adding up to 100.
pub struct SplitPercentInvalid;

impl Rule for SplitPercentInvalid {
    fn id(&self) -> &'static str {
        "split-percent-invalid"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, issues: &mut Vec<Issue>) {
        if !matches!(s.step_type, StepType::Split) {
            return;
        }
        let missing = s.branches.iter().filter(|b| b.percent.is_none()).count();
        let total: f64 = s.branches.iter().filter_map(|b| b.percent).sum();
        let negative = s
            .branches
            .iter()
            .any(|b| b.percent.is_some_and(|p| p < 0.0));
        if missing == 0 && !negative && !s.branches.is_empty() && (total - 100.0).abs() < 0.01 {
            return;
        }
        let detail = if s.branches.is_empty() {
            "has no branches".to_string()
        } else if missing > 0 {
            format!("has {missing} branch(es) without a percent")
        } else if negative {
            "has a negative percent".to_string()
        } else {
            format!("has percentages adding up to {total}")
        };
        issues.push(Issue::new(
            self.id(),
            Severity::Medium,
            "Split percentages do not add up to 100",
            format!(
                "Split step {} {detail}; contacts are not distributed as intended.",
                label(s)
            ),
            vec![s.id.clone()],
            format!(
                "Give every branch of step \"{}\" a percent so that they add up to exactly 100.",
                s.id
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_wrong_sum_or_missing_percent() {
        let v = wf(json!([
            {"id": "s1", "type": "split", "branches": [{"percent": 60, "next": "s2"}, {"percent": 30, "next": "s3"}]},
            {"id": "s2", "type": "split", "branches": [{"percent": 100, "next": "s3"}, {"next": "s3"}]},
            {"id": "s3", "type": "end"}
        ]));
        assert_eq!(run(&SplitPercentInvalid, v).len(), 2);
    }

    #[test]
    fn silent_when_sum_is_100() {
        let v = wf(json!([
            {"id": "s1", "type": "split", "branches": [{"percent": "33.4", "next": "s2"}, {"percent": 33.3, "next": "s2"}, {"percent": 33.3, "next": "s2"}]},
            {"id": "s2", "type": "end"}
        ]));
        assert!(run(&SplitPercentInvalid, v).is_empty());
    }
}

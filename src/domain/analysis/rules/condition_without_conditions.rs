use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Branch, Step, StepType};
use serde_json::Value;

/// `condition-without-conditions`: an `if_else` branch whose condition is a GoHighLevel
/// segment list (`{segments: [{operator, conditions: [...]}]}`) holding no condition at all.
/// The builder saves such a branch; what it then matches is not what anyone configured:
/// contacts are routed by an empty test instead of the intended one.
pub struct ConditionWithoutConditions;

/// True when `b.condition` is a segment list none of whose segments has a condition.
fn is_empty_segment_list(b: &Branch) -> bool {
    let Some(segments) = b.condition.get("segments") else {
        return false;
    };
    match segments {
        Value::Array(items) => !items.iter().any(|seg| {
            seg.get("conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty())
        }),
        Value::Null => true,
        _ => false,
    }
}

impl Rule for ConditionWithoutConditions {
    fn id(&self) -> &'static str {
        "condition-without-conditions"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, out: &mut Vec<Issue>) {
        if s.step_type != StepType::IfElse {
            return;
        }
        let empty: Vec<String> = s
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| is_empty_segment_list(b))
            .map(|(k, b)| match b.name.as_deref().map(str::trim) {
                Some(n) if !n.is_empty() => format!("\"{n}\""),
                _ => format!("#{}", k + 1),
            })
            .collect();
        if empty.is_empty() {
            return;
        }
        out.push(Issue::new(
            self.id(),
            Severity::High,
            "Condition branch without conditions",
            format!(
                "If/else step {} has branch{} {} with no conditions: contacts are routed by an empty test, not by the rule the branch was meant to check.",
                label(s),
                if empty.len() == 1 { "" } else { "es" },
                empty.join(", ")
            ),
            vec![s.id.clone()],
            format!(
                "Add at least one condition to each branch of step \"{}\", or delete the branch.",
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
    fn fires_for_branches_with_empty_segments() {
        let v = wf(json!([
            {"id": "s1", "type": "if_else", "branches": [
                {"name": "Replied", "condition": {"segments": [{"operator": "and", "conditions": []}]}, "next": "s2"},
                {"name": "Hot", "condition": {"segments": []}, "next": "s2"},
                {"name": "Ok", "condition": {"segments": [{"conditions": [{"conditionType": "tag"}]}]}, "next": "s2"}
            ], "else": "s2"},
            {"id": "s2", "type": "end"}
        ]));
        let issues = run(&ConditionWithoutConditions, v);
        assert_eq!(issues.len(), 1);
        assert!(
            issues[0].message.contains("\"Replied\", \"Hot\""),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn silent_for_filled_segments_and_native_conditions() {
        let v = wf(json!([
            {"id": "s1", "type": "if_else", "branches": [
                {"condition": {"segments": [{"conditions": []}, {"conditions": [{"conditionType": "tag"}]}]}, "next": "s2"},
                {"condition": {}, "next": "s2"},
                {"condition": {"field": "contact.replied"}, "next": "s2"}
            ], "else": "s2"},
            {"id": "s2", "type": "split", "branches": [{"percent": 100, "condition": {"segments": []}, "next": "s3"}]},
            {"id": "s3", "type": "end"}
        ]));
        assert!(run(&ConditionWithoutConditions, v).is_empty());
    }
}

use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::ghl::{GHL_CONFIG_KEY, GHL_INCOMPLETE_KEY};
use crate::domain::workflow::Step;
use serde_json::Value;

/// `incomplete-step`: the workflow builder itself marked the step as broken
/// (`incompleteData: true`, imported as `config.ghlIncomplete: true`; the object form
/// `config.ghl: {"incomplete": true}` of earlier documents counts too). GoHighLevel shows such
/// a node in red: a required setting is missing, often one our own checks cannot see
/// (a deleted template, form, pipeline or user the action points to).
pub struct IncompleteStep;

pub(crate) fn is_marked_incomplete(s: &Step) -> bool {
    let yes = Some(&Value::Bool(true));
    s.config.get(GHL_INCOMPLETE_KEY) == yes
        || s.config
            .get(GHL_CONFIG_KEY)
            .and_then(|g| g.get("incomplete"))
            == yes
}

impl Rule for IncompleteStep {
    fn id(&self) -> &'static str {
        "incomplete-step"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, out: &mut Vec<Issue>) {
        if !is_marked_incomplete(s) {
            return;
        }
        out.push(Issue::new(
            self.id(),
            Severity::High,
            "Step marked incomplete in the builder",
            format!(
                "The GoHighLevel builder marks step {} as incomplete: a setting it needs is missing or points to something that no longer exists, so the action fails or is skipped when a contact reaches it.",
                label(s)
            ),
            vec![s.id.clone()],
            format!(
                "Open step \"{}\" in the workflow builder, fill in the settings it highlights, and save the workflow.",
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
    fn fires_for_a_step_the_builder_marked_incomplete() {
        let v = wf(json!([
            {"id": "s1", "type": "send_sms", "config": {"body": "Hi", "ghl": "sms", "ghlIncomplete": true}, "next": "s2"},
            {"id": "s2", "type": "math_operation", "config": {"ghl": "math_operation", "ghlIncomplete": true}, "next": "s3"},
            {"id": "s3", "type": "send_sms", "config": {"body": "Hi", "ghl": {"type": "sms", "incomplete": true}}}
        ]));
        let issues = run(&IncompleteStep, v);
        let ids: Vec<_> = issues.iter().map(|i| i.step_ids[0].as_str()).collect();
        assert_eq!(ids, vec!["s1", "s2", "s3"]);
        assert_eq!(issues[0].severity, Severity::High);
    }

    #[test]
    fn silent_for_complete_steps_and_look_alikes() {
        let v = wf(json!([
            {"id": "s1", "type": "send_sms", "config": {"body": "Hi", "ghl": "sms"}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "Hi", "ghl": "sms", "ghlIncomplete": "true"}, "next": "s3"},
            {"id": "s3", "type": "send_sms", "config": {"body": "Hi", "incomplete": true}, "next": "s4"},
            {"id": "s4", "type": "send_sms", "config": {"body": "Hi", "ghl": {"type": "sms", "incomplete": false}}, "next": "s5"},
            {"id": "s5", "type": "send_sms", "config": {"body": "Hi", "ghl": "sms", "ghlIncomplete": false}}
        ]));
        assert!(run(&IncompleteStep, v).is_empty());
    }
}

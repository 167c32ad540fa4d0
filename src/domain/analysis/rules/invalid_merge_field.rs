use super::common::{merge_field_problems, visit_strings};
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::Step;

/// `invalid-merge-field`: a `{{…}}` merge field in a step's config with unbalanced braces or
/// outside the known namespaces (`contact.`, `user.`, `location.`, `custom_values.`,
/// `appointment.`, `opportunity.`, `trigger_link.`, `message.`, `right_now.`, `workflow.`).
pub struct InvalidMergeField;

impl Rule for InvalidMergeField {
    fn id(&self) -> &'static str {
        "invalid-merge-field"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, issues: &mut Vec<Issue>) {
        const LISTED: usize = 10;
        let mut found = Vec::new();
        visit_strings(&s.config, "config", |text, _, path| {
            // Only the first problems are listed: later strings need no scan (nor a path).
            if found.len() >= LISTED || memchr::memchr2(b'{', b'}', text.as_bytes()).is_none() {
                return;
            }
            for p in merge_field_problems(text) {
                found.push(format!("{}: {p}", path()));
            }
        });
        if found.is_empty() {
            return;
        }
        found.truncate(LISTED);
        issues.push(Issue::new(
            self.id(),
            Severity::Medium,
            "Broken merge field",
            format!("Step {} has merge fields that will not be filled in ({}); contacts see the raw text.", label(s), found.join("; ")),
            vec![s.id.clone()],
            "Write merge fields as {{namespace.field}}, e.g. {{contact.first_name}} or {{custom_values.company}}, with both braces on each side.",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_unbalanced_and_unknown() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "Hi {{contact.first_name", "body": "x"}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "Hello {{lead.name}}"}}
        ]));
        assert_eq!(run(&InvalidMergeField, v).len(), 2);
    }

    #[test]
    fn silent_for_valid_fields_and_json_bodies() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "Hi {{ contact.first_name }}", "body": "See {{appointment.start_time}}"}, "next": "s2"},
            {"id": "s2", "type": "webhook", "config": {"url": "https://x.example.com", "body": "{\"a\":{\"id\":\"{{contact.id}}\"}}"}}
        ]));
        assert!(run(&InvalidMergeField, v).is_empty());
    }
}

use super::common::get_str;
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `hardcoded-recipient`: `send_email.to` is a literal e-mail address or `send_sms.to` a
/// literal phone number (7+ digits) instead of a merge field such as `{{contact.email}}`.
pub struct HardcodedRecipient;

fn is_literal_email(s: &str) -> bool {
    !s.contains("{{") && s.contains('@')
}

fn is_literal_phone(s: &str) -> bool {
    !s.contains("{{")
        && s.chars().filter(char::is_ascii_digit).count() >= 7
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

impl Rule for HardcodedRecipient {
    fn id(&self) -> &'static str {
        "hardcoded-recipient"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, issues: &mut Vec<Issue>) {
        if !matches!(s.step_type, StepType::SendEmail | StepType::SendSms) {
            return;
        }
        let Some(to) = get_str(&s.config, &["to"]) else {
            return;
        };
        let (what, merge) = match s.step_type {
            StepType::SendEmail if is_literal_email(to) => ("e-mail address", "{{contact.email}}"),
            StepType::SendSms if is_literal_phone(to) => ("phone number", "{{contact.phone}}"),
            _ => return,
        };
        issues.push(Issue::new(
            self.id(),
            Severity::Medium,
            "Message goes to a fixed recipient",
            format!("Step {} sends to the literal {what} \"{to}\": every contact's message goes to that one person.", label(s)),
            vec![s.id.clone()],
            format!("Set config.to of step \"{}\" to {merge}, or use an internal_notification step to alert staff.", s.id),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_literal_email_and_phone() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "a", "body": "b", "to": "bob@example.com"}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "b", "to": "+1 (555) 123-4567"}}
        ]));
        assert_eq!(run(&HardcodedRecipient, v).len(), 2);
    }

    #[test]
    fn silent_for_merge_fields() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "a", "body": "b", "to": "{{contact.email}}"}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "b", "to": "{{contact.phone}}"}, "next": "s3"},
            {"id": "s3", "type": "internal_notification", "config": {"to": "boss@example.com"}}
        ]));
        assert!(run(&HardcodedRecipient, v).is_empty());
    }
}

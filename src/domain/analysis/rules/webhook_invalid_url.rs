use super::common::{get_str, UrlCheck};
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `webhook-invalid-url`: a webhook `url` that is not an absolute http(s) URL. URLs that are
/// a single merge field (`{{custom_values.hook}}`) cannot be judged and are skipped.
pub struct WebhookInvalidUrl;

impl Rule for WebhookInvalidUrl {
    fn id(&self) -> &'static str {
        "webhook-invalid-url"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, ctx: &RuleContext, i: usize, s: &Step, issues: &mut Vec<Issue>) {
        if !matches!(s.step_type, StepType::Webhook) {
            return;
        }
        let Some(check) = ctx.index.webhook_url(i, s) else {
            return;
        };
        let raw = get_str(&s.config, &["url"]).unwrap_or_default();
        if let UrlCheck::Invalid(why) = &*check {
            issues.push(Issue::new(
                self.id(),
                Severity::Critical,
                "Webhook URL is not valid",
                format!("Webhook step {} has URL \"{raw}\", which is not an absolute http(s) URL ({why}); every call fails.", label(s)),
                vec![s.id.clone()],
                format!("Set config.url of step \"{}\" to a full URL such as https://api.example.com/hooks/lead.", s.id),
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
    fn fires_for_relative_or_non_http() {
        let v = wf(json!([
            {"id": "s1", "type": "webhook", "config": {"url": "api.example.com/hook"}, "next": "s2"},
            {"id": "s2", "type": "webhook", "config": {"url": "ftp://example.com/x"}}
        ]));
        assert_eq!(run(&WebhookInvalidUrl, v).len(), 2);
    }

    #[test]
    fn silent_for_https_and_merge_field_urls() {
        let v = wf(json!([
            {"id": "s1", "type": "webhook", "config": {"url": "https://api.example.com/c/{{contact.id}}"}, "next": "s2"},
            {"id": "s2", "type": "webhook", "config": {"url": "{{custom_values.hook_url}}"}}
        ]));
        assert!(run(&WebhookInvalidUrl, v).is_empty());
    }
}

use super::common::UrlCheck;
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `webhook-insecure-url`: a public webhook URL using plain `http://`. Private URLs are left
/// to `webhook-private-url` (one finding per problem).
pub struct WebhookInsecureUrl;

impl Rule for WebhookInsecureUrl {
    fn id(&self) -> &'static str {
        "webhook-insecure-url"
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
        if let UrlCheck::Ok {
            insecure: true,
            private: false,
            ..
        } = &*check
        {
            issues.push(Issue::new(
                self.id(),
                Severity::High,
                "Webhook uses plain HTTP",
                format!(
                    "Webhook step {} sends contact data over unencrypted http://.",
                    label(s)
                ),
                vec![s.id.clone()],
                format!("Use https:// for the URL of step \"{}\".", s.id),
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
    fn fires_for_http() {
        let v = wf(
            json!([{"id": "s1", "type": "webhook", "config": {"url": "http://api.example.com/hook"}}]),
        );
        assert_eq!(run(&WebhookInsecureUrl, v).len(), 1);
    }

    #[test]
    fn silent_for_https_and_private() {
        let v = wf(json!([
            {"id": "s1", "type": "webhook", "config": {"url": "https://api.example.com/hook"}, "next": "s2"},
            {"id": "s2", "type": "webhook", "config": {"url": "http://localhost/hook"}}
        ]));
        assert!(run(&WebhookInsecureUrl, v).is_empty());
    }
}

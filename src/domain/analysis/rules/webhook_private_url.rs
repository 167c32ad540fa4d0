use super::common::UrlCheck;
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `webhook-private-url`: a webhook host that is loopback, private, link-local,
/// unspecified, `localhost`, `*.local` or `*.internal` (hosts are parsed, so forms such as
/// `http://2130706433/` or `[::ffff:10.0.0.1]` are recognised).
pub struct WebhookPrivateUrl;

impl Rule for WebhookPrivateUrl {
    fn id(&self) -> &'static str {
        "webhook-private-url"
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
            url, private: true, ..
        } = &*check
        {
            let host = url.host_str().unwrap_or_default().to_string();
            issues.push(Issue::new(
                self.id(),
                Severity::Critical,
                "Webhook points at a private address",
                format!("Webhook step {} calls host \"{host}\", a private or local address the platform cannot (and must not) reach.", label(s)),
                vec![s.id.clone()],
                format!("Expose the receiver on a public HTTPS address and use that URL in step \"{}\".", s.id),
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
    fn fires_for_private_hosts() {
        let v = wf(json!([
            {"id": "s1", "type": "webhook", "config": {"url": "http://192.168.0.10/hook"}, "next": "s2"},
            {"id": "s2", "type": "webhook", "config": {"url": "https://crm.internal/x"}, "next": "s3"},
            {"id": "s3", "type": "webhook", "config": {"url": "http://[::1]:8080/"}}
        ]));
        assert_eq!(run(&WebhookPrivateUrl, v).len(), 3);
    }

    #[test]
    fn silent_for_public_hosts() {
        let v = wf(
            json!([{"id": "s1", "type": "webhook", "config": {"url": "https://172.32.1.1/hook"}}]),
        );
        assert!(run(&WebhookPrivateUrl, v).is_empty());
    }
}

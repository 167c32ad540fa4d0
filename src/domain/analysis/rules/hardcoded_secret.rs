use super::common::{
    has_known_token_prefix, has_literal_auth_scheme, is_literal_secret_value, is_secret_name,
    secret_assignments, visit_value_strings, UrlCheck,
};
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};
use serde_json::Value;
use url::Url;

/// `hardcoded-secret`: an API key, bearer token or password written literally in a
/// webhook's URL (secret-named query parameters, a userinfo password), headers
/// (`Authorization`, `X-Api-Key`, …), body, or in `custom_code` (`config.code`/`script`/
/// `source`). Values containing a `{{…}}` reference (e.g. `{{custom_values.api_key}}`) are
/// fine.
pub struct HardcodedSecret;

/// Places listed in one finding; the rest are counted. A JSON body can hold any number of
/// secret-looking fields, and each listed one renders its path.
const LISTED: usize = 10;

/// The places of one step that hold a secret.
#[derive(Default)]
struct Found {
    listed: Vec<String>,
    more: usize,
}

impl Found {
    fn add(&mut self, place: impl FnOnce() -> String) {
        if self.listed.len() < LISTED {
            self.listed.push(place());
        } else {
            self.more += 1;
        }
    }
    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
    fn describe(&self) -> String {
        let mut text = self.listed.join(", ");
        if self.more > 0 {
            text.push_str(&format!(" and {} more", self.more));
        }
        text
    }
}

fn text_findings(text: &str, place: &str, out: &mut Found) {
    for name in secret_assignments(text) {
        out.add(|| format!("{place} assigns \"{name}\""));
    }
    if has_literal_auth_scheme(text) {
        out.add(|| format!("{place} contains a literal Bearer/Basic credential"));
    }
    if has_known_token_prefix(text) {
        out.add(|| format!("{place} contains a literal API token"));
    }
}

fn webhook_findings(ctx: &RuleContext, i: usize, step: &Step) -> Found {
    let c = &step.config;
    let mut out = Found::default();
    if let Some(raw) = c.get("url").and_then(Value::as_str) {
        let trimmed = raw.trim();
        // The URL rules before this one parsed the same text already (`StepIndex::
        // webhook_url`) unless a merge field was replaced in it: a parse per webhook saved.
        let shared = match trimmed.contains("{{") {
            true => None,
            false => ctx.index.webhook_url(i, step),
        };
        let own;
        let parsed = match shared.as_deref() {
            Some(UrlCheck::Ok { url, .. }) => Some(url),
            _ => {
                own = Url::parse(trimmed).ok();
                own.as_ref()
            }
        };
        if let Some(url) = parsed {
            if url
                .password()
                .is_some_and(|p| is_literal_secret_value(p) && !p.contains("%7B%7B"))
            {
                out.add(|| "the URL contains a password".to_string());
            }
            for (k, v) in url.query_pairs() {
                if is_secret_name(&k) && v.len() >= 4 && is_literal_secret_value(&v) {
                    out.add(|| format!("URL query parameter \"{k}\""));
                }
            }
        }
        if has_known_token_prefix(raw) {
            out.add(|| "the URL contains a literal API token".to_string());
        }
    }
    let header_pairs: Vec<(&str, &str)> = match c.get("headers") {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|h| {
                let name = h.get("key").or_else(|| h.get("name"))?.as_str()?;
                let value = h.get("value")?.as_str()?;
                Some((name, value))
            })
            .collect(),
        _ => Vec::new(),
    };
    for (name, value) in header_pairs {
        let secret_header = name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case("proxy-authorization")
            || is_secret_name(name);
        if (secret_header && value.trim().len() >= 4 && is_literal_secret_value(value))
            || has_known_token_prefix(value)
        {
            out.add(|| format!("header \"{name}\""));
        }
    }
    match c.get("body") {
        Some(Value::String(s)) => text_findings(s, "the body", &mut out),
        Some(body @ (Value::Object(_) | Value::Array(_))) => {
            visit_value_strings("body", body, "config", |value, key, path| {
                let named = key.is_some_and(is_secret_name)
                    && value.len() >= 4
                    && is_literal_secret_value(value);
                if named || has_literal_auth_scheme(value) || has_known_token_prefix(value) {
                    out.add(|| format!("body field \"{}\"", path()));
                }
            });
        }
        _ => {}
    }
    out
}

impl Rule for HardcodedSecret {
    fn id(&self) -> &'static str {
        "hardcoded-secret"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, ctx: &RuleContext, i: usize, s: &Step, issues: &mut Vec<Issue>) {
        if !matches!(s.step_type, StepType::Webhook | StepType::CustomCode) {
            return;
        }
        let found = match s.step_type {
            StepType::Webhook => webhook_findings(ctx, i, s),
            StepType::CustomCode => {
                let mut out = Found::default();
                for key in ["code", "script", "source"] {
                    if let Some(code) = s.config.get(key).and_then(Value::as_str) {
                        text_findings(code, "the code", &mut out);
                    }
                }
                out
            }
            _ => return,
        };
        if found.is_empty() {
            return;
        }
        issues.push(Issue::new(
            self.id(),
            Severity::High,
            "Secret written into the workflow",
            format!(
                "Step {} holds a literal credential ({}); anyone who can view or export the workflow can read it.",
                label(s),
                found.describe()
            ),
            vec![s.id.clone()],
            format!(
                "Store the secret as a custom value and reference it in step \"{}\" as {{{{custom_values.your_key}}}}; rotate the exposed credential.",
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
    fn fires_for_url_headers_body_and_code() {
        let v = wf(json!([
            {"id": "s1", "type": "webhook", "config": {"url": "https://api.example.com/x?api_key=abc123def"}, "next": "s2"},
            {"id": "s2", "type": "webhook", "config": {"url": "https://api.example.com/x", "headers": {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9"}}, "next": "s3"},
            {"id": "s3", "type": "webhook", "config": {"url": "https://api.example.com/x", "body": {"auth": {"password": "hunter2!"}}}, "next": "s4"},
            {"id": "s4", "type": "custom_code", "config": {"code": "const token = 'sk_live_51HxAbCdEfGhIjKlMn';"}, "next": "s5"},
            {"id": "s5", "type": "webhook", "config": {"url": "https://user:pa55word@api.example.com/x"}}
        ]));
        let issues = run(&HardcodedSecret, v);
        let ids: Vec<_> = issues.iter().map(|i| i.step_ids[0].as_str()).collect();
        assert_eq!(ids, vec!["s1", "s2", "s3", "s4", "s5"]);
    }

    #[test]
    fn silent_for_custom_value_references() {
        let v = wf(json!([
            {"id": "s1", "type": "webhook", "config": {
                "url": "https://api.example.com/x?api_key={{custom_values.api_key}}&page=2",
                "headers": [{"key": "Authorization", "value": "Bearer {{custom_values.token}}"}, {"key": "Content-Type", "value": "application/json"}],
                "body": {"password": "{{custom_values.pw}}", "email": "{{contact.email}}"}}, "next": "s2"},
            {"id": "s2", "type": "custom_code", "config": {"code": "const token = inputs.token; fetch(url, {headers: {Authorization: `Bearer ${token}`}})"}}
        ]));
        assert!(run(&HardcodedSecret, v).is_empty());
    }
}

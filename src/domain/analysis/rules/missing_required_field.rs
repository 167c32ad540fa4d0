use super::common::{get_present, get_str, parse_duration, parse_until};
use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};

/// `missing-required-field`: a step lacks the configuration it needs to run. Also reports
/// a wait `duration`/`timeout` or `until` that is present but cannot be parsed.
pub struct MissingRequiredField;

/// Problems of one step, as `(field, explanation)`.
fn problems(step: &Step) -> Vec<(String, String)> {
    let c = &step.config;
    let has = |keys: &[&str]| get_present(c, keys).is_some();
    let mut out = Vec::new();
    let mut need = |ok: bool, field: &str| {
        if !ok {
            out.push((field.to_string(), "is missing".to_string()));
        }
    };
    match step.step_type {
        StepType::SendEmail => {
            need(
                has(&["subject"]) || has(&["templateId", "template_id"]),
                "config.subject",
            );
            need(
                has(&["body", "html"]) || has(&["templateId", "template_id"]),
                "config.body or config.templateId",
            );
        }
        StepType::SendSms => need(has(&["body", "message"]), "config.body"),
        StepType::Webhook => need(has(&["url"]), "config.url"),
        StepType::AddTag | StepType::RemoveTag => need(has(&["tag", "tags"]), "config.tag"),
        StepType::Goto => need(has(&["target"]), "config.target"),
        StepType::AddToWorkflow | StepType::RemoveFromWorkflow => {
            need(has(&["workflowId", "workflow_id"]), "config.workflowId")
        }
        StepType::UpdateContactField => need(has(&["field"]), "config.field"),
        StepType::Wait => {
            need(
                has(&["duration", "until", "event", "schedule"]),
                "config.duration, config.until, config.event or config.schedule",
            );
            for key in ["duration", "timeout"] {
                if let Some(v) = get_present(c, &[key]) {
                    if parse_duration(v).is_none() {
                        out.push((format!("config.{key}"), format!("{v} is not a duration like \"30s\", \"15m\", \"2h\", \"3d\" or \"1w\"")));
                    }
                }
            }
            if let Some(u) = get_str(c, &["until"]) {
                if parse_until(u).is_none() && !u.contains("{{") {
                    out.push((
                        "config.until".into(),
                        format!("\"{u}\" is not an RFC 3339 date"),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

impl Rule for MissingRequiredField {
    fn id(&self) -> &'static str {
        "missing-required-field"
    }
    fn category(&self) -> Category {
        Category::Configuration
    }
    fn is_per_step(&self) -> bool {
        true
    }
    fn check_step(&self, _ctx: &RuleContext, _i: usize, s: &Step, issues: &mut Vec<Issue>) {
        let found = problems(s);
        if found.is_empty() {
            return;
        }
        let text: Vec<String> = found.iter().map(|(f, why)| format!("{f} {why}")).collect();
        issues.push(Issue::new(
            self.id(),
            Severity::Critical,
            "Step is missing required settings",
            format!(
                "{} step {}: {}; the step fails when a contact reaches it.",
                s.step_type.as_str(),
                label(s),
                text.join("; ")
            ),
            vec![s.id.clone()],
            format!(
                "Fill in {} on step \"{}\".",
                found
                    .iter()
                    .map(|(f, _)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
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
    fn fires_for_each_incomplete_step() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "Hi"}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "  "}, "next": "s3"},
            {"id": "s3", "type": "wait", "config": {}, "next": "s4"},
            {"id": "s4", "type": "wait", "config": {"duration": "soon"}, "next": "s5"},
            {"id": "s5", "type": "add_to_workflow", "config": {}, "next": "s6"},
            {"id": "s6", "type": "update_contact_field", "config": {"value": 1}, "next": "s7"},
            {"id": "s7", "type": "goto"}
        ]));
        let issues = run(&MissingRequiredField, v);
        let ids: Vec<_> = issues.iter().map(|i| i.step_ids[0].as_str()).collect();
        assert_eq!(ids, vec!["s1", "s2", "s3", "s4", "s5", "s6", "s7"]);
    }

    #[test]
    fn silent_for_complete_steps() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"templateId": "tpl_1"}, "next": "s2"},
            {"id": "s2", "type": "wait", "config": {"event": "appointment_booked", "timeout": "2d"}, "next": "s3"},
            {"id": "s3", "type": "webhook", "config": {"url": "https://x.example.com"}, "next": "s4"},
            {"id": "s4", "type": "remove_tag", "config": {"tag": "lead"}, "next": "s5"},
            {"id": "s5", "type": "wait", "config": {"schedule": "specific_date"}}
        ]));
        assert!(run(&MissingRequiredField, v).is_empty());
    }
}

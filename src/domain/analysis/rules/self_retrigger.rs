use super::common::get_str;
use crate::domain::analysis::location::tags_of;
use crate::domain::analysis::rule::{id_list, Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{StepType, TriggerType};

/// `self-retrigger`: the workflow re-fires itself — a `contact_tag_added` trigger for tag X
/// and a reachable `add_tag` of X, or a `contact_changed` trigger on field F and a reachable
/// `update_contact_field` of F. A trigger without a tag/field filter fires on any tag/field,
/// so any reachable `add_tag`/`update_contact_field` re-fires it. Critical when
/// `settings.allowReentry` is true, medium otherwise.
pub struct SelfRetrigger;

impl Rule for SelfRetrigger {
    fn id(&self) -> &'static str {
        "self-retrigger"
    }
    fn category(&self) -> Category {
        Category::TriggersAndMessaging
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let reentry = ctx.doc.settings.allow_reentry;
        let mut issues = Vec::new();
        for t in &ctx.doc.triggers {
            let (step_type, wanted, what): (StepType, Vec<String>, &str) = match t.trigger_type {
                TriggerType::ContactTagAdded => (StepType::AddTag, tags_of(&t.filters), "tag"),
                TriggerType::ContactChanged => (
                    StepType::UpdateContactField,
                    get_str(&t.filters, &["field"])
                        .map(|f| vec![f.trim().to_lowercase()])
                        .unwrap_or_default(),
                    "field",
                ),
                _ => continue,
            };
            let steps: Vec<String> = ctx
                .steps_of(std::slice::from_ref(&step_type))
                .into_iter()
                .filter(|(i, _)| ctx.reachable[*i])
                .filter(|(_, s)| {
                    let written = if step_type == StepType::AddTag {
                        tags_of(&s.config)
                    } else {
                        get_str(&s.config, &["field"])
                            .map(|f| vec![f.trim().to_lowercase()])
                            .unwrap_or_default()
                    };
                    if wanted.is_empty() {
                        !written.is_empty()
                    } else {
                        written.iter().any(|w| wanted.contains(w))
                    }
                })
                .map(|(_, s)| s.id.clone())
                .collect();
            if steps.is_empty() {
                continue;
            }
            let filter = if wanted.is_empty() {
                format!("any {what}")
            } else {
                format!("{what} \"{}\"", wanted.join("\", \""))
            };
            issues.push(Issue::new(
                self.id(),
                if reentry { Severity::Critical } else { Severity::Medium },
                "Workflow re-triggers itself",
                format!(
                    "Trigger \"{}\" fires on {filter}, and step{} {} set{} it again{}.",
                    t.id,
                    if steps.len() == 1 { "" } else { "s" },
                    id_list(&steps),
                    if steps.len() == 1 { "s" } else { "" },
                    if reentry { "; with re-entry allowed contacts loop through the workflow endlessly" } else { "; contacts re-enter as soon as re-entry is allowed" }
                ),
                steps,
                "Trigger on a different tag/field than the workflow sets, or add a trigger filter that excludes contacts already processed; keep allowReentry off.",
            ));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_tag_and_field_loops() {
        let mut v = wf(json!([
            {"id": "s1", "type": "add_tag", "config": {"tag": "Lead"}, "next": "s2"},
            {"id": "s2", "type": "update_contact_field", "config": {"field": "status", "value": "x"}}
        ]));
        v["triggers"] = json!([
            {"id": "t1", "type": "contact_tag_added", "filters": {"tag": "lead"}},
            {"id": "t2", "type": "contact_changed", "filters": {"field": "status"}}
        ]);
        v["settings"]["allowReentry"] = json!(true);
        let issues = run(&SelfRetrigger, v.clone());
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].severity, Severity::Critical);
        v["settings"]["allowReentry"] = json!(false);
        assert_eq!(run(&SelfRetrigger, v)[0].severity, Severity::Medium);
    }

    #[test]
    fn silent_for_other_tags_or_unreachable_steps() {
        let mut v = wf(json!([
            {"id": "s1", "type": "add_tag", "config": {"tag": "engaged"}},
            {"id": "s2", "type": "add_tag", "config": {"tag": "lead"}}
        ]));
        v["triggers"] =
            json!([{"id": "t1", "type": "contact_tag_added", "filters": {"tag": "lead"}}]);
        assert!(run(&SelfRetrigger, v).is_empty());
    }
}

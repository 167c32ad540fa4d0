use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::TriggerType;

/// `unknown-trigger-type`: a trigger type the analyzer does not know.
pub struct UnknownTriggerType;

impl Rule for UnknownTriggerType {
    fn id(&self) -> &'static str {
        "unknown-trigger-type"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        ctx.doc
            .triggers
            .iter()
            .filter_map(|t| match &t.trigger_type {
                TriggerType::Unknown(ty) if !crate::domain::ghl::is_known_trigger_type(ty) => Some(Issue::new(
                    self.id(),
                    Severity::Low,
                    "Unknown trigger type",
                    format!("Trigger \"{}\" has type \"{ty}\", which is not a known trigger type.", t.id),
                    Vec::new(),
                    "Use a supported trigger type (contact_tag_added, form_submitted, …) or check the spelling.",
                )),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_for_unknown_trigger() {
        let mut v = wf(json!([]));
        v["triggers"] = json!([{"id": "t1", "type": "moon_phase"}]);
        assert_eq!(run(&UnknownTriggerType, v).len(), 1);
    }

    #[test]
    fn silent_for_known_trigger() {
        let mut v = wf(json!([]));
        v["triggers"] = json!([{"id": "t1", "type": "Contact Tag Added", "filters": {"tag": "x"}}]);
        assert!(run(&UnknownTriggerType, v.clone()).is_empty());
        // GoHighLevel's own trigger types without a counterpart of ours.
        v["triggers"] = json!([{"id": "t1", "type": "call_status"}]);
        assert!(run(&UnknownTriggerType, v).is_empty());
    }
}

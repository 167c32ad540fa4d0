use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};

/// `no-trigger`: the workflow has no trigger, so it never runs on its own.
pub struct NoTrigger;

impl Rule for NoTrigger {
    fn id(&self) -> &'static str {
        "no-trigger"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        if !ctx.doc.triggers.is_empty() {
            return Vec::new();
        }
        let published = ctx.doc.status.is_published();
        vec![Issue::new(
            self.id(),
            if published { Severity::Critical } else { Severity::Low },
            "Workflow has no trigger",
            if published {
                "This published workflow has no active trigger, so no contact ever enters it (triggers switched off or deleted in the builder enrol nobody and are not counted)."
            } else {
                "This draft has no active trigger yet; it will never run once published."
            },
            Vec::new(),
            "Add a trigger (for example contact_tag_added or form_submitted) that enrols the right contacts, or switch an existing one on.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_critical_when_published_and_low_when_draft() {
        let mut v = wf(json!([{"id": "s1", "type": "end"}]));
        v["triggers"] = json!([]);
        assert_eq!(run(&NoTrigger, v.clone())[0].severity, Severity::Critical);
        v["status"] = json!("draft");
        assert_eq!(run(&NoTrigger, v)[0].severity, Severity::Low);
    }

    #[test]
    fn silent_with_a_trigger() {
        assert!(run(&NoTrigger, wf(json!([{"id": "s1", "type": "end"}]))).is_empty());
    }
}

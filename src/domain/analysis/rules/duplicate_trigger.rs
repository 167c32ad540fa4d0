use crate::domain::analysis::rule::{id_list, Category, Issue, Rule, RuleContext, Severity};

/// `duplicate-trigger`: two triggers of the same type with equal filters.
pub struct DuplicateTrigger;

impl Rule for DuplicateTrigger {
    fn id(&self) -> &'static str {
        "duplicate-trigger"
    }
    fn category(&self) -> Category {
        Category::TriggersAndMessaging
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let triggers = &ctx.doc.triggers;
        let mut used = vec![false; triggers.len()];
        let mut issues = Vec::new();
        for i in 0..triggers.len() {
            if used[i] {
                continue;
            }
            let mut group = vec![triggers[i].id.clone()];
            for j in i + 1..triggers.len() {
                if !used[j]
                    && triggers[j].trigger_type == triggers[i].trigger_type
                    && triggers[j].filters == triggers[i].filters
                {
                    used[j] = true;
                    group.push(triggers[j].id.clone());
                }
            }
            if group.len() > 1 {
                issues.push(Issue::new(
                    self.id(),
                    Severity::Medium,
                    "Duplicate triggers",
                    format!(
                        "Triggers {} are both \"{}\" with the same filters: they enrol the same contacts twice.",
                        id_list(&group),
                        triggers[i].trigger_type.as_str()
                    ),
                    Vec::new(),
                    "Delete the duplicate trigger, or give each trigger different filters.",
                ));
            }
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
    fn fires_for_same_type_and_filters() {
        let mut v = wf(json!([]));
        v["triggers"] = json!([
            {"id": "t1", "type": "contact_tag_added", "filters": {"tag": "a"}},
            {"id": "t2", "type": "Contact-Tag-Added", "filters": {"tag": "a"}}
        ]);
        assert_eq!(run(&DuplicateTrigger, v).len(), 1);
    }

    #[test]
    fn silent_for_different_filters() {
        let mut v = wf(json!([]));
        v["triggers"] = json!([
            {"id": "t1", "type": "contact_tag_added", "filters": {"tag": "a"}},
            {"id": "t2", "type": "contact_tag_added", "filters": {"tag": "b"}}
        ]);
        assert!(run(&DuplicateTrigger, v).is_empty());
    }
}

use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};

/// `missing-start`: steps exist but `start` is absent or names no step.
pub struct MissingStart;

impl Rule for MissingStart {
    fn id(&self) -> &'static str {
        "missing-start"
    }
    fn category(&self) -> Category {
        Category::Structure
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        if ctx.doc.steps.is_empty() || ctx.graph.start_valid {
            return Vec::new();
        }
        let message = match &ctx.doc.start {
            None => "The workflow has steps but no \"start\"; triggered contacts have nowhere to go.".to_string(),
            Some(s) => format!("\"start\" names step \"{s}\", which does not exist; triggered contacts have nowhere to go."),
        };
        let first = ctx.doc.steps[0].id.clone();
        vec![Issue::new(
            self.id(),
            Severity::Critical,
            "Workflow has no valid start step",
            message,
            Vec::new(),
            format!("Set \"start\" to the id of the first step (for example \"{first}\")."),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    #[test]
    fn fires_when_start_missing_or_unknown() {
        let mut v = wf(json!([{"id": "s1", "type": "end"}]));
        v["start"] = json!("nope");
        assert_eq!(run(&MissingStart, v.clone()).len(), 1);
        v.as_object_mut().map(|o| o.remove("start"));
        assert_eq!(run(&MissingStart, v).len(), 1);
    }

    #[test]
    fn silent_with_valid_start_or_no_steps() {
        assert!(run(&MissingStart, wf(json!([{"id": "s1", "type": "end"}]))).is_empty());
        assert!(run(&MissingStart, wf(json!([]))).is_empty());
    }
}

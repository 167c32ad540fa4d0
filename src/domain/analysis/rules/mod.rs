//! The rule set: one file per rule.

pub mod common;

mod condition_without_conditions;
mod dangling_reference;
mod duplicate_id;
mod duplicate_trigger;
mod event_wait_without_timeout;
mod excessive_wait;
mod hardcoded_recipient;
mod hardcoded_secret;
mod if_else_without_else;
mod incomplete_step;
mod invalid_merge_field;
mod loop_without_exit;
mod loop_without_wait;
mod missing_required_field;
mod missing_start;
mod no_trigger;
mod rapid_messages;
mod self_retrigger;
mod sms_outside_time_window;
mod split_percent_invalid;
mod unknown_step_type;
mod unknown_trigger_type;
mod unreachable_step;
mod wait_until_past;
mod webhook_insecure_url;
mod webhook_invalid_url;
mod webhook_private_url;

use super::rule::Rule;

/// Ids of the location-wide rules (implemented in `analysis::location`).
pub const LOCATION_RULE_IDS: &[&str] = &[
    "workflow-cascade-loop",
    "missing-target-workflow",
    "draft-target-workflow",
];

static RULES: &[&dyn Rule] = &[
    &no_trigger::NoTrigger,
    &missing_start::MissingStart,
    &dangling_reference::DanglingReference,
    &duplicate_id::DuplicateId,
    &unreachable_step::UnreachableStep,
    &loop_without_exit::LoopWithoutExit,
    &loop_without_wait::LoopWithoutWait,
    &if_else_without_else::IfElseWithoutElse,
    &split_percent_invalid::SplitPercentInvalid,
    &unknown_step_type::UnknownStepType,
    &unknown_trigger_type::UnknownTriggerType,
    &missing_required_field::MissingRequiredField,
    &webhook_invalid_url::WebhookInvalidUrl,
    &webhook_private_url::WebhookPrivateUrl,
    &webhook_insecure_url::WebhookInsecureUrl,
    &hardcoded_secret::HardcodedSecret,
    &hardcoded_recipient::HardcodedRecipient,
    &invalid_merge_field::InvalidMergeField,
    &excessive_wait::ExcessiveWait,
    &wait_until_past::WaitUntilPast,
    &event_wait_without_timeout::EventWaitWithoutTimeout,
    &self_retrigger::SelfRetrigger,
    &duplicate_trigger::DuplicateTrigger,
    &rapid_messages::RapidMessages,
    &sms_outside_time_window::SmsOutsideTimeWindow,
    &incomplete_step::IncompleteStep,
    &condition_without_conditions::ConditionWithoutConditions,
];

/// Every per-workflow rule, in reporting order.
pub fn rule_set() -> &'static [&'static dyn Rule] {
    RULES
}

/// Short label of a step for messages: `"s1"` or `"s1" (Welcome)`.
pub(crate) fn label(step: &crate::domain::workflow::Step) -> String {
    match step.name.as_deref().and_then(short_name) {
        Some(n) => format!("\"{}\" ({n})", step.id),
        None => format!("\"{}\"", step.id),
    }
}

/// Labels of the first ten of `total` steps (`"s1" (Welcome), "s2" and 3 more`): what
/// `id_list_of` is for ids, for findings that name several steps by the names users see.
pub(crate) fn label_list_of(steps: &[&crate::domain::workflow::Step], total: usize) -> String {
    const SHOWN: usize = 10;
    let labels: Vec<String> = steps.iter().take(SHOWN).map(|s| label(s)).collect();
    let mut text = labels.join(", ");
    let shown = steps.len().min(SHOWN);
    if total > shown {
        text.push_str(&format!(" and {} more", total - shown));
    }
    text
}

/// Characters of a step name shown in a label; longer names end in `…`.
const LABEL_CHARS: usize = 100;
/// Characters of a name looked at. A label can be repeated in the findings of many other
/// steps (`rapid-messages` names the message that follows), so its cost and size must not
/// grow with the name.
const LABEL_SCAN: usize = 1024;

/// The name as labels show it: trimmed, cut to [`LABEL_CHARS`]; `None` when blank.
fn short_name(name: &str) -> Option<String> {
    let prefix: String = name.chars().take(LABEL_SCAN).collect();
    let trimmed = prefix.trim();
    if trimmed.is_empty() {
        return None;
    }
    let shown: String = trimmed.chars().take(LABEL_CHARS).collect();
    let cut = name.len() > prefix.len() || shown.len() < trimmed.len();
    Some(if cut {
        format!("{}…", shown.trim_end())
    } else {
        shown
    })
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::domain::analysis::graph::{self, Graph};
    use crate::domain::analysis::rule::{Issue, Rule, RuleContext, StepIndex};
    use crate::domain::workflow::WorkflowDocument;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::Value;

    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    /// Runs one rule over a document given as JSON.
    pub fn run(rule: &dyn Rule, v: Value) -> Vec<Issue> {
        let doc = WorkflowDocument::from_json(&v).expect("test document parses");
        let g = Graph::build(&doc);
        let reachable = graph::bfs(&g.adj, g.entry, |_| true);
        let sccs = graph::tarjan(&g.adj, |_| true);
        let index = StepIndex::build(&doc);
        let ctx = RuleContext {
            doc: &doc,
            graph: &g,
            reachable: &reachable,
            sccs: &sccs,
            index: &index,
            now: now(),
        };
        let issues = rule.check(&ctx);
        for i in &issues {
            assert_eq!(i.rule, rule.id());
            assert!(!i.fix.is_empty() && !i.message.is_empty() && !i.title.is_empty());
        }
        issues
    }

    /// A published, triggered workflow with the given steps starting at the first one.
    pub fn wf(steps: Value) -> Value {
        let start = steps
            .get(0)
            .and_then(|s| s.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::json!({
            "name": "t", "status": "published",
            "settings": {"timeWindow": {"start": "08:00", "end": "20:00", "days": ["mon"], "timezone": "UTC"}},
            "triggers": [{"id": "t1", "type": "form_submitted", "filters": {}}],
            "start": start,
            "steps": steps
        })
    }

    #[test]
    fn labels_show_a_trimmed_name_cut_to_a_bounded_length() {
        let step = |name: &str| {
            let v = wf(serde_json::json!([{"id": "s1", "type": "end", "name": name}]));
            WorkflowDocument::from_json(&v)
                .expect("parses")
                .steps
                .remove(0)
        };
        assert_eq!(super::label(&step("  Welcome ")), "\"s1\" (Welcome)");
        assert_eq!(super::label(&step("   ")), "\"s1\"");
        let long = "é".repeat(5_000);
        let l = super::label(&step(&long));
        assert_eq!(l, format!("\"s1\" ({}…)", "é".repeat(100)));
        let exactly = "x".repeat(100);
        assert_eq!(super::label(&step(&exactly)), format!("\"s1\" ({exactly})"));
    }
}

use super::label_list_of;
use crate::domain::analysis::graph;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType};
use serde_json::Value;

/// `sms-outside-time-window`: a reachable `send_sms` while the workflow has no
/// `settings.timeWindow` and some path from the start reaches it without passing a wait
/// constrained to a time window. A wait is constrained when its config has a `timeWindow`
/// object (same shape as `settings.timeWindow`: `{start, end, days, timezone}`), meaning
/// "resume only inside this window". A window counts (in settings or on a wait) only when it
/// has both `start` and `end`. One finding lists every such SMS step.
pub struct SmsOutsideTimeWindow;

pub(crate) fn is_window_wait(s: &Step) -> bool {
    s.step_type == StepType::Wait
        && s.config
            .get("timeWindow")
            .and_then(Value::as_object)
            .is_some_and(|tw| {
                ["start", "end"].iter().all(|k| {
                    tw.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.trim().is_empty())
                })
            })
}

impl Rule for SmsOutsideTimeWindow {
    fn id(&self) -> &'static str {
        "sms-outside-time-window"
    }
    fn category(&self) -> Category {
        Category::TriggersAndMessaging
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let window = ctx.doc.settings.time_window.as_ref();
        if window.is_some_and(|tw| {
            tw.start.as_deref().is_some_and(|s| !s.trim().is_empty())
                && tw.end.as_deref().is_some_and(|e| !e.trim().is_empty())
        }) {
            return Vec::new();
        }
        let steps = &ctx.doc.steps;
        let unguarded = graph::bfs(&ctx.graph.adj, ctx.graph.entry, |v| {
            !(ctx.index.is(v, &StepType::Wait) && is_window_wait(&steps[v]))
        });
        let sms: Vec<&Step> = ctx
            .steps_of(&[StepType::SendSms])
            .into_iter()
            .filter(|(i, _)| unguarded[*i])
            .map(|(_, s)| s)
            .collect();
        let ids: Vec<String> = sms.iter().map(|s| s.id.clone()).collect();
        if ids.is_empty() {
            return Vec::new();
        }
        vec![Issue::new(
            self.id(),
            Severity::Medium,
            "SMS can be sent at night",
            format!(
                "SMS step{} {} can send at any hour: the workflow has no time window and no time-window wait comes first (quiet-hours rules).",
                if ids.len() == 1 { "" } else { "s" },
                label_list_of(&sms, sms.len())
            ),
            ids,
            "Set settings.timeWindow (e.g. 08:00–20:00 in the contact's timezone), or put a wait with config.timeWindow before each SMS.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::analysis::rules::testing::{run, wf};
    use serde_json::json;

    fn no_window(steps: serde_json::Value) -> serde_json::Value {
        let mut v = wf(steps);
        v["settings"] = json!({});
        v
    }

    #[test]
    fn fires_without_any_window() {
        let v = no_window(json!([
            {"id": "s1", "type": "wait", "config": {"duration": "1h"}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "x"}}
        ]));
        assert_eq!(run(&SmsOutsideTimeWindow, v)[0].step_ids, vec!["s2"]);
        // An empty window constrains nothing.
        let mut v = wf(json!([{"id": "s1", "type": "send_sms", "config": {"body": "x"}}]));
        v["settings"] = json!({"timeWindow": {}});
        assert_eq!(run(&SmsOutsideTimeWindow, v).len(), 1);
    }

    #[test]
    fn silent_with_settings_window_or_window_wait() {
        let v = wf(json!([{"id": "s1", "type": "send_sms", "config": {"body": "x"}}]));
        assert!(run(&SmsOutsideTimeWindow, v).is_empty());
        let v = no_window(json!([
            {"id": "s1", "type": "wait", "config": {"duration": "1h", "timeWindow": {"start": "09:00", "end": "18:00"}}, "next": "s2"},
            {"id": "s2", "type": "send_sms", "config": {"body": "x"}}
        ]));
        assert!(run(&SmsOutsideTimeWindow, v).is_empty());
    }
}

use super::label;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::StepType;
use std::collections::VecDeque;

/// `rapid-messages`: two message steps (`send_email`/`send_sms`) on one path with no `wait`
/// between them. One finding per reachable message step that can reach another message step
/// through non-wait steps. Linear: one multi-source reverse BFS labels every non-message,
/// non-wait step with a message step it leads to without a wait.
pub struct RapidMessages;

impl Rule for RapidMessages {
    fn id(&self) -> &'static str {
        "rapid-messages"
    }
    fn category(&self) -> Category {
        Category::TriggersAndMessaging
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let steps = &ctx.doc.steps;
        let n = steps.len();
        let rev = ctx.graph.reversed();
        // leads_to[v] = a message step reachable from v through interior (non-wait,
        // non-message) steps only; for message steps, themselves.
        let mut leads_to: Vec<Option<usize>> = vec![None; n];
        let mut queue = VecDeque::new();
        let messages = ctx.steps_of(&[StepType::SendEmail, StepType::SendSms]);
        for &(i, _) in &messages {
            leads_to[i] = Some(i);
            queue.push_back(i);
        }
        while let Some(v) = queue.pop_front() {
            for &u in &rev[v] {
                if leads_to[u].is_none() && !ctx.index.is(u, &StepType::Wait) {
                    leads_to[u] = leads_to[v];
                    queue.push_back(u);
                }
            }
        }
        let mut issues = Vec::new();
        for (i, s) in messages {
            if !ctx.reachable[i] {
                continue;
            }
            let Some(other) = ctx.graph.adj[i].iter().find_map(|&w| leads_to[w]) else {
                continue;
            };
            let o = &steps[other];
            let message = if other == i {
                format!(
                    "Step {} can send again without any wait in between.",
                    label(s)
                )
            } else {
                format!("Step {} is followed by step {} with no wait in between: the contact receives both messages at once.", label(s), label(o))
            };
            let mut ids = vec![s.id.clone()];
            if other != i {
                ids.push(o.id.clone());
            }
            issues.push(Issue::new(
                self.id(),
                Severity::Medium,
                "Messages sent back to back",
                message,
                ids,
                format!("Add a wait step (for example {{\"duration\": \"1h\"}}) after step \"{}\", or merge the two messages.", s.id),
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
    fn fires_for_messages_without_wait() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "a", "body": "b"}, "next": "s2"},
            {"id": "s2", "type": "add_tag", "config": {"tag": "x"}, "next": "s3"},
            {"id": "s3", "type": "send_sms", "config": {"body": "b"}}
        ]));
        let issues = run(&RapidMessages, v);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].step_ids, vec!["s1", "s3"]);
    }

    #[test]
    fn silent_with_wait_or_on_separate_branches() {
        let v = wf(json!([
            {"id": "s1", "type": "send_email", "config": {"subject": "a", "body": "b"}, "next": "s2"},
            {"id": "s2", "type": "wait", "config": {"duration": "1h"}, "next": "s3"},
            {"id": "s3", "type": "if_else", "branches": [{"condition": {}, "next": "s4"}], "else": "s5"},
            {"id": "s4", "type": "send_sms", "config": {"body": "b"}},
            {"id": "s5", "type": "send_email", "config": {"subject": "a", "body": "b"}}
        ]));
        assert!(run(&RapidMessages, v).is_empty());
    }
}

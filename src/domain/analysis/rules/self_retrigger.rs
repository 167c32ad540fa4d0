use super::common::get_str;
use super::label_list_of;
use crate::domain::analysis::graph::FastMap;
use crate::domain::analysis::location::tags_of;
use crate::domain::analysis::rule::{Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType, TriggerType};

/// `self-retrigger`: the workflow re-fires itself — a `contact_tag_added` trigger for tag X
/// and a reachable `add_tag` of X, or a `contact_changed` trigger on field F and a reachable
/// `update_contact_field` of F. A trigger without a tag/field filter fires on any tag/field,
/// so any reachable `add_tag`/`update_contact_field` re-fires it. Critical when
/// `settings.allowReentry` is true, medium otherwise.
///
/// Cost: the tags/fields written by reachable steps are indexed once (value → steps, in
/// document order). A finding lists the first [`MAX_LISTED_STEPS`] steps in `stepIds`, so a
/// trigger only needs, from each of its values' step lists, the first
/// `MAX_LISTED_STEPS + 1` entries: any later entry has that many distinct steps before it.
/// The work is linear in the document plus, per trigger value, a bounded prefix — many
/// triggers over many steps cannot multiply into quadratic time or a huge report. The
/// message counts every step; when a long list was cut it says "at least".
pub struct SelfRetrigger;

/// Most step ids one finding lists in `stepIds`.
pub const MAX_LISTED_STEPS: usize = 100;

/// How many steps re-fire a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Exactly(usize),
    AtLeast(usize),
}

/// What the reachable steps of one kind write.
struct Written<'a> {
    /// Ids of the reachable steps that write at least one value, in document order; a
    /// step is known by its position in this list.
    steps: Vec<&'a Step>,
    /// Value → positions (ascending, each once) of the steps writing it.
    postings: FastMap<String, Vec<usize>>,
    /// Per position: the last trigger (numbered from 1) that collected it, so collecting
    /// needs no set of its own.
    seen: Vec<usize>,
    round: usize,
}

fn values_written(kind: &StepType, s: &Step) -> Vec<String> {
    if *kind == StepType::AddTag {
        tags_of(&s.config)
    } else {
        get_str(&s.config, &["field"])
            .map(|f| vec![f.trim().to_lowercase()])
            .unwrap_or_default()
    }
}

impl<'a> Written<'a> {
    fn index(ctx: &'a RuleContext, kind: &StepType) -> Written<'a> {
        let mut steps = Vec::new();
        let mut postings: FastMap<String, Vec<usize>> = FastMap::default();
        for (i, s) in ctx.steps_of(std::slice::from_ref(kind)) {
            if !ctx.reachable[i] {
                continue;
            }
            let values = values_written(kind, s);
            if values.is_empty() {
                continue;
            }
            let p = steps.len();
            steps.push(s);
            for v in values {
                let list = postings.entry(v).or_default();
                if list.last() != Some(&p) {
                    list.push(p);
                }
            }
        }
        let seen = vec![0; steps.len()];
        Written {
            steps,
            postings,
            seen,
            round: 0,
        }
    }

    /// Steps that write one of `wanted` (any value when empty): how many, and the first
    /// [`MAX_LISTED_STEPS`] positions in document order.
    fn matching(&mut self, wanted: &[String]) -> (Count, Vec<usize>) {
        const PREFIX: usize = MAX_LISTED_STEPS + 1;
        if wanted.is_empty() {
            let all = self.steps.len();
            return (
                Count::Exactly(all),
                (0..all.min(MAX_LISTED_STEPS)).collect(),
            );
        }
        self.round += 1;
        let mut found = Vec::new();
        let mut cut = false;
        for v in wanted {
            let Some(list) = self.postings.get(v) else {
                continue;
            };
            cut |= list.len() > PREFIX;
            for &p in list.iter().take(PREFIX) {
                if self.seen[p] != self.round {
                    self.seen[p] = self.round;
                    found.push(p);
                }
            }
        }
        let total = found.len();
        if found.len() > MAX_LISTED_STEPS {
            found.select_nth_unstable(MAX_LISTED_STEPS);
            found.truncate(MAX_LISTED_STEPS);
        }
        found.sort_unstable();
        // Cut lists hide steps only beyond the first PREFIX of the union, so `total`
        // is exact whenever it is below that.
        let count = if cut && total >= PREFIX {
            Count::AtLeast(total)
        } else {
            Count::Exactly(total)
        };
        (count, found)
    }
}

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
        let mut tags: Option<Written> = None;
        let mut fields: Option<Written> = None;
        for t in &ctx.doc.triggers {
            let (written, wanted, what): (&mut Written, Vec<String>, &str) = match t.trigger_type {
                TriggerType::ContactTagAdded => (
                    tags.get_or_insert_with(|| Written::index(ctx, &StepType::AddTag)),
                    tags_of(&t.filters),
                    "tag",
                ),
                TriggerType::ContactChanged => (
                    fields
                        .get_or_insert_with(|| Written::index(ctx, &StepType::UpdateContactField)),
                    get_str(&t.filters, &["field"])
                        .map(|f| vec![f.trim().to_lowercase()])
                        .unwrap_or_default(),
                    "field",
                ),
                _ => continue,
            };
            let (count, first) = written.matching(&wanted);
            if count == Count::Exactly(0) {
                continue;
            }
            let listed_steps: Vec<&Step> = first.into_iter().map(|p| written.steps[p]).collect();
            let steps: Vec<String> = listed_steps.iter().map(|s| s.id.clone()).collect();
            let filter = if wanted.is_empty() {
                format!("any {what}")
            } else {
                format!("{what} \"{}\"", wanted.join("\", \""))
            };
            let (listed, one) = match count {
                Count::Exactly(n) => (label_list_of(&listed_steps, n), n == 1),
                Count::AtLeast(n) => (
                    format!(
                        "{} and at least {} more",
                        label_list_of(&listed_steps[..10], 10),
                        n - 10
                    ),
                    false,
                ),
            };
            issues.push(Issue::new(
                self.id(),
                if reentry { Severity::Critical } else { Severity::Medium },
                "Workflow re-triggers itself",
                format!(
                    "Trigger \"{}\" fires on {filter}, and step{} {listed} set{} it again{}.",
                    t.id,
                    if one { "" } else { "s" },
                    if one { "s" } else { "" },
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

    #[test]
    fn unites_the_steps_of_every_wanted_tag_once_in_document_order() {
        let mut steps = vec![
            json!({"id": "s0", "type": "add_tag", "config": {"tags": ["B", "a", "b"]}, "next": "s1"}),
            json!({"id": "s1", "type": "add_tag", "config": {"tag": "c"}, "next": "s2"}),
        ];
        // Enough steps writing "a" that its step set is kept as a bit set.
        for i in 2..150 {
            steps.push(json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tag": if i % 2 == 0 { "a" } else { "b" }}, "next": format!("s{}", i + 1)}));
        }
        steps.push(json!({"id": "s150", "type": "end"}));
        let mut v = wf(json!(steps));
        v["triggers"] = json!([
            {"id": "t1", "type": "contact_tag_added", "filters": {"tags": ["a", "b", "A"]}},
            {"id": "t2", "type": "contact_tag_added", "filters": {"tag": "c"}},
            {"id": "t3", "type": "contact_tag_added", "filters": {}},
            {"id": "t4", "type": "contact_tag_added", "filters": {"tag": "nobody"}}
        ]);
        let issues = run(&SelfRetrigger, v);
        assert_eq!(issues.len(), 3);
        let t1 = &issues[0];
        assert_eq!(t1.step_ids.len(), MAX_LISTED_STEPS);
        assert_eq!(t1.step_ids[..3], ["s0", "s2", "s3"]);
        assert!(
            t1.message.contains("and 139 more set it again"),
            "{}",
            t1.message
        );
        assert_eq!(issues[1].step_ids, ["s1"]);
        assert!(issues[1].message.contains("step \"s1\" sets it again"));
        assert_eq!(issues[2].step_ids.len(), MAX_LISTED_STEPS);
        assert!(issues[2].message.contains("and 140 more"));
    }

    #[test]
    fn a_cut_step_list_is_counted_as_at_least() {
        let mut steps = Vec::new();
        for i in 0..300 {
            let tag = if i % 3 == 0 { "a" } else { "b" };
            steps.push(json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tag": tag}, "next": format!("s{}", i + 1)}));
        }
        steps.push(json!({"id": "s300", "type": "end"}));
        let mut v = wf(json!(steps));
        v["triggers"] =
            json!([{"id": "t1", "type": "contact_tag_added", "filters": {"tags": ["b", "a"]}}]);
        let issues = run(&SelfRetrigger, v);
        assert_eq!(issues.len(), 1);
        let expected: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        assert_eq!(issues[0].step_ids, expected);
        assert!(
            issues[0]
                .message
                .contains("\"s9\" and at least 191 more set it again"),
            "{}",
            issues[0].message
        );
    }
}

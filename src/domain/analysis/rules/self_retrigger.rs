use super::common::get_str;
use crate::domain::analysis::graph::FastMap;
use crate::domain::analysis::location::tags_of;
use crate::domain::analysis::rule::{id_list_of, Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::{Step, StepType, TriggerType};

/// `self-retrigger`: the workflow re-fires itself — a `contact_tag_added` trigger for tag X
/// and a reachable `add_tag` of X, or a `contact_changed` trigger on field F and a reachable
/// `update_contact_field` of F. A trigger without a tag/field filter fires on any tag/field,
/// so any reachable `add_tag`/`update_contact_field` re-fires it. Critical when
/// `settings.allowReentry` is true, medium otherwise.
///
/// Cost: the tags/fields written by reachable steps are indexed once (value → steps); a
/// trigger then looks up its own values and unites their step sets on a bit set, so the
/// work is linear in the document plus, per trigger, its values × steps / 64. `stepIds`
/// lists the first [`MAX_LISTED_STEPS`] steps (the message counts them all), so many
/// triggers over many steps cannot multiply into a huge report.
pub struct SelfRetrigger;

/// Most step ids one finding lists in `stepIds`.
pub const MAX_LISTED_STEPS: usize = 100;

/// What the reachable steps of one kind write.
struct Written<'a> {
    /// Ids of the reachable steps that write at least one value, in document order; a
    /// step's position in this list is its bit.
    steps: Vec<&'a str>,
    /// Value → positions (ascending, each once) of the steps writing it.
    postings: FastMap<String, Vec<usize>>,
    /// The postings denser than one per bit-set word, as bit sets (built once: uniting
    /// them word by word is then cheaper than bit by bit). Their total size is at most
    /// the number of postings.
    dense: FastMap<String, Vec<u64>>,
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
            steps.push(s.id.as_str());
            for v in values {
                let list = postings.entry(v).or_default();
                if list.last() != Some(&p) {
                    list.push(p);
                }
            }
        }
        let words = steps.len().div_ceil(64);
        let dense = postings
            .iter()
            .filter(|(_, list)| list.len() > words)
            .map(|(v, list)| {
                let mut bits = vec![0u64; words];
                for &p in list {
                    bits[p / 64] |= 1 << (p % 64);
                }
                (v.clone(), bits)
            })
            .collect();
        Written {
            steps,
            postings,
            dense,
        }
    }

    /// Positions of the steps that write one of `wanted` (any value when empty): how
    /// many, and the first [`MAX_LISTED_STEPS`] in document order.
    fn matching(&self, wanted: &[String]) -> (usize, Vec<usize>) {
        if wanted.is_empty() {
            let all = self.steps.len();
            return (all, (0..all.min(MAX_LISTED_STEPS)).collect());
        }
        let mut distinct: Vec<&str> = wanted.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let lists: Vec<(&str, &Vec<usize>)> = distinct
            .into_iter()
            .filter_map(|v| self.postings.get(v).map(|l| (v, l)))
            .collect();
        if let [(_, list)] = lists.as_slice() {
            return (
                list.len(),
                list.iter().take(MAX_LISTED_STEPS).copied().collect(),
            );
        }
        let mut bits = vec![0u64; self.steps.len().div_ceil(64)];
        for (v, list) in lists {
            match self.dense.get(v) {
                Some(set) => bits.iter_mut().zip(set).for_each(|(b, s)| *b |= s),
                None => list.iter().for_each(|&p| bits[p / 64] |= 1 << (p % 64)),
            }
        }
        let count = bits.iter().map(|w| w.count_ones() as usize).sum();
        let mut first = Vec::new();
        'words: for (w, &word) in bits.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                if first.len() == MAX_LISTED_STEPS {
                    break 'words;
                }
                first.push(w * 64 + rest.trailing_zeros() as usize);
                rest &= rest - 1;
            }
        }
        (count, first)
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
            let (written, wanted, what): (&Written, Vec<String>, &str) = match t.trigger_type {
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
            if count == 0 {
                continue;
            }
            let steps: Vec<String> = first
                .into_iter()
                .map(|p| written.steps[p].to_string())
                .collect();
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
                    if count == 1 { "" } else { "s" },
                    id_list_of(&steps, count),
                    if count == 1 { "s" } else { "" },
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
}

use crate::domain::analysis::graph::FastMap;
use crate::domain::analysis::rule::{id_list, Category, Issue, Rule, RuleContext, Severity};
use crate::domain::workflow::Trigger;
use serde_json::{Map, Value};
use std::hash::{BuildHasher, Hash, Hasher};

/// `duplicate-trigger`: two triggers of the same type with equal filters.
///
/// Triggers are grouped by a hash of (type, filters) that agrees with their equality
/// (object keys in any order), then confirmed with `==` inside a bucket: linear in the
/// triggers' size instead of comparing every pair.
pub struct DuplicateTrigger;

fn hash_value(build: &impl BuildHasher, v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                (2u8, u).hash(h);
            } else if let Some(i) = n.as_i64() {
                (3u8, i).hash(h);
            } else {
                // -0.0 == 0.0, so they must hash alike.
                let f = n.as_f64().unwrap_or(0.0);
                (4u8, if f == 0.0 { 0 } else { f.to_bits() }).hash(h);
            }
        }
        Value::String(s) => (5u8, s).hash(h),
        Value::Array(items) => {
            (6u8, items.len()).hash(h);
            for item in items {
                hash_value(build, item, h);
            }
        }
        Value::Object(map) => {
            7u8.hash(h);
            hash_object(build, map, h);
        }
    }
}

/// Equal maps are equal whatever their key order, so entries are hashed on their own and
/// summed (order-free).
fn hash_object(build: &impl BuildHasher, map: &Map<String, Value>, h: &mut impl Hasher) {
    let mut sum = 0u64;
    for (k, v) in map {
        let mut entry = build.build_hasher();
        k.hash(&mut entry);
        hash_value(build, v, &mut entry);
        sum = sum.wrapping_add(entry.finish());
    }
    (map.len(), sum).hash(h);
}

fn same_trigger(a: &Trigger, b: &Trigger) -> bool {
    a.trigger_type == b.trigger_type && a.filters == b.filters
}

impl Rule for DuplicateTrigger {
    fn id(&self) -> &'static str {
        "duplicate-trigger"
    }
    fn category(&self) -> Category {
        Category::TriggersAndMessaging
    }
    fn check(&self, ctx: &RuleContext) -> Vec<Issue> {
        let triggers = &ctx.doc.triggers;
        let build = foldhash::fast::RandomState::default();
        // Groups of equal triggers, in the order of their first member.
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        let mut buckets: FastMap<u64, Vec<usize>> = FastMap::default();
        for (i, t) in triggers.iter().enumerate() {
            let mut h = build.build_hasher();
            t.trigger_type.hash(&mut h);
            hash_object(&build, &t.filters, &mut h);
            let bucket = buckets.entry(h.finish()).or_default();
            match bucket
                .iter()
                .find(|&&g| same_trigger(&triggers[groups[g].0], t))
            {
                Some(&g) => groups[g].1.push(t.id.clone()),
                None => {
                    bucket.push(groups.len());
                    groups.push((i, vec![t.id.clone()]));
                }
            }
        }
        groups
            .into_iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(first, group)| {
                Issue::new(
                    self.id(),
                    Severity::Medium,
                    "Duplicate triggers",
                    format!(
                        "Triggers {} are both \"{}\" with the same filters: they enrol the same contacts twice.",
                        id_list(&group),
                        triggers[first].trigger_type.as_str()
                    ),
                    Vec::new(),
                    "Delete the duplicate trigger, or give each trigger different filters.",
                )
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

    #[test]
    fn groups_equal_filters_whatever_their_key_order() {
        let mut v = wf(json!([]));
        v["triggers"] = json!([
            {"id": "t1", "type": "form_submitted", "filters": {"form": "a", "n": 0.0, "x": [1, {"p": 1, "q": 2}]}},
            {"id": "t2", "type": "form_submitted", "filters": {"form": "b"}},
            {"id": "t3", "type": "form_submitted", "filters": {"x": [1, {"q": 2, "p": 1}], "n": -0.0, "form": "a"}},
            {"id": "t4", "type": "form_submitted", "filters": {"form": "b"}},
            {"id": "t5", "type": "contact_created", "filters": {"form": "b"}},
            {"id": "t6", "type": "form_submitted", "filters": {"form": "a", "n": 0.0, "x": [{"p": 1, "q": 2}, 1]}}
        ]);
        let issues = run(&DuplicateTrigger, v);
        let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(issues.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("Triggers \"t1\", \"t3\" are"));
        assert!(messages[1].starts_with("Triggers \"t2\", \"t4\" are"));
    }
}

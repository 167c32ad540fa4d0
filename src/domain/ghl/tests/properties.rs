//! Random and mutated builder documents: the importer and the analysis never panic, and
//! import + analysis stay linear in the document's size.

use super::super::*;
use crate::domain::analysis::{analyze_location, analyze_workflow, LocationWorkflow};
use chrono::Utc;
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;

const IDS: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h"];
const TYPES: &[&str] = &[
    "sms",
    "email",
    "wait",
    "if_else",
    "goto",
    "add_contact_tag",
    "remove_contact_tag",
    "webhook",
    "custom_webhook",
    "add_to_workflow",
    "remove_from_workflow",
    "transition",
    "workflow_split",
    "find_opportunity",
    "update_contact_field",
    "custom_code",
    "teleport",
    "",
];

fn any_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => proptest::sample::select(IDS).prop_map(|s| json!(s)),
        1 => Just(Value::Null),
        1 => (0u8..5).prop_map(|n| json!(n)),
        1 => Just(json!({"id": "a"})),
        1 => Just(json!("")),
    ]
}

fn any_next() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        4 => any_id().prop_map(Some),
        3 => proptest::collection::vec(any_id(), 0..6).prop_map(|v| Some(Value::Array(v))),
        1 => Just(Some(json!({"x": 1}))),
        1 => Just(Some(json!(true))),
    ]
}

fn any_attributes() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(json!([1, 2]))),
        1 => Just(Some(json!("attrs"))),
        1 => Just(Some(json!({"type": "time", "startAfter": {"type": "minutes", "value": "x"}}))),
        1 => Just(Some(json!({"type": "time", "startAfter": {"type": "days", "value": 2}}))),
        1 => Just(Some(json!({"type": "condition", "timeout": [1]}))),
        1 => Just(Some(json!({"targetNodeId": "a"}))),
        1 => Just(Some(json!({"targetNodeId": 7}))),
        1 => Just(Some(json!({"tags": ["x", 1, null, "X "]}))),
        1 => Just(Some(json!({"tags": "x", "removeAll": "yes"}))),
        1 => Just(Some(json!({"workflow_id": ["w1", 3, {"a": 1}], "allWorkflows": 1}))),
        1 => Just(Some(json!({"workflow_id": "w2"}))),
        1 => Just(Some(json!({"url": "http://localhost/x?token=abcd1234", "headers": [{"key": "Authorization", "value": "Bearer abcdefgh12345"}, 5], "customData": [{"key": 1}, {"key": "password", "value": "hunter22"}]}))),
        1 => Just(Some(json!({"body": {"rawData": 5, "keyValueData": "x"}}))),
        1 => Just(Some(json!({"branches": [{"segments": null}, {"segments": [{"conditions": "x"}]}, 3]}))),
        1 => Just(Some(json!({"branches": {"a": 1}}))),
        1 => Just(Some(json!({"extras": {"weightDistribution": {"a": "50", "b": -3}}}))),
        1 => Just(Some(json!({"fields": [{"field": 3}, {"field": "x"}]}))),
        1 => Just(Some(json!({"body": "Hi {{contact.first_name"}))),
    ]
}

prop_compose! {
    fn any_template()(
        id in any_id(),
        ty in prop_oneof![8 => proptest::sample::select(TYPES).prop_map(|s| json!(s)), 1 => Just(json!(5)), 1 => Just(Value::Null)],
        next in any_next(),
        attributes in any_attributes(),
        node_type in proptest::option::of(proptest::sample::select(&["condition-node", "branch-yes", "branch-no", "x"][..])),
        cat in proptest::option::of(proptest::sample::select(&["multi-path", "transition", "conditions", ""][..])),
        parent in proptest::option::of(any_id()),
        order in proptest::option::of(prop_oneof![(0i64..4).prop_map(|n| json!(n)), Just(json!("1")), Just(json!([]))]),
        incomplete in proptest::option::of(prop_oneof![Just(json!(true)), Just(json!("yes"))]),
        not_an_object in proptest::bool::weighted(0.05),
    ) -> Value {
        if not_an_object {
            return json!(["not", "a", "step"]);
        }
        let mut o = serde_json::Map::new();
        o.insert("id".into(), id);
        o.insert("type".into(), ty);
        for (k, v) in [("next", next), ("attributes", attributes), ("parent", parent), ("order", order), ("incompleteData", incomplete)] {
            if let Some(v) = v {
                o.insert(k.into(), v);
            }
        }
        if let Some(n) = node_type {
            o.insert("nodeType".into(), json!(n));
        }
        if let Some(c) = cat {
            o.insert("cat".into(), json!(c));
        }
        Value::Object(o)
    }
}

fn any_trigger() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(
            json!({"id": "t", "type": "contact_tag", "active": true, "conditions": [{"field": "tagsAdded", "value": ["x", 1]}]})
        ),
        Just(json!({"id": "t", "type": "contact_tag", "active": false})),
        Just(json!({"type": "form_submission", "conditions": "x", "data": 5})),
        Just(json!({"id": 3, "type": 4, "active": "no", "deleted": null})),
        Just(json!({"id": "t", "type": "contact_tag", "data": {"tagName": ["x"], "tagEvent": 1}})),
        Just(json!("trigger")),
    ]
}

/// Wraps `templates` and `triggers` in one of the shapes (or a broken one).
fn wrap(kind: u8, templates: Vec<Value>, triggers: Value, fields: Value) -> Value {
    let mut doc = fields.as_object().cloned().unwrap_or_default();
    match kind % 5 {
        0 => {
            doc.insert("workflowData".into(), json!({"templates": templates}));
            json!({"workflowData": doc, "triggers": triggers})
        }
        1 => {
            doc.insert("templates".into(), Value::Array(templates));
            doc.insert("triggers".into(), triggers);
            Value::Object(doc)
        }
        2 => {
            doc.insert("workflowData".into(), json!({"templates": templates}));
            doc.insert("triggers".into(), triggers);
            Value::Object(doc)
        }
        3 => json!({"templates": templates}),
        _ => {
            json!([{"templates": templates, "triggers": triggers}, {"workflowData": {"templates": 3}}, fields])
        }
    }
}

fn any_fields() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(
            json!({"id": "wf", "name": "n", "status": "published", "version": 2, "allowMultiple": true, "window": {"start": "08:00", "end": "17:00", "days": [0, 7, 3]}})
        ),
        Just(
            json!({"_id": 5, "name": 3, "status": "archived", "version": "2", "allowMultiple": "yes", "window": [1], "timezone": 4, "deleted": true})
        ),
        Just(json!({"window": {"days": ["x", -1, 99, null]}, "stopOnResponse": 1})),
        Just(json!({})),
    ]
}

fn check(value: &Value) {
    let Ok(all) = import_all(value) else { return };
    let now = Utc::now();
    let imported: Vec<ImportedWorkflow> = all.into_iter().filter_map(Result::ok).collect();
    for w in &imported {
        let report = analyze_workflow("p", 1, &w.document, now);
        assert!(report.health_score <= 100);
        let again = WorkflowDocument::from_json(&w.document.to_json()).expect("round trip");
        assert_eq!(again.steps.len(), w.document.steps.len());
    }
    let ws: Vec<LocationWorkflow<'_>> = imported
        .iter()
        .map(|w| LocationWorkflow {
            id: "w1",
            doc: &w.document,
        })
        .collect();
    let _ = analyze_location(&ws, now);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_builder_documents_never_panic(
        templates in proptest::collection::vec(any_template(), 0..24),
        triggers in proptest::collection::vec(any_trigger(), 0..4),
        fields in any_fields(),
        kind in 0u8..5,
    ) {
        check(&wrap(kind, templates, Value::Array(triggers), fields));
    }

    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json()) {
        check(&value);
        let _ = import_bytes(value.to_string().as_bytes());
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        proptest::sample::select(&["templates", "workflowData", "next", "a", "if_else", ""][..])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(
                    &[
                        "templates",
                        "workflowData",
                        "triggers",
                        "id",
                        "type",
                        "next",
                        "attributes",
                        "nodeType"
                    ][..]
                )
                .prop_map(str::to_string),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A builder document of about `n` steps mixing every construct, with the hostile ones in
/// proportion: if/else nodes with branch nodes, backward gotos without waits (loops),
/// self-gotos, duplicate ids, dangling `next`s, a multi-path fan-out over a quarter of the
/// steps, webhooks with secrets, tags that re-trigger the workflow.
pub(crate) fn generated(n: usize) -> Value {
    let id = |i: usize| format!("s{i}");
    let mut t: Vec<Value> = Vec::with_capacity(n + n / 4 + 8);
    let fan: Vec<String> = (0..n / 4).map(|k| format!("p{k}")).collect();
    t.push(json!({"id": "root", "type": "find_opportunity", "cat": "multi-path", "next": fan}));
    for k in 0..n / 4 {
        t.push(json!({"id": format!("p{k}"), "type": "transition", "cat": "transition", "next": id(k * 3)}));
    }
    let mut i = 0;
    while i < n {
        let next = json!(id(i + 1));
        match i % 9 {
            0 => t.push(json!({"id": id(i), "type": "sms", "attributes": {"body": "Hi {{contact.first_name}}"}, "next": next})),
            1 => t.push(json!({"id": id(i), "type": "wait", "attributes": {"type": "time", "startAfter": {"type": "hours", "value": 1}}, "next": next})),
            2 => {
                t.push(json!({"id": id(i), "type": "if_else", "nodeType": "condition-node", "attributes": {"branches": [{"id": format!("{i}y"), "name": "y", "segments": [{"conditions": [{"conditionType": "tag"}]}]}]}, "next": [format!("{i}y"), format!("{i}n")]}));
                t.push(json!({"id": format!("{i}y"), "type": "if_else", "nodeType": "branch-yes", "next": next}));
                t.push(json!({"id": format!("{i}n"), "type": "if_else", "nodeType": "branch-no", "next": format!("{i}g")}));
                t.push(json!({"id": format!("{i}g"), "type": "goto", "attributes": {"targetNodeId": id(i.saturating_sub(1))}}));
            }
            3 => t.push(json!({"id": id(i), "type": "webhook", "attributes": {"url": "http://api.example.com/x?api_key=abc123def", "headers": [{"key": "Authorization", "value": "Bearer abcdefgh12345678"}], "customData": [{"key": "password", "value": "hunter22"}]}, "next": next})),
            4 => t.push(json!({"id": id(i), "type": "add_contact_tag", "attributes": {"tags": ["lead", "lead", "vip"]}, "next": next})),
            5 => t.push(json!({"id": id(i), "type": "goto", "attributes": {"targetNodeId": id(i)}, "next": next})),
            6 => t.push(json!({"id": id(i - 1), "type": "email", "attributes": {"subject": "x"}, "next": next})),
            7 => t.push(json!({"id": id(i), "type": "sms", "incompleteData": true, "next": format!("ghost{i}")})),
            _ => t.push(json!({"id": id(i), "type": "math_operation", "next": next})),
        }
        i += 1;
    }
    json!({"workflowData": {"id": "big", "name": "big", "status": "published", "allowMultiple": true,
        "workflowData": {"templates": t}},
        "triggers": [{"id": "t", "type": "contact_tag", "active": true, "conditions": [{"field": "tagsAdded", "value": "lead"}]}]})
}

/// The CPU time this thread spent importing and analyzing `v`: a time slice lost to another
/// process on a shared machine is not counted (wall time is, and made this test flaky).
fn import_and_analyze(v: &Value) -> Duration {
    let start = cpu_time::ThreadTime::now();
    let w = import(v).expect("imports");
    let report = analyze_workflow("big", 1, &w.document, Utc::now());
    assert!(report.issues_summary.total > 0);
    start.elapsed()
}

#[test]
fn import_and_analysis_grow_linearly_with_the_document() {
    let small = generated(2_000);
    let large = generated(8_000);
    // Pairs measured back to back, the best pair kept: whatever slows one pair (caches shared
    // with another process) slows both of its sides alike.
    let ratio = (0..5)
        .map(|_| {
            let (t1, t4) = (import_and_analyze(&small), import_and_analyze(&large));
            (t4.as_secs_f64() / t1.as_secs_f64().max(1e-9), t1, t4)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((0.0, Duration::ZERO, Duration::ZERO));
    // Linear is 4, n log n a little more; quadratic would be 16.
    assert!(
        ratio.0 < 9.0,
        "4× the steps took {:.1}× the time ({:?} → {:?})",
        ratio.0,
        ratio.1,
        ratio.2
    );
}

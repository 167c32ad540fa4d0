//! Any JSON value through parse + analysis never panics (proptest).

use chrono::{TimeZone, Utc};
use ghl_workflow_debugger::domain::analysis::{
    analyze_location, analyze_workflow, LocationWorkflow,
};
use ghl_workflow_debugger::domain::workflow::WorkflowDocument;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "name",
    "status",
    "settings",
    "timeWindow",
    "allowReentry",
    "triggers",
    "filters",
    "tag",
    "field",
    "start",
    "steps",
    "id",
    "type",
    "next",
    "else",
    "branches",
    "percent",
    "condition",
    "config",
    "target",
    "url",
    "headers",
    "body",
    "code",
    "duration",
    "until",
    "event",
    "timeout",
    "to",
    "subject",
    "workflowId",
    "tags",
    "zz",
];
const WORDS: &[&str] = &[
    "s0",
    "s1",
    "s2",
    "s3",
    "t1",
    "wait",
    "goto",
    "if_else",
    "Send-SMS",
    "send_email",
    "split",
    "add_tag",
    "webhook",
    "custom_code",
    "add_to_workflow",
    "update_contact_field",
    "contact_tag_added",
    "contact_changed",
    "published",
    "draft",
    "1d",
    "99999999999999999999w",
    "2020-01-01T00:00:00Z",
    "http://127.0.0.1/x?token=abc123",
    "https://[::1",
    "{{contact.first_name",
    "{{x}}",
    "}}{{",
    "Bearer abcdefghijk",
    "",
    "é{{",
    "1w2",
    "-5",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        proptest::sample::select(WORDS).prop_map(|w| Value::String(w.to_string())),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..8).prop_map(
                |kv| {
                    let mut m = Map::new();
                    for (k, v) in kv {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

/// Structurally plausible workflows with random wiring.
fn workflow() -> impl Strategy<Value = Value> {
    let step = (
        proptest::sample::select(&["s0", "s1", "s2", "s3", "s4", "s5"][..]),
        proptest::sample::select(&WORDS[4..19]),
        proptest::option::of(proptest::sample::select(
            &["s0", "s1", "s2", "s3", "s4", "s9"][..],
        )),
        proptest::option::of(proptest::sample::select(&["s0", "s2", "s5"][..])),
        value(),
    )
        .prop_map(|(id, ty, next, other, config)| {
            json!({"id": id, "type": ty, "next": next, "else": other,
                   "branches": [{"next": other, "percent": 50}], "config": config})
        });
    (proptest::collection::vec(step, 0..12), value(), any::<bool>()).prop_map(|(steps, triggers, reentry)| {
        json!({"name": "p", "status": "published", "start": "s0", "settings": {"allowReentry": reentry},
               "triggers": triggers, "steps": steps})
    })
}

fn check(v: &Value) {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 28, 0, 0, 0)
        .single()
        .expect("date");
    if let Ok(doc) = WorkflowDocument::from_json(v) {
        let report = analyze_workflow("wf", 1, &doc, now);
        assert_eq!(report.issues_summary.total as usize, report.issues.len());
        let _ = serde_json::to_string(&report).expect("serializes");
        let again = WorkflowDocument::from_json(&doc.to_json()).expect("canonical JSON re-parses");
        assert_eq!(again, doc, "to_json must round-trip");
        let _ = analyze_location(
            &[
                LocationWorkflow {
                    id: "wf",
                    doc: &doc,
                },
                LocationWorkflow {
                    id: "s1",
                    doc: &again,
                },
            ],
            now,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_json_never_panics(v in value()) {
        check(&v);
    }

    #[test]
    fn random_workflows_never_panic(v in workflow()) {
        check(&v);
    }
}

#[test]
fn deep_nesting_and_huge_strings_do_not_panic() {
    // serde_json refuses text nested deeper than 128 levels, so that is the deepest a
    // document parsed from text (API or CLI) can be.
    let too_deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(serde_json::from_str::<Value>(&too_deep).is_err());
    let deep_text = "{\"body\": [".repeat(60) + "\"{{contact.x}}\"" + &"]}".repeat(60);
    let deep: Value = serde_json::from_str(&deep_text).expect("within the parser's depth limit");
    let huge = "{{".repeat(100_000) + &"a".repeat(100_000);
    let v = json!({"name": huge, "start": "s1", "steps": [
        {"id": "s1", "type": "webhook", "config": {"url": huge, "body": deep, "headers": {"Authorization": huge}}},
    ]});
    check(&v);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Text scanners (merge fields, secrets, URLs, durations) on brace- and unicode-heavy text.
    #[test]
    fn text_scanners_never_panic(text in "[{}a-zA-Z0-9._ é€=:&?/@\"'`$-]{0,80}", ty in proptest::sample::select(&["webhook", "custom_code", "send_sms", "wait", "send_email"][..])) {
        let v = json!({"name": "t", "start": "s1", "steps": [{"id": "s1", "type": ty, "config": {
            "url": text, "body": text, "code": text, "subject": text, "to": text, "duration": text,
            "until": text, "timeout": text, "headers": {"Authorization": text, "X-Api-Key": text}
        }}]});
        check(&v);
    }
}

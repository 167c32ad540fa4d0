//! Engine-level tests: score, grades, ordering, report shape, realistic and huge workflows.

use super::rules::{rule_set, LOCATION_RULE_IDS};
use super::*;
use crate::domain::workflow::WorkflowDocument;
use chrono::TimeZone;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("valid date")
}

fn doc(v: Value) -> WorkflowDocument {
    WorkflowDocument::from_json(&v).expect("test document parses")
}

fn healthy() -> Value {
    json!({
      "name": "New lead nurture", "status": "published",
      "settings": { "allowReentry": false, "stopOnResponse": true,
        "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon","tue","wed","thu","fri"], "timezone": "America/Chicago" } },
      "triggers": [ { "id": "t1", "type": "contact_tag_added", "name": "Tag lead added", "filters": { "tag": "lead" } } ],
      "start": "s1",
      "steps": [
        { "id": "s1", "type": "send_email", "name": "Welcome", "config": { "subject": "Hi {{contact.first_name}}", "body": "Thanks for reaching out, {{ contact.first_name }}!", "to": "{{contact.email}}" }, "next": "s2" },
        { "id": "s2", "type": "wait", "config": { "duration": "1d" }, "next": "s3" },
        { "id": "s3", "type": "if_else", "branches": [ { "name": "Replied", "condition": { "field": "contact.replied", "op": "eq", "value": true }, "next": "s4" } ], "else": "s5" },
        { "id": "s4", "type": "add_tag", "config": { "tag": "engaged" }, "next": "s8" },
        { "id": "s5", "type": "send_sms", "config": { "body": "Hi {{contact.first_name}}, any questions? {{user.name}}", "to": "{{contact.phone}}" }, "next": "s6" },
        { "id": "s6", "type": "wait", "config": { "event": "customer_replied", "timeout": "3d" }, "next": "s7" },
        { "id": "s7", "type": "webhook", "config": { "url": "https://hooks.example.com/crm?source=ghl", "headers": { "Authorization": "Bearer {{custom_values.crm_token}}" }, "body": { "email": "{{contact.email}}" } }, "next": "s8" },
        { "id": "s8", "type": "internal_notification", "config": { "to": "{{user.email}}", "body": "Lead {{contact.name}} processed" }, "next": "s9" },
        { "id": "s9", "type": "end" }
      ]
    })
}

fn contract_example() -> Value {
    json!({
      "name": "New lead nurture", "status": "published",
      "settings": { "allowReentry": false, "stopOnResponse": true,
        "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon","tue","wed","thu","fri"], "timezone": "America/Chicago" } },
      "triggers": [ { "id": "t1", "type": "contact_tag_added", "name": "Tag lead added", "filters": { "tag": "lead" } } ],
      "start": "s1",
      "steps": [
        { "id": "s1", "type": "send_email", "name": "Welcome", "config": { "subject": "Hi {{contact.first_name}}", "body": "…", "to": "{{contact.email}}" }, "next": "s2" },
        { "id": "s2", "type": "wait", "config": { "duration": "1d" }, "next": "s3" },
        { "id": "s3", "type": "if_else", "branches": [ { "name": "Replied", "condition": { "field": "contact.replied", "op": "eq", "value": true }, "next": "s4" } ], "else": "s5" },
        { "id": "s4", "type": "add_tag", "config": { "tag": "engaged" } },
        { "id": "s5", "type": "goto", "config": { "target": "s1" } }
      ]
    })
}

#[test]
fn healthy_workflow_scores_100_with_no_findings() {
    let r = analyze_workflow("wf1", 3, &doc(healthy()), now());
    assert!(r.issues.is_empty(), "{:#?}", r.issues);
    assert_eq!(r.health_score, 100);
    assert_eq!(r.grade, "Excellent");
    assert!(r.recommendations.is_empty());
    assert_eq!(r.performance.steps, 9);
    // Longest path: s2 (1d) + s6 timeout (3d).
    assert_eq!(r.performance.max_path_wait_seconds, 4 * 86_400);
    assert_eq!(r.performance.complexity, "low");
}

#[test]
fn contract_example_loop_has_a_wait_and_an_exit() {
    // s1 → s2(wait 1d) → s3 → else s5 → goto s1: a loop, but it waits and can be left via
    // the "Replied" branch, so neither loop rule fires.
    let r = analyze_workflow("wf1", 7, &doc(contract_example()), now());
    let rules: Vec<&str> = r.issues.iter().map(|i| i.rule.as_str()).collect();
    assert!(!rules.contains(&"loop-without-wait"), "{rules:?}");
    assert!(!rules.contains(&"loop-without-exit"), "{rules:?}");
    // The wait inside the cycle is counted once.
    assert_eq!(r.performance.max_path_wait_seconds, 86_400);

    // Without the wait, the same loop spins.
    let mut v = contract_example();
    v["steps"][0]["next"] = json!("s3");
    let r = analyze_workflow("wf1", 7, &doc(v), now());
    let lww: Vec<_> = r
        .issues
        .iter()
        .filter(|i| i.rule == "loop-without-wait")
        .collect();
    assert_eq!(lww.len(), 1);
    assert_eq!(lww[0].step_ids, vec!["s1", "s3", "s5"]);
}

#[test]
fn score_grade_order_and_summary() {
    let v = json!({
        "name": "broken", "status": "published", "start": "nope",
        "steps": [
            {"id": "a", "type": "send_sms", "config": {}, "next": "ghost"},
            {"id": "b", "type": "if_else", "branches": [{"next": "a"}]}
        ]
    });
    let r = analyze_workflow("x", 1, &doc(v), now());
    let sev: Vec<Severity> = r.issues.iter().map(|i| i.severity).collect();
    let mut sorted = sev.clone();
    sorted.sort();
    assert_eq!(sev, sorted);
    let s = r.issues_summary;
    assert_eq!(s.total as usize, r.issues.len());
    assert_eq!(r.health_score, s.health_score());
    assert!(s.critical >= 3);
    assert_eq!(r.grade, grade(r.health_score));
    assert!(r.has_critical());
    // One recommendation per category present, most severe first.
    assert!(r.recommendations[0].starts_with("Structure"));
    assert_eq!(r.recommendations.len(), 3);
}

#[test]
fn grades_follow_the_contract() {
    assert_eq!(grade(100), "Excellent");
    assert_eq!(grade(90), "Excellent");
    assert_eq!(grade(89), "Good");
    assert_eq!(grade(70), "Good");
    assert_eq!(grade(69), "Needs Attention");
    assert_eq!(grade(50), "Needs Attention");
    assert_eq!(grade(49), "High Risk");
    assert_eq!(grade(30), "High Risk");
    assert_eq!(grade(29), "Critical");
    assert_eq!(grade(0), "Critical");
    let s = IssuesSummary {
        critical: 5,
        high: 1,
        medium: 0,
        low: 0,
        total: 6,
    };
    assert_eq!(s.health_score(), 0);
    let s = IssuesSummary {
        critical: 0,
        high: 1,
        medium: 2,
        low: 1,
        total: 4,
    };
    assert_eq!(s.health_score(), 73);
}

#[test]
fn report_serializes_to_the_contract_shape_and_back() {
    let mut v = contract_example();
    v["steps"][0]["next"] = json!("s3");
    let r = analyze_workflow("wf1", 7, &doc(v), now());
    let j = serde_json::to_value(&r).expect("serializes");
    let keys: Vec<&str> = j
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "workflowId",
        "workflowName",
        "version",
        "rulesVersion",
        "healthScore",
        "grade",
        "issuesSummary",
        "issues",
        "recommendations",
        "performance",
        "analyzedAt",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert!(!keys.contains(&"upgrade"));
    assert_eq!(j["analyzedAt"], "2026-11-28T12:00:00Z");
    assert_eq!(j["performance"]["maxPathWaitSeconds"], 0);
    let issue = &j["issues"][0];
    assert_eq!(issue["severity"], "high");
    assert!(issue["stepIds"].is_array());
    assert!(issue.get("workflowIds").is_none());
    let back: AnalysisReport = serde_json::from_value(j).expect("deserializes");
    assert_eq!(back, r);
}

#[test]
fn free_plan_truncation_keeps_counts() {
    let v = json!({"name": "n", "status": "published", "steps": [
        {"id": "a", "type": "x1"}, {"id": "b", "type": "x2"}, {"id": "c", "type": "x3"},
        {"id": "d", "type": "webhook", "config": {"url": "nope"}}
    ]});
    let mut r = analyze_workflow("x", 1, &doc(v), now());
    let total = r.issues.len();
    let score = r.health_score;
    assert!(total > 3);
    r.truncate_for_free_plan();
    assert_eq!(r.issues.len(), 3);
    assert!(r.recommendations.len() <= 2);
    assert_eq!(r.issues_summary.total as usize, total);
    assert_eq!(r.health_score, score);
    let up = r.upgrade.clone().expect("upgrade set");
    assert_eq!(up.hidden, total - 3);
    let j = serde_json::to_value(&r).expect("serializes");
    assert_eq!(j["upgrade"]["hidden"], total - 3);
}

#[test]
fn complexity_thresholds() {
    // A split with 25 branches to one end step: E = 25 (dedup → 1)… use distinct targets.
    let mut steps = vec![
        json!({"id": "s0", "type": "split", "branches": (1..=25).map(|i| json!({"percent": 4, "next": format!("s{i}")})).collect::<Vec<_>>()}),
    ];
    for i in 1..=25 {
        steps.push(
            json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tag": "t"}, "next": "e"}),
        );
    }
    steps.push(json!({"id": "e", "type": "end"}));
    let v = json!({"name": "c", "status": "draft", "start": "s0", "steps": steps});
    let r = analyze_workflow("c", 0, &doc(v), now());
    // E = 50, N = 27 → 25.
    assert_eq!(r.performance.complexity, "high");
}

fn chain(n: usize, cycle: bool) -> WorkflowDocument {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let next = if i + 1 < n { json!(format!("s{}", i + 1)) } else if cycle { json!("s0") } else { Value::Null };
            if i % 2 == 0 {
                json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tag": "t"}, "next": next})
            } else {
                json!({"id": format!("s{i}"), "type": "send_email", "config": {"subject": "s", "body": "b"}, "next": next})
            }
        })
        .collect();
    doc(json!({"name": "big", "status": "published", "start": "s0",
        "triggers": [{"id": "t", "type": "form_submitted"}], "steps": steps}))
}

#[test]
fn fifty_thousand_steps_chain_and_cycle() {
    let r = analyze_workflow("big", 1, &chain(50_000, false), now());
    assert_eq!(r.performance.steps, 50_000);
    let r = analyze_workflow("big", 1, &chain(50_000, true), now());
    let exit: Vec<_> = r
        .issues
        .iter()
        .filter(|i| i.rule == "loop-without-exit")
        .collect();
    assert_eq!(exit.len(), 1);
    assert_eq!(exit[0].step_ids.len(), 50_000);
}

#[test]
fn rule_ids_are_unique_kebab_case_and_complete() {
    let required = [
        "no-trigger",
        "missing-start",
        "dangling-reference",
        "duplicate-id",
        "unreachable-step",
        "loop-without-exit",
        "loop-without-wait",
        "if-else-without-else",
        "split-percent-invalid",
        "unknown-step-type",
        "unknown-trigger-type",
        "missing-required-field",
        "webhook-invalid-url",
        "webhook-private-url",
        "webhook-insecure-url",
        "hardcoded-secret",
        "hardcoded-recipient",
        "invalid-merge-field",
        "excessive-wait",
        "wait-until-past",
        "event-wait-without-timeout",
        "self-retrigger",
        "duplicate-trigger",
        "rapid-messages",
        "sms-outside-time-window",
        "incomplete-step",
        "condition-without-conditions",
    ];
    let ids: Vec<&str> = rule_set().iter().map(|r| r.id()).collect();
    assert_eq!(ids, required);
    assert_eq!(LOCATION_RULE_IDS.len(), 3);
}

#[test]
fn every_rule_is_documented() {
    let docs = include_str!("../../../docs/rules.md");
    let ids = rule_set()
        .iter()
        .map(|r| r.id())
        .chain(LOCATION_RULE_IDS.iter().copied());
    for id in ids {
        let heading = format!("## `{id}`");
        let start = docs
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/rules.md has no section {heading}"));
        let section = &docs[start..];
        let end = section[3..]
            .find("\n## ")
            .map(|e| e + 3)
            .unwrap_or(section.len());
        let section = &section[..end];
        for part in [
            "**Severity:**",
            "**Detects:**",
            "**Why it matters:**",
            "Bad:",
            "Fixed:",
        ] {
            assert!(section.contains(part), "section {id} lacks {part}");
        }
    }
}

fn json_block_after<'a>(section: &'a str, label: &str) -> &'a str {
    let start = section.find(label).unwrap_or_else(|| panic!("no {label}"));
    let rest = &section[start..];
    let open = rest.find("```json\n").expect("json block") + "```json\n".len();
    let close = rest[open..].find("\n```").expect("closing fence") + open;
    &rest[open..close]
}

/// Turns a documentation example (a whole fragment, one step or one trigger) into a document.
fn example_document(example: &Value) -> Value {
    let mut doc = json!({
        "name": "example", "status": "published",
        "settings": {"timeWindow": {"start": "08:00", "end": "20:00", "days": ["mon"], "timezone": "UTC"}},
        "triggers": [{"id": "t1", "type": "form_submitted", "filters": {}}],
        "steps": []
    });
    let obj = example.as_object().expect("example is an object");
    if obj.contains_key("filters") {
        doc["triggers"] = json!([example]);
    } else if obj.contains_key("type") {
        doc["steps"] = json!([example]);
    } else {
        for (k, v) in obj {
            doc[k.as_str()] = v.clone();
        }
    }
    if doc.get("start").is_none() {
        if let Some(first) = doc["steps"].get(0).and_then(|s| s.get("id")).cloned() {
            doc["start"] = first;
        }
    }
    doc
}

#[test]
fn documented_examples_fire_and_fixes_do_not() {
    let docs = include_str!("../../../docs/rules.md");
    for rule in rule_set() {
        let heading = format!("## `{}`", rule.id());
        let start = docs.find(&heading).expect("section exists");
        let section = &docs[start..];
        let end = section[3..]
            .find("\n## ")
            .map(|e| e + 3)
            .unwrap_or(section.len());
        let section = &section[..end];
        let bad: Value =
            serde_json::from_str(json_block_after(section, "Bad:")).expect("bad example is JSON");
        let fixed: Value = serde_json::from_str(json_block_after(section, "Fixed:"))
            .expect("fixed example is JSON");
        let fired = super::rules::testing::run(*rule, example_document(&bad));
        assert!(
            !fired.is_empty(),
            "{}: the bad example does not fire",
            rule.id()
        );
        let fired = super::rules::testing::run(*rule, example_document(&fixed));
        assert!(
            fired.is_empty(),
            "{}: the fixed example still fires: {fired:#?}",
            rule.id()
        );
    }
}

#[test]
fn fused_engine_matches_rule_by_rule_checks() {
    let v = json!({
        "name": "mixed", "status": "published", "start": "a",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": "x"}}, {"id": "t", "type": "moon"}],
        "steps": [
            {"id": "a", "type": "send_sms", "config": {"body": "Hi {{first_name}}", "to": "+1 555 123 4567"}, "next": "b"},
            {"id": "b", "type": "webhook", "config": {"url": "http://10.0.0.1/x?token=abcd1234"}, "next": "c"},
            {"id": "c", "type": "wait", "config": {"event": "x", "timeout": "60d"}, "next": "d"},
            {"id": "d", "type": "if_else", "branches": [{"next": "a"}]},
            {"id": "e", "type": "split", "branches": [{"percent": 10}]},
            {"id": "a", "type": "add_tag", "config": {"tag": "x"}}
        ]
    });
    let d = doc(v);
    let report = analyze_workflow("m", 1, &d, now());
    let g = graph::Graph::build(&d);
    let reachable = graph::bfs(&g.adj, g.entry, |_| true);
    let sccs = graph::tarjan(&g.adj, |_| true);
    let index = StepIndex::build(&d);
    let ctx = RuleContext {
        doc: &d,
        graph: &g,
        reachable: &reachable,
        sccs: &sccs,
        index: &index,
        now: now(),
    };
    let mut expected: Vec<Issue> = rule_set().iter().flat_map(|r| r.check(&ctx)).collect();
    sort_issues(&mut expected);
    assert_eq!(report.issues, expected);
    assert!(report.issues.len() >= 12, "{:#?}", report.issues);
}

mod growth;
mod visit;

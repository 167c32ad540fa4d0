//! Tests of the location rules (a child module of `location`).

use super::*;
use serde_json::json;

fn wf(v: Value) -> WorkflowDocument {
    WorkflowDocument::from_json(&v).expect("valid test document")
}

fn tag_wf(trigger_tag: &str, adds: &str) -> WorkflowDocument {
    wf(json!({"name": "w", "status": "published",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": trigger_tag}}],
        "start": "s1",
        "steps": [{"id": "s1", "type": "add_tag", "config": {"tag": adds}}]}))
}

#[test]
fn tag_cascade_is_reported_with_workflows_and_steps() {
    let a = tag_wf("y", "x");
    let b = tag_wf("x", "y");
    let c = tag_wf("z", "x");
    let ws = [
        LocationWorkflow { id: "A", doc: &a },
        LocationWorkflow { id: "B", doc: &b },
        LocationWorkflow { id: "C", doc: &c },
    ];
    let r = analyze_location(&ws, Utc::now());
    assert_eq!(r.issues.len(), 1);
    assert_eq!(r.issues[0].rule, "workflow-cascade-loop");
    assert_eq!(r.issues[0].workflow_ids, vec!["A", "B"]);
    assert_eq!(r.issues[0].step_ids, vec!["s1"]);
    assert_eq!(findings_involving(&r, "B").len(), 1);
    assert!(findings_involving(&r, "C").is_empty());
}

#[test]
fn chain_without_return_is_not_a_cascade() {
    let a = tag_wf("y", "x");
    let b = tag_wf("x", "z");
    let ws = [
        LocationWorkflow { id: "A", doc: &a },
        LocationWorkflow { id: "B", doc: &b },
    ];
    assert!(analyze_location(&ws, Utc::now()).issues.is_empty());
    // A tag self-loop is self-retrigger's business, not a cascade.
    let s = tag_wf("x", "x");
    assert!(
        analyze_location(&[LocationWorkflow { id: "S", doc: &s }], Utc::now())
            .issues
            .is_empty()
    );
}

#[test]
fn add_to_workflow_self_loop_missing_and_draft_targets() {
    let a = wf(
        json!({"name": "a", "status": "published", "start": "s1", "triggers": [{"id": "t", "type": "form_submitted"}],
        "steps": [
            {"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "A"}, "next": "s2"},
            {"id": "s2", "type": "add_to_workflow", "config": {"workflowId": "D"}, "next": "s3"},
            {"id": "s3", "type": "remove_from_workflow", "config": {"workflowId": "GONE"}}
        ]}),
    );
    let d = wf(json!({"name": "d", "status": "draft", "steps": []}));
    let ws = [
        LocationWorkflow { id: "A", doc: &a },
        LocationWorkflow { id: "D", doc: &d },
    ];
    let r = analyze_location(&ws, Utc::now());
    let rules: Vec<_> = r.issues.iter().map(|i| i.rule.as_str()).collect();
    assert_eq!(
        rules,
        vec![
            "workflow-cascade-loop",
            "missing-target-workflow",
            "draft-target-workflow"
        ]
    );
    assert_eq!(r.issues[0].workflow_ids, vec!["A"]);
    assert_eq!(r.issues[1].step_ids, vec!["s3"]);
}

#[test]
fn published_existing_target_is_fine() {
    let a = wf(json!({"name": "a", "status": "published", "start": "s1",
        "steps": [{"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "B"}}]}));
    let b = wf(json!({"name": "b", "status": "published", "steps": []}));
    let ws = [
        LocationWorkflow { id: "A", doc: &a },
        LocationWorkflow { id: "B", doc: &b },
    ];
    assert!(analyze_location(&ws, Utc::now()).issues.is_empty());
}

/// A published workflow started by tag `trigger_tag`, with no steps.
fn triggered_by(trigger_tag: &str) -> WorkflowDocument {
    wf(json!({"name": "w", "status": "published",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": trigger_tag}}],
        "steps": []}))
}

/// Clock readings of a location analysis: a proxy for the work it did (one reading every
/// few edges, steps and workflows).
fn readings_of(ws: &[LocationWorkflow<'_>]) -> (LocationReport, usize) {
    let reads = std::cell::Cell::new(0usize);
    let budget = Budget::new(std::time::Duration::from_secs(3600), || {
        reads.set(reads.get() + 1);
        std::time::Duration::ZERO
    });
    let report = analyze_location_within(ws, Utc::now(), &budget).expect("within");
    (report, reads.get())
}

#[test]
fn tags_are_trimmed_lowercased_and_listed_once() {
    let config = json!({"tag": " VIP ", "tags": ["vip", "Lead", "lead ", "", "  ", 3, "new"]});
    let serde_json::Value::Object(config) = config else {
        unreachable!("an object")
    };
    assert_eq!(tags_of(&config), vec!["vip", "lead", "new"]);
    assert!(matches!(distinct_tags(&config)[2], Cow::Borrowed("new")));
}

#[test]
fn a_tag_listed_fifty_thousand_times_costs_one_edge_per_triggered_workflow() {
    let repeated: Vec<&str> = vec!["vip"; 50_000];
    let adder = wf(json!({"name": "a", "status": "published", "start": "s1",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": "vip"}}],
        "steps": [{"id": "s1", "type": "add_tag", "config": {"tags": repeated}}]}));
    let targets: Vec<(String, WorkflowDocument)> = (0..300)
        .map(|i| (format!("T{i:03}"), triggered_by("VIP")))
        .collect();
    let mut ws = vec![LocationWorkflow {
        id: "A",
        doc: &adder,
    }];
    ws.extend(targets.iter().map(|(id, doc)| LocationWorkflow { id, doc }));

    let (report, reads) = readings_of(&ws);

    // 301 edges (A to itself is a tag self-loop, not a cascade): far from the edge cap,
    // and the work is a few readings per workflow, not one per listed tag × target.
    assert!(report.limits.is_none(), "{:?}", report.limits);
    assert!(reads < 3 * ws.len(), "{reads} clock readings");
    assert!(report.issues.is_empty());
}

#[test]
fn workflows_past_the_cap_are_counted_and_still_exist_as_targets() {
    let extra = 5;
    let adds_last = wf(json!({"name": "a", "status": "published", "start": "s1",
        "steps": [{"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "W9999"}}]}));
    let plain = triggered_by("x");
    let ids: Vec<String> = (0..MAX_LOCATION_WORKFLOWS + extra)
        .map(|i| format!("W{i:04}"))
        .collect();
    let mut ws = vec![LocationWorkflow {
        id: "A",
        doc: &adds_last,
    }];
    ws.extend(ids.iter().map(|id| LocationWorkflow { id, doc: &plain }));
    ws.push(LocationWorkflow {
        id: "W9999",
        doc: &plain,
    });

    let report = analyze_location(&ws, Utc::now());

    assert_eq!(
        report.limits,
        Some(LocationLimits {
            workflows_considered: MAX_LOCATION_WORKFLOWS,
            workflows_total: ws.len(),
            edges_considered: 0,
            truncated: true,
        })
    );
    // W9999 is past the cap but exists: not a missing target.
    assert!(report.issues.is_empty(), "{:?}", report.issues);
    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(
        json["limits"]["workflowsConsidered"],
        MAX_LOCATION_WORKFLOWS
    );
    assert_eq!(json["limits"]["truncated"], true);
}

#[test]
fn edges_past_the_cap_are_not_added_and_the_cap_is_reported() {
    // Every workflow adds tag x and is started by it: n² edges.
    let n = 400;
    let loop_doc = tag_wf("x", "x");
    let ids: Vec<String> = (0..n).map(|i| format!("W{i:03}")).collect();
    let ws: Vec<LocationWorkflow<'_>> = ids
        .iter()
        .map(|id| LocationWorkflow { id, doc: &loop_doc })
        .collect();
    assert!(n * n > MAX_LOCATION_EDGES);

    let report = analyze_location(&ws, Utc::now());

    let limits = report.limits.expect("capped");
    assert_eq!(limits.edges_considered, MAX_LOCATION_EDGES);
    assert!(limits.truncated);
    assert_eq!(limits.workflows_considered, n);
    // The edges kept still show the cascade.
    assert_eq!(report.issues.len(), 1);
    assert_eq!(report.issues[0].rule, "workflow-cascade-loop");
    assert_eq!(report.issues[0].step_ids, vec!["s1"]);
}

#[test]
fn thousands_of_missing_targets_list_fifty_and_count_the_rest() {
    let steps: Vec<Value> = (0..300)
        .map(|i| {
            json!({"id": format!("s{i}"), "type": "remove_from_workflow",
            "config": {"workflowId": format!("gone-{i}")}})
        })
        .collect();
    let a = wf(json!({"name": "a", "status": "published", "steps": steps}));

    let report = analyze_location(&[LocationWorkflow { id: "A", doc: &a }], Utc::now());

    assert_eq!(report.issues.len(), MAX_ISSUES_PER_RULE);
    assert_eq!(report.issues_summary.total, 300);
    assert_eq!(report.issues_omitted[0].count, 250);
    assert_eq!(report.issues[0].step_ids, vec!["s0"]);
}

#[test]
fn a_spent_budget_abandons_the_location_analysis() {
    let a = tag_wf("y", "x");
    let b = tag_wf("x", "y");
    let ws = [
        LocationWorkflow { id: "A", doc: &a },
        LocationWorkflow { id: "B", doc: &b },
    ];
    let limit = std::time::Duration::from_millis(1);
    let budget = Budget::new(
        limit,
        crate::domain::analysis::budget::tests::ticking(limit),
    );

    let result = analyze_location_within(&ws, Utc::now(), &budget);

    assert_eq!(result, Err(AnalysisAbandoned::TooComplex { budget: limit }));
}

#[test]
fn a_location_report_without_caps_serializes_as_before() {
    let a = tag_wf("y", "x");
    let report = analyze_location(&[LocationWorkflow { id: "A", doc: &a }], Utc::now());

    let json = serde_json::to_value(&report).expect("serializes");

    assert!(json.get("limits").is_none());
    assert!(json.get("issuesOmitted").is_none());
}

/// The report without its clock.
fn timeless(mut report: LocationReport) -> LocationReport {
    report.analyzed_at = String::new();
    report
}

#[test]
fn facts_gathered_one_document_at_a_time_give_the_report_of_the_documents() {
    let docs: Vec<(&str, Value)> = vec![
        (
            "A",
            json!({"name": "a", "status": "published", "start": "s1",
            "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": "Y"}},
                         {"id": "t2", "type": "contact_tag_added", "filters": {"tags": ["y", "z"]}}],
            "steps": [
                {"id": "s1", "type": "add_tag", "config": {"tags": ["x", "X ", "w"]}, "next": "s2"},
                {"id": "s2", "type": "add_to_workflow", "config": {"workflowId": "D"}, "next": "s3"},
                {"id": "s3", "type": "remove_from_workflow", "config": {"workflowId": ["GONE", "B"]}},
                {"id": "u1", "type": "add_tag", "config": {"tag": "q"}},
                {"id": "u2", "type": "add_to_workflow", "config": {"workflowId": "NOPE"}}
            ]}),
        ),
        (
            "B",
            json!({"name": "b", "status": "published", "start": "s1",
            "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": "x"}}],
            "steps": [{"id": "s1", "type": "add_tag", "config": {"tag": "y"}, "next": "s2"},
                      {"id": "s2", "type": "add_to_workflow", "config": {"workflowId": "C"}}]}),
        ),
        (
            "C",
            json!({"name": "c", "status": "published", "start": "s1",
            "steps": [{"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "B"}}]}),
        ),
        ("D", json!({"name": "d", "status": "draft", "steps": []})),
    ];
    let parsed: Vec<(&str, WorkflowDocument)> =
        docs.iter().map(|(id, v)| (*id, wf(v.clone()))).collect();
    let ws: Vec<LocationWorkflow<'_>> = parsed
        .iter()
        .map(|(id, doc)| LocationWorkflow { id, doc })
        .collect();
    let expected = timeless(analyze_location(&ws, Utc::now()));

    // As the service does: each document parsed, its facts taken, the document dropped.
    let budget = Budget::new(std::time::Duration::from_secs(3600), || {
        std::time::Duration::ZERO
    });
    let mut facts = LocationFacts::new();
    for (id, v) in &docs {
        let doc = wf(v.clone());
        facts
            .add_document_within(id, &doc, &budget)
            .expect("within");
    }
    let streamed = analyze_location_facts_within(&facts, Utc::now(), &budget).expect("within");

    assert_eq!(timeless(streamed), expected);
    let rules: Vec<&str> = expected.issues.iter().map(|i| i.rule.as_str()).collect();
    assert!(rules.contains(&"workflow-cascade-loop"), "{rules:?}");
    assert!(rules.contains(&"missing-target-workflow"), "{rules:?}");
    assert!(rules.contains(&"draft-target-workflow"), "{rules:?}");
}

#[test]
fn past_the_cap_a_location_holds_only_the_workflows_its_considered_ones_name() {
    let extra = 50;
    let adds_last = wf(json!({"name": "a", "status": "published", "start": "s1",
        "steps": [{"id": "s1", "type": "add_to_workflow", "config": {"workflowId": "Z-named"}}]}));
    let plain = triggered_by("x");
    let budget = Budget::new(std::time::Duration::from_secs(3600), || {
        std::time::Duration::ZERO
    });
    let mut facts = LocationFacts::new();
    facts
        .add_document_within("A", &adds_last, &budget)
        .expect("within");
    for i in 1..MAX_LOCATION_WORKFLOWS {
        facts
            .add_document_within(&format!("W{i:04}"), &plain, &budget)
            .expect("within");
    }
    // Past the cap, as the service reads them: ids and statuses, no documents.
    assert!(!facts.wants_steps());
    for i in 0..extra {
        facts.add_existing(&format!("Y{i:03}"), true);
    }
    facts.add_existing("Z-named", false);

    let report = analyze_location_facts_within(&facts, Utc::now(), &budget).expect("within");

    assert_eq!(facts.held(), MAX_LOCATION_WORKFLOWS + 1);
    assert_eq!(
        report.limits,
        Some(LocationLimits {
            workflows_considered: MAX_LOCATION_WORKFLOWS,
            workflows_total: MAX_LOCATION_WORKFLOWS + extra + 1,
            edges_considered: 0,
            truncated: true,
        })
    );
    assert_eq!(report.workflows, MAX_LOCATION_WORKFLOWS + extra + 1);
    // The named workflow past the cap exists (not missing) and is a draft.
    let rules: Vec<&str> = report.issues.iter().map(|i| i.rule.as_str()).collect();
    assert_eq!(rules, vec!["draft-target-workflow"]);
}

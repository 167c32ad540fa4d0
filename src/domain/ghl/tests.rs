use super::*;
use crate::domain::analysis::{
    analyze_location, analyze_workflow, AnalysisReport, LocationWorkflow,
};
use crate::domain::workflow::{StepType, TriggerType};
use chrono::{TimeZone, Utc};
use serde_json::json;

const EXAMPLE: &str = include_str!("../../../tests/fixtures/ghl/example-missed-call.json");

fn example() -> Value {
    serde_json::from_str(EXAMPLE).expect("the example is JSON")
}

fn imported(v: &Value) -> ImportedWorkflow {
    import(v).expect("imports")
}

fn report(w: &ImportedWorkflow) -> AnalysisReport {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("date");
    analyze_workflow(w.ghl_id.as_deref().unwrap_or("wf"), 1, &w.document, now)
}

fn rules(r: &AnalysisReport) -> Vec<&str> {
    r.issues.iter().map(|i| i.rule.as_str()).collect()
}

/// A published flattened document with these templates and one active form trigger.
fn flat(templates: Value) -> Value {
    json!({
        "id": "wf-1", "name": "Test", "status": "published", "version": 3,
        "locationId": "loc-1",
        "window": {"condition": "when", "start": "08:00", "end": "20:00", "days": [1, 2, 3, 4, 5]},
        "templates": templates,
        "triggers": [{"id": "t1", "type": "form_submission", "active": true}]
    })
}

fn step<'a>(w: &'a ImportedWorkflow, id: &str) -> &'a crate::domain::workflow::Step {
    w.document
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[test]
fn the_missed_call_example_imports_with_its_ids_names_graph_and_settings() {
    let w = imported(&example());

    assert_eq!(w.wrapping, Wrapping::Builder);
    assert_eq!(
        w.ghl_id.as_deref(),
        Some("9a0c1e2f-3b4d-4c5e-8f6a-7b8c9d0e1f2a")
    );
    assert_eq!(w.location_id.as_deref(), Some("Xw3Rk9Pq2Nm7Vb5Tz1Ha"));
    assert_eq!(w.name.as_deref(), Some("Missed call text back"));
    assert_eq!(w.source_version, Some(4));
    assert_eq!(w.status, WorkflowStatus::Published);
    assert_eq!(w.timezone.as_deref(), Some("America/Denver"));
    assert!(w.notes.is_empty(), "{:?}", w.notes);
    let d = &w.document;
    assert_eq!(d.steps.len(), 8);
    assert_eq!(
        d.start.as_deref(),
        Some("00000000-0000-4000-8000-000000000001")
    );
    assert!(!d.settings.allow_reentry && d.settings.stop_on_response);
    let tw = d.settings.time_window.as_ref().expect("window");
    assert_eq!(
        (tw.start.as_deref(), tw.end.as_deref()),
        (Some("08:00"), Some("19:00"))
    );
    assert_eq!(tw.days, vec!["mon", "tue", "wed", "thu", "fri", "sat"]);
    assert_eq!(tw.timezone.as_deref(), Some("America/Denver"));
    assert_eq!(d.triggers.len(), 1);
    assert_eq!(
        d.triggers[0].trigger_type,
        TriggerType::Unknown("call_status".into())
    );

    let sms = step(&w, "00000000-0000-4000-8000-000000000001");
    assert_eq!(sms.step_type, StepType::SendSms);
    assert_eq!(sms.name.as_deref(), Some("Text back"));
    assert!(sms.config["body"]
        .as_str()
        .is_some_and(|b| b.starts_with("Sorry")));
    assert_eq!(sms.config["ghl"], "sms");
    assert!(!sms.config.contains_key("ghlIncomplete"));
    let wait = step(&w, "00000000-0000-4000-8000-000000000002");
    assert_eq!(wait.config["duration"], "30m");
    let cond = step(&w, "00000000-0000-4000-8000-000000000003");
    assert_eq!(cond.step_type, StepType::IfElse);
    assert_eq!(cond.branches.len(), 1);
    assert_eq!(cond.branches[0].name.as_deref(), Some("Replied"));
    assert_eq!(
        cond.branches[0].next.as_deref(),
        Some("00000000-0000-4000-8000-000000000004")
    );
    assert!(cond.branches[0].condition["segments"].is_array());
    assert_eq!(
        cond.else_next.as_deref(),
        Some("00000000-0000-4000-8000-000000000005")
    );
    assert!(!cond.config.contains_key("branches"));
    let yes = step(&w, "00000000-0000-4000-8000-000000000004");
    assert_eq!(
        yes.step_type,
        StepType::Unknown(types::IF_ELSE_BRANCH.into())
    );
    assert_eq!(
        yes.next.as_deref(),
        Some("00000000-0000-4000-8000-000000000006")
    );
    let goto = step(&w, "00000000-0000-4000-8000-000000000008");
    assert_eq!(goto.step_type, StepType::Goto);
    assert_eq!(
        goto.config["target"],
        "00000000-0000-4000-8000-000000000002"
    );
    assert_eq!(
        step(&w, "00000000-0000-4000-8000-000000000007").config["tags"],
        json!(["no-reply"])
    );

    // The no-reply loop waits and can be left (a reply): healthy.
    let r = report(&w);
    assert_eq!(r.health_score, 100, "{:#?}", r.issues);
}

#[test]
fn every_wrapping_and_an_array_give_the_same_document() {
    let ex = example();
    let inner = ex["workflowData"].clone();
    let templates = inner["workflowData"]["templates"].clone();
    let triggers = ex["triggers"].clone();
    let mut fields = inner.as_object().expect("object").clone();
    fields.remove("workflowData");

    let mut flat = fields.clone();
    flat.insert("templates".into(), templates.clone());
    flat.insert("triggers".into(), triggers.clone());
    let mut nested = fields.clone();
    nested.insert("workflowData".into(), json!({"templates": templates}));
    nested.insert("triggers".into(), triggers);
    let bare = json!({"templates": templates});

    let builder = imported(&ex);
    let flat = imported(&Value::Object(flat));
    let nested = imported(&Value::Object(nested));
    assert_eq!(flat.wrapping, Wrapping::Flat);
    assert_eq!(nested.wrapping, Wrapping::Nested);
    assert_eq!(flat.document, builder.document);
    assert_eq!(nested.document, builder.document);
    assert_eq!(
        (flat.ghl_id.clone(), nested.source_version),
        (builder.ghl_id.clone(), Some(4))
    );

    let bare = imported(&bare);
    assert_eq!(bare.wrapping, Wrapping::Bare);
    assert_eq!(bare.ghl_id, None);
    assert_eq!(bare.status, WorkflowStatus::Draft);
    assert!(bare.document.triggers.is_empty());
    assert_eq!(bare.document.steps, builder.document.steps);

    let all = import_all(&json!([ex, {"templates": []}, 5])).expect("an array");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].as_ref().expect("first").document, builder.document);
    assert!(all[1].as_ref().is_ok_and(|w| w.document.steps.is_empty()));
    assert_eq!(all[2], Err(ImportError::NotAnObject { found: "a number" }));
}

#[test]
fn json_in_no_known_shape_is_an_error_that_names_what_was_expected() {
    let e = import(&json!({"name": "x", "steps": []})).expect_err("native");
    assert_eq!(e, ImportError::NoTemplates);
    let text = e.to_string();
    assert!(text.contains("no `templates` array found"), "{text}");
    assert!(
        text.contains(
            "{workflowData:{workflowData:{templates}}}, {templates}, {workflowData:{templates}}"
        ),
        "{text}"
    );
    assert_eq!(
        import(&json!({"workflowData": {"workflowData": {"templates": {}}}})),
        Err(ImportError::TemplatesNotArray {
            path: "workflowData.workflowData.templates",
            found: "an object"
        })
    );
    assert_eq!(
        import(&json!("x")),
        Err(ImportError::NotAnObject { found: "a string" })
    );
    assert_eq!(import_all(&json!([])), Err(ImportError::EmptyArray));
    assert!(matches!(
        import_bytes(b"{nope"),
        Err(ImportError::InvalidJson(_))
    ));
}

#[test]
fn raw_imports_keep_each_original_document_byte_for_byte() {
    let text = format!("  [ {EXAMPLE} ,\n{{\"templates\" : [ ] }} ]");
    let all = import_bytes(text.as_bytes()).expect("array");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].original.get(), EXAMPLE.trim_end());
    assert_eq!(all[1].original.get(), "{\"templates\" : [ ] }");
    assert!(all[0].imported.is_ok() && all[1].imported.is_ok());
    let one = import_bytes(EXAMPLE.as_bytes()).expect("one");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].original.get(), EXAMPLE.trim_end());
}

/// if/else with two branches and an else; `empty` names a branch node without `next`.
fn if_else(id: &str, next_after: Option<&str>) -> Vec<Value> {
    let mut v = vec![
        json!({"id": id, "type": "if_else", "nodeType": "condition-node", "cat": "conditions", "name": "Which?",
            "attributes": {"branches": [
                {"id": format!("{id}-a"), "name": "Hot", "segments": [{"operator": "and", "conditions": [{"conditionType": "tag", "conditionValue": "hot"}]}]},
                {"id": format!("{id}-b"), "name": "Empty", "segments": [{"operator": "and", "conditions": []}]}
            ]},
            "next": [format!("{id}-a"), format!("{id}-b"), format!("{id}-n")]}),
        json!({"id": format!("{id}-a"), "type": "if_else", "nodeType": "branch-yes", "name": "Hot", "attributes": {"if": false}, "parent": id, "next": format!("{id}-sms")}),
        json!({"id": format!("{id}-b"), "type": "if_else", "nodeType": "branch-yes", "name": "Empty", "attributes": {"if": false}, "parent": id}),
        json!({"id": format!("{id}-n"), "type": "if_else", "nodeType": "branch-no", "name": "None", "attributes": {"else": true}, "parent": id}),
        json!({"id": format!("{id}-sms"), "type": "sms", "attributes": {"body": "Hi"}, "parent": format!("{id}-a")}),
    ];
    if let Some(n) = next_after {
        v[3]["next"] = json!(n);
    }
    v
}

#[test]
fn if_else_with_several_branches_an_empty_branch_and_an_empty_condition() {
    let w = imported(&flat(Value::Array(if_else("c", None))));
    let c = step(&w, "c");
    assert_eq!(
        c.branches
            .iter()
            .map(|b| b.next.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("c-a"), Some("c-b")]
    );
    assert_eq!(c.branches[1].name.as_deref(), Some("Empty"));
    assert_eq!(c.else_next.as_deref(), Some("c-n"));
    assert_eq!(step(&w, "c-b").next, None);
    let r = report(&w);
    // The empty-condition branch is reported; nothing else is wrong.
    assert_eq!(
        rules(&r),
        vec!["condition-without-conditions"],
        "{:#?}",
        r.issues
    );
    assert!(r.issues[0].message.contains("\"Empty\""));
}

#[test]
fn multi_path_steps_follow_their_transitions() {
    let templates = json!([
        {"id": "w", "type": "wait", "cat": "multi-path", "name": "Wait for reply",
            "attributes": {"type": "condition", "timeout": {"type": "days", "value": 2}},
            "next": ["t-met", "t-timeout"]},
        {"id": "t-met", "type": "transition", "cat": "transition", "name": "Condition met", "next": "split"},
        {"id": "t-timeout", "type": "transition", "cat": "transition", "name": "Timeout", "next": "find"},
        {"id": "split", "type": "workflow_split", "cat": "multi-path",
            "attributes": {"extras": {"weightDistribution": {"p-a": 70, "p-b": 30}}}, "next": ["p-a", "p-b"]},
        {"id": "p-a", "type": "transition", "cat": "transition", "name": "A"},
        {"id": "p-b", "type": "transition", "cat": "transition", "name": "B"},
        {"id": "find", "type": "find_opportunity", "cat": "multi-path", "next": ["f-found", "f-none"]},
        {"id": "f-found", "type": "transition", "cat": "transition", "name": "Found"},
        {"id": "f-none", "type": "transition", "cat": "transition", "name": "Not found"}
    ]);
    let w = imported(&flat(templates));
    let wait = step(&w, "w");
    assert_eq!(wait.step_type, StepType::Wait);
    assert_eq!(
        (
            wait.config["event"].as_str(),
            wait.config["timeout"].as_str()
        ),
        (Some("condition"), Some("2d"))
    );
    assert_eq!(
        wait.branches
            .iter()
            .map(|b| b.name.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("Condition met"), Some("Timeout")]
    );
    let split = step(&w, "split");
    assert_eq!(split.step_type, StepType::Split);
    assert_eq!(
        split.branches.iter().map(|b| b.percent).collect::<Vec<_>>(),
        vec![Some(70.0), Some(30.0)]
    );
    assert_eq!(step(&w, "find").branches.len(), 2);
    let r = report(&w);
    assert!(r.issues.is_empty(), "{:#?}", r.issues);
    assert_eq!(r.performance.max_path_wait_seconds, 2 * 86_400);

    // Weights that cannot be read leave the split unjudged rather than "without percentages".
    let mut t2 = flat(
        json!([{"id": "split", "type": "workflow_split", "cat": "multi-path", "next": ["a", "b"]},
        {"id": "a", "type": "transition"}, {"id": "b", "type": "transition"}]),
    );
    t2["id"] = json!("wf-2");
    let w2 = imported(&t2);
    assert_eq!(
        step(&w2, "split").step_type,
        StepType::Unknown("workflow_split".into())
    );
    assert!(report(&w2).issues.is_empty());
}

#[test]
fn a_sideways_goto_merges_branches_and_a_backward_goto_is_a_loop() {
    // Sideways: the "Hot" branch jumps into the else branch's steps.
    let mut t = if_else("c", Some("c-tag"));
    t.push(json!({"id": "c-tag", "type": "add_contact_tag", "attributes": {"tags": ["x"]}, "parent": "c-n"}));
    t[4]["next"] = json!("c-goto");
    t.push(json!({"id": "c-goto", "type": "goto", "attributes": {"targetNodeId": "c-tag"}, "parent": "c-a"}));
    let w = imported(&flat(Value::Array(t.clone())));
    let r = report(&w);
    assert!(
        !rules(&r).iter().any(|r| r.starts_with("loop")),
        "{:#?}",
        r.issues
    );

    // Backward: the else branch jumps back to the condition without a wait.
    let last = t.len() - 1;
    t[last]["attributes"]["targetNodeId"] = json!("c");
    let r = report(&imported(&flat(Value::Array(t))));
    assert!(rules(&r).contains(&"loop-without-wait"), "{:#?}", r.issues);
}

#[test]
fn an_empty_branch_is_a_way_out_of_a_loop() {
    // wait → if/else: "Hot" continues, "Empty" ends (empty), "None" goes back to the wait.
    let mut t = vec![
        json!({"id": "w", "type": "wait", "attributes": {"type": "time", "startAfter": {"type": "days", "value": 1}}, "next": "c"}),
    ];
    let mut cond = if_else("c", Some("back"));
    cond[2]["parent"] = json!("c");
    t.append(&mut cond);
    t.push(
        json!({"id": "back", "type": "goto", "attributes": {"targetNodeId": "w"}, "parent": "c-n"}),
    );
    let r = report(&imported(&flat(Value::Array(t))));
    assert!(!rules(&r).contains(&"loop-without-exit"), "{:#?}", r.issues);
}

#[test]
fn inactive_and_deleted_triggers_are_left_out_and_a_published_workflow_without_active_ones_is_critical(
) {
    let mut v = flat(json!([{"id": "s", "type": "sms", "attributes": {"body": "Hi"}}]));
    v["triggers"] = json!([
        {"id": "t1", "type": "contact_tag", "active": false, "conditions": [{"field": "tagsAdded", "operator": "index-of-true", "value": "lead"}]},
        {"id": "t2", "type": "form_submission", "active": true, "deleted": true}
    ]);
    let w = imported(&v);
    assert!(w.document.triggers.is_empty());
    assert_eq!(w.notes.len(), 2, "{:?}", w.notes);
    assert!(w.notes[0].message.contains("\"t1\" is inactive"));
    let r = report(&w);
    let no_trigger = r
        .issues
        .iter()
        .find(|i| i.rule == "no-trigger")
        .expect("no-trigger");
    assert_eq!(
        no_trigger.severity,
        crate::domain::analysis::Severity::Critical
    );
    assert!(
        no_trigger.message.contains("no active trigger"),
        "{}",
        no_trigger.message
    );
}

#[test]
fn tag_triggers_become_tag_filters() {
    let mut v = flat(json!([]));
    v["triggers"] = json!([
        {"id": "t1", "type": "contact_tag", "active": true, "conditions": [
            {"field": "tagsAdded", "operator": "index-of-true", "value": "lead"},
            {"field": "tagsAdded", "operator": "is-any-of", "value": ["vip", 3]}]},
        {"id": "t2", "type": "contact_tag", "conditions": [{"field": "tagsRemoved", "operator": "index-of-true", "value": "lead"}]},
        {"id": "t3", "type": "contact_tag", "data": {"tagName": "old", "tagEvent": "removed"}},
        {"type": "moon_phase", "active": true}
    ]);
    v["window"] = json!({"start": "09:00", "end": "17:00", "days": [0, 7, "6", 9]});
    let w = imported(&v);
    let t = &w.document.triggers;
    assert_eq!(t[0].trigger_type, TriggerType::ContactTagAdded);
    assert_eq!(t[0].filters["tags"], json!(["lead", "vip"]));
    assert_eq!(t[1].trigger_type, TriggerType::ContactTagRemoved);
    assert_eq!(t[1].filters["tags"], json!(["lead"]));
    assert_eq!(t[2].trigger_type, TriggerType::ContactTagRemoved);
    assert_eq!(t[3].id, "triggers[3]");
    assert_eq!(t[3].trigger_type, TriggerType::Unknown("moon_phase".into()));
    let tw = w.document.settings.time_window.as_ref().expect("window");
    assert_eq!(tw.days, vec!["sun", "sat"]);
    assert!(w.notes.iter().any(|n| n.path == "window.days[3]"));
    let r = report(&w);
    assert!(rules(&r).contains(&"unknown-trigger-type"));
}

#[test]
fn webhooks_over_plain_http_with_literal_secrets_and_local_hosts_are_found() {
    let templates = json!([
        {"id": "h1", "type": "webhook", "name": "Notify CRM", "attributes": {"method": "POST", "url": "http://crm.example.com/hook",
            "headers": [{"key": "Authorization", "value": "Bearer 9f8e7d6c5b4a39281706"}], "customData": [{"key": "contact_id", "value": "{{contact.id}}"}]},
            "next": "h2"},
        {"id": "h2", "type": "webhook", "attributes": {"method": "POST", "url": "http://localhost:8080/in",
            "customData": [{"key": "password", "value": "hunter22"}]}, "next": "h3"},
        {"id": "h3", "type": "custom_webhook", "attributes": {"method": "POST", "url": "https://api.example.com/x?api_key=abc123def",
            "body": {"contentType": "application/json", "rawData": "{\"token\": \"s3cr3t-value\"}"}}}
    ]);
    let r = report(&imported(&flat(templates)));
    let found: Vec<(&str, &str)> = r
        .issues
        .iter()
        .map(|i| (i.rule.as_str(), i.step_ids[0].as_str()))
        .collect();
    for expected in [
        ("webhook-insecure-url", "h1"),
        ("hardcoded-secret", "h1"),
        ("webhook-private-url", "h2"),
        ("hardcoded-secret", "h2"),
        ("hardcoded-secret", "h3"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
}

#[test]
fn emails_go_to_the_contact_and_messages_waits_and_tags_read_their_attributes() {
    let templates = json!([
        {"id": "e", "type": "email", "attributes": {"subject": "Hi", "html": "<p>Hi {{contact.first_name}}</p>"}, "next": "w"},
        {"id": "w", "type": "wait", "attributes": {"type": "time", "startAfter": {"when": "after", "type": "hour", "value": 2}}, "next": "s"},
        {"id": "s", "type": "sms", "attributes": {"body": "Hey"}, "next": "r"},
        {"id": "r", "type": "remove_contact_tag", "attributes": {"removeAll": true}, "next": "f"},
        {"id": "f", "type": "update_contact_field", "attributes": {"fields": [{"field": "source", "value": "x"}]}, "next": "g"},
        {"id": "g", "type": "workflow_goal", "attributes": {}}
    ]);
    let w = imported(&flat(templates));
    assert_eq!(step(&w, "e").step_type, StepType::SendEmail);
    assert_eq!(step(&w, "w").config["duration"], "2h");
    assert_eq!(step(&w, "f").config["field"], "source");
    let r = report(&w);
    assert!(r.issues.is_empty(), "{:#?}", r.issues);
    assert_eq!(r.performance.max_path_wait_seconds, 7_200);

    // No delay, no tags, no template: the missing settings are reported.
    let broken = json!([
        {"id": "w", "type": "wait", "attributes": {"type": "time"}, "next": "t"},
        {"id": "t", "type": "add_contact_tag", "attributes": {"tags": []}, "next": "e"},
        {"id": "e", "type": "email", "attributes": {"subject": "x"}}
    ]);
    let r = report(&imported(&flat(broken)));
    let missing: Vec<&str> = r
        .issues
        .iter()
        .filter(|i| i.rule == "missing-required-field")
        .map(|i| i.step_ids[0].as_str())
        .collect();
    assert_eq!(missing, vec!["w", "t", "e"]);
}

#[test]
fn a_step_the_builder_marked_incomplete_is_reported() {
    let w = imported(&flat(json!([
        {"id": "n", "type": "internal_notification", "name": "Tell team", "incompleteData": true, "attributes": {}}
    ])));
    assert_eq!(step(&w, "n").config["ghl"], "internal_notification");
    assert_eq!(step(&w, "n").config["ghlIncomplete"], true);
    let r = report(&w);
    assert_eq!(rules(&r), vec!["incomplete-step"]);
    assert!(r.issues[0].message.contains("\"n\" (Tell team)"));
}

#[test]
fn the_entry_is_the_top_level_step_no_next_names_lowest_order_first() {
    let w = imported(&flat(json!([
        {"id": "b", "type": "sms", "attributes": {"body": "x"}, "order": 1},
        {"id": "in", "type": "sms", "attributes": {"body": "x"}, "order": 0, "parent": "zzz"},
        {"id": "a", "type": "wait", "attributes": {"type": "time", "startAfter": {"type": "days", "value": 1}}, "order": 0, "next": "c"},
        {"id": "c", "type": "sms", "attributes": {"body": "x"}}
    ])));
    assert_eq!(w.document.start.as_deref(), Some("a"));
    let r = report(&w);
    let unreachable = r
        .issues
        .iter()
        .find(|i| i.rule == "unreachable-step")
        .expect("others never run");
    assert_eq!(unreachable.step_ids, vec!["b", "in"]);
}

#[test]
fn malformed_steps_are_imported_noted_and_reported_never_rejected() {
    let templates = json!([
        {"id": "a", "type": "sms", "attributes": {"body": "x"}, "next": "b"},
        {"id": "b", "type": "goto", "attributes": {"targetNodeId": "b"}},
        {"id": "b", "type": "sms", "attributes": [1], "next": {"x": 1}},
        {"type": 5, "next": "ghost"},
        "not a step",
        {"id": 42, "type": "sms", "attributes": {"body": "x"}, "next": ["b", 7, null]},
        {"id": "k", "type": "if_else", "nodeType": "condition-node", "attributes": {"branches": "no"}, "next": []}
    ]);
    let w = imported(&flat(templates));
    assert_eq!(w.document.steps.len(), 6);
    assert_eq!(w.document.steps[3].id, "templates[3]");
    assert_eq!(w.document.steps[4].id, "42");
    let paths: Vec<&str> = w.notes.iter().map(|n| n.path.as_str()).collect();
    for p in [
        "templates[2].next",
        "templates[2].attributes",
        "templates[3].id",
        "templates[3].type",
        "templates[4]",
        "templates[5].next[2]",
        "templates[5].next",
        "templates[6].next",
    ] {
        assert!(paths.contains(&p), "no note at {p}: {paths:?}");
    }
    let r = report(&w);
    for rule in [
        "duplicate-id",
        "dangling-reference",
        "loop-without-exit",
        "unknown-step-type",
        "missing-required-field",
        "if-else-without-else",
    ] {
        assert!(rules(&r).contains(&rule), "{rule} not in {:?}", rules(&r));
    }
}

#[test]
fn imported_workflows_of_a_folder_produce_cross_workflow_findings_by_their_ghl_ids() {
    let doc = |id: &str, status: &str, templates: Value, triggers: Value| {
        imported(
            &json!({"id": id, "name": id, "status": status, "templates": templates, "triggers": triggers}),
        )
    };
    let form = json!([{"id": "t", "type": "form_submission"}]);
    // A adds to B; B tags "x"; C is triggered by "x" and adds to A: a cascade A → B → C → A.
    let a = doc(
        "A",
        "published",
        json!([{"id": "a1", "type": "add_to_workflow", "attributes": {"workflow_id": "B"}, "next": "a2"},
        {"id": "a2", "type": "remove_from_workflow", "attributes": {"workflow_id": ["C", "GONE"]}, "next": "a3"},
        {"id": "a3", "type": "add_to_workflow", "attributes": {"workflow_id": "D"}, "next": "a4"},
        {"id": "a4", "type": "remove_from_workflow", "attributes": {"allWorkflows": true}}]),
        form.clone(),
    );
    let b = doc(
        "B",
        "published",
        json!([{"id": "b1", "type": "add_contact_tag", "attributes": {"tags": ["X"]}}]),
        form.clone(),
    );
    let c = doc(
        "C",
        "published",
        json!([{"id": "c1", "type": "add_to_workflow", "attributes": {"workflow_id": "A"}}]),
        json!([{"id": "t", "type": "contact_tag", "active": true, "conditions": [{"field": "tagsAdded", "operator": "index-of-true", "value": "x"}]}]),
    );
    let d = doc("D", "draft", json!([]), form);
    let ws: Vec<LocationWorkflow<'_>> = [&a, &b, &c, &d]
        .iter()
        .map(|w| LocationWorkflow {
            id: w.ghl_id.as_deref().unwrap_or(""),
            doc: &w.document,
        })
        .collect();
    let r = analyze_location(&ws, Utc::now());
    let found: Vec<(&str, Vec<&str>)> = r
        .issues
        .iter()
        .map(|i| {
            (
                i.rule.as_str(),
                i.workflow_ids.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("workflow-cascade-loop", vec!["A", "B", "C"]),
            ("missing-target-workflow", vec!["A", "GONE"]),
            ("draft-target-workflow", vec!["A", "D"]),
        ]
    );
    assert_eq!(
        step(&a, "a4").step_type,
        StepType::Unknown(types::REMOVE_FROM_ALL_WORKFLOWS.into())
    );
    assert!(report(&a)
        .issues
        .iter()
        .all(|i| i.rule != "missing-required-field"));
}

#[test]
fn detection_tells_builder_json_from_native_documents() {
    assert!(is_ghl_document(&example()));
    assert!(is_ghl_document(&json!({"templates": []})));
    assert!(is_ghl_document(
        &json!({"id": "x", "workflowData": {"templates": []}})
    ));
    assert!(is_ghl_document(&json!([{"templates": []}])));
    assert!(!is_ghl_document(&json!({"name": "n", "steps": []})));
    assert!(!is_ghl_document(&json!({})));
}

#[test]
fn the_normalized_document_round_trips_and_passes_storage_validation() {
    let w = imported(&example());
    let again = WorkflowDocument::from_json(&w.document.to_json()).expect("parses");
    assert_eq!(again, w.document);
    assert!(crate::domain::workflow::validate_for_storage(&w.document, 5000).is_ok());
}

mod properties;
mod rules_on_import;
mod waits;

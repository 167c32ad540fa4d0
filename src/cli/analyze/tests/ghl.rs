use super::*;

const EXAMPLE: &str = include_str!("../../../../tests/fixtures/ghl/example-missed-call.json");

fn example() -> Value {
    serde_json::from_str(EXAMPLE).expect("the example is JSON")
}

fn run_as(paths: &[PathBuf], format: OutputFormat, input: InputFormat) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_analyze(paths, format, input, false, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// A flattened GoHighLevel document.
fn ghl_doc(id: &str, templates: Value, triggers: Value) -> Value {
    json!({"id": id, "name": id, "status": "published", "version": 2,
        "window": {"start": "08:00", "end": "20:00", "days": [1, 2, 3, 4, 5]},
        "templates": templates, "triggers": triggers})
}

#[test]
fn builder_json_is_recognised_and_analyzed_under_its_ghl_id_and_version() {
    let dir = temp_dir();
    let p = write(&dir, "export.json", &example());
    let (code, out, err) = run(std::slice::from_ref(&p), OutputFormat::Json);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(v["workflowId"], "9a0c1e2f-3b4d-4c5e-8f6a-7b8c9d0e1f2a");
    assert_eq!(v["workflowName"], "Missed call text back");
    assert_eq!(v["version"], 4);
    assert_eq!(v["performance"]["steps"], 8);
    assert_eq!(v["healthScore"], 100, "{out}");

    // Forced the other way, it is named as not being what was asked for.
    let (code, out, err) = run_as(
        std::slice::from_ref(&p),
        OutputFormat::Json,
        InputFormat::Native,
    );
    assert_eq!(code, 0, "a §7 reading of it is an empty document: {err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["performance"]["steps"],
        0
    );
    let native = write(&dir, "native.json", &healthy(None));
    let (code, out, err) = run_as(&[native], OutputFormat::Text, InputFormat::Ghl);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("native.json") && err.contains("no `templates` array found (expected one of:"),
        "{err}"
    );
    let (code, _, err) = run_as(&[p], OutputFormat::Text, InputFormat::Ghl);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn import_notes_and_findings_name_the_builder_steps() {
    let dir = temp_dir();
    let doc = ghl_doc(
        "wf-hook",
        json!([
            {"id": "h1", "type": "webhook", "name": "Notify CRM", "attributes": {"url": "http://crm.example.com/in",
                "headers": [{"key": "Authorization", "value": "Bearer 9f8e7d6c5b4a39281706"}]}, "next": 7},
            {"id": "n", "type": "internal_notification", "incompleteData": true, "next": {"bad": true}}
        ]),
        json!([{"id": "t", "type": "form_submission"}, {"id": "off", "type": "contact_created", "active": false}]),
    );
    let p = write(&dir, "hook.json", &doc);
    let (code, out, _) = run(std::slice::from_ref(&p), OutputFormat::Text);
    assert_eq!(code, 1, "the dangling next is critical");
    for expected in [
        "Workflow \"wf-hook\"",
        "import notes:",
        "triggers[1]: trigger \"off\" is inactive",
        "templates[1].next: must be a step id",
        "webhook-insecure-url",
        "hardcoded-secret",
        "incomplete-step",
        "\"h1\" (Notify CRM)",
    ] {
        assert!(out.contains(expected), "{expected} not in {out}");
    }
    let (_, out, err) = run(&[p], OutputFormat::Json);
    assert!(
        serde_json::from_str::<Value>(&out).is_ok(),
        "stdout stays the §8 object"
    );
    assert!(
        err.contains("note: ") && err.contains("templates[1].next"),
        "{err}"
    );
}

#[test]
fn a_folder_of_exports_is_a_location_keyed_by_ghl_ids() {
    let dir = temp_dir();
    let tag_trigger = |tag: &str| {
        json!([{"id": "t", "type": "contact_tag", "active": true,
            "conditions": [{"field": "tagsAdded", "operator": "index-of-true", "value": tag}]}])
    };
    // Builder-wrapped A adds to B; B tags "go", which starts A: a cascade. C is §7.
    let mut a = example();
    a["workflowData"]["id"] = json!("ghl-A");
    a["workflowData"]["workflowData"]["templates"] = json!([
        {"id": "a1", "type": "add_to_workflow", "attributes": {"workflow_id": "ghl-B"}, "next": "a2"},
        {"id": "a2", "type": "remove_from_workflow", "attributes": {"workflow_id": ["ghl-gone"]}}
    ]);
    a["triggers"] = tag_trigger("go");
    write(&dir, "a.json", &a);
    write(
        &dir,
        "b.json",
        &ghl_doc(
            "ghl-B",
            json!([{"id": "b1", "type": "add_contact_tag", "attributes": {"tags": ["Go"]}}]),
            json!([]),
        ),
    );
    write(&dir, "c.json", &healthy(Some("native-c")));
    let (code, out, err) = run(std::slice::from_ref(&dir), OutputFormat::Json);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json output");
    let ids: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["workflowId"].as_str())
        .collect();
    assert_eq!(ids, vec!["ghl-A", "ghl-B", "native-c"]);
    let issues = v["locations"][0]["issues"].as_array().expect("issues");
    let found: Vec<(&str, Value)> = issues
        .iter()
        .map(|i| (i["rule"].as_str().unwrap_or(""), i["workflowIds"].clone()))
        .collect();
    assert!(
        found.contains(&("workflow-cascade-loop", json!(["ghl-A", "ghl-B"]))),
        "{found:?}"
    );
    assert!(
        found.contains(&("missing-target-workflow", json!(["ghl-A", "ghl-gone"]))),
        "{found:?}"
    );
}

#[test]
fn an_array_file_is_several_workflows_and_one_location() {
    let dir = temp_dir();
    let arr = json!([
        ghl_doc("x1", json!([{"id": "s", "type": "add_to_workflow", "attributes": {"workflow_id": "x2"}}]), json!([{"id": "t", "type": "form_submission"}])),
        ghl_doc("x2", json!([{"id": "s", "type": "add_to_workflow", "attributes": {"workflow_id": "x1"}}]), json!([{"id": "t", "type": "form_submission"}])),
        {"templates": []}
    ]);
    let p = write(&dir, "all.json", &arr);
    let (code, out, err) = run(&[p], OutputFormat::Json);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json output");
    let ids: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["workflowId"].as_str())
        .collect();
    assert_eq!(ids, vec!["x1", "x2", "all[2]"]);
    assert_eq!(
        v["locations"][0]["issues"][0]["rule"],
        "workflow-cascade-loop"
    );

    let bad = write(&dir, "bad.json", &json!([{"templates": []}, {"steps": []}]));
    let (code, _, err) = run(&[bad], OutputFormat::Text);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.json[1]: not a GoHighLevel workflow: no `templates` array found"),
        "{err}"
    );
}

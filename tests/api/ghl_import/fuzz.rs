//! Mutated builder documents over HTTP: never a 5xx, and every document the route says it
//! stored can be read back. Seeded, and bounded to 60 requests (a property test of the
//! importer itself, with many more cases, is `src/domain/ghl/tests/properties.rs`; its
//! proptest strategies live in the library's unit tests, out of this binary's reach, so the
//! same mutations are made here by a small seeded mutator).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{CRM, EXAMPLE, OLD_COPY, TEXT_BACK};
use crate::helpers::{spawn_app, TestApp};

const LOCATION: &str = "locFuzz";
/// Requests one run may make (documents posted, items read back, the location created).
const MAX_REQUESTS: usize = 60;
const POSTS: usize = 30;

/// Every JSON pointer in `v` (the root included).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// The steps array of a document, wherever its wrapping puts it (if it is still an array).
fn templates(doc: &mut Value) -> Option<&mut Vec<Value>> {
    for at in [
        "/workflowData/workflowData/templates",
        "/workflowData/templates",
        "/templates",
    ] {
        if doc.pointer(at).is_some_and(Value::is_array) {
            return doc.pointer_mut(at).and_then(Value::as_array_mut);
        }
    }
    None
}

fn step_id(steps: &[Value], i: usize) -> Value {
    steps[i].get("id").cloned().unwrap_or(Value::Null)
}

/// One random change of the kinds that break real exports: a field dropped, a value of the
/// wrong type, two steps with one id, a step (or goto) going to itself, a huge fan-out, a
/// step copied.
fn mutate(doc: &mut Value, rng: &mut StdRng) {
    let kind = rng.random_range(0..6);
    if kind >= 2 {
        if let Some(steps) = templates(doc).filter(|s| !s.is_empty()) {
            let (i, j) = (
                rng.random_range(0..steps.len()),
                rng.random_range(0..steps.len()),
            );
            let id = step_id(steps, i);
            match (kind, &mut steps[j]) {
                (2, Value::Object(s)) => {
                    s.insert("id".into(), id);
                }
                (3, Value::Object(s)) if rng.random_bool(0.5) => {
                    let own = s.get("id").cloned().unwrap_or(Value::Null);
                    s.insert("next".into(), own);
                }
                (3, _) => steps.push(json!({"id": "self-goto", "type": "goto", "name": "Again",
                    "attributes": {"targetNodeId": "self-goto"}, "next": "self-goto"})),
                (4, Value::Object(s)) => {
                    let fan: Vec<Value> = (0..rng.random_range(2..160))
                        .map(|k| {
                            if k % 3 == 0 {
                                json!(format!("ghost-{k}"))
                            } else {
                                id.clone()
                            }
                        })
                        .collect();
                    s.insert("next".into(), Value::Array(fan));
                    s.insert("cat".into(), json!("multi-path"));
                }
                _ => {
                    let copy = steps[j].clone();
                    steps.push(copy);
                }
            }
            return;
        }
    }
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let at = &all[rng.random_range(0..all.len())];
    if kind == 0 && !at.is_empty() {
        let (parent, last) = at.rsplit_once('/').unwrap_or(("", at));
        let last = last.replace("~1", "/").replace("~0", "~");
        match doc.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.remove(&last);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = last.parse::<usize>() {
                    a.remove(i);
                }
            }
            _ => {}
        }
        return;
    }
    let wrong = [
        json!(7),
        json!(-1.5),
        json!("x"),
        json!(""),
        Value::Null,
        json!(true),
        json!([]),
        json!({}),
        json!([1, "a", null]),
        json!({"a": {"b": []}}),
    ];
    if let Some(slot) = doc.pointer_mut(at) {
        *slot = wrong[rng.random_range(0..wrong.len())].clone();
    }
}

/// `v` with every `locationId` set to the test's location (so documents are not all 403s).
fn relocate(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "locationId" && child.is_string() {
                    *child = json!(LOCATION);
                } else {
                    relocate(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(relocate),
        _ => {}
    }
}

fn bases() -> Vec<Value> {
    let mut docs: Vec<Value> = [EXAMPLE, TEXT_BACK, OLD_COPY, CRM]
        .iter()
        .map(|text| serde_json::from_str(text).expect("fixture JSON"))
        .collect();
    docs.push(json!({"templates": [
        {"id": "a", "type": "if_else", "nodeType": "condition-node", "attributes": {"branches": [{"id": "y", "segments": []}]}, "next": ["y", "n"]},
        {"id": "y", "type": "if_else", "nodeType": "branch-yes", "next": "w"},
        {"id": "n", "type": "if_else", "nodeType": "branch-no"},
        {"id": "w", "type": "wait", "attributes": {"type": "specific_date"}, "next": "g"},
        {"id": "g", "type": "goto", "attributes": {"targetNodeId": "a"}}
    ]}));
    docs.iter_mut().for_each(relocate);
    docs
}

/// The ids of the documents a 2xx answer says it stored (one document, or an array's items).
fn stored_ids(body: &Value) -> Vec<String> {
    let data = &body["data"];
    match data["results"].as_array() {
        Some(results) => results
            .iter()
            .filter(|r| {
                r["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .map(|r| {
                r["id"]
                    .as_str()
                    .expect("a stored item has an id")
                    .to_owned()
            })
            .collect(),
        None => vec![data["id"]
            .as_str()
            .expect("a stored document has an id")
            .to_owned()],
    }
}

async fn post(app: &TestApp, key: &str, body: String) -> (u16, Value) {
    let response = app
        .send(
            app.client
                .post(app.url("/api/workflows/import"))
                .bearer_auth(key)
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn mutated_builder_documents_are_never_a_5xx_and_what_is_stored_reads_back() {
    let app = spawn_app().await;
    let key = app.create_location(LOCATION).await;
    let mut requests = 1;
    let bases = bases();
    let mut rng = StdRng::seed_from_u64(22);
    let mut stored: Vec<String> = Vec::new();

    for round in 0..POSTS {
        let count = if round % 5 == 4 { 2 } else { 1 };
        let docs: Vec<Value> = (0..count)
            .map(|_| {
                let mut doc = bases[rng.random_range(0..bases.len())].clone();
                for _ in 0..rng.random_range(1..5) {
                    mutate(&mut doc, &mut rng);
                }
                doc
            })
            .collect();
        let body = match count {
            1 => docs[0].to_string(),
            _ => Value::Array(docs).to_string(),
        };

        let (status, answer) = post(&app, &key, body.clone()).await;
        requests += 1;

        assert!(status < 500, "round {round}: {status} {answer} for {body}");
        if (200..300).contains(&status) {
            for id in stored_ids(&answer) {
                if !stored.contains(&id) {
                    stored.push(id);
                }
            }
        }
    }

    assert!(!stored.is_empty(), "no mutated document was stored at all");
    for id in &stored {
        let response = app.api_get(&key, &format!("/api/workflows/{id}")).await;
        requests += 1;
        assert_eq!(response.status(), 200, "stored {id} does not read back");
        let read: Value = response.json().await.expect("json");
        assert_eq!(read["data"]["id"], id.as_str());
    }
    assert!(requests <= MAX_REQUESTS, "{requests} requests");
}

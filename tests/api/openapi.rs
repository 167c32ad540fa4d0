//! `GET /openapi.json` documents exactly the routes the service registers, is the document
//! generated from the code, and is the committed `openapi.json`.

use std::collections::BTreeSet;

use ghl_workflow_debugger::http::openapi::to_text;
use ghl_workflow_debugger::http::{openapi_document, route_table};
use serde_json::Value;

use crate::helpers::spawn_app;

fn generated() -> String {
    to_text(&openapi_document()).unwrap()
}

#[test]
fn the_committed_openapi_json_is_the_generated_document() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json at the repository root");
    // Compared as text: `make openapi` must leave no diff behind.
    assert!(
        committed == generated(),
        "openapi.json is not the document the code generates: run `make openapi` and commit it"
    );
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), generated());
}

#[test]
fn every_schema_of_the_document_is_valid_json_schema_2020_12() {
    let document = serde_json::to_value(openapi_document()).unwrap();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert!(!schemas.is_empty());
    for (name, schema) in schemas {
        if let Err(error) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components.schemas.{name}: {error}");
        }
    }
}

#[test]
fn every_reference_of_the_document_resolves() {
    fn references<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    out.push(reference);
                }
                map.values().for_each(|value| references(value, out));
            }
            Value::Array(items) => items.iter().for_each(|value| references(value, out)),
            _ => {}
        }
    }
    let document = serde_json::to_value(openapi_document()).unwrap();
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').expect("a local reference");
        assert!(document.pointer(pointer).is_some(), "{reference} dangles");
    }
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn registered() -> BTreeSet<(String, String)> {
    route_table()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_owned(), path.to_owned()))
        .collect()
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item object");
            METHODS
                .iter()
                .filter(|method| item.contains_key(**method))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_document_is_served_without_auth_and_matches_the_route_table() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let documented = documented(&document);
    let registered = registered();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&registered).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_has_responses_and_api_operations_document_their_errors() {
    let app = spawn_app().await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();

    for (method, path) in documented(&document) {
        let operation = &document["paths"][&path][method.to_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents no success"
        );
        if path.starts_with("/api/") {
            for status in ["401", "429"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
        for response in responses.values() {
            if let Some(reference) = response["$ref"].as_str() {
                let name = reference.trim_start_matches("#/components/responses/");
                assert!(
                    document["components"]["responses"][name].is_object(),
                    "{method} {path}: dangling {reference}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_route_in_the_table_is_served() {
    let app = spawn_app().await;
    let key = app.create_location("locA").await;

    for (method, path) in route_table() {
        let url = app.url(&path.replace("{id}", "wf1"));
        let client_method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let mut request = app.client.request(client_method, url).bearer_auth(&key);
        if method == "POST" || method == "PUT" {
            request = request
                .header("content-type", "application/json")
                .body("{}");
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);

        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !(status == 404 && body["error"]["message"] == "Route not found"),
            "{method} {path} is in the route table but not served"
        );
    }
}

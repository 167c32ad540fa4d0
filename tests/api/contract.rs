//! The contract check: a response is what the OpenAPI document says its route, method and
//! status answer. `TestApp::send` (helpers.rs) runs it on every response that goes through
//! the test client's helpers, so every API test checks the document against what the server
//! really sends.
//!
//! Stricter than the published document on one point: an object schema that lists its
//! properties is closed here (`additionalProperties: false`, or `unevaluatedProperties:
//! false` around an `allOf`), so a field the server sends but the document does not name
//! fails the test. The published document leaves them open so that clients tolerate new
//! fields.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde_json::{Map, Value};

/// The document as the server generates it (`tests/api/openapi.rs` checks the served and
/// committed copies are this one), closed as described above.
static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut document =
        serde_json::to_value(ghl_workflow_debugger::http::openapi_document()).unwrap();
    close_objects(&mut document);
    document
});

/// Compiled validators, by JSON pointer of the schema in the document.
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(Mutex::default);

/// Checks one answer: panics naming the route and what does not match.
pub fn check(method: &str, path: &str, status: u16, headers: &http::HeaderMap, body: &[u8]) {
    if method == "OPTIONS" {
        // CORS preflights: answered by the CORS middleware, not by a route of the document.
        return;
    }
    let document = &*DOCUMENT;
    let what = format!("{method} {path} → {status}");
    if std::env::var_os("CONTRACT_LOG").is_some() {
        eprintln!("CONTRACT {method} {:?} {status}", route_of(document, path));
    }
    let Some(template) = route_of(document, path) else {
        // Not a route: the envelope's 404 (or an error the app answers before routing).
        assert!(
            status >= 400,
            "{what}: a path outside the document succeeded"
        );
        return check_json(&what, "/components/schemas/ErrorEnvelope", body);
    };
    let item_pointer = format!("/paths/{}", escape(&template));
    let operation_pointer = format!("{item_pointer}/{}", method.to_lowercase());
    if document.pointer(&operation_pointer).is_none() {
        assert_eq!(
            status, 405,
            "{what}: {method} is not documented for {template}"
        );
        return check_json(&what, "/components/schemas/ErrorEnvelope", body);
    }
    let response_pointer = format!("{operation_pointer}/responses/{status}");
    let Some(mut response) = document.pointer(&response_pointer) else {
        panic!("{what}: status {status} is not documented for {method} {template}");
    };
    let mut pointer = response_pointer;
    if let Some(reference) = response["$ref"].as_str() {
        pointer = reference.trim_start_matches('#').to_owned();
        response = document.pointer(&pointer).unwrap();
    }
    check_headers(&what, response, headers);
    let Some(content) = response["content"].as_object() else {
        assert!(
            body.is_empty(),
            "{what}: documented without a body, got one"
        );
        return;
    };
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    assert!(
        content.contains_key(media),
        "{what}: content type {content_type:?} is not one of {:?}",
        content.keys().collect::<Vec<_>>()
    );
    if media == "application/json" {
        check_json(
            &what,
            &format!("{pointer}/content/application~1json/schema"),
            body,
        );
    }
}

/// The document's path template that `path` falls under, preferring literal segments
/// (`/a/b` over `/a/{id}`).
fn route_of(document: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.clone()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

fn check_json(what: &str, schema_pointer: &str, body: &[u8]) {
    let instance: Value = serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "{what}: the body is not JSON ({error}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let validator = validator(schema_pointer);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("at {}: {error}", error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body does not match {schema_pointer}:\n  {}\nbody: {instance}",
        errors.join("\n  ")
    );
}

/// Documented headers that are present hold a value of their schema.
fn check_headers(what: &str, response: &Value, headers: &http::HeaderMap) {
    let Some(documented) = response["headers"].as_object() else {
        return;
    };
    for (name, header) in documented {
        let Some(value) = headers.get(name.as_str()) else {
            continue;
        };
        let text = value.to_str().unwrap_or_default();
        let value = match header["schema"]["type"].as_str() {
            Some("integer") => match text.parse::<i64>() {
                Ok(number) => Value::from(number),
                Err(_) => panic!("{what}: header {name}: {text:?} is not an integer"),
            },
            _ => Value::from(text),
        };
        let schema = &header["schema"];
        assert!(
            jsonschema::is_valid(schema, &value),
            "{what}: header {name}: {value} does not match {schema}"
        );
    }
}

fn validator(schema_pointer: &str) -> Arc<jsonschema::Validator> {
    let known = VALIDATORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(schema_pointer)
        .cloned();
    if let Some(validator) = known {
        return validator;
    }
    // The whole document is the root resource, so `#/components/schemas/…` resolve; the
    // schema itself is copied under `$defs` (a pointer into `paths` would need its `{id}`
    // percent-encoded).
    let schema = DOCUMENT
        .pointer(schema_pointer)
        .unwrap_or_else(|| panic!("{schema_pointer} is not in the document"))
        .clone();
    let mut root = DOCUMENT.clone();
    let root_object = root.as_object_mut().unwrap();
    root_object.insert("$defs".to_owned(), serde_json::json!({ "checked": schema }));
    root_object.insert("$ref".to_owned(), Value::from("#/$defs/checked"));
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("{schema_pointer} does not compile: {error}"));
    let validator = Arc::new(validator);
    VALIDATORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(schema_pointer.to_owned(), Arc::clone(&validator));
    validator
}

/// A JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Closes every object schema that lists its properties (see the module docs).
fn close_objects(document: &mut Value) {
    let mut composed = Vec::new();
    collect_all_of_references(document, &mut composed);
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            let reference = format!("#/components/schemas/{name}");
            close(schema, composed.contains(&reference));
        }
    }
    if let Some(paths) = document.pointer_mut("/paths") {
        close(paths, false);
    }
    if let Some(responses) = document.pointer_mut("/components/responses") {
        close(responses, false);
    }
}

/// `$ref`s named as parts of an `allOf`: closing those would refuse the other parts' fields.
fn collect_all_of_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("allOf") {
                for part in parts {
                    if let Some(reference) = part["$ref"].as_str() {
                        out.push(reference.to_owned());
                    }
                }
            }
            map.values()
                .for_each(|value| collect_all_of_references(value, out));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|value| collect_all_of_references(value, out)),
        _ => {}
    }
}

/// Closes `value` (unless `open`) and every schema inside it, except the parts of an `allOf`,
/// which the `allOf` itself closes with `unevaluatedProperties`.
fn close(value: &mut Value, open: bool) {
    match value {
        Value::Object(map) => {
            if !open {
                close_one(map);
            }
            for (key, inner) in map.iter_mut() {
                match (key.as_str(), inner) {
                    ("allOf", Value::Array(parts)) => {
                        parts.iter_mut().for_each(|part| close(part, true))
                    }
                    // Examples are values, not schemas.
                    ("example" | "examples", _) => {}
                    (_, inner) => close(inner, false),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| close(item, open)),
        _ => {}
    }
}

fn close_one(map: &mut Map<String, Value>) {
    if map.contains_key("allOf") && !map.contains_key("unevaluatedProperties") {
        map.insert("unevaluatedProperties".to_owned(), Value::Bool(false));
    } else if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
}

/// Reads `response` whole, checks it, and gives back an equal response to the test.
pub async fn checked(method: &str, path: &str, response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("response body");
    check(method, path, status.as_u16(), &headers, &body);
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

#[cfg(test)]
mod tests {
    use super::check;

    fn json_headers() -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers
    }

    #[test]
    fn a_body_of_the_documented_shape_passes() {
        check("GET", "/live", 200, &json_headers(), br#"{"alive":true}"#);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn a_field_of_the_wrong_type_fails() {
        check("GET", "/live", 200, &json_headers(), br#"{"alive":"yes"}"#);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn a_field_the_document_does_not_name_fails() {
        let body = br#"{"alive":true,"extra":1}"#;
        check("GET", "/live", 200, &json_headers(), body);
    }

    #[test]
    #[should_panic(expected = "not documented")]
    fn an_undocumented_status_fails() {
        check("GET", "/live", 202, &json_headers(), br#"{"alive":true}"#);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn an_error_outside_the_envelope_fails() {
        let body = br#"{"error":"nope"}"#;
        check("GET", "/api/workflows/wf1", 404, &json_headers(), body);
    }
}

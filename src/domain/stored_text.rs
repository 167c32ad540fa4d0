//! What Postgres refuses to store as text, checked before a write: the client gets a 422
//! naming the field rather than a 500 from the database.
//!
//! - `text` cannot hold U+0000 (`invalid byte sequence for encoding "UTF8": 0x00`), and
//!   neither can any string or object key inside `jsonb` (`unsupported Unicode escape
//!   sequence`).
//! - The schema's length checks use `length()`, which counts characters, not bytes: so do
//!   these (`chars().count()`).
//!
//! The limits mirror `migrations/`; `tests/api/stored_text.rs` sends the first value past
//! each of them through the API.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use super::workflow::{FieldError, WorkflowDocument};

/// `locations.name`: `check (length(name) between 1 and 200)`.
pub const LOCATION_NAME_CHARS: RangeInclusive<usize> = 1..=200;
/// `workflows.name`: `check (length(name) between 1 and 500)`.
pub const WORKFLOW_NAME_CHARS: RangeInclusive<usize> = 1..=500;

/// Fields named in one answer at most: a document with a NUL in every string should not
/// answer with an error list larger than itself.
pub const MAX_REPORTED: usize = 20;

const NUL_MESSAGE: &str = "must not contain a NUL character (\\u0000)";
const NUL_KEY_MESSAGE: &str = "is a key that contains a NUL character (\\u0000)";

/// `None` when `value` can be stored in a `text` column.
pub fn check_nul(field: &str, value: &str) -> Option<FieldError> {
    value
        .contains('\0')
        .then(|| FieldError::new(field, NUL_MESSAGE))
}

/// `None` when `value` can be stored in a `text` column whose length check is `chars`.
pub fn check_text(field: &str, value: &str, chars: RangeInclusive<usize>) -> Option<FieldError> {
    if let Some(error) = check_nul(field, value) {
        return Some(error);
    }
    let count = value.chars().count();
    (!chars.contains(&count)).then(|| {
        FieldError::new(
            field,
            format!(
                "must be {}-{} characters, got {count}",
                chars.start(),
                chars.end()
            ),
        )
    })
}

/// Every place in a stored workflow (its `name` column and its `definition` jsonb) that
/// Postgres would refuse, by the path of the field in the document (`steps[2].config.body`).
///
/// The name's lower bound is left to the required-field check of `validate_for_storage`.
/// Indices are those of the stored document (an `if_else`/`split` branch that is not an
/// object is dropped when the document is read).
pub fn workflow_document(doc: &WorkflowDocument) -> Vec<FieldError> {
    walk_document(doc, MAX_REPORTED)
}

fn walk_document(doc: &WorkflowDocument, cap: usize) -> Vec<FieldError> {
    let mut out = Reported::new(cap);
    if !doc.name.is_empty() {
        if let Some(error) = check_text("name", &doc.name, WORKFLOW_NAME_CHARS) {
            out.push(error);
        }
    }
    // `status`: anything but draft/published is refused by `validate_for_storage` already.
    if let Some(tw) = &doc.settings.time_window {
        out.optional("settings.timeWindow.start", tw.start.as_deref());
        out.optional("settings.timeWindow.end", tw.end.as_deref());
        for (i, day) in tw.days.iter().enumerate() {
            out.text(&format!("settings.timeWindow.days[{i}]"), day);
        }
        out.optional("settings.timeWindow.timezone", tw.timezone.as_deref());
    }
    for (i, t) in doc.triggers.iter().enumerate() {
        if out.full() {
            break;
        }
        let at = format!("triggers[{i}]");
        out.text(&format!("{at}.id"), &t.id);
        out.text(&format!("{at}.type"), t.trigger_type.as_str());
        out.optional(&format!("{at}.name"), t.name.as_deref());
        out.object(format!("{at}.filters"), &t.filters);
    }
    out.optional("start", doc.start.as_deref());
    for (i, s) in doc.steps.iter().enumerate() {
        if out.full() {
            break;
        }
        let at = format!("steps[{i}]");
        out.text(&format!("{at}.id"), &s.id);
        out.text(&format!("{at}.type"), s.step_type.as_str());
        out.optional(&format!("{at}.name"), s.name.as_deref());
        out.object(format!("{at}.config"), &s.config);
        out.optional(&format!("{at}.next"), s.next.as_deref());
        for (j, b) in s.branches.iter().enumerate() {
            let at = format!("{at}.branches[{j}]");
            out.optional(&format!("{at}.name"), b.name.as_deref());
            let mut path = format!("{at}.condition");
            json_value(&b.condition, &mut path, &mut out);
            out.optional(&format!("{at}.next"), b.next.as_deref());
        }
        out.optional(&format!("{at}.else"), s.else_next.as_deref());
    }
    out.errors
}

/// Every string and key inside `value` that `jsonb` refuses, by path below `prefix`
/// (`""` for the root).
pub fn json_errors(value: &Value, prefix: &str) -> Vec<FieldError> {
    json_errors_capped(value, prefix, MAX_REPORTED)
}

fn json_errors_capped(value: &Value, prefix: &str, cap: usize) -> Vec<FieldError> {
    let mut out = Reported::new(cap);
    let mut path = prefix.to_owned();
    json_value(value, &mut path, &mut out);
    out.errors
}

/// Errors collected up to a cap.
struct Reported {
    errors: Vec<FieldError>,
    cap: usize,
}

impl Reported {
    fn new(cap: usize) -> Self {
        Self {
            errors: Vec::new(),
            cap,
        }
    }

    fn full(&self) -> bool {
        self.errors.len() >= self.cap
    }

    fn push(&mut self, error: FieldError) {
        if !self.full() {
            self.errors.push(error);
        }
    }

    fn text(&mut self, field: &str, value: &str) {
        if let Some(error) = check_nul(field, value) {
            self.push(error);
        }
    }

    fn optional(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(field, value);
        }
    }

    fn object(&mut self, mut path: String, object: &Map<String, Value>) {
        json_object(object, &mut path, self);
    }
}

fn json_value(value: &Value, path: &mut String, out: &mut Reported) {
    if out.full() {
        return;
    }
    match value {
        Value::String(s) => out.text(path, s),
        Value::Array(items) => {
            let len = path.len();
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                json_value(item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(object) => json_object(object, path, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn json_object(object: &Map<String, Value>, path: &mut String, out: &mut Reported) {
    let len = path.len();
    for (key, item) in object {
        if out.full() {
            return;
        }
        push_key(path, key);
        if key.contains('\0') {
            out.push(FieldError::new(path.as_str(), NUL_KEY_MESSAGE));
        }
        json_value(item, path, out);
        path.truncate(len);
    }
}

/// `.key` for a plain key, `["a.b"]` (JSON-quoted) for one a reader could not split on dots.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::String(key.to_owned()).to_string());
        path.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn text_is_counted_in_characters_like_postgres_length() {
        let at_limit = "é".repeat(200);
        assert_eq!(check_text("name", &at_limit, LOCATION_NAME_CHARS), None);
        let over = "é".repeat(201);
        let error = check_text("name", &over, LOCATION_NAME_CHARS).expect("too long");
        assert_eq!(error.field, "name");
        assert!(error.message.contains("1-200"), "{}", error.message);
        assert!(check_text("name", "", LOCATION_NAME_CHARS).is_some());
        let nul = check_text("name", "a\0b", LOCATION_NAME_CHARS).expect("nul");
        assert!(nul.message.contains("NUL"));
    }

    #[test]
    fn json_paths_name_the_string_and_the_key() {
        let value = json!({
            "steps": [{"config": {"body": "x"}}, {"config": {"body": "a\u{0}b", "k\u{0}": 1}}],
            "odd key": ["\u{0}"],
        });
        let errors = json_errors(&value, "");
        assert_eq!(
            fields(&errors),
            vec![
                r#"["odd key"][0]"#,
                "steps[1].config.body",
                r#"steps[1].config["k\u0000"]"#,
            ]
        );
        assert!(json_errors(&json!({"a": ["b", {"c": 1.5}]}), "").is_empty());
    }

    #[test]
    fn reports_are_bounded() {
        let value = Value::Array((0..1000).map(|_| json!("\u{0}")).collect());
        assert_eq!(json_errors(&value, "x").len(), MAX_REPORTED);
    }

    fn poison_values(value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(format!("{s}\u{0}")),
            Value::Array(items) => Value::Array(items.iter().map(poison_values).collect()),
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), poison_values(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Puts a NUL into every string and every key of a JSON value.
    fn poison(value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(format!("{s}\u{0}")),
            Value::Array(items) => Value::Array(items.iter().map(poison).collect()),
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (format!("{k}\u{0}"), poison(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The walk over the parsed document finds exactly what a walk over the JSON that is
    /// stored finds: a field added to `to_json` without a check here fails this test.
    #[test]
    fn the_document_walk_covers_every_string_of_the_stored_definition() {
        let source = json!({
          "name": "n", "status": "published",
          "settings": { "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon", "tue"], "timezone": "UTC" } },
          "triggers": [ { "id": "t1", "type": "mystery", "name": "Tag", "filters": { "tag": "lead", "any": ["x"] } } ],
          "start": "s1",
          "steps": [
            { "id": "s1", "type": "teleport", "name": "W", "config": { "body": "x", "n": {"deep": "y"} }, "next": "s2", "else": "s3" },
            { "id": "s2", "type": "if_else", "branches": [ { "name": "R", "condition": { "field": "f" }, "next": "s1" } ] }
          ]
        });
        // Values everywhere; keys too inside the free-form maps (the known fields' keys must
        // stay readable for the document to parse).
        let mut poisoned = poison_values(&source);
        poisoned["triggers"][0]["filters"] = poison(&source["triggers"][0]["filters"]);
        poisoned["steps"][0]["config"] = poison(&source["steps"][0]["config"]);
        poisoned["steps"][1]["branches"][0]["condition"] =
            poison(&source["steps"][1]["branches"][0]["condition"]);

        let doc = WorkflowDocument::from_json(&poisoned).expect("parses");
        let mut from_doc: Vec<String> = walk_document(&doc, usize::MAX)
            .into_iter()
            .map(|e| e.field)
            .collect();
        let mut from_json: Vec<String> = json_errors_capped(&doc.to_json(), "", usize::MAX)
            .into_iter()
            .map(|e| e.field)
            .filter(|field| field != "status")
            .collect();
        from_json.sort();
        from_doc.sort();
        assert!(from_doc.len() > 15, "{from_doc:?}");
        assert_eq!(from_doc, from_json);
    }
}

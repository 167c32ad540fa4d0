//! The JSON types of a §7 document's known fields, as `openapi.json` states them.
//!
//! [`WorkflowDocument::from_json`](super::workflow::WorkflowDocument::from_json) reads
//! leniently (a `name: 5` reads as no name, an id given as a number as its decimal string),
//! which suits documents already stored and files given to the offline analyzer. A document
//! that arrives through the API is first held to the types its schema promises: a known field
//! of another type is a 422 naming it, rather than being read as absent. `null` stays the same
//! as leaving a field out (what the storage rules then say of a missing name or id applies).
//! Unknown fields stay allowed (`additionalProperties: true`).

use serde_json::{Map, Value};

use super::stored_text::MAX_REPORTED;
use super::workflow::FieldError;

#[derive(Clone, Copy)]
enum Kind {
    String,
    Boolean,
    Number,
    Object,
    Array,
}

impl Kind {
    fn matches(self, value: &Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Boolean => value.is_boolean(),
            Kind::Number => value.is_number(),
            Kind::Object => value.is_object(),
            Kind::Array => value.is_array(),
        }
    }

    fn message(self) -> &'static str {
        match self {
            Kind::String => "must be a string",
            Kind::Boolean => "must be true or false",
            Kind::Number => "must be a number",
            Kind::Object => "must be an object",
            Kind::Array => "must be an array",
        }
    }
}

/// Every known field of `document` whose JSON type is not the documented one (at most
/// [`MAX_REPORTED`]); empty when the shape is right. `document` not being an object is left
/// to the reader, which says so.
pub fn check_shape(document: &Value) -> Vec<FieldError> {
    let mut shape = Shape::default();
    if let Some(root) = document.as_object() {
        shape.root(root);
    }
    shape.errors
}

#[derive(Default)]
struct Shape {
    errors: Vec<FieldError>,
}

impl Shape {
    fn push(&mut self, field: String, message: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(FieldError::new(field, message));
        }
    }

    /// `object[key]` when it is there and of `kind`; an error when it is there otherwise.
    /// `null` is the same as leaving the field out (the schema's `nullable`), as the reader
    /// takes it.
    fn field<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        key: &str,
        path: &str,
        kind: Kind,
    ) -> Option<&'v Value> {
        let value = object.get(key).filter(|value| !value.is_null())?;
        if kind.matches(value) {
            Some(value)
        } else {
            self.push(join(path, key), kind.message());
            None
        }
    }

    fn strings(&mut self, object: &Map<String, Value>, keys: &[&str], path: &str) {
        for key in keys {
            self.field(object, key, path, Kind::String);
        }
    }

    /// The objects of array `object[key]`, each with its path.
    fn objects<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Vec<(String, &'v Map<String, Value>)> {
        let Some(items) = self.field(object, key, path, Kind::Array) else {
            return Vec::new();
        };
        let mut objects = Vec::new();
        for (i, item) in items.as_array().into_iter().flatten().enumerate() {
            let item_path = format!("{}[{i}]", join(path, key));
            match item.as_object() {
                Some(item) => objects.push((item_path, item)),
                None => self.push(item_path, Kind::Object.message()),
            }
        }
        objects
    }

    fn root(&mut self, root: &Map<String, Value>) {
        self.strings(root, &["name", "start"], "");
        if let Some(status) = self.field(root, "status", "", Kind::String) {
            if !matches!(status.as_str(), Some("draft" | "published")) {
                self.push("status".to_owned(), "must be \"draft\" or \"published\"");
            }
        }
        if let Some(settings) = self
            .field(root, "settings", "", Kind::Object)
            .and_then(Value::as_object)
        {
            self.settings(settings);
        }
        for (path, trigger) in self.objects(root, "triggers", "") {
            self.strings(trigger, &["id", "type", "name"], &path);
            self.field(trigger, "filters", &path, Kind::Object);
        }
        for (path, step) in self.objects(root, "steps", "") {
            self.strings(step, &["id", "type", "name", "next", "else"], &path);
            self.field(step, "config", &path, Kind::Object);
            for (path, branch) in self.objects(step, "branches", &path) {
                self.strings(branch, &["name", "next"], &path);
                self.field(branch, "condition", &path, Kind::Object);
                self.field(branch, "percent", &path, Kind::Number);
            }
        }
    }

    fn settings(&mut self, settings: &Map<String, Value>) {
        let path = "settings";
        for key in ["allowReentry", "stopOnResponse"] {
            self.field(settings, key, path, Kind::Boolean);
        }
        let Some(window) = self
            .field(settings, "timeWindow", path, Kind::Object)
            .and_then(Value::as_object)
        else {
            return;
        };
        let path = "settings.timeWindow";
        self.strings(window, &["start", "end", "timezone"], path);
        if let Some(days) = self.field(window, "days", path, Kind::Array) {
            for (i, day) in days.as_array().into_iter().flatten().enumerate() {
                if !day.is_string() {
                    self.push(format!("{path}.days[{i}]"), Kind::String.message());
                }
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(document: Value) -> Vec<String> {
        check_shape(&document)
            .into_iter()
            .map(|error| error.field)
            .collect()
    }

    #[test]
    fn a_well_typed_document_passes_and_unknown_fields_are_allowed() {
        let document = json!({
            "name": "n", "status": "published", "start": "s1", "extra": [1, null],
            "settings": {"allowReentry": true, "timeWindow": {"days": ["mon"], "start": "08:00"}},
            "triggers": [{"id": "t1", "type": "x", "filters": {"tag": 1}}],
            "steps": [{"id": "s1", "type": "if_else", "config": {}, "else": "s2",
                       "branches": [{"next": "s2", "condition": {}, "percent": 50}]}]
        });
        assert!(fields(document).is_empty());
        assert!(fields(json!({})).is_empty());
    }

    #[test]
    fn each_known_field_of_another_type_is_named_and_null_is_no_field() {
        let document = json!({
            "name": 5, "status": "Draft", "start": null,
            "settings": {"allowReentry": "yes", "timeWindow": {"days": ["mon", 2], "end": 1}},
            "triggers": [{"id": 7, "filters": []}, "t"],
            "steps": [{"id": "s1", "else": {}, "config": [],
                       "branches": [{"percent": "50%", "condition": true}, 3]}]
        });
        assert_eq!(
            fields(document),
            [
                "name",
                "status",
                "settings.allowReentry",
                "settings.timeWindow.end",
                "settings.timeWindow.days[1]",
                "triggers[1]",
                "triggers[0].id",
                "triggers[0].filters",
                "steps[0].else",
                "steps[0].config",
                "steps[0].branches[1]",
                "steps[0].branches[0].condition",
                "steps[0].branches[0].percent",
            ]
        );
        assert_eq!(
            fields(json!({"steps": {}, "triggers": 1})),
            ["triggers", "steps"]
        );
        assert!(fields(json!({"steps": null, "triggers": null, "status": null})).is_empty());
    }
}

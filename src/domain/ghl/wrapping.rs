//! Finding the workflow inside the wrappings users bring (FORMAT.md "Three wrappings").

use super::ImportError;
use serde::Serialize;
use serde_json::{Map, Value};

/// Which wrapping a document came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Wrapping {
    /// The builder's response: `{workflowData: {…, workflowData: {templates}}, triggers}`.
    Builder,
    /// Doc fields with `templates` and `triggers` beside them.
    Flat,
    /// Doc fields with `workflowData: {templates}` and `triggers` beside them.
    Nested,
    /// `{templates}` alone: no doc fields, no triggers.
    Bare,
}

/// The parts of one document, borrowed from the input.
pub(super) struct Located<'a> {
    pub wrapping: Wrapping,
    /// Where the doc fields (`id`, `name`, `status`, …) are.
    pub fields: &'a Map<String, Value>,
    pub templates: &'a [Value],
    /// Path of `templates`, for notes and errors.
    pub templates_path: &'static str,
    pub triggers: Option<&'a Value>,
    pub triggers_path: &'static str,
}

pub(super) const EXPECTED: &str =
    "{workflowData:{workflowData:{templates}}}, {templates}, {workflowData:{templates}}";

/// Doc fields that tell a bare `{templates}` from a flattened document.
const DOC_FIELDS: &[&str] = &["id", "_id", "name", "locationId", "status", "version"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    kind(v)
}

fn templates_at<'a>(
    obj: &'a Map<String, Value>,
    path: &'static str,
) -> Option<Result<&'a [Value], ImportError>> {
    match obj.get("templates")? {
        Value::Array(items) => Some(Ok(items)),
        other => Some(Err(ImportError::TemplatesNotArray {
            path,
            found: kind(other),
        })),
    }
}

/// Finds the document's parts in `root`.
pub(super) fn locate(root: &Value) -> Result<Located<'_>, ImportError> {
    let Some(obj) = root.as_object() else {
        return Err(ImportError::NotAnObject { found: kind(root) });
    };
    let inner = obj.get("workflowData").and_then(Value::as_object);
    // 1. The builder's response.
    if let Some(doc) = inner {
        if let Some(templates) = doc
            .get("workflowData")
            .and_then(Value::as_object)
            .and_then(|w| templates_at(w, "workflowData.workflowData.templates"))
        {
            let (triggers, triggers_path) = match obj.get("triggers") {
                Some(t) => (Some(t), "triggers"),
                None => (doc.get("triggers"), "workflowData.triggers"),
            };
            return Ok(Located {
                wrapping: Wrapping::Builder,
                fields: doc,
                templates: templates?,
                templates_path: "workflowData.workflowData.templates",
                triggers,
                triggers_path,
            });
        }
    }
    // 2. Flattened (or bare).
    if let Some(templates) = templates_at(obj, "templates") {
        let bare =
            !DOC_FIELDS.iter().any(|k| obj.contains_key(*k)) && !obj.contains_key("triggers");
        return Ok(Located {
            wrapping: if bare { Wrapping::Bare } else { Wrapping::Flat },
            fields: obj,
            templates: templates?,
            templates_path: "templates",
            triggers: obj.get("triggers"),
            triggers_path: "triggers",
        });
    }
    // 3. Doc fields with `workflowData: {templates}`.
    if let Some(templates) = inner.and_then(|w| templates_at(w, "workflowData.templates")) {
        return Ok(Located {
            wrapping: Wrapping::Nested,
            fields: obj,
            templates: templates?,
            templates_path: "workflowData.templates",
            triggers: obj.get("triggers"),
            triggers_path: "triggers",
        });
    }
    Err(ImportError::NoTemplates)
}

/// Whether `value` looks like GoHighLevel builder JSON (any wrapping, or an array of them)
/// rather than a CONTRACT §7 document: it names `templates` or `workflowData` where a
/// wrapping has them, or it is an array (§7 documents are objects).
pub fn is_ghl_document(value: &Value) -> bool {
    match value {
        Value::Array(_) => true,
        Value::Object(obj) => {
            obj.contains_key("templates")
                || obj
                    .get("workflowData")
                    .and_then(Value::as_object)
                    .is_some_and(|w| w.contains_key("templates") || w.contains_key("workflowData"))
        }
        _ => false,
    }
}

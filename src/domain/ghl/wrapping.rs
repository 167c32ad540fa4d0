//! Finding the workflow inside the wrappings users bring (FORMAT.md "Three wrappings").

use super::ImportError;
use serde::Serialize;
use serde_json::{Map, Value};

/// Which wrapping of FORMAT.md a document came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Where one document's parts are.
pub(super) struct Located {
    pub wrapping: Wrapping,
    /// Path of `templates`, for notes and errors.
    pub templates_path: &'static str,
    /// Path of `triggers` (whether present or not).
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

fn templates_at(obj: &Map<String, Value>, path: &'static str) -> Option<Result<(), ImportError>> {
    match obj.get("templates")? {
        Value::Array(_) => Some(Ok(())),
        other => Some(Err(ImportError::TemplatesNotArray {
            path,
            found: kind(other),
        })),
    }
}

/// Finds the document's parts in `root`.
pub(super) fn locate(root: &Value) -> Result<Located, ImportError> {
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
            templates?;
            let triggers_path = match obj.contains_key("triggers") {
                true => "triggers",
                false => "workflowData.triggers",
            };
            return Ok(Located {
                wrapping: Wrapping::Builder,
                templates_path: "workflowData.workflowData.templates",
                triggers_path,
            });
        }
    }
    // 2. Flattened (or bare).
    if let Some(templates) = templates_at(obj, "templates") {
        let bare =
            !DOC_FIELDS.iter().any(|k| obj.contains_key(*k)) && !obj.contains_key("triggers");
        templates?;
        return Ok(Located {
            wrapping: if bare { Wrapping::Bare } else { Wrapping::Flat },
            templates_path: "templates",
            triggers_path: "triggers",
        });
    }
    // 3. Doc fields with `workflowData: {templates}`.
    if let Some(templates) = inner.and_then(|w| templates_at(w, "workflowData.templates")) {
        templates?;
        return Ok(Located {
            wrapping: Wrapping::Nested,
            templates_path: "workflowData.templates",
            triggers_path: "triggers",
        });
    }
    Err(ImportError::NoTemplates)
}

/// The parts of one document, taken out of it (see [`take`]).
pub(super) struct Taken {
    pub wrapping: Wrapping,
    /// The doc fields (`id`, `name`, `status`, …), without `templates` and `triggers`.
    pub fields: Map<String, Value>,
    pub templates: Vec<Value>,
    pub templates_path: &'static str,
    pub triggers: Option<Value>,
    pub triggers_path: &'static str,
}

/// [`locate`], taking the parts out of `root` rather than borrowing them: the importer moves
/// each step's `attributes` into its config instead of copying it.
pub(super) fn take(root: Value) -> Result<Taken, ImportError> {
    let (wrapping, templates_path, triggers_path) = {
        let located = locate(&root)?;
        (
            located.wrapping,
            located.templates_path,
            located.triggers_path,
        )
    };
    // `locate` checked every shape below: the fallbacks are never taken.
    let Value::Object(mut obj) = root else {
        return Err(ImportError::NoTemplates);
    };
    let (fields, templates, triggers) = match wrapping {
        Wrapping::Builder => {
            let mut doc = take_object(&mut obj, "workflowData");
            let templates = take_object(&mut doc, "workflowData").remove("templates");
            let triggers = match triggers_path {
                "triggers" => obj.remove("triggers"),
                _ => doc.remove("triggers"),
            };
            (doc, templates, triggers)
        }
        Wrapping::Flat | Wrapping::Bare => {
            let templates = obj.remove("templates");
            let triggers = obj.remove("triggers");
            (obj, templates, triggers)
        }
        Wrapping::Nested => {
            let templates = take_object(&mut obj, "workflowData").remove("templates");
            let triggers = obj.remove("triggers");
            (obj, templates, triggers)
        }
    };
    let Some(Value::Array(templates)) = templates else {
        return Err(ImportError::NoTemplates);
    };
    Ok(Taken {
        wrapping,
        fields,
        templates,
        templates_path,
        triggers,
        triggers_path,
    })
}

fn take_object(obj: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match obj.remove(key) {
        Some(Value::Object(inner)) => inner,
        _ => Map::new(),
    }
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

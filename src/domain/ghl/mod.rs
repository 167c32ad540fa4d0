//! Importer of GoHighLevel builder JSON (`../shared/ghl/FORMAT.md`) into our CONTRACT §7
//! [`WorkflowDocument`], so the analysis rules run on the real graph. Pure: no I/O.
//!
//! - [`import`] takes one document in any wrapping ([`Wrapping`]); [`import_all`] also takes
//!   a JSON array of them; [`import_bytes`] does the same from raw bytes and hands back each
//!   document's original text verbatim ([`RawImport::original`]) for storing it byte for byte.
//! - A value in no known shape is an [`ImportError`] naming what was expected. Anything
//!   malformed *inside* a recognisable document (missing fields, wrong types, duplicate ids,
//!   dangling `next`) is imported as well as it can be, described in
//!   [`ImportedWorkflow::notes`], and left for the analysis rules to report.
//! - GoHighLevel step and trigger ids and names become ours, so findings name what the
//!   builder shows. The mapping is documented in `docs/ghl.md`.
//! - Facts the builder records about a step that our model has no field for go under two
//!   reserved config keys: [`GHL_CONFIG_KEY`] holds the builder's type name (`"ghl": "sms"`),
//!   [`GHL_INCOMPLETE_KEY`] is `true` when the builder set `incompleteData: true`. (Plain
//!   values, not an object: a nested map per step was a quarter of a 10,000-step import.)

mod attributes;
mod steps;
mod storage;
mod triggers;
pub mod types;
mod wrapping;

pub use storage::{storable, Refusal, StorableImport};

pub use types::{is_known_step_type, is_known_trigger_type};
pub use wrapping::{is_ghl_document, Wrapping};

use crate::domain::workflow::{WorkflowDocument, WorkflowStatus};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Config key of a step's GoHighLevel type name (see module docs).
pub const GHL_CONFIG_KEY: &str = "ghl";
/// Config key set to `true` on a step the builder marked `incompleteData: true`.
pub const GHL_INCOMPLETE_KEY: &str = "ghlIncomplete";

/// Documents one array may hold; more is an error naming the limit (the import route
/// accepts up to 100 per request, CONTRACT §4).
pub const MAX_DOCUMENTS: usize = 10_000;

/// Something the importer had to read around, e.g. `{path: "…templates[3].next", message:
/// "must be a step id or an array of step ids; got a number (ignored)"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportNote {
    pub path: String,
    pub message: String,
}

impl ImportNote {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One imported GoHighLevel workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedWorkflow {
    /// The document's `id` (or `_id`); `None` for a bare `{templates}`.
    pub ghl_id: Option<String>,
    /// The `locationId` the document names, if any.
    pub location_id: Option<String>,
    pub name: Option<String>,
    /// The builder's `version` (its edit counter), when an integer.
    pub source_version: Option<i64>,
    /// Same as `document.status`: draft when absent, `Invalid` for any other value.
    pub status: WorkflowStatus,
    pub timezone: Option<String>,
    /// The document says `deleted: true`.
    pub deleted: bool,
    pub wrapping: Wrapping,
    /// The normalized §7 document (`name` empty when the source has none).
    pub document: WorkflowDocument,
    pub notes: Vec<ImportNote>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("a GoHighLevel workflow must be a JSON object; got {found}")]
    NotAnObject { found: &'static str },
    #[error("no `templates` array found (expected one of: {})", wrapping::EXPECTED)]
    NoTemplates,
    #[error("`{path}` must be an array of steps; got {found}")]
    TemplatesNotArray {
        path: &'static str,
        found: &'static str,
    },
    #[error("the array holds no workflow")]
    EmptyArray,
    #[error("the array holds {count} workflows; at most {max} are accepted")]
    TooMany { count: usize, max: usize },
}

impl ImportError {
    /// The field a client is told about: where the missing or wrong part is (`$` for the
    /// whole value), as in `details.errors[].field` of a 422.
    pub fn field(&self) -> &'static str {
        match self {
            ImportError::NoTemplates => "templates",
            ImportError::TemplatesNotArray { path, .. } => path,
            ImportError::InvalidJson(_)
            | ImportError::NotAnObject { .. }
            | ImportError::EmptyArray
            | ImportError::TooMany { .. } => "$",
        }
    }
}

/// One document of [`import_bytes`]: its exact original text and what it imported to.
#[derive(Debug)]
pub struct RawImport {
    pub original: Box<RawValue>,
    pub imported: Result<ImportedWorkflow, ImportError>,
}

/// Imports one document (any wrapping). Copies `value`: a caller that no longer needs it
/// should hand it over to [`import_value`].
pub fn import(value: &Value) -> Result<ImportedWorkflow, ImportError> {
    // A value in no known shape is refused before anything is copied.
    wrapping::locate(value)?;
    import_value(value.clone())
}

/// Imports one document (any wrapping), taking it apart: each step's `attributes` become its
/// config without being copied.
pub fn import_value(value: Value) -> Result<ImportedWorkflow, ImportError> {
    let taken = wrapping::take(value)?;
    let mut notes = Vec::new();
    let fields = &taken.fields;
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    let ghl_id = ["id", "_id"].iter().find_map(|k| match fields.get(*k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    let status = crate::domain::workflow::parse_status(fields.get("status"));
    if let WorkflowStatus::Invalid(s) = &status {
        notes.push(ImportNote::new(
            "status",
            format!("is {s}, neither \"draft\" nor \"published\" (analyzed as a draft)"),
        ));
    }
    let deleted = fields.get("deleted").and_then(Value::as_bool) == Some(true);
    if deleted {
        notes.push(ImportNote::new(
            "deleted",
            "the document is marked deleted in GoHighLevel",
        ));
    }
    let timezone = text("timezone").filter(|t| !t.trim().is_empty());
    let settings = triggers::settings(fields, timezone.as_deref(), &mut notes);
    let trigger_list =
        triggers::map_triggers(taken.triggers.as_ref(), taken.triggers_path, &mut notes);
    let name = text("name");
    let location_id = text("locationId").filter(|l| !l.trim().is_empty());
    let source_version = fields.get("version").and_then(Value::as_i64);
    let (steps, start) = steps::map_steps(taken.templates, taken.templates_path, &mut notes);
    let document = WorkflowDocument {
        name: name.clone().unwrap_or_default(),
        status: status.clone(),
        settings,
        triggers: trigger_list,
        start,
        steps,
    };
    Ok(ImportedWorkflow {
        ghl_id,
        location_id,
        name,
        source_version,
        status,
        timezone,
        deleted,
        wrapping: taken.wrapping,
        document,
        notes,
    })
}

/// Imports one document, or each document of a JSON array (each on its own: one bad
/// element does not stop the others).
pub fn import_all(
    value: &Value,
) -> Result<Vec<Result<ImportedWorkflow, ImportError>>, ImportError> {
    match value {
        Value::Array(items) => {
            check_count(items.len(), MAX_DOCUMENTS)?;
            Ok(items.iter().map(import).collect())
        }
        single => Ok(vec![import(single)]),
    }
}

/// [`import_all`] of a value the caller no longer needs (see [`import_value`]).
pub fn import_all_value(
    value: Value,
) -> Result<Vec<Result<ImportedWorkflow, ImportError>>, ImportError> {
    match value {
        Value::Array(items) => {
            check_count(items.len(), MAX_DOCUMENTS)?;
            Ok(items.into_iter().map(import_value).collect())
        }
        single => Ok(vec![import_value(single)]),
    }
}

/// [`import_all`] from raw bytes, keeping each document's original text.
pub fn import_bytes(bytes: &[u8]) -> Result<Vec<RawImport>, ImportError> {
    import_body(bytes, MAX_DOCUMENTS).map(|body| body.documents)
}

/// What [`import_body`] read.
#[derive(Debug)]
pub struct ImportedBody {
    /// The body was a JSON array (each element is one document).
    pub is_array: bool,
    pub documents: Vec<RawImport>,
}

/// [`import_bytes`] for an array of at most `max_documents` (the import route takes 100).
/// Not JSON at all is [`ImportError::InvalidJson`]; everything else is per document.
pub fn import_body(bytes: &[u8], max_documents: usize) -> Result<ImportedBody, ImportError> {
    let invalid = |e: serde_json::Error| ImportError::InvalidJson(e.to_string());
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let is_array = first == Some(b'[');
    let originals: Vec<Box<RawValue>> = if is_array {
        let items: Vec<Box<RawValue>> = serde_json::from_slice(bytes).map_err(invalid)?;
        check_count(items.len(), max_documents)?;
        items
    } else {
        vec![serde_json::from_slice(bytes).map_err(invalid)?]
    };
    let documents = originals
        .into_iter()
        .map(|original| {
            let imported = serde_json::from_str::<Value>(original.get())
                .map_err(invalid)
                .and_then(import_value);
            RawImport { original, imported }
        })
        .collect();
    Ok(ImportedBody {
        is_array,
        documents,
    })
}

fn check_count(count: usize, max: usize) -> Result<(), ImportError> {
    if count == 0 {
        return Err(ImportError::EmptyArray);
    }
    if count > max {
        return Err(ImportError::TooMany { count, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! What storing an imported workflow takes (`POST /api/workflows/import`): an id, a name and
//! a status the schema accepts, the caller's location, and the checks every stored document
//! passes (the size limits, text Postgres can hold). What the analysis reports instead —
//! duplicate ids, dangling `next`s, unknown types, a missing name — is kept, not refused.

use sha2::{Digest, Sha256};

use super::{ImportError, ImportNote, ImportedWorkflow, Wrapping};
use crate::domain::ids::{is_valid_workflow_id, RESERVED_WORKFLOW_IDS};
use crate::domain::workflow::WorkflowStatus;
use crate::domain::workflow::{validate_imported_for_storage, FieldError, WorkflowDocument};

/// An imported workflow ready to be stored.
#[derive(Debug, Clone)]
pub struct StorableImport {
    /// The GoHighLevel id (a document without one: [`derived_id`] of its original).
    pub id: String,
    /// The stored name (also the document's): the builder's, or one made from the id.
    pub name: String,
    /// Status draft or published (another value was noted and is stored as a draft).
    pub document: WorkflowDocument,
    pub source_version: Option<i64>,
    pub wrapping: Wrapping,
    pub notes: Vec<ImportNote>,
}

/// Why one document is not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No workflow in a known shape: what is missing is named.
    #[error(transparent)]
    Shape(#[from] ImportError),
    /// The document names a `locationId` that is not the caller's.
    #[error("the document's locationId is not the API key's location")]
    OtherLocation,
    /// Over a size limit, text Postgres cannot hold, or an unusable id.
    #[error("the document cannot be stored as it is")]
    Invalid(Vec<FieldError>),
}

/// The checks of storing `imported` (whose original text is `original`) for `location_id`.
pub fn storable(
    imported: Result<ImportedWorkflow, ImportError>,
    original: &str,
    location_id: &str,
    max_steps: usize,
) -> Result<StorableImport, Refusal> {
    let mut imported = imported?;
    if imported
        .location_id
        .as_deref()
        .is_some_and(|named| named != location_id)
    {
        return Err(Refusal::OtherLocation);
    }
    let id = match imported.ghl_id.take() {
        Some(id) if RESERVED_WORKFLOW_IDS.contains(&id.as_str()) => {
            return Err(Refusal::Invalid(vec![FieldError::new(
                "id",
                format!("\"{id}\" is a route of the API (/api/workflows/{id}), not a workflow id"),
            )]))
        }
        Some(id) if is_valid_workflow_id(&id) => id,
        Some(_) => {
            return Err(Refusal::Invalid(vec![FieldError::new(
                "id",
                "must be 1-128 letters, digits, '_', '-', '.' or ':' (a GoHighLevel id)",
            )]))
        }
        None => {
            let id = derived_id(original);
            imported.notes.push(ImportNote::new(
                "id",
                format!("the document has no id; stored as \"{id}\" (the same text always gets the same id)"),
            ));
            id
        }
    };
    let mut document = imported.document;
    if document.name.trim().is_empty() {
        document.name = format!("GoHighLevel workflow {id}");
        imported.notes.push(ImportNote::new(
            "name",
            format!("the document has no name; stored as \"{}\"", document.name),
        ));
    }
    // Noted by the importer and analyzed as a draft already: stored as what it is analyzed as.
    if let WorkflowStatus::Invalid(_) = document.status {
        document.status = WorkflowStatus::Draft;
    }
    validate_imported_for_storage(&document, max_steps).map_err(Refusal::Invalid)?;
    Ok(StorableImport {
        id,
        name: document.name.clone(),
        document,
        source_version: imported.source_version,
        wrapping: imported.wrapping,
        notes: imported.notes,
    })
}

/// The id of a document that has none: `ghl-` and 32 hex digits of the SHA-256 of its
/// original text, so importing the same text again finds the same workflow.
pub fn derived_id(original: &str) -> String {
    let digest = Sha256::digest(original.as_bytes());
    format!("ghl-{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ghl::import;
    use serde_json::json;

    fn prepare(doc: serde_json::Value, location: &str) -> Result<StorableImport, Refusal> {
        let original = doc.to_string();
        storable(import(&doc), &original, location, 5_000)
    }

    #[test]
    fn a_document_of_another_location_is_refused_and_one_naming_none_is_the_callers() {
        let doc = json!({"id": "wf-1", "name": "n", "locationId": "loc-b", "templates": []});
        assert_eq!(prepare(doc, "loc-a").err(), Some(Refusal::OtherLocation));
        let doc = json!({"id": "wf-1", "name": "n", "templates": []});
        assert_eq!(
            prepare(doc, "loc-a").map(|s| s.id).ok().as_deref(),
            Some("wf-1")
        );
    }

    #[test]
    fn bare_templates_get_a_stable_id_and_a_name_and_duplicate_ids_are_kept() {
        let doc = json!({"templates": [
            {"id": "a", "type": "sms", "attributes": {"body": "hi"}, "next": "a2"},
            {"id": "a", "type": "wait"}
        ]});
        let first = prepare(doc.clone(), "loc").expect("storable");
        let again = prepare(doc, "loc").expect("storable");
        assert_eq!(first.id, again.id);
        assert!(
            first.id.starts_with("ghl-") && first.id.len() == 36,
            "{}",
            first.id
        );
        assert_eq!(first.name, format!("GoHighLevel workflow {}", first.id));
        assert_eq!(first.document.name, first.name);
        assert_eq!(first.document.steps.len(), 2);
        assert!(first.notes.iter().any(|n| n.path == "id"));
        assert!(first.notes.iter().any(|n| n.path == "name"));
    }

    #[test]
    fn unusable_ids_limits_and_shapes_are_refused_naming_the_field() {
        for id in ["has space", "import"] {
            let doc = json!({"id": id, "templates": []});
            let Err(Refusal::Invalid(errors)) = prepare(doc, "loc") else {
                panic!("the id {id:?} is refused")
            };
            assert_eq!(errors[0].field, "id");
        }

        let steps: Vec<_> = (0..3)
            .map(|i| json!({"id": format!("s{i}"), "type": "sms"}))
            .collect();
        let doc = json!({"id": "w", "templates": steps});
        let Err(Refusal::Invalid(errors)) = storable(import(&doc), "{}", "loc", 2) else {
            panic!("over the step limit")
        };
        assert_eq!(errors[0].field, "steps");

        let Err(Refusal::Shape(shape)) = prepare(json!({"name": "n", "steps": []}), "loc") else {
            panic!("no templates")
        };
        assert_eq!(shape.field(), "templates");
    }

    #[test]
    fn a_status_neither_draft_nor_published_is_stored_as_the_draft_it_is_analyzed_as() {
        let doc = json!({"id": "w", "name": "n", "status": "archived", "templates": []});
        let stored = prepare(doc, "loc").expect("storable");
        assert_eq!(stored.document.status, WorkflowStatus::Draft);
        assert!(stored.notes.iter().any(|n| n.path == "status"));
    }
}

//! Importing GoHighLevel builder JSON (`POST /api/workflows/import`): each document is read
//! by the importer (`domain::ghl`), stored under its GoHighLevel id with its original text
//! beside it, and answered with its analysis summary.
//!
//! - Storing goes through [`WorkflowRepository::put`], the write of `PUT /api/workflows/{id}`:
//!   the same transaction, the same cache notice in it and the same invalidation after it.
//! - A re-import of the version already stored (the same GoHighLevel `version`, or, without
//!   one, the same text) writes nothing: same version, no invalidation. An older source version
//!   than the stored one is refused rather than stored over it.
//! - The analyses are computed after every document of the request is stored, so the
//!   location-wide findings they count in are computed once per request, not once per document.

use std::sync::Arc;

use bytes::Bytes;

use crate::domain::ghl::{self, ImportError, ImportNote, Refusal, StorableImport, Wrapping};
use crate::domain::overview::{AnalysisStatus, RowAnalysis};
use crate::repository::{
    IfMatch, ImportState, NewWorkflow, PutOutcome, RepositoryError, StoredWorkflow,
    WorkflowRepository, WorkflowSource,
};
use crate::services::analysis::{is_too_complex, AnalysisService};

/// Documents one request may hold (CONTRACT §4).
pub const MAX_IMPORT_DOCUMENTS: usize = 100;

/// Bodies up to this size are read where they arrive; larger ones on the analysis pool, so a
/// megabyte of builder JSON cannot hold up the HTTP workers serving cached reads.
const PARSE_ON_WORKER_UP_TO: usize = 16 * 1024;

/// Tries at a write when another write of the same id keeps coming in between the read that
/// decides on it and the write itself.
const WRITE_ATTEMPTS: usize = 3;

/// Why a request, or one document of it, was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// Not JSON, in no known shape, of another location, or not storable as it is.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The stored workflow was imported at a later GoHighLevel version than this document's.
    #[error("the stored workflow was imported at GoHighLevel version {stored}, later than this document's {given}")]
    OlderSource { stored: i64, given: i64 },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// What a stored document's write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ImportOutcome {
    Created,
    /// Replaced what was stored under the id (version + 1).
    Updated,
    /// The same source version was stored already: nothing written.
    Unchanged,
}

/// One stored document.
#[derive(Debug)]
pub struct ImportedItem {
    pub outcome: ImportOutcome,
    pub workflow: StoredWorkflow,
    pub wrapping: Wrapping,
    /// What the importer read around (see `domain::ghl::ImportNote`).
    pub notes: Vec<ImportNote>,
    /// The analysis summary (as `GET /api/workflows?include=analysis` shows it); `None` while
    /// pending or when the workflow is too complex to analyze.
    pub analysis: Option<RowAnalysis>,
    pub analysis_status: AnalysisStatus,
}

/// One document of a request and what became of it.
#[derive(Debug)]
pub struct ItemResult {
    /// The GoHighLevel id, when the document was read far enough to have one.
    pub id: Option<String>,
    pub result: Result<ImportedItem, ImportFailure>,
}

/// A request's answer: one result per document, in order.
#[derive(Debug)]
pub struct ImportAnswer {
    /// The body was an array (answered item by item) rather than one document.
    pub is_array: bool,
    pub items: Vec<ItemResult>,
}

/// A document read and checked, ready to be written.
#[derive(Debug)]
pub struct Prepared {
    /// Where it is stored: its GoHighLevel id.
    pub id: String,
    pub workflow: NewWorkflow,
    pub wrapping: Wrapping,
    pub notes: Vec<ImportNote>,
}

#[derive(Clone)]
pub struct GhlImportService {
    workflows: Arc<dyn WorkflowRepository>,
    analysis: AnalysisService,
    /// `MAX_WORKFLOW_STEPS`.
    max_steps: usize,
}

impl GhlImportService {
    pub fn new(
        workflows: Arc<dyn WorkflowRepository>,
        analysis: AnalysisService,
        max_steps: usize,
    ) -> Self {
        Self {
            workflows,
            analysis,
            max_steps,
        }
    }

    /// Imports the request `body` for `location_id`. `Err` only for the body as a whole
    /// (not JSON, an empty or too long array); a single document's refusal is its item's.
    pub async fn import(
        &self,
        location_id: &str,
        body: Bytes,
    ) -> Result<ImportAnswer, ImportFailure> {
        let small = body.len() <= PARSE_ON_WORKER_UP_TO;
        let (location, max_steps) = (location_id.to_owned(), self.max_steps);
        let read = move || prepare_body(&body, &location, max_steps);
        let (is_array, prepared) = if small {
            read()?
        } else {
            self.analysis.off_workers(location_id, read).await??
        };
        let mut items = Vec::with_capacity(prepared.len());
        for (id, prepared) in prepared {
            let result = match prepared {
                Ok(prepared) => self.store(location_id, prepared).await,
                Err(refusal) => Err(refusal.into()),
            };
            items.push(ItemResult { id, result });
        }
        for item in items
            .iter_mut()
            .filter_map(|item| item.result.as_mut().ok())
        {
            (item.analysis, item.analysis_status) =
                self.summary(location_id, &item.workflow.id).await;
        }
        Ok(ImportAnswer { is_array, items })
    }

    async fn store(
        &self,
        location_id: &str,
        prepared: Prepared,
    ) -> Result<ImportedItem, ImportFailure> {
        let Prepared {
            id,
            workflow,
            wrapping,
            notes,
        } = prepared;
        let (source_json, source_version) = match &workflow.source {
            Some(source) => (source.json.as_str(), source.version),
            None => ("", None),
        };
        let mut attempts = 0;
        let (outcome, stored) = loop {
            attempts += 1;
            let state = self
                .workflows
                .import_state(location_id, &id, source_json)
                .await?;
            let if_match = match state {
                Some(state) if is_unchanged(&state, source_version) => {
                    let stored: StoredWorkflow =
                        self.workflows.get(location_id, &id).await?.decode()?;
                    // The very same text, read differently by this release's importer (a fix
                    // in how builder JSON maps to steps): stored again, so importing the file
                    // again brings the fix to a workflow imported before it.
                    if !state.same_source || reads_the_same(&stored, &workflow) {
                        break (ImportOutcome::Unchanged, stored);
                    }
                    Some(IfMatch::Version(state.version))
                }
                Some(ImportState {
                    source_version: Some(stored),
                    ..
                }) if source_version.is_some_and(|given| given < stored) => {
                    return Err(ImportFailure::OlderSource {
                        stored,
                        given: source_version.unwrap_or_default(),
                    });
                }
                Some(state) => Some(IfMatch::Version(state.version)),
                None => None,
            };
            match self
                .workflows
                .put(location_id, &id, &workflow, if_match)
                .await
            {
                Ok(PutOutcome::Created(stored)) => break (ImportOutcome::Created, stored),
                Ok(PutOutcome::Replaced(stored)) => break (ImportOutcome::Updated, stored),
                // Another write of the id came in between: decide again on what it stored.
                Err(RepositoryError::PreconditionFailed { .. }) if attempts < WRITE_ATTEMPTS => {}
                Err(error) => return Err(error.into()),
            }
        };
        Ok(ImportedItem {
            outcome,
            workflow: stored,
            wrapping,
            notes,
            analysis: None,
            analysis_status: AnalysisStatus::Pending,
        })
    }

    /// The stored workflow's analysis summary with the location-wide findings that involve it,
    /// as the overview shows it. A failure leaves it pending (the workflow is stored; its
    /// analysis is computed again when asked for) rather than failing the import.
    async fn summary(&self, location_id: &str, id: &str) -> (Option<RowAnalysis>, AnalysisStatus) {
        let analysis = match self.analysis.workflow_analysis(location_id, id).await {
            Ok(analysis) => analysis,
            Err(error) if is_too_complex(&error) => return (None, AnalysisStatus::TooComplex),
            Err(error) => {
                log::warn!("the analysis of imported workflow {id} is pending: {error}");
                return (None, AnalysisStatus::Pending);
            }
        };
        match serde_json::from_slice::<RowAnalysis>(&analysis.json) {
            Ok(row) => {
                let findings: Vec<_> = analysis.location_findings.iter().collect();
                (
                    Some(row.with_location_findings(&findings)),
                    AnalysisStatus::Done,
                )
            }
            Err(error) => {
                log::warn!("the analysis of imported workflow {id} did not decode: {error}");
                (None, AnalysisStatus::Pending)
            }
        }
    }
}

/// Nothing to write: the same GoHighLevel version is stored, or (a document without a
/// version) the very same text.
fn is_unchanged(state: &ImportState, source_version: Option<i64>) -> bool {
    state.same_source || (source_version.is_some() && state.source_version == source_version)
}

/// Whether what is stored is what this importer makes of the same source.
fn reads_the_same(stored: &StoredWorkflow, imported: &NewWorkflow) -> bool {
    stored.definition == imported.definition
        && stored.name == imported.name
        && stored.status == imported.status
}

/// Whether the body was an array, and each document (its GoHighLevel id when known).
pub type PreparedBody = (bool, Vec<(Option<String>, Result<Prepared, Refusal>)>);

/// Reads and checks every document of `body` for `location_id` (pure CPU work: it may run on
/// the analysis pool; the demo seed uses it too, so its imports are stored as the route's).
pub fn prepare_body(
    body: &[u8],
    location_id: &str,
    max_steps: usize,
) -> Result<PreparedBody, Refusal> {
    let read = ghl::import_body(body, MAX_IMPORT_DOCUMENTS)?;
    // One document is kept as the whole body, byte for byte; an array's as each element's text.
    let whole = match read.is_array {
        true => None,
        false => Some(
            std::str::from_utf8(body)
                .map_err(|e| Refusal::Shape(ImportError::InvalidJson(e.to_string())))?,
        ),
    };
    let documents = read
        .documents
        .into_iter()
        .map(|raw| {
            let id = raw.imported.as_ref().ok().and_then(|w| w.ghl_id.clone());
            let original = whole.unwrap_or_else(|| raw.original.get());
            let prepared = ghl::storable(raw.imported, original, location_id, max_steps)
                .map(|storable| prepared(storable, original));
            let id = match &prepared {
                Ok(prepared) => Some(prepared.id.clone()),
                Err(_) => id,
            };
            (id, prepared)
        })
        .collect();
    Ok((read.is_array, documents))
}

fn prepared(storable: StorableImport, original: &str) -> Prepared {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let document = &storable.document;
    Prepared {
        workflow: NewWorkflow {
            name: storable.name,
            status: if document.status.is_published() {
                "published"
            } else {
                "draft"
            },
            definition: document.to_json(),
            step_count: count(document.steps.len()),
            trigger_count: count(document.triggers.len()),
            source: Some(WorkflowSource {
                json: original.to_owned(),
                version: storable.source_version,
            }),
        },
        id: storable.id,
        wrapping: storable.wrapping,
        notes: storable.notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(source_version: Option<i64>, same_source: bool) -> ImportState {
        ImportState {
            version: 3,
            source_version,
            same_source,
        }
    }

    #[test]
    fn a_re_import_is_unchanged_at_the_same_source_version_or_the_same_text() {
        assert!(is_unchanged(&state(Some(4), false), Some(4)));
        assert!(!is_unchanged(&state(Some(4), false), Some(5)));
        assert!(is_unchanged(&state(None, true), None));
        assert!(!is_unchanged(&state(None, false), None));
        // A workflow stored by PUT is no import of any version.
        assert!(!is_unchanged(&state(None, false), Some(4)));
    }

    #[test]
    fn one_document_keeps_the_whole_body_and_an_array_each_elements_text() {
        let one = b" {\"id\": \"w\", \"templates\": []}\n";
        let (is_array, docs) = prepare_body(one, "loc", 10).expect("read");
        assert!(!is_array);
        let source = docs[0]
            .1
            .as_ref()
            .expect("storable")
            .workflow
            .source
            .clone();
        assert_eq!(source.map(|s| s.json.into_bytes()), Some(one.to_vec()));

        let many = b"[ {\"id\": \"a\", \"templates\": []} , {\"id\": \"b\", \"locationId\": \"x\", \"templates\": []} ]";
        let (is_array, docs) = prepare_body(many, "loc", 10).expect("read");
        assert!(is_array);
        let first = docs[0].1.as_ref().expect("storable");
        assert_eq!(
            first.workflow.source.as_ref().map(|s| s.json.as_str()),
            Some("{\"id\": \"a\", \"templates\": []}")
        );
        assert_eq!(docs[1].0.as_deref(), Some("b"));
        assert!(matches!(docs[1].1, Err(Refusal::OtherLocation)));
    }

    #[test]
    fn a_body_that_is_not_json_or_an_array_over_the_limit_is_refused_as_a_whole() {
        assert!(matches!(
            prepare_body(b"{nope", "loc", 10),
            Err(Refusal::Shape(ImportError::InvalidJson(_)))
        ));
        let many = format!("[{}]", vec!["{\"templates\": []}"; 101].join(","));
        assert!(matches!(
            prepare_body(many.as_bytes(), "loc", 10),
            Err(Refusal::Shape(ImportError::TooMany {
                count: 101,
                max: 100
            }))
        ));
    }
}

//! `POST /api/workflows/import`: GoHighLevel builder JSON (one document in any wrapping of
//! `../shared/ghl/FORMAT.md`, or an array of up to 100) stored under its GoHighLevel ids.
//!
//! One document is answered like a `PUT`: 201 created, 200 replaced or unchanged, or the
//! document's error status. An array is answered 200 item by item: `results[i]` holds each
//! document's own `status` and its `data` or `error`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::require_json;
use crate::domain::ghl::{ImportNote, Wrapping};
use crate::domain::overview::{AnalysisStatus, RowAnalysis};
use crate::http::auth::Tenant;
use crate::http::envelope::success_with_status;
use crate::http::error::ApiError;
use crate::repository::StoredWorkflow;
use crate::services::ghl_import::{ImportOutcome, ImportedItem, ItemResult};
use crate::state::AppState;

pub async fn import_workflows(
    tenant: Tenant,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&request)?;
    let answer = state.imports.import(&tenant.location_id, body).await?;
    if answer.is_array {
        let items = map_items(answer.items);
        return Ok(success_with_status(
            StatusCode::OK,
            ImportResultsResponse::new(&items),
        ));
    }
    let Some(item) = answer.items.into_iter().next() else {
        return Err(ApiError::internal(
            "an import of one document answered none",
        ));
    };
    let item = item.result?;
    let status = status_of(item.outcome);
    let mut response = success_with_status(status, ImportedWorkflowResponse::from(&item));
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", item.workflow.version)) {
        headers.insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED {
        if let Ok(location) = HeaderValue::from_str(&format!("/api/workflows/{}", item.workflow.id))
        {
            headers.insert(header::LOCATION, location);
        }
    }
    Ok(response)
}

fn status_of(outcome: ImportOutcome) -> StatusCode {
    match outcome {
        ImportOutcome::Created => StatusCode::CREATED,
        ImportOutcome::Updated | ImportOutcome::Unchanged => StatusCode::OK,
    }
}

/// A stored import: the workflow as `GET /api/workflows/{id}` answers it, what the import
/// did, and the analysis summary.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportedWorkflowResponse<'a> {
    #[serde(flatten)]
    workflow: &'a StoredWorkflow,
    import: ImportDetails<'a>,
    analysis: Option<&'a RowAnalysis>,
    analysis_status: AnalysisStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportDetails<'a> {
    outcome: ImportOutcome,
    wrapping: Wrapping,
    notes: &'a [ImportNote],
}

impl<'a> From<&'a ImportedItem> for ImportedWorkflowResponse<'a> {
    fn from(item: &'a ImportedItem) -> Self {
        Self {
            workflow: &item.workflow,
            import: ImportDetails {
                outcome: item.outcome,
                wrapping: item.wrapping,
                notes: &item.notes,
            },
            analysis: item.analysis.as_ref(),
            analysis_status: item.analysis_status,
        }
    }
}

/// An array's answer: each document's status and data or error, in order, and the counts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportResultsResponse<'a> {
    results: Vec<ImportResult<'a>>,
    count: usize,
    summary: ImportCounts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportResult<'a> {
    index: usize,
    /// The GoHighLevel id, when the document was read far enough to have one.
    id: Option<&'a str>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<ImportedWorkflowResponse<'a>>,
    /// `{code, message, details}` as in the error envelope.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

#[derive(Serialize, Default)]
struct ImportCounts {
    created: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
}

/// One document's result with its failure mapped as the route's own error would be.
type Mapped = (Option<String>, Result<ImportedItem, ApiError>);

fn map_items(items: Vec<ItemResult>) -> Vec<Mapped> {
    items
        .into_iter()
        .map(|item| (item.id, item.result.map_err(ApiError::from)))
        .collect()
}

impl<'a> ImportResultsResponse<'a> {
    fn new(items: &'a [Mapped]) -> Self {
        let mut summary = ImportCounts::default();
        let results: Vec<ImportResult<'a>> = items
            .iter()
            .enumerate()
            .map(|(index, (id, result))| {
                let id = id.as_deref();
                match result {
                    Ok(imported) => {
                        *match imported.outcome {
                            ImportOutcome::Created => &mut summary.created,
                            ImportOutcome::Updated => &mut summary.updated,
                            ImportOutcome::Unchanged => &mut summary.unchanged,
                        } += 1;
                        ImportResult {
                            index,
                            id,
                            status: status_of(imported.outcome).as_u16(),
                            data: Some(ImportedWorkflowResponse::from(imported)),
                            error: None,
                        }
                    }
                    Err(error) => {
                        summary.failed += 1;
                        ImportResult {
                            index,
                            id,
                            status: actix_web::ResponseError::status_code(error).as_u16(),
                            data: None,
                            error: Some(error.item_payload()),
                        }
                    }
                }
            })
            .collect();
        Self {
            count: results.len(),
            results,
            summary,
        }
    }
}

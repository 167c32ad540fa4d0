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
        let results = ImportResultsResponse::new(answer.items);
        return Ok(success_with_status(StatusCode::OK, results));
    }
    let Some(item) = answer.items.into_iter().next() else {
        return Err(ApiError::internal(
            "an import of one document answered none",
        ));
    };
    let item = ImportedWorkflowResponse::from(item.result?);
    let status = status_of(item.import.outcome);
    let (id, version) = (item.workflow.id.clone(), item.workflow.version);
    let mut response = success_with_status(status, item);
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED {
        if let Ok(location) = HeaderValue::from_str(&format!("/api/workflows/{id}")) {
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
/// did, and the analysis summary (the numbers `GET /api/workflows/{id}/analysis` answers).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportedWorkflowResponse {
    #[serde(flatten)]
    workflow: StoredWorkflow,
    import: ImportDetails,
    /// `null` while `analysisStatus` is `pending` or `tooComplex`.
    analysis: Option<RowAnalysis>,
    /// `pending`: stored, but its analysis could not be computed now (it is when next asked
    /// for); `tooComplex`: over the analysis budget.
    analysis_status: AnalysisStatus,
}

/// What the import did with one document.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportDetails {
    /// `unchanged`: this GoHighLevel version (or, without one, this very text) was stored
    /// already; nothing was written and the version is the stored one.
    outcome: ImportOutcome,
    wrapping: Wrapping,
    /// What the importer read around (a wrong type, a missing id, an inactive trigger…), by
    /// its path in the GoHighLevel JSON.
    notes: Vec<ImportNote>,
}

impl From<ImportedItem> for ImportedWorkflowResponse {
    fn from(item: ImportedItem) -> Self {
        Self {
            workflow: item.workflow,
            import: ImportDetails {
                outcome: item.outcome,
                wrapping: item.wrapping,
                notes: item.notes,
            },
            analysis: item.analysis,
            analysis_status: item.analysis_status,
        }
    }
}

/// An array's answer: each document's status and data or error, in order, and the counts.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResultsResponse {
    results: Vec<ImportResult>,
    count: usize,
    summary: ImportCounts,
}

/// One document of an array.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    index: usize,
    /// The GoHighLevel id, when the document was read far enough to have one.
    id: Option<String>,
    /// The status this document alone would have been answered with (201, 200, 403, 409,
    /// 422…).
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    data: Option<ImportedWorkflowResponse>,
    /// As `error` of the error envelope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = error_schema)]
    error: Option<serde_json::Value>,
}

fn error_schema() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("Error")
}

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct ImportCounts {
    created: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
}

impl ImportResultsResponse {
    fn new(items: Vec<ItemResult>) -> Self {
        let mut summary = ImportCounts::default();
        let results: Vec<ImportResult> = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item.result {
                Ok(imported) => {
                    *match imported.outcome {
                        ImportOutcome::Created => &mut summary.created,
                        ImportOutcome::Updated => &mut summary.updated,
                        ImportOutcome::Unchanged => &mut summary.unchanged,
                    } += 1;
                    ImportResult {
                        index,
                        id: item.id,
                        status: status_of(imported.outcome).as_u16(),
                        data: Some(imported.into()),
                        error: None,
                    }
                }
                Err(failure) => {
                    summary.failed += 1;
                    let error = ApiError::from(failure);
                    ImportResult {
                        index,
                        id: item.id,
                        status: actix_web::ResponseError::status_code(&error).as_u16(),
                        data: None,
                        error: Some(error.item_payload()),
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

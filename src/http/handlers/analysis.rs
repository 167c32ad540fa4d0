//! Analyses: of a stored workflow, of an ad-hoc document, of a whole location; and history.

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::require_json;
use crate::domain::analysis::{AnalysisReport, LocationReport, Upgrade};
use crate::domain::pagination::{Page, Pagination};
use crate::domain::plan::Plan;
use crate::domain::workflow::WorkflowDocument;
use crate::domain::workflow_shape::check_shape;
use crate::http::auth::Tenant;
use crate::http::envelope::{success, success_raw};
use crate::http::error::{from_location_analysis, ApiError, FieldError};
use crate::http::responses::add_cache_headers;
use crate::http::workflows::workflow_id;
use crate::repository::{HistoryEntry, ReadSource};
use crate::state::AppState;

/// Bodies up to this size (a `workflowId`, a small document) are parsed where they arrive;
/// larger documents on the analysis pool, so they cannot hold up cached reads.
const PARSE_ON_WORKER_UP_TO: usize = 16 * 1024;

/// Issues a free plan sees of a location-wide analysis.
const FREE_LOCATION_ISSUES: usize = 3;

pub async fn get_workflow_analysis(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = workflow_id(&path)?;
    state
        .rate_limiter
        .count_analysis(&tenant.location_id)
        .await?;
    stored_analysis_response(&state, &tenant, id).await
}

async fn stored_analysis_response(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let analysis = state
        .analysis
        .workflow_analysis(&tenant.location_id, id)
        .await?;
    let plan = state.plans.effective_plan(&tenant.location_id).await;
    if plan.features().full_analysis && analysis.location_findings.is_empty() {
        let mut response = success_raw(StatusCode::OK, &analysis.json);
        add_cache_headers(&mut response, analysis.source);
        return Ok(response);
    }
    let source = analysis.source;
    Ok(report_response(analysis.into_report()?, plan, source))
}

/// Each field may be left out, but not sent as `null` (the document's schema has no null
/// for them, and `{"workflowId": null, "workflow": {…}}` would otherwise pass as "exactly one").
/// Its schema is `openapi::schemas::AnalyzeRequest`: exactly one of the first two.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnalyzeRequest {
    #[serde(default, deserialize_with = "present")]
    workflow_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    workflow: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    location_id: Option<String>,
}

/// A field that is there: `null` is read as a `T` (and so refused unless `T` takes it).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// What a `POST /api/analyze` asks for, checked.
enum AnalyzeTarget {
    Stored(String),
    Document(Box<WorkflowDocument>, String),
}

/// `{workflowId}` analyzes a stored workflow; `{workflow}` a document that is not stored.
/// A large body (up to the body limit of workflow) is parsed, and an ad-hoc report written
/// out, on the analysis pool rather than on the HTTP workers that serve cached reads.
pub async fn analyze(
    tenant: Tenant,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&request)?;
    let max_steps = state.settings.max_workflow_steps;
    let (target, location_id) = if body.len() <= PARSE_ON_WORKER_UP_TO {
        parse_analyze_request(&body, max_steps)?
    } else {
        state
            .analysis
            .off_workers(&tenant.location_id, move || {
                parse_analyze_request(&body, max_steps)
            })
            .await??
    };
    tenant.check_named_location(location_id.as_deref())?;
    state
        .rate_limiter
        .count_analysis(&tenant.location_id)
        .await?;
    match target {
        AnalyzeTarget::Stored(id) => stored_analysis_response(&state, &tenant, &id).await,
        AnalyzeTarget::Document(document, id) => {
            let plan = state.plans.effective_plan(&tenant.location_id).await;
            let report = state
                .analysis
                .ad_hoc_report(&tenant.location_id, *document, id, plan)
                .await?;
            let mut response = success_raw(StatusCode::OK, &report);
            add_cache_headers(&mut response, ReadSource::Bypass);
            Ok(response)
        }
    }
}

fn parse_analyze_request(
    body: &[u8],
    max_steps: usize,
) -> Result<(AnalyzeTarget, Option<String>), ApiError> {
    let request: AnalyzeRequest =
        serde_json::from_slice(body).map_err(JsonPayloadError::Deserialize)?;
    let target = match (request.workflow_id, request.workflow) {
        (Some(id), None) => AnalyzeTarget::Stored(workflow_id(&id)?.to_owned()),
        (None, Some(document)) => {
            let (document, id) = ad_hoc_document(&document, max_steps)?;
            AnalyzeTarget::Document(Box::new(document), id)
        }
        _ => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "workflowId",
                "give exactly one of workflowId (a stored workflow) or workflow (a document)",
            )]))
        }
    };
    Ok((target, request.location_id))
}

/// An ad-hoc document: structurally usable and within the document size limits
/// ([`crate::domain::limits`], the same as for storing one). Duplicate ids and
/// other defects are what the analysis reports, so they are not refused here.
fn ad_hoc_document(
    document: &Value,
    max_steps: usize,
) -> Result<(WorkflowDocument, String), ApiError> {
    let in_workflow = |errors: Vec<FieldError>| {
        ApiError::Validation(
            errors
                .into_iter()
                .map(|e| FieldError::new(format!("workflow.{}", e.field), e.message))
                .collect(),
        )
    };
    let wrong_types = check_shape(document);
    if !wrong_types.is_empty() {
        return Err(in_workflow(wrong_types));
    }
    let parsed = WorkflowDocument::from_json(document).map_err(in_workflow)?;
    let over_limits = crate::domain::limits::check_document_limits(&parsed, max_steps);
    if !over_limits.is_empty() {
        return Err(in_workflow(over_limits));
    }
    let id = document
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("ad-hoc")
        .to_owned();
    Ok((parsed, id))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LocationAnalysis)]
pub struct LocationAnalysisResponse {
    location_id: String,
    #[serde(flatten)]
    report: LocationReport,
    /// Free plan only: how many findings are hidden (the first 3 are shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    upgrade: Option<Upgrade>,
}

pub async fn get_location_analysis(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .rate_limiter
        .count_analysis(&tenant.location_id)
        .await?;
    let (mut report, source) = state
        .analysis
        .location_report(&tenant.location_id)
        .await
        .map_err(from_location_analysis)?;
    let plan = state.plans.effective_plan(&tenant.location_id).await;
    let upgrade = (!plan.features().full_analysis).then(|| {
        let hidden = report.issues.len().saturating_sub(FREE_LOCATION_ISSUES);
        report.issues.truncate(FREE_LOCATION_ISSUES);
        Upgrade {
            hidden,
            message: format!("{hidden} more cross-workflow findings are hidden on the free plan; upgrade to see them all."),
        }
    });
    let mut response = success(LocationAnalysisResponse {
        location_id: tenant.location_id,
        report,
        upgrade,
    });
    add_cache_headers(&mut response, source);
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    page: Option<u64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = History)]
pub struct HistoryResponse {
    /// Newest first.
    analyses: Vec<HistoryEntry>,
    count: usize,
    pagination: Pagination,
    /// The plan's history retention.
    retention_days: u32,
}

pub async fn get_history(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    let page = Page::parse(query.page, query.limit, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let plan = state.plans.effective_plan(&tenant.location_id).await;
    let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
    let history = state
        .analysis
        .history(&tenant.location_id, plan, offset, i64::from(page.limit))
        .await?;
    let total = usize::try_from(history.total).unwrap_or(0);
    Ok(success(HistoryResponse {
        count: history.entries.len(),
        analyses: history.entries,
        pagination: page.describe(total),
        retention_days: plan.limits().history_retention_days,
    }))
}

/// The report as the plan may see it (free: first 3 issues, 2 recommendations, `upgrade`).
fn report_response(report: AnalysisReport, plan: Plan, source: ReadSource) -> HttpResponse {
    let mut response = success(report.for_plan(plan));
    add_cache_headers(&mut response, source);
    response
}

//! `/api/workflows`: a location's workflows.

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::ids::is_valid_workflow_id;
use crate::domain::overview::{RowFilter, Sort};
use crate::domain::pagination::Page;
use crate::domain::workflow::{validate_for_storage, WorkflowDocument};
use crate::domain::workflow_shape::check_shape;
use crate::http::auth::Tenant;
use crate::http::envelope::{success_raw, success_with_status};
use crate::http::error::{ApiError, FieldError};
use crate::http::responses::{add_cache_headers, fetched_response, original_response};
use crate::repository::{IfMatch, NewWorkflow, PutOutcome};
use crate::services::overview::OverviewQuery;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(schema_with = crate::domain::schema::workflow_status)]
    status: Option<String>,
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    page: Option<u64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u64>,
    // The descriptions of `include`, `sort` and `grade` are in their schemas (`schema_with`
    // drops doc comments).
    #[param(schema_with = include_schema)]
    include: Option<String>,
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
    #[param(schema_with = crate::domain::schema::grade_list)]
    grade: Option<String>,
    /// Only workflows with at least one finding at this severity or a more severe one; rows
    /// without a score are left out.
    #[param(value_type = Option<crate::domain::analysis::Severity>, inline)]
    min_severity: Option<String>,
}

fn include_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::domain::schema::string_enum(["analysis"]);
    schema.description = Some("analysis: each row carries analysis and analysisStatus".into());
    schema
}

fn sort_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::domain::schema::sort();
    schema.description = Some(
        "healthScore (worst first) | -healthScore (best first) | name | -updatedAt; equal \
         keys by id; rows without a score last in both health orders"
            .into(),
    );
    schema
}

struct ListRequest {
    status: Option<String>,
    page: Page,
    /// Set when the page needs the scores (to show, sort or filter by them): it is then cut
    /// from the location's overview rather than the plain list.
    overview: Option<OverviewQuery>,
}

impl TryFrom<ListQuery> for ListRequest {
    type Error = ApiError;

    fn try_from(query: ListQuery) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        if let Some(status) = &query.status {
            if status != "draft" && status != "published" {
                errors.push(FieldError::new("status", "must be draft or published"));
            }
        }
        let page = Page::parse(query.page, query.limit, &mut errors);
        let include_analysis = match query.include.as_deref() {
            None => false,
            Some("analysis") => true,
            Some(_) => {
                errors.push(FieldError::new("include", "must be analysis"));
                false
            }
        };
        let sort = match query.sort.as_deref() {
            None => None,
            Some(text) => Sort::parse(text).or_else(|| {
                errors.push(FieldError::new(
                    "sort",
                    "must be healthScore, -healthScore, name or -updatedAt",
                ));
                None
            }),
        };
        let grades = query
            .grade
            .as_deref()
            .map(|text| RowFilter::parse_grades(text, &mut errors))
            .unwrap_or_default();
        let min_severity = query.min_severity.as_deref().and_then(|text| {
            RowFilter::parse_severity(text).or_else(|| {
                errors.push(FieldError::new(
                    "minSeverity",
                    "must be critical, high, medium or low",
                ));
                None
            })
        });
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        // The plain list is already in the default order (-updatedAt, then id).
        let needs_overview = include_analysis
            || sort.is_some_and(|sort| sort != Sort::UpdatedAtDesc)
            || !grades.is_empty()
            || min_severity.is_some();
        Ok(Self {
            overview: needs_overview.then(|| OverviewQuery {
                filter: RowFilter {
                    status: query.status.clone(),
                    grades,
                    min_severity,
                },
                sort: sort.unwrap_or_default(),
                include_analysis,
            }),
            status: query.status,
            page,
        })
    }
}

pub async fn list_workflows(
    tenant: Tenant,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = ListRequest::try_from(query.into_inner())?;
    if let Some(overview) = &request.overview {
        let (data, source) = state
            .overview
            .page(&tenant.location_id, overview, request.page)
            .await?;
        let mut response = success_raw(StatusCode::OK, &data);
        add_cache_headers(&mut response, source);
        return Ok(response);
    }
    let list = state.workflows.list(&tenant.location_id).await?;
    // The summaries stay as their cached JSON (a location can have thousands): the page is
    // cut from the list, which is split into its summaries once per cached copy.
    let data = state
        .summary_pages
        .page(
            &tenant.location_id,
            &list,
            request.status.as_deref(),
            request.page,
        )
        .map_err(ApiError::internal)?;
    let mut response = success_raw(StatusCode::OK, &data);
    add_cache_headers(&mut response, list.source);
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    // The description is in the schema (`schema_with` drops doc comments).
    #[param(schema_with = format_schema)]
    format: Option<String>,
}

fn format_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::domain::schema::string_enum(["native", "ghl"]);
    schema.description = Some(
        "native (the default): the stored workflow in the envelope; ghl: an imported \
         workflow's original GoHighLevel JSON, byte for byte, outside the envelope (404 for a \
         workflow that was not imported); any other value is 422"
            .into(),
    );
    schema
}

/// How `GET /api/workflows/{id}` answers.
enum Representation {
    /// The stored workflow with its definition, in the envelope.
    Stored,
    /// An imported workflow's original GoHighLevel JSON, byte for byte.
    Ghl,
}

impl TryFrom<&GetQuery> for Representation {
    type Error = ApiError;

    fn try_from(query: &GetQuery) -> Result<Self, ApiError> {
        match query.format.as_deref() {
            None | Some("native") => Ok(Self::Stored),
            Some("ghl") => Ok(Self::Ghl),
            Some(_) => Err(ApiError::Validation(vec![FieldError::new(
                "format",
                "must be ghl (the GoHighLevel JSON a workflow was imported from) or native",
            )])),
        }
    }
}

pub async fn get_workflow(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<GetQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = workflow_id(&path)?;
    match Representation::try_from(&*query)? {
        Representation::Stored => {
            let fetched = state.workflows.get(&tenant.location_id, id).await?;
            Ok(fetched_response(&fetched))
        }
        Representation::Ghl => {
            let (original, source) = state.workflows.original(&tenant.location_id, id).await?;
            let original = original.ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Workflow {id} was not imported from GoHighLevel: it has no GoHighLevel JSON (import it with POST /api/workflows/import)"
                ))
            })?;
            Ok(original_response(original, source))
        }
    }
}

pub async fn put_workflow(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = valid_new_workflow_id(&path)?;
    let body = body.into_inner();
    tenant.check_named_location(body.get("locationId").and_then(Value::as_str))?;
    let if_match = if_match_version(request.headers())?;
    let workflow = new_workflow(body, state.settings.max_workflow_steps)?;
    let outcome = state
        .workflows
        .put(&tenant.location_id, id, &workflow, if_match)
        .await?;
    let (status, stored) = match outcome {
        PutOutcome::Created(stored) => (StatusCode::CREATED, stored),
        PutOutcome::Replaced(stored) => (StatusCode::OK, stored),
    };
    let mut response = success_with_status(status, &stored);
    if let Ok(etag) = header::HeaderValue::from_str(&format!("\"{}\"", stored.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

pub async fn delete_workflow(
    tenant: Tenant,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = workflow_id(&path)?;
    state.workflows.delete(&tenant.location_id, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Fields the server owns: never taken from a body (no mass assignment).
const SERVER_OWNED_FIELDS: &[&str] = &["id", "locationId", "version", "createdAt", "updatedAt"];

fn new_workflow(mut body: Value, max_steps: usize) -> Result<NewWorkflow, ApiError> {
    if let Some(object) = body.as_object_mut() {
        for field in SERVER_OWNED_FIELDS {
            object.remove(*field);
        }
    }
    let wrong_types = check_shape(&body);
    if !wrong_types.is_empty() {
        return Err(ApiError::Validation(wrong_types));
    }
    let document = WorkflowDocument::from_json(&body).map_err(ApiError::Validation)?;
    validate_for_storage(&document, max_steps).map_err(ApiError::Validation)?;
    Ok(NewWorkflow {
        name: document.name.clone(),
        status: if document.status.is_published() {
            "published"
        } else {
            "draft"
        },
        definition: document.to_json(),
        step_count: i32::try_from(document.steps.len()).unwrap_or(i32::MAX),
        trigger_count: i32::try_from(document.triggers.len()).unwrap_or(i32::MAX),
        source: None,
    })
}

/// An id that cannot exist answers exactly like a missing one.
pub(crate) fn workflow_id(raw: &str) -> Result<&str, ApiError> {
    if is_valid_workflow_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::NotFound("Workflow not found".to_owned()))
    }
}

fn valid_new_workflow_id(raw: &str) -> Result<&str, ApiError> {
    if is_valid_workflow_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::Validation(vec![FieldError::new(
            "id",
            "must be 1-128 letters, digits, '_', '-', '.' or ':'",
        )]))
    }
}

/// Digits of a version in `If-Match`: more than any version reaches (a bigint counting one
/// write at a time), and few enough that every such number parses.
const MAX_VERSION_DIGITS: usize = 18;

/// What `If-Match` may be: exactly what [`if_match_version`] accepts (the operation's
/// parameter schema in the OpenAPI document).
pub(crate) const IF_MATCH_PATTERN: &str = r#"^(\*|[0-9]{1,18}|"[0-9]{1,18}"|W/"[0-9]{1,18}")$"#;

/// `If-Match: *` (any current version), `If-Match: 3`, `"3"` or `W/"3"` (1-18 digits);
/// anything else is a 400 ([`IF_MATCH_PATTERN`]).
fn if_match_version(headers: &HeaderMap) -> Result<Option<IfMatch>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(Some(IfMatch::Any));
    }
    fn quoted(text: &str) -> Option<&str> {
        text.strip_prefix('"')?.strip_suffix('"')
    }
    let digits = match text.strip_prefix("W/") {
        // A weak tag is always quoted (RFC 9110 §8.8.3).
        Some(weak) => quoted(weak),
        None if text.starts_with('"') => quoted(text),
        None => Some(text),
    };
    // Digits only: `+3` or ` 3` are not versions the server ever sends in `ETag`.
    if let Some(digits) = digits {
        if (1..=MAX_VERSION_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            if let Ok(version) = digits.parse::<i64>() {
                return Ok(Some(IfMatch::Version(version)));
            }
        }
    }
    Err(ApiError::BadRequest(
        "If-Match must be * or a workflow version, e.g. If-Match: 3".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    #[test]
    fn if_match_accepts_exactly_its_pattern() {
        let schema = serde_json::json!({"type": "string", "pattern": IF_MATCH_PATTERN});
        for value in [
            "*",
            "3",
            "0003",
            "\"3\"",
            "W/\"3\"",
            "999999999999999999",
            "\"999999999999999999\"",
            "1234567890123456789",
            "",
            "W/3",
            "w/\"3\"",
            "\"3",
            "3\"",
            "+3",
            "-3",
            "3.0",
            "W/\"\"",
            "\"\"",
            "**",
            "\"*\"",
            "3, 4",
            "\"3\", \"4\"",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_MATCH, HeaderValue::from_static(value));
            let accepted = if_match_version(&headers).is_ok();
            let valid = jsonschema::is_valid(&schema, &serde_json::json!(value));
            assert_eq!(accepted, valid, "{value:?}");
        }
    }
}

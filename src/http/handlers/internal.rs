//! Operator routes, guarded by `INTERNAL_API_TOKEN`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::api_key::{api_key_hash, generate_api_key};
use crate::domain::ids::is_valid_location_id;
use crate::domain::stored_text::{check_text, LOCATION_NAME_CHARS};
use crate::http::auth::OperatorAccess;
use crate::http::envelope::{success, success_with_status};
use crate::http::error::{ApiError, FieldError};
use crate::repository::{within, CreatedLocation};
use crate::state::AppState;

/// Both fields are `Option`s so that a missing one is a 422 naming it (like a bad one)
/// rather than serde's 400; the schema says what is enforced: both are required.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "A new location (tenant); both fields are required (422 naming them)")]
pub struct CreateLocationRequest {
    /// The GoHighLevel location id.
    #[schema(required = true, schema_with = location_id_schema)]
    id: Option<String>,
    // The description is in the schema (`schema_with` drops doc comments).
    #[schema(required = true, schema_with = location_name_schema)]
    name: Option<String>,
}

/// Trimmed first, so only what is left must be 1-200 characters: the pattern says so, and
/// no `maxLength` (surrounding white space may make the text longer).
fn location_name_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(crate::domain::schema::trimmed_text_pattern(
            *LOCATION_NAME_CHARS.end(),
        )))
        .description(Some(
            "Trimmed of white space, then 1-200 characters without a NUL character",
        ))
        .build()
}

fn location_id_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(crate::domain::ids::LOCATION_ID_PATTERN))
        .build()
}

/// A request that passed validation.
struct NewLocation {
    id: String,
    name: String,
}

impl TryFrom<CreateLocationRequest> for NewLocation {
    type Error = ApiError;

    fn try_from(request: CreateLocationRequest) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let id = request.id.unwrap_or_default();
        if !is_valid_location_id(&id) {
            errors.push(FieldError::new(
                "id",
                "must be 1-64 letters, digits, '_' or '-' (a GoHighLevel location id)",
            ));
        }
        let name = request.name.unwrap_or_default().trim().to_owned();
        errors.extend(check_text("name", &name, LOCATION_NAME_CHARS));
        if errors.is_empty() {
            Ok(Self { id, name })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

pub async fn create_location(
    _operator: OperatorAccess,
    state: web::Data<AppState>,
    body: web::Json<CreateLocationRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewLocation::try_from(body.into_inner())?;
    let api_key = generate_api_key();
    let location = within(
        state.settings.request_timeout,
        state
            .locations
            .create_with_key(&new.id, &new.name, &api_key_hash(&api_key)),
    )
    .await?;
    Ok(success_with_status(
        StatusCode::CREATED,
        CreatedLocation { location, api_key },
    ))
}

/// `GET /internal/cache-stats`: both tiers' counters, breaker state and hit ratio.
pub async fn cache_stats(_operator: OperatorAccess, state: web::Data<AppState>) -> HttpResponse {
    success(state.cache.stats())
}

/// `GET /internal/cache-stats/history`: this instance's last hour at 10 s resolution, and
/// the current point since the last sample.
pub async fn cache_stats_history(
    _operator: OperatorAccess,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.cache_reading();
    success(state.cache_history.history(state.cache.instance_id(), &now))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flushed {
    pub flushed: bool,
    #[schema(minimum = 0)]
    pub redis_keys_removed: u64,
}

/// `POST /internal/cache/flush`: drops this service's namespace in both tiers (other keys in
/// the same Redis are untouched).
pub async fn flush_cache(
    _operator: OperatorAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let removed = state
        .cache
        .flush()
        .await
        .map_err(|error| ApiError::unavailable("Redis did not complete the flush", error))?;
    Ok(success(Flushed {
        flushed: true,
        redis_keys_removed: removed,
    }))
}

//! `/api/summary`: the location's totals, cut from the same cached overview as the scored list.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::http::auth::Tenant;
use crate::http::envelope::success_raw;
use crate::http::error::ApiError;
use crate::http::responses::add_cache_headers;
use crate::state::AppState;

/// Counts and scores are shown on every plan: the free plan's limit is on issue details.
pub async fn get_summary(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (data, source) = state.overview.summary(&tenant.location_id).await?;
    let mut response = success_raw(StatusCode::OK, &data);
    add_cache_headers(&mut response, source);
    Ok(response)
}

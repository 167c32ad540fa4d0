use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::auth::check_operator_token;
use crate::http::error::ApiError;
use crate::state::AppState;

/// Prometheus text; guarded by `METRICS_TOKEN`, else `INTERNAL_API_TOKEN`.
pub async fn metrics(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings;
    let token = settings
        .metrics_token
        .as_deref()
        .or(settings.internal_api_token.as_deref());
    check_operator_token(&request, token, settings)?;
    state.metrics.observe_db_pool(&state.db);
    state.metrics.observe_replica(&state.cache.replication());
    let body = state.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}

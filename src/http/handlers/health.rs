use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::health::{self, Status};
use crate::http::auth::check_operator_token;
use crate::state::AppState;

/// Liveness with identity.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(health::identity(&state, Status::Healthy))
}

/// Public: node addresses only for a caller with operator access (as for `/internal/*`).
pub async fn health_detailed(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let operator = check_operator_token(
        &request,
        state.settings.internal_api_token.as_deref(),
        &state.settings,
    )
    .is_ok();
    let report = health::detailed(&state, operator).await;
    let status = if report.identity.status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status).json(report)
}

/// `GET /ready`: 200 `{ready: true}`, or 503 `{ready: false}` while Postgres does not answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
}

/// `GET /live`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    pub alive: bool,
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if health::ready(&state).await {
        HttpResponse::Ok().json(Readiness { ready: true })
    } else {
        HttpResponse::ServiceUnavailable().json(Readiness { ready: false })
    }
}

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { alive: true })
}

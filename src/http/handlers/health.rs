use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::health::{self, Status};
use crate::state::AppState;

/// Liveness with identity.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(health::identity(&state, Status::Healthy))
}

pub async fn health_detailed(state: web::Data<AppState>) -> HttpResponse {
    let report = health::detailed(&state).await;
    let status = if report.identity.status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status).json(report)
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if health::database_answers(&state.db).await {
        HttpResponse::Ok().json(json!({ "ready": true }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "ready": false }))
    }
}

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "alive": true }))
}

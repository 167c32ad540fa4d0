//! The JSON envelope of every `/api/*`, `/internal/*` and `/webhooks/*` response.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::request_id::current_request_id;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub timestamp: String,
    pub request_id: String,
}

impl Meta {
    pub fn now() -> Self {
        Self {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id: current_request_id(),
        }
    }
}

#[derive(Debug, Serialize)]
struct SuccessBody<T: Serialize> {
    success: bool,
    data: T,
    meta: Meta,
}

#[derive(Debug, Serialize)]
pub struct ErrorPayload<'a> {
    pub code: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    success: bool,
    error: ErrorPayload<'a>,
    meta: Meta,
}

/// `{success: true, data, meta}` with the given status.
pub fn success_with_status<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(SuccessBody {
        success: true,
        data,
        meta: Meta::now(),
    })
}

pub fn success<T: Serialize>(data: T) -> HttpResponse {
    success_with_status(StatusCode::OK, data)
}

pub fn error_body(error: ErrorPayload<'_>) -> serde_json::Value {
    serde_json::json!(ErrorBody {
        success: false,
        error,
        meta: Meta::now(),
    })
}

/// `{success: true, data: <json>, meta}` around already-serialized JSON (a cache hit is written
/// as it is stored, without parsing it again).
pub fn success_raw(status: StatusCode, data_json: &[u8]) -> HttpResponse {
    let meta = serde_json::to_vec(&Meta::now()).unwrap_or_else(|_| b"{}".to_vec());
    let mut body = Vec::with_capacity(data_json.len() + meta.len() + 40);
    body.extend_from_slice(br#"{"success":true,"data":"#);
    body.extend_from_slice(data_json);
    body.extend_from_slice(br#","meta":"#);
    body.extend_from_slice(&meta);
    body.push(b'}');
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

//! The JSON envelope of every `/api/*`, `/internal/*` and `/webhooks/*` response.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::request_id::{current_request_id, with_current_request_id};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub timestamp: String,
    pub request_id: String,
}

impl Meta {
    pub fn now() -> Self {
        Self {
            timestamp: now_timestamp(),
            request_id: current_request_id(),
        }
    }
}

/// [`Meta`] as it is written into an already-serialized body: borrowed, so a cache hit copies
/// neither the request id nor an intermediate buffer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaRef<'a> {
    timestamp: &'a str,
    request_id: &'a str,
}

fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Appends this request's `meta` object to `body`.
fn write_meta(body: &mut Vec<u8>) {
    let timestamp = now_timestamp();
    with_current_request_id(|request_id| {
        let meta = MetaRef {
            timestamp: &timestamp,
            request_id,
        };
        // Two strings into a Vec: serializing cannot fail.
        let _ = serde_json::to_writer(&mut *body, &meta);
    });
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
    // The meta object is about 90 bytes (a 24-byte timestamp, a request id of at most 128).
    let mut body = Vec::with_capacity(data_json.len() + 200);
    body.extend_from_slice(br#"{"success":true,"data":"#);
    body.extend_from_slice(data_json);
    body.extend_from_slice(br#","meta":"#);
    write_meta(&mut body);
    body.push(b'}');
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_raw_body_is_the_envelope_around_the_stored_json() {
        let response = success_raw(StatusCode::OK, br#"{"id":"wf-1"}"#);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();

        assert_eq!(parsed["success"], true);
        assert_eq!(parsed["data"]["id"], "wf-1");
        let meta = parsed["meta"].as_object().unwrap();
        assert_eq!(meta.len(), 2);
        assert!(chrono::DateTime::parse_from_rfc3339(meta["timestamp"].as_str().unwrap()).is_ok());
        assert!(uuid::Uuid::parse_str(meta["requestId"].as_str().unwrap()).is_ok());
    }
}

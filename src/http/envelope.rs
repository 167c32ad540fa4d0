//! The JSON envelope of every `/api/*`, `/internal/*` and `/webhooks/*` response.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::http::request_id::{current_request_id, with_current_request_id};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// RFC 3339 in UTC with milliseconds.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// As `X-Request-ID`: the client's when it sent one, else a UUID.
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

fn now_timestamp() -> String {
    let mut timestamp = Vec::with_capacity(TIMESTAMP_LEN);
    write_timestamp(&mut timestamp, chrono::Utc::now());
    String::from_utf8(timestamp).unwrap_or_default()
}

/// `2026-11-29T11:59:30.123Z`: RFC 3339 in UTC with milliseconds.
const TIMESTAMP_LEN: usize = 24;

thread_local! {
    /// The formatted second of the last timestamp this thread wrote, with that second. Every
    /// response carries a timestamp and a busy worker writes many per second: only the
    /// milliseconds are formatted anew.
    static FORMATTED_SECOND: std::cell::RefCell<(i64, String)> =
        const { std::cell::RefCell::new((i64::MIN, String::new())) };
}

fn write_timestamp(out: &mut Vec<u8>, now: chrono::DateTime<chrono::Utc>) {
    let second = now.timestamp();
    FORMATTED_SECOND.with_borrow_mut(|(cached_second, prefix)| {
        if *cached_second != second {
            // `…T11:59:30.` without the milliseconds and the zone.
            let mut formatted = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            formatted.pop();
            formatted.push('.');
            *prefix = formatted;
            *cached_second = second;
        }
        out.extend_from_slice(prefix.as_bytes());
    });
    let millis = now.timestamp_subsec_millis().min(999);
    out.extend_from_slice(&[
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

/// Appends this request's `meta` object to `body`, as [`Meta`] serializes.
fn write_meta(body: &mut Vec<u8>) {
    body.extend_from_slice(br#"{"timestamp":""#);
    write_timestamp(body, chrono::Utc::now());
    body.extend_from_slice(br#"","requestId":"#);
    with_current_request_id(|request_id| write_json_string(body, request_id));
    body.push(b'}');
}

/// `text` as a JSON string. Request ids are plain (a UUID, or a client's id of letters,
/// digits and `-_.:`) and are copied as they are; anything else goes through serde_json.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    let plain = text
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f);
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

#[derive(Debug, Serialize)]
struct SuccessBody<T: Serialize> {
    success: bool,
    data: T,
    meta: Meta,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorPayload<'a> {
    #[schema(schema_with = error_code_schema)]
    pub code: &'a str,
    pub message: &'a str,
    /// `VALIDATION_ERROR` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ErrorDetails, nullable = false)]
    pub details: Option<serde_json::Value>,
}

/// What `details` holds (`ApiError` writes it as JSON; this type describes it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorDetails {
    /// Every offending field.
    errors: Vec<crate::domain::workflow::FieldError>,
}

fn error_code_schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::string_enum(crate::http::error::ERROR_CODES)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ErrorEnvelope)]
pub(crate) struct ErrorBody<'a> {
    #[schema(schema_with = false_schema)]
    success: bool,
    error: ErrorPayload<'a>,
    meta: Meta,
}

fn false_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([false]))
        .build()
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

    #[test]
    fn timestamps_are_written_as_chrono_writes_them_in_and_across_seconds() {
        let base = chrono::DateTime::parse_from_rfc3339("2026-11-29T23:59:58.000Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        for offset_ms in [0, 5, 42, 999, 1000, 1001, 1999, 2000, 2345, 86_400_000] {
            let now = base + chrono::Duration::milliseconds(offset_ms);
            let mut written = Vec::new();
            write_timestamp(&mut written, now);

            let expected = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(String::from_utf8(written).unwrap(), expected);
            assert_eq!(expected.len(), TIMESTAMP_LEN);
        }
    }

    #[test]
    fn request_ids_are_written_as_json_strings_whatever_they_hold() {
        for text in [
            "3f6c1d2e-0000-4000-8000-000000000000",
            "a.b:c_d-e",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "café",
            "",
        ] {
            let mut written = Vec::new();
            write_json_string(&mut written, text);

            let parsed: String = serde_json::from_slice(&written).unwrap();
            assert_eq!(parsed, text);
        }
    }
}

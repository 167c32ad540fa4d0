//! `X-Request-ID` on every response, echoed when the client sent a usable one.
//!
//! The id is also made available to code running inside the request's task (through the
//! task-local of `telemetry`), because `ResponseError::error_response` has no access to the
//! request and the error envelope must carry the id in `meta.requestId`; and every log line
//! written for the request carries it as `req=<id>`, as its access-log line does.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;

use crate::telemetry::{in_request, with_request_id};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, or a fresh one outside a request.
pub fn current_request_id() -> String {
    with_current_request_id(str::to_owned)
}

/// [`current_request_id`] lent to `use_id` rather than copied.
pub fn with_current_request_id<R>(mut use_id: impl FnMut(&str) -> R) -> R {
    with_request_id(|id| match id {
        Some(id) => use_id(id),
        None => use_id(&new_request_id()),
    })
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Accepts a client id only when it is short and printable, so it cannot inject log lines.
fn usable_client_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    ok.then(|| text.to_owned())
}

pub async fn request_id_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(usable_client_id)
        .unwrap_or_else(new_request_id);
    // Handlers and extractors turn their errors into responses inside this scope, so the
    // envelope carries this request's id. (Holding a clone of the request here is not an
    // option: actix needs exclusive access to it while routing.)
    // Log lines written in this scope carry the id too (`telemetry::in_request`).
    in_request(id.clone(), async move {
        let mut response = next.call(req).await?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Ok(response)
    })
    .await
}

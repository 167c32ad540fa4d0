//! One file per resource; each handler is thin: extract, call a repository or service, answer.

pub mod analysis;
pub mod dashboard;
pub mod ghl_import;
pub mod health;
pub mod internal;
pub mod metrics;
pub mod openapi;
pub mod subscription;
pub mod summary;
pub mod webhooks;
pub mod workflows;

use actix_web::error::JsonPayloadError;
use actix_web::{mime, HttpMessage, HttpRequest};

use crate::http::error::ApiError;

/// A body read as bytes is JSON as actix's JSON extractor would want it: `application/json`
/// or a `+json` type, else 415.
pub(crate) fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    let is_json = matches!(
        request.mime_type(),
        Ok(Some(mime)) if mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)
    );
    if is_json {
        Ok(())
    } else {
        Err(JsonPayloadError::ContentType.into())
    }
}

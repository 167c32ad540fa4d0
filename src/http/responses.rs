//! Response helpers shared by the tenant-data handlers.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::envelope::success_raw;
use crate::repository::{Fetched, ReadSource};

/// A read served through the cache: the stored JSON in the envelope, with the cache headers.
pub fn fetched_response<T: Serialize + DeserializeOwned>(fetched: &Fetched<T>) -> HttpResponse {
    let mut response = success_raw(StatusCode::OK, &fetched.json);
    add_cache_headers(&mut response, fetched.source);
    response
}

/// An imported workflow's original GoHighLevel JSON as the body, byte for byte: the one
/// `/api` answer outside the envelope, so a client gets back exactly the file it imported.
pub fn original_response(original: bytes::Bytes, source: ReadSource) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::OK)
        .content_type("application/json")
        .body(original);
    add_cache_headers(&mut response, source);
    response
}

// Constants, so the names are checked once at compile time rather than on every response.
const CACHE_STATUS_HEADER: HeaderName = HeaderName::from_static("x-cache-status");
const CACHE_TIER_HEADER: HeaderName = HeaderName::from_static("x-cache-tier");

pub fn add_cache_headers(response: &mut HttpResponse, source: ReadSource) {
    let headers = response.headers_mut();
    headers.insert(
        CACHE_STATUS_HEADER,
        HeaderValue::from_static(source.status()),
    );
    if let Some(tier) = source.tier() {
        headers.insert(CACHE_TIER_HEADER, HeaderValue::from_static(tier));
    }
}

//! The rate limit as the web sees it: the `X-RateLimit-*` headers of the window the `Tenant`
//! extractor counted (left in the request's extensions), on every `/api` response, the 429
//! included. The counting itself is `services::rate_limiter`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;

use crate::services::rate_limiter::RateLimitInfo;

pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Adds `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until
/// the window resets) of the request's counted window to the response, errors included.
pub async fn rate_limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let info = response
        .request()
        .extensions()
        .get::<RateLimitInfo>()
        .copied();
    if let Some(info) = info {
        let headers = response.headers_mut();
        for (name, value) in [
            (LIMIT_HEADER, info.limit),
            (REMAINING_HEADER, info.remaining),
            (RESET_HEADER, info.reset_secs()),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }
    Ok(response)
}

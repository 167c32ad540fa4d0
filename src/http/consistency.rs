//! `X-Consistency-Token` (issue 21): every response to a request that wrote carries the
//! primary's position after its commit; a request that sends one back is answered with that
//! write or a later one, in any region (see `cache::region` and `repository::postgres::replica`).
//!
//! The token is opaque to clients (`v1-` and the position in hex): the frontend only echoes
//! the last one it received. A token that does not parse is a 400, so a client that mangles
//! it learns so instead of silently losing its read-your-writes guarantee.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};

use crate::cache::region;
use crate::http::error::ApiError;
use crate::state::AppState;

pub const CONSISTENCY_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-consistency-token");

const PREFIX: &str = "v1-";

/// What [`decode`] accepts (the header's schema in the OpenAPI document).
pub const TOKEN_PATTERN: &str = "^v1-[0-9A-Fa-f]{1,16}$";

/// The header value for a position.
pub fn encode(position: u64) -> String {
    format!("{PREFIX}{position:x}")
}

/// The position a header value names; `None` when it is not a token of ours.
pub fn decode(token: &str) -> Option<u64> {
    let hex = token.trim().strip_prefix(PREFIX)?;
    // Hex digits only (`from_str_radix` also takes a sign): exactly [`TOKEN_PATTERN`].
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub async fn consistency_middleware<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let required = match req.headers().get(CONSISTENCY_TOKEN_HEADER) {
        None => None,
        Some(value) => match value.to_str().ok().and_then(decode) {
            Some(position) => Some(position),
            None if crate::http::is_tenant_path(req.path()) => {
                req.extensions_mut().insert(ForeignToken);
                None
            }
            None => {
                // Answered here, inside the request id's scope, in the usual envelope.
                let refused = foreign_token().error_response();
                return Ok(req.into_response(refused).map_into_right_body());
            }
        },
    };
    // Outside a recording scope a write reads no position after its commit (CONSISTENCY_TOKENS
    // off: one round trip less per write, and no token).
    let issue = req
        .app_data::<web::Data<AppState>>()
        .is_none_or(|state| state.settings.region.consistency_tokens);
    let respond = async move {
        if !issue {
            return Ok(next.call(req).await?.map_into_left_body());
        }
        region::recording_writes(async move {
            let mut response = next.call(req).await?.map_into_left_body();
            if let Some(position) = region::written() {
                if let Ok(value) = HeaderValue::from_str(&encode(position)) {
                    response
                        .headers_mut()
                        .insert(CONSISTENCY_TOKEN_HEADER, value);
                }
            }
            Ok(response)
        })
        .await
    };
    match required {
        // Boxed: the whole request's future, moved by the wrapper, on the worker's stack.
        Some(position) => region::with_required(position, Box::pin(respond)).await,
        None => respond.await,
    }
}

/// Left in a tenant request's extensions when its token is not one of ours: the `Tenant`
/// extractor refuses it once the API key is checked, so a request without valid credentials
/// is 401 (or 403 for another location) whatever else is wrong with it, and a method the path
/// does not answer is 405 (no handler, no extractor).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForeignToken;

/// The 400 for a token the service did not issue.
pub(crate) fn foreign_token() -> ApiError {
    ApiError::BadRequest(
        "X-Consistency-Token is not a token this service issued: send back the value of a \
         write's X-Consistency-Token header unchanged"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_values_are_refused() {
        for position in [0, 1, 0x16_B374_D848, u64::MAX] {
            assert_eq!(decode(&encode(position)), Some(position));
        }
        for bad in [
            "",
            "v1-",
            "16/B374D848",
            "v2-10",
            "v1-xyz",
            "v1-10000000000000000",
            "v1-+1",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_pattern_is_what_decode_accepts() {
        let schema = serde_json::json!({"type": "string", "pattern": TOKEN_PATTERN});
        for token in [
            "v1-0",
            "v1-ABCdef",
            "v1-ffffffffffffffff",
            "v1-10000000000000000",
            "v1-",
            "v1-+1",
            "v1--1",
            "v1-g",
            "V1-1",
            "v2-1",
            "",
            &encode(u64::MAX),
        ] {
            let valid = jsonschema::is_valid(&schema, &serde_json::json!(token));
            assert_eq!(decode(token).is_some(), valid, "{token:?}");
        }
    }
}

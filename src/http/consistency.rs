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
use actix_web::{web, Error, ResponseError};

use crate::cache::region;
use crate::http::error::ApiError;
use crate::state::AppState;

pub const CONSISTENCY_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-consistency-token");

const PREFIX: &str = "v1-";

/// The header value for a position.
pub fn encode(position: u64) -> String {
    format!("{PREFIX}{position:x}")
}

/// The position a header value names; `None` when it is not a token of ours.
pub fn decode(token: &str) -> Option<u64> {
    let hex = token.trim().strip_prefix(PREFIX)?;
    if hex.is_empty() || hex.len() > 16 {
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
            None => {
                // Answered here, inside the request id's scope, in the usual envelope.
                let refused = ApiError::BadRequest(
                    "X-Consistency-Token is not a token this service issued: send back the \
                     value of a write's X-Consistency-Token header unchanged"
                        .to_owned(),
                )
                .error_response();
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
        Some(position) => region::with_required(position, respond).await,
        None => respond.await,
    }
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
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}

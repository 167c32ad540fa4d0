//! Bearer-token guard for operator routes (`/internal/*`, `/metrics`).

use actix_web::http::header;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::error::ApiError;

/// `Ok` when the request may use an operator route guarded by `expected`.
///
/// Without a configured token the routes are open in development (local tooling) and do not
/// exist in production, so a forgotten token never exposes them.
pub fn check_operator_token(
    request: &HttpRequest,
    expected: Option<&str>,
    settings: &Settings,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return if settings.is_production() {
            Err(ApiError::NotFound("Route not found".to_owned()))
        } else {
            Ok(())
        };
    };
    let presented = bearer_token(request)
        .ok_or_else(|| ApiError::Unauthorized("A bearer token is required".to_owned()))?;
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "The bearer token is not valid".to_owned(),
        ))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Extracting this proves the caller may use `/internal/*`. Put it before body extractors so
/// an unauthenticated caller learns nothing about the body's validity.
pub struct OperatorAccess;

impl actix_web::FromRequest for OperatorAccess {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let outcome = match request.app_data::<actix_web::web::Data<crate::state::AppState>>() {
            Some(state) => check_operator_token(
                request,
                state.settings.internal_api_token.as_deref(),
                &state.settings,
            )
            .map(|()| OperatorAccess),
            None => Err(ApiError::internal("application state is not registered")),
        };
        std::future::ready(outcome)
    }
}

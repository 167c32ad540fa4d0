//! Who is calling: a tenant's API key on `/api/*` ([`Tenant`], a bearer key names exactly one
//! location) or an operator's token on `/internal/*` and `/metrics` ([`OperatorAccess`]), both
//! read from `Authorization: Bearer` by [`bearer_token`].

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::domain::api_key::api_key_hash;
use crate::http::consistency::{foreign_token, ForeignToken};
use crate::http::error::ApiError;
use crate::state::AppState;

/// The location the caller's key belongs to. Extract it first in a handler, so nothing about
/// the request is revealed to an unauthenticated caller.
///
/// Extracting it also counts the request against the location's plan limit (after
/// authentication, so every caller gets its own plan): over the limit it is a 429, and the
/// counted window is left in the request's extensions for the `X-RateLimit-*` headers. The
/// tenant is remembered in the extensions too, so a second extraction neither authenticates
/// nor counts again.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub location_id: String,
}

impl Tenant {
    /// A `locationId` named in a body must be the key's own.
    pub fn check_named_location(&self, named: Option<&str>) -> Result<(), ApiError> {
        match named {
            Some(named) if named != self.location_id => Err(ApiError::Forbidden(
                "The API key does not belong to this locationId".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    /// [`Tenant::authenticate`], then what a handler may only refuse once the caller is known:
    /// an `X-Consistency-Token` the service did not issue.
    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = Tenant::authenticate(request);
        let request = request.clone();
        Box::pin(async move {
            let tenant = authenticated.await?;
            if request.extensions().get::<ForeignToken>().is_some() {
                return Err(foreign_token());
            }
            Ok(tenant)
        })
    }
}

impl Tenant {
    /// The caller's location, from its API key (remembered in the request's extensions).
    fn authenticate(request: &HttpRequest) -> LocalBoxFuture<'static, Result<Tenant, ApiError>> {
        if let Some(tenant) = request.extensions().get::<Tenant>().cloned() {
            return Box::pin(async move { Ok(tenant) });
        }
        let request = request.clone();
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let key_hash = bearer_token(&request).map(api_key_hash);
        let named_location = query_location_id(&request);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::internal("application state is not registered"))?;
            let key_hash = key_hash.ok_or_else(|| {
                ApiError::Unauthorized(
                    "An API key is required (Authorization: Bearer <key>)".to_owned(),
                )
            })?;
            let location_id = state
                .api_keys
                .find_location(&key_hash)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("The API key is not valid".to_owned()))?;
            let tenant = Tenant { location_id };
            tenant.check_named_location(named_location.as_deref())?;
            if let Some(limit) = state.rate_limiter.count_request(&tenant.location_id).await {
                request.extensions_mut().insert(limit);
                limit.enforce()?;
            }
            request.extensions_mut().insert(tenant.clone());
            Ok(tenant)
        })
    }
}

/// Middleware on the `/api` scope: a request that carries a body is authenticated (and
/// counted against its plan) before its handler runs. Actix polls a handler's extractors
/// together, so a body extractor would otherwise answer 400/413/415 to a caller whose key is
/// unknown, and read a body nobody may send. The handler's own `Tenant` then comes from the
/// request's extensions at no further cost. Requests without a body (the hot GETs) pass
/// straight through: their `Tenant` is the first extractor and nothing else reads input.
pub async fn authenticate_before_body<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if carries_body(request.headers()) {
        // Authentication only: the handler's own `Tenant` refuses the rest (a foreign token),
        // after routing has answered 405 to a method the path does not take.
        if let Err(error) = Tenant::authenticate(request.request()).await {
            let (request, _unread_body) = request.into_parts();
            return Ok(ServiceResponse::from_err(error, request).map_into_right_body());
        }
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// A body is announced by a non-zero `Content-Length` or any `Transfer-Encoding` (chunked).
fn carries_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

fn query_location_id(request: &HttpRequest) -> Option<String> {
    url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(name, _)| name == "locationId")
        .map(|(_, value)| value.into_owned())
}

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

impl FromRequest for OperatorAccess {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let outcome = match request.app_data::<web::Data<AppState>>() {
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

//! Every path of the service, in one table: [`configure`] registers exactly the endpoints of
//! [`endpoints`], [`route_table`] lists them, and `openapi.json` (served at `/openapi.json`)
//! documents them — a test keeps the document and the table equal.

pub mod auth;
pub mod consistency;
pub mod envelope;
pub mod error;
mod handlers;
pub mod rate_limit;
pub mod request_id;
mod responses;

use handlers::{
    analysis, dashboard, health, internal, metrics, openapi, subscription, summary, webhooks,
    workflows,
};

use actix_web::http::Method;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, FromRequest, Handler, HttpResponse, Resource, Responder, Route};

use crate::http::error::ApiError;
use crate::http::rate_limit::rate_limit_headers;
use crate::metrics::RoutePattern;

/// Paths under this prefix are tenant routes: API-key auth, rate limits, `no-store`.
const API_SCOPE: &str = "/api";

/// One method on one path and the handler that answers it.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    route: Route,
}

fn endpoint<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        route: web::method(method.clone()).to(handler),
        method,
        path,
    }
}

/// The table: every route the service answers.
fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/health", health::health),
        endpoint(M::GET, "/health/detailed", health::health_detailed),
        endpoint(M::GET, "/ready", health::ready),
        endpoint(M::GET, "/live", health::live),
        endpoint(M::GET, "/metrics", metrics::metrics),
        endpoint(M::GET, "/openapi.json", openapi::openapi_document),
        endpoint(M::POST, "/internal/locations", internal::create_location),
        endpoint(M::GET, "/internal/cache-stats", internal::cache_stats),
        endpoint(
            M::GET,
            "/internal/cache-stats/history",
            internal::cache_stats_history,
        ),
        endpoint(M::POST, "/internal/cache/flush", internal::flush_cache),
        endpoint(M::GET, "/internal/dashboard", dashboard::dashboard_page),
        endpoint(
            M::GET,
            "/internal/dashboard/{asset}",
            dashboard::dashboard_asset,
        ),
        endpoint(M::POST, "/webhooks/ghl", webhooks::receive_ghl_event),
        endpoint(M::GET, "/api/workflows", workflows::list_workflows),
        endpoint(M::GET, "/api/workflows/{id}", workflows::get_workflow),
        endpoint(M::PUT, "/api/workflows/{id}", workflows::put_workflow),
        endpoint(M::DELETE, "/api/workflows/{id}", workflows::delete_workflow),
        endpoint(
            M::GET,
            "/api/workflows/{id}/analysis",
            analysis::get_workflow_analysis,
        ),
        endpoint(M::POST, "/api/analyze", analysis::analyze),
        endpoint(
            M::GET,
            "/api/analysis/location",
            analysis::get_location_analysis,
        ),
        endpoint(M::GET, "/api/history", analysis::get_history),
        endpoint(M::GET, "/api/subscription", subscription::get_subscription),
        endpoint(M::GET, "/api/summary", summary::get_summary),
    ]
}

/// `(method, path)` of every route, in the order registered (paths in actix/OpenAPI form).
pub fn route_table() -> Vec<(Method, &'static str)> {
    endpoints()
        .into_iter()
        .map(|endpoint| (endpoint.method, endpoint.path))
        .collect()
}

pub fn configure(config: &mut web::ServiceConfig) {
    let mut root: Vec<(&'static str, Resource)> = Vec::new();
    let mut api: Vec<(&'static str, Resource)> = Vec::new();
    for endpoint in endpoints() {
        let (group, path) = match endpoint.path.strip_prefix(API_SCOPE) {
            Some(rest) if rest.starts_with('/') => (&mut api, rest),
            _ => (&mut root, endpoint.path),
        };
        match group.iter().position(|(existing, _)| *existing == path) {
            Some(at) => {
                let (_, resource) = group.remove(at);
                group.insert(at, (path, resource.route(endpoint.route)));
            }
            None => group.push((path, resource(path, endpoint.path).route(endpoint.route))),
        }
    }
    let mut scope = web::scope(API_SCOPE)
        // Innermost: a 401 from it still gets the headers of the layers below.
        .wrap(from_fn(crate::http::auth::authenticate_before_body))
        // Tenant data must never sit in a shared or browser cache.
        .wrap(DefaultHeaders::new().add(("Cache-Control", "private, no-store")))
        .wrap(from_fn(rate_limit_headers));
    for (_, resource) in api {
        scope = scope.service(resource);
    }
    // The tenant routes are registered first: they carry the traffic, and the router tries
    // services in order, so an `/api` request is not compared with every root path first.
    // Every `/api/…` path is in the scope, so the order changes no match.
    config.service(scope);
    for (_, resource) in root {
        config.service(resource);
    }
}

/// A resource whose other methods answer 405 (the app's 404 would otherwise apply), labelled
/// with its full pattern for the request metrics.
fn resource(path: &str, pattern: &'static str) -> Resource {
    web::resource(path)
        .app_data(RoutePattern(pattern))
        .default_service(web::to(HttpResponse::MethodNotAllowed))
}

/// Unknown routes answer 404 in the envelope.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Route not found".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_has_no_duplicates() {
        let table = route_table();
        for (n, entry) in table.iter().enumerate() {
            assert!(!table[..n].contains(entry), "{entry:?} listed twice");
        }
    }
}

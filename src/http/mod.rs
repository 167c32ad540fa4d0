//! Every path of the service, in one table: [`configure`] registers exactly the endpoints of
//! [`endpoints`], [`route_table`] lists them, and [`openapi_document`] documents them (each
//! entry names the function describing its operation; see [`openapi`]).

pub mod auth;
pub mod consistency;
pub mod envelope;
pub mod error;
mod handlers;
pub mod openapi;

pub use handlers::openapi::ServedDocument;
pub mod rate_limit;
pub mod request_id;
mod responses;

use handlers::{
    analysis, dashboard, ghl_import, health, internal, metrics, subscription, summary, webhooks,
    workflows,
};
use openapi::operations as doc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, FromRequest, Handler, HttpResponse, Resource, Responder, Route};

use crate::http::error::ApiError;
use crate::http::rate_limit::rate_limit_headers;
use crate::metrics::RoutePattern;

/// Paths under this prefix are tenant routes: API-key auth, rate limits, `no-store`.
const API_SCOPE: &str = "/api";

/// One method on one path, the handler that answers it and the function that documents it.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    route: Route,
    describe: fn() -> openapi::Op,
}

fn endpoint<F, Args>(
    method: Method,
    path: &'static str,
    handler: F,
    describe: fn() -> openapi::Op,
) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        route: web::method(method.clone()).to(handler),
        method,
        path,
        describe,
    }
}

/// The table: every route the service answers. One long function on purpose: a route is
/// one row, and one list read top to bottom is what `configure` and the OpenAPI document
/// both take; split by resource, the table would no longer show at a glance which paths
/// exist.
fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/health", health::health, doc::health),
        endpoint(
            M::GET,
            "/health/detailed",
            health::health_detailed,
            doc::health_detailed,
        ),
        endpoint(M::GET, "/ready", health::ready, doc::ready),
        endpoint(M::GET, "/live", health::live, doc::live),
        endpoint(M::GET, "/metrics", metrics::metrics, doc::metrics),
        endpoint(
            M::GET,
            "/openapi.json",
            handlers::openapi::openapi_document,
            doc::openapi,
        ),
        endpoint(
            M::POST,
            "/internal/locations",
            internal::create_location,
            doc::create_location,
        ),
        endpoint(
            M::GET,
            "/internal/cache-stats",
            internal::cache_stats,
            doc::cache_stats,
        ),
        endpoint(
            M::GET,
            "/internal/cache-stats/history",
            internal::cache_stats_history,
            doc::cache_stats_history,
        ),
        endpoint(
            M::POST,
            "/internal/cache/flush",
            internal::flush_cache,
            doc::flush_cache,
        ),
        endpoint(
            M::GET,
            "/internal/dashboard",
            dashboard::dashboard_page,
            doc::dashboard_page,
        ),
        endpoint(
            M::GET,
            "/internal/dashboard/{asset}",
            dashboard::dashboard_asset,
            doc::dashboard_asset,
        ),
        endpoint(
            M::POST,
            "/webhooks/ghl",
            webhooks::receive_ghl_event,
            doc::receive_ghl_event,
        ),
        endpoint(
            M::GET,
            "/api/workflows",
            workflows::list_workflows,
            doc::list_workflows,
        ),
        // Before `/api/workflows/{id}`, which matches its path too: as OpenAPI reads paths, the
        // fixed one wins (`import` is no workflow id: `domain::ids::RESERVED_WORKFLOW_IDS`).
        endpoint(
            M::POST,
            "/api/workflows/import",
            ghl_import::import_workflows,
            doc::import_workflows,
        ),
        endpoint(
            M::GET,
            "/api/workflows/{id}",
            workflows::get_workflow,
            doc::get_workflow,
        ),
        endpoint(
            M::PUT,
            "/api/workflows/{id}",
            workflows::put_workflow,
            doc::put_workflow,
        ),
        endpoint(
            M::DELETE,
            "/api/workflows/{id}",
            workflows::delete_workflow,
            doc::delete_workflow,
        ),
        endpoint(
            M::GET,
            "/api/workflows/{id}/analysis",
            analysis::get_workflow_analysis,
            doc::get_workflow_analysis,
        ),
        endpoint(M::POST, "/api/analyze", analysis::analyze, doc::analyze),
        endpoint(
            M::GET,
            "/api/analysis/location",
            analysis::get_location_analysis,
            doc::get_location_analysis,
        ),
        endpoint(
            M::GET,
            "/api/history",
            analysis::get_history,
            doc::get_history,
        ),
        endpoint(
            M::GET,
            "/api/subscription",
            subscription::get_subscription,
            doc::get_subscription,
        ),
        endpoint(
            M::GET,
            "/api/summary",
            summary::get_summary,
            doc::get_summary,
        ),
    ]
}

/// `(method, path)` of every route, in the order registered (paths in actix/OpenAPI form).
pub fn route_table() -> Vec<(Method, &'static str)> {
    endpoints()
        .into_iter()
        .map(|endpoint| (endpoint.method, endpoint.path))
        .collect()
}

/// The OpenAPI document of [`endpoints`] (see [`openapi`]).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::document_of(endpoints().into_iter().map(|endpoint| openapi::Route {
        method: endpoint.method,
        path: endpoint.path,
        describe: endpoint.describe,
    }))
}

/// Whether `path` is in the `/api` scope (API-key auth, rate limits, `no-store`).
pub(crate) fn is_tenant_path(path: &str) -> bool {
    path.strip_prefix(API_SCOPE)
        .is_some_and(|rest| rest.starts_with('/'))
}

pub fn configure(config: &mut web::ServiceConfig) {
    let mut root: Vec<Resource> = Vec::new();
    let mut api: Vec<Resource> = Vec::new();
    for (path, endpoints) in by_path(endpoints()) {
        let (group, scoped) = match path.strip_prefix(API_SCOPE) {
            Some(rest) if rest.starts_with('/') => (&mut api, rest),
            _ => (&mut root, path),
        };
        let allow = allow_header(&endpoints);
        let mut resource = resource(scoped, path, allow);
        for endpoint in endpoints {
            resource = resource.route(endpoint.route);
        }
        group.push(resource);
    }
    let mut scope = web::scope(API_SCOPE)
        // Innermost: a 401 from it still gets the headers of the layers below.
        .wrap(from_fn(crate::http::auth::authenticate_before_body))
        // Tenant data must never sit in a shared or browser cache.
        .wrap(DefaultHeaders::new().add(("Cache-Control", "private, no-store")))
        .wrap(from_fn(rate_limit_headers));
    for resource in api {
        scope = scope.service(resource);
    }
    // The tenant routes are registered first: they carry the traffic, and the router tries
    // services in order, so an `/api` request is not compared with every root path first.
    // Every `/api/…` path is in the scope, so the order changes no match.
    config.service(scope);
    for resource in root {
        config.service(resource);
    }
}

/// The endpoints grouped by path, paths in the order they are first listed.
fn by_path(endpoints: Vec<Endpoint>) -> Vec<(&'static str, Vec<Endpoint>)> {
    let mut groups: Vec<(&'static str, Vec<Endpoint>)> = Vec::new();
    for endpoint in endpoints {
        match groups.iter_mut().find(|(path, _)| *path == endpoint.path) {
            Some((_, group)) => group.push(endpoint),
            None => groups.push((endpoint.path, vec![endpoint])),
        }
    }
    groups
}

/// `GET, PUT, DELETE`: the methods of one path, for the `Allow` header of its 405 answers
/// (RFC 9110 §15.5.6 requires it), taken from the table so it cannot drift from the routes.
fn allow_header(endpoints: &[Endpoint]) -> HeaderValue {
    let methods: Vec<&str> = endpoints
        .iter()
        .map(|endpoint| endpoint.method.as_str())
        .collect();
    // Method names are tokens (RFC 9110 §9.1), always valid header text.
    HeaderValue::from_str(&methods.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

/// A resource whose other methods answer 405 with `Allow` (the app's 404 would otherwise
/// apply), labelled with its full pattern for the request metrics.
fn resource(path: &str, pattern: &'static str, allow: HeaderValue) -> Resource {
    web::resource(path)
        .app_data(RoutePattern(pattern))
        .default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, allow))
                    .finish()
            }
        }))
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

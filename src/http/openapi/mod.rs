//! The OpenAPI 3.1 document, generated from the route table and the types.
//!
//! - Paths and methods: the route table (`http::endpoints`), each entry naming the
//!   [`operations`] function that describes it, so the document lists exactly the routes the
//!   server registers. Routes under the `/api` scope get what the scope adds (API-key auth,
//!   `locationId`, rate-limit headers, 401/403/429/500/503).
//! - Schemas: derived with `utoipa::ToSchema` / `IntoParams` on the types serde reads and
//!   writes (domain, repository, cache, services and the handlers' own request and response
//!   types), so `required` follows the Rust types and constraints sit on the fields they
//!   constrain; [`schemas`] describes the few bodies that have no type of their shape.
//!
//! The server serves it at `/openapi.json` (built once at startup); `openapi.json` at the
//! repository root is the same text for frontends' code generators, rewritten by
//! `make openapi` and kept equal by `tests/api/openapi.rs`.

mod operation;
pub(crate) mod operations;
pub(crate) mod schemas;

use std::collections::BTreeMap;

use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::tag::Tag;
use utoipa::openapi::{Components, Info, InfoBuilder, OpenApi, OpenApiBuilder, RefOr};
use utoipa::ToSchema;

pub use operation::{Access, Failure, Op};

/// What every response carries, and the envelope (`info.description`).
const DESCRIPTION: &str = "Stores GoHighLevel workflows per location and finds what is wrong \
    in them. Every /api, /internal and /webhooks JSON response uses the envelope {success, \
    data | error, meta}; every response carries X-Request-ID. /api routes need a location API \
    key and are rate limited per plan (X-RateLimit-* headers; 429 RATE_LIMIT_EXCEEDED with \
    Retry-After). Unknown routes are 404 and wrong methods 405 in the same envelope.";

/// One entry of the route table, as the document sees it.
pub struct Route {
    pub method: actix_web::http::Method,
    pub path: &'static str,
    pub describe: fn() -> Op,
}

/// The document of `table`'s routes, in table order.
pub fn document_of(table: impl IntoIterator<Item = Route>) -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    for route in table {
        let mut op = (route.describe)();
        if super::is_tenant_path(route.path) {
            op = op.in_tenant_scope();
        }
        let (operation, named) = op.into_parts();
        schemas.extend(named);
        paths.add_path_operation(route.path, vec![http_method(&route.method)], operation);
    }
    // Named by schema functions only, which record no dependencies.
    schemas.extend(schemas::referenced_by_hand());
    schemas.extend(always_named());
    OpenApiBuilder::new()
        .info(info())
        .servers(Some([Server::new("/")]))
        .tags(Some(operations::TAGS.map(Tag::new)))
        .paths(paths)
        .components(Some(components(schemas)))
        .build()
}

/// The document as served and committed: pretty JSON ending in a newline.
pub fn to_text(document: &OpenApi) -> Result<String, serde_json::Error> {
    let mut text = document.to_pretty_json()?;
    text.push('\n');
    Ok(text)
}

fn info() -> Info {
    InfoBuilder::new()
        .title("GHL Workflow Debugger")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .build()
}

/// The envelope's parts, named by every operation's responses.
fn always_named() -> Vec<(String, RefOr<Schema>)> {
    use crate::http::envelope::{ErrorBody, Meta};
    let mut named = vec![
        (
            Meta::name().into_owned(),
            <Meta as utoipa::PartialSchema>::schema(),
        ),
        (
            ErrorBody::name().into_owned(),
            <ErrorBody as utoipa::PartialSchema>::schema(),
        ),
    ];
    ErrorBody::schemas(&mut named);
    named
}

fn components(schemas: BTreeMap<String, RefOr<Schema>>) -> Components {
    let bearer = |description: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(description.to_owned());
        SecurityScheme::Http(http)
    };
    let mut components = Components::new();
    components.schemas = schemas;
    components.security_schemes = BTreeMap::from([
        ("apiKey".to_owned(), bearer("A location's API key")),
        (
            "operatorToken".to_owned(),
            bearer(
                "INTERNAL_API_TOKEN (routes open in development and 404 in production when \
                 unset)",
            ),
        ),
        ("metricsToken".to_owned(), bearer("METRICS_TOKEN")),
    ]);
    components.responses = Failure::ALL
        .into_iter()
        .map(|failure| {
            let (_, name, _, _) = failure.describe();
            (name.to_owned(), failure.component().into())
        })
        .collect();
    components
}

fn http_method(method: &actix_web::http::Method) -> HttpMethod {
    use actix_web::http::Method as M;
    match *method {
        M::PUT => HttpMethod::Put,
        M::POST => HttpMethod::Post,
        M::DELETE => HttpMethod::Delete,
        M::PATCH => HttpMethod::Patch,
        M::HEAD => HttpMethod::Head,
        M::OPTIONS => HttpMethod::Options,
        M::TRACE => HttpMethod::Trace,
        // GET, and methods OpenAPI has no operation for (the table has none of them).
        _ => HttpMethod::Get,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every schema the route table's operations name, with the name it is filed under.
    fn named_schemas() -> Vec<(String, RefOr<Schema>)> {
        let mut named = Vec::new();
        for endpoint in crate::http::endpoints() {
            let (_, schemas) = (endpoint.describe)().in_tenant_scope().into_parts();
            named.extend(schemas);
        }
        named.extend(schemas::referenced_by_hand());
        named.extend(always_named());
        named
    }

    #[test]
    fn no_two_types_share_a_schema_name() {
        let mut seen: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
        for (name, schema) in named_schemas() {
            if let Some(earlier) = seen.get(&name) {
                assert!(
                    *earlier == schema,
                    "two different schemas are named {name}: rename one with #[schema(as = …)]"
                );
            }
            seen.insert(name, schema);
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = crate::http::openapi_document();
        let mut ids = Vec::new();
        for item in document.paths.paths.values() {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                ids.push(operation.operation_id.clone().expect("an operationId"));
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{ids:?}");
    }
}

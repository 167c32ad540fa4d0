//! [`Op`]: one operation of the document, built from the types it reads and answers.
//!
//! Each entry of the route table (`http::endpoints`) names a function returning its `Op`;
//! `openapi::document` puts them under the table's paths and methods and collects the
//! schemas they name. Constraints belong on the types (`#[schema(...)]`, `#[param(...)]`),
//! so an `Op` only says which types, statuses and headers an operation has.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{IntoParams, ToSchema};

/// Schemas an operation names, by component name.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// The error answers, each a response component with the envelope's `code` in its example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Validation,
    RateLimited,
    Internal,
    Unavailable,
}

impl Failure {
    pub const ALL: [Failure; 12] = [
        Failure::BadRequest,
        Failure::Unauthorized,
        Failure::Forbidden,
        Failure::NotFound,
        Failure::Conflict,
        Failure::PreconditionFailed,
        Failure::PayloadTooLarge,
        Failure::UnsupportedMediaType,
        Failure::Validation,
        Failure::RateLimited,
        Failure::Internal,
        Failure::Unavailable,
    ];

    /// `(status, component name, envelope code, description)`.
    pub fn describe(self) -> (u16, &'static str, &'static str, &'static str) {
        match self {
            Failure::BadRequest => (
                400,
                "BadRequest",
                "BAD_REQUEST",
                "BAD_REQUEST: malformed JSON, wrong types, bad query or header",
            ),
            Failure::Unauthorized => (
                401,
                "Unauthorized",
                "UNAUTHORIZED",
                "UNAUTHORIZED: missing or invalid credentials",
            ),
            Failure::Forbidden => (
                403,
                "Forbidden",
                "FORBIDDEN",
                "FORBIDDEN: locationId differs from the API key's location",
            ),
            Failure::NotFound => (404, "NotFound", "NOT_FOUND", "NOT_FOUND"),
            Failure::Conflict => (409, "Conflict", "CONFLICT", "CONFLICT: already exists"),
            Failure::PreconditionFailed => (
                412,
                "PreconditionFailed",
                "PRECONDITION_FAILED",
                "PRECONDITION_FAILED: If-Match does not match the current version",
            ),
            Failure::PayloadTooLarge => (
                413,
                "PayloadTooLarge",
                "PAYLOAD_TOO_LARGE",
                "PAYLOAD_TOO_LARGE: body over BODY_LIMIT_BYTES (1 MiB)",
            ),
            Failure::UnsupportedMediaType => (
                415,
                "UnsupportedMediaType",
                "UNSUPPORTED_MEDIA_TYPE",
                "UNSUPPORTED_MEDIA_TYPE: expected application/json",
            ),
            Failure::Validation => (
                422,
                "Validation",
                "VALIDATION_ERROR",
                "VALIDATION_ERROR: details.errors lists every offending field",
            ),
            Failure::RateLimited => (
                429,
                "RateLimited",
                "RATE_LIMIT_EXCEEDED",
                "RATE_LIMIT_EXCEEDED: the plan's limit for this window is spent",
            ),
            Failure::Internal => (500, "Internal", "INTERNAL_ERROR", "INTERNAL_ERROR (opaque)"),
            Failure::Unavailable => (
                503,
                "Unavailable",
                "SERVICE_UNAVAILABLE",
                "SERVICE_UNAVAILABLE: a dependency (Postgres) is unavailable, a workflow write \
                 was saved but its cache invalidation could not be confirmed (Redis answers but \
                 refuses it; reads elsewhere could still show the previous version), or \
                 webhooks are not configured",
            ),
        }
    }

    /// The response component (`#/components/responses/<name>`).
    pub fn component(self) -> Response {
        let (_, _, code, description) = self.describe();
        let example = serde_json::json!({
            "success": false,
            "error": { "code": code, "message": "…" },
            "meta": { "timestamp": "2026-11-28T00:00:00.000Z", "requestId": "3f0c…" },
        });
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .example(Some(example))
            .build();
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content);
        if self == Failure::RateLimited {
            response = response.header(
                "Retry-After",
                integer_header("Seconds until the window resets", 1),
            );
            for (name, header) in rate_limit_headers() {
                response = response.header(name, header);
            }
        }
        response.build()
    }
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (`security: []`).
    Public,
    /// A location's API key: every `/api` route (added by the route table's scope).
    Tenant,
    /// `INTERNAL_API_TOKEN`: 401 without it, 404 in production when it is unset.
    Operator,
    /// `METRICS_TOKEN`, else `INTERNAL_API_TOKEN`.
    Metrics,
    /// Not stated (a page that carries no data).
    Unstated,
}

/// One operation being described.
pub struct Op {
    operation: Operation,
    schemas: Schemas,
}

impl Op {
    pub fn new(operation_id: &str, tag: &str, summary: &str) -> Op {
        Op {
            operation: OperationBuilder::new()
                .operation_id(Some(operation_id))
                .tag(tag)
                .summary(Some(summary))
                .build(),
            schemas: Vec::new(),
        }
    }

    pub fn description(mut self, text: &str) -> Op {
        self.operation.description = Some(text.to_owned());
        self
    }

    pub fn access(mut self, access: Access) -> Op {
        let requirement = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
        self.operation.security = match access {
            Access::Public => Some(Vec::new()),
            Access::Tenant => Some(vec![requirement("apiKey")]),
            Access::Operator => Some(vec![requirement("operatorToken")]),
            Access::Metrics => Some(vec![
                requirement("metricsToken"),
                requirement("operatorToken"),
            ]),
            Access::Unstated => None,
        };
        match access {
            Access::Operator | Access::Metrics => {
                self.errors(&[Failure::Unauthorized, Failure::NotFound])
            }
            Access::Public | Access::Tenant | Access::Unstated => self,
        }
    }

    pub fn param(mut self, parameter: Parameter) -> Op {
        self.operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(parameter);
        self
    }

    /// The query parameters of `P` (a handler's `web::Query` type).
    pub fn query<P: IntoParams>(mut self) -> Op {
        for parameter in P::into_params(|| Some(ParameterIn::Query)) {
            self = self.param(parameter);
        }
        self
    }

    /// A required JSON body of type `T`.
    pub fn body<T: ToSchema>(mut self) -> Op {
        let schema = self.named::<T>();
        self.operation.request_body = Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .build(),
        );
        self
    }

    /// `status` answers `{success: true, data: T, meta}`.
    pub fn ok<T: ToSchema>(mut self, status: u16, description: &str) -> Op {
        let data = self.named::<T>();
        let envelope = ObjectBuilder::new()
            .property("success", boolean_const(true))
            .required("success")
            .property("data", data)
            .required("data")
            .property("meta", Ref::from_schema_name("Meta"))
            .required("meta")
            .build();
        self.respond(status, json_response(description, envelope.into()))
    }

    /// `status` answers `{success: true, data: T, meta}`, or `U` itself outside the envelope
    /// (one route's other representation: an imported workflow's original JSON).
    pub fn ok_or_bare<T: ToSchema, U: ToSchema>(mut self, status: u16, description: &str) -> Op {
        let data = self.named::<T>();
        let bare = self.named::<U>();
        let envelope = ObjectBuilder::new()
            .property("success", boolean_const(true))
            .required("success")
            .property("data", data)
            .required("data")
            .property("meta", Ref::from_schema_name("Meta"))
            .required("meta")
            .build();
        // `anyOf`: an envelope is an object too, which a free-form `U` also admits.
        let either = utoipa::openapi::schema::AnyOfBuilder::new()
            .item(envelope)
            .item(bare)
            .build();
        self.respond(
            status,
            json_response(description, RefOr::T(Schema::AnyOf(either))),
        )
    }

    /// `status` answers `{success: true, data: T or U, meta}`.
    pub fn ok_either<T: ToSchema, U: ToSchema>(mut self, status: u16, description: &str) -> Op {
        let either = utoipa::openapi::schema::OneOfBuilder::new()
            .item(self.named::<T>())
            .item(self.named::<U>())
            .build();
        let envelope = ObjectBuilder::new()
            .property("success", boolean_const(true))
            .required("success")
            .property("data", Schema::OneOf(either))
            .required("data")
            .property("meta", Ref::from_schema_name("Meta"))
            .required("meta")
            .build();
        self.respond(status, json_response(description, envelope.into()))
    }

    /// `status` answers a bare `T` (no envelope: the operations routes).
    pub fn bare<T: ToSchema>(mut self, status: u16, description: &str) -> Op {
        let schema = self.named::<T>();
        self.respond(status, json_response(description, schema))
    }

    pub fn respond(mut self, status: u16, response: Response) -> Op {
        self.operation
            .responses
            .responses
            .insert(status.to_string(), response.into());
        self
    }

    /// The failures this operation answers (beyond those of its access and scope).
    pub fn errors(mut self, failures: &[Failure]) -> Op {
        for failure in failures {
            let (status, name, _, _) = failure.describe();
            self.operation
                .responses
                .responses
                .insert(status.to_string(), Ref::from_response_name(name).into());
        }
        self
    }

    /// Adds `header` to every success answer.
    pub fn success_header(mut self, name: &str, header: Header) -> Op {
        for (status, response) in self.operation.responses.responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                response.headers.insert(name.to_owned(), header.clone());
            }
        }
        self
    }

    /// A write: its success answers carry `X-Consistency-Token` (`http::consistency`). Call
    /// it after the success answers are described.
    pub fn writes(self) -> Op {
        self.success_header(
            "X-Consistency-Token",
            HeaderBuilder::new()
                .schema(token_schema())
                .description(Some(
                    "The primary's position after this request's write committed (opaque). \
                     Send it back on a read to be answered with this write or a later one, in \
                     any region. Absent when the request wrote nothing (an unchanged import, a \
                     replayed webhook) or the position could not be read.",
                ))
                .build(),
        )
    }

    /// A read that honours `X-Consistency-Token`: answered with the write the token names or
    /// a later one; a value the service did not issue is 400.
    pub fn consistent_read(self) -> Op {
        let token = ParameterBuilder::new()
            .name("X-Consistency-Token")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "A write's X-Consistency-Token, sent back unchanged: the answer reflects that \
                 write or a later one (a region whose replica is behind waits for it up to \
                 READ_YOUR_WRITES_WAIT_MS, then reads the primary). Any other value is 400.",
            ))
            .schema(Some(token_schema()))
            .build();
        self.param(token).errors(&[Failure::BadRequest])
    }

    /// A read through the cache: `X-Cache-Status`, and `X-Cache-Tier` on a hit.
    pub fn cached(self) -> Op {
        self.success_header("X-Cache-Status", cache_status_header())
            .success_header("X-Cache-Tier", cache_tier_header())
    }

    /// What the `/api` scope gives every route in it: API-key auth (with its `locationId`
    /// check), the plan's rate limit and its headers, and the failures of both.
    pub fn in_tenant_scope(self) -> Op {
        let mut op = self.access(Access::Tenant).errors(&[
            Failure::Unauthorized,
            Failure::Forbidden,
            Failure::RateLimited,
            Failure::Internal,
            Failure::Unavailable,
        ]);
        if !op.has_parameter("locationId") {
            op = op.param(location_id_param());
        }
        for (name, header) in rate_limit_headers() {
            op = op.success_header(name, header);
        }
        op
    }

    fn has_parameter(&self, name: &str) -> bool {
        self.operation
            .parameters
            .iter()
            .flatten()
            .any(|parameter| parameter.name == name)
    }

    pub fn into_parts(self) -> (Operation, Schemas) {
        (self.operation, self.schemas)
    }

    /// A reference to `T`'s component, recording it and the schemas it names.
    fn named<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().into_owned();
        self.schemas.push((name.clone(), T::schema()));
        T::schemas(&mut self.schemas);
        Ref::from_schema_name(name).into()
    }
}

/// `?locationId=`: any `/api` route may name its location; another one than the key's is 403.
fn location_id_param() -> Parameter {
    ParameterBuilder::new()
        .name("locationId")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "When given, must be the API key's own location (else 403)",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// A JSON answer of `schema`.
pub fn json_response(description: &str, schema: RefOr<Schema>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A text answer (`content_types` all carrying a string).
pub fn text_response(description: &str, content_types: &[&str]) -> Response {
    let mut response = ResponseBuilder::new().description(description);
    for content_type in content_types {
        response = response.content(
            *content_type,
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }
    response.build()
}

/// `true` or `false` only.
pub fn boolean_const(value: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([value]))
}

pub fn integer_header(description: &str, minimum: i64) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(minimum)),
        )
        .description(Some(description))
        .build()
}

pub fn string_header(description: &str, values: Option<&[&str]>) -> Header {
    let schema = match values {
        Some(values) => crate::domain::schema::string_enum(values.iter().copied()),
        None => ObjectBuilder::new().schema_type(Type::String).build(),
    };
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

/// `X-RateLimit-*` of every `/api` answer.
pub fn rate_limit_headers() -> [(&'static str, Header); 3] {
    [
        (
            "X-RateLimit-Limit",
            integer_header(
                "Requests allowed per window for the location's plan (free 20, starter 60, pro \
                 100, agency 500 per minute)",
                1,
            ),
        ),
        (
            "X-RateLimit-Remaining",
            integer_header("Requests left in the current window", 0),
        ),
        (
            "X-RateLimit-Reset",
            integer_header("Seconds until the current window resets", 1),
        ),
    ]
}

/// `X-Consistency-Token`'s value: `v1-` and a position in hex.
fn token_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::http::consistency::TOKEN_PATTERN))
}

fn cache_status_header() -> Header {
    string_header(
        "Where the read was answered from",
        Some(&["HIT", "MISS", "STALE", "BYPASS"]),
    )
}

fn cache_tier_header() -> Header {
    string_header("On a HIT: the tier", Some(&["l1", "l2"]))
}

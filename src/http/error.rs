//! The one place where errors become HTTP statuses and the error envelope.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::http::envelope::{error_body, ErrorPayload};
use crate::services::rate_limiter::RateLimitExceeded;
use crate::telemetry::error_chain;

/// One offending field of a request body or query (`details.errors[]`).
pub use crate::domain::workflow::FieldError;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    /// A 422 `VALIDATION_ERROR` whose message says more than how many fields are wrong
    /// (a document too complex to analyze).
    #[error("{message}")]
    Unprocessable {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    ServiceUnavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::ServiceUnavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::Internal(source.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::PreconditionFailed(_) => "PRECONDITION_FAILED",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Validation(_) | Self::Unprocessable { .. } => "VALIDATION_ERROR",
            Self::RateLimited { .. } => "RATE_LIMIT_EXCEEDED",
            Self::ServiceUnavailable { .. } => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// What the client reads. 5xx messages are fixed so no internal detail leaks.
    fn public_message(&self) -> String {
        match self {
            Self::Validation(errors) => format!(
                "The request has {} invalid field{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
            Self::RateLimited { retry_after_secs } => {
                format!("Too many requests; retry in {retry_after_secs} s")
            }
            Self::ServiceUnavailable { message, .. } => message.clone(),
            Self::Internal(_) => "An unexpected error occurred".to_owned(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::Validation(errors) | Self::Unprocessable { errors, .. } => {
                Some(serde_json::json!({ "errors": errors }))
            }
            _ => None,
        }
    }

    /// This error as one item of an answer whose items succeed or fail one by one
    /// (`{code, message, details}`, as in the envelope); logged as a response would be.
    pub fn item_payload(&self) -> serde_json::Value {
        self.log();
        let message = self.public_message();
        serde_json::json!(ErrorPayload {
            code: self.code(),
            message: &message,
            details: self.details(),
        })
    }

    fn log(&self) {
        match self {
            Self::Internal(source) => {
                log::error!("internal error: {}", error_chain(source.as_ref()))
            }
            Self::ServiceUnavailable {
                message,
                source: Some(source),
            } => log::warn!("{message}: {}", error_chain(source.as_ref())),
            _ => {}
        }
    }
}

impl From<RateLimitExceeded> for ApiError {
    fn from(exceeded: RateLimitExceeded) -> Self {
        ApiError::RateLimited {
            retry_after_secs: exceeded.retry_after_secs,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let message = self.public_message();
        let body = error_body(ErrorPayload {
            code: self.code(),
            message: &message,
            details: self.details(),
        });
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Self::RateLimited { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.json(body)
    }
}

impl From<crate::repository::RepositoryError> for ApiError {
    fn from(error: crate::repository::RepositoryError) -> Self {
        use crate::repository::RepositoryError as E;
        match error {
            E::Database(error) => classify_database_error(error, "Resource"),
            E::Shared(shared) => from_shared(shared),
            other => from_repository_ref(&other).unwrap_or_else(|| Self::internal(other)),
        }
    }
}

/// The statuses that need no source: `None` for errors that must keep their cause.
fn from_repository_ref(error: &crate::repository::RepositoryError) -> Option<ApiError> {
    use crate::repository::RepositoryError as E;
    match error {
        E::NotFound(what) => Some(ApiError::NotFound(format!("{what} not found"))),
        E::Conflict(what) => Some(ApiError::Conflict(format!("{what} already exists"))),
        E::WorkflowLimit { limit } => Some(ApiError::Validation(vec![FieldError::new(
            "id",
            format!(
                "cannot create another workflow: this location already has {limit}, the most a location may have (MAX_WORKFLOWS_PER_LOCATION); delete one or replace an existing id"
            ),
        )])),
        E::PreconditionFailed {
            current: Some(version),
        } => Some(ApiError::PreconditionFailed(format!(
            "If-Match does not match the current version ({version})"
        ))),
        E::PreconditionFailed { current: None } => Some(ApiError::PreconditionFailed(
            "If-Match given but the workflow does not exist".to_owned(),
        )),
        E::Database(error) => match database_error_kind(error) {
            DatabaseErrorKind::NotFound => {
                Some(ApiError::NotFound("Resource not found".to_owned()))
            }
            DatabaseErrorKind::Conflict => {
                Some(ApiError::Conflict("Resource already exists".to_owned()))
            }
            DatabaseErrorKind::Unstorable => Some(unstorable(error)),
            DatabaseErrorKind::Unavailable | DatabaseErrorKind::Other => None,
        },
        E::Shared(inner) => from_repository_ref(inner),
        E::TimedOut => Some(ApiError::ServiceUnavailable {
            message: "The database did not answer in time, try again shortly".to_owned(),
            source: None,
        }),
        E::AnalysisBusy => Some(ApiError::ServiceUnavailable {
            message: "The analysis could not start in time because the server is busy, try again shortly".to_owned(),
            source: None,
        }),
        E::NotPropagated => Some(ApiError::ServiceUnavailable {
            message: "The change was saved, but not every server could be told yet, so reads may briefly show the previous version; read it back before retrying".to_owned(),
            source: None,
        }),
        E::Abandoned(abandoned) => Some(from_abandoned(*abandoned)),
        // One location's requests waiting for the analysis threads are capped (fairness):
        // its next one is a client-side excess, retried shortly.
        E::LocationBusy => Some(ApiError::RateLimited {
            retry_after_secs: 1,
        }),
        E::Decode(_) | E::Computation(_) => None,
    }
}

/// [`ApiError::from`] for a location-wide analysis: over its budget, the 422 names the
/// location's workflows taken together, not a workflow (each one's own analysis is still
/// served, without the location-wide findings).
pub fn from_location_analysis(error: crate::repository::RepositoryError) -> ApiError {
    let Some(budget) = too_complex_budget(&error) else {
        return ApiError::from(error);
    };
    let ms = budget.as_millis();
    ApiError::Unprocessable {
        message: format!(
            "The location's workflows are too complex to analyze together within the analysis budget of {ms} ms"
        ),
        errors: vec![FieldError::new(
            "location",
            format!(
                "the cross-workflow analysis is too complex to finish within {ms} ms of CPU time (ANALYSIS_BUDGET_MS); each workflow's own analysis is still served, without the location-wide findings"
            ),
        )],
    }
}

fn too_complex_budget(error: &crate::repository::RepositoryError) -> Option<std::time::Duration> {
    use crate::domain::analysis::AnalysisAbandoned as A;
    use crate::repository::RepositoryError as E;
    match error {
        E::Abandoned(A::TooComplex { budget }) => Some(*budget),
        E::Shared(inner) => too_complex_budget(inner),
        _ => None,
    }
}

/// A too-complex document is the client's to change (422, like any other limit); a
/// cancelled analysis only means the request deadline passed first (503, retry).
fn from_abandoned(abandoned: crate::domain::analysis::AnalysisAbandoned) -> ApiError {
    use crate::domain::analysis::AnalysisAbandoned as A;
    match abandoned {
        A::TooComplex { budget } => {
            let ms = budget.as_millis();
            ApiError::Unprocessable {
                message: format!(
                    "The workflow is too complex to analyze within the analysis budget of {ms} ms"
                ),
                errors: vec![FieldError::new(
                    "workflow",
                    format!(
                        "too complex to analyze within {ms} ms of CPU time (ANALYSIS_BUDGET_MS); split it into smaller workflows or remove repeated steps, branches and tags"
                    ),
                )],
            }
        }
        A::Cancelled => ApiError::ServiceUnavailable {
            message: "The analysis did not finish before the request deadline because the server is busy, try again shortly".to_owned(),
            source: None,
        },
    }
}

/// A failure shared by every reader of one cache load.
fn from_shared(shared: std::sync::Arc<crate::repository::RepositoryError>) -> ApiError {
    if let Some(error) = from_repository_ref(&shared) {
        return error;
    }
    if root_database_error(&shared)
        .is_some_and(|e| database_error_kind(e) == DatabaseErrorKind::Unavailable)
    {
        return ApiError::unavailable(DATABASE_UNAVAILABLE, shared);
    }
    ApiError::internal(shared)
}

fn root_database_error(error: &crate::repository::RepositoryError) -> Option<&sqlx::Error> {
    use crate::repository::RepositoryError as E;
    match error {
        E::Database(error) => Some(error),
        E::Shared(inner) => root_database_error(inner),
        _ => None,
    }
}

const DATABASE_UNAVAILABLE: &str = "The database is unavailable, try again shortly";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatabaseErrorKind {
    NotFound,
    Conflict,
    /// The database refused a value: a NUL, bytes it cannot store, a check constraint.
    Unstorable,
    Unavailable,
    Other,
}

/// Absent rows are 404, duplicates 409, an unavailable database 503 (never 500).
fn database_error_kind(error: &sqlx::Error) -> DatabaseErrorKind {
    match error {
        sqlx::Error::RowNotFound => DatabaseErrorKind::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => DatabaseErrorKind::Conflict,
        sqlx::Error::Database(db) if is_unavailability_code(db.code().as_deref()) => {
            DatabaseErrorKind::Unavailable
        }
        sqlx::Error::Database(db) if is_unstorable_code(db.code().as_deref()) => {
            DatabaseErrorKind::Unstorable
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => DatabaseErrorKind::Unavailable,
        _ => DatabaseErrorKind::Other,
    }
}

/// How a database error reaches a client.
pub fn classify_database_error(error: sqlx::Error, what: &str) -> ApiError {
    match database_error_kind(&error) {
        DatabaseErrorKind::NotFound => ApiError::NotFound(format!("{what} not found")),
        DatabaseErrorKind::Conflict => ApiError::Conflict(format!("{what} already exists")),
        DatabaseErrorKind::Unstorable => unstorable(&error),
        DatabaseErrorKind::Unavailable => ApiError::unavailable(DATABASE_UNAVAILABLE, error),
        DatabaseErrorKind::Other => ApiError::internal(error),
    }
}

/// SQLSTATEs of a value the database will not store: invalid byte sequence (22021, a NUL in
/// `text`), unsupported Unicode escape (22P05, a NUL in `jsonb`), value too long (22001),
/// check violation (23514). Validation checks all of these first (`domain::stored_text`);
/// this is the net for a case it missed, which is the client's input, not a server fault.
fn is_unstorable_code(code: Option<&str>) -> bool {
    matches!(code, Some("22021" | "22P05" | "22001" | "23514"))
}

/// A 422 naming the column when the database named one (a check constraint's default name
/// is `{table}_{column}_check`), else the body. The database's own message is not passed on:
/// it can quote the value.
fn unstorable(error: &sqlx::Error) -> ApiError {
    let db = match error {
        sqlx::Error::Database(db) => Some(db),
        _ => None,
    };
    let code = db.and_then(|db| db.code()).unwrap_or_default();
    let constraint = db.and_then(|db| db.constraint()).unwrap_or_default();
    log::warn!(
        "the database refused a value that validation let through (SQLSTATE {code}, constraint {constraint:?})"
    );
    let column = db.and_then(|db| {
        let table = db.table()?;
        db.constraint()?
            .strip_prefix(table)?
            .strip_prefix('_')?
            .strip_suffix("_check")
    });
    let error = match column {
        Some(column) => FieldError::new(column, "is not a value that can be stored"),
        None => FieldError::new(
            "body",
            "holds text that cannot be stored (e.g. a NUL character, \\u0000)",
        ),
    };
    ApiError::Validation(vec![error])
}

/// SQLSTATEs that mean "not now" rather than "wrong": connection exceptions (08),
/// statement timeout / cancel (57014), shutdown (57P01–57P02) and a server not accepting
/// connections while it starts, shuts down or recovers (57P03), too many connections (53300),
/// and a server still in recovery (55000, e.g. `pg_current_wal_lsn()` on a standby: a
/// `DATABASE_URL` that reaches a replica not yet promoted during a failover), and a write
/// refused as read-only there (25006): the same failover window, seen by a write.
fn is_unavailability_code(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            code.starts_with("08")
                || code.starts_with("57")
                || matches!(code, "53300" | "55000" | "25006")
        }
        None => false,
    }
}

impl From<crate::services::ghl_import::ImportFailure> for ApiError {
    fn from(failure: crate::services::ghl_import::ImportFailure) -> Self {
        use crate::domain::ghl::{ImportError, Refusal};
        use crate::services::ghl_import::ImportFailure as F;
        match failure {
            F::Refused(Refusal::Shape(ImportError::InvalidJson(error))) => {
                Self::BadRequest(format!("Malformed JSON body: {error}"))
            }
            F::Refused(Refusal::Shape(shape)) => Self::Unprocessable {
                message: format!("Not a GoHighLevel workflow: {shape}"),
                errors: vec![FieldError::new(shape.field(), shape.to_string())],
            },
            F::Refused(Refusal::OtherLocation) => {
                Self::Forbidden("The API key does not belong to this locationId".to_owned())
            }
            F::Refused(Refusal::Invalid(errors)) => Self::Validation(errors),
            older @ F::OlderSource { .. } => Self::Conflict(format!(
                "{older}; delete the workflow first to import an older version"
            )),
            F::Repository(error) => error.into(),
        }
    }
}

impl From<actix_web::error::JsonPayloadError> for ApiError {
    fn from(error: actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as E;
        match error {
            E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => {
                Self::PayloadTooLarge(format!("The request body is larger than {limit} bytes"))
            }
            E::ContentType => Self::UnsupportedMediaType(
                "Expected a JSON body with Content-Type: application/json".to_owned(),
            ),
            E::Deserialize(error) if error.is_data() => {
                Self::BadRequest(format!("The JSON body has a wrong type or value: {error}"))
            }
            E::Deserialize(error) => Self::BadRequest(format!("Malformed JSON body: {error}")),
            E::Payload(error) => Self::from(error),
            other => Self::BadRequest(format!("Unreadable JSON body: {other}")),
        }
    }
}

impl From<actix_web::error::PayloadError> for ApiError {
    fn from(error: actix_web::error::PayloadError) -> Self {
        match error {
            actix_web::error::PayloadError::Overflow => {
                Self::PayloadTooLarge("The request body is too large".to_owned())
            }
            other => Self::BadRequest(format!("Unreadable request body: {other}")),
        }
    }
}

impl From<actix_web::error::QueryPayloadError> for ApiError {
    fn from(error: actix_web::error::QueryPayloadError) -> Self {
        Self::BadRequest(format!("Invalid query string: {error}"))
    }
}

impl From<actix_web::error::PathError> for ApiError {
    fn from(error: actix_web::error::PathError) -> Self {
        Self::BadRequest(format!("Invalid path: {error}"))
    }
}

/// Every envelope `code` ([`ApiError::code`] and [`code_for_status`]).
pub const ERROR_CODES: [&str; 13] = [
    "BAD_REQUEST",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
    "PRECONDITION_FAILED",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "VALIDATION_ERROR",
    "RATE_LIMIT_EXCEEDED",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
];

/// The envelope `code` for a status produced outside our handlers (actix's own errors).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        412 => "PRECONDITION_FAILED",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        422 => "VALIDATION_ERROR",
        429 => "RATE_LIMIT_EXCEEDED",
        503 => "SERVICE_UNAVAILABLE",
        s if s >= 500 => "INTERNAL_ERROR",
        _ => "BAD_REQUEST",
    }
}

/// Puts responses that actix produced itself (405, payload errors, …) into the envelope, so a
/// client never has to parse a second error format.
pub fn envelope_plain_errors<B>(
    response: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;

    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (request, original) = response.into_parts();
    let message = status.canonical_reason().unwrap_or("Request failed");
    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.append_header((name.clone(), value.clone()));
        }
    }
    let rebuilt = rebuilt.json(error_body(ErrorPayload {
        code: code_for_status(status),
        message,
        details: None,
    }));
    Ok(ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(request, rebuilt).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_contract_status_and_code() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400, "BAD_REQUEST"),
            (ApiError::Unauthorized("x".into()), 401, "UNAUTHORIZED"),
            (ApiError::Forbidden("x".into()), 403, "FORBIDDEN"),
            (ApiError::NotFound("x".into()), 404, "NOT_FOUND"),
            (ApiError::Conflict("x".into()), 409, "CONFLICT"),
            (
                ApiError::PayloadTooLarge("x".into()),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (ApiError::Validation(vec![]), 422, "VALIDATION_ERROR"),
            (
                ApiError::Unprocessable {
                    message: "x".into(),
                    errors: vec![],
                },
                422,
                "VALIDATION_ERROR",
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "RATE_LIMIT_EXCEEDED",
            ),
            (ApiError::internal("boom"), 500, "INTERNAL_ERROR"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status_code().as_u16(), status);
            assert_eq!(error.code(), code);
            assert!(ERROR_CODES.contains(&code), "{code} is not in ERROR_CODES");
        }
    }

    #[test]
    fn every_status_of_a_plain_error_has_a_documented_code() {
        for status in 400..600 {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(ERROR_CODES.contains(&code_for_status(status)), "{status}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let error = ApiError::internal("password=hunter2 in a connection string");
        assert_eq!(error.public_message(), "An unexpected error occurred");
    }

    #[test]
    fn an_abandoned_analysis_is_422_when_too_complex_and_503_when_cancelled() {
        use crate::domain::analysis::AnalysisAbandoned;
        use crate::repository::RepositoryError;
        let too_complex = AnalysisAbandoned::TooComplex {
            budget: std::time::Duration::from_millis(1500),
        };
        let shared = RepositoryError::Shared(std::sync::Arc::new(too_complex.into()));

        let error = ApiError::from(shared);

        assert_eq!(error.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code(), "VALIDATION_ERROR");
        assert!(error.public_message().contains("too complex"));
        assert!(error.public_message().contains("1500 ms"));
        let details = error.details().expect("details");
        assert_eq!(details["errors"][0]["field"], "workflow");

        let cancelled = ApiError::from(RepositoryError::from(AnalysisAbandoned::Cancelled));
        assert_eq!(cancelled.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let busy = ApiError::from(RepositoryError::LocationBusy);
        assert_eq!(busy.status_code(), StatusCode::TOO_MANY_REQUESTS);
    }

    /// A database error as the server sends it: only its SQLSTATE matters here.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "from the test"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn a_server_starting_shutting_down_or_in_recovery_is_503_not_500() {
        use crate::repository::RepositoryError;
        for code in ["57P03", "55000", "25006", "57P01", "08006", "53300"] {
            let error = classify_database_error(
                sqlx::Error::Database(Box::new(Sqlstate(code))),
                "Workflow",
            );
            assert_eq!(
                error.status_code(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{code}"
            );
            assert_eq!(error.code(), "SERVICE_UNAVAILABLE", "{code}");
            let shared = RepositoryError::Shared(std::sync::Arc::new(RepositoryError::Database(
                sqlx::Error::Database(Box::new(Sqlstate(code))),
            )));
            assert_eq!(
                ApiError::from(shared).status_code(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{code}"
            );
        }
        // A fault of ours stays a 500 (undefined column).
        let ours = classify_database_error(
            sqlx::Error::Database(Box::new(Sqlstate("42703"))),
            "Workflow",
        );
        assert_eq!(ours.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn pool_timeouts_are_unavailable_not_internal() {
        let error = classify_database_error(sqlx::Error::PoolTimedOut, "Workflow");
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let missing = classify_database_error(sqlx::Error::RowNotFound, "Workflow");
        assert_eq!(missing.status_code(), StatusCode::NOT_FOUND);
    }
}

//! One function per entry of the route table: what the operation reads and answers. The
//! table (`http::endpoints`) names them; paths and methods come from the table only, and the
//! `/api` scope's auth, rate limit and their failures are added by `openapi::document`.

use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Required;

use super::operation::{json_response, string_header, text_response, Access, Failure as F, Op};
use super::schemas::{AnalyzeRequest, GhlDocument, GhlImportBody, WebhookEvent, WorkflowList};
use crate::cache::CacheStats;
use crate::domain::analysis::AnalysisReport;
use crate::domain::overview::LocationSummary;
use crate::domain::workflow::WorkflowDocument;
use crate::health::{DetailedHealth, Identity};
use crate::http::handlers::analysis::{HistoryQuery, HistoryResponse, LocationAnalysisResponse};
use crate::http::handlers::dashboard::ASSET_NAMES;
use crate::http::handlers::ghl_import::{ImportResultsResponse, ImportedWorkflowResponse};
use crate::http::handlers::health::{Liveness, Readiness};
use crate::http::handlers::internal::{CreateLocationRequest, Flushed};
use crate::http::handlers::subscription::SubscriptionResponse;
use crate::http::handlers::webhooks::WebhookReceipt;
use crate::http::handlers::workflows::{GetQuery, ListQuery};
use crate::repository::{CreatedLocation, StoredWorkflow};
use crate::services::cache_history::History as CacheHistory;

const WORKFLOWS: &str = "workflows";
const ANALYSIS: &str = "analysis";
const SUBSCRIPTION: &str = "subscription";
const WEBHOOKS: &str = "webhooks";
const INTERNAL: &str = "internal";
const OPERATIONS: &str = "operations";

/// The tags, in the order a reader meets them.
pub const TAGS: [&str; 6] = [
    WORKFLOWS,
    ANALYSIS,
    SUBSCRIPTION,
    WEBHOOKS,
    INTERNAL,
    OPERATIONS,
];

pub fn health() -> Op {
    Op::new("health", OPERATIONS, "Liveness with identity (no envelope)")
        .access(Access::Public)
        .bare::<Identity>(200, "Alive")
}

pub fn health_detailed() -> Op {
    Op::new(
        "healthDetailed",
        OPERATIONS,
        "Database, cache, memory and uptime checks (no envelope); answers within 1 s",
    )
    .description(
        "cache.topology.primary (Sentinel) is shown only to callers with the operator token.",
    )
    .access(Access::Public)
    .bare::<DetailedHealth>(200, "healthy or degraded (Redis unreachable)")
    .bare::<DetailedHealth>(503, "unhealthy: Postgres does not answer")
}

pub fn ready() -> Op {
    Op::new("ready", OPERATIONS, "Readiness: Postgres answers")
        .access(Access::Public)
        .bare::<Readiness>(200, "Ready (`ready: true`)")
        .bare::<Readiness>(503, "Not ready (`ready: false`)")
}

pub fn live() -> Op {
    Op::new("live", OPERATIONS, "Process is alive")
        .access(Access::Public)
        .bare::<Liveness>(200, "Alive")
}

pub fn metrics() -> Op {
    Op::new(
        "metrics",
        OPERATIONS,
        "Prometheus text exposition (bearer METRICS_TOKEN, else INTERNAL_API_TOKEN)",
    )
    .access(Access::Metrics)
    .respond(
        200,
        text_response("Prometheus text format 0.0.4", &["text/plain"]),
    )
    .errors(&[F::Internal])
}

pub fn openapi() -> Op {
    Op::new("openapi", OPERATIONS, "This document")
        .access(Access::Public)
        .respond(
            200,
            json_response(
                "OpenAPI 3.1 document",
                ObjectBuilder::new().schema_type(Type::Object).into(),
            ),
        )
}

pub fn create_location() -> Op {
    Op::new(
        "createLocation",
        INTERNAL,
        "Create a location and its first API key (shown once)",
    )
    .access(Access::Operator)
    .body::<CreateLocationRequest>()
    .ok::<CreatedLocation>(201, "Created")
    .writes()
    .errors(&[
        F::BadRequest,
        F::Conflict,
        F::PayloadTooLarge,
        F::UnsupportedMediaType,
        F::Validation,
        F::Unavailable,
    ])
}

pub fn cache_stats() -> Op {
    Op::new(
        "cacheStats",
        INTERNAL,
        "Both cache tiers' counters, breaker state, hit ratio",
    )
    .access(Access::Operator)
    .ok::<CacheStats>(200, "Statistics")
}

pub fn cache_stats_history() -> Op {
    Op::new(
        "cacheStatsHistory",
        INTERNAL,
        "This instance's cache over the last hour at 10 s resolution (ring buffer), plus the \
         point since the last sample",
    )
    .description(
        "Per point: per resource and tier hits and misses with the hit ratio, Redis (L2) \
         latency p50/p99, breaker state and cache mode, stale served, coalesced loads, \
         invalidations sent/acknowledged/timed out, pool use and rate-limit decisions. One \
         instance only (its `instanceId`); the fleet view is Grafana's.",
    )
    .access(Access::Operator)
    .ok::<CacheHistory>(200, "History")
}

pub fn flush_cache() -> Op {
    Op::new(
        "flushCache",
        INTERNAL,
        "Drop this service's namespace in both tiers (SCAN + UNLINK; never FLUSHALL)",
    )
    .access(Access::Operator)
    .ok::<Flushed>(200, "Flushed")
    .errors(&[F::Unavailable])
}

pub fn dashboard_page() -> Op {
    Op::new(
        "cacheDashboard",
        INTERNAL,
        "The cache dashboard page (HTML; carries no data, so it needs no token: the page asks \
         for the operator token and polls the operator routes with it)",
    )
    .access(Access::Unstated)
    .respond(200, text_response("The page", &["text/html"]))
    .errors(&[F::NotFound])
}

pub fn dashboard_asset() -> Op {
    let asset = ParameterBuilder::new()
        .name("asset")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(crate::domain::schema::string_enum(ASSET_NAMES)))
        .build();
    Op::new(
        "cacheDashboardAsset",
        INTERNAL,
        "A file of the dashboard page, compiled into the binary: dashboard.js, dashboard.css, \
         uPlot.iife.min.js, uPlot.min.css, uPlot-LICENSE.txt (no data, no token)",
    )
    .access(Access::Unstated)
    .param(asset)
    .respond(
        200,
        text_response("The file", &["text/javascript", "text/css", "text/plain"]),
    )
    .errors(&[F::NotFound])
}

pub fn receive_ghl_event() -> Op {
    let signature = ParameterBuilder::new()
        .name("X-GHL-Signature")
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(
            "Hex HMAC-SHA256 of the raw body with GHL_WEBHOOK_SECRET (optionally prefixed \
             sha256=)",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    Op::new(
        "receiveGhlEvent",
        WEBHOOKS,
        "Signed GoHighLevel event; idempotent by event id",
    )
    .access(Access::Public)
    .param(signature)
    .body::<WebhookEvent>()
    .ok::<WebhookReceipt>(200, "Acknowledged (also replays and unknown types)")
    .writes()
    .errors(&[
        F::BadRequest,
        F::Unauthorized,
        F::PayloadTooLarge,
        F::Validation,
        F::Unavailable,
    ])
}

pub fn list_workflows() -> Op {
    Op::new(
        "listWorkflows",
        WORKFLOWS,
        "The caller's workflow summaries, optionally with each one's health score, sorted and \
         filtered by it",
    )
    .query::<ListQuery>()
    .consistent_read()
    .ok::<WorkflowList>(200, "One page of summaries")
    .cached()
    .errors(&[F::BadRequest, F::Validation])
}

pub fn import_workflows() -> Op {
    Op::new(
        "importWorkflows",
        WORKFLOWS,
        "Import GoHighLevel workflow-builder JSON: one document (201 created, 200 replaced or \
         unchanged) or an array of up to 100 (200, answered item by item)",
    )
    .description(
        "Each document is stored under its GoHighLevel id (a document without one: under ghl- \
         and 32 hex digits of the SHA-256 of its text, so the same text finds the same \
         workflow) for the API key's location, through the same write as PUT, with its original \
         JSON kept byte for byte (GET /api/workflows/{id}?format=ghl) and the builder's version \
         as sourceVersion. The same source version again changes nothing (same version, no \
         write, no cache invalidation; import.outcome unchanged); an older one than stored is \
         409; a newer one is a new version. Malformed steps inside a recognisable document \
         (duplicate ids, a dangling next, unknown types, no name) are imported and reported by \
         the analysis, never refused. Refused: not JSON (400), not sent as JSON (415), over the \
         body limit (413); JSON in no known shape (422 naming what is missing, e.g. field \
         templates), over MAX_WORKFLOW_STEPS or another document limit (422 naming the field), \
         an id that is not a workflow id (422, field id), an empty array or more than 100 \
         documents (422); a document naming another locationId (403). In an array each \
         document gets, in results[i].status, the status it would have had alone.",
    )
    .body::<GhlImportBody>()
    .ok::<ImportedWorkflowResponse>(201, "One document, stored under a new id")
    .ok_either::<ImportedWorkflowResponse, ImportResultsResponse>(
        200,
        "One document that replaced the stored one or was stored already (import.outcome \
         says which), or an array's results",
    )
    .success_header("ETag", string_header("\"<version>\" (one document)", None))
    .success_header(
        "Location",
        string_header("/api/workflows/{id} (201 only)", None),
    )
    .writes()
    .errors(&[
        F::BadRequest,
        F::Conflict,
        F::PayloadTooLarge,
        F::UnsupportedMediaType,
        F::Validation,
    ])
}

pub fn get_workflow() -> Op {
    Op::new(
        "getWorkflow",
        WORKFLOWS,
        "One workflow with its definition; ?format=ghl: an imported workflow's original \
         GoHighLevel JSON, byte for byte; another location's id is 404 like a missing one",
    )
    .description(
        "With format=ghl the body is the JSON exactly as it was imported (the whole body of a \
         one-document import, or the array element's text), outside the envelope: the one /api \
         answer without it (errors keep it). A workflow that was not imported (written by PUT, \
         or PUT over since) has no GoHighLevel JSON: 404 saying so.",
    )
    .param(workflow_id_param())
    .query::<GetQuery>()
    .consistent_read()
    .ok_or_bare::<StoredWorkflow, GhlDocument>(
        200,
        "The workflow in the envelope; with format=ghl its original GoHighLevel JSON itself",
    )
    .cached()
    .errors(&[F::NotFound, F::Validation])
}

pub fn put_workflow() -> Op {
    let if_match = ParameterBuilder::new()
        .name("If-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "* (any current version: 412 when the workflow does not exist) or the expected \
             current version: 3, \"3\" or W/\"3\" (1-18 digits); anything else is 400",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(crate::http::handlers::workflows::IF_MATCH_PATTERN)),
        ))
        .build();
    Op::new(
        "putWorkflow",
        WORKFLOWS,
        "Create (201) or replace (200, version + 1); If-Match makes it conditional",
    )
    .description(
        "Versions never go back: a workflow created again after a delete continues after the \
         deleted one's last version, so its old ETag answers 412 and its old analysis is never \
         served. 422 VALIDATION_ERROR names the field (the JSON path inside the document, e.g. \
         steps[2].config.body) for a NUL character (\\u0000) in any string or key, a name over \
         500 characters, or an invalid id; and, with field id, for the creation of a new id \
         when the location already has MAX_WORKFLOWS_PER_LOCATION workflows (replacing an \
         existing id is always allowed).",
    )
    .param(workflow_id_param())
    .param(if_match)
    .body::<WorkflowDocument>()
    .ok::<StoredWorkflow>(200, "Replaced")
    .ok::<StoredWorkflow>(201, "Created")
    .success_header("ETag", string_header("\"<version>\"", None))
    .writes()
    .errors(&[
        F::BadRequest,
        F::PreconditionFailed,
        F::PayloadTooLarge,
        F::UnsupportedMediaType,
        F::Validation,
    ])
}

pub fn delete_workflow() -> Op {
    Op::new("deleteWorkflow", WORKFLOWS, "Delete a workflow")
        .param(workflow_id_param())
        .respond(
            204,
            utoipa::openapi::ResponseBuilder::new()
                .description("Deleted")
                .build(),
        )
        .writes()
        .errors(&[F::NotFound])
}

pub fn get_workflow_analysis() -> Op {
    Op::new(
        "getWorkflowAnalysis",
        ANALYSIS,
        "Analysis of the workflow's current version (counts against the hourly analysis quota \
         when computed)",
    )
    .param(workflow_id_param())
    .consistent_read()
    .ok::<AnalysisReport>(200, "The analysis")
    .cached()
    .errors(&[F::NotFound, F::Validation])
}

pub fn analyze() -> Op {
    Op::new(
        "analyze",
        ANALYSIS,
        "Analyze a stored workflow ({workflowId}) or a document that is not stored \
         ({workflow}); counts against the hourly analysis quota",
    )
    .body::<AnalyzeRequest>()
    .consistent_read()
    .ok::<AnalysisReport>(200, "The analysis")
    .cached()
    .errors(&[
        F::BadRequest,
        F::NotFound,
        F::PayloadTooLarge,
        F::UnsupportedMediaType,
        F::Validation,
    ])
}

pub fn get_location_analysis() -> Op {
    Op::new(
        "getLocationAnalysis",
        ANALYSIS,
        "Location-wide analysis: cross-workflow findings",
    )
    .consistent_read()
    .ok::<LocationAnalysisResponse>(200, "The location analysis")
    .cached()
    .errors(&[F::Validation])
}

pub fn get_history() -> Op {
    Op::new("listHistory", ANALYSIS, "Stored analyses, newest first")
        .query::<HistoryQuery>()
        .consistent_read()
        .ok::<HistoryResponse>(200, "One page of stored analyses")
        .errors(&[F::BadRequest, F::Validation])
}

pub fn get_subscription() -> Op {
    Op::new(
        "getSubscription",
        SUBSCRIPTION,
        "Plan, status, period end, the plan's features and limits (no row = free)",
    )
    .consistent_read()
    .ok::<SubscriptionResponse>(200, "The subscription")
    .cached()
}

pub fn get_summary() -> Op {
    Op::new(
        "getSummary",
        WORKFLOWS,
        "Location totals: workflows by status and grade, issues by severity, location-wide \
         findings, the 5 worst workflows, pending analyses (every plan)",
    )
    .consistent_read()
    .ok::<LocationSummary>(200, "The location's totals")
    .cached()
}

/// `{id}` of the workflow routes.
fn workflow_id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "Workflow id: 1-128 letters, digits, '_', '-', '.' or ':'",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(crate::domain::ids::WORKFLOW_ID_PATTERN)),
        ))
        .build()
}

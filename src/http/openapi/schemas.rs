//! Schemas of bodies that have no Rust type of their own shape: a request whose handler reads
//! it leniently (or as bytes), and answers written out as JSON without a struct (the list
//! pages are cut from cached JSON). Everything else is derived on the type serde writes.

#![allow(dead_code)] // Schema-only types: never built, only described.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::overview::OverviewRow;
use crate::domain::pagination::Pagination;
use crate::domain::schema::AnalyzableWorkflow;
use crate::repository::WorkflowSummary;

/// `POST /api/analyze`: `{workflowId}` analyzes a stored workflow, `{workflow}` a document
/// that is not stored; exactly one of them (`{}` or both is 422), nothing else (400), and no
/// field `null` (400: `handlers::analysis::AnalyzeRequest`).
pub struct AnalyzeRequest;

impl PartialSchema for AnalyzeRequest {
    fn schema() -> RefOr<Schema> {
        let location_id = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "When given, must be the API key's own location (else 403)",
                ))
        };
        let stored = ObjectBuilder::new()
            .title(Some("AnalyzeStoredWorkflow"))
            .property(
                "workflowId",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "A stored workflow's id (an id no workflow can have is 404 like a \
                         missing one)",
                    )),
            )
            .required("workflowId")
            .property("locationId", location_id())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let document = ObjectBuilder::new()
            .title(Some("AnalyzeDocument"))
            .property(
                "workflow",
                Ref::from_schema_name(AnalyzableWorkflow::name()),
            )
            .required("workflow")
            .property("locationId", location_id())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .item(stored)
            .item(document)
            .description(Some(
                "Exactly one of workflowId (a stored workflow) or workflow (a document)",
            ))
            .into()
    }
}

impl ToSchema for AnalyzeRequest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AnalyzeRequest")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            AnalyzableWorkflow::name().into_owned(),
            AnalyzableWorkflow::schema(),
        ));
        AnalyzableWorkflow::schemas(schemas);
    }
}

/// A signed GoHighLevel event (`POST /webhooks/ghl`), as `domain::webhook` reads it.
/// Fields are trimmed; no control characters.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// Deliveries with an id seen before change nothing again.
    #[schema(min_length = 1, max_length = 200)]
    id: String,
    /// `SubscriptionCreated`, `SubscriptionUpdated`, `SubscriptionCanceled`
    /// (`data: {plan, status, currentPeriodEnd}`), `WorkflowUpdated`, `WorkflowDeleted`
    /// (`data: {workflowId}`), `AppUninstall`; others are acknowledged and ignored.
    #[schema(rename = "type", min_length = 1, max_length = 200)]
    event_type: String,
    #[schema(min_length = 1, max_length = 200)]
    location_id: String,
    /// When the event happened; refused (400) when more than `WEBHOOK_TOLERANCE_SECS`
    /// (default 300) from the server's clock. Subscription events older than the last
    /// applied one for the location change nothing.
    timestamp: chrono::DateTime<chrono::Utc>,
    data: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// `GET /api/workflows`: one page of summaries (`{workflows, count, pagination}`, written
/// from the cached list by `services::summary_pages` and `services::overview`).
#[derive(ToSchema)]
#[schema(description = "One page of the caller's workflows")]
pub struct WorkflowList {
    /// `WorkflowSummary` rows; with `include=analysis`, `ScoredWorkflowSummary` rows.
    #[schema(schema_with = list_rows)]
    workflows: Vec<WorkflowSummary>,
    /// Rows on this page.
    count: usize,
    pagination: Pagination,
}

fn list_rows() -> utoipa::openapi::schema::Array {
    // `anyOf`: a scored row is also a plain one (a client may ignore the extra fields).
    let row = AnyOfBuilder::new()
        .item(Ref::from_schema_name(WorkflowSummary::name()))
        .item(Ref::from_schema_name(OverviewRow::name()));
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(row)
        .build()
}

/// The schemas only named through `schema_with` (which records no dependency).
pub fn referenced_by_hand() -> Vec<(String, RefOr<Schema>)> {
    let mut schemas = Vec::new();
    for (name, schema) in [
        (WorkflowSummary::name(), WorkflowSummary::schema()),
        (OverviewRow::name(), OverviewRow::schema()),
    ] {
        schemas.push((name.into_owned(), schema));
    }
    OverviewRow::schemas(&mut schemas);
    schemas
}

/// GoHighLevel workflow-builder JSON, as users capture it (`../shared/ghl/FORMAT.md`).
pub struct GhlDocument;

impl PartialSchema for GhlDocument {
    fn schema() -> RefOr<Schema> {
        // Every object is open (`additionalProperties: true`, said explicitly: the builder's
        // JSON has many more fields, all kept byte for byte).
        let open = || {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        };
        // `templates`, an array (of anything: malformed steps are imported and reported).
        let templates = || {
            open()
                .property("templates", ArrayBuilder::new().items(any_value()))
                .required("templates")
        };
        let builder = open()
            .title(Some("Builder"))
            .property(
                "workflowData",
                open()
                    .property("workflowData", templates())
                    .required("workflowData"),
            )
            .required("workflowData");
        let flat = templates().title(Some("FlatOrBare"));
        let nested = open()
            .title(Some("Nested"))
            .property("workflowData", templates())
            .required("workflowData");
        AnyOfBuilder::new()
            .item(builder)
            .item(flat)
            .item(nested)
            .description(Some(
                "GoHighLevel workflow-builder JSON in any wrapping: the builder's response \
                 {workflowData:{…doc fields, workflowData:{templates}}, triggers}, a flattened \
                 {…doc fields, templates, triggers}, doc fields with workflowData:{templates} \
                 and triggers beside them, or a bare {templates} (looked for in that order: \
                 the first templates found must be an array, else 422; none is 422). Doc \
                 fields read: id/_id (a workflow id once trimmed, not import; else 422), \
                 locationId (the API key's own, else 403), name (at most 500 characters), \
                 status, version, allowMultiple, timezone, stopOnResponse, window, deleted; \
                 docs/ghl.md says how every field and step type is analyzed.",
            ))
            .into()
    }
}

/// Any JSON value (`{}`).
fn any_value() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
}

impl ToSchema for GhlDocument {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("GhlDocument")
    }
}

/// `POST /api/workflows/import`: one document, or an array of 1 to 100.
pub struct GhlImportBody;

impl PartialSchema for GhlImportBody {
    fn schema() -> RefOr<Schema> {
        // Each element is answered on its own (`results[i].status`), so an element in no known
        // shape is a 422 inside a 200, not a refusal of the request.
        let many = ArrayBuilder::new()
            .items(any_value())
            .min_items(Some(1))
            .max_items(Some(crate::services::ghl_import::MAX_IMPORT_DOCUMENTS));
        OneOfBuilder::new()
            .item(Ref::from_schema_name(GhlDocument::name()))
            .item(many)
            .description(Some(
                "One GoHighLevel document, or an array of up to 100 answered item by item (an \
                 element that is no GoHighLevel document gets its 422 in results[i])",
            ))
            .into()
    }
}

impl ToSchema for GhlImportBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("GhlImportBody")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((GhlDocument::name().into_owned(), GhlDocument::schema()));
    }
}

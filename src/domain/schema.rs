//! OpenAPI schemas of domain values (`utoipa::ToSchema`, see `src/http/openapi/`).
//!
//! The domain derives `ToSchema` on the very types serde writes into responses rather than
//! keeping look-alike DTOs in `http/`: the derive only describes a type's serde shape (no
//! I/O, no web framework, so the domain stays pure), and a field added, renamed or made
//! optional changes the document with it. The helpers here describe the values that are
//! `String`s in Rust but come from a fixed set.

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// A string that is one of `values`.
pub fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.into_iter().map(str::to_owned)))
        .build()
}

/// An imported workflow's `sourceFormat`.
pub fn ghl_format() -> Object {
    string_enum(["ghl"])
}

/// A stored workflow's `status`.
pub fn workflow_status() -> Object {
    string_enum(["draft", "published"])
}

/// A health score's grade (CONTRACT §8).
pub fn grade() -> Object {
    string_enum(crate::domain::overview::GRADES)
}

/// `sort=` of the workflow list.
pub fn sort() -> Object {
    let mut schema = string_enum(crate::domain::overview::Sort::ALL.map(|sort| sort.as_str()));
    schema.default = Some(crate::domain::overview::Sort::default().as_str().into());
    schema
}

/// `performance.complexity`.
pub fn complexity() -> Object {
    string_enum(crate::domain::analysis::COMPLEXITIES)
}

/// The schema of [`crate::domain::workflow::WorkflowDocument`], whose serde is written by
/// hand (a lenient parser, a canonical writer), so its schema is too: the document as a
/// client writes it and as `definition` answers it.
///
/// The parser is lenient where the schema is not: ids given as numbers are read as their
/// decimal string, a `status` of any case is accepted, fields of odd shapes read as absent,
/// and unknown fields are dropped when the document is stored.
impl utoipa::PartialSchema for crate::domain::workflow::WorkflowDocument {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <document::WorkflowDocument as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for crate::domain::workflow::WorkflowDocument {
    fn name() -> std::borrow::Cow<'static, str> {
        <document::WorkflowDocument as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <document::WorkflowDocument as utoipa::ToSchema>::schemas(schemas)
    }
}

/// The document's shape, for its schema only (never built: the parser reads a
/// `serde_json::Value`). Constraints are the ones `validate_for_storage` and
/// `crate::domain::limits` enforce on `PUT`; limits that depend on the deployment
/// (`MAX_WORKFLOW_STEPS`) or count bytes rather than characters are in the descriptions.
#[allow(dead_code)]
mod document {
    use std::collections::BTreeMap;

    use serde_json::Value;
    use utoipa::ToSchema;

    /// CONTRACT §7. `id`, `locationId`, `version` and timestamps in a body are ignored.
    /// Document size limits (422 `VALIDATION_ERROR` naming the field and the limit, on `PUT`
    /// and on `POST /api/analyze {workflow}`): steps `MAX_WORKFLOW_STEPS` (default 5000);
    /// triggers 100; branches per step 100; entries of `config.tags` / `filters.tags` 100;
    /// any string 131072 bytes; ids, step references (`start`, `next`, `else`,
    /// `branches[].next`) and object keys 256 bytes; objects/arrays inside `config`,
    /// `filters` or a condition 32 levels deep. No string or key may contain a NUL
    /// character (U+0000).
    #[derive(ToSchema)]
    #[schema(rename_all = "camelCase")]
    pub struct WorkflowDocument {
        /// Not blank.
        #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
        name: String,
        /// `draft` when absent.
        #[schema(schema_with = super::workflow_status)]
        status: Option<String>,
        settings: Option<WorkflowSettings>,
        /// Trigger ids are unique within the document.
        #[schema(max_items = 100)]
        triggers: Option<Vec<Trigger>>,
        /// The entry step's id (else the first step).
        start: Option<String>,
        /// Step ids are unique within the document.
        steps: Option<Vec<Step>>,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "camelCase", as = WorkflowSettings)]
    pub struct WorkflowSettings {
        allow_reentry: Option<bool>,
        stop_on_response: Option<bool>,
        time_window: Option<TimeWindow>,
    }

    #[derive(ToSchema)]
    pub struct TimeWindow {
        /// `HH:MM`.
        start: Option<String>,
        /// `HH:MM`.
        end: Option<String>,
        /// `mon` … `sun`.
        days: Option<Vec<String>>,
        /// An IANA time zone, e.g. `America/Chicago`.
        timezone: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct Trigger {
        /// Not blank.
        #[schema(min_length = 1, pattern = r"\S")]
        id: String,
        /// `contact_created`, `contact_changed`, `contact_tag_added`, `contact_tag_removed`,
        /// `form_submitted`, `appointment_status`, `opportunity_status_changed`,
        /// `pipeline_stage_changed`, `inbound_webhook`, `customer_replied`,
        /// `birthday_reminder`, `payment_received`, `added_to_workflow`; unknown types are
        /// kept and reported.
        #[schema(rename = "type")]
        trigger_type: Option<String>,
        name: Option<String>,
        filters: Option<BTreeMap<String, Value>>,
    }

    #[derive(ToSchema)]
    pub struct Step {
        /// Not blank.
        #[schema(min_length = 1, pattern = r"\S")]
        id: String,
        /// `send_email`, `send_sms`, `wait`, `if_else`, `goto`, `split`, `add_tag`,
        /// `remove_tag`, `update_contact_field`, `webhook`, `add_to_workflow`,
        /// `remove_from_workflow`, `create_opportunity`, `update_opportunity`,
        /// `assign_user`, `internal_notification`, `goal_event`, `drip`, `custom_code`,
        /// `end`; unknown types are kept and reported.
        #[schema(rename = "type")]
        step_type: Option<String>,
        name: Option<String>,
        config: Option<BTreeMap<String, Value>>,
        /// The next step's id.
        next: Option<String>,
        /// `if_else`: the first branch whose condition matches; `split`: by `percent`.
        #[schema(max_items = 100)]
        branches: Option<Vec<Branch>>,
        /// `if_else`: the step when no branch matches.
        #[schema(rename = "else")]
        else_next: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct Branch {
        name: Option<String>,
        condition: Option<Value>,
        /// `split`: the share of contacts, in percent (a numeric string is accepted).
        percent: Option<f64>,
        next: Option<String>,
    }
}

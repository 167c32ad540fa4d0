//! The CONTRACT §7 workflow document.
//!
//! Parsing is lenient: [`WorkflowDocument::from_json`] accepts any JSON object, keeps unknown
//! step and trigger types as `Unknown(..)`, and only fails when the value is not an object or
//! a structural field has an unusable shape (`steps`/`triggers` not arrays, an element not an
//! object). Storage rules live in [`validate_for_storage`].
//!
//! Decisions:
//! - A missing `status` defaults to `draft`; any other value than draft/published
//!   (case-insensitive) is kept as [`WorkflowStatus::Invalid`] and rejected by
//!   [`validate_for_storage`]; the analysis treats it like a draft.
//! - Ids and step references given as JSON numbers are read as their decimal string.
//! - Fields with odd shapes (e.g. `name: 5`, `config: []`) read as empty/absent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// One offending field of a document, e.g. `{field: "steps[2].id", message: "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowStatus {
    Draft,
    Published,
    /// Any other value, kept verbatim so validation can name it.
    Invalid(String),
}

impl WorkflowStatus {
    pub fn as_str(&self) -> &str {
        match self {
            WorkflowStatus::Draft => "draft",
            WorkflowStatus::Published => "published",
            WorkflowStatus::Invalid(s) => s,
        }
    }
    pub fn is_published(&self) -> bool {
        matches!(self, WorkflowStatus::Published)
    }
}

/// Normalizes a type name: trimmed, lower-case, `-` and spaces become `_`. A name already in
/// that form (nearly every one) is borrowed, not copied: every step's type is read this way.
pub fn normalize_type_name(raw: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = raw.trim();
    let plain = trimmed
        .bytes()
        .all(|b| b != b'-' && b != b' ' && !b.is_ascii_uppercase());
    if plain {
        return std::borrow::Cow::Borrowed(trimmed);
    }
    std::borrow::Cow::Owned(
        trimmed
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect(),
    )
}

macro_rules! type_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// An unrecognised type, kept as written (empty when absent).
            Unknown(String),
        }
        impl $name {
            /// Case-insensitive, tolerant of `-`/space for `_`.
            pub fn parse(raw: &str) -> Self {
                match normalize_type_name(raw).as_ref() {
                    $($text => $name::$variant,)*
                    _ => $name::Unknown(raw.to_string()),
                }
            }
            /// Canonical name (the original text for unknown types).
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown(s) => s,
                }
            }
            pub fn is_unknown(&self) -> bool {
                matches!(self, $name::Unknown(_))
            }
        }
    };
}

type_enum!(StepType {
    SendEmail => "send_email",
    SendSms => "send_sms",
    Wait => "wait",
    IfElse => "if_else",
    Goto => "goto",
    Split => "split",
    AddTag => "add_tag",
    RemoveTag => "remove_tag",
    UpdateContactField => "update_contact_field",
    Webhook => "webhook",
    AddToWorkflow => "add_to_workflow",
    RemoveFromWorkflow => "remove_from_workflow",
    CreateOpportunity => "create_opportunity",
    UpdateOpportunity => "update_opportunity",
    AssignUser => "assign_user",
    InternalNotification => "internal_notification",
    GoalEvent => "goal_event",
    Drip => "drip",
    CustomCode => "custom_code",
    End => "end",
});

type_enum!(TriggerType {
    ContactCreated => "contact_created",
    ContactChanged => "contact_changed",
    ContactTagAdded => "contact_tag_added",
    ContactTagRemoved => "contact_tag_removed",
    FormSubmitted => "form_submitted",
    AppointmentStatus => "appointment_status",
    OpportunityStatusChanged => "opportunity_status_changed",
    PipelineStageChanged => "pipeline_stage_changed",
    InboundWebhook => "inbound_webhook",
    CustomerReplied => "customer_replied",
    BirthdayReminder => "birthday_reminder",
    PaymentReceived => "payment_received",
    AddedToWorkflow => "added_to_workflow",
});

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeWindow {
    pub start: Option<String>,
    pub end: Option<String>,
    pub days: Vec<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkflowSettings {
    pub allow_reentry: bool,
    pub stop_on_response: bool,
    pub time_window: Option<TimeWindow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub id: String,
    pub trigger_type: TriggerType,
    pub name: Option<String>,
    pub filters: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub name: Option<String>,
    pub condition: Value,
    pub next: Option<String>,
    /// `split` share; numeric strings are accepted. `None` when absent or not a number.
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub step_type: StepType,
    pub name: Option<String>,
    /// The step's original `config` object (empty when absent or not an object).
    pub config: Map<String, Value>,
    pub next: Option<String>,
    pub branches: Vec<Branch>,
    pub else_next: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDocument {
    pub name: String,
    pub status: WorkflowStatus,
    pub settings: WorkflowSettings,
    pub triggers: Vec<Trigger>,
    pub start: Option<String>,
    pub steps: Vec<Step>,
}

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn obj_of(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn bool_of(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

/// Reads a number or a numeric string.
pub fn number_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
}

/// Reads an optional array field: absent/null → empty, array → items, else an error.
fn array_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> &'a [Value] {
    match obj.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(FieldError::new(path, "must be an array"));
            &[]
        }
    }
}

fn parse_time_window(v: Option<&Value>) -> Option<TimeWindow> {
    let o = v?.as_object()?;
    Some(TimeWindow {
        start: str_of(o.get("start")),
        end: str_of(o.get("end")),
        days: o
            .get("days")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        timezone: str_of(o.get("timezone")),
    })
}

fn time_window_json(tw: &TimeWindow) -> Value {
    let mut o = Map::new();
    if let Some(s) = &tw.start {
        o.insert("start".into(), Value::String(s.clone()));
    }
    if let Some(s) = &tw.end {
        o.insert("end".into(), Value::String(s.clone()));
    }
    o.insert(
        "days".into(),
        Value::Array(tw.days.iter().cloned().map(Value::String).collect()),
    );
    if let Some(s) = &tw.timezone {
        o.insert("timezone".into(), Value::String(s.clone()));
    }
    Value::Object(o)
}

impl WorkflowDocument {
    /// Lenient parse of a §7 document (see module docs).
    pub fn from_json(value: &Value) -> Result<WorkflowDocument, Vec<FieldError>> {
        let Some(root) = value.as_object() else {
            return Err(vec![FieldError::new(
                "$",
                "the workflow must be a JSON object",
            )]);
        };
        let mut errors = Vec::new();
        let status = parse_status(root.get("status"));
        let settings = parse_settings(root.get("settings"));
        let triggers = parse_triggers(root, &mut errors);
        let steps = parse_steps(root, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(WorkflowDocument {
            name: str_of(root.get("name")).unwrap_or_default(),
            status,
            settings,
            triggers,
            start: id_of(root.get("start")),
            steps,
        })
    }

    /// Canonical §7 JSON; `from_json(&doc.to_json())` gives back an equal document.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        root.insert("name".into(), Value::String(self.name.clone()));
        root.insert(
            "status".into(),
            Value::String(self.status.as_str().to_string()),
        );
        root.insert("settings".into(), settings_json(&self.settings));
        root.insert(
            "triggers".into(),
            Value::Array(self.triggers.iter().map(trigger_json).collect()),
        );
        if let Some(s) = &self.start {
            root.insert("start".into(), Value::String(s.clone()));
        }
        root.insert(
            "steps".into(),
            Value::Array(self.steps.iter().map(step_json).collect()),
        );
        Value::Object(root)
    }
}

/// A document's `status` (also a GoHighLevel document's: the same words).
pub(crate) fn parse_status(v: Option<&Value>) -> WorkflowStatus {
    match v {
        None | Some(Value::Null) => WorkflowStatus::Draft,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "draft" => WorkflowStatus::Draft,
            "published" => WorkflowStatus::Published,
            _ => WorkflowStatus::Invalid(s.clone()),
        },
        Some(other) => WorkflowStatus::Invalid(other.to_string()),
    }
}

fn parse_settings(v: Option<&Value>) -> WorkflowSettings {
    let settings_obj = obj_of(v);
    WorkflowSettings {
        allow_reentry: bool_of(settings_obj.get("allowReentry")),
        stop_on_response: bool_of(settings_obj.get("stopOnResponse")),
        time_window: parse_time_window(settings_obj.get("timeWindow")),
    }
}

fn parse_triggers(root: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<Trigger> {
    let mut triggers = Vec::new();
    for (i, t) in array_field(root, "triggers", "triggers", errors)
        .iter()
        .enumerate()
    {
        let Some(t) = t.as_object() else {
            errors.push(FieldError::new(
                format!("triggers[{i}]"),
                "must be an object",
            ));
            continue;
        };
        triggers.push(Trigger {
            id: id_of(t.get("id")).unwrap_or_default(),
            trigger_type: TriggerType::parse(t.get("type").and_then(Value::as_str).unwrap_or("")),
            name: str_of(t.get("name")),
            filters: obj_of(t.get("filters")),
        });
    }
    triggers
}

fn parse_steps(root: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, s) in array_field(root, "steps", "steps", errors)
        .iter()
        .enumerate()
    {
        let Some(s) = s.as_object() else {
            errors.push(FieldError::new(format!("steps[{i}]"), "must be an object"));
            continue;
        };
        steps.push(Step {
            id: id_of(s.get("id")).unwrap_or_default(),
            step_type: StepType::parse(s.get("type").and_then(Value::as_str).unwrap_or("")),
            name: str_of(s.get("name")),
            config: obj_of(s.get("config")),
            next: id_of(s.get("next")),
            branches: parse_branches(s.get("branches")),
            else_next: id_of(s.get("else")),
        });
    }
    steps
}

/// Items that are not objects are skipped, as a non-array is.
fn parse_branches(v: Option<&Value>) -> Vec<Branch> {
    v.and_then(Value::as_array)
        .map(|bs| {
            bs.iter()
                .filter_map(Value::as_object)
                .map(|b| Branch {
                    name: str_of(b.get("name")),
                    condition: b.get("condition").cloned().unwrap_or(Value::Null),
                    next: id_of(b.get("next")),
                    percent: number_of(b.get("percent")),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn settings_json(settings: &WorkflowSettings) -> Value {
    let mut o = Map::new();
    o.insert("allowReentry".into(), Value::Bool(settings.allow_reentry));
    o.insert(
        "stopOnResponse".into(),
        Value::Bool(settings.stop_on_response),
    );
    if let Some(tw) = &settings.time_window {
        o.insert("timeWindow".into(), time_window_json(tw));
    }
    Value::Object(o)
}

fn trigger_json(t: &Trigger) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::String(t.id.clone()));
    o.insert(
        "type".into(),
        Value::String(t.trigger_type.as_str().to_string()),
    );
    if let Some(n) = &t.name {
        o.insert("name".into(), Value::String(n.clone()));
    }
    o.insert("filters".into(), Value::Object(t.filters.clone()));
    Value::Object(o)
}

fn step_json(s: &Step) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::String(s.id.clone()));
    o.insert(
        "type".into(),
        Value::String(s.step_type.as_str().to_string()),
    );
    if let Some(n) = &s.name {
        o.insert("name".into(), Value::String(n.clone()));
    }
    o.insert("config".into(), Value::Object(s.config.clone()));
    if let Some(n) = &s.next {
        o.insert("next".into(), Value::String(n.clone()));
    }
    if !s.branches.is_empty() {
        o.insert(
            "branches".into(),
            Value::Array(s.branches.iter().map(branch_json).collect()),
        );
    }
    if let Some(e) = &s.else_next {
        o.insert("else".into(), Value::String(e.clone()));
    }
    Value::Object(o)
}

fn branch_json(b: &Branch) -> Value {
    let mut o = Map::new();
    if let Some(n) = &b.name {
        o.insert("name".into(), Value::String(n.clone()));
    }
    if !b.condition.is_null() {
        o.insert("condition".into(), b.condition.clone());
    }
    if let Some(n) = &b.next {
        o.insert("next".into(), Value::String(n.clone()));
    }
    if let Some(p) = b.percent.and_then(serde_json::Number::from_f64) {
        o.insert("percent".into(), Value::Number(p));
    }
    Value::Object(o)
}

impl Serialize for WorkflowDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WorkflowDocument {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        WorkflowDocument::from_json(&value).map_err(|errs| {
            let text: Vec<String> = errs
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            serde::de::Error::custom(text.join("; "))
        })
    }
}

/// What storing a document (API PUT) requires. Returns every offending field.
pub fn validate_for_storage(
    doc: &WorkflowDocument,
    max_steps: usize,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if doc.name.trim().is_empty() {
        errors.push(FieldError::new(
            "name",
            "is required and must be a non-empty string",
        ));
    }
    if let WorkflowStatus::Invalid(s) = &doc.status {
        errors.push(FieldError::new(
            "status",
            format!("must be \"draft\" or \"published\", got {s}"),
        ));
    }
    errors.extend(crate::domain::limits::check_document_limits(doc, max_steps));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in doc.steps.iter().enumerate() {
        if s.id.trim().is_empty() {
            errors.push(FieldError::new(format!("steps[{i}].id"), "is required"));
        } else if let Some(first) = seen.get(s.id.as_str()) {
            errors.push(FieldError::new(
                format!("steps[{i}].id"),
                format!("duplicate step id \"{}\" (also steps[{first}].id)", s.id),
            ));
        } else {
            seen.insert(&s.id, i);
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, t) in doc.triggers.iter().enumerate() {
        if t.id.trim().is_empty() {
            errors.push(FieldError::new(format!("triggers[{i}].id"), "is required"));
        } else if let Some(first) = seen.get(t.id.as_str()) {
            errors.push(FieldError::new(
                format!("triggers[{i}].id"),
                format!(
                    "duplicate trigger id \"{}\" (also triggers[{first}].id)",
                    t.id
                ),
            ));
        } else {
            seen.insert(&t.id, i);
        }
    }
    errors.extend(super::stored_text::workflow_document(doc));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What storing an imported GoHighLevel document requires: the size limits and text Postgres
/// can hold. Unlike [`validate_for_storage`] it keeps what the analysis reports (duplicate or
/// missing ids, an unknown status): the builder's JSON is stored as it is, defects included.
pub fn validate_imported_for_storage(
    doc: &WorkflowDocument,
    max_steps: usize,
) -> Result<(), Vec<FieldError>> {
    let mut errors = crate::domain::limits::check_document_limits(doc, max_steps);
    errors.extend(super::stored_text::workflow_document(doc));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> Value {
        json!({
          "name": "New lead nurture", "status": "published",
          "settings": { "allowReentry": false, "stopOnResponse": true,
            "timeWindow": { "start": "08:00", "end": "20:00", "days": ["mon","tue"], "timezone": "America/Chicago" } },
          "triggers": [ { "id": "t1", "type": "contact_tag_added", "name": "Tag", "filters": { "tag": "lead" } } ],
          "start": "s1",
          "steps": [
            { "id": "s1", "type": "send_email", "name": "Welcome", "config": { "subject": "Hi", "body": "x" }, "next": "s2" },
            { "id": "s2", "type": "wait", "config": { "duration": "1d" }, "next": "s3" },
            { "id": "s3", "type": "if_else", "branches": [ { "name": "R", "condition": { "field": "contact.replied" }, "next": "s4" } ], "else": "s5" },
            { "id": "s4", "type": "add_tag", "config": { "tag": "engaged" } },
            { "id": "s5", "type": "split", "branches": [ { "percent": 50, "next": "s4" }, { "percent": 50.5 } ] }
          ]
        })
    }

    #[test]
    fn parses_and_round_trips() {
        let doc = WorkflowDocument::from_json(&example()).expect("parses");
        assert_eq!(doc.steps.len(), 5);
        assert_eq!(doc.status, WorkflowStatus::Published);
        assert_eq!(doc.steps[2].else_next.as_deref(), Some("s5"));
        let again = WorkflowDocument::from_json(&doc.to_json()).expect("parses again");
        assert_eq!(doc, again);
    }

    #[test]
    fn type_names_are_tolerant_and_unknowns_kept() {
        assert_eq!(StepType::parse("Send_SMS"), StepType::SendSms);
        assert_eq!(StepType::parse("send-sms"), StepType::SendSms);
        assert_eq!(StepType::parse(" If Else "), StepType::IfElse);
        assert_eq!(
            StepType::parse("teleport"),
            StepType::Unknown("teleport".into())
        );
        assert_eq!(
            TriggerType::parse("Contact-Tag-Added"),
            TriggerType::ContactTagAdded
        );
    }

    #[test]
    fn structural_errors_are_reported() {
        assert!(WorkflowDocument::from_json(&json!([1])).is_err());
        let errs = WorkflowDocument::from_json(&json!({"steps": 3, "triggers": [1]}))
            .expect_err("unusable");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["triggers[0]", "steps"]);
        // Odd shapes inside are tolerated.
        let doc =
            WorkflowDocument::from_json(&json!({"name": 3, "steps": [{"id": 7, "config": []}]}))
                .expect("lenient");
        assert_eq!(doc.steps[0].id, "7");
        assert_eq!(doc.status, WorkflowStatus::Draft);
    }

    #[test]
    fn storage_validation_reports_every_field() {
        let doc = WorkflowDocument::from_json(&json!({
            "name": " ", "status": "archived",
            "triggers": [{"id": "t"}, {"id": "t"}],
            "steps": [{"id": "a"}, {"id": ""}, {"id": "a"}]
        }))
        .expect("parses");
        let errs = validate_for_storage(&doc, 2).expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "name",
                "status",
                "steps",
                "steps[1].id",
                "steps[2].id",
                "triggers[1].id"
            ]
        );
        let ok = WorkflowDocument::from_json(&example()).expect("parses");
        assert!(validate_for_storage(&ok, 5000).is_ok());
    }
}

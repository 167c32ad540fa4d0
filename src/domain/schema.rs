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

/// `status` of a document a client sends: `null` is the same as leaving it out (`draft`).
pub fn workflow_status_or_null() -> Object {
    use utoipa::openapi::schema::SchemaType;
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([
            serde_json::Value::from("draft"),
            serde_json::Value::from("published"),
            serde_json::Value::Null,
        ]))
        .build()
}

/// The characters Rust's `str::trim` removes (Unicode `White_Space`), as the body of a regex
/// character class. Spelled out because `\s` differs between regex dialects (Python's, which
/// Schemathesis generates with, also counts U+001C-U+001F; ECMAScript's counts U+FEFF), and a
/// schema must say exactly what the server's `trim` does.
const WHITE_SPACE: &str =
    r"\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Text with a character other than white space and no NUL character: what
/// `validate_for_storage` and `stored_text` accept for a workflow's name, a trigger's or a
/// step's id (`name.trim().is_empty()` is refused; Postgres text cannot hold U+0000).
pub fn not_blank_pattern() -> String {
    format!(r"^[^\x00]*[^\x00{WHITE_SPACE}][^\x00]*$")
}

/// Text that, once trimmed of white space, is 1 to `max_chars` characters without a NUL
/// character: what a handler that trims before it checks the length accepts.
pub fn trimmed_text_pattern(max_chars: usize) -> String {
    let inner = max_chars.saturating_sub(2);
    format!(
        r"^[{WHITE_SPACE}]*[^\x00{WHITE_SPACE}]([^\x00]{{0,{inner}}}[^\x00{WHITE_SPACE}])?[{WHITE_SPACE}]*$"
    )
}

/// A string that is not blank (see [`not_blank_pattern`]), with `description`.
pub fn not_blank_string(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .pattern(Some(not_blank_pattern()))
        .description(Some(description))
        .build()
}

/// A health score's grade (CONTRACT §8).
pub fn grade() -> Object {
    string_enum(crate::domain::overview::GRADES)
}

/// `grade=` of the workflow list: one or more grades, comma-separated, each in any ASCII case
/// with spaces around it (what `RowFilter::parse_grades` accepts; other blanks are refused).
pub fn grade_list() -> Object {
    let one = crate::domain::overview::GRADES
        .iter()
        .map(|grade| {
            grade
                .chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|");
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^ *({one}) *(, *({one}) *)*$")))
        .description(Some(format!(
            "Only workflows with one of these grades ({}; comma-separated, any case); rows \
             without a score are left out",
            crate::domain::overview::GRADES.join(", ")
        )))
        .build()
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

/// What `POST /api/analyze {workflow}` takes: the document's shape with nothing required.
pub use document::AnalyzableWorkflow;

/// The document's shape, for its schema only (never built: the parser reads a
/// `serde_json::Value`). Constraints are the ones `check_shape`, `validate_for_storage`,
/// `stored_text` and `crate::domain::limits` enforce on `PUT`; limits that depend on the
/// deployment (`MAX_WORKFLOW_STEPS`) or count bytes rather than characters are in the
/// descriptions. `null` is the same as leaving a field out (`check_shape`), hence the
/// nullable optional fields.
#[allow(dead_code)]
mod document {
    use std::collections::BTreeMap;

    use serde_json::Value;
    use utoipa::openapi::schema::Object;
    use utoipa::ToSchema;

    fn name() -> Object {
        let mut schema = super::not_blank_string(
            "Not blank (a character other than white space), at most 500 characters.",
        );
        schema.max_length = Some(*crate::domain::stored_text::WORKFLOW_NAME_CHARS.end());
        schema
    }

    fn id() -> Object {
        super::not_blank_string(
            "Not blank (a character other than white space); at most 256 bytes.",
        )
    }

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
        #[schema(schema_with = name)]
        name: String,
        /// `draft` when absent.
        #[schema(schema_with = super::workflow_status_or_null)]
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

    /// A document to analyze without storing it: the same shape and size limits as
    /// `WorkflowDocument`, but nothing is required, names and ids may be blank and ids may
    /// repeat (the analysis reports such defects instead of refusing them).
    #[derive(ToSchema)]
    #[schema(rename_all = "camelCase")]
    pub struct AnalyzableWorkflow {
        name: Option<String>,
        /// `draft` when absent.
        #[schema(schema_with = super::workflow_status_or_null)]
        status: Option<String>,
        settings: Option<WorkflowSettings>,
        #[schema(max_items = 100)]
        triggers: Option<Vec<AnalyzableTrigger>>,
        /// The entry step's id (else the first step).
        start: Option<String>,
        steps: Option<Vec<AnalyzableStep>>,
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
        #[schema(schema_with = id)]
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

    /// A trigger of a document only analyzed: its id may be missing, blank or repeated.
    #[derive(ToSchema)]
    pub struct AnalyzableTrigger {
        id: Option<String>,
        /// As in `Trigger`.
        #[schema(rename = "type")]
        trigger_type: Option<String>,
        name: Option<String>,
        filters: Option<BTreeMap<String, Value>>,
    }

    #[derive(ToSchema)]
    pub struct Step {
        #[schema(schema_with = id)]
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

    /// A step of a document only analyzed: its id may be missing, blank or repeated.
    #[derive(ToSchema)]
    pub struct AnalyzableStep {
        id: Option<String>,
        /// As in `Step`.
        #[schema(rename = "type")]
        step_type: Option<String>,
        name: Option<String>,
        config: Option<BTreeMap<String, Value>>,
        /// The next step's id.
        next: Option<String>,
        #[schema(max_items = 100)]
        branches: Option<Vec<Branch>>,
        /// `if_else`: the step when no branch matches.
        #[schema(rename = "else")]
        else_next: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct Branch {
        name: Option<String>,
        /// `if_else`: the branch's condition (an object; its keys are up to the builder).
        condition: Option<BTreeMap<String, Value>>,
        /// `split`: the share of contacts, in percent.
        percent: Option<f64>,
        next: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::overview::RowFilter;
    use crate::domain::stored_text::{check_text, LOCATION_NAME_CHARS};

    /// Whether `text` matches `pattern` as a JSON Schema validator reads it.
    fn matches(pattern: &str, text: &str) -> bool {
        jsonschema::is_valid(&json!({"type": "string", "pattern": pattern}), &json!(text))
    }

    /// Characters `str::trim` removes and look-alikes it keeps (U+001C, U+FEFF, U+200B).
    const SPACES: [&str; 6] = [" ", "\t", "\u{85}", "\u{3000}", "\u{2028}", "\u{a0}"];
    const NOT_SPACES: [&str; 3] = ["\u{1c}", "\u{feff}", "\u{200b}"];

    #[test]
    fn not_blank_is_what_trim_leaves_something_of() {
        let mut samples = vec!["", "a", " a ", "\0", "a\0", "\u{1f600}"];
        samples.extend(SPACES);
        samples.extend(NOT_SPACES);
        let doubled: Vec<String> = SPACES.iter().map(|s| s.repeat(2)).collect();
        samples.extend(doubled.iter().map(String::as_str));
        for text in samples {
            let accepted = !text.trim().is_empty() && !text.contains('\0');
            assert_eq!(matches(&not_blank_pattern(), text), accepted, "{text:?}");
        }
    }

    #[test]
    fn trimmed_text_is_what_the_location_name_check_accepts() {
        let pattern = trimmed_text_pattern(*LOCATION_NAME_CHARS.end());
        let mut samples: Vec<String> = ["", " ", "a", " a ", "a b", "\u{3000}a\u{85}", "a\0"]
            .map(str::to_owned)
            .to_vec();
        samples.extend(NOT_SPACES.map(str::to_owned));
        for n in [199, 200, 201] {
            samples.push("x".repeat(n));
            samples.push(format!("  {}\t", "é".repeat(n)));
            samples.push(format!("a{}b", " ".repeat(n.saturating_sub(2))));
        }
        for text in &samples {
            let trimmed = text.trim();
            let accepted = check_text("name", trimmed, LOCATION_NAME_CHARS).is_none();
            assert_eq!(matches(&pattern, text), accepted, "{text:?}");
        }
    }

    #[test]
    fn the_grade_pattern_is_what_the_list_filter_accepts() {
        let pattern = grade_list().pattern.expect("a pattern");
        for text in [
            "",
            " ",
            ",",
            "Good",
            "good",
            "GOOD",
            " good , critical ",
            "needs attention",
            "Needs  Attention",
            "High Risk,High Risk",
            "Good,",
            ",Good",
            "Good,,Critical",
            "Good\t",
            "Goodish",
            "Excellent,Good,Needs Attention,High Risk,Critical",
        ] {
            let mut errors = Vec::new();
            RowFilter::parse_grades(text, &mut errors);
            assert_eq!(matches(&pattern, text), errors.is_empty(), "{text:?}");
        }
    }
}

//! Document size limits: how much one workflow document may hold.
//!
//! Every rule of the analyzer is linear (or n log n) in the document, but a hostile tenant
//! still decides how big "n" is. These limits bound it at sizes real GoHighLevel workflows
//! never come near, so an analysis at the limits stays in the tens of milliseconds
//! (BENCHMARKS.md, "Analyzer worst cases"). They apply wherever a document enters: a stored
//! workflow (`PUT`), an ad-hoc `POST /api/analyze {workflow}` and the offline CLI analyzer.
//! Each breach is one [`FieldError`] naming the field and the limit, e.g.
//! `steps[3].config.tags: has 1200 tags; the maximum is 100`.

use crate::domain::workflow::{FieldError, WorkflowDocument};
use serde_json::{Map, Value};

/// Steps per document when `MAX_WORKFLOW_STEPS` is not set (the CLI always uses it).
pub const DEFAULT_MAX_STEPS: usize = 5_000;
/// Triggers per document.
pub const MAX_TRIGGERS: usize = 100;
/// `branches` of one step.
pub const MAX_BRANCHES_PER_STEP: usize = 100;
/// Entries of `config.tags` of a step, or of `filters.tags` of a trigger.
pub const MAX_TAGS_PER_STEP: usize = 100;
/// Bytes of any string value (a `custom_code` body, a message, a URL…).
pub const MAX_STRING_BYTES: usize = 128 * 1024;
/// Bytes of a step or trigger id, of a step reference (`start`, `next`, `else`, a
/// branch's `next`) and of an object key inside `config`, `filters` or a condition. Ids are
/// repeated in findings (a step can be named by many of them), so they are kept short.
pub const MAX_ID_BYTES: usize = 256;
/// Levels of objects/arrays inside a step's `config`, a trigger's `filters` or a branch's
/// `condition` (the object itself is level 1).
pub const MAX_NESTING_DEPTH: usize = 32;
/// Limit errors reported for one document; the rest are summed up in one more entry.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// Every limit `doc` breaks (empty when it is within all of them). `max_steps` is the
/// deployment's `MAX_WORKFLOW_STEPS`.
pub fn check_document_limits(doc: &WorkflowDocument, max_steps: usize) -> Vec<FieldError> {
    let mut c = Collector::default();
    c.string("name", &doc.name);
    if doc.steps.len() > max_steps {
        c.push(
            "steps".to_string(),
            format!("has {} steps; the maximum is {max_steps}", doc.steps.len()),
        );
    }
    if doc.triggers.len() > MAX_TRIGGERS {
        c.push(
            "triggers".to_string(),
            format!(
                "has {} triggers; the maximum is {MAX_TRIGGERS}",
                doc.triggers.len()
            ),
        );
    }
    if let Some(start) = &doc.start {
        c.id(|| "start".to_string(), start);
    }
    if let Some(tw) = &doc.settings.time_window {
        let strings = [&tw.start, &tw.end, &tw.timezone];
        for (key, s) in ["start", "end", "timezone"].iter().zip(strings) {
            if let Some(s) = s {
                c.string_with(|| format!("settings.timeWindow.{key}"), s);
            }
        }
        for (i, day) in tw.days.iter().enumerate() {
            c.string_with(|| format!("settings.timeWindow.days[{i}]"), day);
        }
    }
    for (i, t) in doc.triggers.iter().enumerate() {
        c.id(|| format!("triggers[{i}].id"), &t.id);
        if let Some(n) = &t.name {
            c.string_with(|| format!("triggers[{i}].name"), n);
        }
        c.tags(|| format!("triggers[{i}].filters.tags"), &t.filters);
        c.object(format!("triggers[{i}].filters"), &t.filters);
    }
    for (i, s) in doc.steps.iter().enumerate() {
        c.id(|| format!("steps[{i}].id"), &s.id);
        if let Some(n) = &s.name {
            c.string_with(|| format!("steps[{i}].name"), n);
        }
        if let Some(n) = &s.next {
            c.id(|| format!("steps[{i}].next"), n);
        }
        if let Some(n) = &s.else_next {
            c.id(|| format!("steps[{i}].else"), n);
        }
        c.tags(|| format!("steps[{i}].config.tags"), &s.config);
        c.object(format!("steps[{i}].config"), &s.config);
        if s.branches.len() > MAX_BRANCHES_PER_STEP {
            c.push(
                format!("steps[{i}].branches"),
                format!(
                    "has {} branches; the maximum is {MAX_BRANCHES_PER_STEP}",
                    s.branches.len()
                ),
            );
        }
        for (b, branch) in s.branches.iter().enumerate() {
            if let Some(n) = &branch.name {
                c.string_with(|| format!("steps[{i}].branches[{b}].name"), n);
            }
            if let Some(n) = &branch.next {
                c.id(|| format!("steps[{i}].branches[{b}].next"), n);
            }
            let mut path = format!("steps[{i}].branches[{b}].condition");
            c.value(&branch.condition, &mut path, 1);
        }
    }
    c.finish()
}

#[derive(Default)]
struct Collector {
    errors: Vec<FieldError>,
    /// Errors found beyond [`MAX_REPORTED_ERRORS`].
    more: usize,
}

impl Collector {
    fn push(&mut self, field: String, message: String) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(FieldError::new(field, message));
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<FieldError> {
        if self.more > 0 {
            self.errors.push(FieldError::new(
                "$",
                format!(
                    "{} more field{} over a size limit (only the first {MAX_REPORTED_ERRORS} are listed)",
                    self.more,
                    if self.more == 1 { " is" } else { "s are" }
                ),
            ));
        }
        self.errors
    }

    fn string(&mut self, field: &str, s: &str) {
        self.string_with(|| field.to_string(), s);
    }

    /// The field's path is only built when the string is over the limit.
    fn string_with(&mut self, field: impl FnOnce() -> String, s: &str) {
        if s.len() > MAX_STRING_BYTES {
            self.push(
                field(),
                format!(
                    "is {} bytes long; the maximum is {MAX_STRING_BYTES} bytes",
                    s.len()
                ),
            );
        }
    }

    fn id(&mut self, field: impl FnOnce() -> String, s: &str) {
        if s.len() > MAX_ID_BYTES {
            self.push(
                field(),
                format!(
                    "is {} bytes long; the maximum for an id is {MAX_ID_BYTES} bytes",
                    s.len()
                ),
            );
        }
    }

    fn tags(&mut self, field: impl FnOnce() -> String, holder: &Map<String, Value>) {
        if let Some(Value::Array(tags)) = holder.get("tags") {
            if tags.len() > MAX_TAGS_PER_STEP {
                self.push(
                    field(),
                    format!(
                        "has {} tags; the maximum is {MAX_TAGS_PER_STEP}",
                        tags.len()
                    ),
                );
            }
        }
    }

    fn object(&mut self, mut path: String, map: &Map<String, Value>) {
        self.entries(map, &mut path, 1);
    }

    /// `depth` is the nesting level of `v` when it is a container (1 for the top object).
    /// Recursion is bounded by [`MAX_NESTING_DEPTH`]: deeper values are reported, not
    /// entered.
    fn value(&mut self, v: &Value, path: &mut String, depth: usize) {
        match v {
            Value::String(s) => self.string_with(|| path.clone(), s),
            Value::Array(_) | Value::Object(_) if depth > MAX_NESTING_DEPTH => self.push(
                path.clone(),
                format!("nests deeper than {MAX_NESTING_DEPTH} levels of objects and arrays"),
            ),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.value(item, path, depth + 1);
                    path.truncate(len);
                }
            }
            Value::Object(map) => self.entries(map, path, depth),
            _ => {}
        }
    }

    fn entries(&mut self, map: &Map<String, Value>, path: &mut String, depth: usize) {
        for (key, v) in map {
            if key.len() > MAX_ID_BYTES {
                self.push(
                    path.clone(),
                    format!(
                        "has a key of {} bytes; the maximum for a key is {MAX_ID_BYTES} bytes",
                        key.len()
                    ),
                );
                continue;
            }
            let len = path.len();
            path.push('.');
            path.push_str(key);
            self.value(v, path, depth + 1);
            path.truncate(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> WorkflowDocument {
        WorkflowDocument::from_json(&v).expect("test document parses")
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_normal_document_is_within_every_limit() {
        let d = doc(json!({
            "name": "n", "status": "published", "start": "s1",
            "settings": {"timeWindow": {"start": "08:00", "end": "20:00", "days": ["mon"], "timezone": "UTC"}},
            "triggers": [{"id": "t1", "type": "contact_tag_added", "filters": {"tags": ["a", "b"]}}],
            "steps": [
                {"id": "s1", "type": "add_tag", "config": {"tags": ["x"], "deep": {"a": [{"b": "c"}]}}, "next": "s2"},
                {"id": "s2", "type": "if_else", "branches": [{"name": "b", "condition": {"field": "f"}, "next": "s1"}], "else": "s1"}
            ]
        }));
        assert!(check_document_limits(&d, DEFAULT_MAX_STEPS).is_empty());
    }

    #[test]
    fn each_limit_names_the_field_and_the_maximum() {
        let tags: Vec<String> = (0..=MAX_TAGS_PER_STEP).map(|i| format!("t{i}")).collect();
        let branches: Vec<Value> = (0..=MAX_BRANCHES_PER_STEP)
            .map(|_| json!({"next": "s1"}))
            .collect();
        let triggers: Vec<Value> = (0..=MAX_TRIGGERS)
            .map(|i| json!({"id": format!("t{i}"), "type": "form_submitted"}))
            .collect();
        let mut deep = json!("leaf");
        for _ in 0..MAX_NESTING_DEPTH {
            deep = json!([deep]);
        }
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        let long_id = "i".repeat(MAX_ID_BYTES + 1);
        let d = doc(json!({
            "name": "n",
            "triggers": triggers,
            "steps": [
                {"id": "s1", "type": "add_tag", "config": {"tags": tags, "code": long, "deep": deep}},
                {"id": long_id, "type": "split", "branches": branches},
                {"id": "s3", "type": "webhook", "config": {long_id.clone(): 1}}
            ]
        }));
        let errors = check_document_limits(&d, 2);
        assert_eq!(
            fields(&errors),
            vec![
                "steps",
                "triggers",
                "steps[0].config.tags",
                "steps[0].config.code",
                "steps[0].config.deep[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
                "steps[1].id",
                "steps[1].branches",
                "steps[2].config",
            ]
        );
        assert_eq!(errors[0].message, "has 3 steps; the maximum is 2");
        assert_eq!(errors[2].message, "has 101 tags; the maximum is 100");
        assert!(errors[3]
            .message
            .contains("131073 bytes long; the maximum is 131072"));
        assert!(errors[4].message.contains("deeper than 32 levels"));
        assert_eq!(errors[6].message, "has 101 branches; the maximum is 100");
    }

    #[test]
    fn errors_are_capped_and_the_rest_counted() {
        let steps: Vec<Value> = (0..30)
            .map(|i| json!({"id": format!("s{i}"), "name": "n".repeat(MAX_STRING_BYTES + 1)}))
            .collect();
        let errors = check_document_limits(&doc(json!({"name": "n", "steps": steps})), 100);
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS + 1);
        assert_eq!(errors[0].field, "steps[0].name");
        assert_eq!(errors[MAX_REPORTED_ERRORS].field, "$");
        assert!(errors[MAX_REPORTED_ERRORS]
            .message
            .starts_with("10 more fields"));
    }
}

//! Interim workflow document model (replaced by the analysis engine's full model).

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct WorkflowDocument {
    raw: Value,
    pub name: String,
    pub published: bool,
    step_ids: Vec<String>,
    trigger_ids: Vec<String>,
}

impl WorkflowDocument {
    pub fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(object) = value.as_object() else {
            return Err(vec![FieldError {
                field: "$".into(),
                message: "must be a JSON object".into(),
            }]);
        };
        let ids = |field: &str| -> Vec<String> {
            object
                .get(field)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|i| i.get("id").and_then(Value::as_str).unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            raw: value.clone(),
            name: object
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_owned(),
            published: object.get("status").and_then(Value::as_str) == Some("published"),
            step_ids: ids("steps"),
            trigger_ids: ids("triggers"),
        })
    }

    pub fn to_json(&self) -> Value {
        self.raw.clone()
    }

    pub fn step_count(&self) -> usize {
        self.step_ids.len()
    }

    pub fn trigger_count(&self) -> usize {
        self.trigger_ids.len()
    }
}

pub fn validate_for_storage(
    doc: &WorkflowDocument,
    max_steps: usize,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if doc.name.is_empty() {
        errors.push(FieldError {
            field: "name".into(),
            message: "is required".into(),
        });
    }
    if doc.step_ids.len() > max_steps {
        errors.push(FieldError {
            field: "steps".into(),
            message: format!("at most {max_steps} steps"),
        });
    }
    for (kind, ids) in [("steps", &doc.step_ids), ("triggers", &doc.trigger_ids)] {
        let mut seen = std::collections::HashSet::new();
        for (index, id) in ids.iter().enumerate() {
            if id.is_empty() {
                errors.push(FieldError {
                    field: format!("{kind}[{index}].id"),
                    message: "is required".into(),
                });
            } else if !seen.insert(id) {
                errors.push(FieldError {
                    field: format!("{kind}[{index}].id"),
                    message: format!("duplicate id {id}"),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

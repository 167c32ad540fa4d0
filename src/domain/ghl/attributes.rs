//! A step's GoHighLevel `attributes` → our `config`: the attributes are kept as they are
//! (so every rule that scans config text, e.g. merge fields, sees them) and the keys our
//! rules read are added in our spelling.

use super::wrapping::kind_of;
use super::{ImportNote, GHL_CONFIG_KEY, GHL_INCOMPLETE_KEY};
use crate::domain::analysis::rules::common::parse_duration;
use crate::domain::workflow::{normalize_type_name, StepType};
use serde_json::{Map, Value};

/// `{type: "minutes", value: 30}` (a wait's `startAfter`, or a timeout in the same shape)
/// → `"30m"`; a duration string or number already in our spelling is kept.
fn duration_of(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => {
            let value = match o.get("value")? {
                Value::Number(n) => n.as_u64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })?,
                Value::String(s) => s.trim().parse::<u64>().ok()?,
                _ => return None,
            };
            let unit = o
                .get("type")
                .and_then(Value::as_str)?
                .trim()
                .to_ascii_lowercase();
            let (n, unit) = match unit.trim_end_matches('s') {
                "second" | "sec" => (value, "s"),
                "minute" | "min" => (value, "m"),
                "hour" | "hr" => (value, "h"),
                "day" => (value, "d"),
                "week" => (value, "w"),
                "month" => (value.saturating_mul(30), "d"),
                _ => return None,
            };
            Some(format!("{n}{unit}"))
        }
        other => parse_duration(other).map(|_| match other {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }),
    }
}

/// `[{key, value}]` → `{key: value}` (the shape the webhook rules read as a body).
fn pairs_to_object(items: &[Value]) -> Map<String, Value> {
    items
        .iter()
        .filter_map(|p| {
            let key = p.get("key").or_else(|| p.get("name"))?.as_str()?;
            Some((
                key.to_string(),
                p.get("value").cloned().unwrap_or(Value::Null),
            ))
        })
        .collect()
}

/// Non-empty strings of `v` (a string or an array of them).
fn strings(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => vec![Value::String(s)],
        Some(Value::Array(items)) => items
            .into_iter()
            .filter(|i| i.as_str().is_some_and(|s| !s.trim().is_empty()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Wait kinds (`attributes.type`) that end at a time the builder works out when the contact
/// arrives: a calendar date, a recurring schedule, an offset from the contact's appointment.
/// They end on their own, so they are not event waits; FORMAT.md names no field holding
/// their date, so none is read (`wait-until-past` cannot judge them).
const SCHEDULED_WAITS: &[&str] = &["specific_date", "recurring_schedule", "appointment"];
/// Wait kinds that end when something happens to the contact: without a timeout, never.
const EVENT_WAITS: &[&str] = &["condition", "link_clicked"];

/// A wait's config: `duration` for a time delay, `schedule` for a wait that ends at a
/// worked-out time, `event` (+ `timeout`) for a wait on something the contact does.
fn wait_config(
    c: &mut Map<String, Value>,
    path: &dyn std::fmt::Display,
    notes: &mut Vec<ImportNote>,
) {
    let kind = match c.get("type") {
        Some(Value::String(s)) if !s.trim().is_empty() => normalize_type_name(s).into_owned(),
        _ => "time".to_string(),
    };
    // In the `startAfter` shape or ours; unreadable, it is left out rather than reported as
    // a malformed duration of ours.
    match ["timeout", "timeOut"]
        .iter()
        .find_map(|k| c.get(*k).and_then(duration_of))
    {
        Some(t) => {
            c.insert("timeout".into(), Value::String(t));
        }
        None => {
            c.remove("timeout");
        }
    }
    if kind == "time" {
        match c.get("startAfter").and_then(duration_of) {
            Some(d) => {
                c.insert("duration".into(), Value::String(d));
            }
            None => notes.push(ImportNote::new(
                format!("{path}.attributes.startAfter"),
                "no readable delay ({type, value}); the wait is reported as missing its duration",
            )),
        }
    } else if SCHEDULED_WAITS.contains(&kind.as_str()) {
        c.insert("schedule".into(), Value::String(kind));
    } else {
        // A kind nobody has seen is most likely one more thing to wait for (a reply, an
        // email event): judged as an event wait, so a missing timeout is not passed over.
        if !EVENT_WAITS.contains(&kind.as_str()) {
            notes.push(ImportNote::new(
                format!("{path}.attributes.type"),
                format!("\"{kind}\" is not a known kind of wait; analyzed as a wait for an event"),
            ));
        }
        c.insert("event".into(), Value::String(kind));
    }
}

/// A webhook's body in the shape the webhook rules read: `custom_webhook` has
/// `body: {rawData, keyValueData}`, `webhook` has `customData`.
fn webhook_body(c: &mut Map<String, Value>) {
    let raw = c
        .get("body")
        .and_then(|b| b.get("rawData"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    let pairs = c
        .get("body")
        .and_then(|b| b.get("keyValueData"))
        .or_else(|| c.get("customData"))
        .and_then(Value::as_array)
        .map(|items| pairs_to_object(items));
    if let Some(raw) = raw {
        c.insert("body".into(), Value::String(raw));
    } else if let Some(pairs) = pairs.filter(|p| !p.is_empty()) {
        c.insert("body".into(), Value::Object(pairs));
    }
}

pub(super) struct StepFacts<'a> {
    /// The builder's type name (moved into `config.ghl`).
    pub ghl_type: String,
    pub incomplete: bool,
    /// Where the step is, for notes (rendered only when a note is written).
    pub path: &'a dyn std::fmt::Display,
}

/// The config of a step of (our) type `step_type` with GoHighLevel `attributes` (moved in).
pub(super) fn config_for(
    step_type: &StepType,
    attributes: Option<Value>,
    facts: StepFacts<'_>,
    notes: &mut Vec<ImportNote>,
) -> Map<String, Value> {
    let mut c = match attributes {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a,
        Some(other) => {
            notes.push(ImportNote::new(
                format!("{}.attributes", facts.path),
                format!("must be an object; got {} (ignored)", kind_of(&other)),
            ));
            Map::new()
        }
    };
    let attr = |c: &Map<String, Value>, k: &str| c.get(k).cloned();
    match step_type {
        StepType::Wait => wait_config(&mut c, facts.path, notes),
        StepType::Goto => {
            if let Some(t) = attr(&c, "targetNodeId") {
                c.insert("target".into(), t);
            }
        }
        StepType::AddTag | StepType::RemoveTag => {
            // The key taken out is put back: no new key string per tag step.
            let (key, tags) = match c.remove_entry("tags") {
                Some((key, tags)) => (Some(key), strings(Some(tags))),
                None => (None, Vec::new()),
            };
            let remove_all =
                *step_type == StepType::RemoveTag && c.get("removeAll") == Some(&Value::Bool(true));
            // An empty list tags nothing: left out, it is reported as the missing tag it is.
            if !tags.is_empty() || remove_all {
                c.insert(key.unwrap_or_else(|| "tags".into()), Value::Array(tags));
            }
        }
        StepType::AddToWorkflow | StepType::RemoveFromWorkflow => {
            let ids = match c.remove("workflow_id") {
                Some(ids) => strings(Some(ids)),
                None => strings(c.get("workflowId").cloned()),
            };
            match (step_type, ids.len()) {
                (_, 0) => {
                    c.remove("workflowId");
                }
                (StepType::AddToWorkflow, _) => {
                    c.insert("workflowId".into(), ids[0].clone());
                }
                _ => {
                    c.insert("workflowId".into(), Value::Array(ids));
                }
            }
        }
        StepType::UpdateContactField => {
            let first = c
                .get("fields")
                .and_then(Value::as_array)
                .and_then(|f| {
                    f.iter()
                        .find_map(|f| f.get("field").filter(|v| v.is_string()))
                })
                .cloned();
            if let Some(f) = first {
                c.entry("field").or_insert(f);
            }
        }
        StepType::Webhook if !matches!(c.get("body"), Some(Value::String(_))) => {
            webhook_body(&mut c)
        }
        _ => {}
    }
    c.insert(GHL_CONFIG_KEY.into(), Value::String(facts.ghl_type));
    if facts.incomplete {
        c.insert(GHL_INCOMPLETE_KEY.into(), Value::Bool(true));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delays_read_in_our_spelling() {
        assert_eq!(
            duration_of(&json!({"type": "minutes", "value": 30})).as_deref(),
            Some("30m")
        );
        assert_eq!(
            duration_of(&json!({"type": "hour", "value": "2"})).as_deref(),
            Some("2h")
        );
        assert_eq!(
            duration_of(&json!({"type": "days", "value": 3.0})).as_deref(),
            Some("3d")
        );
        assert_eq!(
            duration_of(&json!({"type": "months", "value": 2})).as_deref(),
            Some("60d")
        );
        assert_eq!(duration_of(&json!("2d")).as_deref(), Some("2d"));
        assert_eq!(
            duration_of(&json!({"type": "fortnights", "value": 1})),
            None
        );
        assert_eq!(duration_of(&json!({"type": "days", "value": -1})), None);
        assert_eq!(duration_of(&json!({"type": "days"})), None);
    }
}

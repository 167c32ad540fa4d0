//! Triggers and workflow settings.

use super::types::trigger_type;
use super::wrapping::kind_of;
use super::ImportNote;
use crate::domain::workflow::{TimeWindow, Trigger, TriggerType, WorkflowSettings};
use serde_json::{Map, Value};

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// `allowMultiple` → `allowReentry`, `stopOnResponse`, `window` → `timeWindow` (with the
/// document's `timezone`).
pub(super) fn settings(
    fields: &Map<String, Value>,
    timezone: Option<&str>,
    notes: &mut Vec<ImportNote>,
) -> WorkflowSettings {
    let flag = |key: &str, notes: &mut Vec<ImportNote>| match fields.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            notes.push(ImportNote::new(
                key,
                format!(
                    "must be true or false; got {} (read as false)",
                    kind_of(other)
                ),
            ));
            false
        }
    };
    let allow_reentry = flag("allowMultiple", notes);
    let stop_on_response = flag("stopOnResponse", notes);
    WorkflowSettings {
        allow_reentry,
        stop_on_response,
        time_window: fields
            .get("window")
            .and_then(|w| time_window(w, timezone, notes)),
    }
}

fn time_window(
    window: &Value,
    timezone: Option<&str>,
    notes: &mut Vec<ImportNote>,
) -> Option<TimeWindow> {
    let w = match window {
        Value::Null => return None,
        Value::Object(w) => w,
        other => {
            notes.push(ImportNote::new(
                "window",
                format!("must be an object; got {} (ignored)", kind_of(other)),
            ));
            return None;
        }
    };
    let text = |k: &str| {
        w.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut days: Vec<String> = Vec::new();
    for (i, d) in w
        .get("days")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let n = match d {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            // 0 and 7 are both Sunday.
            Some(n @ 0..=7) => {
                let day = DAYS[(n % 7) as usize].to_string();
                if !days.contains(&day) {
                    days.push(day);
                }
            }
            _ => notes.push(ImportNote::new(
                format!("window.days[{i}]"),
                format!("is {d}, not a day number 0–7 (ignored)"),
            )),
        }
    }
    Some(TimeWindow {
        start: text("start"),
        end: text("end"),
        days,
        timezone: timezone.map(str::to_string),
    })
}

/// Tags named by the `contact_tag` conditions on `field` (`value` a tag or a list of them).
fn condition_tags(conditions: &[Value], field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for c in conditions {
        if c.get("field").and_then(Value::as_str) != Some(field) {
            continue;
        }
        match c.get("value") {
            Some(Value::String(s)) => out.push(Value::String(s.clone())),
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter(|v| v.is_string()).cloned())
            }
            _ => {}
        }
    }
    out
}

/// The document's triggers; inactive (`active: false`) and deleted ones are left out (they
/// enrol nobody) and named in a note.
pub(super) fn map_triggers(
    triggers: Option<&Value>,
    path: &str,
    notes: &mut Vec<ImportNote>,
) -> Vec<Trigger> {
    let items = match triggers {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            notes.push(ImportNote::new(
                path,
                format!(
                    "must be an array; got {} (no triggers read)",
                    kind_of(other)
                ),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let Some(t) = t.as_object() else {
            notes.push(ImportNote::new(
                here,
                format!("must be an object; got {} (ignored)", kind_of(t)),
            ));
            continue;
        };
        let id = match t.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => here.clone(),
        };
        if t.get("active").and_then(Value::as_bool) == Some(false)
            || t.get("deleted").and_then(Value::as_bool) == Some(true)
        {
            notes.push(ImportNote::new(
                here,
                format!("trigger \"{id}\" is inactive or deleted in GoHighLevel (left out: it enrols nobody)"),
            ));
            continue;
        }
        let raw_type = t.get("type").and_then(Value::as_str).unwrap_or("");
        let mut trigger_type = trigger_type(raw_type);
        let conditions: &[Value] = t
            .get("conditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut filters = Map::new();
        if trigger_type == TriggerType::ContactTagAdded {
            let mut added = condition_tags(conditions, "tagsAdded");
            let mut removed = condition_tags(conditions, "tagsRemoved");
            // Another capture shape: `data: {tagName, tagEvent: "added" | "removed"}`.
            if let Some(data) = t.get("data").and_then(Value::as_object) {
                if let Some(tag) = data.get("tagName").filter(|v| v.is_string()) {
                    if data.get("tagEvent").and_then(Value::as_str) == Some("removed") {
                        removed.push(tag.clone());
                    } else {
                        added.push(tag.clone());
                    }
                }
            }
            if added.is_empty() && !removed.is_empty() {
                trigger_type = TriggerType::ContactTagRemoved;
                added = removed;
            }
            if !added.is_empty() {
                filters.insert("tags".into(), Value::Array(added));
            }
        }
        if !conditions.is_empty() {
            filters.insert("conditions".into(), Value::Array(conditions.to_vec()));
        }
        out.push(Trigger {
            id,
            trigger_type,
            name: t.get("name").and_then(Value::as_str).map(str::to_string),
            filters,
        });
    }
    out
}

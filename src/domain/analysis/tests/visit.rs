//! `rules::common::visit_strings` walks flat containers without a stack: it must report the
//! same strings, keys and paths, in the same order, as a walk of every container would.

use crate::domain::analysis::rules::common::{visit_strings, visit_value_strings};
use serde_json::{json, Map, Value};

type Seen = Vec<(String, Option<String>, String)>;

fn walked(config: &Map<String, Value>) -> Seen {
    let mut seen = Seen::new();
    visit_strings(config, "config", |text, key, path| {
        seen.push((text.to_owned(), key.map(str::to_owned), path()))
    });
    seen
}

/// Top-level strings first, then each container in key order, walked in full.
fn reference(config: &Map<String, Value>) -> Seen {
    let mut seen = Seen::new();
    for (k, v) in config {
        if let Value::String(text) = v {
            seen.push((text.clone(), Some(k.clone()), format!("config.{k}")));
        }
    }
    for (k, v) in config {
        if matches!(v, Value::Array(_) | Value::Object(_)) {
            visit_value_strings(k, v, "config", |text, key, path| {
                seen.push((text.to_owned(), key.map(str::to_owned), path()))
            });
        }
    }
    seen
}

#[test]
fn flat_and_nested_containers_are_reported_as_a_full_walk_reports_them() {
    let configs = [
        json!({"body": "hi", "startAfter": {"type": "minutes", "value": 30, "when": "after"}}),
        json!({"tags": ["a", 1, "b"], "url": "http://x", "empty": {}, "none": []}),
        json!({"a": {"deep": {"x": "1"}, "flat": "2"}, "b": [{"k": "v"}, "w"], "c": "3",
               "d": {"p": "q", "r": null}, "e": [[["z"]]]}),
        json!({"n": 1, "t": true}),
    ];
    for config in configs {
        let Value::Object(config) = config else {
            panic!("an object")
        };
        assert_eq!(walked(&config), reference(&config), "{config:?}");
    }
}

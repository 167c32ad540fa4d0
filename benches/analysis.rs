//! Analysis benchmarks: generated workflows of 100, 1,000 and 10,000 steps and a location of
//! 1,000 workflows; and the worst cases: one hostile document per family of input the rules
//! scan, each at the document limits (`domain::limits`) and under the 1 MiB body limit.
//! Run: `cargo bench -- --warm-up-time 1 --measurement-time 3`
//! (`cargo bench --bench analysis -- worst_case` for the hostile documents only).

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ghl_workflow_debugger::domain::analysis::rules::common::{
    is_literal_secret_value, is_secret_name, secret_assignments,
};
use ghl_workflow_debugger::domain::analysis::{
    analyze_location, analyze_workflow, LocationWorkflow,
};
use ghl_workflow_debugger::domain::limits::{self, DEFAULT_MAX_STEPS};
use ghl_workflow_debugger::domain::workflow::WorkflowDocument;
use serde_json::{json, Value};
use std::time::Duration;

/// A realistic mix in blocks of seven: email → wait → if_else (branch skips ahead, else
/// continues) → sms → add_tag → webhook → wait; every 140 steps an if_else loops back 13
/// steps (a waited loop with an exit). The result has no structural findings.
fn generate(n: usize, seed: usize) -> WorkflowDocument {
    let id = |i: usize| format!("s{i}");
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let next = if i + 1 < n { json!(id(i + 1)) } else { Value::Null };
            let skip = if i + 3 < n { json!(id(i + 3)) } else { next.clone() };
            match (i + seed) % 7 {
                0 => json!({"id": id(i), "type": "send_email", "config": {"subject": "Hi {{contact.first_name}}", "body": "Hello {{contact.first_name}}, see {{custom_values.link}}", "to": "{{contact.email}}"}, "next": next}),
                1 | 6 => json!({"id": id(i), "type": "wait", "config": {"duration": "1d"}, "next": next}),
                2 => json!({"id": id(i), "type": "if_else", "branches": [{"name": "b", "condition": {"field": "contact.replied", "op": "eq", "value": true}, "next": skip}], "else": next}),
                3 => json!({"id": id(i), "type": "send_sms", "config": {"body": "Hi {{contact.first_name}}", "to": "{{contact.phone}}"}, "next": next}),
                4 => json!({"id": id(i), "type": "add_tag", "config": {"tag": format!("tag-{}", (i + seed) % 97)}, "next": next}),
                _ => {
                    if i % 140 == 75 {
                        json!({"id": id(i), "type": "if_else", "branches": [{"name": "again", "condition": {"field": "contact.tags", "op": "contains", "value": "retry"}, "next": id(i - 13)}], "else": next})
                    } else {
                        json!({"id": id(i), "type": "webhook", "config": {"url": "https://hooks.example.com/x?src={{contact.id}}", "headers": {"Authorization": "Bearer {{custom_values.token}}"}}, "next": next})
                    }
                }
            }
        })
        .collect();
    let v = json!({
        "name": "bench", "status": "published",
        "settings": {"allowReentry": false, "timeWindow": {"start": "08:00", "end": "20:00", "days": ["mon"], "timezone": "UTC"}},
        "triggers": [{"id": "t1", "type": "contact_tag_added", "filters": {"tag": "new-lead"}}],
        "start": "s0",
        "steps": steps
    });
    match WorkflowDocument::from_json(&v) {
        Ok(d) => d,
        Err(e) => panic!("generated document is invalid: {e:?}"),
    }
}

fn bench_workflows(c: &mut Criterion) {
    let mut group = c.benchmark_group("analyze_workflow");
    for n in [100usize, 1_000, 10_000] {
        let doc = generate(n, 0);
        group.bench_with_input(BenchmarkId::from_parameter(n), &doc, |b, doc| {
            b.iter(|| analyze_workflow("wf", 1, black_box(doc), Utc::now()))
        });
    }
    group.finish();
}

fn bench_location(c: &mut Criterion) {
    let docs: Vec<(String, WorkflowDocument)> = (0..1_000)
        .map(|i| (format!("wf{i}"), generate(20, i)))
        .collect();
    let ws: Vec<LocationWorkflow<'_>> = docs
        .iter()
        .map(|(id, doc)| LocationWorkflow { id, doc })
        .collect();
    c.bench_function("analyze_location/1000_workflows", |b| {
        b.iter(|| analyze_location(black_box(&ws), Utc::now()))
    });
}

/// The API's default body limit: a hostile document is at most this big.
const BODY_LIMIT: usize = 1024 * 1024;

/// A document as a tenant could store it: within every limit and the body limit.
fn at_limits(name: &str, v: Value) -> WorkflowDocument {
    let bytes = serde_json::to_vec(&v).map_or(usize::MAX, |b| b.len());
    assert!(
        bytes <= BODY_LIMIT,
        "{name}: {bytes} bytes is over the body limit"
    );
    let doc = match WorkflowDocument::from_json(&v) {
        Ok(d) => d,
        Err(e) => panic!("{name}: invalid: {e:?}"),
    };
    let over = limits::check_document_limits(&doc, DEFAULT_MAX_STEPS);
    assert!(over.is_empty(), "{name}: over a limit: {over:?}");
    doc
}

fn hostile(triggers: Vec<Value>, steps: Vec<Value>) -> Value {
    let start = steps.first().and_then(|s| s.get("id")).cloned();
    json!({"name": "hostile", "status": "published", "settings": {"allowReentry": true},
        "triggers": triggers, "start": start, "steps": steps})
}

fn form_trigger() -> Vec<Value> {
    vec![json!({"id": "t", "type": "form_submitted", "filters": {}})]
}

/// Seven `custom_code` steps whose code is `pattern` repeated to the string limit.
fn scanned_code(pattern: &str) -> Value {
    let text = pattern.repeat(limits::MAX_STRING_BYTES / pattern.len());
    let steps = (0..7)
        .map(|i| json!({"id": format!("s{i}"), "type": "custom_code", "config": {"code": text}, "next": format!("s{}", i + 1)}))
        .collect();
    hostile(form_trigger(), steps)
}

/// A webhook step's URL, header and body, and an e-mail body, each at the string limit.
fn scanned_webhook(pattern: &str) -> Value {
    let text = pattern.repeat((limits::MAX_STRING_BYTES - 64) / pattern.len());
    let steps = vec![
        json!({"id": "s0", "type": "webhook", "config": {"url": format!("https://api.example.com/h?{text}"), "headers": {"Authorization": text}, "body": text}, "next": "s1"}),
        json!({"id": "s1", "type": "webhook", "config": {"url": "https://api.example.com/h", "body": {"password": text, "nested": [text]}}, "next": "s2"}),
        json!({"id": "s2", "type": "send_email", "config": {"subject": "s", "body": text, "to": text}}),
    ];
    hostile(form_trigger(), steps)
}

/// 5,000 steps: a closed loop, a loop of steps each with a dangling branch, and wait-free
/// two-step cycles inside one big waited cycle.
fn loops() -> Value {
    let (n, blocks) = (1_500, 666);
    let mut steps = vec![json!({"id": "entry", "type": "if_else", "branches": [
        {"condition": {}, "next": "a0"}, {"condition": {}, "next": "d0"}, {"condition": {}, "next": "w0"}
    ], "else": "d0"})];
    for i in 0..n {
        steps.push(json!({"id": format!("a{i}"), "type": "add_tag", "config": {"tag": "x"}, "next": format!("a{}", (i + 1) % n)}));
        steps.push(json!({"id": format!("d{i}"), "type": "if_else", "branches": [{"condition": {}, "next": format!("missing{i}")}], "else": format!("d{}", (i + 1) % n)}));
    }
    for k in 0..blocks {
        steps.push(json!({"id": format!("w{k}"), "type": "wait", "config": {"duration": "1h"}, "next": format!("x{k}")}));
        steps.push(json!({"id": format!("x{k}"), "type": "if_else", "branches": [{"condition": {}, "next": format!("y{k}")}], "else": format!("w{}", (k + 1) % blocks)}));
        steps.push(
            json!({"id": format!("y{k}"), "type": "goto", "config": {"target": format!("x{k}")}}),
        );
    }
    hostile(form_trigger(), steps)
}

/// 100 triggers with large filters: equal (keys in another order every other trigger)
/// except that every fourth differs in its last key.
fn triggers() -> Value {
    let ts = (0..limits::MAX_TRIGGERS)
        .map(|i| {
            let mut filters = serde_json::Map::new();
            let keys: Vec<usize> = if i % 2 == 0 {
                (0..150).collect()
            } else {
                (0..150).rev().collect()
            };
            for k in keys {
                filters.insert(
                    format!("key{k}"),
                    json!(["a", {"deep": [1, 2, {"x": "same"}]}]),
                );
            }
            filters.insert("last".into(), json!(if i % 4 == 3 { i } else { 0 }));
            json!({"id": format!("t{i}"), "type": "contact_tag_added", "filters": filters})
        })
        .collect();
    hostile(ts, vec![json!({"id": "s0", "type": "end"})])
}

/// 100 tag triggers wanting 100 tags each, and 1,000 reachable steps adding those 100 tags.
fn retrigger() -> Value {
    let tags: Vec<String> = (0..limits::MAX_TAGS_PER_STEP)
        .map(|k| format!("t{k}"))
        .collect();
    let ts = (0..limits::MAX_TRIGGERS)
        .map(|i| json!({"id": format!("t{i}"), "type": "contact_tag_added", "filters": {"tags": tags}}))
        .collect();
    let steps = (0..1_000)
        .map(|i| json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tags": tags}, "next": format!("s{}", i + 1)}))
        .collect();
    hostile(ts, steps)
}

/// Steps with 100 tags or 100 branches each, every branch pointing back into the flow.
fn tags_and_branches() -> Value {
    let n = 600;
    let steps = (0..n)
        .map(|i| {
            let id = format!("s{i}");
            if i % 2 == 0 {
                let tags: Vec<String> = (0..limits::MAX_TAGS_PER_STEP).map(|k| format!("g{}", k % 10)).collect();
                json!({"id": id, "type": "add_tag", "config": {"tags": tags}, "next": format!("s{}", i + 1)})
            } else {
                let branches: Vec<Value> = (0..limits::MAX_BRANCHES_PER_STEP)
                    .map(|k| json!({"next": format!("s{}", (i + k) % n), "percent": 1}))
                    .collect();
                json!({"id": id, "type": if i % 4 == 1 { "if_else" } else { "split" }, "branches": branches})
            }
        })
        .collect();
    hostile(form_trigger(), steps)
}

/// 4,998 SMS steps all followed by one SMS step whose name is at the string limit:
/// `rapid-messages` names it in every finding.
fn fan_in() -> Value {
    let n = DEFAULT_MAX_STEPS - 2;
    let mut steps = vec![json!({"id": "entry", "type": "goto", "config": {"target": "m0"}})];
    for i in 0..n {
        steps.push(json!({"id": format!("m{i}"), "type": "send_sms", "config": {"body": "hi"}, "next": if i + 1 < n { format!("m{}", i + 1) } else { "target".into() }}));
    }
    for s in steps.iter_mut().skip(1).step_by(2) {
        s["next"] = json!("target");
    }
    steps.push(json!({"id": "target", "type": "send_sms", "name": "n".repeat(limits::MAX_STRING_BYTES), "config": {"body": "x"}}));
    hostile(form_trigger(), steps)
}

/// A webhook body 29 objects deep under 256-byte keys, ending in thousands of
/// secret-looking leaves (each listed place renders its path).
fn deep_body() -> Value {
    let leaves: Vec<Value> = (0..9_000)
        .map(|i| json!({"password": format!("hunter{i}x"), "a": "Bearer abcdefgh1234"}))
        .collect();
    let mut body = json!(leaves);
    for d in 0..28 {
        body = json!({ format!("{d:03}{}", "k".repeat(limits::MAX_ID_BYTES - 3)): body });
    }
    hostile(
        form_trigger(),
        vec![
            json!({"id": "s0", "type": "webhook", "config": {"url": "https://api.example.com/x", "body": body}}),
        ],
    )
}

fn bench_worst_cases(c: &mut Criterion) {
    let mut group = c.benchmark_group("worst_case");
    group.sample_size(10);
    let cases: Vec<(&str, Value)> = vec![
        ("code_pwd_eq", scanned_code("pwd=")),
        ("code_pwd_eq_digit", scanned_code("pwd=1")),
        ("code_quoted_api_key", scanned_code("api_key=\"x")),
        ("code_bearer", scanned_code("Bearer ")),
        ("code_token_prefix", scanned_code("sk_live_")),
        ("code_merge_open", scanned_code("{{")),
        ("code_merge_close", scanned_code("a.b}}")),
        ("webhook_pwd_eq", scanned_webhook("pwd=")),
        ("webhook_merge_open", scanned_webhook("{{contact.")),
        ("loops_5000_steps", loops()),
        ("triggers_100_large_filters", triggers()),
        ("self_retrigger_100x100_tags", retrigger()),
        ("tags_and_branches", tags_and_branches()),
        ("fan_in_long_name", fan_in()),
        ("deep_body_9000_secrets", deep_body()),
    ];
    for (name, v) in cases {
        let doc = at_limits(name, v);
        group.bench_function(name, |b| {
            b.iter(|| analyze_workflow("wf", 1, black_box(&doc), Utc::now()))
        });
    }
    group.finish();
}

/// The scanner as it was before it became linear, to measure the two side by side.
fn legacy_secret_assignments(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len()
                && (chars[j].1.is_ascii_alphanumeric() || chars[j].1 == '_' || chars[j].1 == '-')
            {
                j += 1;
            }
            let end = chars.get(j).map(|x| x.0).unwrap_or(text.len());
            let name = &text[pos..end];
            if is_secret_name(name) {
                let mut k = j;
                // Skip a closing quote of a JSON key, whitespace, then ':' or '='.
                while k < chars.len() && matches!(chars[k].1, '"' | '\'' | ' ' | '\t') {
                    k += 1;
                }
                if k < chars.len() && matches!(chars[k].1, ':' | '=') {
                    k += 1;
                    while k < chars.len() && matches!(chars[k].1, ' ' | '\t') {
                        k += 1;
                    }
                    let quoted = k < chars.len() && matches!(chars[k].1, '"' | '\'' | '`');
                    if quoted {
                        let q = chars[k].1;
                        let mut m = k + 1;
                        while m < chars.len() && chars[m].1 != q {
                            m += 1;
                        }
                        let vs = chars.get(k + 1).map(|x| x.0).unwrap_or(text.len());
                        let ve = chars.get(m).map(|x| x.0).unwrap_or(text.len());
                        let value = &text[vs..ve];
                        if value.len() >= 4
                            && is_literal_secret_value(value)
                            && !value.contains("${")
                        {
                            found.push(name.to_string());
                        }
                        i = m;
                        continue;
                    } else if k < chars.len() && chars[k].1 != '=' {
                        // Unquoted: only `name=value` query-string style with a literal token.
                        let vs = chars[k].0;
                        let mut m = k;
                        while m < chars.len()
                            && !matches!(chars[m].1, '&' | ' ' | ',' | ';' | '\n' | ')' | '}')
                        {
                            m += 1;
                        }
                        let ve = chars.get(m).map(|x| x.0).unwrap_or(text.len());
                        let value = &text[vs..ve];
                        let is_literal = value.len() >= 4
                            && is_literal_secret_value(value)
                            && value
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.~+/=".contains(c))
                            && value.chars().any(|c| c.is_ascii_digit());
                        if is_literal {
                            found.push(name.to_string());
                        }
                    }
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    found
}

/// The secret scanner before and after, on `pwd=1` repeated to 32 KiB (the old one is
/// quadratic, so the string limit would take seconds per iteration).
fn bench_scanner_before_after(c: &mut Criterion) {
    let mut group = c.benchmark_group("scanner_32k_pwd_eq_1");
    group.sample_size(10);
    let text = "pwd=1".repeat(32 * 1024 / 5);
    assert_eq!(secret_assignments(&text), legacy_secret_assignments(&text));
    group.bench_function("before", |b| {
        b.iter(|| legacy_secret_assignments(black_box(&text)))
    });
    group.bench_function("after", |b| b.iter(|| secret_assignments(black_box(&text))));
    group.finish();
}

criterion_group!(
    name = hostile_inputs;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_worst_cases, bench_scanner_before_after
);
criterion_group!(benches, bench_workflows, bench_location);
criterion_main!(benches, hostile_inputs);

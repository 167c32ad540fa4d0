//! Analysis benchmarks: generated workflows of 100, 1,000 and 10,000 steps and a location of
//! 1,000 workflows. Run: `cargo bench -- --warm-up-time 1 --measurement-time 3`.

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ghl_workflow_debugger::domain::analysis::{
    analyze_location, analyze_workflow, LocationWorkflow,
};
use ghl_workflow_debugger::domain::workflow::WorkflowDocument;
use serde_json::{json, Value};

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

criterion_group!(benches, bench_workflows, bench_location);
criterion_main!(benches);

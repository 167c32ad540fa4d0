//! Import + analysis of a 10,000-step GoHighLevel builder document (the shape users bring,
//! `../shared/ghl/FORMAT.md`). Run:
//! `cargo bench --locked --bench ghl_import -- --warm-up-time 1 --measurement-time 5`.
//!
//! The importer takes the document apart (`ghl::import_value`), so each iteration is handed
//! its own copy, made outside the measurement just before it (`PerIteration`: a request
//! imports the document it has just parsed); every iteration also frees what it consumed and
//! what it made (the imported document and its report), as a request does.

/// The allocator the binary (service and `analyze`) runs with: glibc's free of the
/// document's many small maps would otherwise dominate the measurement.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use ghl_workflow_debugger::domain::analysis::analyze_workflow;
use ghl_workflow_debugger::domain::ghl;
use serde_json::{json, Value};

/// Blocks of sms → wait → if/else (condition node, a "Replied" branch that goes on, a "None"
/// branch that tags the contact and jumps back to the wait every 20th block) → webhook.
fn builder_document(steps: usize) -> Value {
    let mut t: Vec<Value> = Vec::with_capacity(steps);
    let mut b = 0usize;
    let id = |b: usize, k: &str| format!("{b:05}-{k}");
    while t.len() < steps {
        let next_block = id(b + 1, "sms");
        t.push(json!({"id": id(b, "sms"), "type": "sms", "name": "Text", "attributes": {"body": "Hi {{contact.first_name}}"}, "next": id(b, "wait")}));
        t.push(json!({"id": id(b, "wait"), "type": "wait", "attributes": {"type": "time", "startAfter": {"when": "after", "type": "hours", "value": 4}}, "next": id(b, "if")}));
        t.push(json!({"id": id(b, "if"), "type": "if_else", "nodeType": "condition-node", "cat": "conditions", "name": "Replied?",
            "attributes": {"branches": [{"id": id(b, "yes"), "name": "Replied", "segments": [{"operator": "and", "conditions": [{"conditionType": "contact_detail", "conditionSubType": "tags", "conditionOperator": "index-of-true", "conditionValue": "replied"}]}]}]},
            "next": [id(b, "yes"), id(b, "no")]}));
        t.push(json!({"id": id(b, "yes"), "type": "if_else", "nodeType": "branch-yes", "attributes": {"if": false}, "next": id(b, "hook")}));
        t.push(json!({"id": id(b, "no"), "type": "if_else", "nodeType": "branch-no", "attributes": {"else": true}, "next": id(b, "tag")}));
        let after_tag = if b % 20 == 19 {
            id(b, "goto")
        } else {
            next_block.clone()
        };
        t.push(json!({"id": id(b, "tag"), "type": "add_contact_tag", "attributes": {"tags": ["no-reply"]}, "next": after_tag}));
        if b % 20 == 19 {
            t.push(json!({"id": id(b, "goto"), "type": "goto", "attributes": {"targetNodeId": id(b, "wait")}}));
        }
        t.push(json!({"id": id(b, "hook"), "type": "webhook", "attributes": {"method": "POST", "url": "https://hooks.example.com/in", "customData": [{"key": "contact", "value": "{{contact.id}}"}], "headers": []}, "next": next_block}));
        b += 1;
    }
    json!({
        "workflowData": {"id": "bench", "name": "bench", "status": "published", "version": 1,
            "window": {"condition": "when", "start": "08:00", "end": "20:00", "days": [1, 2, 3, 4, 5]},
            "workflowData": {"templates": t}},
        "triggers": [{"id": "t", "type": "contact_tag", "active": true, "conditions": [{"field": "tagsAdded", "operator": "index-of-true", "value": "new-lead"}]}]
    })
}

fn bench_import(c: &mut Criterion) {
    let doc = builder_document(10_000);
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let now = Utc::now();
    c.bench_function("ghl_import_analyze_10000", |b| {
        b.iter_batched(
            || doc.clone(),
            |doc| {
                let Ok(w) = ghl::import_value(black_box(doc)) else {
                    panic!("the generated document imports")
                };
                analyze_workflow("bench", 1, &w.document, now).health_score
            },
            BatchSize::PerIteration,
        )
    });
    c.bench_function("ghl_import_only_10000", |b| {
        b.iter_batched(
            || doc.clone(),
            |doc| ghl::import_value(black_box(doc)).map(|w| w.document.steps.len()),
            BatchSize::PerIteration,
        )
    });
    let Ok(imported) = ghl::import(&doc) else {
        panic!("the generated document imports")
    };
    c.bench_function("ghl_analyze_only_10000", |b| {
        b.iter(|| {
            black_box(analyze_workflow(
                "bench",
                1,
                black_box(&imported.document),
                now,
            ))
        })
    });
    c.bench_function("ghl_parse_import_analyze_10000_bytes", |b| {
        b.iter(|| {
            let all = ghl::import_bytes(black_box(&bytes)).unwrap_or_default();
            let Some(Ok(w)) = all.into_iter().next().map(|r| r.imported) else {
                panic!("the generated document imports")
            };
            analyze_workflow("bench", 1, &w.document, now).health_score
        })
    });
}

criterion_group!(benches, bench_import);
criterion_main!(benches);

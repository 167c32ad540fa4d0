//! Growth tests: adversarial documents of size n and 4n are analysed in the same run and
//! the time ratio must stay far from quadratic (≈ 4 is linear, ≈ 16 quadratic; the bound is
//! 8). No wall-clock thresholds: only the ratio of two timings taken side by side, each the
//! minimum of a few repetitions, retried on a noisy machine before failing.
//!
//! One generator per family of hostile input the rules scan: long runs of the patterns the
//! text scanners look for, many cycles and dangling edges, many triggers, many tags and
//! branches, one step named by many findings, deep and wide webhook bodies.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// 4× input must cost less than this many times the time (quadratic would be ~16).
const MAX_RATIO: f64 = 8.0;
const REPS: usize = 3;
const ATTEMPTS: usize = 3;

/// Time of `runs` analyses of `doc` in a row.
fn analyze_time(doc: &WorkflowDocument, runs: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(analyze_workflow("wf", 1, doc, now()));
    }
    start.elapsed()
}

/// Time ratio of the large document to the small one. The small one is timed as four runs
/// in a row, so both timings are about as long: on a machine shared with other processes a
/// long timing is preempted more often than a short one, and comparing a short with a long
/// one would inflate the ratio. Minimum of [`REPS`] interleaved timings each; a ratio over
/// the bound is measured again (up to [`ATTEMPTS`] times); a quadratic path fails every
/// attempt.
fn growth_ratio(small: &Value, large: &Value) -> f64 {
    let small = doc(small.clone());
    let large = doc(large.clone());
    let mut ratio = f64::MAX;
    for _ in 0..ATTEMPTS {
        let (mut a, mut b) = (Duration::MAX, Duration::MAX);
        for _ in 0..REPS {
            a = a.min(analyze_time(&small, 4));
            b = b.min(analyze_time(&large, 1));
        }
        ratio = ratio.min(4.0 * b.as_secs_f64() / a.as_secs_f64().max(1e-9));
        if ratio < MAX_RATIO {
            break;
        }
    }
    ratio
}

fn assert_linear(family: &str, make: impl Fn(usize) -> Value, n: usize) {
    let ratio = growth_ratio(&make(n), &make(4 * n));
    assert!(
        ratio < MAX_RATIO,
        "{family}: 4× the input took {ratio:.1}× the time (linear ≈ 4, quadratic ≈ 16)"
    );
}

fn document(triggers: Vec<Value>, steps: Vec<Value>) -> Value {
    let start = steps
        .first()
        .and_then(|s| s.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "name": "hostile", "status": "published",
        "settings": {"allowReentry": true},
        "triggers": triggers,
        "start": start,
        "steps": steps
    })
}

fn form_trigger() -> Vec<Value> {
    vec![json!({"id": "t", "type": "form_submitted", "filters": {}})]
}

/// `pattern` repeated (with `sep` between) to `bytes`, in every place a text scanner
/// reads: custom code, a webhook URL's query, headers and body, a message body.
fn scanned_text(pattern: &str, sep: &str, bytes: usize) -> Value {
    let unit = format!("{pattern}{sep}");
    let text = unit.repeat(bytes / unit.len() + 1);
    let steps = vec![
        json!({"id": "s0", "type": "custom_code", "config": {"code": text}, "next": "s1"}),
        json!({"id": "s1", "type": "webhook", "config": {
            "url": format!("https://api.example.com/hook?{text}"),
            "headers": {"Authorization": text},
            "body": text
        }, "next": "s2"}),
        json!({"id": "s2", "type": "webhook", "config": {"url": "https://api.example.com/x", "body": {"password": text}}, "next": "s3"}),
        json!({"id": "s3", "type": "send_email", "config": {"subject": "s", "body": text, "to": text}}),
    ];
    document(form_trigger(), steps)
}

/// An entry that branches into: a closed loop of `n` steps, a chain of `n` steps each
/// with a dangling branch, and `n / 3` wait-free two-step cycles inside one big waited
/// cycle.
fn loops(n: usize, shape: u8) -> Value {
    let mut steps = vec![json!({"id": "entry", "type": "if_else", "branches": [
        {"condition": {}, "next": "a0"}, {"condition": {}, "next": "d0"}, {"condition": {}, "next": "w0"}
    ], "else": "d0"})];
    if shape != 1 {
        for i in 0..n {
            steps.push(json!({"id": format!("a{i}"), "type": "add_tag", "config": {"tag": "x"}, "next": format!("a{}", (i + 1) % n)}));
        }
    }
    if shape != 2 {
        for i in 0..n {
            steps.push(json!({"id": format!("d{i}"), "type": "if_else", "branches": [{"condition": {}, "next": format!("missing{i}")}], "else": format!("d{}", (i + 1) % n)}));
        }
    }
    let blocks = n / 3;
    for k in 0..blocks {
        steps.push(json!({"id": format!("w{k}"), "type": "wait", "config": {"duration": "1h"}, "next": format!("x{k}")}));
        steps.push(json!({"id": format!("x{k}"), "type": "if_else", "branches": [{"condition": {}, "next": format!("y{k}")}], "else": format!("w{}", (k + 1) % blocks)}));
        steps.push(
            json!({"id": format!("y{k}"), "type": "goto", "config": {"target": format!("x{k}")}}),
        );
    }
    document(form_trigger(), steps)
}

/// `n` triggers: all equal, equal up to key order, or all different in their last key.
fn triggers(n: usize, variant: u8) -> Value {
    let ts: Vec<Value> = (0..n)
        .map(|i| {
            let mut filters = serde_json::Map::new();
            let keys: Vec<String> = (0..8).map(|k| format!("k{k}")).collect();
            let order: Vec<&String> = if variant == 1 && i % 2 == 1 {
                keys.iter().rev().collect()
            } else {
                keys.iter().collect()
            };
            for k in order {
                filters.insert(k.clone(), json!("same value for every trigger"));
            }
            if variant == 2 {
                filters.insert("last".into(), json!(i));
            }
            json!({"id": format!("t{i}"), "type": "contact_tag_added", "filters": filters})
        })
        .collect();
    document(ts, vec![json!({"id": "s0", "type": "end"})])
}

/// `n / 10` triggers wanting `wanted` tags each (none: any tag) and `n` reachable steps
/// adding tags, many of them wanted.
fn retrigger(n: usize, wanted: usize) -> Value {
    let ts: Vec<Value> = (0..n / 10)
        .map(|i| {
            let tags: Vec<String> = (0..wanted).map(|k| format!("tag{}", (i + k) % 16)).collect();
            if i % 7 == 0 {
                json!({"id": format!("f{i}"), "type": "contact_changed", "filters": {"field": format!("field{}", i % 4)}})
            } else {
                json!({"id": format!("t{i}"), "type": "contact_tag_added", "filters": {"tags": tags}})
            }
        })
        .collect();
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let next = format!("s{}", i + 1);
            if i % 5 == 0 {
                json!({"id": format!("s{i}"), "type": "update_contact_field", "config": {"field": format!("field{}", i % 4)}, "next": next})
            } else {
                let tags: Vec<String> = (0..6).map(|k| format!("TAG{}", (i + k) % 16)).collect();
                json!({"id": format!("s{i}"), "type": "add_tag", "config": {"tags": tags}, "next": next})
            }
        })
        .collect();
    document(ts, steps)
}

/// `n` steps with many tags and many branches each (within the per-step limits).
fn tags_and_branches(n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let id = format!("s{i}");
            if i % 2 == 0 {
                let tags: Vec<String> = (0..100).map(|k| format!("tag{}", k % 10)).collect();
                json!({"id": id, "type": "add_tag", "config": {"tags": tags}, "next": format!("s{}", i + 1)})
            } else {
                let branches: Vec<Value> = (0..100)
                    .map(|k| json!({"condition": {"field": "f"}, "next": format!("s{}", (i + k) % n), "percent": 1}))
                    .collect();
                json!({"id": id, "type": if i % 4 == 1 { "if_else" } else { "split" }, "branches": branches})
            }
        })
        .collect();
    document(form_trigger(), steps)
}

/// `n` message steps all followed by one message step with a name of `64 n` bytes:
/// `rapid-messages` names that step in each of the `n` findings.
fn fan_in(n: usize) -> Value {
    let mut steps = vec![json!({"id": "entry", "type": "split", "branches":
        (0..n).map(|i| json!({"percent": 1, "next": format!("m{i}")})).collect::<Vec<_>>()})];
    for i in 0..n {
        steps.push(json!({"id": format!("m{i}"), "type": "send_sms", "name": format!("message {i}"), "config": {"body": "hi", "to": "{{contact.phone}}"}, "next": "target"}));
    }
    steps.push(json!({"id": "target", "type": "send_sms", "name": "n".repeat(64 * n), "config": {"body": "x"}}));
    document(form_trigger(), steps)
}

/// A webhook body `depth` objects deep under long keys, with `n` secret-looking leaves.
fn deep_body(n: usize) -> Value {
    let leaves: Vec<Value> = (0..n)
        .map(|i| json!({"password": format!("hunter{i}22"), "auth": "Bearer abcdefgh12345678", "m": "{{oops}}"}))
        .collect();
    let mut body = json!(leaves);
    for d in 0..30 {
        body = json!({ format!("{d}{}", "k".repeat(250)): body });
    }
    document(
        form_trigger(),
        vec![
            json!({"id": "s0", "type": "webhook", "config": {"url": "https://api.example.com/x", "body": body}}),
        ],
    )
}

const PATTERNS: &[&str] = &[
    "pwd=",
    "password=",
    "pwd=1",
    "token: ",
    "api_key=\"x",
    "secret='",
    "x-api-key=abc1",
    "Bearer ",
    "basic ",
    "sk_live_",
    "ghp_",
    "AKIA",
    "{{",
    "}}",
    "{{contact.",
    "{a.b}}",
    "{{ x",
    "a.b}}{{",
    "{",
    "name=",
    "my_token=",
];

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `family` on `cases` generated parameters; panics with the first failure.
fn check_family<S: Strategy>(cases_n: u32, strategy: S, family: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let mut runner = proptest::test_runner::TestRunner::new(cases(cases_n));
    if let Err(e) = runner.run(&strategy, |v| {
        family(v);
        Ok(())
    }) {
        panic!("{e}");
    }
}

/// One test, so the timings of one family are not disturbed by another running on the
/// other test threads.
#[test]
fn every_hostile_family_grows_linearly() {
    // The scanners' worst case is a pattern repeated with nothing between: every one.
    for p in PATTERNS {
        assert_linear(
            &format!("text {p:?}"),
            |n| scanned_text(p, "", n),
            16 * 1024,
        );
    }
    let seps = prop::sample::select(vec!["&", " ", "a", "1", "é", "=", "\"", "\n"]);
    check_family(6, (prop::sample::select(PATTERNS), seps), |(p, sep)| {
        assert_linear(
            &format!("text {p:?} sep {sep:?}"),
            |n| scanned_text(p, sep, n),
            8 * 1024,
        )
    });
    check_family(3, 0u8..3, |shape| {
        assert_linear(&format!("loops shape {shape}"), |n| loops(n, shape), 300)
    });
    check_family(3, 0u8..3, |variant| {
        assert_linear(
            &format!("triggers variant {variant}"),
            |n| triggers(n, variant),
            150,
        )
    });
    check_family(4, 0usize..6, |wanted| {
        assert_linear(
            &format!("retrigger wanted {wanted}"),
            |n| retrigger(n, wanted),
            400,
        )
    });
    assert_linear("tags and branches", tags_and_branches, 60);
    assert_linear("fan-in", fan_in, 300);
    assert_linear("deep body", deep_body, 500);
}

#[test]
fn hostile_documents_still_get_their_findings() {
    let r = analyze_workflow("wf", 1, &doc(scanned_text("pwd=1", "&", 4096)), now());
    assert!(r.issues.iter().any(|i| i.rule == "hardcoded-secret"));
    let r = analyze_workflow("wf", 1, &doc(loops(30, 0)), now());
    let rules: Vec<&str> = r.issues.iter().map(|i| i.rule.as_str()).collect();
    assert!(
        rules.contains(&"loop-without-exit") && rules.contains(&"loop-without-wait"),
        "{rules:?}"
    );
    assert!(rules.contains(&"dangling-reference"), "{rules:?}");
    let r = analyze_workflow("wf", 1, &doc(triggers(20, 0)), now());
    assert!(r.issues.iter().any(|i| i.rule == "duplicate-trigger"));
    let r = analyze_workflow("wf", 1, &doc(retrigger(200, 2)), now());
    assert!(r.issues.iter().any(|i| i.rule == "self-retrigger"));
    let r = analyze_workflow("wf", 1, &doc(fan_in(20)), now());
    let rapid: Vec<&Issue> = r
        .issues
        .iter()
        .filter(|i| i.rule == "rapid-messages")
        .collect();
    assert_eq!(rapid.len(), 20);
    assert!(rapid.iter().all(|i| i.message.len() < 1_000));
    let r = analyze_workflow("wf", 1, &doc(deep_body(50)), now());
    let secret = r
        .issues
        .iter()
        .find(|i| i.rule == "hardcoded-secret")
        .expect("found");
    assert!(secret.message.contains("and 90 more"), "{}", secret.message);
}

//! Analysis time budgets and fairness between locations: a document too complex for
//! `ANALYSIS_BUDGET_MS` is answered 422 (ad hoc and stored, never cached as a report nor
//! recorded), and another location's analysis is answered meanwhile; a caller that timed out
//! does not leave its analysis holding the thread.

use serde_json::{json, Value};

use crate::helpers::{sample_workflow, spawn_app_with, TestApp};

/// A connected workflow of `n` steps that every rule has something to look at in (URLs,
/// merge fields, code, branches): linear work, but much more of it than the small documents
/// (about 50 ms of CPU per 5,000 steps in a debug build, under 1 MiB).
fn heavy_workflow(n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let id = format!("s{i}");
            let next = format!("s{}", (i + 1) % n);
            match i % 4 {
                0 => json!({"id": id, "type": "webhook", "next": next,
                    "config": {"url": format!("http://10.0.0.{}/hook?a={{{{contact.email}}}}", i % 250)}}),
                1 => json!({"id": id, "type": "send_sms", "next": next,
                    "config": {"to": "+15550100", "body": "Hi {{contact.first_name}} {{contact.bogus_field}} {{contact.email}} {{user.name}} {{custom_values.x}} {{contact.phone}} {{nope.a}} {{contact.last_name}} call 555-0100"}}),
                2 => json!({"id": id, "type": "custom_code", "next": next,
                    "config": {"code": "let pwd=abc; let token=xyz; api_key=123 secret=456; const password = 'hunter2'; fetch('https://api.example.com?key=abcdef&token=ghijkl')"}}),
                _ => json!({"id": id, "type": "if_else", "else": next,
                    "branches": [{"name": "b", "condition": {"field": "contact.x", "op": "eq", "value": 1},
                                  "next": format!("s{}", (i * 7 + 3) % n)}]}),
            }
        })
        .collect();
    json!({"name": "Heavy", "status": "published", "start": "s0",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": "x"}}],
        "steps": steps})
}

/// A chain of `n` webhooks: the kind of step whose analysis costs most per byte parsed (about
/// three times its parsing), so a request deadline can pass during the analysis rather than
/// during the (uncancellable, bounded) parse.
fn webhooks(n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let next = if i + 1 < n {
                json!(format!("s{}", i + 1))
            } else {
                Value::Null
            };
            json!({"id": format!("s{i}"), "type": "webhook", "next": next,
                "config": {"url": format!("http://10.0.0.{}/h", i % 250)}})
        })
        .collect();
    json!({"name": "Hooks", "status": "published", "start": "s0",
        "triggers": [{"id": "t", "type": "form_submitted"}], "steps": steps})
}

async fn analyze(app: &TestApp, key: &str, workflow: &Value) -> (u16, Value) {
    let response = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(key)
                .json(&json!({ "workflow": workflow })),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn assert_too_complex(status: u16, body: &Value, budget_ms: u64) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("too complex"), "{message}");
    assert!(message.contains(&format!("{budget_ms} ms")), "{message}");
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "workflow");
}

#[tokio::test]
async fn a_too_complex_document_is_422_while_another_location_is_answered() {
    // A budget far below the heavy document's CPU time and far above a small one's; a
    // generous request deadline and normal priority, so that a machine busy with other tests
    // makes the analyses slower, not 503.
    let app = spawn_app_with(|env| {
        env.insert("ANALYSIS_BUDGET_MS".into(), "4".into());
        env.insert("ANALYSIS_CONCURRENCY".into(), "2".into());
        env.insert("ANALYSIS_LOW_PRIORITY".into(), "false".into());
        env.insert("REQUEST_TIMEOUT_MS".into(), "30000".into());
    })
    .await;
    let a = app.create_location("locHeavyA").await;
    let b = app.create_location("locSmallB").await;
    let heavy = heavy_workflow(5_000);
    let small = sample_workflow("Small");
    // B's first analysis pays the engine's one-time set-up.
    assert_eq!(analyze(&app, &b, &small).await.0, 200);

    let ((heavy_status, heavy_body), (small_status, small_body)) =
        tokio::join!(analyze(&app, &a, &heavy), analyze(&app, &b, &small));
    let (after_status, _) = analyze(&app, &b, &small).await;

    assert_too_complex(heavy_status, &heavy_body, 4);
    assert_eq!(small_status, 200, "{small_body}");
    assert_eq!(small_body["data"]["workflowName"], "Small");
    assert_eq!(after_status, 200);
}

#[tokio::test]
async fn a_stored_too_complex_workflow_answers_422_every_time_and_is_never_recorded() {
    let app = spawn_app_with(|env| {
        env.insert("ANALYSIS_BUDGET_MS".into(), "4".into());
        env.insert("ANALYSIS_LOW_PRIORITY".into(), "false".into());
        env.insert("REQUEST_TIMEOUT_MS".into(), "30000".into());
    })
    .await;
    let a = app.create_location("locHeavyA").await;
    let b = app.create_location("locSmallB").await;
    assert_eq!(
        app.put_workflow(&a, "big", &heavy_workflow(5_000))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.put_workflow(&b, "small", &sample_workflow("Small"))
            .await
            .status(),
        201
    );

    let first = app.api_get(&a, "/api/workflows/big/analysis").await;
    let first_status = first.status().as_u16();
    let first_body: Value = first.json().await.expect("json");
    let again = app.api_get(&a, "/api/workflows/big/analysis").await;
    let again_status = again.status().as_u16();
    let again_body: Value = again.json().await.expect("json");
    let posted = app
        .send(
            app.client
                .post(app.url("/api/analyze"))
                .bearer_auth(&a)
                .json(&json!({"workflowId": "big"})),
        )
        .await;
    let posted_status = posted.status().as_u16();
    let posted_body: Value = posted.json().await.expect("json");
    let other = app.api_get(&b, "/api/workflows/small/analysis").await;
    let history = app.api_get_json(&a, "/api/history").await;
    let location = app.api_get(&a, "/api/analysis/location").await;

    assert_too_complex(first_status, &first_body, 4);
    assert_too_complex(again_status, &again_body, 4);
    assert_too_complex(posted_status, &posted_body, 4);
    assert_eq!(other.status(), 200);
    assert_eq!(history["data"]["pagination"]["total"], 0, "{history}");
    // The location-wide analysis (one workflow, few edges) is a different, bounded matter.
    assert_ne!(location.status().as_u16(), 500);
}

#[tokio::test]
async fn a_caller_that_timed_out_does_not_keep_another_location_waiting() {
    // A short request deadline and a budget that never runs out: the analyses of locations A
    // and C (one thread each, the pool's two) outlive their callers. An analysis checks its
    // cancel flag, so the threads are free again at once and B is answered, not refused with
    // 503. This is the end-to-end
    // check; the service's unit test `a_caller_that_timed_out_frees_the_thread_for_the_next_location`
    // pins the timings down so that it fails without the flag (a linear analysis in a debug
    // build costs only a few times its parse, too little margin to pin that down over HTTP).
    let app = spawn_app_with(|env| {
        env.insert("ANALYSIS_BUDGET_MS".into(), "60000".into());
        env.insert("ANALYSIS_CONCURRENCY".into(), "2".into());
        env.insert("ANALYSIS_LOW_PRIORITY".into(), "false".into());
        env.insert("REQUEST_TIMEOUT_MS".into(), "100".into());
        env.insert("MAX_WORKFLOW_STEPS".into(), "10000".into());
    })
    .await;
    let a = app.create_location("locHeavyA").await;
    let b = app.create_location("locSmallB").await;
    let c = app.create_location("locHeavyC").await;
    // Under the 1 MiB body limit; its parse (which cannot stop half-way) takes well under the
    // deadline, its analysis about as long as the deadline.
    let heavy = webhooks(10_000);
    let small = sample_workflow("Small");
    assert_eq!(analyze(&app, &b, &small).await.0, 200);

    let ((heavy_status, heavy_body), (other_status, other_body)) =
        tokio::join!(analyze(&app, &a, &heavy), analyze(&app, &c, &heavy));
    // The heavy analysis stops at its next check between rules; on a loaded machine that
    // (and B's own small analysis) may take longer than B's 100 ms deadline once, so B may
    // be told to retry a few times — but within seconds, not after A's whole analysis.
    let started = std::time::Instant::now();
    let (small_status, small_body) = loop {
        let (status, body) = analyze(&app, &b, &small).await;
        if status != 503 || started.elapsed() > std::time::Duration::from_secs(3) {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (again_status, _) = analyze(&app, &b, &small).await;

    // In a debug build the heavy analysis takes longer than the deadline: its caller gets
    // 503; a much faster machine may answer it in time.
    assert!(
        heavy_status == 503 || heavy_status == 200,
        "{heavy_status}: {heavy_body}"
    );
    assert!(
        other_status == 503 || other_status == 200,
        "{other_status}: {other_body}"
    );
    assert_eq!(small_status, 200, "{small_body}");
    assert_eq!(again_status, 200);
}

/// A workflow started by tag `listens` that adds tag `adds`: two of them adding each other's
/// tag start each other in a loop (a location-wide finding).
fn tag_relay(name: &str, listens: &str, adds: &str) -> Value {
    json!({"name": name, "status": "published", "start": "s1",
        "triggers": [{"id": "t", "type": "contact_tag_added", "filters": {"tag": listens}}],
        "steps": [{"id": "s1", "type": "add_tag", "config": {"tag": adds}}]})
}

#[tokio::test]
async fn a_too_complex_location_is_422_while_its_workflows_own_analyses_are_served() {
    let app = spawn_app_with(|env| {
        env.insert("ANALYSIS_BUDGET_MS".into(), "4".into());
        env.insert("ANALYSIS_LOW_PRIORITY".into(), "false".into());
        env.insert("REQUEST_TIMEOUT_MS".into(), "30000".into());
    })
    .await;
    let key = app.create_location("locA").await;
    for (id, document) in [
        ("ping", tag_relay("Ping", "ping", "pong")),
        ("pong", tag_relay("Pong", "pong", "ping")),
        ("big1", heavy_workflow(5_000)),
        ("big2", heavy_workflow(5_000)),
    ] {
        assert_eq!(app.put_workflow(&key, id, &document).await.status(), 201);
    }
    // The engine's one-time set-up is paid outside the test's budget.
    assert_eq!(analyze(&app, &key, &sample_workflow("Small")).await.0, 200);

    let location = app.api_get(&key, "/api/analysis/location").await;
    let location_status = location.status().as_u16();
    let location_body: Value = location.json().await.expect("json");
    let ping = app.api_get(&key, "/api/workflows/ping/analysis").await;
    let ping_status = ping.status().as_u16();
    let ping_body: Value = ping.json().await.expect("json");

    assert_eq!(location_status, 422, "{location_body}");
    assert_eq!(location_body["error"]["code"], "VALIDATION_ERROR");
    let message = location_body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("location's workflows are too complex") && message.contains("4 ms"),
        "{message}"
    );
    assert_eq!(
        location_body["error"]["details"]["errors"][0]["field"],
        "location"
    );
    // Ping's own analysis stands; the ping ↔ pong loop is a location-wide finding, left out.
    assert_eq!(ping_status, 200, "{ping_body}");
    assert_eq!(ping_body["data"]["workflowId"], "ping");
    let rules: Vec<&str> = ping_body["data"]["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| i["rule"].as_str().expect("rule"))
        .collect();
    assert!(!rules.contains(&"workflow-cascade-loop"), "{rules:?}");

    // Without the heavy workflows the location is analyzed, and ping's analysis has the loop.
    for id in ["big1", "big2"] {
        assert_eq!(app.delete_workflow(&key, id).await.status(), 204);
    }
    let again = app.api_get_json(&key, "/api/workflows/ping/analysis").await;
    let rules: Vec<&str> = again["data"]["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| i["rule"].as_str().expect("rule"))
        .collect();
    assert!(rules.contains(&"workflow-cascade-loop"), "{again}");
}

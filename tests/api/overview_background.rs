//! The overview's background analyses (`services::overview`): a list with `include=analysis`
//! answers with pending rows instead of waiting for them, and two locations' pending
//! analyses progress side by side (one task per location, the analysis pool's lanes).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// Workflows per location: their analyses together take far longer than one answer.
const WORKFLOWS: usize = 12;
const PAGE: &str = "/api/workflows?include=analysis&limit=100";

/// A connected workflow of `n` steps whose analysis takes some CPU (webhooks, merge fields,
/// code, branches: every rule has something to look at), named `name`.
fn slow_to_analyze(name: &str, n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let (id, next) = (format!("s{i}"), format!("s{}", (i + 1) % n));
            match i % 3 {
                0 => json!({"id": id, "type": "webhook", "next": next,
                    "config": {"url": format!("http://10.0.0.{}/h?a={{{{contact.email}}}}", i % 250)}}),
                1 => json!({"id": id, "type": "custom_code", "next": next,
                    "config": {"code": "let token=xyz; fetch('https://api.example.com?key=abc')"}}),
                _ => json!({"id": id, "type": "if_else", "else": next,
                    "branches": [{"name": "b", "condition": {"field": "contact.x", "op": "eq", "value": 1},
                                  "next": format!("s{}", (i * 7 + 3) % n)}]}),
            }
        })
        .collect();
    json!({"name": name, "status": "published", "start": "s0",
        "triggers": [{"id": "t", "type": "form_submitted"}], "steps": steps})
}

async fn location_with_slow_workflows(app: &TestApp, location: &str) -> String {
    let key = app.create_location(location).await;
    for i in 0..WORKFLOWS {
        let put = app
            .put_workflow(
                &key,
                &format!("wf{i}"),
                &slow_to_analyze(&format!("{location} {i}"), 2000),
            )
            .await;
        assert!(put.status().is_success(), "wf{i}: {}", put.status());
    }
    key
}

/// Rows of the overview page still pending.
async fn pending(app: &TestApp, key: &str) -> usize {
    let page = app.api_get_json(key, PAGE).await;
    assert_eq!(page["success"], true, "{page}");
    let rows = page["data"]["workflows"].as_array().expect("rows");
    assert_eq!(rows.len(), WORKFLOWS);
    rows.iter()
        .filter(|row| row["analysisStatus"] == "pending")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_answers_with_pending_rows_and_two_locations_analyses_progress_together() {
    let app = spawn_app().await;
    let keys = [
        location_with_slow_workflows(&app, "locSlowA").await,
        location_with_slow_workflows(&app, "locSlowB").await,
    ];

    // The first lists answer at once with every row pending: they start the analyses, they
    // do not wait for them (at most the location-wide one's 300 ms).
    let started = Instant::now();
    for key in &keys {
        let asked = Instant::now();
        assert_eq!(pending(&app, key).await, WORKFLOWS);
        let answered = asked.elapsed();
        assert!(
            answered < Duration::from_secs(5),
            "answered after {answered:?}"
        );
    }
    let first_answers = started.elapsed();

    // Then both locations' pending counts fall side by side: each one has progressed before
    // the other is done (one location's queue never waits for the other's to empty).
    let (mut progressed, mut done) = ([None; 2], [None; 2]);
    for sample in 0.. {
        for (n, key) in keys.iter().enumerate() {
            let left = pending(&app, key).await;
            if left < WORKFLOWS && progressed[n].is_none() {
                progressed[n] = Some(sample);
            }
            if left == 0 && done[n].is_none() {
                done[n] = Some(sample);
            }
        }
        if done.iter().all(Option::is_some) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "pending analyses never finished: progressed {progressed:?}, done {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_analyzed = started.elapsed();
    let (progressed, done) = (progressed.map(Option::unwrap), done.map(Option::unwrap));
    println!(
        "\noverview: first answers in {first_answers:?}, all {} analyses after {all_analyzed:?}; progress at samples {progressed:?}, done at {done:?}",
        2 * WORKFLOWS
    );
    assert!(
        progressed[0] <= done[1] && progressed[1] <= done[0],
        "one location waited for the other: progress at samples {progressed:?}, done at {done:?}"
    );
    assert!(
        done.iter().any(|d| *d > 0),
        "every analysis was done before the first poll: the answers tested nothing"
    );
}

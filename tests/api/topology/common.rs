//! What the Cluster and Sentinel tests share: apps on a topology, health, L2-hit and
//! cross-instance checks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::faults::harness::{client, health_detailed, scaled, Load, Row, Seeded, Tally};
use crate::helpers::{sample_workflow, spawn_app_with, spawn_sibling, TestApp};

/// Two instances (same database, prefix and Redis topology), both connected to Redis.
pub async fn two_instances(topology: &[(&str, String)]) -> (TestApp, TestApp) {
    let vars: HashMap<String, String> = topology
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let first = spawn_app_with(|env| {
        env.remove("REDIS_URL");
        env.extend(vars);
    })
    .await;
    wait_connected(&first).await;
    let second = spawn_sibling(&first).await;
    wait_connected(&second).await;
    (first, second)
}

async fn wait_connected(app: &TestApp) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        if cache_check(app).await["type"] == "redis" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Redis tier never connected: {}", cache_check(app).await);
}

/// `checks.cache` of `/health/detailed`.
pub async fn cache_check(app: &TestApp) -> Value {
    // 10 s is the limit `client()` already sets: these checks wait as long as they always did.
    let body = health_detailed(&client(), app, Duration::from_secs(10)).await;
    body["checks"]["cache"].clone()
}

/// Polls health until `accept` holds for `checks.cache` (or panics after `max`).
pub async fn wait_cache_check(app: &TestApp, max: Duration, accept: impl Fn(&Value) -> bool) {
    let t = Instant::now();
    loop {
        let check = cache_check(app).await;
        if accept(&check) {
            return;
        }
        assert!(t.elapsed() < max, "health never matched: {check}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn read(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.api_get(key, &format!("/api/workflows/{id}")).await
}

/// A workflow written and read on `writer` becomes an L2 hit on `reader` (after a few tries,
/// since fills are fire-and-forget). Returns how many tries it took.
pub async fn l2_hit_across(writer: &TestApp, reader: &TestApp, key: &str, tag: &str) -> usize {
    for attempt in 1..=20 {
        let id = format!("{tag}{attempt}");
        let written = writer
            .put_workflow(key, &id, &sample_workflow(&id))
            .await
            .status();
        if !written.is_success() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        // The write's tombstone refuses fills from loads that began within 250 ms of it.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = read(writer, key, &id).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = read(reader, key, &id).await;
        if r.headers().get("x-cache-tier").is_some_and(|t| t == "l2") {
            return attempt;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("no L2 hit on the second instance in 20 tries");
}

/// Writes on one instance then reads at once on the other, `rounds` times each way: every
/// read must show the write just acknowledged. Returns the number of stale reads.
pub async fn stale_reads_across(a: &TestApp, b: &TestApp, key: &str, rounds: usize) -> usize {
    let mut stale = 0;
    for round in 0..rounds {
        let (writer, reader) = if round % 2 == 0 { (a, b) } else { (b, a) };
        // Both instances hold the current version in L1 before the write.
        let _ = read(writer, key, "shared").await;
        let _ = read(reader, key, "shared").await;
        let name = format!("round {round}");
        let w = writer
            .put_workflow(key, "shared", &sample_workflow(&name))
            .await;
        assert!(w.status().is_success(), "write {round}: {}", w.status());
        let body: Value = read(reader, key, "shared").await.json().await.unwrap();
        if body["data"]["name"] != name.as_str() {
            stale += 1;
        }
    }
    stale
}

/// Reads on both instances (4 tasks each, `total` in all) while `fault` runs — started once an
/// eighth of them is done — and 200 more on the first instance after it returned.
pub async fn load_both_through<T>(
    a: &TestApp,
    b: &TestApp,
    seeded: &Seeded,
    fault: impl Future<Output = T>,
) -> (T, Tally, Tally) {
    let total = scaled(2_000);
    let load_a = Load::reads(&a.address, seeded, 4, total / 2);
    let load_b = Load::reads(&b.address, seeded, 4, total / 2);
    load_a.wait_for(total / 8).await;
    let outcome = fault.await;
    let done = load_a.done.load(Ordering::SeqCst);
    load_a.wait_for(done + 200).await;
    (outcome, load_a.finish().await, load_b.finish().await)
}

/// One report row per instance; no 5xx, every body correct, no stale read afterwards.
pub fn report_failover(scenario: &'static str, tallies: [&Tally; 2], stale: usize, recovery: &str) {
    for (name, tally) in ["A", "B"].into_iter().zip(tallies) {
        Row {
            scenario,
            requests: tally.count(),
            five_xx: tally.five_xx(),
            stale_reads: stale,
            stale_served: tally.stale_served(),
            lost_writes: 0,
            recovery: format!("instance {name}: {recovery}"),
            p99: tally.p99(),
        }
        .print();
        assert_eq!(tally.five_xx(), 0, "{}", tally.summary());
        assert_eq!(tally.wrong(), 0, "{}", tally.summary());
    }
    assert_eq!(stale, 0, "stale reads after the failover");
}

//! Issue 4's cross-instance guarantees on real Postgres and Redis: no stale read after an
//! acknowledged write, revoked keys refused at once, and tenant isolation on every id route
//! with cold and warm caches on two instances.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binary::{binary, key_from};
use crate::caching::wait_for_redis;
use crate::helpers::{sample_workflow, spawn_app, spawn_sibling, TestApp};

/// How long the readers go on after the last write.
const SETTLE: Duration = Duration::from_millis(300);

const WRITES: i64 = 25;

/// One read: when it was sent, and the version it saw.
#[derive(Debug, Clone, Copy)]
struct Read {
    sent: Instant,
    version: i64,
}

async fn read_version(app: &TestApp, key: &str) -> Read {
    let sent = Instant::now();
    let response = app.api_get(key, "/api/workflows/wf1").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    Read {
        sent,
        version: body["data"]["version"].as_i64().unwrap(),
    }
}

/// Readers polling `instance` until `stop`, each recording every read.
fn spawn_readers(
    instance: &Arc<TestApp>,
    key: &str,
    readers: usize,
    stop: &Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<Read>>>, Vec<tokio::task::JoinHandle<()>>) {
    let reads = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..readers)
        .map(|_| {
            let (instance, key, stop, reads) = (
                Arc::clone(instance),
                key.to_owned(),
                Arc::clone(stop),
                Arc::clone(&reads),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let read = read_version(&instance, &key).await;
                    reads.lock().unwrap().push(read);
                }
            })
        })
        .collect();
    (reads, handles)
}

/// For each acknowledged write `(acked, version)`: the latest send time, after the ack, of a
/// read that still saw an older version (how long the instance stayed stale).
fn worst_stale_window(acks: &[(Instant, i64)], reads: &[Read]) -> Duration {
    acks.iter()
        .flat_map(|(acked, version)| {
            reads
                .iter()
                .filter(move |read| read.sent > *acked && read.version < *version)
                .map(move |read| read.sent - *acked)
        })
        .max()
        .unwrap_or(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_read_begun_after_an_acknowledged_write_returns_an_older_version_on_either_instance() {
    let app = Arc::new(spawn_app().await);
    let sibling = Arc::new(spawn_sibling(&app).await);
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    let key = app.create_location("locA").await;
    assert_eq!(
        app.put_workflow(&key, "wf1", &sample_workflow("v1"))
            .await
            .status(),
        201
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (reads_a, mut handles) = spawn_readers(&app, &key, 2, &stop);
    let (reads_b, handles_b) = spawn_readers(&sibling, &key, 3, &stop);
    handles.extend(handles_b);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut acks = Vec::new();
    for n in 2..=WRITES {
        let response = app
            .put_workflow(&key, "wf1", &sample_workflow(&format!("v{n}")))
            .await;
        let acked = Instant::now();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let version = body["data"]["version"].as_i64().unwrap();
        assert_eq!(version, n);
        acks.push((acked, version));
        // The next read begun on the writing instance sees the write.
        assert!(read_version(&app, &key).await.version >= version);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.unwrap();
    }

    let reads_a = reads_a.lock().unwrap().clone();
    let reads_b = reads_b.lock().unwrap().clone();
    let worst_a = worst_stale_window(&acks, &reads_a);
    let worst_b = worst_stale_window(&acks, &reads_b);
    // How many reads on B began right after an ack, where staleness would show.
    let close_b = reads_b
        .iter()
        .filter(|read| {
            acks.iter().any(|(acked, _)| {
                read.sent > *acked && read.sent - *acked < Duration::from_millis(10)
            })
        })
        .count();
    eprintln!(
        "stale-after-write: {} reads on A, {} on B ({close_b} begun within 10 ms of an ack); \
         worst stale window A {worst_a:?}, B {worst_b:?}",
        reads_a.len(),
        reads_b.len(),
    );
    assert!(reads_b.len() > WRITES as usize, "the readers kept reading");
    assert_eq!(
        worst_a,
        Duration::ZERO,
        "the writing instance served an older version"
    );
    // A write is answered only once every other instance dropped the key, so no read begun
    // after the answer sees an older version there either.
    assert_eq!(
        worst_b,
        Duration::ZERO,
        "the other instance served an older version after the write was acknowledged"
    );
    let last = reads_b.iter().max_by_key(|read| read.sent).unwrap();
    assert_eq!(last.version, WRITES);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_on_both_instances() {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    app.create_location("locA").await;
    let cli = |args: &[&str]| {
        let mut command = binary();
        command
            .args(args)
            .env("DATABASE_URL", app.database_url())
            .env("REDIS_URL", &app.env["REDIS_URL"])
            .env("CACHE_PREFIX", &app.env["CACHE_PREFIX"]);
        command
    };
    let created = cli(&["key", "create", "--location", "locA", "--label", "doomed"])
        .output()
        .await
        .unwrap();
    assert!(created.status.success());
    let key = key_from(&created.stdout);
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    let key_id = stdout.split_whitespace().nth(2).unwrap().to_owned();
    // Both instances remember the key in L1 (and Redis holds it too).
    for instance in [&app, &sibling] {
        for _ in 0..2 {
            assert_eq!(instance.api_get(&key, "/api/workflows").await.status(), 200);
        }
    }

    let revoked = cli(&["key", "revoke", "--id", &key_id])
        .output()
        .await
        .unwrap();
    assert!(revoked.status.success());

    for instance in [&app, &sibling] {
        let response = instance.api_get(&key, "/api/workflows").await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
}

/// Status, error code and message: what a caller can tell apart.
async fn outcome(response: reqwest::Response) -> (u16, Value, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].clone(),
        body["error"]["message"].clone(),
    )
}

async fn put_if_match(app: &TestApp, key: &str, id: &str, version: i64) -> reqwest::Response {
    app.send(
        app.client
            .put(app.url(&format!("/api/workflows/{id}")))
            .bearer_auth(key)
            .header("If-Match", version.to_string())
            .json(&sample_workflow("B's attempt")),
    )
    .await
}

/// Location A's workflow as A sees it: (name, version).
async fn owners_view(app: &TestApp, key_a: &str) -> (Value, Value) {
    let body: Value = app
        .api_get(key_a, "/api/workflows/secret")
        .await
        .json()
        .await
        .unwrap();
    (
        body["data"]["name"].clone(),
        body["data"]["version"].clone(),
    )
}

#[tokio::test]
async fn another_locations_id_is_404_like_a_missing_one_on_every_id_route_cold_and_warm_on_both_instances(
) {
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app).await;
    wait_for_redis(&app).await;
    wait_for_redis(&sibling).await;
    let key_a = app.create_location("locA").await;
    let key_b = app.create_location("locB").await;
    app.put_workflow(&key_a, "secret", &sample_workflow("A's secret"))
        .await;
    let original = owners_view(&app, &key_a).await;
    assert_eq!(original.0, "A's secret");

    // B creates its own "secret" once per cell and deletes it again: each creation continues
    // after the last version of B's deleted one (versions never go back).
    let mut b_version = 0;
    for (instance_name, instance) in [("first", &app), ("second", &sibling)] {
        for warm in [false, true] {
            b_version += 1;
            let cell = format!(
                "{instance_name} instance, {} cache",
                if warm { "warm" } else { "cold" }
            );
            if warm {
                // A's entry and B's lookups of the same id sit in both tiers.
                for _ in 0..2 {
                    instance.api_get(&key_a, "/api/workflows/secret").await;
                    instance.api_get(&key_b, "/api/workflows/secret").await;
                    instance.api_get(&key_b, "/api/workflows/missing").await;
                }
            } else {
                let flushed = app
                    .send(app.client.post(app.url("/internal/cache/flush")))
                    .await;
                assert_eq!(flushed.status(), 200);
                // The flush reaches the other instance's L1 over pub/sub.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }

            let get_foreign =
                outcome(instance.api_get(&key_b, "/api/workflows/secret").await).await;
            let get_missing =
                outcome(instance.api_get(&key_b, "/api/workflows/missing").await).await;
            assert_eq!(get_foreign.0, 404, "GET, {cell}");
            assert_eq!(get_foreign, get_missing, "GET, {cell}");

            let delete_foreign = outcome(instance.delete_workflow(&key_b, "secret").await).await;
            let delete_missing = outcome(instance.delete_workflow(&key_b, "missing").await).await;
            assert_eq!(delete_foreign.0, 404, "DELETE, {cell}");
            assert_eq!(delete_foreign, delete_missing, "DELETE, {cell}");

            let conditional_foreign =
                outcome(put_if_match(instance, &key_b, "secret", 1).await).await;
            let conditional_missing =
                outcome(put_if_match(instance, &key_b, "missing", 1).await).await;
            assert_eq!(conditional_foreign.0, 412, "PUT If-Match, {cell}");
            assert_eq!(
                conditional_foreign, conditional_missing,
                "PUT If-Match, {cell}"
            );

            // An unconditional PUT makes B's own workflow of that id; A's is untouched.
            let put = instance
                .put_workflow(&key_b, "secret", &sample_workflow("B's own"))
                .await;
            assert_eq!(put.status(), 201, "PUT, {cell}");
            let put: Value = put.json().await.unwrap();
            assert_eq!(put["data"]["version"], b_version, "PUT, {cell}");
            for reader in [&app, &sibling] {
                assert_eq!(
                    owners_view(reader, &key_a).await,
                    original,
                    "after PUT, {cell}"
                );
            }
            assert_eq!(
                instance.delete_workflow(&key_b, "secret").await.status(),
                204
            );
            for reader in [&app, &sibling] {
                assert_eq!(
                    owners_view(reader, &key_a).await,
                    original,
                    "after DELETE, {cell}"
                );
            }
        }
    }
}

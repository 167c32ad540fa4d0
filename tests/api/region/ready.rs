//! `/ready` follows the primary (`DATABASE_URL`) in every region: a replica that stops only
//! degrades `/health/detailed`, and a primary that stops accepting connections (smart
//! shutdown: SQLSTATE 57P03 to every new connection) turns `/ready` and writes into 503s,
//! never 500s, while reads keep going to the replica.

use std::time::{Duration, Instant};

use sqlx::Connection;

use super::harness::*;
use crate::faults::harness::client;
use crate::helpers::TestApp;

async fn ready(app: &TestApp) -> u16 {
    client()
        .get(app.url("/ready"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Polls `/ready` until it answers `want`; how long that took.
async fn wait_ready(app: &TestApp, want: u16, max: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let got = ready(app).await;
        if got == want {
            return t.elapsed();
        }
        assert!(t.elapsed() < max, "/ready answered {got}, never {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_primary_not_the_replica_and_a_primary_shutting_down_answers_503() {
    let options = Options {
        b_instances: 1,
        ..Options::default()
    };
    let Some(mut r) = Regions::start(options).await else {
        return;
    };
    r.seed().await;
    let b = &r.b[0];
    assert_eq!(ready(b).await, 200);

    // The replica stopped: degraded, and still ready (health is probed once a second per
    // instance: ask across several probes).
    r.replica.stop_immediately();
    let degraded = wait_replica(b, "degraded", Duration::from_secs(5)).await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert_eq!(degraded["checks"]["database"], "healthy", "{degraded}");
    for _ in 0..6 {
        assert_eq!(
            ready(b).await,
            200,
            "a stopped replica must not fail /ready"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    r.replica.start();
    wait_replica(b, "healthy", Duration::from_secs(20)).await;

    // The primary in smart shutdown: the sessions it has go on (this one holds it there), new
    // connections are refused with 57P03 "the database system is shutting down". The
    // instances' own sessions are ended, so their next statement needs a new connection.
    let mut held = sqlx::PgConnection::connect(&r.primary.url("postgres"))
        .await
        .unwrap();
    r.primary.signal("-TERM");
    let refused = Instant::now();
    loop {
        match sqlx::PgConnection::connect(&r.primary.url("postgres")).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57P03") => break,
            Ok(_) | Err(_) => {
                assert!(
                    refused.elapsed() < Duration::from_secs(10),
                    "the primary never refused connections with 57P03"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let ended: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
         where backend_type = 'client backend' and pid <> pg_backend_pid()) as ended",
    )
    .fetch_one(&mut held)
    .await
    .unwrap();
    assert!(ended > 0, "the instances had sessions on the primary");

    let took = wait_ready(b, 503, Duration::from_secs(10)).await;
    assert_eq!(
        ready(&r.a).await,
        503,
        "region a's /ready follows the primary too"
    );
    let body = health(b).await;
    assert_eq!(body["checks"]["database"], "unhealthy", "{body}");

    // Writes need the primary: 503 with the usual envelope, in both regions; never a 500.
    for app in [&r.a, b] {
        for id in 0..IDS {
            let response = client()
                .put(app.url(&format!("/api/workflows/wf{id}")))
                .bearer_auth(&r.key)
                .json(&crate::helpers::sample_workflow("during shutdown"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let envelope: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                status, 503,
                "a write while the primary shuts down: {envelope}"
            );
            assert_eq!(
                envelope["error"]["code"], "SERVICE_UNAVAILABLE",
                "{envelope}"
            );
        }
    }
    println!(
        "\nregions: replica stopped: /ready 200, health degraded; primary in smart shutdown \
         (57P03): /ready 503 after {}, writes 503 in both regions",
        millis(took)
    );

    // The session that held the primary ends: it finishes shutting down (stopped by its PID
    // when the harness is dropped).
    drop(held);
}

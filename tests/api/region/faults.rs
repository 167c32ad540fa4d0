//! A region loses a piece: its Redis (it keeps answering from memory and still hears the
//! other region's writes through the primary), its replica, or its replica falls too far
//! behind (its reads go to the primary).

use std::time::{Duration, Instant};

use super::harness::*;
use super::reads::freshness_run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_redis_killed_region_b_answers_from_memory_and_still_hears_region_a() {
    let Some(r) = Regions::start(Options::default()).await else {
        return;
    };
    r.seed().await;
    // SIGKILL by its PID while b's readers run (the harness reaps it when dropped).
    let run = freshness_run(&r, 10, Duration::from_millis(400), || async {
        r.redis_b.signal("-KILL");
    })
    .await;
    println!("\n{}", run.summary("regions, b's Redis killed"));
    run.assert_fresh_and_monotonic(r.apply_delay);
    assert!(
        run.l1_share() > 0.5,
        "b served {:.2} from memory",
        run.l1_share()
    );
    let health = health(&r.b[0]).await;
    assert_eq!(health["checks"]["cache"]["type"], "in-memory", "{health}");
}

/// Reads in b until `n` are done, every one checked: 200, and never older than `floor`.
async fn reads_in_b(r: &Regions, n: usize, floor: &[i64]) -> Vec<Got> {
    let mut out = Vec::new();
    for k in 0..n {
        let app = &r.b[k % r.b.len()];
        let got = get(app, &r.key, k % IDS, None).await;
        assert_eq!(got.status, 200, "read {k} in b: {got:?}");
        assert!(
            got.version >= floor[k % IDS],
            "read {k}: {got:?}, want v{}",
            floor[k % IDS]
        );
        out.push(got);
    }
    out
}

/// Writes every workflow once in region a; their versions.
async fn write_all(r: &Regions, name: &str) -> Vec<i64> {
    let mut versions = Vec::new();
    for id in 0..IDS {
        let put = put(&r.a, &r.key, id, name).await;
        assert!(put.ok(), "{}", put.status);
        versions.push(put.version);
    }
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_lag_limit_or_with_the_replica_stopped_region_b_reads_the_primary() {
    let options = Options {
        b_instances: 1,
        b_env: vec![("MAX_REPLICA_LAG_MS", "400".to_owned())],
        ..Options::default()
    };
    let Some(mut r) = Regions::start(options).await else {
        return;
    };
    r.seed().await;
    let b = &r.b[0];

    // The replica stops replaying while region a keeps writing: its lag passes the limit.
    r.on_replica("select pg_wal_replay_pause()").await;
    let paused = Instant::now();
    let mut floor = write_all(&r, "paused 0").await;
    let mut degraded = None;
    for n in 1..60 {
        floor = write_all(&r, &format!("paused {n}")).await;
        let body = health(b).await;
        if body["checks"]["replica"]["status"] == "degraded" {
            degraded = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let degraded = degraded.expect("the replica's lag never passed the limit");
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert_eq!(reqwest_status(b).await, 200, "degraded is still 200");
    let lag = degraded["checks"]["replica"]["lagMs"].as_u64().unwrap();
    assert!(lag > 400, "{degraded}");
    let to_primary = reads_to(b, "primary").await;
    // Region a's writes are seen at once: the reads go to the primary, not the paused replica.
    tokio::time::sleep(Duration::from_millis(300)).await;
    reads_in_b(&r, 40, &floor).await;
    assert!(
        reads_to(b, "primary").await > to_primary,
        "b did not read the primary"
    );
    println!(
        "\nregions: replica paused, lag {lag} ms > 400 ms after {}; b reads the primary",
        millis(paused.elapsed())
    );

    // Replaying again, it catches up and takes the reads back.
    r.on_replica("select pg_wal_replay_resume()").await;
    wait_replica(b, "healthy", Duration::from_secs(20)).await;
    let to_replica = reads_to(b, "replica").await;
    let floor = write_all(&r, "resumed").await;
    tokio::time::sleep(r.apply_delay + Duration::from_millis(500)).await;
    reads_in_b(&r, 40, &floor).await;
    assert!(
        reads_to(b, "replica").await > to_replica,
        "b did not go back to its replica"
    );

    // The replica stopped: b's reads go to the primary, without an error.
    r.replica.stop_immediately();
    let stopped = Instant::now();
    let to_primary = reads_to(b, "primary").await;
    let floor = write_all(&r, "replica stopped").await;
    // The writes' notices reach b within milliseconds; what b loads then comes from the
    // primary.
    tokio::time::sleep(Duration::from_millis(300)).await;
    reads_in_b(&r, 80, &floor).await;
    assert!(
        reads_to(b, "primary").await > to_primary,
        "b did not read the primary"
    );
    let body = wait_replica(b, "degraded", Duration::from_secs(5)).await;
    assert_eq!(body["status"], "degraded");
    println!(
        "\nregions: replica stopped; b's reads on the primary, 0 errors; health degraded after {}",
        millis(stopped.elapsed())
    );
}

async fn reqwest_status(app: &crate::helpers::TestApp) -> u16 {
    app.get("/health/detailed").await.status().as_u16()
}

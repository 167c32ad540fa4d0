//! Region b switching between its replica and the primary: a token read whose replica is too
//! far behind for `READ_YOUR_WRITES_WAIT_MS` is answered by the primary; and a copy read
//! from the primary and evicted before the replica caught up is not followed by the
//! replica's older row (the cache keeps that key's loads on the primary until the replica
//! replayed that far, `cache::region`), after which the key is read from the replica again.

use std::time::{Duration, Instant};

use super::harness::*;
use crate::helpers::TestApp;

/// The replica replays 1.5 s late; a token read waits 100 ms for it, then reads the primary.
/// One instance in b, so every read there goes through the same router.
async fn far_replica() -> Option<Regions> {
    let r = Regions::start(Options {
        apply_delay: Duration::from_millis(1500),
        b_instances: 1,
        b_env: vec![("READ_YOUR_WRITES_WAIT_MS", "100".into())],
    })
    .await?;
    r.seed().await;
    Some(r)
}

/// Drops the instance's cached copies (both tiers of its region): the next read loads.
async fn flush(app: &TestApp) {
    let response = app
        .client
        .post(app.url("/internal/cache/flush"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_read_the_replica_cannot_serve_in_time_is_answered_by_the_primary() {
    let Some(r) = far_replica().await else {
        return;
    };
    let b = &r.b[0];
    for round in 0..6 {
        let id = round % IDS;
        let put = put(&r.a, &r.key, id, &format!("far {round}")).await;
        assert!(put.ok(), "write {round}: {}", put.status);
        let token = put.token.clone().expect("a write answers a token");
        let on_primary = reads_to(b, "primary").await;
        let got = get(b, &r.key, id, Some(&token)).await;
        assert_eq!(got.status, 200, "token read {round}: {got:?}");
        assert!(
            got.version >= put.version,
            "round {round}: v{} after v{} with its token",
            got.version,
            put.version
        );
        assert!(
            reads_to(b, "primary").await > on_primary,
            "round {round}: the token read was not served by the primary"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_answering_from_the_primary_region_b_does_not_go_back_to_its_replica_older_row() {
    let Some(r) = far_replica().await else {
        return;
    };
    let b = &r.b[0];
    let mut inside_the_window = 0;
    for round in 0..4 {
        let id = round % IDS;
        let put = put(&r.a, &r.key, id, &format!("switch {round}")).await;
        assert!(put.ok(), "write {round}: {}", put.status);
        let token = put.token.clone().expect("a write answers a token");
        // Served by the primary: the replica is 1.5 s behind, the read waits 100 ms.
        let got = get(b, &r.key, id, Some(&token)).await;
        assert!(got.version >= put.version, "{got:?}");
        // That copy leaves the caches before the replica has replayed the write; the next
        // read (no token) loads again.
        flush(b).await;
        let after = get(b, &r.key, id, None).await;
        assert_eq!(after.status, 200, "{after:?}");
        assert!(
            after.version >= got.version,
            "round {round}: v{} served after v{} (went back to the replica)",
            after.version,
            got.version
        );
        if after.finished.duration_since(put.acked) < r.apply_delay {
            inside_the_window += 1;
        }
        // The next round starts with the replica caught up again.
        tokio::time::sleep(r.apply_delay).await;
    }
    assert!(
        inside_the_window > 0,
        "no round read before the replica replayed: the scenario tested nothing"
    );

    // Once the replica has replayed past what the primary served, b reads the key from its
    // replica again: a load after a flush no longer touches the primary.
    let t = Instant::now();
    loop {
        flush(b).await;
        let on_primary = reads_to(b, "primary").await;
        assert_eq!(get(b, &r.key, 0, None).await.status, 200);
        if reads_to(b, "primary").await == on_primary {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "b never went back to its replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

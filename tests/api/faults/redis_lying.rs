//! Scenario 4: Redis lying — garbage under the app's real keys, replies corrupted in flight,
//! a fake server answering nonsense. The in-process tier is off so every read meets Redis.

use std::time::Duration;

use ghl_workflow_debugger::cache::wire;

use super::harness::*;
use super::proxy::{Fault, FaultProxy};

/// Values no encoder of ours writes: random bytes, JSON, our magic with a wrong version,
/// a header cut short, a tombstone flag carrying a payload.
fn garbage(n: usize) -> Vec<u8> {
    match n % 5 {
        0 => (0..64).map(|_| rand::random::<u8>()).collect(),
        1 => br#"{"id":"wf0","name":"not from postgres"}"#.to_vec(),
        2 => [&[0xC7u8, 0x09, 0x00][..], &[0u8; 24], b"{\"x\":1}"].concat(),
        3 => vec![wire::MAGIC, wire::FORMAT_VERSION, 0x00, 0x01],
        _ => [&wire::tombstone_prefix()[..], &[0u8; 24], b"tomb?"].concat(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_redis_never_reaches_a_response_and_decode_errors_are_counted() {
    let redis = RedisServer::start(None).await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let app = app_on(&proxy.url("redis://"), |env| {
        env.insert("CACHE_L1_CAPACITY".into(), "0".into());
    })
    .await;
    let seeded = seed(&app, "locLying", 20).await;
    let prefix = app.env["CACHE_PREFIX"].clone();
    let per_phase = scaled(600);

    // Garbage under every key of the app's namespace that the reads below use: the
    // workflows, their list and the API key (other kinds are not read back here).
    let mut admin = redis.admin().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async::<Vec<String>>(&mut admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| {
            // The location overview (a `workflows` kind too) and the GoHighLevel originals
            // (`workflow` keys ending in `:ghl`, tombstoned by every workflow write) are not
            // read below.
            [":workflow:", ":workflows:", ":api_key:"]
                .iter()
                .any(|kind| k.contains(kind))
                && !k.contains(":overview:")
                && !k.ends_with(":ghl")
        })
        .collect();
    assert!(keys.len() >= 20, "the seeded reads filled Redis: {keys:?}");
    for (n, k) in keys.iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(garbage(n))
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let decode_before = metric(&app, "cache_decode_errors_total").await;
    let garbage_phase = Load::reads(&app.address, &seeded, 8, per_phase)
        .finish()
        .await;
    let list = app.api_get(&seeded.key, "/api/workflows").await;
    assert_eq!(list.status(), 200, "the list under garbage");
    let decode_errors = metric(&app, "cache_decode_errors_total").await - decode_before;
    // Fills are fire-and-forget: on a loaded machine the last read's may land a little after
    // its response.
    let mut replaced = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while replaced < keys.len() && std::time::Instant::now() < deadline {
        replaced = 0;
        for k in &keys {
            let v: Option<Vec<u8>> = redis::cmd("GET")
                .arg(k)
                .query_async(&mut admin)
                .await
                .unwrap();
            match v {
                Some(v) if wire::decode(v.clone().into()).is_err() => {
                    eprintln!("still garbage under {k}: {v:?}")
                }
                _ => replaced += 1,
            }
        }
        if replaced < keys.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Replies corrupted in flight, then a fake server.
    let failures_before = redis_failures(&app).await;
    let load = Load::reads(&app.address, &seeded, 8, 2 * per_phase);
    proxy.set(Fault::Corrupt { one_in: 3 });
    load.wait_for(per_phase).await;
    proxy.set(Fault::Nonsense);
    load.wait_for(per_phase * 3 / 2).await;
    proxy.set(Fault::Pass);
    let wire_phase = load.finish().await;
    let wire_decode_errors =
        metric(&app, "cache_decode_errors_total").await - decode_before - decode_errors;
    let wire_failures = redis_failures(&app).await - failures_before;
    eprintln!("wire phase: {}", wire_phase.summary());
    let healthy = wait_health(&app, "healthy", Duration::from_secs(5)).await;

    let requests = garbage_phase.count() + wire_phase.count();
    Row {
        scenario: "4. Redis lying (garbage values, corrupted replies, fake server)",
        requests,
        five_xx: garbage_phase.five_xx() + wire_phase.five_xx(),
        stale_reads: 0,
        stale_served: garbage_phase.stale_served() + wire_phase.stale_served(),
        lost_writes: 0,
        recovery: format!(
            "{decode_errors} + {wire_decode_errors} decode errors counted, {replaced}/{} bad keys replaced, healthy {} after healing",
            keys.len(),
            healthy.map(secs).unwrap_or("never".into())
        ),
        p99: percentile(
            garbage_phase
                .samples
                .iter()
                .chain(&wire_phase.samples)
                .map(|s| s.latency)
                .collect(),
            0.99,
        ),
    }
    .print();
    assert_eq!(
        garbage_phase.five_xx() + garbage_phase.wrong(),
        0,
        "garbage values: {}",
        garbage_phase.summary()
    );
    assert!(decode_errors >= 1.0, "decode errors not counted");
    assert_eq!(replaced, keys.len(), "bad entries left in Redis");
    assert_eq!(
        wire_phase.five_xx() + wire_phase.wrong(),
        0,
        "corrupted replies: {}",
        wire_phase.summary()
    );
    // A corrupted reply is a value that does not decode, or a reply the Redis client cannot
    // parse (an error, or a timeout while it waits for the rest): which one depends on where
    // the flipped byte lands, and on a loaded machine every corrupted reply may be of the
    // second kind.
    assert!(
        wire_decode_errors + wire_failures >= 1.0,
        "no corrupted reply was seen"
    );
    assert!(healthy.is_some(), "not healthy after healing");
}

/// Redis calls that failed or timed out so far, as `/metrics` counts them.
async fn redis_failures(app: &crate::helpers::TestApp) -> f64 {
    metric(app, "cache_redis_errors_total").await + metric(app, "cache_redis_timeouts_total").await
}

//! Scenario 8: deterministic races between two instances, each repeated. (The stale-set race
//! itself — a load that read the old row before a write must not refill either tier after
//! the invalidation — is pinned at the cache level in `cache::basic`.)

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::*;
use crate::helpers::{sample_workflow, spawn_sibling, TestApp};

async fn version(app: &TestApp, key: &str) -> i64 {
    let body: Value = app
        .api_get(key, "/api/workflows/wf")
        .await
        .json()
        .await
        .unwrap();
    body["data"]["version"].as_i64().unwrap()
}

async fn put(app: &TestApp, key: &str, name: &str) -> i64 {
    let r = app.put_workflow(key, "wf", &sample_workflow(name)).await;
    assert!(r.status().is_success(), "{}", r.status());
    let body: Value = r.json().await.unwrap();
    body["data"]["version"].as_i64().unwrap()
}

/// Two instances with `wf` at version `v` in both L1s.
async fn two_warm_instances(redis: &RedisServer) -> (TestApp, TestApp, String) {
    let a = app_on(&redis.url(), |_| {}).await;
    let b = spawn_sibling(&a).await;
    crate::caching::wait_for_redis(&b).await;
    let key = a.create_location("locRace").await;
    put(&a, &key, "v1").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for app in [&a, &b] {
        version(app, &key).await;
        assert_eq!(version(app, &key).await, 1);
    }
    (a, b, key)
}

struct Outcome {
    /// Reads on the other instance that answered the old version after the write was acked,
    /// and the last of them, measured from the acknowledgement.
    stale_after_ack: usize,
    last_stale: Option<Duration>,
    /// From the acknowledgement until the other instance answered the new version.
    converged: Option<Duration>,
    writer_stale: usize,
}

/// Polls the other instance (and the writer) every 10 ms until it serves `new` or `max`.
async fn observe(
    writer: &TestApp,
    other: &TestApp,
    key: &str,
    new: i64,
    acked: Instant,
    max: Duration,
) -> Outcome {
    let mut o = Outcome {
        stale_after_ack: 0,
        last_stale: None,
        converged: None,
        writer_stale: 0,
    };
    while acked.elapsed() < max {
        o.writer_stale += usize::from(version(writer, key).await < new);
        let started = acked.elapsed();
        if version(other, key).await >= new {
            o.converged = Some(started);
            break;
        }
        o.stale_after_ack += 1;
        o.last_stale = Some(started);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    o
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or("never".into())
}

/// Redis frozen across a write, then thawed after `freeze`.
async fn frozen_across_a_write(freeze: Duration) -> (Outcome, i64) {
    let redis = RedisServer::start(None).await;
    let (a, b, key) = two_warm_instances(&redis).await;
    redis.signal("-STOP");
    let new = put(&a, &key, "v2").await;
    let acked = Instant::now();
    let sleeper = async {
        tokio::time::sleep(freeze).await;
        redis.signal("-CONT");
    };
    let (outcome, ()) = tokio::join!(
        observe(&a, &b, &key, new, acked, freeze + Duration::from_secs(6)),
        sleeper
    );
    // A third instance, started after the thaw, must not get the old version from Redis.
    let c = spawn_sibling(&a).await;
    crate::caching::wait_for_redis(&c).await;
    (outcome, version(&c, &key).await - new)
}

/// The invalidation subscribers are killed (CLIENT KILL TYPE pubsub) right before a write.
async fn subscriber_lost_across_a_write() -> Outcome {
    let redis = RedisServer::start(None).await;
    let (a, b, key) = two_warm_instances(&redis).await;
    let mut admin = redis.admin().await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    let new = put(&a, &key, "v2").await;
    let acked = Instant::now();
    observe(&a, &b, &key, new, acked, Duration::from_secs(5)).await
}

/// 8a and 8b repeat their race the same way (log and check each round, one row with the
/// totals) and differ only in the race, its checks and the row's wording. `check` also gets
/// what the race answers besides its `Outcome`; `recovery` gets the last stale read and the
/// latest convergence, formatted. Answers the stale reads in all rounds.
async fn repeat_race<T, F: Future<Output = (Outcome, T)>>(
    scenario: &'static str,
    rounds: usize,
    race: impl Fn() -> F,
    check: impl Fn(&Outcome, T),
    recovery: impl FnOnce(String, String) -> String,
) -> usize {
    let (mut stale, mut worst_stale, mut worst_converged) = (0, None, None);
    for round in 0..rounds {
        let (o, extra) = race().await;
        eprintln!(
            "round {round}: other instance stale {} times, last {} after the ack, new version {} after the ack",
            o.stale_after_ack,
            ms(o.last_stale),
            ms(o.converged)
        );
        check(&o, extra);
        stale += o.stale_after_ack;
        worst_stale = worst_stale.max(o.last_stale);
        worst_converged = worst_converged.max(o.converged);
    }
    Row {
        scenario,
        requests: 0,
        five_xx: 0,
        stale_reads: stale,
        stale_served: 0,
        lost_writes: 0,
        recovery: recovery(ms(worst_stale), ms(worst_converged)),
        p99: Duration::ZERO,
    }
    .print();
    stale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_across_a_write_converges_after_the_thaw_and_never_resurrects_the_old_version()
{
    let freeze = Duration::from_millis(1_500);
    repeat_race(
        "8a. Redis frozen 1.5 s across a write, then thawed (x3)",
        3,
        || frozen_across_a_write(freeze),
        |o, c_lag| {
            assert_eq!(
                o.writer_stale, 0,
                "the writing instance served its old version"
            );
            assert_eq!(c_lag, 0, "a fresh instance read the old version from Redis");
            let converged = o.converged.expect("the other instance never saw the write");
            assert!(
                converged < freeze + Duration::from_secs(5),
                "not converged within 5 s of the thaw: {converged:?}"
            );
        },
        |worst_stale, worst_converged| {
            format!(
                "other instance served the old version until {worst_stale} after the ack (converged {worst_converged}); writer and a fresh instance never did"
            )
        },
    )
    .await;
}

// Strict: an instance whose subscriber cannot hear Redis stops answering from L1 (and
// trusting L2) within the lease (300 ms), and clears L1 when it hears Redis again; a writer
// that cannot reach Redis answers only once it has heard nothing for longer than that lease,
// so nobody serves the old version after the acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_across_a_write_never_serves_the_old_version_after_the_ack() {
    for _ in 0..3 {
        let (o, _) = frozen_across_a_write(Duration::from_millis(1_500)).await;
        assert_eq!(
            o.stale_after_ack,
            0,
            "old version served until {} after the ack",
            ms(o.last_stale)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pubsub_message_lost_while_the_subscriber_reconnects_never_leaves_the_old_version() {
    let stale = repeat_race(
        "8b. Pub/sub subscribers killed right before a write (x5)",
        5,
        || async { (subscriber_lost_across_a_write().await, ()) },
        |o, ()| {
            assert_eq!(o.writer_stale, 0);
            assert!(
                o.converged.is_some(),
                "the other instance never saw the write"
            );
        },
        |worst_stale, worst_converged| {
            format!(
                "old version after the ack: last {worst_stale}; new version seen {worst_converged} after the ack"
            )
        },
    )
    .await;
    assert_eq!(stale, 0, "the old version was served after the ack");
}

/// Redis answers but refuses the write's tombstones (out of memory): the write is committed,
/// but other instances could still read the old value from Redis, so it is not answered as a
/// success (503, saying so); its invalidation is replayed once Redis accepts writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_invalidation_redis_refuses_is_answered_503_and_shows_up_later() {
    let redis = RedisServer::start(None).await;
    let a = app_on(&redis.url(), |_| {}).await;
    let key = a.create_location("locRefused").await;
    assert_eq!(put(&a, &key, "v1").await, 1);
    let mut admin = redis.admin().await;
    let maxmemory = |value: &'static str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("maxmemory").arg(value);
        cmd
    };
    let _: () = maxmemory("1").query_async(&mut admin).await.unwrap();
    let t = Instant::now();
    let r = a.put_workflow(&key, "wf", &sample_workflow("v2")).await;
    let took = t.elapsed();
    assert_eq!(r.status(), 503);
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was saved"),
        "{body}"
    );
    let _: () = maxmemory("0").query_async(&mut admin).await.unwrap();
    // The write was committed; everyone sees it once the invalidation is replayed.
    let b = crate::helpers::spawn_sibling(&a).await;
    crate::caching::wait_for_redis(&b).await;
    let t = Instant::now();
    while version(&b, &key).await != 2 || version(&a, &key).await != 2 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the write never showed up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

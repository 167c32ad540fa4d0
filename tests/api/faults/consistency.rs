//! Scenario 7: a randomized consistency checker over two instances sharing Postgres and
//! Redis. Writers PUT on both instances, readers GET on both, while the proxy in front of
//! Redis injects faults. A read must never return a version older than one acknowledged
//! before the read began, nor a version/body pair that was never written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use super::harness::*;
use super::proxy::{Fault, FaultProxy};
use crate::helpers::{sample_workflow, spawn_sibling, TestApp};

const IDS: usize = 4;

#[derive(Debug, Clone)]
struct Ack {
    id: usize,
    version: i64,
    name: String,
    instance: usize,
    acked: Instant,
}

#[derive(Debug, Clone)]
struct Read {
    id: usize,
    version: i64,
    name: String,
    instance: usize,
    started: Instant,
    /// `X-Cache-Status/X-Cache-Tier` of the answer (which tier served a stale read).
    cache: String,
}

#[derive(Default)]
struct Log {
    acks: Vec<Ack>,
    reads: Vec<Read>,
    statuses: Vec<u16>,
}

async fn writer(
    app: (usize, String),
    key: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    tag: usize,
) {
    let http = client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = rand::random_range(0..IDS);
        let name = format!("writer {tag} #{n}");
        let r = http
            .put(format!("{}/api/workflows/wf{id}", app.1))
            .bearer_auth(&key)
            .json(&sample_workflow(&name))
            .send()
            .await;
        let acked = Instant::now();
        let status = r.as_ref().map_or(0, |r| r.status().as_u16());
        let mut log_entry = None;
        if let Ok(r) = r {
            if r.status().is_success() {
                let body: Value = r.json().await.unwrap();
                log_entry = Some(Ack {
                    id,
                    version: body["data"]["version"].as_i64().unwrap(),
                    name,
                    instance: app.0,
                    acked,
                });
            }
        }
        {
            let mut l = log.lock().unwrap();
            l.statuses.push(status);
            l.acks.extend(log_entry);
        }
        let pause = Duration::from_millis(rand::random_range(2..15));
        tokio::time::sleep(pause).await;
    }
}

async fn reader(app: (usize, String), key: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let http = client();
    while !stop.load(Ordering::SeqCst) {
        let id = rand::random_range(0..IDS);
        let started = Instant::now();
        let r = http
            .get(format!("{}/api/workflows/wf{id}", app.1))
            .bearer_auth(&key)
            .send()
            .await;
        let status = r.as_ref().map_or(0, |r| r.status().as_u16());
        let mut entry = None;
        if let Ok(r) = r {
            if r.status() == 200 {
                let h = |n: &str| {
                    r.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                let cache = format!("{}/{}", h("x-cache-status"), h("x-cache-tier"));
                let body: Value = r.json().await.unwrap();
                entry = Some(Read {
                    id,
                    version: body["data"]["version"].as_i64().unwrap(),
                    name: body["data"]["name"].as_str().unwrap().to_owned(),
                    instance: app.0,
                    started,
                    cache,
                });
            }
        }
        let mut l = log.lock().unwrap();
        l.statuses.push(status);
        l.reads.extend(entry);
    }
}

/// Transport faults in a random order, each for a short while, ending healed.
async fn chaos(proxy: &FaultProxy, stop: Arc<AtomicBool>) -> usize {
    let mut injected = 0;
    while !stop.load(Ordering::SeqCst) {
        let hold = Duration::from_millis(rand::random_range(100..400));
        match rand::random_range(0..6) {
            0 => proxy.set(Fault::Latency(Duration::from_millis(rand::random_range(
                5..80,
            )))),
            1 => proxy.set(Fault::Blackhole),
            2 => proxy.reset_all(),
            3 => proxy.set(Fault::CutAfter(rand::random_range(10..400))),
            _ => proxy.set(Fault::Pass),
        }
        injected += 1;
        tokio::time::sleep(hold).await;
        proxy.set(Fault::Pass);
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..300))).await;
    }
    proxy.set(Fault::Pass);
    injected
}

struct Verdict {
    stale: Vec<(Read, Duration, usize)>,
    phantoms: Vec<Read>,
}

/// Checks every read against the acknowledgements that preceded it.
fn check(log: &Log) -> Verdict {
    let mut stale = Vec::new();
    let mut phantoms = Vec::new();
    for r in &log.reads {
        let superseded = log
            .acks
            .iter()
            .filter(|a| a.id == r.id && a.acked < r.started && a.version > r.version)
            .min_by_key(|a| a.acked);
        if let Some(a) = superseded {
            stale.push((r.clone(), r.started - a.acked, a.instance));
        }
        let written = log
            .acks
            .iter()
            .find(|a| a.id == r.id && a.version == r.version);
        if written.is_some_and(|a| a.name != r.name) || r.version < 1 {
            phantoms.push(r.clone());
        }
    }
    Verdict { stale, phantoms }
}

/// What happens to Redis during a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    /// Transport faults through the proxy ([`chaos`]).
    Proxy,
    /// Redis killed before the load and left down: the Postgres bus alone.
    RedisDown,
    /// Redis killed and restarted over and over.
    RedisFlapping,
}

/// Kills and restarts Redis until stopped, ending up.
async fn flapping(redis: &mut RedisServer, stop: Arc<AtomicBool>) -> usize {
    let mut injected = 0;
    while !stop.load(Ordering::SeqCst) {
        redis.kill();
        injected += 1;
        tokio::time::sleep(Duration::from_millis(rand::random_range(200..700))).await;
        redis.restart().await;
        tokio::time::sleep(Duration::from_millis(rand::random_range(200..700))).await;
    }
    injected
}

async fn run(faults: Faults) -> (Log, Verdict, usize, usize) {
    let mut redis = RedisServer::start(None).await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let a = app_on(&proxy.url("redis://"), |_| {}).await;
    let b = spawn_sibling(&a).await;
    crate::caching::wait_for_redis(&b).await;
    let key = a.create_location("locConsistency").await;
    for id in 0..IDS {
        assert!(a
            .put_workflow(&key, &format!("wf{id}"), &sample_workflow("initial"))
            .await
            .status()
            .is_success());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let instances: [(usize, String); 2] = [(0, a.address.clone()), (1, b.address.clone())];
    let mut tasks = Vec::new();
    for (n, inst) in instances.iter().enumerate() {
        tasks.push(tokio::spawn(writer(
            inst.clone(),
            key.clone(),
            stop.clone(),
            log.clone(),
            n,
        )));
        for _ in 0..2 {
            tasks.push(tokio::spawn(reader(
                inst.clone(),
                key.clone(),
                stop.clone(),
                log.clone(),
            )));
        }
    }
    let duration = Duration::from_secs(4 * scale() as u64);
    if faults == Faults::RedisDown {
        redis.kill();
    }
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        stopper.store(true, Ordering::SeqCst);
    });
    let injected = match faults {
        Faults::Proxy => chaos(&proxy, stop.clone()).await,
        Faults::RedisFlapping => flapping(&mut redis, stop.clone()).await,
        Faults::None | Faults::RedisDown => {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            usize::from(faults == Faults::RedisDown)
        }
    };
    for t in tasks {
        t.await.unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    let lost = lost_writes(&a, &log).await;
    let verdict = check(&log);
    (log, verdict, injected, lost)
}

/// Acknowledged writes whose version is above what Postgres holds at the end.
async fn lost_writes(app: &TestApp, log: &Log) -> usize {
    let mut conn = sqlx::PgConnection::connect(app.database_url())
        .await
        .unwrap();
    let mut lost = 0;
    for id in 0..IDS {
        let stored: i64 = sqlx::query_scalar(
            "select version::bigint from workflows where location_id = 'locConsistency' and id = $1",
        )
        .bind(format!("wf{id}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        lost += log
            .acks
            .iter()
            .filter(|a| a.id == id && a.version > stored)
            .count();
    }
    lost
}

fn report(scenario: &'static str, log: &Log, v: &Verdict, injected: usize, lost: usize) {
    let worst = v.stale.iter().map(|s| s.1).max().unwrap_or_default();
    let cross = v
        .stale
        .iter()
        .filter(|(r, _, writer)| r.instance != *writer)
        .count();
    Row {
        scenario,
        requests: log.statuses.len(),
        five_xx: log.statuses.iter().filter(|s| **s >= 500).count(),
        stale_reads: v.stale.len(),
        stale_served: 0,
        lost_writes: lost,
        recovery: format!(
            "{} reads, {} acknowledged writes, {injected} faults; stale reads: {cross} on the other instance than the write, {} on the same; longest stale window {:.1} ms after the acknowledgement; {} phantom versions",
            log.reads.len(),
            log.acks.len(),
            v.stale.len() - cross,
            worst.as_secs_f64() * 1000.0,
            v.phantoms.len()
        ),
        p99: Duration::ZERO,
    }
    .print();
    for (r, window, writer) in v.stale.iter().take(10) {
        eprintln!(
            "stale: wf{} v{} read on instance {} {:.1} ms after a newer version was acknowledged by instance {writer}; served {}",
            r.id,
            r.version,
            r.instance,
            window.as_secs_f64() * 1000.0,
            r.cache,
        );
    }
}

// Was ignored until the cause of its stale reads was found: every one was an L1 hit on the
// instance that did not take the write, whose writer had skipped Redis because its breaker
// was open (its 50 ms reads had timed out, or it had not probed since a reset) while the
// reader's subscriber still heard Redis. Writes now always try Redis, and answer only once
// their invalidation is applied and acknowledged (or every receiver's lease is over), or once
// Redis has been silent for longer than a lease (see the cache module doc, "Writes").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_serve_a_version_older_than_an_acknowledged_one_under_redis_faults() {
    check_consistency("7. Consistency, two instances, Redis faults", Faults::Proxy).await;
}

// Writes are answered only once every other instance acknowledged the invalidation, so no
// read begun after the answer may see an older version on either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_serve_a_version_older_than_an_acknowledged_one_without_faults() {
    check_consistency("7b. Consistency, two instances, no faults", Faults::None).await;
}

// Issue 20: with Redis down for the whole run, the invalidations travel through Postgres
// alone (pg_notify in each write's transaction) and L1 keeps serving on that bus's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_serve_a_version_older_than_an_acknowledged_one_with_redis_down() {
    check_consistency(
        "7c. Consistency, two instances, Redis down all along",
        Faults::RedisDown,
    )
    .await;
}

// Issue 20: Redis killed and restarted over and over; both buses take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_serve_a_version_older_than_an_acknowledged_one_with_redis_flapping() {
    check_consistency(
        "7d. Consistency, two instances, Redis flapping",
        Faults::RedisFlapping,
    )
    .await;
}

/// Runs the checker and holds it to the bar: no 5xx, no phantom version, nothing
/// lost, no read older than a version acknowledged before it began.
async fn check_consistency(title: &'static str, faults: Faults) {
    let (log, verdict, injected, lost) = run(faults).await;
    report(title, &log, &verdict, injected, lost);
    // With Redis down a write also makes one short Redis attempt (`CACHE_L2_BUDGET_MS`) and
    // waits for the Postgres acknowledgements: fewer writes fit in the run.
    let writes = match faults {
        Faults::RedisDown | Faults::RedisFlapping => 20,
        Faults::None | Faults::Proxy => 50,
    };
    assert!(
        log.reads.len() > 100 && log.acks.len() > writes,
        "{} reads, {} writes",
        log.reads.len(),
        log.acks.len()
    );
    assert_eq!(log.statuses.iter().filter(|s| **s >= 500).count(), 0);
    assert!(verdict.phantoms.is_empty(), "{:?}", verdict.phantoms);
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert!(
        verdict.stale.is_empty(),
        "{} stale reads",
        verdict.stale.len()
    );
}

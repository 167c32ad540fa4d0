//! Scenario 5b: Postgres hung (the proxy in front of it blackholes every connection) under
//! load, then released: cached reads keep answering fast, health says unhealthy within 1 s,
//! nothing is a 500, and the service answers again by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::harness::*;
use super::proxy::{Fault, FaultProxy};
use crate::helpers::{admin_database_url, sample_workflow, spawn_app_with};

const BOUND: Duration = Duration::from_millis(1_500);

struct Hung {
    cached: Tally,
    hung_at: Instant,
    others: Tally,
    unhealthy: Option<Duration>,
    answering_again: Option<Duration>,
    hang: Duration,
}

async fn hung_postgres() -> Hung {
    let upstream = admin_database_url();
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], upstream.port().unwrap_or(5432)));
    let proxy = FaultProxy::start(upstream).await;
    let port = proxy.port;
    let app = spawn_app_with(move |env| {
        let mut url = url::Url::parse(&env["DATABASE_URL"]).unwrap();
        url.set_port(Some(port)).unwrap();
        env.insert("DATABASE_URL".into(), url.to_string());
    })
    .await;
    crate::caching::wait_for_redis(&app).await;
    let seeded = seed(&app, "locHung", 10).await;
    let stop = Arc::new(AtomicBool::new(false));
    let cached = Load::reads(&app.address, &seeded, 4, 0);
    let mut others = Vec::new();
    for n in 0..4 {
        let (stop, base, key) = (stop.clone(), app.address.clone(), seeded.key.clone());
        others.push(tokio::spawn(async move {
            let client = client();
            let mut out = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let got = if n % 2 == 0 {
                    let url = format!("{base}/api/workflows/missing-{}", uuid::Uuid::new_v4());
                    get(&client, &url, &key, "uncached").await
                } else {
                    let r = client
                        .put(format!("{base}/api/workflows/w{n}"))
                        .bearer_auth(&key)
                        .json(&sample_workflow("w"))
                        .send()
                        .await;
                    finish_sample(r, started, "write").await
                };
                out.push(got.sample);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            out
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Not scaled: a query on the wire waits for the whole hang (see the ignored test), and
    // the load generator gives up on a request after 10 s.
    let hang = Duration::from_secs(3);
    proxy.set(Fault::Blackhole);
    let hung_at = Instant::now();
    let unhealthy = wait_health(&app, "unhealthy", Duration::from_secs(2)).await;
    tokio::time::sleep(hang.saturating_sub(hung_at.elapsed())).await;
    proxy.set(Fault::Pass);
    let released = Instant::now();
    let mut answering_again = None;
    while released.elapsed() < Duration::from_secs(10) {
        let r = app
            .api_get(
                &seeded.key,
                &format!("/api/workflows/probe-{}", uuid::Uuid::new_v4()),
            )
            .await;
        if r.status() == 404 {
            answering_again = Some(released.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let cached = cached.finish().await;
    let mut all = Tally::default();
    for t in others {
        all.samples.extend(t.await.unwrap());
    }
    Hung {
        cached,
        hung_at,
        others: all,
        unhealthy,
        answering_again,
        hang,
    }
}

fn slow(t: &Tally) -> Vec<String> {
    t.samples
        .iter()
        .filter(|s| s.latency >= BOUND)
        .map(|s| format!("{} {} {:.2} s", s.kind, s.status, s.latency.as_secs_f64()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hung_keeps_cached_reads_fast_and_costs_no_500() {
    let h = hung_postgres().await;
    Row {
        scenario: "5b. Postgres hung (proxy blackhole) and released",
        requests: h.cached.count() + h.others.count(),
        five_xx: h.cached.five_xx() + h.others.five_xx(),
        stale_reads: 0,
        stale_served: h.cached.stale_served(),
        lost_writes: 0,
        recovery: format!(
            "hung {}; unhealthy {} after the hang; uncached reads and writes {:?}, {} slower than 1.5 s (max {:.2} s); answering again {} after release",
            secs(h.hang),
            h.unhealthy.map(secs).unwrap_or("never".into()),
            h.others.statuses(),
            slow(&h.others).len(),
            h.others.max().as_secs_f64(),
            h.answering_again.map(secs).unwrap_or("never".into())
        ),
        p99: h.cached.p99(),
    }
    .print();
    assert_eq!(
        h.cached.five_xx() + h.cached.wrong(),
        0,
        "{}",
        h.cached.summary()
    );
    let (baseline, p99) = split_p99(&h.cached, h.hung_at);
    assert!(
        p99 < p99_bound(baseline),
        "cached reads p99 {p99:?} from the hang on (before it: {baseline:?})"
    );
    assert!(
        h.others
            .samples
            .iter()
            .all(|s| s.status != 500 && s.status != 0),
        "{}",
        h.others.summary()
    );
    assert!(h.unhealthy.is_some(), "health never said unhealthy");
    assert!(h.answering_again.is_some(), "never answered again");
}

// A query already on the wire when Postgres stops answering cannot be ended by the server's
// `statement_timeout`; the request deadline (`REQUEST_TIMEOUT_MS`, 1.3 s) ends the wait with
// a STALE value or a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hung_answers_every_request_within_one_and_a_half_seconds() {
    let h = hung_postgres().await;
    let slow = slow(&h.others);
    assert!(slow.is_empty(), "answers slower than {BOUND:?}: {slow:?}");
}

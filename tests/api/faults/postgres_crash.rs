//! Scenario 5: our own Postgres cluster crashes (`pg_ctl stop -m immediate`) under load and
//! comes back: cached reads keep answering, everything else is a quick 503 (never a 500,
//! never a hang), the service recovers by itself and no acknowledged write is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::harness::*;
use crate::helpers::{base_environment, sample_workflow, settings_from, start};

const BOUND: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_keeps_cached_reads_answering_and_loses_no_acknowledged_write() {
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let env = base_environment(&pg.url());
    let mut app = start(settings_from(&env), None).await;
    app.env = env;
    crate::caching::wait_for_redis(&app).await;
    let seeded = seed(&app, "locPg", 10).await;
    let stop = Arc::new(AtomicBool::new(false));

    let cached = Load::reads(&app.address, &seeded, 4, 0);
    let uncached: Vec<_> = (0..2)
        .map(|_| {
            let (stop, base, key) = (stop.clone(), app.address.clone(), seeded.key.clone());
            tokio::spawn(async move {
                let client = client();
                let mut out = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let url = format!("{base}/api/workflows/missing-{}", uuid::Uuid::new_v4());
                    let mut got = get(&client, &url, &key, "uncached").await;
                    got.sample.correct = got.sample.status == 404;
                    out.push(got.sample);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                out
            })
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, base, key) = (stop.clone(), app.address.clone(), seeded.key.clone());
            tokio::spawn(async move {
                let client = client();
                let (mut out, mut acked) = (Vec::new(), 0i64);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let started = Instant::now();
                    let response = client
                        .put(format!("{base}/api/workflows/w{w}"))
                        .bearer_auth(&key)
                        .json(&sample_workflow(&format!("w{w} #{n}")))
                        .send()
                        .await;
                    let got = finish_sample(response, started, "write").await;
                    if got.sample.status / 100 == 2 {
                        acked = got.body.as_ref().unwrap()["data"]["version"]
                            .as_i64()
                            .unwrap();
                    }
                    out.push(got.sample);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (format!("w{w}"), acked, out)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let crashed = Instant::now();
    pg.crash();
    let down_for = Duration::from_secs(2 * scale() as u64);
    tokio::time::sleep(down_for).await;
    let restart_began = Instant::now();
    pg.start_again();
    let restarted = Instant::now();
    let recovered = loop {
        let r = app
            .client
            .put(app.url("/api/workflows/probe"))
            .bearer_auth(&seeded.key)
            .json(&sample_workflow("probe"))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break Some(restarted.elapsed());
        }
        if restarted.elapsed() > Duration::from_secs(15) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let reads = cached.finish().await;
    let mut others = Tally::default();
    for t in uncached {
        others.samples.extend(t.await.unwrap());
    }
    let mut acknowledged = Vec::new();
    for t in writers {
        let (id, acked, samples) = t.await.unwrap();
        acknowledged.push((id, acked));
        others.samples.extend(samples);
    }

    // Every acknowledged write is in Postgres.
    let mut conn = sqlx::PgConnection::connect(pg.url().as_str())
        .await
        .unwrap();
    let mut lost = 0;
    for (id, acked) in &acknowledged {
        let version: Option<i64> = sqlx::query_scalar(
            "select version::bigint from workflows where location_id = 'locPg' and id = $1",
        )
        .bind(id)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        if version.unwrap_or(0) < *acked {
            lost += 1;
            eprintln!("{id}: acknowledged version {acked}, stored {version:?}");
        }
    }
    let during: Vec<&Sample> = others
        .samples
        .iter()
        .filter(|s| s.started >= crashed && s.started < restart_began)
        .collect();
    let unavailable = during.iter().filter(|s| s.status == 503).count();
    let slow: Vec<String> = others
        .samples
        .iter()
        .filter(|s| s.latency >= BOUND)
        .map(|s| format!("{} {} {:?}", s.kind, s.status, s.latency))
        .collect();
    let all_latencies = reads
        .samples
        .iter()
        .chain(&others.samples)
        .map(|s| s.latency)
        .collect();

    Row {
        scenario: "5. Postgres crash (pg_ctl stop -m immediate) and restart",
        requests: reads.count() + others.count(),
        five_xx: others.samples.iter().filter(|s| s.status == 500).count() + reads.five_xx(),
        stale_reads: 0,
        stale_served: reads.stale_served(),
        lost_writes: lost,
        recovery: format!(
            "down {}; {unavailable} quick 503s while down (max {:?}); writes again {} after restart",
            secs(down_for),
            others.max(),
            recovered.map(secs).unwrap_or("never".into())
        ),
        p99: percentile(all_latencies, 0.99),
    }
    .print();
    eprintln!("cached reads: {}", reads.summary());
    eprintln!("uncached reads and writes: {}", others.summary());
    assert_eq!(reads.five_xx() + reads.wrong(), 0, "{}", reads.summary());
    assert!(
        others
            .samples
            .iter()
            .all(|s| matches!(s.status, 200 | 201 | 404 | 503)),
        "{}",
        others.summary()
    );
    assert!(unavailable > 0, "the crash was never seen");
    assert!(slow.is_empty(), "answers slower than {BOUND:?}: {slow:?}");
    assert!(
        recovered.is_some(),
        "writes did not work again after restart"
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
}

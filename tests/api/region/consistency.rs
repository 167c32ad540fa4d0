//! The fault suite's consistency checker (scenario 7, `faults::consistency`) across two
//! regions: writers in both, readers in both, every read carrying the newest consistency
//! token acknowledged before it began (a client that echoes the token of the last write it
//! knows of). No read may return a version older than one acknowledged before it began, nor
//! a version/body pair never written; no acknowledged write may be lost; no 5xx.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::harness::*;
use crate::faults::harness::{scale, Row};

#[derive(Debug, Clone)]
struct Ack {
    id: usize,
    version: i64,
    name: String,
    region: String,
    acked: Instant,
}

#[derive(Debug, Clone)]
struct Read {
    id: usize,
    version: i64,
    name: String,
    region: String,
    started: Instant,
}

#[derive(Default)]
struct Log {
    acks: Vec<Ack>,
    reads: Vec<Read>,
    statuses: Vec<u16>,
    /// The newest token acknowledged so far (as the position it names).
    newest: Option<(u64, String)>,
}

/// The position a token names (the test knows the format: `v1-` and hex).
fn position(token: &str) -> u64 {
    u64::from_str_radix(token.trim_start_matches("v1-"), 16).unwrap()
}

async fn writer(app: (String, String), key: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let (address, region) = app;
    let target = crate::helpers::TestApp {
        address,
        client: crate::faults::harness::client(),
        database: None,
        env: Default::default(),
    };
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < 10_000 {
        n += 1;
        let id = rand::random_range(0..IDS);
        let name = format!("{region} #{n}");
        let put = put(&target, &key, id, &name).await;
        {
            let mut l = log.lock().unwrap();
            l.statuses.push(put.status);
            if put.ok() {
                let token = put.token.expect("a write answers X-Consistency-Token");
                let at = position(&token);
                if l.newest.as_ref().is_none_or(|(p, _)| at > *p) {
                    l.newest = Some((at, token));
                }
                l.acks.push(Ack {
                    id,
                    version: put.version,
                    name,
                    region: region.clone(),
                    acked: put.acked,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(5..30))).await;
    }
}

async fn reader(app: (String, String), key: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let (address, region) = app;
    let client = crate::faults::harness::client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < 100_000 {
        n += 1;
        let id = rand::random_range(0..IDS);
        // Taken before the read starts: every write acknowledged by now is covered by it.
        let started = Instant::now();
        let token = log.lock().unwrap().newest.clone().map(|(_, t)| t);
        let mut request = client
            .get(format!("{address}/api/workflows/wf{id}"))
            .bearer_auth(&key);
        if let Some(token) = token {
            request = request.header("x-consistency-token", token);
        }
        let response = request.send().await;
        let status = response.as_ref().map_or(0, |r| r.status().as_u16());
        let mut entry = None;
        if let Ok(r) = response {
            if r.status() == 200 {
                let body: serde_json::Value = r.json().await.unwrap();
                entry = Some(Read {
                    id,
                    version: body["data"]["version"].as_i64().unwrap(),
                    name: body["data"]["name"].as_str().unwrap().to_owned(),
                    region: region.clone(),
                    started,
                });
            }
        }
        let mut l = log.lock().unwrap();
        l.statuses.push(status);
        l.reads.extend(entry);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_regions_no_read_carrying_the_newest_token_is_older_than_an_acknowledged_write()
{
    let Some(r) = Regions::start(Options::default()).await else {
        return;
    };
    r.seed().await;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let mut tasks = Vec::new();
    for app in r.all() {
        let inst = (app.address.clone(), app.env["REGION"].clone());
        tasks.push(tokio::spawn(writer(
            inst.clone(),
            r.key.clone(),
            stop.clone(),
            log.clone(),
        )));
        for _ in 0..2 {
            tasks.push(tokio::spawn(reader(
                inst.clone(),
                r.key.clone(),
                stop.clone(),
                log.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs(4 * scale() as u64)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());

    let stale: Vec<(&Read, &Ack)> = log
        .reads
        .iter()
        .filter_map(|read| {
            log.acks
                .iter()
                .filter(|a| a.id == read.id && a.acked < read.started && a.version > read.version)
                .min_by_key(|a| a.acked)
                .map(|a| (read, a))
        })
        .collect();
    let phantoms = log
        .reads
        .iter()
        .filter(|read| {
            log.acks
                .iter()
                .any(|a| a.id == read.id && a.version == read.version && a.name != read.name)
        })
        .count();
    let lost = lost_writes(&r, &log).await;
    let across = stale
        .iter()
        .filter(|(read, a)| read.region != a.region)
        .count();
    Row {
        scenario: "7e. Consistency, two regions (replica 300 ms behind), token reads",
        requests: log.statuses.len(),
        five_xx: log.statuses.iter().filter(|s| **s >= 500).count(),
        stale_reads: stale.len(),
        stale_served: 0,
        lost_writes: lost,
        recovery: format!(
            "{} reads, {} acknowledged writes; stale reads: {across} in the other region than the write; {phantoms} phantom versions",
            log.reads.len(),
            log.acks.len(),
        ),
        p99: Duration::ZERO,
    }
    .print();
    for (read, ack) in stale.iter().take(5) {
        eprintln!(
            "stale: wf{} v{} read in {} {:?} after v{} was acknowledged in {}",
            read.id,
            read.version,
            read.region,
            read.started - ack.acked,
            ack.version,
            ack.region
        );
    }
    assert!(
        log.reads.len() > 100 && log.acks.len() > 20,
        "{} reads, {} writes",
        log.reads.len(),
        log.acks.len()
    );
    assert_eq!(log.statuses.iter().filter(|s| **s >= 500).count(), 0);
    assert_eq!(phantoms, 0);
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert!(stale.is_empty(), "{} stale reads", stale.len());
}

/// Acknowledged writes above what the primary holds at the end.
async fn lost_writes(r: &Regions, log: &Log) -> usize {
    let mut conn = sqlx::PgConnection::connect(&r.primary.url("postgres"))
        .await
        .unwrap();
    let mut lost = 0;
    for id in 0..IDS {
        let stored: i64 = sqlx::query_scalar(
            "select version::bigint from workflows where location_id = $1 and id = $2",
        )
        .bind(LOCATION)
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

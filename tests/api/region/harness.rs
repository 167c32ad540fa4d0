//! Two regions on one primary (issue 21), all started by the test: a Postgres primary and a
//! streaming replica of it (`pg_basebackup -R`, `recovery_min_apply_delay` to play a far
//! region), one redis-server per region, one instance in region `a` (the primary's region:
//! it reads the primary) and instances in region `b` (they read the replica). Every process
//! is stopped by its PID when the harness is dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::faults::harness::{client, RedisServer};
use crate::helpers::{
    base_environment, sample_workflow, settings_from, start, unique_name, TestApp,
};
use crate::support::postgres_server::PostgresServer;

pub const LOCATION: &str = "locRegions";
/// Workflows `wf0..` the scenarios write and read.
pub const IDS: usize = 4;

pub struct Options {
    /// `recovery_min_apply_delay` of the replica: how far away region b plays.
    pub apply_delay: Duration,
    /// Instances in region b.
    pub b_instances: usize,
    /// Extra environment of region b's instances.
    pub b_env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            apply_delay: Duration::from_millis(300),
            b_instances: 2,
            b_env: Vec::new(),
        }
    }
}

pub struct Regions {
    pub primary: PostgresServer,
    pub replica: PostgresServer,
    /// Held for the run: stopped by its PID when the harness is dropped.
    #[allow(dead_code)]
    pub redis_a: RedisServer,
    pub redis_b: RedisServer,
    pub a: TestApp,
    pub b: Vec<TestApp>,
    pub key: String,
    pub apply_delay: Duration,
}

fn environment(
    primary: &PostgresServer,
    prefix: &str,
    region: &str,
    redis: &RedisServer,
) -> HashMap<String, String> {
    let url = url::Url::parse(&primary.url("postgres")).unwrap();
    let mut env = base_environment(&url);
    env.insert("REGION".into(), region.into());
    env.insert("REDIS_URL".into(), redis.url());
    env.insert("CACHE_PREFIX".into(), prefix.into());
    env.insert("DATABASE_MAX_CONNECTIONS".into(), "6".into());
    env
}

async fn instance(env: HashMap<String, String>) -> TestApp {
    let mut app = start(settings_from(&env), None).await;
    app.env = env;
    crate::caching::wait_for_redis(&app).await;
    app
}

impl Regions {
    /// `None` (the test prints SKIPPED) when the Postgres binaries are not installed.
    pub async fn start(options: Options) -> Option<Regions> {
        let primary = PostgresServer::start_with(&["max_connections = 100"])?;
        let mut replica = PostgresServer::replica_of(&primary);
        replica.configure(&[&format!(
            "recovery_min_apply_delay = '{}ms'",
            options.apply_delay.as_millis()
        )]);
        replica.start();
        let (redis_a, redis_b) = (
            RedisServer::start(None).await,
            RedisServer::start(None).await,
        );
        let prefix = unique_name("gwdregions");
        let a = instance(environment(&primary, &prefix, "a", &redis_a)).await;
        let mut b = Vec::new();
        for _ in 0..options.b_instances {
            let mut env = environment(&primary, &prefix, "b", &redis_b);
            env.insert("DATABASE_READ_URL".into(), replica.url("postgres"));
            for (name, value) in &options.b_env {
                env.insert((*name).into(), value.clone());
            }
            b.push(instance(env).await);
        }
        let key = a.create_location(LOCATION).await;
        let regions = Regions {
            primary,
            replica,
            redis_a,
            redis_b,
            a,
            b,
            key,
            apply_delay: options.apply_delay,
        };
        for app in &regions.b {
            wait_replica(app, "healthy", Duration::from_secs(20)).await;
        }
        Some(regions)
    }

    /// Creates `wf0..wf{IDS}` in region a and waits until every instance of b reads them.
    pub async fn seed(&self) {
        let mut versions = Vec::new();
        for id in 0..IDS {
            let put = put(&self.a, &self.key, id, "seed").await;
            assert!(put.ok(), "seeding wf{id}: {}", put.status);
            versions.push(put.version);
        }
        for app in self.all() {
            for (id, version) in versions.iter().enumerate() {
                let t = Instant::now();
                loop {
                    let got = get(app, &self.key, id, None).await;
                    if got.status == 200 && got.version >= *version {
                        break;
                    }
                    assert!(t.elapsed() < Duration::from_secs(20), "wf{id} never seen");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Region a's instance, then region b's.
    pub fn all(&self) -> impl Iterator<Item = &TestApp> {
        std::iter::once(&self.a).chain(self.b.iter())
    }

    /// An SQL statement on the replica (e.g. `select pg_wal_replay_pause()`).
    pub async fn on_replica(&self, sql: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.replica.url("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// A write as the client saw it.
pub struct Put {
    pub status: u16,
    pub version: i64,
    pub token: Option<String>,
    pub acked: Instant,
}

impl Put {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub async fn put(app: &TestApp, key: &str, id: usize, name: &str) -> Put {
    let response = client()
        .put(app.url(&format!("/api/workflows/wf{id}")))
        .bearer_auth(key)
        .json(&sample_workflow(name))
        .send()
        .await;
    let acked = Instant::now();
    match response {
        Err(_) => Put {
            status: 0,
            version: 0,
            token: None,
            acked,
        },
        Ok(r) => {
            let status = r.status().as_u16();
            let token = r
                .headers()
                .get("x-consistency-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = r.json().await.unwrap_or(Value::Null);
            Put {
                status,
                version: body["data"]["version"].as_i64().unwrap_or(0),
                token,
                acked,
            }
        }
    }
}

/// A read as the client saw it.
#[derive(Debug, Clone)]
pub struct Got {
    pub id: usize,
    pub status: u16,
    pub version: i64,
    pub cache: String,
    pub tier: String,
    pub started: Instant,
    pub finished: Instant,
}

impl Got {
    pub fn hit(&self) -> bool {
        self.cache == "HIT"
    }
}

pub async fn get(app: &TestApp, key: &str, id: usize, token: Option<&str>) -> Got {
    let started = Instant::now();
    let mut request = client()
        .get(app.url(&format!("/api/workflows/wf{id}")))
        .bearer_auth(key);
    if let Some(token) = token {
        request = request.header("x-consistency-token", token);
    }
    let response = request.send().await;
    let (status, cache, tier, body) = match response {
        Err(_) => (0, String::new(), String::new(), Value::Null),
        Ok(r) => {
            let header = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let (status, cache, tier) = (
                r.status().as_u16(),
                header("x-cache-status"),
                header("x-cache-tier"),
            );
            (status, cache, tier, r.json().await.unwrap_or(Value::Null))
        }
    };
    Got {
        id,
        status,
        version: body["data"]["version"].as_i64().unwrap_or(0),
        cache,
        tier,
        started,
        finished: Instant::now(),
    }
}

/// `/health/detailed`.
pub async fn health(app: &TestApp) -> Value {
    client()
        .get(app.url("/health/detailed"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until `checks.replica.status` is `want`; the last body.
pub async fn wait_replica(app: &TestApp, want: &str, max: Duration) -> Value {
    let t = Instant::now();
    loop {
        let body = health(app).await;
        if body["checks"]["replica"]["status"] == want {
            return body;
        }
        assert!(
            t.elapsed() < max,
            "replica never {want} within {max:?}: {body}"
        );
        // Health is probed at most once a second per instance.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `database_reads_total{target=…}` of an instance.
pub async fn reads_to(app: &TestApp, target: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let label = format!("target=\"{target}\"");
    text.lines()
        .filter(|l| l.starts_with("database_reads_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every read of a run that returned an older version of its workflow than a read that had
/// finished (on any instance of the same region) before it began: monotonic reads broken.
pub fn went_back(reads: &[Got]) -> Vec<(Got, i64)> {
    let mut back = Vec::new();
    for r in reads.iter().filter(|r| r.status == 200) {
        let seen = reads
            .iter()
            .filter(|e| e.id == r.id && e.status == 200 && e.finished < r.started)
            .map(|e| e.version)
            .max()
            .unwrap_or(0);
        if r.version < seen {
            back.push((r.clone(), seen));
        }
    }
    back
}

pub fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

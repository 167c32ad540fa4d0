//! What the fault scenarios share: own redis-servers and Postgres clusters, a load generator
//! that records every response, health polling, and the report row each test prints.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::common::free_port;
use crate::helpers::{sample_workflow, spawn_app_with, TestApp};

/// `CHAOS_SCALE` (default 1) multiplies request counts and fault durations (`make chaos`).
pub fn scale() -> usize {
    std::env::var("CHAOS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n >= 1)
        .unwrap_or(1)
}

pub fn scaled(n: usize) -> usize {
    n * scale()
}

/// A client that never waits forever: a hang shows up as a transport error.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Our own redis-server (optionally with `requirepass`), stopped by its PID.
pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start(password: Option<&str>) -> RedisServer {
        let mut me = RedisServer {
            port: free_port(),
            password: password.map(str::to_owned),
            child: None,
        };
        me.restart().await;
        me
    }

    /// Starts the server (again) on the same port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server already running");
        let port = self.port.to_string();
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        if let Some(p) = &self.password {
            args.extend(["--requirepass", p.as_str()]);
        }
        let child = Command::new("/usr/bin/redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let t = Instant::now();
        loop {
            if let Ok(Ok(mut c)) = tokio::time::timeout(
                Duration::from_millis(300),
                redis::Client::open(self.url())
                    .unwrap()
                    .get_multiplexed_async_connection(),
            )
            .await
            {
                if redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "own redis did not start on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -STOP` / `-CONT` / … by PID.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGKILL by PID (after a SIGCONT, in case it was stopped) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Number of clients connected (CLIENT LIST), including the one asking.
    pub async fn client_count(&self) -> usize {
        let mut c = self.admin().await;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut c)
            .await
            .unwrap();
        list.lines().count()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Our own Postgres cluster (initdb + pg_ctl as the `postgres` user) in a temp directory.
pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl OwnPostgres {
    fn binaries() -> Option<PathBuf> {
        let mut candidates = vec![PathBuf::from("/usr/local/bin")];
        if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<PathBuf> = dirs.flatten().map(|d| d.path().join("bin")).collect();
            versions.sort();
            candidates.extend(versions.into_iter().rev());
        }
        candidates
            .into_iter()
            .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    }

    fn as_postgres(&self, program: &str, args: &[&str]) -> bool {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// `None` (with a printed reason) when the Postgres binaries are not installed.
    pub fn start() -> Option<OwnPostgres> {
        let Some(bin) = Self::binaries() else {
            eprintln!(
                "SKIPPED: initdb/pg_ctl not found (/usr/local/bin, /usr/lib/postgresql/*/bin)"
            );
            return None;
        };
        let dir = std::env::temp_dir().join(format!("gwd-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success(), "chown the temp dir to postgres");
        let me = OwnPostgres {
            port: free_port(),
            dir,
            bin,
        };
        let data = me.data();
        assert!(
            me.as_postgres(
                "initdb",
                &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]
            ),
            "initdb failed"
        );
        me.start_again();
        Some(me)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `pg_ctl start -w` on the same port and directory.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let data = self.data();
        assert!(
            self.as_postgres(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-o", &options, "-w", "start"]
            ),
            "pg_ctl start failed"
        );
    }

    /// `pg_ctl stop -m immediate`: the postmaster and backends die without a checkpoint.
    pub fn crash(&self) {
        let data = self.data();
        assert!(
            self.as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]),
            "pg_ctl stop failed"
        );
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .unwrap()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One response as the load generator saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: &'static str,
    /// 0 = transport error (no response within the client timeout, connection refused…).
    pub status: u16,
    pub started: Instant,
    pub latency: Duration,
    pub correct: bool,
    pub cache: String,
    pub tier: String,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub samples: Vec<Sample>,
}

impl Tally {
    pub fn count(&self) -> usize {
        self.samples.len()
    }

    pub fn five_xx(&self) -> usize {
        self.samples.iter().filter(|s| s.status >= 500).count()
    }

    pub fn wrong(&self) -> usize {
        self.samples.iter().filter(|s| !s.correct).count()
    }

    pub fn stale_served(&self) -> usize {
        self.samples.iter().filter(|s| s.cache == "STALE").count()
    }

    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut m = BTreeMap::new();
        for s in &self.samples {
            *m.entry(s.status).or_default() += 1;
        }
        m
    }

    pub fn p99(&self) -> Duration {
        percentile(self.samples.iter().map(|s| s.latency).collect(), 0.99)
    }

    pub fn max(&self) -> Duration {
        self.samples
            .iter()
            .map(|s| s.latency)
            .max()
            .unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests, statuses {:?}, wrong {}, p99 {:?}, max {:?}",
            self.count(),
            self.statuses(),
            self.wrong(),
            self.p99(),
            self.max()
        )
    }
}

/// The latency bound of a faulted phase: the 250 ms, or twice the p99 the same load
/// had just before the fault when the shared machine is so loaded that the healthy service
/// is already slower than that (the bound is about what the fault adds, not about the
/// machine). No single request may wait for the fault itself: see [`NO_WAIT_BOUND`].
pub fn p99_bound(baseline_p99: Duration) -> Duration {
    Duration::from_millis(250).max(baseline_p99 * 2)
}

/// Every fault of scenarios 2 and 3 holds a Redis command 2 s or more; a request that waited
/// for one would take at least that long.
pub const NO_WAIT_BOUND: Duration = Duration::from_millis(1_500);

/// p99 of the samples started before and from `at`.
pub fn split_p99(t: &Tally, at: Instant) -> (Duration, Duration) {
    let (before, after): (Vec<&Sample>, Vec<&Sample>) =
        t.samples.iter().partition(|s| s.started < at);
    (
        percentile(before.iter().map(|s| s.latency).collect(), 0.99),
        percentile(after.iter().map(|s| s.latency).collect(), 0.99),
    )
}

pub fn percentile(mut v: Vec<Duration>, q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let at = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[at]
}

/// The row each scenario prints for RELIABILITY.md.
pub struct Row {
    pub scenario: &'static str,
    pub requests: usize,
    pub five_xx: usize,
    pub stale_reads: usize,
    pub stale_served: usize,
    pub lost_writes: usize,
    pub recovery: String,
    pub p99: Duration,
}

impl Row {
    pub fn print(&self) {
        println!(
            "\n| {} | {} | {} | {} | {} | {} | {} | {:.1} ms |",
            self.scenario,
            self.requests,
            self.five_xx,
            self.stale_reads,
            self.stale_served,
            self.lost_writes,
            self.recovery,
            self.p99.as_secs_f64() * 1000.0
        );
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A location with `n` workflows `wf0..`, and the body `data` each one reads as from Postgres.
pub struct Seeded {
    pub key: String,
    pub expected: Arc<Vec<(String, Value)>>,
}

pub async fn seed(app: &TestApp, location: &str, n: usize) -> Seeded {
    let key = app.create_location(location).await;
    for i in 0..n {
        let put = app
            .put_workflow(
                &key,
                &format!("wf{i}"),
                &sample_workflow(&format!("wf {i}")),
            )
            .await;
        assert!(put.status().is_success(), "seeding wf{i}: {}", put.status());
    }
    // Past the stale-set guard's window, so these first reads fill Redis too.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut expected = Vec::new();
    for i in 0..n {
        let id = format!("wf{i}");
        let body: Value = app
            .api_get(&key, &format!("/api/workflows/{id}"))
            .await
            .json()
            .await
            .unwrap();
        expected.push((id, body["data"].clone()));
    }
    Seeded {
        key,
        expected: Arc::new(expected),
    }
}

/// An app whose REDIS_URL is `redis_url` (e.g. a fault proxy), connected to it.
pub async fn app_on(
    redis_url: &str,
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let url = redis_url.to_owned();
    let app = spawn_app_with(|env| {
        env.insert("REDIS_URL".into(), url);
        customize(env);
    })
    .await;
    crate::caching::wait_for_redis(&app).await;
    app
}

/// Reads spread over the seeded workflows by `concurrency` tasks until stopped (and at least
/// `min` done); every response is recorded and its body compared with Postgres.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub done: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

impl Load {
    pub fn reads(base: &str, seeded: &Seeded, concurrency: usize, min: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, done, next) = (stop.clone(), done.clone(), next.clone());
                let (client, base) = (client(), base.to_owned());
                let (key, expected) = (seeded.key.clone(), seeded.expected.clone());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    while !(stop.load(Ordering::SeqCst) && done.load(Ordering::SeqCst) >= min) {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let (id, want) = &expected[n % expected.len()];
                        let url = format!("{base}/api/workflows/{id}");
                        let mut s = get(&client, &url, &key, "read").await;
                        s.sample.correct =
                            s.sample.correct && s.body.as_ref().map(|b| &b["data"]) == Some(want);
                        out.push(s.sample);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    out
                })
            })
            .collect();
        Load { stop, done, tasks }
    }

    pub async fn wait_for(&self, n: usize) {
        let t = Instant::now();
        while self.done.load(Ordering::SeqCst) < n {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "load stuck at {}",
                self.done.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples = Vec::new();
        for t in self.tasks {
            samples.extend(t.await.unwrap());
        }
        samples.sort_by_key(|s| s.started);
        Tally { samples }
    }
}

pub struct Got {
    pub sample: Sample,
    pub body: Option<Value>,
}

/// One GET with the API key; `correct` = a 200 whose body parsed.
pub async fn get(client: &reqwest::Client, url: &str, key: &str, kind: &'static str) -> Got {
    let started = Instant::now();
    let response = client.get(url).bearer_auth(key).send().await;
    finish_sample(response, started, kind).await
}

pub async fn finish_sample(
    response: reqwest::Result<reqwest::Response>,
    started: Instant,
    kind: &'static str,
) -> Got {
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, cache, tier, body) = match response {
        Err(_) => (0, String::new(), String::new(), None),
        Ok(r) => {
            let (status, cache, tier) = (
                r.status().as_u16(),
                header(&r, "x-cache-status"),
                header(&r, "x-cache-tier"),
            );
            (status, cache, tier, r.json::<Value>().await.ok())
        }
    };
    Got {
        sample: Sample {
            kind,
            status,
            started,
            latency: started.elapsed(),
            correct: status == 200 && body.is_some(),
            cache,
            tier,
        },
        body,
    }
}

/// Polls `/health/detailed` until `status` is `want`; the elapsed time, or None after `max`.
/// Every health answer must come within 1 s (CONTRACT §5).
pub async fn wait_health(app: &TestApp, want: &str, max: Duration) -> Option<Duration> {
    let client = client();
    let t = Instant::now();
    while t.elapsed() < max {
        let asked = Instant::now();
        let body = health_detailed(&client, app, Duration::from_secs(2)).await;
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "/health/detailed took {:?}",
            asked.elapsed()
        );
        if body["status"] == want {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// The `/health/detailed` body. Shared by `wait_health` and the topology checks so that health
/// is asked for one way; the timeout is the caller's, since fault polling must give up on a
/// hung answer long before the client's default.
pub async fn health_detailed(client: &reqwest::Client, app: &TestApp, timeout: Duration) -> Value {
    client
        .get(app.url("/health/detailed"))
        .timeout(timeout)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `/internal/cache-stats` data.
pub async fn cache_stats(app: &TestApp) -> Value {
    let body: Value = app.get("/internal/cache-stats").await.json().await.unwrap();
    body["data"].clone()
}

/// The value of an unlabeled metric (or the sum of a family) in `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The real binary as a child process (its own fds, its own logs), with `env` (e.g. from
/// `base_environment`). Answers the child, its collected stdout+stderr, and a `TestApp`
/// pointing at it.
pub async fn spawn_binary(
    env: &HashMap<String, String>,
) -> (tokio::process::Child, Arc<Mutex<String>>, TestApp) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-workflow-debugger"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u16>(1);
    let streams: [Box<dyn tokio::io::AsyncRead + Unpin + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for stream in streams {
        let (logs, tx) = (logs.clone(), tx.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = line.split("listening on port ").nth(1) {
                    let _ = tx.send(p.trim().parse().unwrap()).await;
                }
                let mut s = logs.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let port = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the server says it is listening")
        .unwrap();
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: client(),
        database: None,
        env: env.clone(),
    };
    (child, logs, app)
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

//! The binary as an operator runs it: its log lines, its shutdown, `make dev`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use sqlx::Connection;

use crate::binary::binary;
use crate::faults::harness::RedisServer;
use crate::helpers::TestDatabase;

/// The server binary on a free loopback port, its stderr collected line by line.
pub struct Served {
    pub child: Child,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `serve` with `env` (on top of a loopback address, port 0 and one worker) and
    /// waits until it says it listens.
    pub async fn start(env: &HashMap<&str, String>) -> Served {
        let mut command = binary();
        command
            .arg("serve")
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("WORKERS", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        Self::spawn(command, Duration::from_secs(30)).await
    }

    /// Runs `command` (something that ends up serving) until the server says it listens,
    /// waiting at most `within`.
    pub async fn spawn(mut command: tokio::process::Command, within: Duration) -> Served {
        command.stderr(Stdio::piped());
        let mut child = command.spawn().expect("the command starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let collected = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        let mut served = Served {
            child,
            port: 0,
            log,
        };
        let said = served
            .wait_for_line(within, |line| line.contains("listening on port "))
            .await;
        served.port = said
            .split("listening on port ")
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .expect("a port number");
        served
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The first line that `wanted` accepts, waiting at most `within` for it.
    pub async fn wait_for_line(&self, within: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|line| wanted(line)) {
                return line;
            }
            assert!(
                started.elapsed() < within,
                "no such log line within {within:?}; the log:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM by PID.
    pub async fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid}");
    }
}

pub async fn admin() -> sqlx::PgPool {
    sqlx::PgPool::connect(crate::helpers::admin_database_url().as_str())
        .await
        .expect("admin connection")
}

/// A request that fails on the server writes its warning or error line with the id of the
/// request, the same id as its access-log line, its `X-Request-ID` and its envelope: the id a
/// user reports leads to the line that explains the failure.
#[tokio::test]
async fn the_error_line_of_a_request_names_the_id_of_its_access_line() {
    let db = TestDatabase::create().await;
    let env = HashMap::from([
        ("DATABASE_URL", db.url.to_string()),
        ("RUST_LOG", "info".to_owned()),
        ("REQUEST_TIMEOUT_MS", "20000".to_owned()),
    ]);
    let served = Served::start(&env).await;
    // From now on the database takes no connections: the next query fails on the server.
    let admin = admin().await;
    sqlx::query(&format!(
        r#"alter database "{}" allow_connections false"#,
        db.name
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
        .bind(&db.name)
        .execute(&admin)
        .await
        .unwrap();
    let id = format!("log-probe-{}", uuid::Uuid::new_v4().simple());

    let response = reqwest::Client::new()
        .get(served.url("/api/workflows"))
        .bearer_auth("gwd_not_a_known_key")
        .header("X-Request-ID", &id)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();

    let status = response.status();
    assert!(status.is_server_error(), "{status}");
    assert_eq!(response.headers()["x-request-id"], id.as_str());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["meta"]["requestId"], id.as_str());
    let suffix = format!("req={id}");
    let access = served
        .wait_for_line(Duration::from_secs(10), |line| {
            line.contains("\"GET /api/workflows\" 5") && line.ends_with(&suffix)
        })
        .await;
    let explained: Vec<String> = served
        .lines()
        .into_iter()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .filter(|line| line.ends_with(&suffix))
        .collect();
    assert!(
        !explained.is_empty(),
        "no warning or error line with {suffix} beside {access}; the log:\n{}",
        served.lines().join("\n")
    );
    // Lines that belong to no request carry no id.
    let listening = served
        .wait_for_line(Duration::ZERO, |line| line.contains("listening on"))
        .await;
    assert!(!listening.contains("req="), "{listening}");
    sqlx::query(&format!(
        r#"alter database "{}" allow_connections true"#,
        db.name
    ))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

/// Connections a database has from anyone but the asking session.
async fn connections_to(admin: &sqlx::PgPool, database: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// Clients of a Redis server other than the asking connection.
async fn redis_clients(redis: &RedisServer) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut connection)
        .await
        .unwrap();
    list.lines()
        .filter(|line| !line.contains("cmd=client|list"))
        .count()
}

/// Polls `count` (at most `tries` times, 100 ms apart) until it is zero; the last count.
async fn until_zero<F, Fut>(tries: usize, mut count: F) -> i64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let mut last = count().await;
    for _ in 1..tries {
        if last == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = count().await;
    }
    last
}

/// SIGTERM while a request waits on the database: the server stops taking connections at
/// once, the request still gets its answer, the process exits 0, and it leaves no connection
/// behind in Postgres or in (its own) Redis.
#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_leaves_no_connections() {
    let db = TestDatabase::create().await;
    let redis = RedisServer::start(None).await;
    let env = HashMap::from([
        ("DATABASE_URL", db.url.to_string()),
        ("REDIS_URL", redis.url()),
        ("CACHE_PREFIX", crate::helpers::unique_name("gwdstop")),
        ("RUST_LOG", "info".to_owned()),
        ("SHUTDOWN_TIMEOUT_SECS", "20".to_owned()),
        ("REQUEST_TIMEOUT_MS", "20000".to_owned()),
    ]);
    let mut served = Served::start(&env).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let created: serde_json::Value = client
        .post(served.url("/internal/locations"))
        .json(&serde_json::json!({"id": "stopLoc", "name": "Stop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["data"]["apiKey"].as_str().unwrap().to_owned();
    let put = client
        .put(served.url("/api/workflows/wf1"))
        .bearer_auth(&key)
        .json(&crate::helpers::sample_workflow("Slow read"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let admin = admin().await;
    assert!(connections_to(&admin, &db.name).await > 0);
    assert!(redis_clients(&redis).await > 0);

    // The slow request: its read of the workflow waits for this lock.
    let mut locker = sqlx::PgConnection::connect(db.url.as_str()).await.unwrap();
    sqlx::query("begin").execute(&mut locker).await.unwrap();
    sqlx::query("lock table workflows in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();
    let in_flight = tokio::spawn(
        client
            .get(served.url("/api/workflows/wf1"))
            .bearer_auth(&key)
            .send(),
    );
    let waiting = until_zero(100, || async {
        let blocked: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
        )
        .bind(&db.name)
        .fetch_one(&admin)
        .await
        .unwrap();
        1 - blocked.min(1)
    })
    .await;
    assert_eq!(waiting, 0, "the read never waited for the lock");

    served.terminate().await;

    let address = format!("127.0.0.1:{}", served.port);
    let mut refused = false;
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(&address).await {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(refused, "new connections were still accepted after SIGTERM");
    assert!(
        !in_flight.is_finished(),
        "the request did not wait for the lock"
    );
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    sqlx::query("commit").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
    let answered = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answered.status(), 200);
    let body: serde_json::Value = answered.json().await.unwrap();
    assert_eq!(body["data"]["name"], "Slow read");
    let status = tokio::time::timeout(Duration::from_secs(20), served.child.wait())
        .await
        .expect("exits within 20 s")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", served.lines().join("\n"));
    served
        .wait_for_line(Duration::from_secs(5), |line| line.ends_with("] stopped"))
        .await;
    assert_eq!(
        until_zero(50, || connections_to(&admin, &db.name)).await,
        0,
        "Postgres connections left"
    );
    assert_eq!(
        until_zero(50, || async { redis_clients(&redis).await as i64 }).await,
        0,
        "Redis connections left"
    );
    admin.close().await;
}

/// A process group, killed (SIGKILL) when dropped: what a failed test leaves running.
struct ProcessGroup(u32);

impl ProcessGroup {
    /// SIGTERM to the whole group (`make`, the script, the server it became).
    fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM -{}", self.0);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// `make dev` as a newcomer runs it, with only another database name and a free port (and no
/// rebuild, see below): the database is created, migrated and seeded, health is healthy, the
/// demo key lists the demo workflows; stopped by its PID and run again, it duplicates nothing.
#[tokio::test]
async fn make_dev_serves_the_demo_and_a_second_run_duplicates_nothing() {
    use ghl_workflow_debugger::cli::seed::{DEMO_API_KEY, DEMO_LOCATION_ID};
    let name = crate::helpers::unique_name("gwd_dev");
    let mut url = crate::helpers::admin_database_url();
    url.set_path(&name);
    // Dropped at the end: the database `make dev` creates.
    let database = TestDatabase { name, url };
    let prefix = crate::helpers::unique_name("gwddev");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    for run in 1..=2 {
        let mut command = tokio::process::Command::new("make");
        command
            .args(["--no-print-directory", "dev"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DATABASE_URL", database.url.as_str())
            .env("PORT", "0")
            .env("CACHE_PREFIX", &prefix)
            // Its build step is the one thing not run: the tests built this binary already,
            // and `cargo build` (without the dev-dependencies' features) would build another
            // and put it in place under the tests running beside this one.
            .env("CARGO", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut served = Served::spawn(command, Duration::from_secs(120)).await;
        let group = ProcessGroup(served.child.id().expect("make runs"));

        let health = client
            .get(served.url("/health/detailed"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "run {run}");
        let health: serde_json::Value = health.json().await.unwrap();
        assert_eq!(health["status"], "healthy", "run {run}: {health}");
        let listed: serde_json::Value = client
            .get(served.url("/api/workflows?limit=100"))
            .bearer_auth(DEMO_API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut ids: Vec<&str> = listed["data"]["workflows"]
            .as_array()
            .unwrap_or_else(|| panic!("run {run}: {listed}"))
            .iter()
            .filter_map(|row| row["id"].as_str())
            .collect();
        ids.sort_unstable();
        // Five §7 documents and three imported from GoHighLevel builder JSON (by their ids).
        assert_eq!(
            ids,
            [
                "5d1f0b7a-6c2e-4a9d-8b3f-2e7c9a1d4f60",
                "7e3a9c51-2b4d-4f6e-9a8c-1d5b7f9e3a20",
                "9a0c1e2f-3b4d-4c5e-8f6a-7b8c9d0e1f2a",
                "appointment-reminder",
                "broken-draft",
                "hot-lead-retrigger",
                "new-lead-nurture",
                "spinning-follow-up"
            ],
            "run {run}"
        );

        group.terminate();
        let status = tokio::time::timeout(Duration::from_secs(30), served.child.wait())
            .await
            .expect("make dev stops within 30 s of SIGTERM")
            .unwrap();
        assert!(
            served.child.try_wait().unwrap().is_some(),
            "run {run}: still running ({status})"
        );
    }

    let pool = sqlx::PgPool::connect(database.url.as_str()).await.unwrap();
    let counts: (i64, i64, i64, String) = sqlx::query_as(
        "select (select count(*) from locations), (select count(*) from api_keys), \
                (select count(*) from workflows), (select min(id) from locations)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 8, DEMO_LOCATION_ID.to_owned()));
    pool.close().await;
}

//! The service behind PgBouncer in transaction mode (Debian's package, started here on a
//! free port in front of the machine's Postgres, with a pool small enough that consecutive
//! transactions land on different server sessions): the main API flows answer without one
//! error, the statement timeout holds in every transaction, migrations go direct, and two
//! instances sharing the pooler keep the invalidation promise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};

use crate::cache::common::free_port;
use crate::faults::harness::metric;
use crate::helpers::{
    sample_workflow, settings_from, spawn_app_with, spawn_sibling, start, TestApp,
};
use crate::topology::common::stale_reads_across;
use crate::webhooks::{event, send_signed, SECRET};

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

struct PgBouncer {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl PgBouncer {
    /// `None` when the binary is missing and this is not CI (CI installs it: `.ci/run`).
    fn start() -> Option<PgBouncer> {
        PgBouncer::start_with("")
    }

    /// As [`PgBouncer::start`], with `extra` lines in its `[pgbouncer]` section.
    fn start_with(extra: &str) -> Option<PgBouncer> {
        if !Path::new(PGBOUNCER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{PGBOUNCER} is missing in CI (.ci/run installs the pgbouncer package)"
            );
            eprintln!("SKIPPED: {PGBOUNCER} not found (apt-get install pgbouncer)");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "gwd-pgbouncer-{}-{}",
            std::process::id(),
            crate::helpers::unique_name("b")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        // Strict like PgBouncer's defaults: no ignored startup parameters; a pool of 2 server
        // sessions so that transactions of one client hop between sessions.
        let conf = format!(
            "[databases]\n* = host=127.0.0.1 port=5432\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 500\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n{extra}",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), conf).unwrap();
        // PgBouncer refuses to run as root.
        let _ = Command::new("chown")
            .args(["-R", "postgres", &dir.display().to_string()])
            .status();
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--", PGBOUNCER])
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer starts");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen on {port}: {}",
                std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(PgBouncer { port, dir, child })
    }

    /// `url` (a database on the machine's Postgres) through this pooler.
    fn through(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser's child is pgbouncer itself (exec); stop it by the PID it wrote.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn pooled_app(bouncer: &PgBouncer) -> TestApp {
    spawn_app_with(|env| {
        let direct = env["DATABASE_URL"].clone();
        env.insert("DATABASE_URL".into(), bouncer.through(&direct));
        env.insert("DATABASE_LISTEN_URL".into(), direct);
        env.insert("DATABASE_POOLER".into(), "transaction".into());
        env.insert("GHL_WEBHOOK_SECRET".into(), SECRET.into());
    })
    .await
}

fn status_ok(what: &str, status: reqwest::StatusCode, errors: &mut Vec<String>) {
    if status.is_server_error() {
        errors.push(format!("{what}: {status}"));
    }
}

#[tokio::test]
async fn the_main_flows_pass_through_pgbouncer_in_transaction_mode_without_errors() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let a = pooled_app(&bouncer).await;
    let key = a.create_location("pooledLoc").await;
    let mut errors = Vec::new();

    // CRUD, concurrently (more clients than the pooler's 2 server sessions).
    let ids: Vec<String> = (0..24).map(|i| format!("wf{i}")).collect();
    let puts = join_all(ids.iter().map(|id| {
        let (a, key, body) = (&a, &key, sample_workflow(id));
        async move { a.put_workflow(key, id, &body).await }
    }))
    .await;
    for (id, r) in ids.iter().zip(puts) {
        status_ok(&format!("PUT {id}"), r.status(), &mut errors);
        assert!(r.status().is_success(), "PUT {id}: {}", r.status());
    }
    for round in 0..3 {
        let gets = join_all(ids.iter().map(|id| {
            let (a, key, path) = (&a, &key, format!("/api/workflows/{id}"));
            async move { a.api_get(key, &path).await }
        }))
        .await;
        for r in gets {
            status_ok(&format!("GET round {round}"), r.status(), &mut errors);
        }
    }
    let updates = join_all(ids.iter().take(8).map(|id| {
        let (a, key, body) = (&a, &key, sample_workflow("renamed"));
        async move { a.put_workflow(key, id, &body).await }
    }))
    .await;
    for r in updates {
        status_ok("update", r.status(), &mut errors);
    }
    // Lists and analyses.
    let list: Value = a.api_get_json(&key, "/api/workflows").await;
    assert_eq!(list["success"], true, "{list}");
    let analyses = join_all(ids.iter().take(6).map(|id| {
        let (a, key, path) = (&a, &key, format!("/api/workflows/{id}/analysis"));
        async move { a.api_get(key, &path).await }
    }))
    .await;
    for r in analyses {
        status_ok("analysis", r.status(), &mut errors);
    }
    // Deletes, and a webhook that deletes.
    let d = a.delete_workflow(&key, "wf23").await;
    status_ok("DELETE", d.status(), &mut errors);
    let w = send_signed(
        &a,
        &event(
            "pooled-e1",
            "WorkflowDeleted",
            "pooledLoc",
            json!({"workflowId": "wf22"}),
        ),
    )
    .await;
    status_ok("webhook", w.status(), &mut errors);
    assert_eq!(a.api_get(&key, "/api/workflows/wf22").await.status(), 404);
    assert_eq!(a.api_get(&key, "/api/workflows/wf23").await.status(), 404);
    assert!(errors.is_empty(), "errors through the pooler: {errors:?}");

    // Two instances sharing the pooler: every write is seen by the next read on the other.
    let b = spawn_sibling(&a).await;
    a.put_workflow(&key, "shared", &sample_workflow("shared"))
        .await;
    assert_eq!(stale_reads_across(&a, &b, &key, 10).await, 0);
}

/// Every pooled transaction carries the statement timeout (`SET LOCAL`), none of which a
/// startup parameter could carry through the pooler.
#[tokio::test]
async fn the_statement_timeout_holds_in_every_pooled_transaction() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let app = pooled_app(&bouncer).await;
    let settings = settings_from(&app.env);
    let pool =
        ghl_workflow_debugger::repository::postgres::database::connect_lazy(&settings.database)
            .unwrap();
    let db = ghl_workflow_debugger::repository::postgres::Db::new(pool, &settings.database);
    for _ in 0..6 {
        let timeout: String = sqlx::query_scalar("select current_setting($1)")
            .bind("statement_timeout")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(timeout, "5s");
    }
    let slow = sqlx::query("select pg_sleep($1)")
        .bind(6.0_f64)
        .execute(&db)
        .await
        .unwrap_err();
    assert!(slow.to_string().contains("statement timeout"), "{slow}");
}

/// Without DATABASE_POOLER the driver's startup parameters reach PgBouncer, which refuses
/// them: startup stops with an error that names the setting to change.
#[tokio::test]
async fn a_pooler_refusing_a_startup_parameter_stops_startup_naming_the_setting() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let direct = spawn_app_with(|_| {}).await;
    let mut env = direct.env.clone();
    env.insert(
        "DATABASE_URL".into(),
        bouncer.through(direct.database_url()),
    );
    env.insert("RUN_MIGRATIONS".into(), "false".into());
    let error = ghl_workflow_debugger::startup::Application::build(settings_from(&env))
        .await
        .err()
        .expect("startup refuses")
        .to_string();
    assert!(error.contains("DATABASE_POOLER=transaction"), "{error}");
    assert!(error.contains("extra_float_digits"), "{error}");
}

/// `/ready` and `/health/detailed` probe Postgres through the pooler too: hammered on two
/// instances between ordinary API traffic for several seconds (long enough for several
/// probes on each, `health_probes_total`), neither fails once.
#[tokio::test]
async fn health_and_readiness_stay_ok_through_pgbouncer_under_api_traffic() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let a = pooled_app(&bouncer).await;
    let b = spawn_sibling(&a).await;
    let key = a.create_location("pooledHealth").await;
    let probes_before = probes_run([&a, &b]).await;
    let mut errors = Vec::new();
    for i in 0..100 {
        let (x, y) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (id, other) = (
            format!("h{}", i % 10),
            format!("/api/workflows/h{}", (i + 5) % 10),
        );
        let body = sample_workflow(&format!("round {i}"));
        let (ready, detailed, put, get) = tokio::join!(
            x.get("/ready"),
            y.get("/health/detailed"),
            x.put_workflow(&key, &id, &body),
            y.api_get(&key, &other),
        );
        if ready.status() != 200 {
            errors.push(format!("{i}: /ready {}", ready.status()));
        }
        let status = detailed.status();
        let health: Value = detailed.json().await.unwrap();
        if status != 200 || health["checks"]["database"] != "healthy" {
            errors.push(format!("{i}: /health/detailed {status} {health}"));
        }
        status_ok(&format!("{i}: PUT"), put.status(), &mut errors);
        status_ok(&format!("{i}: GET"), get.status(), &mut errors);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let ran = probes_run([&a, &b]).await - probes_before;
    assert!(errors.is_empty(), "{} failures: {errors:?}", errors.len());
    assert!(
        ran >= 6.0,
        "only {ran} probes ran: the probe was hardly exercised"
    );
}

/// Health probes the instances actually ran (`health_probes_total`).
async fn probes_run(apps: [&TestApp; 2]) -> f64 {
    let mut sum = 0.0;
    for app in apps {
        sum += metric(app, "health_probes_total").await;
    }
    sum
}

/// Leaves named prepared statements (`sqlx_s_1`…`sqlx_s_4`, the names sqlx gives a new
/// connection's statements) on both of the pooler's server sessions, as another client of a
/// shared pooler may: a statement this service prepares outside pooler mode's transactions
/// (which begin with `DEALLOCATE ALL`) collides with them.
async fn leave_named_statements(bouncer: &PgBouncer, app: &TestApp) {
    use sqlx::{ConnectOptions, Executor};
    let options: sqlx::postgres::PgConnectOptions =
        bouncer.through(app.database_url()).parse().unwrap();
    let options = options.extra_float_digits(None).statement_cache_capacity(0);
    let mut clients = Vec::new();
    // Two open transactions hold the pool's two server sessions, one each.
    for _ in 0..2 {
        let mut client = options.connect().await.unwrap();
        client.execute("begin").await.unwrap();
        clients.push(client);
    }
    for client in &mut clients {
        for n in 1..=4 {
            let prepare = format!("prepare sqlx_s_{n} as select {n}");
            client.execute(prepare.as_str()).await.unwrap();
        }
        client.execute("commit").await.unwrap();
    }
}

/// `CACHE_WARM=true` reads through the pooler like every repository: the warmed instance's
/// first read of a workflow is a cache hit, although the server sessions hold named
/// statements another client left there.
#[tokio::test]
async fn cache_warming_reads_through_pgbouncer_in_pooler_mode() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let a = pooled_app(&bouncer).await;
    let key = a.create_location("pooledWarm").await;
    for i in 0..6 {
        let id = format!("wf{i}");
        let w = a.put_workflow(&key, &id, &sample_workflow(&id)).await;
        assert!(w.status().is_success(), "{}", w.status());
        assert_eq!(
            a.api_get(&key, &format!("/api/workflows/{id}"))
                .await
                .status(),
            200
        );
    }
    leave_named_statements(&bouncer, &a).await;
    let mut env = a.env.clone();
    env.insert("CACHE_WARM".into(), "true".into());
    env.insert(
        "CACHE_PREFIX".into(),
        crate::helpers::unique_name("gwdwarm"),
    );
    let warmed = start(settings_from(&env), None).await;
    let t = Instant::now();
    loop {
        let stats: Value = warmed
            .get("/internal/cache-stats")
            .await
            .json()
            .await
            .unwrap();
        if stats["data"]["l1"]["entries"].as_u64().unwrap() >= 6 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "not warmed: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = warmed.api_get(&key, "/api/workflows/wf0").await;
    assert_eq!(first.headers()["x-cache-status"], "HIT");
}

/// The CLI honours DATABASE_POOLER like the server: `location create`, `key create` and
/// `seed-demo` run through the pooler (migrations on DATABASE_LISTEN_URL), and what they
/// created serves.
#[tokio::test]
async fn the_cli_commands_run_through_pgbouncer_in_pooler_mode() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let a = pooled_app(&bouncer).await;
    // Named statements on the server sessions, as a running service leaves them.
    let key = a.create_location("pooledCli").await;
    a.put_workflow(&key, "wf", &sample_workflow("wf")).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-workflow-debugger"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&a.env)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let printed_key = |text: &str| {
        text.lines()
            .find_map(|l| l.split("store it now): ").nth(1))
            .expect("a key is printed")
            .trim()
            .to_owned()
    };
    let created = printed_key(&cli(&[
        "location", "create", "--id", "cliLoc", "--name", "CLI",
    ]));
    let another = printed_key(&cli(&[
        "key",
        "create",
        "--location",
        "cliLoc",
        "--label",
        "x",
    ]));
    cli(&["seed-demo"]);
    for k in [&created, &another] {
        assert_eq!(a.api_get(k, "/api/workflows").await.status(), 200);
    }
    let demo: Value = a
        .api_get_json(
            ghl_workflow_debugger::cli::seed::DEMO_API_KEY,
            "/api/workflows",
        )
        .await;
    assert_eq!(demo["success"], true, "{demo}");
}

/// A PgBouncer that *ignores* the startup parameters (`ignore_startup_parameters`) instead
/// of refusing them: without DATABASE_POOLER the statement timeout sent would be silently
/// lost, so startup stops naming the settings; with them the service runs through it.
#[tokio::test]
async fn a_pooler_ignoring_startup_parameters_stops_startup_unless_pooler_mode_is_on() {
    let Some(bouncer) =
        PgBouncer::start_with("ignore_startup_parameters = extra_float_digits,options\n")
    else {
        return;
    };
    let direct = spawn_app_with(|_| {}).await;
    let mut env = direct.env.clone();
    env.insert(
        "DATABASE_URL".into(),
        bouncer.through(direct.database_url()),
    );
    env.insert("RUN_MIGRATIONS".into(), "false".into());
    let error = ghl_workflow_debugger::startup::Application::build(settings_from(&env))
        .await
        .err()
        .expect("startup refuses")
        .to_string();
    for named in [
        "DATABASE_POOLER=transaction",
        "DATABASE_LISTEN_URL",
        "statement_timeout",
    ] {
        assert!(error.contains(named), "{error}");
    }

    env.insert("DATABASE_POOLER".into(), "transaction".into());
    env.insert(
        "DATABASE_LISTEN_URL".into(),
        direct.database_url().to_owned(),
    );
    let pooled = start(settings_from(&env), None).await;
    let key = pooled.create_location("ignoringLoc").await;
    let mut errors = Vec::new();
    let puts = join_all((0..12).map(|i| {
        let (app, key, id) = (&pooled, &key, format!("wf{i}"));
        async move { app.put_workflow(key, &id, &sample_workflow(&id)).await }
    }))
    .await;
    for r in puts {
        status_ok("PUT", r.status(), &mut errors);
    }
    for i in 0..12 {
        let r = pooled.api_get(&key, &format!("/api/workflows/wf{i}")).await;
        status_ok("GET", r.status(), &mut errors);
    }
    assert!(errors.is_empty(), "errors through the pooler: {errors:?}");
}

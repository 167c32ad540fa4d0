//! The binary itself: configuration errors, demo seeding, graceful shutdown.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_ghl-workflow-debugger");

/// The binary with a clean environment, run from an empty directory (no `.env`).
pub fn binary() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_missing_database_url_stops_startup_with_one_clear_line_and_exit_2() {
    let output = binary().output().await.unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL is missing"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[tokio::test]
async fn a_malformed_value_is_named_and_secrets_are_not_printed() {
    let output = binary()
        .env(
            "DATABASE_URL",
            "postgres://app:canary-db-secret@127.0.0.1:1/x",
        )
        .env("REDIS_URL", "redis://:canary-redis-secret@127.0.0.1:1")
        .env("PORT", "not-a-port")
        .output()
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("PORT is invalid"), "{all}");
    assert!(!all.contains("canary-db-secret") && !all.contains("canary-redis-secret"));
}

#[tokio::test]
async fn seed_demo_can_run_twice_without_duplicating() {
    let db = TestDatabase::create().await;
    for _ in 0..2 {
        let output = binary()
            .arg("seed-demo")
            .env("DATABASE_URL", db.url.as_str())
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains(ghl_workflow_debugger::cli::seed::DEMO_API_KEY));
    }
    let pool = sqlx::PgPool::connect(db.url.as_str()).await.unwrap();
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from locations), (select count(*) from api_keys), (select count(*) from workflows),
                (select count(*) from workflows where source_json is not null and source_version is not null)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // Five §7 documents and three imported from GoHighLevel builder JSON.
    assert_eq!(counts, (1, 1, 8, 3));
    pool.close().await;
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully_with_exit_0() {
    let db = TestDatabase::create().await;
    let mut child = binary()
        .env("DATABASE_URL", db.url.as_str())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("WORKERS", "1")
        .env("SHUTDOWN_TIMEOUT_SECS", "2")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(port) = line.split("listening on port ").nth(1) {
                return port.trim().parse::<u16>().unwrap();
            }
        }
        panic!("the server never said it was listening");
    })
    .await
    .unwrap();
    let live = reqwest::get(format!("http://127.0.0.1:{port}/live"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    // With RUST_LOG=info the access log is on: one line per request, with its id.
    let access_line = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("\"GET /live\" 200") && line.contains("req=") {
                return line;
            }
        }
        panic!("no access log line for GET /live");
    })
    .await
    .unwrap();
    assert!(!access_line.contains('?'), "{access_line}");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();

    assert_eq!(status.code(), Some(0));
}

pub fn key_from(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|line| line.split("api key (shown once, store it now): ").nth(1))
        .expect("the key is printed")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn cli_creates_locations_and_keys_and_revocation_is_immediate() {
    let app = crate::helpers::spawn_app().await;
    let cli = |args: &[&str]| {
        let mut command = binary();
        command
            .args(args)
            .env("DATABASE_URL", app.database_url())
            .env("REDIS_URL", &app.env["REDIS_URL"])
            .env("CACHE_PREFIX", &app.env["CACHE_PREFIX"]);
        command
    };

    let created = cli(&["location", "create", "--id", "cliLoc1", "--name", "Acme"])
        .output()
        .await
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let first_key = key_from(&created.stdout);
    assert_eq!(
        app.api_get(&first_key, "/api/workflows").await.status(),
        200
    );

    let second = cli(&["key", "create", "--location", "cliLoc1", "--label", "ci"])
        .output()
        .await
        .unwrap();
    assert!(second.status.success());
    let second_key = key_from(&second.stdout);
    let stdout = String::from_utf8_lossy(&second.stdout).to_string();
    let key_id = stdout.split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(
        app.api_get(&second_key, "/api/workflows").await.status(),
        200
    );

    let revoked = cli(&["key", "revoke", "--id", &key_id])
        .output()
        .await
        .unwrap();
    assert_eq!(
        revoked.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let said = String::from_utf8_lossy(&revoked.stdout);
    assert!(said.contains("confirmed by 1 running instance"), "{said}");
    // The app had the key cached (the 200 above): confirmed means refused at once.
    assert_eq!(
        app.api_get(&second_key, "/api/workflows").await.status(),
        401
    );
    assert_eq!(
        app.api_get(&first_key, "/api/workflows").await.status(),
        200
    );

    let duplicate = cli(&["location", "create", "--id", "cliLoc1", "--name", "Again"])
        .output()
        .await
        .unwrap();
    assert!(!duplicate.status.success());
    let bad_id = cli(&["location", "create", "--id", "no spaces", "--name", "X"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("--id must be"));
}

#[tokio::test]
async fn analyze_runs_offline_with_exit_codes_for_ci() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/workflows");
    let healthy = demo.join("new-lead-nurture.json");
    let unreadable =
        std::env::temp_dir().join(format!("gwd-not-json-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&unreadable, "{ not json").unwrap();

    let clean = binary()
        .arg("analyze")
        .arg(&healthy)
        .output()
        .await
        .unwrap();
    let broken = binary()
        .args(["analyze", "--format", "json"])
        .arg(&demo)
        .output()
        .await
        .unwrap();
    let bad = binary()
        .arg("analyze")
        .arg(&unreadable)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&unreadable);

    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(broken.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["results"].as_array().unwrap().len(), 5);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("gwd-not-json"));
}

/// A revocation that no running instance heard is reported as such, with the real time the
/// key may keep working, and exit code 3 — not "revoked".
#[tokio::test]
async fn revoke_says_plainly_when_no_instance_confirmed_it() {
    let app = crate::helpers::spawn_app().await;
    let cli = |args: &[&str], redis: &str, prefix: &str| {
        let mut command = binary();
        command
            .args(args)
            .env("DATABASE_URL", app.database_url())
            .env("REDIS_URL", redis)
            .env("CACHE_PREFIX", prefix);
        command
    };
    let (redis, prefix) = (
        app.env["REDIS_URL"].as_str(),
        app.env["CACHE_PREFIX"].as_str(),
    );
    cli(
        &["location", "create", "--id", "cliLoc2", "--name", "Acme"],
        redis,
        prefix,
    )
    .output()
    .await
    .unwrap();
    let mut key_ids = Vec::new();
    let mut keys = Vec::new();
    for label in ["a", "b"] {
        let created = cli(
            &["key", "create", "--location", "cliLoc2", "--label", label],
            redis,
            prefix,
        )
        .output()
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&created.stdout).to_string();
        key_ids.push(stdout.split_whitespace().nth(2).unwrap().to_owned());
        keys.push(key_from(&created.stdout));
    }
    for key in &keys {
        assert_eq!(app.api_get(key, "/api/workflows").await.status(), 200);
    }

    // No Redis configured where the CLI runs: nobody is told.
    let no_redis = cli(&["key", "revoke", "--id", &key_ids[0]], "", prefix)
        .output()
        .await
        .unwrap();
    // Redis, but another namespace: nobody listening acknowledges.
    let nobody = cli(
        &["key", "revoke", "--id", &key_ids[1]],
        redis,
        "gwd_nobody_here",
    )
    .output()
    .await
    .unwrap();

    for (case, output) in [("no redis", &no_redis), ("nobody listening", &nobody)] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{case}: {stdout} {stderr}");
        assert!(stdout.contains("revoked key"), "{case}: {stdout}");
        assert!(!stdout.contains("confirmed by"), "{case}: {stdout}");
        assert!(stderr.contains("not confirmed"), "{case}: {stderr}");
        assert!(stderr.contains("up to 990 s"), "{case}: {stderr}");
    }
    assert!(String::from_utf8_lossy(&no_redis.stderr).contains("no Redis is configured"));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no running instance is listening"));
    // The warning is true: the instance still has the first key cached.
    assert_eq!(app.api_get(&keys[0], "/api/workflows").await.status(), 200);
}

#[tokio::test]
async fn analyze_recognises_gohighlevel_builder_json_and_can_be_told_the_format() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ghl/example-missed-call.json"
    );

    let auto = binary()
        .args(["analyze", "--format", "json", example])
        .output()
        .await
        .unwrap();
    let forced = binary()
        .args([
            "analyze",
            "--input-format",
            "ghl",
            "--format",
            "json",
            example,
        ])
        .output()
        .await
        .unwrap();
    let native_as_ghl = binary()
        .args(["analyze", "--input-format", "ghl"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/demo/workflows/new-lead-nurture.json"
        ))
        .output()
        .await
        .unwrap();

    assert_eq!(
        auto.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&auto.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&auto.stdout).unwrap();
    assert_eq!(report["workflowId"], "9a0c1e2f-3b4d-4c5e-8f6a-7b8c9d0e1f2a");
    assert_eq!(report["version"], 4);
    assert_eq!(report["performance"]["steps"], 8);
    assert_eq!(forced.status.code(), Some(0));
    let mut forced: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
    forced["analyzedAt"] = report["analyzedAt"].clone();
    assert_eq!(forced, report);
    assert_eq!(native_as_ghl.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&native_as_ghl.stderr);
    assert!(
        stderr.contains("new-lead-nurture.json") && stderr.contains("no `templates` array found"),
        "{stderr}"
    );
}

//! Scenario 10: secrets canary. The real binary runs with passwords in REDIS_URL and
//! DATABASE_URL and canary tokens, through Redis faults; the canaries must appear nowhere:
//! not in its logs (debug level), health, metrics, cache stats or error bodies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::harness::*;
use super::proxy::{Fault, FaultProxy};
use crate::helpers::{sample_workflow, TestApp, TestDatabase};

const BINARY: &str = env!("CARGO_BIN_EXE_ghl-workflow-debugger");
const REDIS_PASSWORD: &str = "CanaryRedisPw7731";
const DB_PASSWORD: &str = "CanaryDbPw5519";
const TOKEN: &str = "CanaryInternalToken4420";
const WEBHOOK_SECRET: &str = "CanaryWebhookSecret9902";
const CANARIES: [&str; 4] = [REDIS_PASSWORD, DB_PASSWORD, TOKEN, WEBHOOK_SECRET];

/// Both scans start the real binary with exactly the variables they list (`spawn_binary`
/// clears the rest), so each test names in one place every value the binary could leak.
async fn start(vars: &[(&str, String)]) -> (Child, Arc<Mutex<String>>, TestApp) {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    spawn_binary(&env).await
}

/// Both scans read the logs only after a graceful shutdown, so that what the binary logs while
/// stopping is scanned too.
async fn stop(child: &mut Child, logs: &Mutex<String>) -> String {
    let pid = child.id().unwrap().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    logs.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_health_metrics_stats_or_error_bodies_through_faults() {
    let mut redis = RedisServer::start(Some(REDIS_PASSWORD)).await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let db = TestDatabase::create().await;
    let mut db_url = db.url.clone();
    db_url.set_password(Some(DB_PASSWORD)).unwrap();
    let (mut child, logs, app) = start(&[
        ("DATABASE_URL", db_url.to_string()),
        (
            "REDIS_URL",
            proxy.url(&format!("redis://:{REDIS_PASSWORD}@")),
        ),
        ("INTERNAL_API_TOKEN", TOKEN.to_owned()),
        ("GHL_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("APP_ENV", "production".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("WORKERS", "1".to_owned()),
        ("RATE_LIMIT_ENABLED", "false".to_owned()),
        ("SHUTDOWN_TIMEOUT_SECS", "1".to_owned()),
        ("RUST_LOG", "debug".to_owned()),
    ])
    .await;
    let base = app.address.clone();
    let http = client();
    let mut seen = String::new();
    let mut requests = 0usize;
    let mut five_xx = 0usize;
    let mut server_errors: Vec<String> = Vec::new();
    // Records status, headers and body of every answer.
    macro_rules! record {
        ($request:expr) => {{
            let r = $request.send().await.unwrap();
            requests += 1;
            if r.status().is_server_error() {
                five_xx += 1;
                server_errors.push(format!("{} {}", r.status(), r.url().path()));
            }
            seen.push_str(&format!("{} {:?}\n", r.status(), r.headers()));
            let text = r.text().await.unwrap();
            seen.push_str(&text);
            seen.push('\n');
            text
        }};
    }

    let created = record!(http
        .post(format!("{base}/internal/locations"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"id": "locCanary", "name": "Canary"})));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let key = created["data"]["apiKey"].as_str().unwrap().to_owned();
    for i in 0..5 {
        record!(http
            .put(format!("{base}/api/workflows/wf{i}"))
            .bearer_auth(&key)
            .json(&sample_workflow("canary")));
    }
    // Every kind of answer, once per fault: healthy, frozen, nonsense, killed, restarted.
    let faults: [&str; 5] = ["none", "blackhole", "nonsense", "killed", "restarted"];
    for fault in faults {
        match fault {
            "blackhole" => proxy.set(Fault::Blackhole),
            "nonsense" => proxy.set(Fault::Nonsense),
            "killed" => {
                proxy.set(Fault::Pass);
                redis.kill();
            }
            "restarted" => redis.restart().await,
            _ => {}
        }
        for i in 0..20 {
            record!(http
                .get(format!("{base}/api/workflows/wf{}", i % 6))
                .bearer_auth(&key));
        }
        record!(http.get(format!("{base}/api/workflows")).bearer_auth(&key));
        record!(http
            .get(format!("{base}/api/subscription"))
            .bearer_auth(&key));
        record!(http.get(format!("{base}/health/detailed")));
        record!(http.get(format!("{base}/ready")));
        record!(http.get(format!("{base}/metrics")).bearer_auth(TOKEN));
        record!(http
            .get(format!("{base}/internal/cache-stats"))
            .bearer_auth(TOKEN));
        // Error bodies: wrong credentials, bad input, unknown routes, unsigned webhooks.
        record!(http
            .get(format!("{base}/internal/cache-stats"))
            .bearer_auth(format!("{TOKEN}x")));
        record!(http.get(format!("{base}/metrics")));
        record!(http
            .get(format!("{base}/api/workflows"))
            .bearer_auth(REDIS_PASSWORD));
        record!(http
            .put(format!("{base}/api/workflows/bad"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{not json"));
        record!(http
            .put(format!("{base}/api/workflows/bad"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"steps": 3})));
        record!(http.get(format!("{base}/nope")));
        record!(http
            .post(format!("{base}/webhooks/ghl"))
            .header("x-ghl-signature", "00")
            .body("{}"));
        record!(http
            .post(format!("{base}/internal/cache/flush"))
            .bearer_auth(TOKEN));
    }
    proxy.set(Fault::Pass);

    let logs = stop(&mut child, &logs).await;

    let found: Vec<(&str, usize, usize)> = CANARIES
        .iter()
        .map(|c| (*c, logs.matches(c).count(), seen.matches(c).count()))
        .collect();
    let total: usize = found.iter().map(|(_, l, s)| l + s).sum();
    Row {
        scenario: "10. Secrets canary (passwords, tokens) through Redis faults",
        requests,
        five_xx,
        stale_reads: 0,
        stale_served: 0,
        lost_writes: 0,
        recovery: format!(
            "{total} canary occurrences in {} log lines and {} response bytes; the 5xx are {} flushes refused (503) while Redis was unusable",
            logs.lines().count(),
            seen.len(),
            server_errors.len()
        ),
        p99: Duration::ZERO,
    }
    .print();
    // Only the flush may fail (503) while Redis is unusable; nothing else is a 5xx.
    assert!(
        server_errors
            .iter()
            .all(|e| e == "503 Service Unavailable /internal/cache/flush"),
        "{server_errors:?}"
    );
    assert!(
        logs.contains("circuit breaker opened"),
        "the faults were not seen in the logs:\n{logs}"
    );
    for (canary, in_logs, in_answers) in found {
        let line = logs.lines().find(|l| l.contains(canary));
        assert_eq!(in_logs, 0, "{canary} in the logs: {line:?}");
        assert_eq!(in_answers, 0, "{canary} in an answer");
    }
}

/// Postgres unreachable (with and without startup migrations): the startup error, the
/// request-time errors and the logs name no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_when_postgres_is_unreachable() {
    let url = format!(
        "postgres://app:{DB_PASSWORD}@127.0.0.1:{}/gwd",
        crate::cache::common::free_port()
    );
    // Startup migrations fail: one clear line, exit code, no password.
    let failed = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "debug")
        .env("PORT", "0")
        .output()
        .await
        .unwrap();
    let startup = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(!failed.status.success(), "{startup}");

    // Without migrations it serves, and answers 503.
    let (mut child, logs, app) = start(&[
        ("DATABASE_URL", url.clone()),
        ("RUN_MIGRATIONS", "false".to_owned()),
        ("RUST_LOG", "debug".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("WORKERS", "1".to_owned()),
        ("SHUTDOWN_TIMEOUT_SECS", "1".to_owned()),
    ])
    .await;
    let base = app.address.clone();
    let http = client();
    let mut answers = String::new();
    for path in [
        "/api/workflows",
        "/health/detailed",
        "/ready",
        "/metrics",
        "/internal/cache-stats",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth("gwd_unknown_key")
            .send()
            .await
            .unwrap();
        answers.push_str(&format!("{} {:?}\n", r.status(), r.headers()));
        answers.push_str(&r.text().await.unwrap());
    }
    let logs = stop(&mut child, &logs).await;

    assert!(answers.contains("503"), "{answers}");
    for (what, text) in [
        ("startup output", &startup),
        ("logs", &logs),
        ("answers", &answers),
    ] {
        let line = text.lines().find(|l| l.contains(DB_PASSWORD));
        assert!(line.is_none(), "the password is in the {what}: {line:?}");
    }
}

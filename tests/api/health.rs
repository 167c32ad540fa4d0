use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use url::Url;

use crate::helpers::{base_environment, settings_from, spawn_app, spawn_app_with, start};

#[tokio::test]
async fn health_reports_identity_without_envelope() {
    let app = spawn_app().await;

    let response = app.get("/health").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "ghl-workflow-debugger");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["environment"], "development");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    assert!(body.get("success").is_none());
}

#[tokio::test]
async fn detailed_health_is_healthy_with_a_live_database_and_no_redis() {
    let app = spawn_app_with(|env| {
        env.insert("REDIS_URL".into(), String::new());
    })
    .await;

    let response = app.get("/health/detailed").await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["database"], "healthy");
    let cache = &body["checks"]["cache"];
    assert_eq!(cache["status"], "healthy");
    assert_eq!(cache["type"], "in-memory");
    assert!(cache["size"].is_u64());
    assert_eq!(cache["message"], "Redis not configured");
    assert!(cache.get("connected").is_none());
    assert_eq!(body["checks"]["memory"]["unit"], "MB");
    assert!(body["checks"]["memory"]["used"].as_u64().unwrap() > 0);
    assert!(body["checks"]["uptime"].is_u64());
}

#[tokio::test]
async fn live_and_ready_answer_when_the_database_is_up() {
    let app = spawn_app().await;

    let live = app.get("/live").await;
    let ready = app.get("/ready").await;

    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap()["alive"], true);
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["ready"], true);
}

fn settings_for_database(url: &str) -> ghl_workflow_debugger::config::Settings {
    let mut env = base_environment(&Url::parse(url).unwrap());
    env.insert("RUN_MIGRATIONS".into(), "false".into());
    settings_from(&env)
}

async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn detailed_health_is_unhealthy_503_when_the_database_is_unreachable() {
    let port = closed_port().await;
    let app = start(
        settings_for_database(&format!(
            "postgres://postgres:canary-pw@127.0.0.1:{port}/nowhere"
        )),
        None,
    )
    .await;

    let detailed = app.get("/health/detailed").await;
    let ready = app.get("/ready").await;

    assert_eq!(detailed.status(), 503);
    let text = detailed.text().await.unwrap();
    assert!(!text.contains("canary-pw"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"]["database"], "unhealthy");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["ready"], false);
    // Liveness does not depend on the database.
    assert_eq!(app.get("/live").await.status(), 200);
}

#[tokio::test]
async fn detailed_health_answers_within_a_second_when_the_database_hangs() {
    // A server that accepts connections and never says a word: a hung Postgres.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = start(
        settings_for_database(&format!("postgres://postgres@127.0.0.1:{port}/hung")),
        None,
    )
    .await;

    let started = Instant::now();
    let response = app.get("/health/detailed").await;
    let elapsed = started.elapsed();

    assert_eq!(response.status(), 503);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    hung.abort();
}

#[tokio::test]
async fn detailed_health_reports_a_connected_redis_tier() {
    let app = spawn_app().await;

    let mut cache = Value::Null;
    for _ in 0..50 {
        let body: Value = app.get("/health/detailed").await.json().await.unwrap();
        cache = body["checks"]["cache"].clone();
        if cache["type"] == "redis" {
            assert_eq!(body["status"], "healthy");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(cache["type"], "redis", "{cache}");
    assert_eq!(cache["status"], "healthy");
    assert_eq!(cache["connected"], true);
}

#[tokio::test]
async fn an_unreachable_redis_is_degraded_but_200() {
    let port = closed_port().await;
    let app = spawn_app_with(|env| {
        env.insert(
            "REDIS_URL".into(),
            format!("redis://:canary-redis-pw@127.0.0.1:{port}"),
        );
    })
    .await;

    let response = app.get("/health/detailed").await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("canary-redis-pw"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["database"], "healthy");
    assert_eq!(body["checks"]["cache"]["status"], "degraded");
    assert_eq!(body["checks"]["cache"]["type"], "in-memory");
    assert_eq!(body["checks"]["cache"]["connected"], false);
    assert_eq!(
        body["checks"]["cache"]["message"],
        "Redis unavailable, using fallback"
    );
}

/// `/health/detailed` is public: callers share one probe per second instead of each sending
/// queries to Postgres and Redis. Counted by `health_probes_total`, bounded by the time the
/// calls took (at most one probe per started second), not by a wall-clock threshold.
#[tokio::test]
async fn detailed_health_runs_at_most_one_probe_per_second_however_many_callers() {
    let app = spawn_app().await;
    let before = crate::faults::harness::metric(&app, "health_probes_total").await;
    let started = Instant::now();

    let concurrent = (0..50).map(|_| app.get("/health/detailed"));
    for response in futures::future::join_all(concurrent).await {
        assert!(response.status().is_success());
    }
    for _ in 0..50 {
        assert!(app.get("/health/detailed").await.status().is_success());
        assert!(app.get("/ready").await.status().is_success());
    }

    let elapsed = started.elapsed();
    let probes = crate::faults::harness::metric(&app, "health_probes_total").await - before;
    let allowed = elapsed.as_secs_f64().floor() + 1.0;
    assert!(probes >= 1.0, "no probe counted");
    assert!(
        probes <= allowed,
        "{probes} probes for 150 calls in {elapsed:?} (at most {allowed})"
    );
}

/// Without operator access the report shows node counts, never an address; in production
/// without a configured token nobody is an operator.
#[tokio::test]
async fn detailed_health_shows_node_counts_and_no_address() {
    let app = spawn_app_with(|env| {
        env.insert("INTERNAL_API_TOKEN".into(), "operator-token".into());
    })
    .await;
    let redis = Url::parse(&app.env["REDIS_URL"]).unwrap();
    let port = redis.port().unwrap_or(6379).to_string();

    let mut body = Value::Null;
    for _ in 0..50 {
        body = app.get("/health/detailed").await.json().await.unwrap();
        if body["checks"]["cache"]["type"] == "redis" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let topology = &body["checks"]["cache"]["topology"];
    assert_eq!(topology["kind"], "single", "{body}");
    assert_eq!(topology["nodes"]["total"], 1, "{body}");
    assert_eq!(topology["nodes"]["reachable"], 1, "{body}");
    assert!(topology.get("primary").is_none(), "{body}");
    let text = body.to_string();
    assert!(!text.contains(&format!(":{port}")), "{text}");
    assert!(!text.contains(redis.host_str().unwrap()), "{text}");
}

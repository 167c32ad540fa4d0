//! A TLS-only single Redis node: the cache tier works over it with a private CA, fails closed
//! with a TLS reason when the CA is wrong, speaks mutual TLS, and skips verification only
//! when told to, with a warning.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::harness::{invalidation_over_tls, Certs, TlsRedis};
use crate::faults::harness::spawn_binary;
use crate::helpers::{
    base_environment, sample_workflow, spawn_app_with, spawn_sibling, TestApp, TestDatabase,
};
use crate::topology::common::{cache_check, l2_hit_across, read, wait_cache_check};

const PASSWORD: &str = "tls-canary-pw";

async fn app_with(vars: HashMap<&str, String>) -> TestApp {
    spawn_app_with(|env| {
        env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
    })
    .await
}

/// Health says connected over TLS, an L2 hit crosses instances, and invalidations travel over
/// TLS pub/sub: both instances subscribed on the TLS-only server, PUBLISH counting them as
/// receivers, no stale read.
#[tokio::test]
async fn the_cache_tier_works_over_tls_with_a_private_ca() {
    let certs = Certs::new();
    let redis = TlsRedis::start(&certs, Some(PASSWORD), false).await;
    let a = app_with(HashMap::from([
        ("REDIS_URL", redis.url()),
        ("REDIS_TLS_CA_FILE", certs.path("ca.crt")),
    ]))
    .await;
    wait_cache_check(&a, Duration::from_secs(15), |c| c["type"] == "redis").await;
    let b = spawn_sibling(&a).await;
    wait_cache_check(&b, Duration::from_secs(15), |c| c["type"] == "redis").await;
    let check = cache_check(&a).await;
    assert_eq!(check["connected"], true, "{check}");
    assert_eq!(check["status"], "healthy", "{check}");

    let key = a.create_location("tlsLoc").await;
    l2_hit_across(&a, &b, &key, "tlswf").await;

    // Invalidation over TLS pub/sub, not only over the Postgres bus (which alone would keep
    // reads fresh too): both instances are subscribed on the TLS-only server, and the
    // writes' PUBLISHes reach them there.
    let channel = format!("{}:invalidate", a.env["CACHE_PREFIX"]);
    let t = Instant::now();
    while redis.subscribers(&certs, &channel).await < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "not both subscribed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    invalidation_over_tls(&a, &b, &key).await;
    // Pools and the subscriber hold TLS connections: the server counts them.
    assert!(redis.connected_clients(&certs).await >= 3);
}

/// A certificate from another CA: the tier stays down (degraded, TLS reason in health, no
/// secret), requests still answer from Postgres, and nothing falls back to plaintext (the
/// server has no plaintext port, and the reason is a certificate one, not a refused port).
#[tokio::test]
async fn a_wrong_ca_degrades_with_a_tls_reason_and_never_falls_back() {
    let certs = Certs::new();
    let redis = TlsRedis::start(&certs, Some(PASSWORD), false).await;
    let app = app_with(HashMap::from([
        ("REDIS_URL", redis.url()),
        ("REDIS_TLS_CA_FILE", certs.path("wrong-ca.crt")),
    ]))
    .await;
    wait_cache_check(&app, Duration::from_secs(15), |c| {
        c["message"].as_str().is_some_and(|m| m.contains("TLS"))
    })
    .await;
    let check = cache_check(&app).await;
    assert_eq!(check["status"], "degraded", "{check}");
    assert_eq!(check["type"], "in-memory", "{check}");
    assert_eq!(check["connected"], false, "{check}");
    let message = check["message"].as_str().unwrap();
    assert!(message.contains("not signed by a trusted CA"), "{message}");
    assert!(message.contains("REDIS_TLS_CA_FILE"), "{message}");
    let whole = app.get("/health/detailed").await.text().await.unwrap();
    assert!(!whole.contains(PASSWORD), "{whole}");
    assert!(!whole.contains("BEGIN CERTIFICATE"), "{whole}");

    // Still serving, from Postgres.
    let key = app.create_location("tlsWrongCa").await;
    let w = app.put_workflow(&key, "wf", &sample_workflow("x")).await;
    assert!(w.status().is_success(), "{}", w.status());
    assert_eq!(read(&app, &key, "wf").await.status(), 200);
}

/// `--tls-auth-clients yes`: without a client certificate the tier is down and health says a
/// certificate is required; with REDIS_TLS_CERT_FILE/REDIS_TLS_KEY_FILE it connects.
#[tokio::test]
async fn mutual_tls_needs_and_uses_the_client_certificate() {
    let certs = Certs::new();
    let redis = TlsRedis::start(&certs, None, true).await;
    let without = app_with(HashMap::from([
        ("REDIS_URL", redis.url()),
        ("REDIS_TLS_CA_FILE", certs.path("ca.crt")),
    ]))
    .await;
    wait_cache_check(&without, Duration::from_secs(15), |c| {
        c["message"].as_str().is_some_and(|m| m.contains("TLS"))
    })
    .await;
    let check = cache_check(&without).await;
    assert_eq!(check["status"], "degraded", "{check}");
    let message = check["message"].as_str().unwrap();
    assert!(message.contains("client certificate"), "{message}");

    let with = app_with(HashMap::from([
        ("REDIS_URL", redis.url()),
        ("REDIS_TLS_CA_FILE", certs.path("ca.crt")),
        ("REDIS_TLS_CERT_FILE", certs.path("client.crt")),
        ("REDIS_TLS_KEY_FILE", certs.path("client.key")),
    ]))
    .await;
    wait_cache_check(&with, Duration::from_secs(15), |c| c["type"] == "redis").await;
    let key = with.create_location("mtlsLoc").await;
    with.put_workflow(&key, "wf", &sample_workflow("m")).await;
    assert_eq!(read(&with, &key, "wf").await.status(), 200);
}

/// `REDIS_TLS_INSECURE_SKIP_VERIFY=true` (development only): the real binary warns at startup
/// and connects to a TLS server whose certificate it cannot verify (signed by the test's
/// private CA, which it is not given: without the setting that is the wrong-CA case above).
#[tokio::test]
async fn skipping_verification_warns_at_startup_and_connects_to_an_untrusted_server() {
    let certs = Certs::new();
    let redis = TlsRedis::start(&certs, Some(PASSWORD), false).await;
    let database = TestDatabase::create().await;
    let mut env = base_environment(&database.url);
    env.insert("REDIS_URL".into(), redis.url());
    env.insert("REDIS_TLS_INSECURE_SKIP_VERIFY".into(), "true".into());
    let (mut child, logs, app) = spawn_binary(&env).await;

    wait_cache_check(&app, Duration::from_secs(15), |c| c["type"] == "redis").await;
    let check = cache_check(&app).await;
    assert_eq!(check["connected"], true, "{check}");
    assert_eq!(check["status"], "healthy", "{check}");
    let key = app.create_location("insecureLoc").await;
    app.put_workflow(&key, "wf", &sample_workflow("i")).await;
    assert_eq!(read(&app, &key, "wf").await.status(), 200);
    let logs = logs.lock().unwrap().clone();
    let _ = child.kill().await;
    let warning = logs
        .lines()
        .find(|l| l.contains("REDIS_TLS_INSECURE_SKIP_VERIFY is on"))
        .unwrap_or_else(|| panic!("no startup warning in:\n{logs}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("NOT verified"), "{warning}");
    assert!(!logs.contains(PASSWORD), "{logs}");
}

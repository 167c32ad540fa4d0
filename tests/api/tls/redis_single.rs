//! A TLS-only single Redis node: the cache tier works over it with a private CA, fails closed
//! with a TLS reason when the CA is wrong, and speaks mutual TLS.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::harness::{Certs, TlsRedis};
use crate::helpers::{sample_workflow, spawn_app_with, spawn_sibling, TestApp};
use crate::topology::common::{cache_check, l2_hit_across, read, wait_cache_check};

const PASSWORD: &str = "tls-canary-pw";

async fn app_with(vars: HashMap<&str, String>) -> TestApp {
    spawn_app_with(|env| {
        env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
    })
    .await
}

/// Health says connected over TLS, an L2 hit crosses instances, and an invalidation sent over
/// TLS pub/sub reaches the other instance at once.
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

    // Invalidation over TLS pub/sub: both hold the workflow, a write on one is seen on the
    // other by the very next read.
    for round in 0..5 {
        let _ = read(&a, &key, "shared").await;
        let _ = read(&b, &key, "shared").await;
        let name = format!("tls round {round}");
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let w = writer
            .put_workflow(&key, "shared", &sample_workflow(&name))
            .await;
        assert!(w.status().is_success(), "{}", w.status());
        let body: Value = read(reader, &key, "shared").await.json().await.unwrap();
        assert_eq!(body["data"]["name"], name.as_str(), "stale read over TLS");
    }
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

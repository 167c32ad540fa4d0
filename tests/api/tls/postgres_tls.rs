//! Postgres over verified TLS: a server of the test's own with `ssl=on`, a certificate from the
//! test's throwaway CA and a `pg_hba.conf` of `hostssl` lines only (a plaintext session has
//! nowhere to go). The service connects with `sslmode=verify-full&sslrootcert=…`, and every
//! one of its sessions — the pool's, the invalidation listener's and its notifier's — is SSL.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ghl_workflow_debugger::repository::postgres::listener::{
    APPLICATION_NAME as LISTENER, SENDER_APPLICATION_NAME as NOTIFIER,
};
use ghl_workflow_debugger::startup::Application;
use sqlx::{Connection, PgConnection};

use super::harness::Certs;
use crate::helpers::{base_environment, sample_workflow, settings_from, start};
use crate::support::postgres_server::PostgresServer;
use crate::topology::common::read;

/// The pool's `application_name` (set in `repository::postgres::database`).
const POOL: &str = "ghl-workflow-debugger";
const DATABASE: &str = "gwd";

/// `ssl=on` with the test CA's server certificate; TLS-only host lines.
fn tls_only_postgres(certs: &Certs) -> Option<PostgresServer> {
    let mut pg = PostgresServer::init()?;
    pg.install_file(&certs.dir.join("server.crt"), "server.crt");
    pg.install_file(&certs.dir.join("server.key"), "server.key");
    pg.configure(&[
        "ssl = on",
        "ssl_cert_file = 'server.crt'",
        "ssl_key_file = 'server.key'",
    ]);
    pg.set_hba("hostssl all all 127.0.0.1/32 trust\n");
    pg.start();
    Some(pg)
}

fn verified_url(pg: &PostgresServer, certs: &Certs, database: &str, ca: &str) -> String {
    format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(database),
        certs.path(ca)
    )
}

/// `(application_name, ssl)` of every session on `DATABASE` but the asking one.
async fn sessions(admin: &mut PgConnection) -> Vec<(String, bool)> {
    sqlx::query_as(
        "select coalesce(a.application_name, ''), coalesce(s.ssl, false) \
         from pg_stat_activity a left join pg_stat_ssl s on s.pid = a.pid \
         where a.datname = $1 and a.pid <> pg_backend_pid()",
    )
    .bind(DATABASE)
    .fetch_all(admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_session_of_the_service_is_verified_tls() {
    let certs = Certs::new();
    let Some(pg) = tls_only_postgres(&certs) else {
        return;
    };
    // The server takes no plaintext session at all.
    let plain = PgConnection::connect(&format!("{}?sslmode=disable", pg.url("postgres"))).await;
    let refused = plain.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("no pg_hba.conf entry"), "{refused}");

    let mut admin = PgConnection::connect(&verified_url(&pg, &certs, "postgres", "ca.crt"))
        .await
        .unwrap();
    sqlx::query(&format!("create database {DATABASE}"))
        .execute(&mut admin)
        .await
        .unwrap();

    // A root that did not sign the server's certificate: no session, so no start.
    let wrong = url::Url::parse(&verified_url(&pg, &certs, DATABASE, "wrong-ca.crt")).unwrap();
    let refused = Application::build(settings_from(&base_environment(&wrong)))
        .await
        .err();
    assert!(refused.is_some(), "started with an unverifiable server");

    let url = url::Url::parse(&verified_url(&pg, &certs, DATABASE, "ca.crt")).unwrap();
    let app = start(settings_from(&base_environment(&url)), None).await;
    let key = app.create_location("pgTlsLoc").await;
    for i in 0..5 {
        let w = app
            .put_workflow(&key, &format!("wf{i}"), &sample_workflow("tls"))
            .await;
        assert!(w.status().is_success(), "{}", w.status());
        assert_eq!(read(&app, &key, &format!("wf{i}")).await.status(), 200);
    }

    // The pool serves the requests; the listener and its notifier connect on their own.
    let want: BTreeSet<&str> = [POOL, LISTENER, NOTIFIER].into();
    let t = Instant::now();
    let seen = loop {
        let seen = sessions(&mut admin).await;
        let names: BTreeSet<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        if want.is_subset(&names) {
            break seen;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the service's sessions never all showed up: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let plaintext: Vec<_> = seen.iter().filter(|(_, ssl)| !ssl).collect();
    assert!(plaintext.is_empty(), "sessions without SSL: {plaintext:?}");
    eprintln!("sessions on {DATABASE}: {seen:?}");
}

//! Throwaway certificates (made with the `openssl` CLI per test), a TLS-only `redis-server`
//! (`--port 0`: there is no plaintext port to fall back to) stopped by its PID, and the check
//! that invalidations travel over TLS pub/sub.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cache::common::free_port;
use crate::helpers::TestApp;
use crate::topology::common::stale_reads_across;

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate signed by it,
/// plus an unrelated CA (the "wrong" one), all in a temp dir removed on drop.
pub struct Certs {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Certs {
    pub fn new() -> Certs {
        let dir = std::env::temp_dir().join(format!(
            "gwd-tls-{}-{}",
            std::process::id(),
            crate::helpers::unique_name("c")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for ca in ["ca", "wrong-ca"] {
            let (key, crt, subj) = (
                format!("{ca}.key"),
                format!("{ca}.crt"),
                format!("/CN=gwd test {ca}"),
            );
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
            args.extend(EC);
            args.extend(["-keyout", &key, "-out", &crt, "-subj", &subj]);
            openssl(&dir, &args);
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (name, subj) in [("server", "/CN=localhost"), ("client", "/CN=gwd-client")] {
            let (key, csr, crt, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            let mut args = vec!["req", "-nodes"];
            args.extend(EC);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", subj]);
            openssl(&dir, &args);
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-out",
                    &crt,
                    "-extfile",
                    &ext,
                ],
            );
        }
        // Postgres refuses a key file others can read.
        for f in ["server.key", "client.key", "ca.key"] {
            let _ = Command::new("chmod")
                .args(["600", f])
                .current_dir(&dir)
                .status();
        }
        Certs { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` that speaks only TLS.
pub struct TlsRedis {
    pub port: u16,
    pub password: Option<String>,
    child: Child,
}

impl TlsRedis {
    /// `client_certs`: `--tls-auth-clients yes` (mutual TLS) instead of `no`.
    pub async fn start(certs: &Certs, password: Option<&str>, client_certs: bool) -> TlsRedis {
        let port = free_port();
        let port_arg = port.to_string();
        let (crt, key, ca) = (
            certs.path("server.crt"),
            certs.path("server.key"),
            certs.path("ca.crt"),
        );
        let mut args = vec![
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &crt,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            if client_certs { "yes" } else { "no" },
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        if let Some(p) = password {
            args.extend(["--requirepass", p]);
        }
        let child = Command::new("/usr/bin/redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let me = TlsRedis {
            port,
            password: password.map(str::to_owned),
            child,
        };
        let t = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "TLS redis did not start on {port} (does this redis-server have TLS?)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        me
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("rediss://:{p}@127.0.0.1:{}", self.port),
            None => format!("rediss://127.0.0.1:{}", self.port),
        }
    }

    /// An admin connection over TLS, with the client certificate.
    async fn admin(&self, certs: &Certs) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::build_with_tls(
            self.url(),
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: std::fs::read(certs.path("client.crt")).unwrap(),
                    client_key: std::fs::read(certs.path("client.key")).unwrap(),
                }),
                root_cert: Some(std::fs::read(certs.path("ca.crt")).unwrap()),
            },
        )
        .unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// Connected clients (`INFO clients`), asked over TLS.
    pub async fn connected_clients(&self, certs: &Certs) -> usize {
        let mut c = self.admin(certs).await;
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut c)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    }

    /// Subscribers of `channel` on this server (`PUBSUB NUMSUB`), asked over TLS.
    pub async fn subscribers(&self, certs: &Certs, channel: &str) -> i64 {
        let mut c = self.admin(certs).await;
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut c)
            .await
            .unwrap();
        n
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter of the instance's `/metrics` (0 when absent).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Writes on each instance are published over TLS pub/sub and counted by the node as
/// delivered to subscribers (the instances' TLS subscribers); no read after them is stale.
pub async fn invalidation_over_tls(a: &TestApp, b: &TestApp, key: &str) {
    let before = metric(a, "cache_invalidation_receivers_total").await
        + metric(b, "cache_invalidation_receivers_total").await;
    let rounds = 6;
    assert_eq!(stale_reads_across(a, b, key, rounds).await, 0, "stale read");
    let after = metric(a, "cache_invalidation_receivers_total").await
        + metric(b, "cache_invalidation_receivers_total").await;
    eprintln!(
        "PUBLISH counted {} receivers for {rounds} writes",
        after - before
    );
    // PUBLISH over TLS reached both instances' subscribers (more than one receiver per write
    // on some writes). Not on every write: under load a subscriber may be resubscribing for a
    // moment, which the stale-read count above shows costs nothing.
    assert!(
        after - before > rounds as f64,
        "PUBLISH counted {} receivers for {rounds} writes",
        after - before
    );
}

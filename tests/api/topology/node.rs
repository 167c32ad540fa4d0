//! One `redis-server` (data node or sentinel) of the topology tests: started on a free port
//! in its own temp dir, stopped only by its own PID; the bounded admin commands that ask it
//! about itself; and the deadline-bound poll every wait of the harness uses.
// Each scenario uses only some of these helpers; in a test binary the rest would be dead code.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Value};

pub(super) const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// Generous for a loaded 2-core CI machine, short enough that a broken topology fails the test.
pub(super) const SETUP_DEADLINE: Duration = Duration::from_secs(30);
/// Each admin command gets this long, so a stopped (SIGSTOP) or dying node cannot hang us.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const POLL: Duration = Duration::from_millis(50);
/// Kept in each node's own temp dir; the cluster rewrites it on every topology change.
pub(super) const CLUSTER_CONFIG_FILE: &str = "nodes.conf";

/// A port that is free now (the listener is dropped right away; the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// A free port `p` whose cluster bus port `p + 10000` is free too. Nodes are started one by
/// one, so ports of our earlier nodes (data and bus) are bound and cannot be picked again.
pub fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port();
        let Some(bus_port) = port.checked_add(10000) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus_port)).is_ok() {
            return port;
        }
    }
    panic!("no free port p with p+10000 free on 127.0.0.1");
}

/// A directory of our own under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(kind: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "redis-topology-{kind}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        TempDir(path)
    }

    pub(super) fn sub(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create dir {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `redis-server` (data node or sentinel) child process that we own.
pub(super) struct Node {
    pub(super) port: u16,
    /// stdout + stderr of the server; it logs there (no `--logfile`), config errors included.
    log: PathBuf,
    pub(super) child: Option<Child>,
    /// Listens on `--tls-port` only (registered in [`TLS_NODES`] while it lives).
    tls: bool,
}

/// Certificates for a TLS-only topology: every data node and sentinel listens on `--tls-port`
/// only (`--port 0`, nothing to fall back to), presents `cert`, and speaks TLS to the others
/// (`tls-replication`, and `tls-cluster` for a Cluster's bus). Clients need no certificate.
#[derive(Debug, Clone)]
pub struct TopologyTls {
    /// PEM file of the CA that signed `cert` (also what the admin connections trust).
    pub ca: String,
    /// Server certificate (valid for 127.0.0.1, usable as a client certificate for the bus).
    pub cert: String,
    pub key: String,
}

impl TopologyTls {
    /// The listening arguments: `--port 0 --tls-port P` and the certificates.
    fn listen_args(&self, port: u16) -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &self.cert,
            "--tls-key-file",
            &self.key,
            "--tls-ca-cert-file",
            &self.ca,
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// The TLS settings of our live TLS-only nodes by port, so that the admin commands (which
/// only know `host:port`, as CLUSTER SLOTS and SENTINEL replies name nodes) speak TLS to them.
static TLS_NODES: Mutex<BTreeMap<u16, TopologyTls>> = Mutex::new(BTreeMap::new());

fn tls_nodes() -> std::sync::MutexGuard<'static, BTreeMap<u16, TopologyTls>> {
    TLS_NODES.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`Node::spawn`] reports when another process took the port after we picked it.
pub(super) const PORT_TAKEN: &str = "Address already in use";

impl Node {
    /// Starts `redis-server [conf] --port P --bind 127.0.0.1 <extra>` (with `tls`:
    /// `--port 0 --tls-port P` and the certificates) on a port from `pick`, picking again (up
    /// to 3 times) if another process grabbed the port between the pick and the bind: other
    /// tests on this machine pick free ports too.
    pub(super) async fn start(
        pick: fn() -> u16,
        dir: &Path,
        conf: Option<&Path>,
        tls: Option<&TopologyTls>,
        extra: &[&str],
    ) -> Result<Node, String> {
        let mut last = String::new();
        for _ in 0..3 {
            // A cluster node that lost its bus port may already have written its config.
            let _ = std::fs::remove_file(dir.join(CLUSTER_CONFIG_FILE));
            match Node::spawn(pick(), dir, conf, tls, extra).await {
                Err(e) if e.contains(PORT_TAKEN) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// Spawns the server and waits until it answers as the process we started (a reply from
    /// someone else's server on that port does not count). `Err` carries the log tail when
    /// the server exits or never answers.
    async fn spawn(
        port: u16,
        dir: &Path,
        conf: Option<&Path>,
        tls: Option<&TopologyTls>,
        extra: &[&str],
    ) -> Result<Node, String> {
        let log = dir.join("redis.log");
        let out = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let mut cmd = Command::new(REDIS_SERVER);
        if let Some(conf) = conf {
            cmd.arg(conf);
        }
        match tls {
            Some(tls) => cmd.args(tls.listen_args(port)),
            None => cmd.args(["--port", &port.to_string()]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {REDIS_SERVER}: {e}"))?;
        if let Some(tls) = tls {
            tls_nodes().insert(port, tls.clone());
        }
        // From here on, dropping `node` kills the process and forgets its TLS entry.
        let mut node = Node {
            port,
            log,
            child: Some(child),
            tls: tls.is_some(),
        };
        let pid = node.child.as_ref().map(Child::id);
        let started = Instant::now();
        loop {
            if let Ok(server) = info(&node.addr(), "server").await {
                let answering = server.get("process_id").and_then(|p| p.parse().ok());
                if answering == pid {
                    return Ok(node);
                }
                return Err(format!(
                    "{PORT_TAKEN}: pid {answering:?} answers on {}, not ours ({pid:?})",
                    node.port
                ));
            }
            let exited = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                node.child = None;
                return Err(format!(
                    "redis-server on {} exited ({status}):\n{}",
                    node.port,
                    node.log_tail(20)
                ));
            }
            if started.elapsed() > SETUP_DEADLINE {
                return Err(format!(
                    "redis-server on {} did not answer within {SETUP_DEADLINE:?}:\n{}",
                    node.port,
                    node.log_tail(20)
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A data node: no persistence, its own `--dir`, plus `extra`. `repl-diskless-sync-delay 0`
    /// because Redis 7 otherwise waits 5 s before a replica's first full sync;
    /// `repl-ping-replica-period 1` because an idle primary's replication offset stays 0 until
    /// its first ping (10 s by default), and the cluster hides replicas at offset 0 from
    /// CLUSTER SLOTS.
    pub(super) async fn start_server(
        pick: fn() -> u16,
        dir: &Path,
        tls: Option<&TopologyTls>,
        extra: &[&str],
    ) -> Result<Node, String> {
        let dir_arg = dir.display().to_string();
        let mut args = vec![
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir_arg,
            "--repl-diskless-sync-delay",
            "0",
            "--repl-ping-replica-period",
            "1",
        ];
        args.extend_from_slice(extra);
        Node::start(pick, dir, None, tls, &args).await
    }

    pub(super) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(super) fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// SIGCONT (in case a test stopped it), then SIGKILL by our own PID, and reap it.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(super) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        all[from..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if self.tls {
            tls_nodes().remove(&self.port);
        }
    }
}

/// One admin connection, bounded by [`ADMIN_TIMEOUT`].
/// An admin connection to one of our nodes (over TLS when it is TLS-only), for a test's own
/// checks; panics after [`ADMIN_TIMEOUT`].
pub async fn admin(addr: &str) -> MultiplexedConnection {
    connect(addr)
        .await
        .unwrap_or_else(|e| panic!("admin connection: {e}"))
}

/// Over TLS (trusting the topology's CA) when `addr` is one of our TLS-only nodes.
pub(super) async fn connect(addr: &str) -> Result<MultiplexedConnection, String> {
    let tls = addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .and_then(|port| tls_nodes().get(&port).cloned());
    let client = match tls {
        None => redis::Client::open(format!("redis://{addr}")),
        Some(tls) => {
            let ca = std::fs::read(&tls.ca).map_err(|e| format!("read {}: {e}", tls.ca))?;
            redis::Client::build_with_tls(
                format!("rediss://{addr}"),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            )
        }
    }
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(ADMIN_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: connect timed out")),
    }
}

pub(super) async fn query_on<T: FromRedisValue>(
    conn: &mut MultiplexedConnection,
    addr: &str,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    match tokio::time::timeout(ADMIN_TIMEOUT, cmd.query_async::<T>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: command timed out")),
    }
}

/// One admin command on a fresh connection (cheap, and never reuses a connection a failover cut).
pub(super) async fn query<T: FromRedisValue>(addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
    let mut conn = connect(addr).await?;
    query_on(&mut conn, addr, cmd).await
}

/// `INFO <section>` / `CLUSTER INFO` style `key:value` lines.
pub(super) fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(super) async fn info(addr: &str, section: &str) -> Result<BTreeMap<String, String>, String> {
    let text: String = query(addr, redis::cmd("INFO").arg(section)).await?;
    Ok(parse_info(&text))
}

/// First element of `ROLE`: "master", "slave" or "sentinel".
pub(super) async fn role(addr: &str) -> Result<String, String> {
    let reply: Vec<Value> = query(addr, &redis::cmd("ROLE")).await?;
    match reply.first() {
        Some(v) => String::from_redis_value(v.clone()).map_err(|e| format!("{addr}: ROLE: {e}")),
        None => Err(format!("{addr}: empty ROLE reply")),
    }
}

/// A sentinel's map-shaped replies (`SENTINEL MASTER`, each entry of `SENTINEL REPLICAS`).
pub(super) fn value_map(v: &Value) -> BTreeMap<String, String> {
    let pairs: Vec<(String, String)> = match v {
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    String::from_redis_value(k.clone()).ok()?,
                    String::from_redis_value(v.clone()).ok()?,
                ))
            })
            .collect(),
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((
                    String::from_redis_value(k.clone()).ok()?,
                    String::from_redis_value(v.clone()).ok()?,
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    pairs.into_iter().collect()
}

/// Polls `check` until it returns `Ok`, panicking with its last `Err` after `deadline`.
pub(super) async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if started.elapsed() > deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last state: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

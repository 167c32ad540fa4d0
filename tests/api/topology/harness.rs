//! Real local Redis topologies for the cache's failover tests: a 3-primary Redis Cluster and a
//! primary + replica watched by three Sentinels. Every node is our own `redis-server` child on
//! free ports with its own temp dir; nodes are stopped only by the PIDs we started (never the
//! shared Redis on 6379), and every wait has a deadline so a stuck topology fails loudly
//! instead of hanging the test run.
// Each scenario uses only some of these helpers; in a test binary the rest would be dead code.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::{FromRedisValue, Value};

use super::node::*;

const REDIS_CLI: &str = "/usr/bin/redis-cli";
/// Small so a dead primary is noticed (PFAIL -> FAIL) and its replica elected within seconds.
const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;
/// Sentinel marks the primary down (SDOWN) after this long without a valid reply.
const SENTINEL_DOWN_AFTER_MS: u64 = 1000;
/// Bounds a stuck failover attempt, so a retry (or the next election) comes quickly.
const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 3000;
const CLUSTER_SLOTS: usize = 16384;

/// One slot range of `CLUSTER SLOTS`: `start..=end`, served by `primary` with `replicas`.
#[derive(Debug, Clone)]
struct SlotRange {
    start: u16,
    end: u16,
    primary: String,
    replicas: Vec<String>,
}

fn node_addr(v: &Value) -> Option<String> {
    let Value::Array(fields) = v else { return None };
    let ip = String::from_redis_value(fields.first()?.clone()).ok()?;
    let port = i64::from_redis_value(fields.get(1)?.clone()).ok()?;
    Some(format!("{ip}:{port}"))
}

async fn cluster_slots(addr: &str) -> Result<Vec<SlotRange>, String> {
    let reply: Vec<Value> = query(addr, redis::cmd("CLUSTER").arg("SLOTS")).await?;
    reply
        .iter()
        .map(|range| {
            let Value::Array(fields) = range else {
                return Err(format!("{addr}: odd CLUSTER SLOTS entry {range:?}"));
            };
            let bound = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| i64::from_redis_value(v.clone()).ok())
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| format!("{addr}: odd CLUSTER SLOTS entry {range:?}"))
            };
            let mut nodes = fields.iter().skip(2).filter_map(node_addr);
            Ok(SlotRange {
                start: bound(0)?,
                end: bound(1)?,
                primary: nodes
                    .next()
                    .ok_or_else(|| format!("{addr}: slot range without a primary"))?,
                replicas: nodes.collect(),
            })
        })
        .collect()
}

fn owner_of(ranges: &[SlotRange], slot: u16) -> Option<&SlotRange> {
    ranges.iter().find(|r| r.start <= slot && slot <= r.end)
}

/// A Redis Cluster of 3 primaries (and optional replicas), all our own processes.
pub struct RedisCluster {
    /// Declared before `dir` so the processes die before their directories are removed.
    nodes: Vec<Node>,
    replicas_per_primary: usize,
    /// TLS-only nodes (`--tls-cluster yes`), or plaintext ones.
    tls: Option<TopologyTls>,
    dir: TempDir,
}

impl RedisCluster {
    /// 3 primaries with `replicas_per_primary` replicas each (0 or 1 is what the tests use),
    /// `cluster-node-timeout` 1000 ms so a failover takes a few seconds. Created with
    /// `redis-cli --cluster create … --cluster-yes`, then waits until every node says
    /// `cluster_state:ok` with all 16384 slots assigned and every replica is in sync.
    /// `None` (with the reason printed) only when redis-server/redis-cli cannot run a cluster.
    pub async fn start(replicas_per_primary: usize) -> Option<RedisCluster> {
        RedisCluster::start_with(replicas_per_primary, None).await
    }

    /// `start` with TLS-only nodes: `--port 0 --tls-port P`, the cluster bus and replication
    /// over TLS too (`--tls-cluster yes`, `--tls-replication yes`), so CLUSTER SLOTS and
    /// redirects name TLS ports.
    pub async fn start_tls(replicas_per_primary: usize, tls: &TopologyTls) -> Option<RedisCluster> {
        RedisCluster::start_with(replicas_per_primary, Some(tls)).await
    }

    async fn start_with(
        replicas_per_primary: usize,
        tls: Option<&TopologyTls>,
    ) -> Option<RedisCluster> {
        if !Path::new(REDIS_CLI).exists() {
            eprintln!("SKIPPED: {REDIS_CLI} not found; it creates the cluster");
            return None;
        }
        let dir = TempDir::new("cluster");
        let total = 3 * (1 + replicas_per_primary);
        let mut nodes = Vec::with_capacity(total);
        let timeout = CLUSTER_NODE_TIMEOUT_MS.to_string();
        for i in 0..total {
            let node_dir = dir.sub(&format!("node{i}"));
            let conf_file = node_dir.join(CLUSTER_CONFIG_FILE).display().to_string();
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf_file,
                "--cluster-node-timeout",
                &timeout,
            ];
            if tls.is_some() {
                args.extend(["--tls-cluster", "yes"]);
            }
            match Node::start_server(free_cluster_port, &node_dir, tls, &args).await {
                Ok(node) => nodes.push(node),
                Err(e) if nodes.is_empty() && e.contains("cluster") => {
                    eprintln!("SKIPPED: redis-server cannot run in cluster mode: {e}");
                    return None;
                }
                Err(e) => panic!("cluster node did not start: {e}"),
            }
        }
        let first = nodes[0].addr();
        match info(&first, "cluster").await {
            Ok(i) if i.get("cluster_enabled").map(String::as_str) == Some("1") => {}
            other => {
                eprintln!("SKIPPED: redis-server has no cluster support (INFO cluster: {other:?})");
                return None;
            }
        }
        let me = RedisCluster {
            nodes,
            replicas_per_primary,
            tls: tls.cloned(),
            dir,
        };
        me.create().await;
        me.wait_ready().await;
        Some(me)
    }

    /// `redis-cli --cluster create`: assigns the slots, pairs replicas, and makes the nodes meet.
    async fn create(&self) {
        let mut cmd = tokio::process::Command::new(REDIS_CLI);
        if let Some(tls) = &self.tls {
            cmd.args(["--tls", "--cacert", &tls.ca]);
        }
        cmd.args(["--cluster", "create"])
            .args(self.node_addrs())
            .args([
                "--cluster-replicas",
                &self.replicas_per_primary.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(SETUP_DEADLINE, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("run {REDIS_CLI} --cluster create: {e}"),
            Err(_) => panic!("{REDIS_CLI} --cluster create took over {SETUP_DEADLINE:?}"),
        };
        assert!(
            out.status.success(),
            "{REDIS_CLI} --cluster create failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every node: `cluster_state:ok`, all slots assigned and ok, all nodes known, a full
    /// slot map with its replicas; every replica's link to its primary is up (a replica that
    /// never synced would refuse to fail over).
    async fn wait_ready(&self) {
        let total = self.nodes.len();
        let replicas = self.replicas_per_primary;
        let addrs = self.node_addrs();
        wait_until("the cluster to form", SETUP_DEADLINE, || {
            let addrs = addrs.clone();
            async move {
                for addr in &addrs {
                    let ci: String = query(addr, redis::cmd("CLUSTER").arg("INFO")).await?;
                    let ci = parse_info(&ci);
                    let want = [
                        ("cluster_state", "ok".to_owned()),
                        ("cluster_slots_assigned", CLUSTER_SLOTS.to_string()),
                        ("cluster_slots_ok", CLUSTER_SLOTS.to_string()),
                        ("cluster_known_nodes", total.to_string()),
                    ];
                    for (k, v) in want {
                        if ci.get(k) != Some(&v) {
                            return Err(format!("{addr}: {k}={:?} (want {v})", ci.get(k)));
                        }
                    }
                    let slots = cluster_slots(addr).await?;
                    let covered: usize =
                        slots.iter().map(|r| usize::from(r.end - r.start) + 1).sum();
                    if covered != CLUSTER_SLOTS
                        || slots.iter().any(|r| r.replicas.len() != replicas)
                    {
                        return Err(format!("{addr}: CLUSTER SLOTS not complete yet: {slots:?}"));
                    }
                    if role(addr).await? == "slave" {
                        let repl = info(addr, "replication").await?;
                        if repl.get("master_link_status").map(String::as_str) != Some("up") {
                            return Err(format!("{addr}: replica not in sync: {repl:?}"));
                        }
                    }
                }
                Ok(())
            }
        })
        .await;
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.alive())
    }

    /// Asks live nodes in turn; the first answer wins (views may differ mid-failover).
    async fn ask_any<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut errors = Vec::new();
        for node in self.live() {
            match f(node.addr()).await {
                Ok(v) => return v,
                Err(e) => errors.push(e),
            }
        }
        panic!("no live cluster node answered {what}: {errors:?}")
    }

    async fn keyslot(&self, key: &str) -> u16 {
        self.ask_any("CLUSTER KEYSLOT", |addr| async move {
            query::<u16>(&addr, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await
        })
        .await
    }

    /// Live nodes that say they are primaries (`ROLE`).
    async fn live_primaries(&self) -> Vec<String> {
        let mut out = Vec::new();
        for node in self.live() {
            if role(&node.addr()).await.as_deref() == Ok("master") {
                out.push(node.addr());
            }
        }
        out
    }

    /// `"127.0.0.1:p1,127.0.0.1:p2,…"`, every node ever started (for `REDIS_CLUSTER_NODES`).
    pub fn nodes_csv(&self) -> String {
        self.node_addrs().join(",")
    }

    /// `"127.0.0.1:port"` of every node ever started, killed ones included.
    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// The node that owns `key`'s slot now, per `CLUSTER KEYSLOT` + `CLUSTER SLOTS`.
    pub async fn primary_for_key(&self, key: &str) -> String {
        let slot = self.keyslot(key).await;
        self.ask_any("CLUSTER SLOTS", |addr| async move {
            let slots = cluster_slots(&addr).await?;
            owner_of(&slots, slot)
                .map(|r| r.primary.clone())
                .ok_or_else(|| format!("{addr}: slot {slot} is not served"))
        })
        .await
    }

    /// A graceful `CLUSTER FAILOVER` on a replica of the primary that owns `key`'s slot: the
    /// replica takes the slot over and the old primary, still up, answers MOVED for it from
    /// then on. Returns the old primary's address (then `wait_for_failover`).
    pub async fn manual_failover_for_key(&self, key: &str) -> String {
        let slot = self.keyslot(key).await;
        let range = self
            .ask_any("CLUSTER SLOTS", |addr| async move {
                let slots = cluster_slots(&addr).await?;
                owner_of(&slots, slot)
                    .cloned()
                    .ok_or_else(|| format!("{addr}: slot {slot} is not served"))
            })
            .await;
        let replica = range
            .replicas
            .first()
            .unwrap_or_else(|| panic!("slot {slot} has no replica to fail over to"));
        query::<String>(replica, redis::cmd("CLUSTER").arg("FAILOVER"))
            .await
            .unwrap_or_else(|e| panic!("CLUSTER FAILOVER: {e}"));
        range.primary
    }

    /// SIGKILLs (by PID) the primary that owns `key`'s slot; returns its address.
    pub async fn kill_primary_for_key(&mut self, key: &str) -> String {
        let addr = self.primary_for_key(key).await;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.alive() && n.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} owns {key:?} but is not a live node of ours"));
        node.kill();
        addr
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) by PID to the node at `addr`.
    pub fn signal(&self, addr: &str, signal: &str) {
        let node = self
            .nodes
            .iter()
            .find(|n| n.alive() && n.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is not a live node of ours"));
        let pid = node.child.as_ref().map(Child::id).unwrap_or_default();
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
    }

    /// Waits until every surviving node says `cluster_state:ok` and agrees that `key`'s slot
    /// belongs to one live node other than `old_primary`, which itself answers `ROLE` master.
    pub async fn wait_for_failover(&self, key: &str, old_primary: &str, deadline: Duration) {
        let slot = self.keyslot(key).await;
        let live: Vec<String> = self.live().map(Node::addr).collect();
        let what = if self.replicas_per_primary == 0 {
            format!(
                "slot {slot} to leave {old_primary} (NB: this cluster has no replicas to promote)"
            )
        } else {
            format!("slot {slot} to fail over from {old_primary}")
        };
        wait_until(&what, deadline, || {
            let live = live.clone();
            async move {
                let mut owners = BTreeSet::new();
                for addr in &live {
                    let ci: String = query(addr, redis::cmd("CLUSTER").arg("INFO")).await?;
                    let state = parse_info(&ci).remove("cluster_state");
                    if state.as_deref() != Some("ok") {
                        return Err(format!("{addr}: cluster_state={state:?}"));
                    }
                    let slots = cluster_slots(addr).await?;
                    let owner = owner_of(&slots, slot)
                        .map(|r| r.primary.clone())
                        .ok_or_else(|| format!("{addr}: slot {slot} not served"))?;
                    owners.insert(owner);
                }
                let [owner] = owners.iter().collect::<Vec<_>>()[..] else {
                    return Err(format!("survivors disagree on slot {slot}: {owners:?}"));
                };
                if owner == old_primary || !live.contains(owner) {
                    return Err(format!("slot {slot} still owned by {owner}"));
                }
                match role(owner).await?.as_str() {
                    "master" => Ok(()),
                    r => Err(format!("new owner {owner} has ROLE {r}")),
                }
            }
        })
        .await;
    }

    /// `DBSIZE` summed over the live primaries.
    pub async fn key_count(&self) -> usize {
        let mut total = 0;
        for addr in self.live_primaries().await {
            let n: usize = query(&addr, &redis::cmd("DBSIZE"))
                .await
                .unwrap_or_else(|e| panic!("DBSIZE: {e}"));
            total += n;
        }
        total
    }

    /// Every key matching `pattern`, by `SCAN` over each live primary (sorted, no duplicates).
    pub async fn keys_matching(&self, pattern: &str) -> Vec<String> {
        let mut keys = BTreeSet::new();
        for addr in self.live_primaries().await {
            let mut conn = connect(&addr).await.unwrap_or_else(|e| panic!("SCAN: {e}"));
            let mut cursor = 0u64;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, batch): (u64, Vec<String>) = query_on(&mut conn, &addr, &cmd)
                    .await
                    .unwrap_or_else(|e| panic!("SCAN: {e}"));
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.into_iter().collect()
    }

    /// `CONFIG SET cluster-require-full-coverage` on every live node. Redis' default (`yes`)
    /// makes the whole cluster answer CLUSTERDOWN while any slot is unserved (including the
    /// seconds before a replica takes over); `no` keeps the other slots working.
    pub async fn set_require_full_coverage(&self, on: bool) {
        let value = if on { "yes" } else { "no" };
        for node in self.live() {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("SET")
                .arg("cluster-require-full-coverage")
                .arg(value);
            query::<String>(&node.addr(), &cmd)
                .await
                .unwrap_or_else(|e| panic!("CONFIG SET cluster-require-full-coverage: {e}"));
        }
    }

    /// Last lines of every node's log, for a failing test's message.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = format!("cluster dir {}\n", self.dir.0.display());
        for n in &self.nodes {
            let _ = writeln!(out, "--- {} ---\n{}", n.addr(), n.log_tail(lines));
        }
        out
    }
}

/// One primary, one replica and three Sentinels (quorum 2) watching them, all our processes.
pub struct RedisSentinels {
    master_name: String,
    /// The data nodes: `[initial primary, initial replica]`.
    servers: Vec<Node>,
    sentinels: Vec<Node>,
    dir: TempDir,
}

impl RedisSentinels {
    /// Starts the primary, a `--replicaof` replica, and three `redis-server <conf> --sentinel`
    /// (each with its own writable config, which sentinel rewrites), quorum 2,
    /// down-after-milliseconds 1000, failover-timeout 3000. Waits until the replica is in sync
    /// and every sentinel sees the master, the replica and both other sentinels (fewer known
    /// sentinels would block the failover leader election).
    pub async fn start(master_name: &str) -> RedisSentinels {
        RedisSentinels::start_with(master_name, None).await
    }

    /// `start` with TLS-only data nodes and sentinels (`--port 0 --tls-port P`): replication,
    /// the sentinels' links to the nodes and to each other, and every client speak TLS.
    pub async fn start_tls(master_name: &str, tls: &TopologyTls) -> RedisSentinels {
        RedisSentinels::start_with(master_name, Some(tls)).await
    }

    async fn start_with(master_name: &str, tls: Option<&TopologyTls>) -> RedisSentinels {
        let dir = TempDir::new("sentinel");
        let primary = Node::start_server(free_port, &dir.sub("primary"), tls, &[])
            .await
            .unwrap_or_else(|e| panic!("sentinel primary did not start: {e}"));
        let (primary_addr, primary_port) = (primary.addr(), primary.port);
        let replica_of = format!("127.0.0.1 {primary_port}");
        let replica = Node::start_server(
            free_port,
            &dir.sub("replica"),
            tls,
            &["--replicaof", &replica_of],
        )
        .await
        .unwrap_or_else(|e| panic!("sentinel replica did not start: {e}"));
        let replica_addr = replica.addr();
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let sdir = dir.sub(&format!("sentinel{i}"));
            let conf = sdir.join("sentinel.conf");
            let text = format!(
                "dir {dir}\n\
                 sentinel monitor {master_name} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {master_name} {SENTINEL_DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {master_name} {SENTINEL_FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir = sdir.display()
            );
            std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
            let node = Node::start(free_port, &sdir, Some(&conf), tls, &["--sentinel"])
                .await
                .unwrap_or_else(|e| panic!("sentinel did not start: {e}"));
            sentinels.push(node);
        }
        let me = RedisSentinels {
            master_name: master_name.to_owned(),
            servers: vec![primary, replica],
            sentinels,
            dir,
        };
        me.wait_ready(&primary_addr, &replica_addr).await;
        me
    }

    async fn wait_ready(&self, primary: &str, replica: &str) {
        let sentinels: Vec<String> = self.sentinels.iter().map(Node::addr).collect();
        let name = self.master_name.clone();
        let what = format!("the sentinels to watch {name} at {primary} with replica {replica}");
        wait_until(&what, SETUP_DEADLINE, || {
            let (sentinels, name) = (sentinels.clone(), name.clone());
            async move {
                let repl = info(replica, "replication").await?;
                if repl.get("master_link_status").map(String::as_str) != Some("up") {
                    return Err(format!("{replica}: replica not in sync: {repl:?}"));
                }
                for s in &sentinels {
                    let m: Value =
                        query(s, redis::cmd("SENTINEL").arg("MASTER").arg(&name)).await?;
                    let m = value_map(&m);
                    let flags = m.get("flags").map(String::as_str);
                    let other = m.get("num-other-sentinels").map(String::as_str);
                    let addr = m
                        .get("ip")
                        .zip(m.get("port"))
                        .map(|(i, p)| format!("{i}:{p}"));
                    if flags != Some("master")
                        || other != Some("2")
                        || addr.as_deref() != Some(primary)
                    {
                        return Err(format!("{s}: SENTINEL MASTER {m:?}"));
                    }
                    let rs: Vec<Value> =
                        query(s, redis::cmd("SENTINEL").arg("REPLICAS").arg(&name)).await?;
                    let ok = rs.iter().map(value_map).any(|r| {
                        r.get("name").map(String::as_str) == Some(replica)
                            && r.get("flags").map(String::as_str) == Some("slave")
                            && r.get("master-link-status").map(String::as_str) == Some("ok")
                    });
                    if !ok {
                        return Err(format!("{s}: does not see replica {replica} in sync yet"));
                    }
                }
                Ok(())
            }
        })
        .await;
    }

    /// `"127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3"` (for `REDIS_SENTINELS`).
    pub fn sentinels_csv(&self) -> String {
        self.sentinel_addrs().join(",")
    }

    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::addr).collect()
    }

    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    async fn master_addr_from(&self, sentinel: &str) -> Result<String, String> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("get-master-addr-by-name").arg(&self.master_name);
        let (ip, port): (String, u16) = query(sentinel, &cmd).await?;
        Ok(format!("{ip}:{port}"))
    }

    /// The primary per `SENTINEL get-master-addr-by-name` from the first sentinel that answers.
    pub async fn current_primary(&self) -> String {
        let mut errors = Vec::new();
        for s in self.sentinels.iter().filter(|s| s.alive()) {
            match self.master_addr_from(&s.addr()).await {
                Ok(addr) => return addr,
                Err(e) => errors.push(e),
            }
        }
        panic!(
            "no sentinel named the primary of {}: {errors:?}",
            self.master_name
        )
    }

    /// SIGKILLs (by PID) the current primary; returns its address.
    pub async fn kill_primary(&mut self) -> String {
        let addr = self.current_primary().await;
        let node = self
            .servers
            .iter_mut()
            .find(|n| n.alive() && n.addr() == addr)
            .unwrap_or_else(|| panic!("sentinels name {addr}, which is not a live node of ours"));
        node.kill();
        addr
    }

    /// Forces a failover with `SENTINEL FAILOVER` while the primary stays up (it is demoted to
    /// a replica); returns the old primary's address. Retries while the sentinel answers
    /// NOGOODSLAVE/INPROG, which it does right after start or another failover.
    pub async fn failover(&self) -> String {
        let old = self.current_primary().await;
        let sentinel = self
            .sentinels
            .iter()
            .find(|s| s.alive())
            .map(Node::addr)
            .unwrap_or_else(|| panic!("no live sentinel"));
        let name = self.master_name.clone();
        wait_until("SENTINEL FAILOVER to be accepted", SETUP_DEADLINE, || {
            let (sentinel, name) = (sentinel.clone(), name.clone());
            async move {
                let mut cmd = redis::cmd("SENTINEL");
                cmd.arg("FAILOVER").arg(&name);
                query::<String>(&sentinel, &cmd).await.map(drop)
            }
        })
        .await;
        old
    }

    /// Waits until every live sentinel names the same primary, other than `old_primary`, and
    /// that node answers `ROLE` as master.
    pub async fn wait_for_failover(&self, old_primary: &str, deadline: Duration) {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .filter(|s| s.alive())
            .map(Node::addr)
            .collect();
        let what = format!(
            "the sentinels to fail {} over from {old_primary}",
            self.master_name
        );
        wait_until(&what, deadline, || {
            let sentinels = sentinels.clone();
            async move {
                let mut named = BTreeSet::new();
                for s in &sentinels {
                    named.insert(self.master_addr_from(s).await?);
                }
                let [primary] = named.iter().collect::<Vec<_>>()[..] else {
                    return Err(format!("sentinels disagree: {named:?}"));
                };
                if primary == old_primary {
                    return Err(format!("sentinels still name {old_primary}"));
                }
                match role(primary).await?.as_str() {
                    "master" => Ok(()),
                    r => Err(format!("{primary} has ROLE {r}")),
                }
            }
        })
        .await;
    }

    /// Last lines of every process's log, for a failing test's message.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = format!("sentinel dir {}\n", self.dir.0.display());
        for n in self.servers.iter().chain(&self.sentinels) {
            let _ = writeln!(out, "--- {} ---\n{}", n.addr(), n.log_tail(lines));
        }
        out
    }
}

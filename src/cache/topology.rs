//! Which Redis the shared tier talks to — one node, a Cluster or a Sentinel-managed primary —
//! and the one connection type the rest of the cache uses for all three.
//!
//! The pool stays bb8 for every topology: bb8-redis's manager for a single node, the redis
//! crate's own bb8 support for Cluster (`ClusterClient`) and Sentinel
//! (`AsyncLockedSentinelClient`). The invalidation subscriber cannot go through a pool, so
//! this module also says where it subscribes: the node itself, the Sentinel's current
//! primary, or — in a Cluster — the primary that owns the channel's slot, because PUBLISH is
//! routed there and only that node's reply counts the receivers the writer waits for.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bb8::ManageConnection;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{AsyncLockedSentinelClient, SentinelClient};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::connect::Endpoints;
use crate::config::{NodeAddr, RedisTopology};

/// One pooled connection, whatever the topology. Commands go through [`ConnectionLike`], so
/// the cache's code is the same for all three; a Cluster connection routes each key's
/// command to its slot's primary and follows MOVED/failovers itself. Both are multiplexed:
/// clones share one connection.
#[derive(Clone)]
pub enum RedisConn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Node(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Node(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// The primaries to iterate for a namespace-wide `SCAN`: `None` means "this connection's
    /// node is the whole keyspace" (single node, Sentinel primary).
    pub async fn primaries(&mut self) -> Result<Option<Vec<NodeAddr>>, RedisError> {
        match self {
            RedisConn::Node(_) => Ok(None),
            RedisConn::Cluster(c) => {
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(c).await?;
                Ok(Some(
                    parse_cluster_nodes(&nodes)
                        .into_iter()
                        .filter(|n| n.primary && n.healthy && n.owns_slots)
                        .map(|n| n.addr)
                        .collect(),
                ))
            }
        }
    }

    /// Runs `cmd` on one node (Cluster) or on this connection's node.
    pub async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<&NodeAddr>,
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        match (self, node) {
            (RedisConn::Cluster(c), Some(n)) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: n.host.clone(),
                    port: n.port,
                });
                let v = c.route_command(cmd, routing).await?;
                redis::from_redis_value(v).map_err(RedisError::from)
            }
            (c, _) => cmd.query_async(c).await,
        }
    }

    /// Runs a keyless `cmd` on the primary that owns `key`'s slot (Cluster), or on this
    /// connection's node: a Cluster client otherwise picks a random node, which may be one
    /// it still knows but that is dead.
    pub async fn query_at_key<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        match self {
            RedisConn::Cluster(c) => {
                let route = redis::cluster_routing::Route::with_key(
                    key,
                    redis::cluster_routing::SlotAddr::Master,
                );
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let v = c.route_command(cmd, routing).await?;
                redis::from_redis_value(v).map_err(RedisError::from)
            }
            RedisConn::Node(c) => cmd.query_async(c).await,
        }
    }

    /// Errors after which this connection must not be handed out again: I/O failures, and a
    /// node that is no longer the primary (READONLY after a Sentinel failover demoted it).
    pub fn is_fatal(&self, e: &RedisError) -> bool {
        let demoted = matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        );
        e.is_unrecoverable_error() || e.is_io_error() || e.is_connection_dropped() || demoted
    }
}

/// The part of a key Redis Cluster hashes: the first non-empty `{…}`, else the whole key.
pub fn hash_tag(key: &str) -> &str {
    key.find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}')
                .filter(|close| *close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key)
}

/// Keys grouped so that each group hashes to one slot (same hash tag), in first-seen order.
pub fn group_by_hash_tag(keys: &[String]) -> Vec<Vec<&str>> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for key in keys {
        let tag = hash_tag(key);
        match groups.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, group)) => group.push(key),
            None => groups.push((tag, vec![key])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub addr: NodeAddr,
    pub primary: bool,
    /// Not flagged `fail`/`pfail`/`noaddr`/`handshake`.
    pub healthy: bool,
    pub owns_slots: bool,
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`
pub fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let endpoint = fields.get(1)?.split(['@', ',']).next()?;
            let addr = NodeAddr::parse(endpoint)?;
            let flags: Vec<&str> = fields.get(2)?.split(',').collect();
            let linked =
                fields.get(7).is_some_and(|l| *l == "connected") || flags.contains(&"myself");
            Some(ClusterNode {
                addr,
                primary: flags.contains(&"master"),
                healthy: linked
                    && !flags
                        .iter()
                        .any(|f| matches!(*f, "fail" | "fail?" | "noaddr" | "handshake")),
                owns_slots: fields.len() > 8,
            })
        })
        .collect()
}

/// Makes pooled connections for the configured topology (bb8 managers underneath).
#[derive(Clone)]
pub enum Connector {
    Single(Box<bb8_redis::RedisConnectionManager>),
    Cluster(Box<ClusterClient>),
    Sentinel(Arc<AsyncLockedSentinelClient>),
}

impl Connector {
    pub fn new(
        topology: &RedisTopology,
        endpoints: &Endpoints,
        budget: Duration,
    ) -> Result<Connector, RedisError> {
        match topology {
            RedisTopology::Single { url } => Ok(Connector::Single(Box::new(
                bb8_redis::RedisConnectionManager::new(endpoints.url_info(url)?)?,
            ))),
            RedisTopology::Cluster { nodes, auth } => {
                let client = endpoints.cluster_client(
                    nodes,
                    auth,
                    budget.max(Duration::from_millis(250)),
                )?;
                Ok(Connector::Cluster(Box::new(client)))
            }
            RedisTopology::Sentinel {
                sentinels,
                master,
                auth,
                sentinel_password,
            } => {
                let client =
                    endpoints.sentinel_discovery(sentinels, master, auth, sentinel_password)?;
                Ok(Connector::Sentinel(Arc::new(
                    AsyncLockedSentinelClient::new(client),
                )))
            }
        }
    }

    pub async fn connect(&self) -> Result<RedisConn, RedisError> {
        match self {
            Connector::Single(m) => m.connect().await.map(RedisConn::Node),
            Connector::Cluster(c) => c.as_ref().connect().await.map(RedisConn::Cluster),
            Connector::Sentinel(s) => s.as_ref().connect().await.map(RedisConn::Node),
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Connector::Single(_) => "Connector::Single",
            Connector::Cluster(_) => "Connector::Cluster",
            Connector::Sentinel(_) => "Connector::Sentinel",
        })
    }
}

/// Where the invalidation subscriber connects, resolved again at every (re)connect.
pub struct SubscriberTarget {
    topology: RedisTopology,
    endpoints: Endpoints,
    sentinel: Option<tokio::sync::Mutex<SentinelClient>>,
}

impl SubscriberTarget {
    pub fn new(
        topology: &RedisTopology,
        endpoints: &Endpoints,
    ) -> Result<SubscriberTarget, RedisError> {
        let sentinel = match topology {
            RedisTopology::Sentinel {
                sentinels,
                master,
                auth,
                sentinel_password,
            } => Some(tokio::sync::Mutex::new(endpoints.sentinel_discovery(
                sentinels,
                master,
                auth,
                sentinel_password,
            )?)),
            _ => None,
        };
        Ok(SubscriberTarget {
            topology: topology.clone(),
            endpoints: endpoints.clone(),
            sentinel,
        })
    }

    /// A client for the node to subscribe on, and that node's address. `attempt` rotates
    /// through the Cluster's seeds so that one dead seed does not block resubscribing.
    pub async fn resolve(
        &self,
        channel: &str,
        attempt: u32,
    ) -> Result<(redis::Client, Option<NodeAddr>), RedisError> {
        match &self.topology {
            RedisTopology::Single { url } => Ok((self.endpoints.url_client(url)?, None)),
            RedisTopology::Sentinel { .. } => {
                let Some(s) = &self.sentinel else {
                    return Err(not_configured());
                };
                let client = s.lock().await.async_get_client().await?;
                let primary = address_of(&client);
                Ok((client, primary))
            }
            RedisTopology::Cluster { nodes, auth } => {
                let seed = &nodes[attempt as usize % nodes.len().max(1)];
                let mut conn = self
                    .endpoints
                    .node_client(seed, auth)?
                    .get_multiplexed_async_connection()
                    .await?;
                let owner = slot_owner(&mut conn, channel).await?;
                Ok((self.endpoints.node_client(&owner, auth)?, Some(owner)))
            }
        }
    }
}

impl SubscriberTarget {
    /// The primary the Sentinels name now (checked to answer as a primary); `None` outside
    /// Sentinel or when no sentinel answers.
    pub async fn sentinel_primary(&self) -> Option<NodeAddr> {
        let sentinel = self.sentinel.as_ref()?;
        let client = sentinel.lock().await.async_get_client().await.ok()?;
        address_of(&client)
    }
}

fn address_of(client: &redis::Client) -> Option<NodeAddr> {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => Some(NodeAddr {
            host: host.clone(),
            port: *port,
        }),
        _ => None,
    }
}

fn not_configured() -> RedisError {
    RedisError::from((redis::ErrorKind::Client, "sentinel client not configured"))
}

/// The primary that currently owns `key`'s slot (asked of any cluster member).
pub async fn slot_owner(conn: &mut impl ConnectionLike, key: &str) -> Result<NodeAddr, RedisError> {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await?;
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    owner_in_cluster_slots(&slots, slot).ok_or_else(|| {
        RedisError::from((
            redis::ErrorKind::Client,
            "no primary owns the invalidation channel's slot",
        ))
    })
}

/// `CLUSTER SLOTS` is `[[start, end, [host, port, id…], replicas…], …]`.
fn owner_in_cluster_slots(slots: &Value, slot: i64) -> Option<NodeAddr> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(parts) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&slot) {
            return None;
        }
        let host = match primary.first()? {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let Value::Int(port) = primary.get(1)? else {
            return None;
        };
        Some(NodeAddr {
            host,
            port: u16::try_from(*port).ok()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeAuth;

    #[test]
    fn node_addresses_parse_and_print() {
        let a = NodeAddr::parse("10.0.0.1:7000").unwrap();
        assert_eq!(a.to_string(), "10.0.0.1:7000");
        let v6 = NodeAddr::parse("[::1]:7001").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:7001");
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:99999",
            ":7000",
            "a b:1",
        ] {
            assert!(NodeAddr::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn keys_group_by_the_slot_redis_hashes() {
        assert_eq!(hash_tag("gwd:v3:workflow:{loc1}:wf"), "loc1");
        assert_eq!(hash_tag("a{}b{c}"), "a{}b{c}");
        assert_eq!(hash_tag("no-tag"), "no-tag");
        assert_eq!(hash_tag("x{open"), "x{open");
        let keys: Vec<String> = ["p:{a}:1", "p:{b}:1", "p:{a}:2", "plain"]
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            group_by_hash_tag(&keys),
            vec![vec!["p:{a}:1", "p:{a}:2"], vec!["p:{b}:1"], vec!["plain"]]
        );
    }

    #[test]
    fn cluster_nodes_output_is_understood() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host-b master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 disconnected 10923-16383
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
";
        let nodes = parse_cluster_nodes(text);
        assert_eq!(nodes.len(), 4);
        let live_primaries: Vec<String> = nodes
            .iter()
            .filter(|n| n.primary && n.healthy && n.owns_slots)
            .map(|n| n.addr.to_string())
            .collect();
        assert_eq!(live_primaries, ["127.0.0.1:30002", "127.0.0.1:30001"]);
        assert!(!nodes[0].primary && nodes[0].healthy && !nodes[0].owns_slots);
    }

    #[test]
    fn slot_owner_is_read_from_cluster_slots() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let slots = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
                node(7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node(7001)]),
        ]);
        assert_eq!(
            owner_in_cluster_slots(&slots, 6000).unwrap().to_string(),
            "127.0.0.1:7001"
        );
        assert_eq!(owner_in_cluster_slots(&slots, 0).unwrap().port, 7000);
        assert!(owner_in_cluster_slots(&Value::Nil, 1).is_none());
    }

    #[test]
    fn descriptions_never_show_passwords() {
        let auth = NodeAuth {
            username: Some("app".into()),
            password: Some("hunter2".into()),
        };
        let nodes = vec![NodeAddr::parse("127.0.0.1:7000").unwrap()];
        let all = [
            RedisTopology::single("redis://:hunter2@cache:6379"),
            RedisTopology::Cluster {
                nodes: nodes.clone(),
                auth: auth.clone(),
            },
            RedisTopology::Sentinel {
                sentinels: nodes,
                master: "mymaster".into(),
                auth,
                sentinel_password: Some("hunter2".into()),
            },
        ];
        for t in all {
            assert!(!format!("{t:?}").contains("hunter2"));
            assert!(!t.describe().contains("hunter2"));
        }
    }
}

//! Health's view of the Redis topology: how many nodes there are and how many answer,
//! found without opening connections per health call.
//!
//! A Cluster is asked through the pool: one `CLUSTER NODES` (the Cluster's own view of which
//! members are linked and not failing) on the primary owning the invalidation channel.
//! Sentinels are not in the pool, so the probe keeps one multiplexed connection per sentinel
//! and reuses it; a connection is opened again only after it failed. Addresses (the
//! Sentinel-managed primary) are kept apart so health can leave them out for callers that
//! are not operators.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use super::connect::Endpoints;
use super::topology::parse_cluster_nodes;
use super::{Cache, CacheHealth, CacheType, HealthStatus, Inner};
use crate::config::{NodeAddr, RedisTopology};

impl Cache {
    /// CONTRACT §5 cache check. Answers within ~300 ms even when Redis hangs: an open
    /// breaker answers at once, otherwise one command bounded by 250 ms through the pool
    /// (PING; `CLUSTER NODES` on a Cluster, which also counts its members), plus, on Sentinel,
    /// PINGs on the kept sentinel connections. No connection is opened per call.
    pub async fn health(&self) -> CacheHealth {
        let i = &self.0;
        let size = i.l1.as_ref().map_or(0, |c| c.len() as u64);
        let Some(l2) = i.l2.as_ref() else {
            return CacheHealth {
                status: HealthStatus::Healthy,
                kind: CacheType::InMemory,
                connected: None,
                size,
                message: Some("Redis not configured".into()),
                topology: None,
            };
        };
        let budget = Duration::from_millis(250);
        let usable = !i.shut.load(Ordering::Acquire) && i.breaker.allows();
        let (ok, topology) = match &l2.topology {
            RedisTopology::Cluster { nodes, .. } => {
                let answer = if usable {
                    i.cluster_nodes(budget).await
                } else {
                    None
                };
                let health = TopologyHealth::cluster(answer.as_deref(), nodes.len());
                (answer.is_some(), health)
            }
            RedisTopology::Sentinel { sentinels, .. } => {
                let pinged = async { usable && i.ping(budget).await };
                let sentinels_health = async {
                    match &i.sentinel_probe {
                        Some(probe) => probe.probe(budget).await,
                        None => TopologyHealth {
                            kind: "sentinel",
                            nodes: NodeCounts {
                                total: sentinels.len(),
                                reachable: 0,
                            },
                            primary: None,
                        },
                    }
                };
                futures::join!(pinged, sentinels_health)
            }
            RedisTopology::Single { .. } => {
                let ok = usable && i.ping(budget).await;
                (ok, TopologyHealth::single(ok))
            }
        };
        let topology = Some(topology);
        if ok {
            CacheHealth {
                status: HealthStatus::Healthy,
                kind: CacheType::Redis,
                connected: Some(true),
                size,
                message: None,
                topology,
            }
        } else {
            CacheHealth {
                status: HealthStatus::Degraded,
                kind: CacheType::InMemory,
                connected: Some(false),
                size,
                // A TLS failure is a configuration problem an operator must fix, not an
                // outage to wait out: say which setting to look at.
                message: Some(match l2.endpoints.tls_problem() {
                    Some(reason) => format!("Redis unavailable, using fallback ({reason})"),
                    None => "Redis unavailable, using fallback".into(),
                }),
                topology,
            }
        }
    }
}

impl Inner {
    /// `CLUSTER NODES`, asked through the pool of the primary owning the channel's slot.
    async fn cluster_nodes(&self, budget: Duration) -> Option<String> {
        let channel = self.channel.clone();
        self.l2_run(budget, move |c| {
            async move {
                c.query_at_key::<String>(&channel, redis::cmd("CLUSTER").arg("NODES").clone())
                    .await
            }
            .boxed()
        })
        .await
        .ok()
    }
}

/// `TopologyHealth::kind`'s values.
fn topology_kind_schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::string_enum(["single", "cluster", "sentinel"])
}

/// Health's `checks.cache.topology`: what is configured and how much of it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TopologyHealth {
    #[schema(schema_with = topology_kind_schema)]
    pub kind: &'static str,
    pub nodes: NodeCounts,
    /// `host:port` of the primary in use (Sentinel), when known. Shown to operators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub primary: Option<String>,
}

/// Nodes known (the node; every Cluster member; the Sentinels) and how many answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeCounts {
    pub total: usize,
    pub reachable: usize,
}

impl TopologyHealth {
    pub fn single(reachable: bool) -> TopologyHealth {
        TopologyHealth {
            kind: "single",
            nodes: NodeCounts {
                total: 1,
                reachable: usize::from(reachable),
            },
            primary: None,
        }
    }

    /// From a `CLUSTER NODES` answer (`None`: no answer, so only the seeds are known).
    pub fn cluster(nodes_text: Option<&str>, seeds: usize) -> TopologyHealth {
        let nodes = match nodes_text {
            Some(text) => {
                let members = parse_cluster_nodes(text);
                NodeCounts {
                    total: members.len(),
                    reachable: members.iter().filter(|n| n.healthy).count(),
                }
            }
            None => NodeCounts {
                total: seeds,
                reachable: 0,
            },
        };
        TopologyHealth {
            kind: "cluster",
            nodes,
            primary: None,
        }
    }

    /// The same counts without any address.
    pub fn without_addresses(mut self) -> TopologyHealth {
        self.primary = None;
        self
    }
}

/// Persistent connections to the Sentinels, for health.
pub struct SentinelProbe {
    sentinels: Vec<NodeAddr>,
    master: String,
    password: Option<String>,
    endpoints: Endpoints,
    connections: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
}

impl SentinelProbe {
    /// `None` unless the topology is Sentinel.
    pub fn for_topology(topology: &RedisTopology, endpoints: &Endpoints) -> Option<SentinelProbe> {
        let RedisTopology::Sentinel {
            sentinels,
            master,
            sentinel_password,
            ..
        } = topology
        else {
            return None;
        };
        Some(SentinelProbe {
            sentinels: sentinels.clone(),
            master: master.clone(),
            password: sentinel_password.clone(),
            endpoints: endpoints.clone(),
            connections: tokio::sync::Mutex::new(vec![None; sentinels.len()]),
        })
    }

    /// PINGs every sentinel at once on its kept connection (each bounded by `budget`) and asks
    /// the first that answers for the primary's address.
    pub async fn probe(&self, budget: Duration) -> TopologyHealth {
        // Health probes are already one at a time per instance; the lock only keeps two
        // callers from opening the same connection twice.
        let mut connections = self.connections.lock().await;
        let checks = connections
            .iter_mut()
            .zip(&self.sentinels)
            .map(|(slot, addr)| self.ping(slot, addr, budget));
        let answered = futures::future::join_all(checks).await;
        let reachable = answered.iter().filter(|ok| **ok).count();
        let mut primary = None;
        for (slot, ok) in connections.iter_mut().zip(answered) {
            if !ok {
                continue;
            }
            if let Some(conn) = slot.as_mut() {
                primary = self.ask_primary(conn, budget).await;
                if primary.is_some() {
                    break;
                }
            }
        }
        TopologyHealth {
            kind: "sentinel",
            nodes: NodeCounts {
                total: self.sentinels.len(),
                reachable,
            },
            primary,
        }
    }

    async fn ping(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        addr: &NodeAddr,
        budget: Duration,
    ) -> bool {
        let answered = tokio::time::timeout(budget, async {
            if slot.is_none() {
                let conn = self
                    .endpoints
                    .sentinel_client(addr, &self.password)?
                    .get_multiplexed_async_connection()
                    .await?;
                *slot = Some(conn);
            }
            match slot.as_mut() {
                Some(conn) => redis::cmd("PING").query_async::<String>(conn).await,
                None => Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "no connection",
                ))),
            }
        })
        .await;
        let ok = matches!(answered, Ok(Ok(_)));
        if !ok {
            // Opened again at the next probe: a hung or reset connection is not reused.
            *slot = None;
        }
        ok
    }

    async fn ask_primary(
        &self,
        conn: &mut MultiplexedConnection,
        budget: Duration,
    ) -> Option<String> {
        let asked = tokio::time::timeout(
            budget,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async::<Option<(String, u16)>>(conn),
        )
        .await;
        match asked {
            Ok(Ok(Some((host, port)))) => Some(NodeAddr { host, port }.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_counts_come_from_the_clusters_own_view() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 disconnected 10923-16383
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
";
        let health = TopologyHealth::cluster(Some(text), 2);
        assert_eq!(
            health.nodes,
            NodeCounts {
                total: 4,
                reachable: 3
            }
        );
        assert_eq!(
            TopologyHealth::cluster(None, 2).nodes,
            NodeCounts {
                total: 2,
                reachable: 0
            }
        );
        let json = serde_json::to_string(&health).unwrap();
        assert!(!json.contains("127.0.0.1"), "{json}");
    }

    #[test]
    fn addresses_are_dropped_for_callers_that_are_not_operators() {
        let health = TopologyHealth {
            kind: "sentinel",
            nodes: NodeCounts {
                total: 3,
                reachable: 3,
            },
            primary: Some("10.0.0.5:6379".into()),
        };
        let json = serde_json::to_string(&health.without_addresses()).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"sentinel","nodes":{"total":3,"reachable":3}}"#
        );
    }
}

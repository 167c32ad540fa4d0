//! Where the shared cache tier's Redis is, as configured: one node, a Cluster or a
//! Sentinel-managed primary, with the credentials of its nodes. Plain data; the cache builds
//! its connections from it (`cache::topology`).

use std::fmt;

use url::Url;

/// Replaces the password of a URL with `***` so it can be logged or shown.
pub fn mask_url(url: &Url) -> String {
    let mut masked = url.clone();
    if masked.password().is_some() {
        // Only fails for URLs that cannot have credentials, which never carry a password.
        let _ = masked.set_password(Some("***"));
    }
    masked.to_string()
}

/// `host:port` of one Redis node or Sentinel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    /// Parses `host:port` (`[v6]:port` for IPv6).
    pub fn parse(raw: &str) -> Option<NodeAddr> {
        let (host, port) = raw.trim().rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
        valid_host.then(|| NodeAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Credentials for data nodes (Cluster members, the Sentinel-managed primary).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NodeAuth {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The shared tier's topology, chosen by configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// `REDIS_URL`.
    Single { url: String },
    /// `REDIS_CLUSTER_NODES` (seed nodes; the rest is discovered).
    Cluster {
        nodes: Vec<NodeAddr>,
        auth: NodeAuth,
    },
    /// `REDIS_SENTINELS` + `REDIS_SENTINEL_MASTER`.
    Sentinel {
        sentinels: Vec<NodeAddr>,
        master: String,
        auth: NodeAuth,
        sentinel_password: Option<String>,
    },
}

impl fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl RedisTopology {
    pub fn single(url: impl Into<String>) -> RedisTopology {
        RedisTopology::Single { url: url.into() }
    }

    /// `single`, `cluster` or `sentinel` (health's `topology.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            RedisTopology::Single { .. } => "single",
            RedisTopology::Cluster { .. } => "cluster",
            RedisTopology::Sentinel { .. } => "sentinel",
        }
    }

    /// For logs: never contains a password.
    pub fn describe(&self) -> String {
        match self {
            RedisTopology::Single { url } => match url::Url::parse(url) {
                Ok(u) => format!("single node {}", mask_url(&u)),
                Err(_) => "single node (unparsable URL)".into(),
            },
            RedisTopology::Cluster { nodes, .. } => format!("cluster via {}", join(nodes)),
            RedisTopology::Sentinel {
                sentinels, master, ..
            } => format!("sentinel master {master:?} via {}", join(sentinels)),
        }
    }
}

fn join(nodes: &[NodeAddr]) -> String {
    nodes
        .iter()
        .map(NodeAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// How the shared tier's connections are encrypted: the same settings for every connection
/// (pools, the invalidation subscriber, health's probes, Cluster and Sentinel discovery).
/// `Debug` names the files, never their contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// Data nodes speak TLS: `REDIS_TLS=true`, a `rediss://` `REDIS_URL`, or `rediss://` seeds.
    pub enabled: bool,
    /// The Sentinels speak TLS too (`REDIS_SENTINEL_TLS`, default: `enabled`).
    pub sentinels: bool,
    /// `REDIS_TLS_CA_FILE`: PEM roots that replace the system roots (a private CA).
    pub ca: Option<PemFile>,
    /// `REDIS_TLS_CERT_FILE` + `REDIS_TLS_KEY_FILE`: a client certificate for mutual TLS.
    pub client: Option<(PemFile, PemFile)>,
    /// `REDIS_TLS_INSECURE_SKIP_VERIFY` (development only): certificates are not checked.
    pub skip_verify: bool,
}

impl RedisTls {
    /// Whether any connection of the shared tier uses TLS.
    pub fn any(&self) -> bool {
        self.enabled || self.sentinels
    }
}

/// A PEM file read at startup: its path (for messages) and its bytes (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: String,
    pub pem: Vec<u8>,
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PemFile({:?})", self.path)
    }
}

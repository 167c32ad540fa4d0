//! The one place where the shared tier's connection settings are turned into the Redis
//! client's: every address (a single node's URL, Cluster seeds and members, the Sentinels and
//! the primary they name) gets the same TLS mode, roots and client certificate here, so the
//! pools, the invalidation subscriber, health's probes and Cluster/Sentinel discovery cannot
//! disagree about encryption. There is no plaintext fallback: a node that fails the TLS
//! handshake is an unreachable node, and the reason is kept for health.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    TlsCertificates, TlsMode,
};

use crate::config::{NodeAddr, NodeAuth, RedisTls};

/// Builds connection infos and clients for one configured TLS setting (cheap to clone).
#[derive(Clone)]
pub struct Endpoints {
    tls: RedisTls,
    /// The last TLS failure of a connection attempt, cleared by the next success.
    problem: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("tls", &self.tls.enabled)
            .field("sentinels_tls", &self.tls.sentinels)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    pub fn new(tls: &RedisTls) -> Endpoints {
        if tls.skip_verify {
            log::warn!(
                "cache: REDIS_TLS_INSECURE_SKIP_VERIFY is on: Redis certificates are NOT verified \
                 (anyone on the path can read and change cached data); development only"
            );
        }
        Endpoints {
            tls: tls.clone(),
            problem: Arc::default(),
        }
    }

    pub fn tls(&self) -> &RedisTls {
        &self.tls
    }

    /// The private roots and the client certificate, when any is configured (else the system
    /// roots and no client certificate).
    fn certificates(&self) -> Option<TlsCertificates> {
        if self.tls.ca.is_none() && self.tls.client.is_none() {
            return None;
        }
        Some(TlsCertificates {
            client_tls: self.tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.pem.clone(),
                client_key: key.pem.clone(),
            }),
            root_cert: self.tls.ca.as_ref().map(|ca| ca.pem.clone()),
        })
    }

    fn mode(&self) -> TlsMode {
        if self.tls.skip_verify {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        }
    }

    /// Attaches the roots and client certificate to a `rediss://` info.
    fn with_certificates(&self, info: ConnectionInfo) -> Result<ConnectionInfo, RedisError> {
        match (&info.addr(), self.certificates()) {
            (ConnectionAddr::TcpTls { .. }, Some(certs)) => {
                Ok(redis::Client::build_with_tls(info, certs)?
                    .get_connection_info()
                    .clone())
            }
            _ => Ok(info),
        }
    }

    fn addr_info(
        &self,
        addr: &NodeAddr,
        auth: &NodeAuth,
        tls: bool,
    ) -> Result<ConnectionInfo, RedisError> {
        let url = match (tls, self.tls.skip_verify) {
            (false, _) => format!("redis://{addr}"),
            (true, false) => format!("rediss://{addr}"),
            (true, true) => format!("rediss://{addr}/#insecure"),
        };
        let mut info = url.into_connection_info()?;
        let mut redis_info = info.redis_settings().clone();
        if let Some(u) = &auth.username {
            redis_info = redis_info.set_username(u);
        }
        if let Some(p) = &auth.password {
            redis_info = redis_info.set_password(p);
        }
        info = info.set_redis_settings(redis_info);
        if tls {
            info = self.with_certificates(info)?;
        }
        Ok(info)
    }

    /// A data node (Cluster member, Sentinel-managed primary) with the data nodes' credentials.
    pub fn node_info(
        &self,
        addr: &NodeAddr,
        auth: &NodeAuth,
    ) -> Result<ConnectionInfo, RedisError> {
        self.addr_info(addr, auth, self.tls.enabled)
    }

    pub fn node_client(
        &self,
        addr: &NodeAddr,
        auth: &NodeAuth,
    ) -> Result<redis::Client, RedisError> {
        redis::Client::open(self.node_info(addr, auth)?)
    }

    /// A Sentinel (its own password, no username).
    pub fn sentinel_client(
        &self,
        addr: &NodeAddr,
        password: &Option<String>,
    ) -> Result<redis::Client, RedisError> {
        let auth = NodeAuth {
            username: None,
            password: password.clone(),
        };
        redis::Client::open(self.addr_info(addr, &auth, self.tls.sentinels)?)
    }

    /// `REDIS_URL` (already `rediss://` when TLS is on: the configuration upgrades it).
    pub fn url_info(&self, url: &str) -> Result<ConnectionInfo, RedisError> {
        let info = match (url.starts_with("rediss://"), self.tls.skip_verify) {
            (true, true) => format!("{url}#insecure").into_connection_info()?,
            _ => url.into_connection_info()?,
        };
        self.with_certificates(info)
    }

    pub fn url_client(&self, url: &str) -> Result<redis::Client, RedisError> {
        redis::Client::open(self.url_info(url)?)
    }

    /// A Cluster client: the seeds carry the TLS mode, and the members it discovers get the
    /// same mode and certificates.
    pub fn cluster_client(
        &self,
        nodes: &[NodeAddr],
        auth: &NodeAuth,
        connect_timeout: Duration,
    ) -> Result<ClusterClient, RedisError> {
        let seeds = nodes
            .iter()
            .map(|n| self.node_info(n, auth))
            .collect::<Result<Vec<_>, _>>()?;
        // Retries inside the client would outlive the L2 budget; the breaker and the
        // fallback to Postgres already handle a failing node.
        let mut builder = ClusterClient::builder(seeds)
            .retries(1)
            .connection_timeout(connect_timeout);
        if self.tls.enabled {
            builder = builder.tls(self.mode());
            if let (Some(certs), false) = (self.certificates(), self.tls.skip_verify) {
                builder = builder.certs(certs);
            }
        }
        builder.build()
    }

    /// A Sentinel client that finds the primary: the Sentinels and the primary each with
    /// their own credentials and TLS mode.
    pub fn sentinel_discovery(
        &self,
        sentinels: &[NodeAddr],
        master: &str,
        auth: &NodeAuth,
        sentinel_password: &Option<String>,
    ) -> Result<SentinelClient, RedisError> {
        let addrs = sentinels.iter().map(|s| {
            if self.tls.sentinels {
                ConnectionAddr::TcpTls {
                    host: s.host.clone(),
                    port: s.port,
                    insecure: self.tls.skip_verify,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(s.host.clone(), s.port)
            }
        });
        let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?;
        if let Some(p) = sentinel_password {
            builder = builder.set_client_to_sentinel_password(p);
        }
        if let Some(u) = &auth.username {
            builder = builder.set_client_to_redis_username(u);
        }
        if let Some(p) = &auth.password {
            builder = builder.set_client_to_redis_password(p);
        }
        let certs = self.certificates().filter(|_| !self.tls.skip_verify);
        if self.tls.sentinels {
            builder = builder.set_client_to_sentinel_tls_mode(self.mode());
            if let Some(c) = &certs {
                builder = builder.set_client_to_sentinel_certificates(c.clone());
            }
        }
        if self.tls.enabled {
            builder = builder.set_client_to_redis_tls_mode(self.mode());
            if let Some(c) = certs {
                builder = builder.set_client_to_redis_certificates(c);
            }
        }
        builder.build()
    }

    /// Notes the outcome of a connection attempt: a TLS failure is kept (as a reason without
    /// secrets) until a connection succeeds.
    pub fn note_connect(&self, result: Result<(), &RedisError>) {
        let mut problem = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => *problem = None,
            Err(e) => {
                if let Some(reason) = tls_reason(e) {
                    *problem = Some(reason);
                }
            }
        }
    }

    /// Why the last connection attempt failed its TLS handshake, if it did.
    pub fn tls_problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A TLS failure told in words that name the setting to look at; `None` for other errors.
/// Built from fixed phrases only, so no address, password or certificate text leaks.
pub fn tls_reason(e: &RedisError) -> Option<String> {
    let text = format!("{e} {e:?}");
    let has = |needle: &str| text.contains(needle);
    let reason = if has("UnknownIssuer") {
        "the server's certificate is not signed by a trusted CA (check REDIS_TLS_CA_FILE)"
    } else if has("NotValidForName") {
        "the server's certificate does not name the host connected to"
    } else if has("Expired") {
        "the server's certificate has expired or is not yet valid"
    } else if has("CertificateRequired") || has("certificate required") {
        "the server requires a client certificate (set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE)"
    } else if has("UnknownCA") || has("BadCertificate") || has("unknown ca") {
        "the server rejected the client certificate (REDIS_TLS_CERT_FILE)"
    } else if has("InvalidContentType") || has("CorruptMessage") || has("corrupt message") {
        "the server did not answer TLS (is it a plaintext port?)"
    } else if has("invalid peer certificate") || has("InvalidCertificate") {
        "the server's certificate was rejected"
    } else if has("AlertReceived") || has("received fatal alert") || has("HandshakeFailure") {
        "the server refused the TLS handshake"
    } else {
        return None;
    };
    Some(format!("TLS: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_reasons_are_fixed_phrases() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        let reason = tls_reason(&RedisError::from(io)).unwrap();
        assert!(reason.contains("REDIS_TLS_CA_FILE"), "{reason}");
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(tls_reason(&refused).is_none());
    }

    #[test]
    fn every_address_gets_the_same_tls_mode() {
        let tls = RedisTls {
            enabled: true,
            sentinels: true,
            ..RedisTls::default()
        };
        let e = Endpoints::new(&tls);
        let addr = NodeAddr::parse("127.0.0.1:7000").unwrap();
        let info = e.node_info(&addr, &NodeAuth::default()).unwrap();
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        ));
        let plain = Endpoints::new(&RedisTls::default());
        let info = plain.node_info(&addr, &NodeAuth::default()).unwrap();
        assert!(matches!(info.addr(), ConnectionAddr::Tcp(..)));
    }
}

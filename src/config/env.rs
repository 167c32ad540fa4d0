//! Reading variables: the lookup helpers that turn one environment variable into a typed
//! value or a [`ConfigError`] naming it, and the parsers of the compound values (URLs, node
//! lists, the Redis topology).

use std::time::Duration;

use url::Url;

use super::redis::{NodeAddr, NodeAuth, PemFile, RedisTls, RedisTopology};
use super::{AppEnvironment, ConfigError, PoolerMode};

const POSTGRES_URL_EXPECTED: &str =
    "a Postgres URL like postgres://user:password@localhost:5432/ghl_workflow_debugger";

pub(super) struct Lookup<'a, F: Fn(&str) -> Option<String>>(pub(super) &'a F);

impl<F: Fn(&str) -> Option<String>> Lookup<'_, F> {
    /// A set, non-blank value, trimmed.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: Option<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::new(name, format!("is invalid: expected {expected}"))),
            None => default
                .ok_or_else(|| ConfigError::new(name, format!("is missing: expected {expected}"))),
        }
    }

    pub(super) fn optional_parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|raw| {
                raw.parse()
                    .map_err(|_| ConfigError::new(name, format!("is invalid: expected {expected}")))
            })
            .transpose()
    }

    pub(super) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::new(name, "is invalid: expected true or false")),
        }
    }

    pub(super) fn seconds(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.parsed(name, Some(default), "a whole number of seconds")
            .map(Duration::from_secs)
    }

    pub(super) fn bounded_seconds(
        &self,
        name: &'static str,
        default: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, max, "a whole number of seconds")
            .map(Duration::from_secs)
    }

    /// A whole number from 1 to `max` (`what` says of what, in the error).
    pub(super) fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        max: T,
        what: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display,
    {
        let expected = format!("{what} from 1 to {max}");
        let value: T = self.parsed(name, Some(default), &expected)?;
        if value < T::from(1) || value > max {
            return Err(ConfigError::new(
                name,
                format!("is out of range: expected {expected}"),
            ));
        }
        Ok(value)
    }

    pub(super) fn millis(
        &self,
        name: &'static str,
        default: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, max, "a whole number of milliseconds")
            .map(Duration::from_millis)
    }

    pub(super) fn secret(&self, name: &str) -> Option<String> {
        self.get(name)
    }

    pub(super) fn environment(&self) -> Result<AppEnvironment, ConfigError> {
        match self
            .get("APP_ENV")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("development") => Ok(AppEnvironment::Development),
            Some("production") => Ok(AppEnvironment::Production),
            Some(_) => Err(ConfigError::new(
                "APP_ENV",
                "is invalid: expected development or production",
            )),
        }
    }

    pub(super) fn database_url(&self) -> Result<Url, ConfigError> {
        self.postgres_url("DATABASE_URL")?.ok_or_else(|| {
            ConfigError::new(
                "DATABASE_URL",
                format!("is missing: expected {POSTGRES_URL_EXPECTED}"),
            )
        })
    }

    /// An optional Postgres URL, validated like `DATABASE_URL`.
    pub(super) fn postgres_url(&self, name: &'static str) -> Result<Option<Url>, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let invalid = || {
            ConfigError::new(
                name,
                format!("is invalid: expected {POSTGRES_URL_EXPECTED}"),
            )
        };
        // The parse error is not shown: it could quote the secret-bearing URL.
        let url = Url::parse(&raw).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "postgres" | "postgresql") || url.host_str().is_none() {
            return Err(invalid());
        }
        Ok(Some(url))
    }

    pub(super) fn pooler(&self) -> Result<PoolerMode, ConfigError> {
        match self
            .get("DATABASE_POOLER")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("none" | "off" | "session") => Ok(PoolerMode::None),
            Some("transaction") => Ok(PoolerMode::Transaction),
            Some(_) => Err(ConfigError::new(
                "DATABASE_POOLER",
                "is invalid: expected transaction (PgBouncer/Supavisor in transaction mode) or none",
            )),
        }
    }

    /// At most one of `REDIS_URL`, `REDIS_CLUSTER_NODES` and `REDIS_SENTINELS` picks the
    /// topology; `REDIS_USERNAME`/`REDIS_PASSWORD` are the data nodes' credentials for the
    /// last two (a single node carries them in its URL).
    pub(super) fn redis_topology(&self) -> Result<Option<RedisTopology>, ConfigError> {
        let chosen: Vec<&'static str> = ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS"]
            .into_iter()
            .filter(|name| self.get(name).is_some())
            .collect();
        if chosen.len() > 1 {
            return Err(ConfigError::new(
                chosen[1],
                format!(
                    "conflicts with {}: set only one of REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS",
                    chosen[0]
                ),
            ));
        }
        if self.get("REDIS_SENTINEL_MASTER").is_some() && chosen != ["REDIS_SENTINELS"] {
            return Err(ConfigError::new(
                "REDIS_SENTINEL_MASTER",
                "is set without REDIS_SENTINELS: expected both, or neither",
            ));
        }
        let auth = NodeAuth {
            username: self.get("REDIS_USERNAME"),
            password: self.get("REDIS_PASSWORD"),
        };
        match chosen.first().copied() {
            None => Ok(None),
            Some("REDIS_URL") => self.redis_url().map(Some),
            Some("REDIS_CLUSTER_NODES") => Ok(Some(RedisTopology::Cluster {
                nodes: self.node_list("REDIS_CLUSTER_NODES")?,
                auth,
            })),
            Some(_) => {
                let master = self.get("REDIS_SENTINEL_MASTER").ok_or_else(|| {
                    ConfigError::new(
                        "REDIS_SENTINEL_MASTER",
                        "is missing: expected the name the Sentinels monitor, e.g. mymaster",
                    )
                })?;
                Ok(Some(RedisTopology::Sentinel {
                    sentinels: self.node_list("REDIS_SENTINELS")?,
                    master,
                    auth,
                    sentinel_password: self.get("REDIS_SENTINEL_PASSWORD"),
                }))
            }
        }
    }

    pub(super) fn redis_url(&self) -> Result<RedisTopology, ConfigError> {
        const EXPECTED: &str = "a Redis URL like redis://[user:password@]host:6379[/db], or empty for the in-memory tier only";
        let raw = self.get("REDIS_URL").unwrap_or_default();
        let url = Url::parse(&raw).map_err(|_| {
            ConfigError::new("REDIS_URL", format!("is invalid: expected {EXPECTED}"))
        })?;
        if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
            return Err(ConfigError::new(
                "REDIS_URL",
                format!("is invalid: expected {EXPECTED}"),
            ));
        }
        if url.fragment().is_some() {
            // The Redis client reads `#insecure` as "do not verify the certificate": that
            // choice is REDIS_TLS_INSECURE_SKIP_VERIFY's, which refuses production and warns.
            return Err(ConfigError::new(
                "REDIS_URL",
                "is invalid: a #fragment is not accepted (to skip certificate checks in development, set REDIS_TLS_INSECURE_SKIP_VERIFY=true)",
            ));
        }
        Ok(RedisTopology::single(url.to_string()))
    }

    pub(super) fn node_list(&self, name: &'static str) -> Result<Vec<NodeAddr>, ConfigError> {
        let expected = "is invalid: expected host:port[,host:port…] (each may start with redis:// or rediss://)";
        let raw = self.get(name).unwrap_or_default();
        let nodes = raw
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                NodeAddr::parse(strip_redis_scheme(part).1)
                    .ok_or_else(|| ConfigError::new(name, expected))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(ConfigError::new(name, expected));
        }
        Ok(nodes)
    }

    pub(super) fn cache_prefix(&self) -> Result<String, ConfigError> {
        let prefix = self.get("CACHE_PREFIX").unwrap_or_else(|| "gwd".to_owned());
        let valid = prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(ConfigError::new(
                "CACHE_PREFIX",
                "is invalid: expected up to 64 characters of letters, digits, '_', '-' or '.'",
            ));
        }
        Ok(prefix)
    }

    pub(super) fn frontend_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.get("FRONTEND_URL") else {
            return Ok(None);
        };
        let url = Url::parse(&raw).map_err(|_| {
            ConfigError::new(
                "FRONTEND_URL",
                "is invalid: expected an origin like https://app.example.com",
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::new(
                "FRONTEND_URL",
                "is invalid: expected an origin like https://app.example.com",
            ));
        }
        Ok(Some(url.origin().ascii_serialization()))
    }
}

/// `rediss://h:p` → (Some(true), "h:p"); `redis://h:p` → (Some(false), …); `h:p` → (None, …).
fn strip_redis_scheme(part: &str) -> (Option<bool>, &str) {
    let part = part.trim();
    if let Some(rest) = part.strip_prefix("rediss://") {
        (Some(true), rest.trim_end_matches('/'))
    } else if let Some(rest) = part.strip_prefix("redis://") {
        (Some(false), rest.trim_end_matches('/'))
    } else {
        (None, part)
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup<'_, F> {
    /// Whether a node list's seeds ask for TLS by their scheme (`None`: no scheme given).
    fn seeds_tls(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        let raw = self.get(name).unwrap_or_default();
        let schemes: Vec<Option<bool>> = raw
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| strip_redis_scheme(part).0)
            .collect();
        let tls = schemes.contains(&Some(true));
        if tls && schemes.iter().any(|s| *s != Some(true)) {
            return Err(ConfigError::new(
                name,
                "mixes rediss:// with plain seeds: every node of one topology uses TLS, or none",
            ));
        }
        Ok(schemes.iter().any(Option::is_some).then_some(tls))
    }

    fn pem_file(
        &self,
        name: &'static str,
        marker: &str,
        what: &str,
    ) -> Result<Option<PemFile>, ConfigError> {
        let Some(path) = self.get(name) else {
            return Ok(None);
        };
        let pem = std::fs::read(&path).map_err(|e| {
            ConfigError::new(name, format!("cannot be read ({path}: {})", e.kind()))
        })?;
        if !String::from_utf8_lossy(&pem).contains(marker) {
            return Err(ConfigError::new(
                name,
                format!("is invalid: {path} is not a PEM file with {what}"),
            ));
        }
        Ok(Some(PemFile { path, pem }))
    }

    /// The topology and its TLS settings. TLS is on with `REDIS_TLS=true`, a `rediss://`
    /// `REDIS_URL`, or `rediss://` seeds; a `redis://` URL with `REDIS_TLS=true` is upgraded
    /// (never the other way round: a `rediss://` URL with `REDIS_TLS=false` is an error).
    pub(super) fn redis(
        &self,
        environment: AppEnvironment,
    ) -> Result<(Option<RedisTopology>, RedisTls), ConfigError> {
        let topology = self.redis_topology()?;
        let enabled = self.tls_enabled(topology.as_ref())?;
        let sentinels = match &topology {
            Some(RedisTopology::Sentinel { .. }) => match self.get("REDIS_SENTINEL_TLS") {
                Some(_) => self.flag("REDIS_SENTINEL_TLS", enabled)?,
                None => enabled,
            },
            _ => false,
        };
        let tls = RedisTls {
            enabled,
            sentinels,
            ca: self.pem_file("REDIS_TLS_CA_FILE", "BEGIN CERTIFICATE", "certificates")?,
            client: self.tls_client()?,
            skip_verify: self.flag("REDIS_TLS_INSECURE_SKIP_VERIFY", false)?,
        };
        check_tls(&tls, environment)?;
        let topology = match topology {
            Some(RedisTopology::Single { url }) if enabled && url.starts_with("redis://") => Some(
                RedisTopology::single(format!("rediss://{}", &url["redis://".len()..])),
            ),
            other => other,
        };
        Ok((topology, tls))
    }

    /// Whether TLS is on: `REDIS_TLS`, or the topology's URLs' scheme; the two contradicting
    /// each other is an error.
    fn tls_enabled(&self, topology: Option<&RedisTopology>) -> Result<bool, ConfigError> {
        let flag = match self.get("REDIS_TLS") {
            Some(_) => Some(self.flag("REDIS_TLS", false)?),
            None => None,
        };
        let (scheme_tls, scheme_var) = match topology {
            Some(RedisTopology::Single { url }) => {
                (Some(url.starts_with("rediss://")), "REDIS_URL")
            }
            Some(RedisTopology::Cluster { .. }) => (
                self.seeds_tls("REDIS_CLUSTER_NODES")?,
                "REDIS_CLUSTER_NODES",
            ),
            Some(RedisTopology::Sentinel { .. }) => {
                (self.seeds_tls("REDIS_SENTINELS")?, "REDIS_SENTINELS")
            }
            None => (None, "REDIS_URL"),
        };
        if flag == Some(false) && scheme_tls == Some(true) {
            return Err(ConfigError::new(
                "REDIS_TLS",
                format!("is false but {scheme_var} uses rediss://: remove one of them"),
            ));
        }
        Ok(flag == Some(true) || scheme_tls == Some(true))
    }

    /// The client certificate and its key: both or neither.
    fn tls_client(&self) -> Result<Option<(PemFile, PemFile)>, ConfigError> {
        let cert = self.pem_file("REDIS_TLS_CERT_FILE", "BEGIN CERTIFICATE", "a certificate")?;
        let key = self.pem_file("REDIS_TLS_KEY_FILE", "PRIVATE KEY", "a private key")?;
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::new(
                "REDIS_TLS_KEY_FILE",
                "is missing: REDIS_TLS_CERT_FILE is set, and a client certificate needs its key",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "REDIS_TLS_CERT_FILE",
                "is missing: REDIS_TLS_KEY_FILE is set, and a client key needs its certificate",
            )),
        }
    }
}

/// TLS-only settings need TLS on; skipping verification is refused in production.
fn check_tls(tls: &RedisTls, environment: AppEnvironment) -> Result<(), ConfigError> {
    let tls_only = [
        ("REDIS_TLS_CA_FILE", tls.ca.is_some()),
        ("REDIS_TLS_CERT_FILE", tls.client.is_some()),
        ("REDIS_TLS_INSECURE_SKIP_VERIFY", tls.skip_verify),
    ];
    if let Some((name, _)) = tls_only.iter().find(|(_, set)| *set && !tls.any()) {
        return Err(ConfigError::new(
            name,
            "is set but Redis TLS is off: use rediss:// or REDIS_TLS=true",
        ));
    }
    if tls.skip_verify && environment == AppEnvironment::Production {
        return Err(ConfigError::new(
            "REDIS_TLS_INSECURE_SKIP_VERIFY",
            "is not allowed with APP_ENV=production: give the server's CA in REDIS_TLS_CA_FILE instead",
        ));
    }
    Ok(())
}

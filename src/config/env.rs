//! Reading variables: the lookup helpers that turn one environment variable into a typed
//! value or a [`ConfigError`] naming it, and the parsers of the compound values (URLs, node
//! lists, the Redis topology).

use std::time::Duration;

use url::Url;

use super::redis::{NodeAddr, NodeAuth, RedisTopology};
use super::{AppEnvironment, ConfigError};

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
        let expected = format!("a whole number of seconds from 1 to {max}");
        let value: u64 = self.parsed(name, Some(default), &expected)?;
        if value == 0 || value > max {
            return Err(ConfigError::new(
                name,
                format!("is out of range: expected {expected}"),
            ));
        }
        Ok(Duration::from_secs(value))
    }

    pub(super) fn bounded(
        &self,
        name: &'static str,
        default: u32,
        max: u32,
        what: &str,
    ) -> Result<u32, ConfigError> {
        let expected = format!("{what} from 1 to {max}");
        let value: u32 = self.parsed(name, Some(default), &expected)?;
        if value == 0 || value > max {
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
        let expected = format!("a whole number of milliseconds from 1 to {max}");
        let value: u64 = self.parsed(name, Some(default), &expected)?;
        if value == 0 || value > max {
            return Err(ConfigError::new(
                name,
                format!("is out of range: expected {expected}"),
            ));
        }
        Ok(Duration::from_millis(value))
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

    /// `DATABASE_LISTEN_URL`: optional, validated like `DATABASE_URL`.
    pub(super) fn database_listen_url(&self) -> Result<Option<Url>, ConfigError> {
        self.postgres_url("DATABASE_LISTEN_URL")
    }

    fn postgres_url(&self, name: &'static str) -> Result<Option<Url>, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        // The parse error is not shown: it could quote the secret-bearing URL.
        let invalid = || {
            ConfigError::new(
                name,
                format!("is invalid: expected {POSTGRES_URL_EXPECTED}"),
            )
        };
        let url = Url::parse(&raw).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "postgres" | "postgresql") || url.host_str().is_none() {
            return Err(invalid());
        }
        Ok(Some(url))
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
        Ok(RedisTopology::single(url.to_string()))
    }

    pub(super) fn node_list(&self, name: &'static str) -> Result<Vec<NodeAddr>, ConfigError> {
        let expected = "is invalid: expected host:port[,host:port…]";
        let raw = self.get(name).unwrap_or_default();
        let nodes = raw
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| NodeAddr::parse(part).ok_or_else(|| ConfigError::new(name, expected)))
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

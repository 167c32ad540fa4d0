//! Where this instance runs in a multi-region deployment (issue 21): its region's name, the
//! region's read replica, and how far reads may trail the primary.
//!
//! One primary (`DATABASE_URL`) takes every write, the invalidation `LISTEN` and migrations;
//! each region may have a streaming replica (`DATABASE_READ_URL`) that cache loads and other
//! reads use while it is no more than `MAX_REPLICA_LAG_MS` behind.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::env::Lookup;
use super::{mask_url, ConfigError};

/// `REGION` when unset.
pub const DEFAULT_REGION: &str = "local";
/// `MAX_REPLICA_LAG_MS` when unset.
pub const DEFAULT_MAX_REPLICA_LAG_MS: u64 = 5_000;
/// `READ_YOUR_WRITES_WAIT_MS` when unset.
pub const DEFAULT_READ_YOUR_WRITES_WAIT_MS: u64 = 1_000;

#[derive(Clone, PartialEq, Eq)]
pub struct RegionSettings {
    /// `REGION`: shown in `/health/detailed` and as the `region` label of the cache metrics.
    pub name: String,
    /// `DATABASE_READ_URL`: this region's read replica; `None` = reads go to the primary.
    pub read_url: Option<Url>,
    /// `MAX_REPLICA_LAG_MS`: past this lag, reads go to the primary (while it answers).
    pub max_replica_lag: Duration,
    /// `READ_YOUR_WRITES_WAIT_MS`: how long a read carrying a consistency token waits for the
    /// replica to replay it before it reads the primary instead (0: never waits).
    pub read_your_writes_wait: Duration,
    /// `CONSISTENCY_TOKENS`: writes read the primary's position after their commit (one more
    /// round trip) and answer it as `X-Consistency-Token`. Off, writes answer no token;
    /// tokens sent by clients are still honoured.
    pub consistency_tokens: bool,
}

impl Default for RegionSettings {
    fn default() -> Self {
        Self {
            name: DEFAULT_REGION.to_owned(),
            read_url: None,
            max_replica_lag: Duration::from_millis(DEFAULT_MAX_REPLICA_LAG_MS),
            read_your_writes_wait: Duration::from_millis(DEFAULT_READ_YOUR_WRITES_WAIT_MS),
            consistency_tokens: true,
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup<'_, F> {
    pub(super) fn region(&self) -> Result<RegionSettings, ConfigError> {
        let name = self
            .get("REGION")
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        // A metric label and a field of every bus message: short and plain.
        let valid = name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(ConfigError::new(
                "REGION",
                "is invalid: expected up to 32 letters, digits, '_', '-' or '.', e.g. eu-west-1",
            ));
        }
        let wait: u64 = self.parsed(
            "READ_YOUR_WRITES_WAIT_MS",
            Some(DEFAULT_READ_YOUR_WRITES_WAIT_MS),
            "a whole number of milliseconds from 0 to 60000",
        )?;
        if wait > 60_000 {
            return Err(ConfigError::new(
                "READ_YOUR_WRITES_WAIT_MS",
                "is out of range: expected a whole number of milliseconds from 0 to 60000",
            ));
        }
        Ok(RegionSettings {
            name,
            read_url: self.postgres_url("DATABASE_READ_URL")?,
            max_replica_lag: self.millis(
                "MAX_REPLICA_LAG_MS",
                DEFAULT_MAX_REPLICA_LAG_MS,
                3_600_000,
            )?,
            read_your_writes_wait: Duration::from_millis(wait),
            consistency_tokens: self.flag("CONSISTENCY_TOKENS", true)?,
        })
    }
}

impl RegionSettings {
    /// Rules across settings: a token read waits for the replica, then reads the primary,
    /// all within the request's deadline.
    pub(super) fn check(&self, request_timeout: Duration) -> Result<(), ConfigError> {
        if self.read_url.is_some() && self.read_your_writes_wait >= request_timeout {
            return Err(ConfigError::new(
                "READ_YOUR_WRITES_WAIT_MS",
                format!(
                    "is too long: a read carrying a consistency token waits this long for the replica, then reads the primary, all within REQUEST_TIMEOUT_MS ({} ms); keep it well below",
                    request_timeout.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RegionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionSettings")
            .field("name", &self.name)
            .field("read_url", &self.read_url.as_ref().map(mask_url))
            .field("max_replica_lag", &self.max_replica_lag)
            .field("read_your_writes_wait", &self.read_your_writes_wait)
            .field("consistency_tokens", &self.consistency_tokens)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Settings;

    fn settings_from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.entry("DATABASE_URL".to_owned())
            .or_insert_with(|| "postgres://app:s3cret@primary:5432/app".to_owned());
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_one_region_without_a_replica() {
        let region = settings_from(&[]).unwrap().region;
        assert_eq!(region, RegionSettings::default());
        assert_eq!(region.name, "local");
        assert!(region.read_url.is_none());
        assert_eq!(region.max_replica_lag, Duration::from_secs(5));
        assert_eq!(region.read_your_writes_wait, Duration::from_secs(1));
        assert!(region.consistency_tokens);
    }

    #[test]
    fn a_region_with_its_replica_is_read_and_masked() {
        let settings = settings_from(&[
            ("REGION", "eu-west-1"),
            (
                "DATABASE_READ_URL",
                "postgres://app:r3plica@replica:5432/app",
            ),
            ("MAX_REPLICA_LAG_MS", "750"),
            ("READ_YOUR_WRITES_WAIT_MS", "0"),
            ("CONSISTENCY_TOKENS", "false"),
        ])
        .unwrap();
        let region = &settings.region;
        assert_eq!(region.name, "eu-west-1");
        assert_eq!(
            region.read_url.as_ref().map(|u| u.host_str()),
            Some(Some("replica"))
        );
        assert_eq!(region.max_replica_lag, Duration::from_millis(750));
        assert_eq!(region.read_your_writes_wait, Duration::ZERO);
        assert!(!region.consistency_tokens);
        let printed = format!("{settings:?}");
        assert!(!printed.contains("r3plica"), "{printed}");
        assert!(printed.contains("replica:5432"), "{printed}");
    }

    #[test]
    fn region_mistakes_are_named_without_echoing_secrets() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("REGION", "eu west")], "REGION"),
            (
                &[("REGION", "a-region-name-longer-than-32-chars")],
                "REGION",
            ),
            (
                &[("DATABASE_READ_URL", "mysql://u:leak-pw@replica/db")],
                "DATABASE_READ_URL",
            ),
            (&[("MAX_REPLICA_LAG_MS", "0")], "MAX_REPLICA_LAG_MS"),
            (&[("CONSISTENCY_TOKENS", "sometimes")], "CONSISTENCY_TOKENS"),
            (&[("MAX_REPLICA_LAG_MS", "5s")], "MAX_REPLICA_LAG_MS"),
            (
                &[("READ_YOUR_WRITES_WAIT_MS", "60001")],
                "READ_YOUR_WRITES_WAIT_MS",
            ),
            (
                &[("READ_YOUR_WRITES_WAIT_MS", "-1")],
                "READ_YOUR_WRITES_WAIT_MS",
            ),
            (
                &[
                    ("DATABASE_READ_URL", "postgres://replica/app"),
                    ("READ_YOUR_WRITES_WAIT_MS", "1300"),
                ],
                "READ_YOUR_WRITES_WAIT_MS",
            ),
        ];
        for (pairs, variable) in cases {
            let err = settings_from(pairs).unwrap_err();
            assert_eq!(&err.variable, variable, "{pairs:?}: {err}");
            assert!(!err.to_string().contains("leak-pw"), "{err}");
        }
        // Without a replica nothing waits, so the wait is not held to the deadline.
        assert!(settings_from(&[("READ_YOUR_WRITES_WAIT_MS", "5000")]).is_ok());
    }
}

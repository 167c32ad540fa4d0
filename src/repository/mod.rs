//! Data access behind traits: Postgres implementations in `postgres/`, a caching decorator in
//! `cached.rs`. Handlers only see the traits, so they cannot tell which one they hold.

pub mod cached;
pub mod postgres;

use std::marker::PhantomData;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::plan::{Plan, SubscriptionStatus};

/// Errors of the data layer; mapped to HTTP in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// Creating one more workflow would pass `MAX_WORKFLOWS_PER_LOCATION`.
    #[error("the location already has {limit} workflows, the most it may have")]
    WorkflowLimit { limit: u32 },
    #[error("version precondition failed (current version: {current:?})")]
    PreconditionFailed { current: Option<i64> },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("stored data could not be decoded")]
    Decode(#[from] serde_json::Error),
    /// A computation that feeds a cached read (an analysis) failed.
    #[error("background computation failed: {0}")]
    Computation(String),
    /// The database did not answer within the request deadline (it hangs: its own
    /// `statement_timeout` cannot fire then).
    #[error("the database did not answer in time")]
    TimedOut,
    /// No analysis thread took the work within the request deadline (the instance's CPU is
    /// busy serving requests, which analyses yield to).
    #[error("the analysis pool did not get to the work in time")]
    AnalysisBusy,
    /// The analysis stopped before its report: over its time budget, or its caller left.
    #[error(transparent)]
    Abandoned(#[from] crate::domain::analysis::AnalysisAbandoned),
    /// The location already has as many analyses waiting as it may (per-location fairness).
    #[error("this location already has too many analyses waiting")]
    LocationBusy,
    /// The write committed, but the cache could not make every instance drop what it
    /// replaced (Redis answered, the invalidation did not get through in time): answering it
    /// as a success could be followed by reads of the previous version elsewhere.
    #[error("the change was stored but its cache invalidation could not be confirmed")]
    NotPropagated,
    /// One failure handed to every reader that waited on the same cache load.
    #[error(transparent)]
    Shared(std::sync::Arc<RepositoryError>),
}

/// Runs database work within `deadline`, so a hung Postgres turns into a 503 in bounded time.
pub async fn within<T>(
    deadline: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, RepositoryError>>,
) -> Result<T, RepositoryError> {
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or(Err(RepositoryError::TimedOut))
}

/// Where a read was answered from, for `X-Cache-Status` / `X-Cache-Tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// Straight from Postgres, no cache involved.
    Bypass,
    Miss,
    Hit {
        tier: &'static str,
    },
    /// Served past its freshness because Postgres failed.
    Stale,
}

impl From<crate::cache::CacheStatus> for ReadSource {
    fn from(status: crate::cache::CacheStatus) -> Self {
        use crate::cache::{CacheStatus, Tier};
        match status {
            CacheStatus::Hit(Tier::L1) => Self::Hit { tier: "l1" },
            CacheStatus::Hit(Tier::L2) => Self::Hit { tier: "l2" },
            CacheStatus::Miss => Self::Miss,
            CacheStatus::Stale => Self::Stale,
            CacheStatus::Bypass => Self::Bypass,
        }
    }
}

impl ReadSource {
    pub fn status(self) -> &'static str {
        match self {
            Self::Bypass => "BYPASS",
            Self::Miss => "MISS",
            Self::Hit { .. } => "HIT",
            Self::Stale => "STALE",
        }
    }

    pub fn tier(self) -> Option<&'static str> {
        match self {
            Self::Hit { tier } => Some(tier),
            _ => None,
        }
    }
}

/// A value read through the repository, kept as its serialized JSON so a cache hit can be
/// written into the response without being parsed and serialized again.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub json: Bytes,
    pub source: ReadSource,
    kind: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Fetched<T> {
    pub fn encode(value: &T, source: ReadSource) -> Result<Self, RepositoryError> {
        Ok(Self::from_json(
            Bytes::from(serde_json::to_vec(value)?),
            source,
        ))
    }

    pub fn from_json(json: Bytes, source: ReadSource) -> Self {
        Self {
            json,
            source,
            kind: PhantomData,
        }
    }

    pub fn decode(&self) -> Result<T, RepositoryError> {
        Ok(serde_json::from_slice(&self.json)?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub uninstalled_at: Option<DateTime<Utc>>,
}

/// A location and the API key created with it (shown once).
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedLocation {
    pub location: Location,
    /// Shown once; stored only as a SHA-256 hash.
    pub api_key: String,
}

// By hand: a `{:?}` of a created location (a log line, a test failure) must not print the key.
impl std::fmt::Debug for CreatedLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedLocation")
            .field("location", &self.location)
            .field("api_key", &"***")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    pub id: String,
    pub name: String,
    #[schema(schema_with = crate::domain::schema::workflow_status)]
    pub status: String,
    #[schema(minimum = 1)]
    pub version: i64,
    #[schema(minimum = 0)]
    pub step_count: i32,
    #[schema(minimum = 0)]
    pub trigger_count: i32,
    pub updated_at: DateTime<Utc>,
}

/// A stored workflow; `D` is how its definition is held: parsed (the default), or as the raw
/// JSON Postgres returned when a read only passes it on (the miss path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
// Whatever holds it, the definition is a §7 document: one schema for every `D`.
#[schema(
    bound = "",
    description = "A stored workflow with its CONTRACT §7 definition"
)]
pub struct StoredWorkflow<D = serde_json::Value> {
    pub id: String,
    pub name: String,
    #[schema(schema_with = crate::domain::schema::workflow_status)]
    pub status: String,
    #[schema(minimum = 1)]
    pub version: i64,
    #[schema(minimum = 0)]
    pub step_count: i32,
    #[schema(minimum = 0)]
    pub trigger_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Imported workflows only: the GoHighLevel builder's own `version` (its edit counter)
    /// the workflow was imported at; importing it again changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub source_version: Option<i64>,
    /// Imported workflows only: `ghl`, so `GET /api/workflows/{id}?format=ghl` answers the
    /// original GoHighLevel JSON. A PUT over an imported workflow removes both fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, schema_with = crate::domain::schema::ghl_format)]
    pub source_format: Option<String>,
    #[schema(value_type = crate::domain::workflow::WorkflowDocument)]
    pub definition: D,
}

/// A validated document ready to be stored.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    pub name: String,
    pub status: &'static str,
    pub definition: serde_json::Value,
    pub step_count: i32,
    pub trigger_count: i32,
    /// What an imported workflow came from; `None` (a §7 document) clears a previous import's.
    pub source: Option<WorkflowSource>,
}

/// The GoHighLevel JSON an imported workflow was read from, kept beside its definition.
#[derive(Debug, Clone)]
pub struct WorkflowSource {
    /// The original text, byte for byte.
    pub json: String,
    /// The builder's `version` (its edit counter), when the document has one.
    pub version: Option<i64>,
}

/// What is stored under an id, as far as deciding on a re-import needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportState {
    pub version: i64,
    /// The stored source version (`None`: not imported, or imported without one).
    pub source_version: Option<i64>,
    /// The stored original is exactly the text being imported.
    pub same_source: bool,
}

/// The precondition of a conditional write (`If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `If-Match: *`: the workflow must exist, whatever its version (RFC 9110 §13.1.1).
    Any,
    /// `If-Match: 3`: the stored version must be this one.
    Version(i64),
}

impl IfMatch {
    /// The version the stored one must equal; `None` for any version.
    pub fn version(self) -> Option<i64> {
        match self {
            Self::Any => None,
            Self::Version(version) => Some(version),
        }
    }
}

#[derive(Debug, Clone)]
pub enum PutOutcome {
    Created(StoredWorkflow),
    Replaced(StoredWorkflow),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub location_id: String,
    pub plan: String,
    pub status: String,
    pub current_period_end: Option<DateTime<Utc>>,
}

impl Subscription {
    /// A location without a subscription row is on the free plan.
    pub fn free(location_id: &str) -> Self {
        Self {
            location_id: location_id.to_owned(),
            plan: Plan::Free.as_str().to_owned(),
            status: SubscriptionStatus::Active.as_str().to_owned(),
            current_period_end: None,
        }
    }

    pub fn effective_plan(&self) -> Plan {
        plan_in_force(&self.plan, &self.status)
    }
}

/// The plan a subscription's `plan` and `status` columns grant (an unknown plan is free, an
/// unknown status active).
fn plan_in_force(plan: &str, status: &str) -> Plan {
    let plan = Plan::parse(plan).unwrap_or(Plan::Free);
    let status = SubscriptionStatus::parse(status).unwrap_or(SubscriptionStatus::Active);
    crate::domain::plan::effective_plan(plan, status)
}

impl Fetched<Subscription> {
    /// [`Subscription::effective_plan`] read from the cached JSON without decoding the rest:
    /// every rate-limited request and every analysis read asks for it.
    pub fn effective_plan(&self) -> Result<Plan, RepositoryError> {
        #[derive(Deserialize)]
        struct PlanColumns<'a> {
            #[serde(borrow)]
            plan: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            status: std::borrow::Cow<'a, str>,
        }
        let columns: PlanColumns = serde_json::from_slice(&self.json)?;
        Ok(plan_in_force(&columns.plan, &columns.status))
    }
}

impl Fetched<ApiKeyOwner> {
    /// [`ApiKeyOwner::location_id`] read from the cached JSON without decoding the key id.
    pub fn location_id(&self) -> Result<String, RepositoryError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LocationColumn<'a> {
            #[serde(borrow)]
            location_id: std::borrow::Cow<'a, str>,
        }
        let column: LocationColumn = serde_json::from_slice(&self.json)?;
        Ok(column.location_id.into_owned())
    }
}

/// Who an API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyOwner {
    pub key_id: uuid::Uuid,
    pub location_id: String,
}

#[async_trait::async_trait]
pub trait LocationRepository: Send + Sync {
    /// Creates a location with its first API key, atomically.
    async fn create_with_key(
        &self,
        id: &str,
        name: &str,
        key_hash: &[u8],
    ) -> Result<Location, RepositoryError>;
}

#[async_trait::async_trait]
pub trait WorkflowRepository: Send + Sync {
    /// Every workflow summary of a location, most recently updated first.
    async fn list(
        &self,
        location_id: &str,
    ) -> Result<Fetched<Vec<WorkflowSummary>>, RepositoryError>;
    async fn get(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<Fetched<StoredWorkflow>, RepositoryError>;
    /// Creates or replaces; with `if_match`, only replaces, and only when the stored
    /// version matches it.
    async fn put(
        &self,
        location_id: &str,
        id: &str,
        workflow: &NewWorkflow,
        if_match: Option<IfMatch>,
    ) -> Result<PutOutcome, RepositoryError>;
    async fn delete(&self, location_id: &str, id: &str) -> Result<(), RepositoryError>;
    /// Drops anything remembered about the workflow (an outside change was announced).
    async fn forget(&self, location_id: &str, id: &str);
    /// What a re-import of `id` with original text `source` has to know (`None`: no such
    /// workflow). Read from Postgres, never from the cache: it decides on a write.
    async fn import_state(
        &self,
        location_id: &str,
        id: &str,
        source: &str,
    ) -> Result<Option<ImportState>, RepositoryError>;
    /// The GoHighLevel JSON an imported workflow was imported from, byte for byte; `None`
    /// when the workflow exists but was not imported (NotFound when it does not exist).
    async fn original(
        &self,
        location_id: &str,
        id: &str,
    ) -> Result<(Option<Bytes>, ReadSource), RepositoryError>;
    /// Every workflow of a location in id order, for its location-wide analysis: each sent to
    /// `rows` as it is read, so the reader holds one definition at a time (the channel paces
    /// the read). The first `with_definition` come with their definitions, the others with
    /// their id and status only. A closed channel (the analysis stopped) ends the read.
    async fn location_workflows(
        &self,
        location_id: &str,
        with_definition: usize,
        rows: &tokio::sync::mpsc::Sender<LocationRow>,
    ) -> Result<(), RepositoryError>;
}

/// A workflow of a location as its location-wide analysis reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationRow {
    /// The read (re)starts: rows sent before belong to an attempt that failed half-way (a
    /// replica that stopped answering, read again on the primary) and are sent again.
    Restart,
    Workflow {
        id: String,
        published: bool,
        /// `None` past the first `with_definition` workflows.
        definition: Option<serde_json::Value>,
    },
}

/// One stored analysis, as history lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub id: i64,
    pub workflow_id: String,
    pub workflow_version: i64,
    pub rules_version: String,
    #[schema(minimum = 0, maximum = 100)]
    pub health_score: i16,
    pub issues_found: i32,
    pub created_at: DateTime<Utc>,
}

/// A page of history, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    pub total: i64,
}

/// What an analysis row records.
#[derive(Debug, Clone)]
pub struct NewAnalysis<'a> {
    pub workflow_id: &'a str,
    pub workflow_version: i64,
    pub rules_version: &'a str,
    pub health_score: i16,
    pub issues_found: i32,
    pub result: &'a serde_json::Value,
}

#[async_trait::async_trait]
pub trait AnalysisRepository: Send + Sync {
    /// Stores the first analysis of a (workflow, version, rules version); a later one is not
    /// stored and the first one's result is returned instead (`None`: this one was stored).
    async fn record(
        &self,
        location_id: &str,
        analysis: &NewAnalysis<'_>,
    ) -> Result<Option<serde_json::Value>, RepositoryError>;
    /// Every workflow of a location (most recently updated first) with the recorded analysis
    /// of its current version under `rules_version` (`Pending` without one).
    async fn overview_rows(
        &self,
        location_id: &str,
        rules_version: &str,
    ) -> Result<Vec<crate::domain::overview::OverviewRow>, RepositoryError>;
    /// Analyses created at or after `since`, newest first.
    async fn history(
        &self,
        location_id: &str,
        since: DateTime<Utc>,
        offset: i64,
        limit: i64,
    ) -> Result<HistoryPage, RepositoryError>;
}

#[async_trait::async_trait]
pub trait SubscriptionRepository: Send + Sync {
    async fn get(&self, location_id: &str) -> Result<Fetched<Subscription>, RepositoryError>;
    async fn forget(&self, location_id: &str);
}

#[async_trait::async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// The owner of an active key (not revoked, location not uninstalled).
    async fn find_owner(&self, key_hash: &[u8]) -> Result<Option<ApiKeyOwner>, RepositoryError>;
    /// The location of an active key: [`find_owner`](Self::find_owner) for a caller that
    /// needs nothing else (every authenticated request).
    async fn find_location(&self, key_hash: &[u8]) -> Result<Option<String>, RepositoryError> {
        Ok(self
            .find_owner(key_hash)
            .await?
            .map(|owner| owner.location_id))
    }
    async fn create(
        &self,
        location_id: &str,
        key_hash: &[u8],
        label: &str,
    ) -> Result<uuid::Uuid, RepositoryError>;
    /// Revokes one key, effective at once; returns the revoked key's hash.
    async fn revoke(&self, key_id: uuid::Uuid) -> Result<Vec<u8>, RepositoryError>;
    /// Drops remembered lookups of these keys (revoked elsewhere).
    async fn forget(&self, key_hashes: &[Vec<u8>]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_locations_debug_output_carries_no_api_key() {
        let created = CreatedLocation {
            location: Location {
                id: "loc_1".to_owned(),
                name: "Acme".to_owned(),
                created_at: Utc::now(),
                uninstalled_at: None,
            },
            api_key: "gwd_canary_key_0123".to_owned(),
        };

        let shown = format!("{created:?} {created:#?}");

        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains(r#"api_key: "***""#), "{shown}");
        assert!(shown.contains("loc_1"), "{shown}");
    }

    #[test]
    fn the_plan_read_from_cached_json_is_the_decoded_subscriptions_plan() {
        let cases = [
            ("agency", "active"),
            ("agency", "canceled"),
            ("pro", "past_due"),
            ("no-such-plan", "active"),
            ("pro", "no-such-status"),
        ];
        for (plan, status) in cases {
            let subscription = Subscription {
                location_id: "loc\"escaped".to_owned(),
                plan: plan.to_owned(),
                status: status.to_owned(),
                current_period_end: Some(Utc::now()),
            };
            let fetched = Fetched::encode(&subscription, ReadSource::Bypass).unwrap();
            assert_eq!(
                fetched.effective_plan().unwrap(),
                subscription.effective_plan(),
                "{plan}/{status}"
            );
        }
    }

    #[test]
    fn the_location_read_from_cached_json_is_the_decoded_owners_location() {
        for location_id in ["loc_1", "loc\"quoted\\", "lieu-é-\u{1F600}"] {
            let owner = ApiKeyOwner {
                key_id: uuid::Uuid::new_v4(),
                location_id: location_id.to_owned(),
            };
            let fetched = Fetched::encode(&owner, ReadSource::Bypass).unwrap();
            assert_eq!(
                fetched.location_id().unwrap(),
                fetched.decode().unwrap().location_id
            );
            assert_eq!(fetched.location_id().unwrap(), location_id);
        }
    }
}

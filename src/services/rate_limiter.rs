//! Per-location, per-plan limits: requests per window on every authenticated `/api/*` call
//! and analyses per hour.
//!
//! The count lives in Redis so every instance shares it: one Lua script per request does
//! `INCR` and, for a new counter, `PEXPIRE window` on `{prefix}:v{format}:ratelimit:{location}:minute`
//! (a fixed window that starts with the location's first request; the location id sits in a
//! hash tag like every other key). It runs through the cache's own pool, budget and circuit
//! breaker ([`Cache::count_in_window`](crate::cache::Cache::count_in_window)); when Redis is not
//! configured, down, slow or the breaker is open, the same fixed window is counted in a
//! per-instance, bounded in-memory map instead — limits stay enforced, per instance.
//!
//! The limit runs *after* authentication, because it needs the key's location and that
//! location's plan ([`Plans`]). The web layer's `Tenant` extractor asks
//! [`RateLimiter::count_request`] and leaves the outcome in the request's extensions, where a
//! middleware on the `/api` scope turns it into the `X-RateLimit-*` headers.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;

use crate::cache::{Cache, WindowCount};
use crate::domain::plan::Plan;
use crate::services::plans::Plans;

/// Windows remembered per instance while Redis is unavailable (two per active location);
/// the least recently used ones go first, so memory stays bounded.
const LOCAL_WINDOWS_CAPACITY: usize = 100_000;

/// The analysis quota's window (the plans' "per hour").
pub const ANALYSIS_WINDOW: Duration = Duration::from_secs(3_600);

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Every authenticated `/api/*` request, per `RATE_LIMIT_WINDOW_SECS` (default a minute).
    Requests,
    /// Analyses run, per hour.
    Analyses,
}

impl Quota {
    fn limit(self, plan: Plan) -> u64 {
        let limits = plan.limits();
        u64::from(match self {
            Self::Requests => limits.requests_per_minute,
            Self::Analyses => limits.analyses_per_hour,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Analyses => "analyses",
        }
    }

    fn key_segment(self) -> &'static str {
        match self {
            Self::Requests => "minute",
            Self::Analyses => "hour",
        }
    }
}

/// The state of one location's window after counting one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: u64,
    /// Events left in this window (0 once over the limit).
    pub remaining: u64,
    pub resets_in: Duration,
    /// Whether the event fit within the limit.
    pub allowed: bool,
    /// Counted in Redis (shared by every instance) rather than in this instance's memory.
    pub shared: bool,
}

impl RateLimitInfo {
    fn new(limit: u64, counted: WindowCount, shared: bool) -> Self {
        Self {
            limit,
            remaining: limit.saturating_sub(counted.count),
            resets_in: counted.resets_in,
            allowed: counted.count <= limit,
            shared,
        }
    }

    /// Whole seconds until the window resets, at least 1 (`Retry-After`, `X-RateLimit-Reset`).
    pub fn reset_secs(&self) -> u64 {
        self.resets_in.as_millis().div_ceil(1_000).max(1) as u64
    }

    /// `Err` when the event did not fit (answered 429 with `Retry-After`).
    pub fn enforce(self) -> Result<Self, RateLimitExceeded> {
        if self.allowed {
            Ok(self)
        } else {
            Err(RateLimitExceeded {
                retry_after_secs: self.reset_secs(),
            })
        }
    }
}

/// A location went over one of its plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry after {retry_after_secs} s")]
pub struct RateLimitExceeded {
    pub retry_after_secs: u64,
}

/// The per-instance fallback: fixed windows in a bounded map (quick_cache; evicting a window
/// only forgets its count, which errs on the side of letting a request through).
pub struct LocalWindows {
    windows: quick_cache::sync::Cache<String, Arc<Mutex<LocalWindow>>>,
}

struct LocalWindow {
    started: Instant,
    count: u64,
}

impl Default for LocalWindows {
    fn default() -> Self {
        Self::with_capacity(LOCAL_WINDOWS_CAPACITY)
    }
}

impl LocalWindows {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            windows: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// Counts one event under `key` in a window of `window` that starts with its first event.
    pub fn count(&self, key: &str, window: Duration) -> WindowCount {
        let now = Instant::now();
        let cell = match self.windows.get_or_insert_with(key, || {
            Ok::<_, Infallible>(Arc::new(Mutex::new(LocalWindow {
                started: now,
                count: 0,
            })))
        }) {
            Ok(cell) => cell,
            Err(never) => match never {},
        };
        let mut entry = cell.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(entry.started) >= window {
            entry.started = now;
            entry.count = 0;
        }
        entry.count += 1;
        WindowCount {
            count: entry.count,
            resets_in: window.saturating_sub(now.saturating_duration_since(entry.started)),
        }
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// Counts requests and analyses per location against its plan: in Redis through the cache
/// when it answers, else in this instance's [`LocalWindows`].
pub struct RateLimiter {
    cache: Cache,
    plans: Plans,
    local: LocalWindows,
    enabled: bool,
    request_window: Duration,
    /// `rate_limit_decisions_total{quota, outcome, store}`.
    decisions: IntCounterVec,
}

impl RateLimiter {
    /// `enabled: false` (`RATE_LIMIT_ENABLED=false`) counts nothing.
    pub fn new(
        cache: Cache,
        plans: Plans,
        enabled: bool,
        request_window: Duration,
        decisions: IntCounterVec,
    ) -> Self {
        Self {
            cache,
            plans,
            local: LocalWindows::default(),
            enabled,
            request_window,
            decisions,
        }
    }

    /// Counts one request of `location_id` against its plan's per-window limit. `None` when
    /// limits are off. The caller decides what to do with an exceeded limit
    /// ([`RateLimitInfo::enforce`]) so the headers can still be set on the 429.
    pub async fn count_request(&self, location_id: &str) -> Option<RateLimitInfo> {
        self.count(location_id, Quota::Requests).await
    }

    /// Counts one analysis against the plan's hourly quota: `Ok` when it may run (`None` when
    /// limits are off). Call it before starting the analysis itself.
    pub async fn count_analysis(
        &self,
        location_id: &str,
    ) -> Result<Option<RateLimitInfo>, RateLimitExceeded> {
        self.count(location_id, Quota::Analyses)
            .await
            .map(RateLimitInfo::enforce)
            .transpose()
    }

    /// Windows counted in this instance's memory (while Redis was unavailable).
    pub fn local_windows(&self) -> usize {
        self.local.len()
    }

    async fn count(&self, location_id: &str, quota: Quota) -> Option<RateLimitInfo> {
        if !self.enabled {
            return None;
        }
        let limit = quota.limit(self.plans.effective_plan(location_id).await);
        let window = match quota {
            Quota::Requests => self.request_window,
            Quota::Analyses => ANALYSIS_WINDOW,
        };
        let key = self
            .cache
            .keys()
            .rate_limit(location_id, quota.key_segment());
        let info = match self.cache.count_in_window(&key, window).await {
            Some(counted) => RateLimitInfo::new(limit, counted, true),
            None => RateLimitInfo::new(limit, self.local.count(&key, window), false),
        };
        self.decisions
            .with_label_values(&[
                quota.as_str(),
                if info.allowed { "allowed" } else { "limited" },
                if info.shared { "redis" } else { "memory" },
            ])
            .inc();
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_windows_count_up_to_the_limit_and_start_again_after_the_window() {
        let windows = LocalWindows::with_capacity(10);
        let window = Duration::from_millis(50);
        let counts: Vec<u64> = (0..3).map(|_| windows.count("k", window).count).collect();
        assert_eq!(counts, [1, 2, 3]);
        assert_eq!(windows.count("other", window).count, 1);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(windows.count("k", window).count, 1);
    }

    #[test]
    fn local_windows_stay_bounded() {
        let windows = LocalWindows::with_capacity(100);
        for n in 0..10_000 {
            windows.count(&format!("location-{n}"), Duration::from_secs(60));
        }
        assert!(windows.len() <= 200, "{} windows kept", windows.len());
    }

    #[test]
    fn info_over_the_limit_is_a_429_with_retry_after_in_whole_seconds() {
        let counted = |count| WindowCount {
            count,
            resets_in: Duration::from_millis(1_200),
        };
        let last = RateLimitInfo::new(20, counted(20), true);
        assert_eq!(last.remaining, 0);
        assert!(last.enforce().is_ok());
        let over = RateLimitInfo::new(20, counted(21), true);
        assert_eq!(over.reset_secs(), 2);
        assert_eq!(
            over.enforce(),
            Err(RateLimitExceeded {
                retry_after_secs: 2
            })
        );
    }

    #[test]
    fn quotas_follow_the_plan_table() {
        assert_eq!(Quota::Requests.limit(Plan::Free), 20);
        assert_eq!(Quota::Requests.limit(Plan::Agency), 500);
        assert_eq!(Quota::Analyses.limit(Plan::Free), 10);
        assert_eq!(Quota::Analyses.limit(Plan::Agency), 1_000);
    }
}

//! Consecutive-failure circuit breaker guarding L2.
//!
//! Closed → (threshold consecutive failures) → Open → (cool-down elapsed; the background
//! reconnect task takes the single probe) → HalfOpen → success: Closed / failure: Open.
//! While Open or HalfOpen every request skips Redis at the cost of one atomic load.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
    pub(crate) fn gauge_value(self) -> i64 {
        self as i64
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

#[derive(Debug)]
pub struct Breaker {
    state: AtomicU8,
    failures: AtomicU32,
    threshold: u32,
    opened_at_ms: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    pub fn new(threshold: u32) -> Self {
        Breaker {
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            threshold: threshold.max(1),
            opened_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// May a request use Redis now?
    #[inline]
    pub fn allows(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// A request-path success.
    pub fn on_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// A request-path failure; returns true when this failure opened the breaker.
    pub fn on_failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.threshold {
            return self.trip();
        }
        false
    }

    /// Force Open (e.g. the startup probe failed). Returns true on a Closed→Open transition.
    pub fn trip(&self) -> bool {
        self.opened_at_ms.store(self.now_ms(), Ordering::Release);
        self.state.swap(OPEN, Ordering::AcqRel) == CLOSED
    }

    /// Milliseconds since the breaker last opened.
    pub fn open_for_ms(&self) -> u64 {
        self.now_ms()
            .saturating_sub(self.opened_at_ms.load(Ordering::Acquire))
    }

    /// Open → HalfOpen, for the one probe; false if not open.
    pub fn begin_probe(&self) -> bool {
        self.state
            .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The probe failed: back to Open with a fresh cool-down.
    pub fn probe_failed(&self) {
        self.opened_at_ms.store(self.now_ms(), Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
    }

    /// The probe succeeded (and pending invalidations were replayed): Closed.
    pub fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.state.store(CLOSED, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_and_closes() {
        let b = Breaker::new(3);
        assert!(b.allows());
        assert!(!b.on_failure());
        b.on_success();
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        assert!(b.on_failure(), "third consecutive failure opens");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allows());
        assert!(b.begin_probe());
        assert!(!b.begin_probe(), "only one probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.probe_failed();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.begin_probe());
        b.close();
        assert!(b.allows());
        assert_eq!(b.state().as_str(), "closed");
    }
}

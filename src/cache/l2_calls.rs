//! Every Redis command runs through here: under a time budget, feeding the breaker.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::future::FutureExt;

use super::{l2::L2Error, topology, BreakerState, Inner};

impl Inner {
    /// Run one L2 command under `budget`, feeding the breaker. Err when skipped too.
    pub(super) async fn l2_run<T, F>(&self, budget: Duration, f: F) -> Result<T, L2Error>
    where
        F: for<'c> FnOnce(
            &'c mut topology::RedisConn,
        ) -> BoxFuture<'c, Result<T, redis::RedisError>>,
    {
        let Some(l2) = &self.l2 else {
            return Err(L2Error::Pool("not configured".into()));
        };
        if self.shut.load(Ordering::Acquire) {
            return Err(L2Error::Pool("shut down".into()));
        }
        match l2.run(budget, f).await {
            Ok(v) => {
                self.breaker.on_success();
                self.connected.store(true, Ordering::Release);
                Ok(v)
            }
            Err(e) => {
                match &e {
                    L2Error::Timeout => self.m.l2_timeouts.inc(),
                    _ => self.m.l2_errors.inc(),
                }
                log::debug!("cache: redis op failed: {e}");
                if self.breaker.on_failure() {
                    self.on_trip();
                }
                Err(e)
            }
        }
    }

    pub(super) fn on_trip(&self) {
        log::warn!("cache: redis circuit breaker opened; serving from memory");
        self.connected.store(false, Ordering::Release);
        self.m.breaker_state.set(BreakerState::Open.gauge_value());
        if let Some(l2) = &self.l2 {
            l2.reset_pool();
        }
    }

    pub(super) async fn ping(&self, budget: Duration) -> bool {
        self.l2_run(budget, |c| {
            async move { redis::cmd("PING").query_async::<String>(c).await }.boxed()
        })
        .await
        .is_ok()
    }
}

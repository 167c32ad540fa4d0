//! The threads analyses run on. A fixed number of them (`ANALYSIS_CONCURRENCY`), apart from
//! the HTTP workers and from tokio's blocking pool, and by default at the lowest CPU priority
//! Linux offers (`SCHED_IDLE`): a burst of analyses then only takes CPU time that request
//! handling leaves over, so cached reads keep their latency while analyses run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::{oneshot, Semaphore};

use crate::config::AnalysisPriority;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("could not start the analysis threads: {0}")]
    Start(#[from] rayon::ThreadPoolBuildError),
    #[error("the analysis pool is closed")]
    Closed,
    #[error("an analysis panicked: {0}")]
    Panicked(String),
}

#[derive(Clone)]
pub struct AnalysisPool {
    threads: Arc<rayon::ThreadPool>,
    /// Callers wait here (asynchronously, cancellably) rather than in the threads' queue.
    permits: Arc<Semaphore>,
}

impl AnalysisPool {
    pub fn new(threads: usize, priority: AnalysisPriority) -> Result<Self, PoolError> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("analysis-{index}"))
            .start_handler(move |_| apply_priority(priority))
            .build()?;
        Ok(Self {
            threads: Arc::new(pool),
            permits: Arc::new(Semaphore::new(threads)),
        })
    }

    /// Runs `work` on an analysis thread once one is free. A panic in `work` is an error, not
    /// a crash.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Closed)?;
        let (done, result) = oneshot::channel();
        self.threads.spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work)).map_err(panic_message);
            // The thread is free again before the caller hears back.
            drop(permit);
            // The caller may have gone (a client that disconnected): nothing to tell.
            let _ = done.send(outcome);
        });
        result.await.map_err(|_| PoolError::Closed)?
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> PoolError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    PoolError::Panicked(message)
}

#[cfg(target_os = "linux")]
fn apply_priority(priority: AnalysisPriority) {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;

    if priority == AnalysisPriority::Normal {
        return;
    }
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(error) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    {
        // Still correct, only less kind to request latency while analyses run.
        log::warn!("analysis thread keeps normal priority: {error:?}");
    }
}

#[cfg(not(target_os = "linux"))]
fn apply_priority(_priority: AnalysisPriority) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_and_a_panic_is_an_error() {
        let pool = AnalysisPool::new(1, AnalysisPriority::Idle).expect("pool");

        let sum = pool.run(|| 2 + 2).await.expect("ran");
        let panicked = pool.run(|| -> u8 { panic!("rule bug") }).await;
        let after = pool
            .run(|| "still serving")
            .await
            .expect("ran after a panic");

        assert_eq!(sum, 4);
        assert!(matches!(panicked, Err(PoolError::Panicked(message)) if message == "rule bug"));
        assert_eq!(after, "still serving");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn idle_threads_run_under_sched_idle() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let idle = AnalysisPool::new(1, AnalysisPriority::Idle).expect("pool");
        let normal = AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool");

        let on_idle = idle.run(thread_schedule_policy).await.expect("ran");
        let on_normal = normal.run(thread_schedule_policy).await.expect("ran");

        assert_eq!(
            on_idle.expect("policy"),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        assert_ne!(
            on_normal.expect("policy"),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
    }
}

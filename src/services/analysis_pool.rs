//! The threads analyses run on. A fixed number of them (`ANALYSIS_CONCURRENCY`, at least
//! [`MIN_THREADS`]), apart from the HTTP workers and from tokio's blocking pool, and by default
//! at the lowest CPU priority Linux offers (`SCHED_IDLE`): a burst of analyses then only takes
//! CPU time that request handling leaves over, so cached reads keep their latency while
//! analyses run.
//!
//! Fairness between locations: a location's work first takes one of its own
//! [`AnalysisPool::per_location`] lane permits, and only then queues (first come, first
//! served) for a thread. So one location holds at most that many places in the thread queue,
//! and another location's analysis waits behind at most that much of its work (each bounded by
//! the analysis budget), however many requests it sends; a location with
//! [`MAX_WAITING_PER_LOCATION`] requests already waiting is refused at once.
//!
//! Cancellation: the work gets a flag that is raised when the caller stops waiting (its
//! future is dropped, e.g. at the request deadline). The analysis engine checks it, so the
//! thread is free again within one check instead of finishing work nobody will read.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use crate::config::AnalysisPriority;

/// Requests of one location that may wait for its lane; more are refused at once (each
/// waiter would only time out behind the others).
pub const MAX_WAITING_PER_LOCATION: usize = 16;

/// Fewest threads a pool has, whatever `ANALYSIS_CONCURRENCY` says: with one thread, one
/// location's long analysis would hold every place and the next location would wait behind it.
/// With two, a location holds at most one ([`AnalysisPool::per_location`]) and another
/// location's analysis starts at once. The second thread costs request handling nothing at
/// the default idle priority (it only takes CPU time the workers leave over).
pub const MIN_THREADS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("could not start the analysis threads: {0}")]
    Start(#[from] rayon::ThreadPoolBuildError),
    #[error("the analysis pool is closed")]
    Closed,
    #[error("an analysis panicked: {0}")]
    Panicked(String),
    /// The location already has [`MAX_WAITING_PER_LOCATION`] requests waiting.
    #[error("this location already has too many analyses waiting")]
    LocationBusy,
}

/// Whose work a job is, for fairness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// An analysis (or parse) for this location: it waits in the location's lane first.
    Location(&'a str),
    /// Bounded work nobody in particular asked for; only queues for a thread.
    Shared,
}

#[derive(Clone)]
pub struct AnalysisPool {
    threads: Arc<rayon::ThreadPool>,
    /// Callers wait here (asynchronously, cancellably, in arrival order) rather than in the
    /// threads' queue.
    permits: Arc<Semaphore>,
    lanes: Arc<Lanes>,
}

/// The per-location lanes in use (a lane is dropped when its last job is done).
struct Lanes {
    per_location: usize,
    by_location: Mutex<HashMap<String, Lane>>,
}

struct Lane {
    permits: Arc<Semaphore>,
    /// Jobs holding or waiting for one of the lane's permits.
    users: usize,
}

/// A job's place in its location's lane; leaving it (done or cancelled) frees the place.
struct LaneTicket {
    lanes: Arc<Lanes>,
    location: String,
    permits: Arc<Semaphore>,
}

impl Lanes {
    fn enter(self: &Arc<Self>, location: &str) -> Result<LaneTicket, PoolError> {
        let mut lanes = self
            .by_location
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lane = lanes.entry(location.to_owned()).or_insert_with(|| Lane {
            permits: Arc::new(Semaphore::new(self.per_location)),
            users: 0,
        });
        if lane.users >= self.per_location + MAX_WAITING_PER_LOCATION {
            return Err(PoolError::LocationBusy);
        }
        lane.users += 1;
        Ok(LaneTicket {
            lanes: Arc::clone(self),
            location: location.to_owned(),
            permits: Arc::clone(&lane.permits),
        })
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.by_location
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for LaneTicket {
    fn drop(&mut self) {
        let mut lanes = self
            .lanes
            .by_location
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(lane) = lanes.get_mut(&self.location) {
            lane.users = lane.users.saturating_sub(1);
            if lane.users == 0 {
                lanes.remove(&self.location);
            }
        }
    }
}

/// Raises the job's cancel flag when the caller's future is dropped before the job ended.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl AnalysisPool {
    pub fn new(threads: usize, priority: AnalysisPriority) -> Result<Self, PoolError> {
        let threads = threads.max(MIN_THREADS);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("analysis-{index}"))
            .start_handler(move |_| apply_priority(priority))
            .build()?;
        Ok(Self {
            threads: Arc::new(pool),
            permits: Arc::new(Semaphore::new(threads)),
            lanes: Arc::new(Lanes {
                per_location: Self::per_location(threads),
                by_location: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Threads one location may use (or queue for) at once: half of them, at least one, so
    /// the other half (at least one thread, as a pool has [`MIN_THREADS`]) is always there
    /// for the other locations.
    pub fn per_location(threads: usize) -> usize {
        (threads / 2).max(1)
    }

    /// Runs `work` on an analysis thread once `owner`'s lane and a thread are free. `work`
    /// gets the cancel flag, raised when the returned future is dropped before it ended. A
    /// panic in `work` is an error, not a crash.
    pub async fn run<T, F>(&self, owner: Owner<'_>, work: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&AtomicBool) -> T + Send + 'static,
    {
        let lane = match owner {
            Owner::Location(location) => Some(self.lanes.enter(location)?),
            Owner::Shared => None,
        };
        let lane_permit = match &lane {
            Some(ticket) => Some(
                Arc::clone(&ticket.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| PoolError::Closed)?,
            ),
            None => None,
        };
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Closed)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancel));
        let (done, result) = oneshot::channel();
        self.threads.spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| work(&cancel))).map_err(panic_message);
            // The thread and the lane are free again before the caller hears back; the
            // thread first, so a waiting location gets it ahead of this lane's next job.
            drop(permit);
            drop(lane_permit);
            drop(lane);
            // The caller may have gone (a client that disconnected): nothing to tell.
            let _ = done.send(outcome);
        });
        result.await.map_err(|_| PoolError::Closed)?
    }
}

/// How much CPU time the calling thread used since this was called: what an analysis budget
/// counts, so an analysis that waits for the CPU (its thread runs at idle priority) is not
/// taken for a complex one. Where the thread's CPU clock cannot be read, the wall clock.
pub fn thread_cpu_clock() -> impl Fn() -> Duration {
    let wall = Instant::now();
    let cpu = cpu_time::ThreadTime::try_now().ok();
    move || match &cpu {
        Some(start) => start.try_elapsed().unwrap_or_else(|_| wall.elapsed()),
        None => wall.elapsed(),
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
    use futures::poll;
    use std::sync::mpsc;
    use std::task::Poll;

    #[tokio::test]
    async fn work_runs_and_a_panic_is_an_error() {
        let pool = AnalysisPool::new(1, AnalysisPriority::Idle).expect("pool");

        let sum = pool.run(Owner::Shared, |_| 2 + 2).await.expect("ran");
        let panicked = pool
            .run(Owner::Location("a"), |_| -> u8 { panic!("rule bug") })
            .await;
        let after = pool
            .run(Owner::Location("a"), |_| "still serving")
            .await
            .expect("ran after a panic");

        assert_eq!(sum, 4);
        assert!(matches!(panicked, Err(PoolError::Panicked(message)) if message == "rule bug"));
        assert_eq!(after, "still serving");
        assert_eq!(pool.lanes.in_use(), 0, "finished jobs leave no lane behind");
    }

    /// A job that waits for `gate`, then records `name` in `order`.
    fn gated(
        name: &'static str,
        gate: mpsc::Receiver<()>,
        order: mpsc::Sender<&'static str>,
    ) -> impl FnOnce(&AtomicBool) -> &'static str + Send + 'static {
        move |_| {
            let _ = gate.recv();
            let _ = order.send(name);
            name
        }
    }

    fn recording(
        name: &'static str,
        order: mpsc::Sender<&'static str>,
    ) -> impl FnOnce(&AtomicBool) -> &'static str + Send + 'static {
        move |_| {
            let _ = order.send(name);
            name
        }
    }

    #[tokio::test]
    async fn another_location_runs_before_a_busy_locations_queued_work() {
        // Two threads (the fewest a pool has): location A's first job holds one (all A may
        // hold), location C's long job the other.
        let pool = AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool");
        let (order_tx, order) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let (open_c, gate_c) = mpsc::channel();
        let c1 = pool.run(Owner::Location("C"), gated("C1", gate_c, order_tx.clone()));
        let a1 = pool.run(Owner::Location("A"), gated("A1", gate, order_tx.clone()));
        let a2 = pool.run(Owner::Location("A"), recording("A2", order_tx.clone()));
        let a3 = pool.run(Owner::Location("A"), recording("A3", order_tx.clone()));
        let b1 = pool.run(Owner::Location("B"), recording("B1", order_tx.clone()));
        tokio::pin!(c1, a1, a2, a3, b1);
        // Each poll queues the job where it waits: C1 and A1 on the threads, A2 and A3 in A's
        // lane, B1 for a thread (after A's queued jobs arrived).
        assert!(matches!(poll!(&mut c1), Poll::Pending));
        assert!(matches!(poll!(&mut a1), Poll::Pending));
        assert!(matches!(poll!(&mut a2), Poll::Pending));
        assert!(matches!(poll!(&mut a3), Poll::Pending));
        assert!(matches!(poll!(&mut b1), Poll::Pending));

        open.send(()).expect("A1 waits");
        let results = tokio::join!(a1, a2, a3, b1);
        open_c.send(()).expect("C1 waits");
        c1.await.expect("C1 ran");

        assert!(results.0.is_ok() && results.1.is_ok() && results.2.is_ok() && results.3.is_ok());
        let ran: Vec<&str> = order.try_iter().collect();
        assert_eq!(ran, vec!["A1", "B1", "A2", "A3", "C1"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_the_default_settings_another_location_starts_while_one_locations_long_analysis_runs(
    ) {
        let settings_default = crate::config::DEFAULT_ANALYSIS_CONCURRENCY;
        let pool = AnalysisPool::new(settings_default, AnalysisPriority::Idle).expect("pool");
        let (order_tx, order) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let a1 = pool.run(Owner::Location("A"), gated("A1", gate, order_tx.clone()));
        let a2 = pool.run(Owner::Location("A"), recording("A2", order_tx.clone()));
        tokio::pin!(a1, a2);
        assert!(matches!(poll!(&mut a1), Poll::Pending));
        assert!(matches!(poll!(&mut a2), Poll::Pending));

        // A1 runs until the gate opens; B needs no thread of A's.
        let b1 = tokio::time::timeout(
            Duration::from_secs(30),
            pool.run(Owner::Location("B"), recording("B1", order_tx.clone())),
        )
        .await;
        let a2_waited = matches!(poll!(&mut a2), Poll::Pending);
        open.send(()).expect("A1 waits");
        let (a1, a2) = tokio::join!(a1, a2);

        assert_eq!(b1.expect("B did not wait for A").expect("B ran"), "B1");
        assert!(a2_waited, "A's second analysis waits for A's first");
        assert!(a1.is_ok() && a2.is_ok());
        let ran: Vec<&str> = order.try_iter().collect();
        assert_eq!(ran, vec!["B1", "A1", "A2"]);
    }

    #[tokio::test]
    async fn a_location_with_a_full_queue_is_refused_at_once_and_others_are_not() {
        let pool = AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool");
        let (order_tx, _order) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let running = pool.run(Owner::Location("A"), gated("A0", gate, order_tx.clone()));
        tokio::pin!(running);
        assert!(matches!(poll!(&mut running), Poll::Pending));
        let mut waiting = Vec::new();
        for _ in 0..MAX_WAITING_PER_LOCATION {
            let mut job =
                Box::pin(pool.run(Owner::Location("A"), recording("A", order_tx.clone())));
            assert!(matches!(poll!(&mut job), Poll::Pending));
            waiting.push(job);
        }

        let refused = pool.run(Owner::Location("A"), |_| "one too many").await;
        let other = Box::pin(pool.run(Owner::Location("B"), |_| "B"));

        assert!(matches!(refused, Err(PoolError::LocationBusy)));
        open.send(()).expect("A0 waits");
        assert_eq!(other.await.expect("B is not refused"), "B");
        for job in waiting {
            job.await.expect("queued A jobs run");
        }
        running.await.expect("A0 ran");
        assert_eq!(pool.lanes.in_use(), 0);
    }

    #[tokio::test]
    async fn a_dropped_caller_cancels_its_work_and_frees_the_thread() {
        let pool = AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool");
        let (started_tx, started) = mpsc::channel();
        let (saw_tx, saw) = mpsc::channel();
        let job = pool.run(Owner::Location("A"), move |cancel| {
            let _ = started_tx.send(());
            // Stands for an analysis checking its budget: it runs until cancelled (bounded,
            // so a broken flag fails the test instead of hanging it).
            let deadline = Instant::now() + Duration::from_secs(60);
            while !cancel.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = saw_tx.send(cancel.load(Ordering::Relaxed));
        });
        let mut job = Box::pin(job);
        assert!(matches!(poll!(&mut job), Poll::Pending));
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .expect("joined")
            .expect("the job started");

        drop(job);
        // The same location: its next job needs the place (and thread) the dropped one held.
        let next = pool.run(Owner::Location("A"), |cancel| {
            cancel.load(Ordering::Relaxed)
        });
        let next = next.await.expect("the thread is free again");

        let cancelled = tokio::task::spawn_blocking(move || saw.recv())
            .await
            .expect("joined")
            .expect("the job ended");
        assert!(cancelled, "the job saw its cancel flag");
        assert!(!next, "a job that is awaited is not cancelled");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn idle_threads_run_under_sched_idle() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let idle = AnalysisPool::new(1, AnalysisPriority::Idle).expect("pool");
        let normal = AnalysisPool::new(1, AnalysisPriority::Normal).expect("pool");

        let on_idle = idle
            .run(Owner::Shared, |_| thread_schedule_policy())
            .await
            .expect("ran");
        let on_normal = normal
            .run(Owner::Shared, |_| thread_schedule_policy())
            .await
            .expect("ran");

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

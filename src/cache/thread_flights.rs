//! Per-thread coalescing of identical Redis reads.
//!
//! Concurrent L1 misses for one key on one HTTP worker share a single GET. The sharing stops
//! at the thread on purpose: a read shared across workers wakes the waiting worker through
//! the kernel (an eventfd write, often a context switch), which the load benchmark measured
//! at a quarter of a wake-up per L2 hit with one process-wide flight map, plus a lock that
//! every worker took twice per read. Postgres loads still coalesce process-wide (the cache's
//! own flight map): exactly one query per instance matters there, not here.
//!
//! A flight is joined only while no invalidation has happened since it started (the caller
//! passes the stale-set guard's sequence) and while it is younger than `max_age` (the Redis
//! budget): a read that arrives after an acknowledged write never shares a GET sent before
//! it, and a flight whose requests were all cancelled is replaced, not resumed late.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use thread_local::ThreadLocal;

/// Above this many flights on one thread, ones older than `max_age` (abandoned) are dropped.
const PRUNE_AT: usize = 256;

pub(super) struct ThreadFlights<T: Send + Sync + 'static> {
    threads: ThreadLocal<RefCell<Flights<T>>>,
    max_age: Duration,
}

struct Flights<T> {
    next_id: u64,
    by_key: HashMap<String, Flight<T>, foldhash::fast::RandomState>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            next_id: 0,
            by_key: HashMap::default(),
        }
    }
}

struct Flight<T> {
    id: u64,
    seq: u64,
    started: Instant,
    shared: Shared<BoxFuture<'static, T>>,
}

impl<T: Clone + Send + Sync + 'static> ThreadFlights<T> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            threads: ThreadLocal::new(),
            max_age,
        }
    }

    /// The result of this thread's flight for `key` started at invalidation sequence `seq`,
    /// or of a new one built by `start` (which must not panic when polled: a panic would reach
    /// every request that joined), and whether an existing flight was joined.
    pub async fn run(
        &self,
        key: &str,
        seq: u64,
        start: impl FnOnce() -> BoxFuture<'static, T>,
    ) -> (T, bool) {
        let (id, shared, joined) = self.join_or_start(key, seq, start);
        let out = shared.await;
        self.finish(key, id);
        (out, joined)
    }

    fn join_or_start(
        &self,
        key: &str,
        seq: u64,
        start: impl FnOnce() -> BoxFuture<'static, T>,
    ) -> (u64, Shared<BoxFuture<'static, T>>, bool) {
        let mut flights = self.threads.get_or_default().borrow_mut();
        if let Some(flight) = flights.by_key.get(key) {
            if flight.seq == seq && flight.started.elapsed() < self.max_age {
                return (flight.id, flight.shared.clone(), true);
            }
        }
        if flights.by_key.len() >= PRUNE_AT {
            let max_age = self.max_age;
            flights.by_key.retain(|_, f| f.started.elapsed() < max_age);
        }
        flights.next_id += 1;
        let id = flights.next_id;
        let shared = start().shared();
        flights.by_key.insert(
            key.to_owned(),
            Flight {
                id,
                seq,
                started: Instant::now(),
                shared: shared.clone(),
            },
        );
        (id, shared, false)
    }

    /// The first of a flight's requests to see its result removes it (unless a newer flight
    /// replaced it meanwhile).
    fn finish(&self, key: &str, id: u64) {
        if let Some(cell) = self.threads.get() {
            let mut flights = cell.borrow_mut();
            if flights.by_key.get(key).is_some_and(|f| f.id == id) {
                flights.by_key.remove(key);
            }
        }
    }

    #[cfg(test)]
    fn len_here(&self) -> usize {
        self.threads.get().map_or(0, |c| c.borrow().by_key.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn counted(
        calls: &Arc<AtomicUsize>,
        gate: &Arc<tokio::sync::Notify>,
        value: u32,
    ) -> impl FnOnce() -> BoxFuture<'static, u32> {
        let (calls, gate) = (Arc::clone(calls), Arc::clone(gate));
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                gate.notified().await;
                value
            }
            .boxed()
        }
    }

    /// Lets every flight polled before it start, then completes them.
    async fn release(gate: &tokio::sync::Notify) {
        tokio::task::yield_now().await;
        gate.notify_waiters();
    }

    /// Flights, a count of the flights started and the gate that completes them.
    fn fixture(
        max_age: Duration,
    ) -> (
        ThreadFlights<u32>,
        Arc<AtomicUsize>,
        Arc<tokio::sync::Notify>,
    ) {
        (
            ThreadFlights::new(max_age),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(tokio::sync::Notify::new()),
        )
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_reads_of_one_key_share_one_flight_and_leave_nothing_behind() {
        let (flights, calls, gate) = fixture(Duration::from_secs(5));
        let reads = futures::future::join_all(
            (0..10).map(|_| flights.run("k", 1, counted(&calls, &gate, 7))),
        );
        let (results, ()) = futures::join!(reads, release(&gate));
        let values: Vec<u32> = results.iter().map(|(v, _)| *v).collect();
        assert_eq!(values, vec![7; 10]);
        assert_eq!(results.iter().filter(|(_, joined)| *joined).count(), 9);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len_here(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_read_after_an_invalidation_does_not_join_an_older_flight() {
        let (flights, calls, gate) = fixture(Duration::from_secs(5));
        let before = flights.run("k", 1, counted(&calls, &gate, 1));
        let after = flights.run("k", 2, counted(&calls, &gate, 2));
        let ((old, _), (new, joined), ()) = futures::join!(before, after, release(&gate));
        assert_eq!((old, new, joined), (1, 2, false));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(flights.len_here(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_flight_is_replaced_once_it_is_too_old() {
        let (flights, calls, gate) = fixture(Duration::from_millis(20));
        let abandoned = flights.run("k", 1, counted(&calls, &gate, 1));
        futures::pin_mut!(abandoned);
        assert!(futures::poll!(abandoned.as_mut()).is_pending());
        tokio::time::sleep(Duration::from_millis(30)).await;
        let fresh = flights.run("k", 1, || async { 2 }.boxed()).await;
        assert_eq!(fresh, (2, false));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

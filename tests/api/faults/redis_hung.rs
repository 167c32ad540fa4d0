//! Scenarios 2 and 3: Redis frozen (SIGSTOP) and Redis slowed to 2 s per command (proxy),
//! under load, with the in-process tier off so that every read goes through Redis.

use std::time::{Duration, Instant};

use super::harness::*;
use super::proxy::{Fault, FaultProxy};

fn fault_duration() -> Duration {
    if scale() > 1 {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(3)
    }
}

fn no_l1(env: &mut std::collections::HashMap<String, String>) {
    env.insert("CACHE_L1_CAPACITY".into(), "0".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_by_sigstop_holds_no_request_and_costs_no_errors() {
    let redis = RedisServer::start(None).await;
    let app = app_on(&redis.url(), no_l1).await;
    let seeded = seed(&app, "locFrozen", 20).await;
    let total = scaled(2_000);

    let load = Load::reads(&app.address, &seeded, 8, total);
    load.wait_for(total / 5).await;
    let faulted = Instant::now();
    redis.signal("-STOP");
    let degraded = wait_health(&app, "degraded", Duration::from_secs(2)).await;
    tokio::time::sleep(fault_duration()).await;
    redis.signal("-CONT");
    let healthy = wait_health(&app, "healthy", Duration::from_secs(5)).await;
    load.wait_for(total).await;
    let tally = load.finish().await;
    let (baseline, p99) = split_p99(&tally, faulted);

    Row {
        scenario: "2. Redis frozen (SIGSTOP)",
        requests: tally.count(),
        five_xx: tally.five_xx(),
        stale_reads: 0,
        stale_served: tally.stale_served(),
        lost_writes: 0,
        recovery: format!(
            "frozen {}, healthy {} after SIGCONT; p99 before the fault {:.1} ms, max {:.0} ms",
            secs(fault_duration()),
            healthy.map(secs).unwrap_or("never".into()),
            baseline.as_secs_f64() * 1000.0,
            tally.max().as_secs_f64() * 1000.0
        ),
        p99,
    }
    .print();
    assert_eq!(tally.five_xx() + tally.wrong(), 0, "{}", tally.summary());
    assert!(
        p99 < p99_bound(baseline),
        "p99 {p99:?} from the fault on (before it: {baseline:?}); {}",
        tally.summary()
    );
    assert!(tally.max() < NO_WAIT_BOUND, "{}", tally.summary());
    assert!(degraded.is_some(), "health never said degraded");
    assert!(healthy.is_some(), "not healthy within 5 s of SIGCONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slowed_to_two_seconds_per_command_holds_no_request() {
    let redis = RedisServer::start(None).await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let app = app_on(&proxy.url("redis://"), no_l1).await;
    let seeded = seed(&app, "locSlow", 20).await;
    let total = scaled(2_000);

    let load = Load::reads(&app.address, &seeded, 8, total);
    load.wait_for(total / 5).await;
    let faulted = Instant::now();
    proxy.set(Fault::Latency(Duration::from_secs(2)));
    let degraded = wait_health(&app, "degraded", Duration::from_secs(2)).await;
    tokio::time::sleep(fault_duration()).await;
    proxy.set(Fault::Pass);
    let healthy = wait_health(&app, "healthy", Duration::from_secs(8)).await;
    load.wait_for(total).await;
    let tally = load.finish().await;
    let (baseline, p99) = split_p99(&tally, faulted);

    Row {
        scenario: "3. Redis slowed to 2 s per command (proxy)",
        requests: tally.count(),
        five_xx: tally.five_xx(),
        stale_reads: 0,
        stale_served: tally.stale_served(),
        lost_writes: 0,
        recovery: format!(
            "slow {}, healthy {} after healing; p99 before the fault {:.1} ms, max {:.0} ms",
            secs(fault_duration()),
            healthy.map(secs).unwrap_or("never".into()),
            baseline.as_secs_f64() * 1000.0,
            tally.max().as_secs_f64() * 1000.0
        ),
        p99,
    }
    .print();
    assert_eq!(tally.five_xx() + tally.wrong(), 0, "{}", tally.summary());
    assert!(
        p99 < p99_bound(baseline),
        "p99 {p99:?} from the fault on (before it: {baseline:?}); {}",
        tally.summary()
    );
    assert!(tally.max() < NO_WAIT_BOUND, "{}", tally.summary());
    assert!(degraded.is_some(), "health never said degraded");
    assert!(healthy.is_some(), "not healthy within 8 s of healing");
}

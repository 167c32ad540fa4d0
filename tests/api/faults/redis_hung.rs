//! Scenarios 2 and 3: Redis frozen (SIGSTOP) and Redis slowed to 2 s per command (proxy),
//! under load, with the in-process tier off so that every read goes through Redis.

use std::time::{Duration, Instant};

use super::harness::*;
use super::proxy::{Fault, FaultProxy};
use crate::helpers::TestApp;

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

/// One hung-Redis scenario: reads under load, `hang` for the fault's duration, `heal`, then
/// 0 5xx, no wrong body, a bounded p99, no request held, degraded then healthy again.
struct Hang<'a> {
    scenario: &'static str,
    location: &'static str,
    /// How the fault is described in the row ("frozen", "slow").
    fault: &'static str,
    healed_by: &'static str,
    healthy_within: Duration,
    app: &'a TestApp,
}

impl Hang<'_> {
    async fn run(self, hang: impl FnOnce(), heal: impl FnOnce()) {
        let app = self.app;
        let seeded = seed(app, self.location, 20).await;
        let total = scaled(2_000);

        let load = Load::reads(&app.address, &seeded, 8, total);
        load.wait_for(total / 5).await;
        let faulted = Instant::now();
        hang();
        let degraded = wait_health(app, "degraded", Duration::from_secs(2)).await;
        tokio::time::sleep(fault_duration()).await;
        heal();
        let healthy = wait_health(app, "healthy", self.healthy_within).await;
        load.wait_for(total).await;
        let tally = load.finish().await;
        let (baseline, p99) = split_p99(&tally, faulted);

        Row {
            scenario: self.scenario,
            requests: tally.count(),
            five_xx: tally.five_xx(),
            stale_reads: 0,
            stale_served: tally.stale_served(),
            lost_writes: 0,
            recovery: format!(
                "{} {}, healthy {} after {}; p99 before the fault {:.1} ms, max {:.0} ms",
                self.fault,
                secs(fault_duration()),
                healthy.map(secs).unwrap_or("never".into()),
                self.healed_by,
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
        assert!(
            healthy.is_some(),
            "not healthy within {:?} of {}",
            self.healthy_within,
            self.healed_by
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_by_sigstop_holds_no_request_and_costs_no_errors() {
    let redis = RedisServer::start(None).await;
    let app = app_on(&redis.url(), no_l1).await;
    Hang {
        scenario: "2. Redis frozen (SIGSTOP)",
        location: "locFrozen",
        fault: "frozen",
        healed_by: "SIGCONT",
        healthy_within: Duration::from_secs(5),
        app: &app,
    }
    .run(|| redis.signal("-STOP"), || redis.signal("-CONT"))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slowed_to_two_seconds_per_command_holds_no_request() {
    let redis = RedisServer::start(None).await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let app = app_on(&proxy.url("redis://"), no_l1).await;
    Hang {
        scenario: "3. Redis slowed to 2 s per command (proxy)",
        location: "locSlow",
        fault: "slow",
        healed_by: "healing",
        healthy_within: Duration::from_secs(8),
        app: &app,
    }
    .run(
        || proxy.set(Fault::Latency(Duration::from_secs(2))),
        || proxy.set(Fault::Pass),
    )
    .await;
}

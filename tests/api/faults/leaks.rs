//! Scenario 9: no leaks after repeated fault cycles. The real binary runs as a child process
//! so its file descriptors can be counted alone; Redis clients and Postgres connections are
//! counted on the servers.

use std::time::Duration;

use sqlx::Connection;

use super::harness::*;
use super::proxy::{Fault, FaultProxy};
use crate::helpers::{base_environment, TestDatabase};

const REDIS_POOL: usize = 16;
const PG_POOL: usize = 10;

async fn pg_connections(database: &str) -> usize {
    let mut admin = sqlx::PgConnection::connect(crate::helpers::admin_database_url().as_str())
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity \
         where datname = $1 and application_name = 'ghl-workflow-debugger'",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    n as usize
}

async fn terminate(database: &str) {
    let mut admin = sqlx::PgConnection::connect(crate::helpers::admin_database_url().as_str())
        .await
        .unwrap();
    let _: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = $1 and application_name = 'ghl-workflow-debugger'",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_fault_cycles_leak_no_descriptors_redis_clients_or_postgres_connections() {
    let mut redis = RedisServer::start(None).await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let db = TestDatabase::create().await;
    let mut env = base_environment(&db.url);
    env.insert("REDIS_URL".into(), proxy.url("redis://"));
    env.insert("REDIS_POOL_SIZE".into(), REDIS_POOL.to_string());
    env.insert("DATABASE_MAX_CONNECTIONS".into(), PG_POOL.to_string());
    env.insert("CACHE_L1_CAPACITY".into(), "0".into());
    env.insert("RUST_LOG".into(), "warn,ghl_workflow_debugger=info".into());
    let (child, logs, app) = spawn_binary(&env).await;
    let pid = child.id().unwrap();
    crate::caching::wait_for_redis(&app).await;
    let seeded = seed(&app, "locLeaks", 10).await;
    let per_cycle = scaled(150);

    // Warm-up: pools at their working size.
    Load::reads(&app.address, &seeded, 8, per_cycle)
        .finish()
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = open_fds(pid);
    let mut requests = per_cycle;
    let (mut errors, mut worst_fds, mut worst_redis, mut worst_pg) = (0, 0, 0, 0);
    let mut history = Vec::new();

    for cycle in 0..10 {
        let load = Load::reads(&app.address, &seeded, 8, per_cycle);
        load.wait_for(per_cycle / 3).await;
        match cycle % 5 {
            0 => {
                redis.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                redis.restart().await;
            }
            1 => proxy.reset_all(),
            2 => {
                proxy.set(Fault::Blackhole);
                tokio::time::sleep(Duration::from_millis(700)).await;
                proxy.set(Fault::Pass);
            }
            3 => {
                proxy.set(Fault::CutAfter(50));
                tokio::time::sleep(Duration::from_millis(300)).await;
                proxy.set(Fault::Nonsense);
                tokio::time::sleep(Duration::from_millis(300)).await;
                proxy.set(Fault::Pass);
            }
            _ => {
                redis.signal("-STOP");
                tokio::time::sleep(Duration::from_millis(700)).await;
                redis.signal("-CONT");
                terminate(&db.name).await;
            }
        }
        let tally = load.finish().await;
        requests += tally.count();
        errors += tally.five_xx() + tally.wrong();
        for s in tally.samples.iter().filter(|s| !s.correct) {
            eprintln!("cycle {cycle}: {s:?}");
        }
        assert!(
            wait_health(&app, "healthy", Duration::from_secs(8))
                .await
                .is_some(),
            "cycle {cycle}: not healthy again"
        );
        // Use the healed pools once, then count.
        Load::reads(&app.address, &seeded, 8, 50).finish().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (fds, clients, pg) = (
            open_fds(pid),
            redis.client_count().await - 1,
            pg_connections(&db.name).await,
        );
        history.push((fds, clients, pg));
        worst_fds = worst_fds.max(fds);
        worst_redis = worst_redis.max(clients);
        worst_pg = worst_pg.max(pg);
    }
    drop(child);
    if errors > 0 {
        eprintln!("{}", logs.lock().unwrap());
    }

    Row {
        scenario: "9. Leaks after 10 fault cycles (kill, reset, blackhole, cut, nonsense, SIGSTOP, pg_terminate_backend)",
        requests,
        five_xx: errors,
        stale_reads: 0,
        stale_served: 0,
        lost_writes: 0,
        recovery: format!(
            "fds {baseline} before, max {worst_fds}; Redis clients max {worst_redis} (pool {REDIS_POOL} + subscriber); Postgres connections max {worst_pg} (pool {PG_POOL})"
        ),
        p99: Duration::ZERO,
    }
    .print();
    eprintln!("(fds, redis clients, postgres connections) per cycle: {history:?}");
    assert_eq!(errors, 0, "5xx or wrong bodies during the cycles");
    assert!(
        worst_redis <= REDIS_POOL + 1,
        "Redis clients above the pool bound: {history:?}"
    );
    assert!(
        worst_pg <= PG_POOL,
        "Postgres connections above the pool bound: {history:?}"
    );
    assert!(
        worst_fds <= baseline + REDIS_POOL + 1 + PG_POOL,
        "descriptors grew past the pool bounds: {baseline} then {history:?}"
    );
    let last = history.last().unwrap().0;
    let first = history.first().unwrap().0;
    assert!(
        last <= first + 5,
        "descriptors keep growing: {baseline} then {history:?}"
    );
}

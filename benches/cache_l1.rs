#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is the point
//! L1 crate comparison (quick_cache vs moka) and the Cache's own paths.
//!
//! Run: `cargo bench --bench cache_l1` (needs Redis at 127.0.0.1:6379 for the L2 benches).
//! Per-entry memory: `L1_MEM_PROBE=quick_cache|moka cargo bench --bench cache_l1` prints the RSS
//! delta per entry for 100k entries sharing one 2 KiB `Bytes` payload (so the number is the
//! structure's overhead, key included) and exits.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use ghl_workflow_debugger::cache::{Cache, CacheSettings, CacheStatus, Tier};
use ghl_workflow_debugger::config::RedisTopology;

const N: usize = 10_000;

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("gwd:v1:workflow:{{loc{}}}:wf{i}", i % 50))
        .collect()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn mem_probe(which: &str) {
    const M: usize = 100_000;
    let ks = keys(M);
    let payload = Bytes::from(vec![b'x'; 2048]);
    let keys_bytes: usize = ks.iter().map(|k| k.capacity() + 24).sum();
    let before = rss_bytes();
    match which {
        "quick_cache" => {
            let c: quick_cache::sync::Cache<String, (Bytes, u64, u64, bool)> =
                quick_cache::sync::Cache::new(M);
            for k in &ks {
                c.insert(k.clone(), (payload.clone(), 1, 2, false));
            }
            let after = rss_bytes();
            println!(
                "quick_cache: {} entries, RSS delta {:.0} B/entry (keys alone ~{:.0} B), memory_used {:.0} B/entry",
                c.len(),
                (after - before) as f64 / M as f64,
                keys_bytes as f64 / M as f64,
                c.memory_used().total() as f64 / M as f64
            );
        }
        _ => {
            let c: moka::sync::Cache<String, (Bytes, u64, u64, bool)> =
                moka::sync::Cache::builder().max_capacity(M as u64).build();
            for k in &ks {
                c.insert(k.clone(), (payload.clone(), 1, 2, false));
            }
            c.run_pending_tasks();
            let after = rss_bytes();
            println!(
                "moka: {} entries, RSS delta {:.0} B/entry (keys alone ~{:.0} B)",
                c.entry_count(),
                (after - before) as f64 / M as f64,
                keys_bytes as f64 / M as f64
            );
        }
    }
}

fn crate_comparison(c: &mut Criterion) {
    let ks = keys(N);
    let payload = Bytes::from(vec![b'x'; 2048]);
    let qc: quick_cache::sync::Cache<String, Bytes> = quick_cache::sync::Cache::new(N);
    let mc: moka::sync::Cache<String, Bytes> =
        moka::sync::Cache::builder().max_capacity(N as u64).build();
    for k in &ks {
        qc.insert(k.clone(), payload.clone());
        mc.insert(k.clone(), payload.clone());
    }
    mc.run_pending_tasks();
    let mut g = c.benchmark_group("l1_crate_hit");
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("quick_cache", "2KiB"), |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(qc.get(ks[i].as_str()))
        })
    });
    g.bench_function(BenchmarkId::new("moka", "2KiB"), |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(mc.get(ks[i].as_str()))
        })
    });
    g.finish();
}

fn cache_paths(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("bench{:08x}", rand::random::<u32>());
    let payload = Bytes::from(vec![b'x'; 2048]);
    let mk = |l1_capacity: u64| {
        let s = CacheSettings {
            prefix: prefix.clone(),
            redis: Some(RedisTopology::single("redis://127.0.0.1:6379")),
            l1_capacity,
            ..CacheSettings::default()
        };
        rt.block_on(async {
            let c = Cache::new(s, &prometheus::Registry::new()).unwrap();
            c.wait_ready(Duration::from_secs(3)).await;
            c
        })
    };
    let with_l1 = mk(10_000);
    let no_l1 = mk(0);
    let key = with_l1.keys().workflow("loc1", "hot");
    rt.block_on(with_l1.set(&key, payload.clone(), Duration::from_secs(600)));
    let mut g = c.benchmark_group("cache");
    g.bench_function("l1_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let r = with_l1
                .get_or_load(&key, Duration::from_secs(600), || async {
                    Ok::<_, std::io::Error>(None)
                })
                .await
                .unwrap();
            debug_assert_eq!(r.status, CacheStatus::Hit(Tier::L1));
            black_box(r)
        })
    });
    g.bench_function("l2_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let r = no_l1
                .get_or_load(&key, Duration::from_secs(600), || async {
                    Ok::<_, std::io::Error>(None)
                })
                .await
                .unwrap();
            debug_assert_eq!(r.status, CacheStatus::Hit(Tier::L2));
            black_box(r)
        })
    });
    let mut n = 0u64;
    g.bench_function("miss_and_load", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let k = with_l1.keys().workflow("loc1", &format!("cold{n}"));
            let p = payload.clone();
            let c = &with_l1;
            async move {
                let r = c
                    .get_or_load(&k, Duration::from_secs(5), move || async move {
                        Ok::<_, std::io::Error>(Some(p))
                    })
                    .await
                    .unwrap();
                black_box(r)
            }
        })
    });
    g.finish();
    rt.block_on(async {
        let _ = with_l1.flush().await;
        with_l1.shutdown().await;
        no_l1.shutdown().await;
    });
}

fn main() {
    if let Ok(which) = std::env::var("L1_MEM_PROBE") {
        mem_probe(&which);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    crate_comparison(&mut c);
    cache_paths(&mut c);
    c.final_summary();
}

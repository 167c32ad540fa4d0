//! Reads across regions: with the write's consistency token (never older, in any region),
//! and without it (fresh within the replica's delay + 1 s, never older afterwards, served
//! mostly from the region's caches).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::harness::*;
use crate::faults::harness::percentile;
use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_carrying_a_writes_token_is_never_older_in_any_region() {
    let Some(r) = Regions::start(Options::default()).await else {
        return;
    };
    r.seed().await;
    let health = health(&r.b[0]).await;
    assert_eq!(health["region"], "b");
    assert_eq!(health["checks"]["replica"]["status"], "healthy", "{health}");
    assert_eq!(super::harness::health(&r.a).await["region"], "a");

    let (mut token_reads, mut older_without) = (Vec::new(), 0);
    const ROUNDS: usize = 16;
    for n in 0..ROUNDS {
        let id = n % IDS;
        // Alternately a write in the primary's region and one in the replica's.
        let writer = if n % 2 == 0 {
            &r.a
        } else {
            &r.b[n % r.b.len()]
        };
        let put = put(writer, &r.key, id, &format!("round {n}")).await;
        assert!(put.ok(), "write {n}: {}", put.status);
        let token = put
            .token
            .clone()
            .expect("a write answers X-Consistency-Token");
        // Without the token, region b may still show the older version (its replica is
        // 300 ms behind): counted, not held against it.
        let plain = get(&r.b[0], &r.key, id, None).await;
        if plain.version < put.version {
            older_without += 1;
        }
        for app in r.all() {
            let got = get(app, &r.key, id, Some(&token)).await;
            assert_eq!(got.status, 200, "token read {n}");
            assert!(
                got.version >= put.version,
                "round {n}: read v{} on {} after v{} was acknowledged, with its token: {got:?}",
                got.version,
                app.env["REGION"],
                put.version
            );
            token_reads.push(got);
        }
    }
    // A repeated token read is answered from the cache once the value is known that new.
    let put = put(&r.a, &r.key, 0, "cached").await;
    let token = put.token.unwrap();
    let mut answers = Vec::new();
    for _ in 0..40 {
        let got = get(&r.b[0], &r.key, 0, Some(&token)).await;
        assert!(got.version >= put.version, "{got:?}");
        let hit = got.hit();
        answers.push(got);
        if hit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = answers.last().unwrap();
    assert!(last.hit(), "token reads never hit the cache: {answers:?}");
    println!(
        "\nregions: the same token read turned into a cache hit after {} (read {})",
        millis(last.started - answers[0].started),
        answers.len()
    );

    // A token that is not ours is refused, not ignored.
    let bad = crate::faults::harness::client()
        .get(r.b[0].url("/api/workflows/wf0"))
        .bearer_auth(&r.key)
        .header("x-consistency-token", "16/B374D848")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let latency: Vec<Duration> = token_reads.iter().map(|g| g.finished - g.started).collect();
    println!(
        "\nregions: {} token reads right after the write (replica {} behind): p50 {}, max {}; {older_without} of {ROUNDS} tokenless reads in b right after the write were older",
        token_reads.len(),
        millis(r.apply_delay),
        millis(percentile(latency.clone(), 0.5)),
        millis(percentile(latency, 1.0)),
    );
}

/// Readers on every instance of region b until `stop`, without a token.
fn readers(
    apps: &[TestApp],
    key: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Got>>> {
    let mut tasks = Vec::new();
    for app in apps {
        for _ in 0..2 {
            let (address, key, stop) = (app.address.clone(), key.to_owned(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let app = TestApp {
                    address,
                    client: crate::faults::harness::client(),
                    database: None,
                    env: Default::default(),
                };
                let mut out = Vec::new();
                let mut n = 0;
                // Bounded by count too: a stuck stop flag cannot spin forever.
                while !stop.load(Ordering::SeqCst) && n < 200_000 {
                    out.push(get(&app, &key, n % IDS, None).await);
                    n += 1;
                }
                out
            }));
        }
    }
    tasks
}

/// What the region-b readers saw while region a wrote.
pub struct Freshness {
    pub reads: Vec<Got>,
    /// Per write: how long after its acknowledgement region b turned fresh for good.
    pub fresh_after: Vec<Duration>,
    pub writes: usize,
}

/// `writes` writes in region a, `gap` apart, while region b reads without tokens; `during`
/// runs once the readers have started (a fault, say).
pub async fn freshness_run<F, Fut>(
    r: &Regions,
    writes: usize,
    gap: Duration,
    during: F,
) -> Freshness
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = readers(&r.b, &r.key, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    during().await;
    let mut acked = Vec::new();
    for n in 0..writes {
        let put = put(&r.a, &r.key, n % IDS, &format!("fresh {n}")).await;
        assert!(put.ok(), "write {n}: {}", put.status);
        acked.push((n % IDS, put.version, put.acked));
        tokio::time::sleep(gap).await;
    }
    // The last write's replay, plus a second.
    tokio::time::sleep(r.apply_delay + Duration::from_millis(1_200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut reads = Vec::new();
    for t in tasks {
        reads.extend(t.await.unwrap());
    }
    reads.sort_by_key(|g| g.started);
    // Fresh for good: the start of the first read from which on every read of the id
    // (begun later) shows at least the write's version.
    let fresh_after = acked
        .iter()
        .map(|(id, version, at)| {
            let of_id: Vec<&Got> = reads
                .iter()
                .filter(|g| g.id == *id && g.started >= *at)
                .collect();
            let last_old = of_id.iter().rposition(|g| g.version < *version);
            let fresh = match last_old {
                Some(n) => of_id.get(n + 1).map(|g| g.started),
                None => of_id.first().map(|g| g.started),
            };
            fresh.map_or(Duration::MAX, |t| t - *at)
        })
        .collect();
    Freshness {
        reads,
        fresh_after,
        writes,
    }
}

impl Freshness {
    pub fn errors(&self) -> usize {
        self.reads.iter().filter(|g| g.status != 200).count()
    }

    pub fn hit_share(&self) -> f64 {
        self.reads.iter().filter(|g| g.hit()).count() as f64 / self.reads.len().max(1) as f64
    }

    pub fn l1_share(&self) -> f64 {
        self.reads
            .iter()
            .filter(|g| g.hit() && g.tier == "l1")
            .count() as f64
            / self.reads.len().max(1) as f64
    }

    pub fn summary(&self, title: &str) -> String {
        let worst = self.fresh_after.iter().max().copied().unwrap_or_default();
        format!(
            "{title}: {} reads in b, {} errors, {:.0} % from the caches ({:.0} % L1); {} writes in a, fresh in b after p50 {}, max {}; {} reads went back",
            self.reads.len(),
            self.errors(),
            self.hit_share() * 100.0,
            self.l1_share() * 100.0,
            self.writes,
            millis(percentile(self.fresh_after.clone(), 0.5)),
            millis(worst),
            went_back(&self.reads).len(),
        )
    }

    /// The bar for reads without a token.
    pub fn assert_fresh_and_monotonic(&self, delay: Duration) {
        assert_eq!(self.errors(), 0, "errors in region b");
        let bound = delay + Duration::from_secs(1);
        for (n, after) in self.fresh_after.iter().enumerate() {
            assert!(
                *after <= bound,
                "write {n}: fresh in b only after {after:?}"
            );
        }
        let back = went_back(&self.reads);
        assert!(
            back.is_empty(),
            "{} reads went back, e.g. {:?}",
            back.len(),
            back.first()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_region_b_turns_fresh_within_the_replica_delay_and_never_goes_back() {
    let Some(r) = Regions::start(Options::default()).await else {
        return;
    };
    r.seed().await;
    let run = freshness_run(&r, 12, Duration::from_millis(400), || async {}).await;
    println!("\n{}", run.summary("regions, no token"));
    run.assert_fresh_and_monotonic(r.apply_delay);
    assert!(
        run.hit_share() > 0.5,
        "b served {:.2} from its caches",
        run.hit_share()
    );
    assert!(
        reads_to(&r.b[0], "replica").await > 0.0,
        "b read its replica"
    );
}

//! TTL constants of CONTRACT §6 (the original service's `CacheTTL`) and jitter.
//!
//! [`crate::cache::Cache`] applies [`with_jitter`] itself to every TTL it is given
//! (`set`, `get_or_load`, `warm`): pass the plain constants, do not jitter twice.

use rand::Rng;
use std::time::Duration;

/// 1 minute.
pub const SHORT: Duration = Duration::from_secs(60);
/// 5 minutes.
pub const MEDIUM: Duration = Duration::from_secs(300);
/// 10 minutes.
pub const WORKFLOW: Duration = Duration::from_secs(600);
/// 15 minutes.
pub const USER: Duration = Duration::from_secs(900);
/// 30 minutes.
pub const LONG: Duration = Duration::from_secs(1800);
/// 1 hour.
pub const ANALYSIS: Duration = Duration::from_secs(3600);

/// Spread expiries so keys filled together do not expire together: `ttl · U(0.9, 1.1)`,
/// never below 1 ms for a non-zero ttl.
pub fn with_jitter(ttl: Duration) -> Duration {
    if ttl.is_zero() {
        return ttl;
    }
    let factor: f64 = rand::rng().random_range(0.9..=1.1);
    ttl.mul_f64(factor).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_contract() {
        let secs: Vec<u64> = [SHORT, MEDIUM, WORKFLOW, USER, LONG, ANALYSIS]
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(secs, vec![60, 300, 600, 900, 1800, 3600]);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let mut seen = std::collections::HashSet::new();
        for base in [SHORT, WORKFLOW, ANALYSIS] {
            for _ in 0..2_000 {
                let j = with_jitter(base);
                assert!(
                    j >= base.mul_f64(0.9) && j <= base.mul_f64(1.1),
                    "{j:?} vs {base:?}"
                );
                seen.insert(j);
            }
        }
        assert!(seen.len() > 100, "jitter should spread values");
        assert_eq!(with_jitter(Duration::ZERO), Duration::ZERO);
    }
}

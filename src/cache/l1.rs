//! The in-process tier's value and weigher (quick_cache does the eviction).

use bytes::Bytes;
use quick_cache::Weighter;

#[derive(Clone)]
pub(crate) struct L1Entry {
    pub bytes: Bytes,
    pub logical_ms: u64,
    pub physical_ms: u64,
    pub negative: bool,
    /// Copied from Redis under the Redis trust epoch given (0: loaded from Postgres, or set).
    /// Such a copy is only as current as Redis was, and Redis is kept current by tombstones
    /// that travel through Redis alone: it answers only under the Redis lease, and only in
    /// the epoch it was taken in (see `Inner::withdraw_trust`).
    pub l2_epoch: u64,
    /// A primary position the value reflects at least (0: unknown, e.g. copied from Redis):
    /// a read carrying a consistency token at or below it may be answered with it.
    pub at: u64,
}

#[derive(Clone)]
pub(crate) struct L1Weigher {
    pub min: u64,
}

/// Rough per-entry overhead (key String, entry struct, map slot) added to the bytes.
pub(crate) const ENTRY_OVERHEAD: u64 = 96;

impl Weighter<String, L1Entry> for L1Weigher {
    fn weight(&self, key: &String, val: &L1Entry) -> u64 {
        (key.len() as u64 + val.bytes.len() as u64 + ENTRY_OVERHEAD).max(self.min)
    }
}

pub(crate) type L1 = quick_cache::sync::Cache<String, L1Entry, L1Weigher>;

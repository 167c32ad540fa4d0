//! Reads that carry a consistency token (issue 21): the answer must reflect the primary's
//! position `position` (a write the client made, in any region) or a later one.
//!
//! An L1 copy answers when it is known to be that new: loaded at or after the position
//! (`L1Entry::at`), or held by an instance that has applied every write committed up to it
//! (the applied watermark, see `region`: the copy would have been dropped otherwise). Redis
//! is not asked (its values do not say where they were loaded). Otherwise the loader runs
//! with the position as a requirement: the repository reads the replica once it has
//! replayed it, else the primary. The value it returns fills the tiers like any load's;
//! a stale copy is never an answer (it may be older than the token).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::metrics::{Layer, Op};
use super::region::{reporting_key_read, with_required};
use super::{l1_hit, now_ms, Cache, CacheKey, CacheRead, CacheStatus, L1Probe, LoadError};

impl Cache {
    /// The in-process tier alone, for a read that must reflect `position`.
    pub fn probe_l1_at(&self, key: &CacheKey, position: u64) -> L1Probe {
        let i = &self.0;
        let res = key.resource();
        let Some(l1) = i.l1_for(res).filter(|_| !i.s.bypass) else {
            return L1Probe::Missed { stale: None };
        };
        let answer = l1.get(key.as_str()).filter(|e| {
            i.l1_answers(e, now_ms()) && (e.at >= position || i.region.applied() >= position)
        });
        match answer {
            Some(e) => {
                i.m.op(Layer::Memory, Op::Hit, res).inc();
                L1Probe::Fresh(l1_hit(e))
            }
            None => {
                i.m.op(Layer::Memory, Op::Miss, res).inc();
                L1Probe::Missed { stale: None }
            }
        }
    }

    /// After [`Cache::probe_l1_at`] missed: the loader, asked for `position` (see
    /// `region::required`), and a guarded fill with what it read. Not shared with other
    /// loads: theirs may not reach the position.
    pub async fn load_at<E, F, Fut>(
        &self,
        key: &CacheKey,
        ttl: Duration,
        position: u64,
        loader: F,
    ) -> Result<CacheRead, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, E>>,
    {
        let i = &self.0;
        let ticket = i.guard.ticket();
        i.m.loads.inc();
        let known = i.region.primary_known();
        // Boxed: a load (an overview's, say) is a large future in a debug build, and each
        // wrapper below would copy it onto the worker's stack (Schemathesis overflowed one).
        let load = with_required(position, Box::pin(loader()));
        let (loaded, at) = reporting_key_read(&i.region, key.as_str(), known, load).await;
        match loaded {
            Ok(value) => {
                let guard = Some((ticket, None));
                i.fill(key, value.clone(), ttl, guard, false, Some(at))
                    .await;
                Ok(CacheRead {
                    value,
                    status: CacheStatus::Miss,
                })
            }
            Err(e) => Err(LoadError::Loader(Arc::new(e))),
        }
    }
}

//! Background tasks: the breaker's reconnect prober and the invalidation subscriber.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::breaker::BreakerState;
use super::{lock, now_ms, Inner};
use crate::config::NodeAddr;

/// Breaker probing with capped backoff, pending-invalidation replay, gauge refresh.
pub(super) async fn reconnect_loop(weak: Weak<Inner>, mut rx: watch::Receiver<bool>) {
    {
        let Some(i) = weak.upgrade() else { return };
        if !i.ping(i.probe_budget()).await && i.breaker.trip() {
            log::warn!("cache: redis not reachable at startup; serving from memory");
            i.on_trip();
        }
        i.probed.store(true, Ordering::Release);
    }
    let mut attempt: u32 = 0;
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = rx.changed() => return,
        }
        let Some(i) = weak.upgrade() else { return };
        if i.shut.load(Ordering::Acquire) {
            return;
        }
        tick += 1;
        if tick.is_multiple_of(10) {
            i.refresh_gauges();
        }
        match i.breaker.state() {
            BreakerState::Closed => {
                attempt = 0;
                if tick.is_multiple_of(10) {
                    i.follow_sentinel_primary().await;
                }
                // Soon: until then another instance may read what the write replaced.
                if !lock(&i.pending).is_empty() || i.pending_overflow.load(Ordering::Acquire) {
                    i.replay_pending(i.probe_budget()).await;
                }
            }
            BreakerState::Open => {
                let backoff =
                    Duration::from_millis(100 * u64::from(attempt)).min(Duration::from_secs(3));
                let wait = i.s.breaker_cooldown.max(backoff);
                if u128::from(i.breaker.open_for_ms()) >= wait.as_millis()
                    && i.breaker.begin_probe()
                {
                    attempt = attempt.saturating_add(1);
                    i.m.breaker_state.set(BreakerState::HalfOpen.gauge_value());
                    let budget = i.probe_budget();
                    if i.ping(budget).await && i.replay_pending(budget).await {
                        i.trusted_after_ms
                            .fetch_max(now_ms() + super::bus::TRUST_MARGIN_MS, Ordering::AcqRel);
                        i.breaker.close();
                        i.connected.store(true, Ordering::Release);
                        log::info!("cache: redis reachable again; circuit breaker closed");
                    } else {
                        i.breaker.probe_failed();
                    }
                    i.m.breaker_state.set(i.breaker.state().gauge_value());
                }
            }
            BreakerState::HalfOpen => {}
        }
    }
}

/// The invalidation subscriber: a dedicated pub/sub connection with its own reconnect. Where
/// it subscribes is resolved again at every connect (the Sentinel's current primary, the
/// Cluster node owning the channel's slot).
pub(super) async fn subscriber_loop(weak: Weak<Inner>, mut rx: watch::Receiver<bool>) {
    let channel = {
        let Some(i) = weak.upgrade() else { return };
        i.channel.clone()
    };
    let mut attempt: u32 = 0;
    let mut first = true;
    loop {
        if *rx.borrow() {
            return;
        }
        let Some(i) = weak.upgrade() else { return };
        let sent = now_ms();
        let connect = async {
            let Some(l2) = &i.l2 else {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "redis not configured",
                )));
            };
            let (client, node) = l2.subscriber.resolve(&channel, attempt).await?;
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>((ps, node))
        };
        let connected = tokio::time::timeout(Duration::from_secs(1), connect).await;
        drop(i);
        match connected {
            Ok(Ok((ps, node))) => {
                attempt = 0;
                {
                    let Some(i) = weak.upgrade() else { return };
                    if !first {
                        // Messages published while nobody listened here are lost.
                        i.withdraw_trust("invalidation subscriber reconnected");
                    }
                    i.subscribed.store(true, Ordering::Release);
                    i.heard_from_redis(sent);
                }
                first = false;
                let Some(lost) = listen(&weak, &mut rx, ps, node).await else {
                    return;
                };
                let Some(i) = weak.upgrade() else { return };
                i.subscribed.store(false, Ordering::Release);
                if i.pg_lease_valid(now_ms()) {
                    log::warn!(
                        "cache: invalidation subscriber lost ({lost}); the Postgres bus keeps L1 current; resubscribing"
                    );
                } else {
                    log::warn!(
                        "cache: invalidation subscriber lost ({lost}); clearing L1 and resubscribing"
                    );
                    i.clear_l1("invalidation subscriber disconnected");
                }
            }
            _ => attempt = attempt.saturating_add(1),
        }
        let backoff =
            Duration::from_millis(100 * u64::from(attempt.max(1))).min(Duration::from_secs(3));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = rx.changed() => return,
        }
    }
}

/// Listens on a subscribed connection: applies messages, pings to keep the lease, follows
/// the channel's slot. Returns why the connection was given up, or `None` at shutdown.
async fn listen(
    weak: &Weak<Inner>,
    rx: &mut watch::Receiver<bool>,
    ps: redis::aio::PubSub,
    node: Option<NodeAddr>,
) -> Option<String> {
    let (mut sink, mut stream) = ps.split();
    // Frequent pings keep the lease (`LEASE_MS`) alive while Redis answers.
    let mut ping = tokio::time::interval(Duration::from_millis(super::bus::PING_MS));
    ping.tick().await;
    let mut pings: u64 = 0;
    'listen: loop {
        tokio::select! {
            _ = rx.changed() => return None,
            msg = stream.next() => match msg {
                Some(m) => {
                    let i = weak.upgrade()?;
                    i.on_bus_message(m.get_payload_bytes());
                }
                None => break Some("the connection closed".to_owned()),
            },
            _ = ping.tick() => {
                let sent = now_ms();
                let pong = tokio::time::timeout(
                    Duration::from_secs(1),
                    sink.ping::<redis::Value>(),
                )
                .await;
                match pong {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => break Some(format!("PING failed: {error}")),
                    Err(_) => break Some("PING unanswered within 1 s".to_owned()),
                }
                let i = weak.upgrade()?;
                // Every message published before this PING reached Redis came
                // before its answer and is already queued: apply those first,
                // then renew the lease from when the PING was sent.
                while let Some(queued) = stream.next().now_or_never() {
                    match queued {
                        Some(m) => i.on_bus_message(m.get_payload_bytes()),
                        None => break 'listen Some("the connection closed".to_owned()),
                    }
                }
                i.heard_from_redis(sent);
                pings += 1;
                // PUBLISH goes to the slot's current owner, and only that node's
                // reply counts the receivers a writer waits for: follow the slot
                // when a failover moved it.
                if pings.is_multiple_of(10) && !i.still_owns_channel(node.as_ref()).await {
                    break Some("the channel moved to another node".to_owned());
                }
            }
        }
    }
}

//! The cache's Postgres bus listener: one `LISTEN` connection per instance, outside the pool,
//! with its own reconnect loop. It applies the notices writes send in their transactions and
//! keeps the bus's lease with a heartbeat NOTIFY (see `cache::pgbus`): the heartbeat comes
//! back only after every notification committed before it, so hearing it means nothing older
//! is still on the way.
//!
//! Heartbeats and acknowledgements go out on a second connection of their own, never on the
//! listening one: a statement on a `PgListener` whose session was lost reconnects it
//! silently, so a heartbeat sent there could come back on a new session while the notices
//! committed in between were never delivered — and the lease would be renewed over the gap.
//! Only `try_recv` notices a lost session (it answers `None`, never reconnecting itself: see
//! `eager_reconnect` below), and then L1 is cleared.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::cache::Cache;

/// Heartbeats per lease: three, as the Redis subscriber's pings.
const HEARTBEAT: Duration = Duration::from_millis(crate::cache::LEASE_MS / 3);
/// A connect or a heartbeat that takes longer than this counts as a lost connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// Starts the listener for `cache` on `url` (the direct server, not a transaction pooler:
/// `LISTEN` holds a session), registers it with the cache (stopped at its shutdown) and
/// attaches the bus, so writes send notices from now on.
pub fn spawn(cache: &Cache, url: &Url) -> JoinHandle<()> {
    let task = tokio::spawn(run(cache.clone(), url.clone(), cache.shutdown_signal()));
    cache.attach_pg_bus();
    task
}

/// What `pg_stat_activity` shows for the listener's connection.
pub const APPLICATION_NAME: &str = "gwd-cache-listener";
/// What it shows for the connection heartbeats and acknowledgements are sent on.
pub const SENDER_APPLICATION_NAME: &str = "gwd-cache-notifier";

/// `url` with `application_name` set to `name`, so operators can tell the bus's sessions
/// from the pool's.
fn named(url: &Url, name: &str) -> Url {
    let mut named = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "application_name")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    named
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("application_name", name);
    named
}

async fn run(cache: Cache, url: Url, mut shutdown: watch::Receiver<bool>) {
    let channel = cache.pg_channel().to_owned();
    let mut attempt: u32 = 0;
    let mut first = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connect = async {
            let mut listener = PgListener::connect(named(&url, APPLICATION_NAME).as_str()).await?;
            // An eager reconnection happens inside `try_recv`, after it dropped the lost
            // session: when `select!` cancels it there (a heartbeat tick under load), the next
            // `try_recv` reconnects and re-listens silently, never answering `None`, and the
            // notices sent in the gap are lost while the lease goes on. Not eager, a lost
            // session is answered at once and this loop reconnects (and clears L1) itself.
            listener.eager_reconnect(false);
            listener.listen(&channel).await?;
            let sender =
                PgConnection::connect(named(&url, SENDER_APPLICATION_NAME).as_str()).await?;
            Ok::<_, sqlx::Error>((listener, sender))
        };
        match tokio::time::timeout(ANSWER_WITHIN, connect).await {
            Ok(Ok((mut listener, mut sender))) => {
                attempt = 0;
                cache.pg_listener_up(!first);
                first = false;
                let bus = Bus {
                    channel: &channel,
                    listener: &mut listener,
                    sender: &mut sender,
                };
                let lost = listen(&cache, bus, &mut shutdown).await;
                cache.pg_listener_down();
                match lost {
                    None => return,
                    Some(why) => log::warn!(
                        "cache: postgres invalidation listener lost ({why}); reconnecting"
                    ),
                }
            }
            Ok(Err(error)) => {
                attempt = attempt.saturating_add(1);
                if attempt == 1 {
                    log::warn!("cache: postgres invalidation listener cannot connect: {error}");
                }
            }
            Err(_) => attempt = attempt.saturating_add(1),
        }
        let backoff =
            Duration::from_millis(100 * u64::from(attempt.max(1))).min(Duration::from_secs(3));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Applies notifications and sends heartbeats until the connection fails (why) or shutdown
/// (`None`).
/// The two sessions of the bus and its channel.
struct Bus<'a> {
    channel: &'a str,
    listener: &'a mut PgListener,
    sender: &'a mut PgConnection,
}

async fn listen(
    cache: &Cache,
    bus: Bus<'_>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<String> {
    let Bus {
        channel,
        listener,
        sender,
    } = bus;
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return None,
            // `try_recv` is cancel-safe: a message is taken from the buffer only whole.
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    if let Some(ack) = cache.on_pg_message(notification.payload()) {
                        if let Err(why) = send(sender, channel, ack).await {
                            return Some(why);
                        }
                    }
                }
                Ok(None) => return Some("the connection closed".to_owned()),
                Err(error) => return Some(error.to_string()),
            },
            _ = tick.tick() => {
                let (gen, heartbeat) = cache.pg_heartbeat_numbered();
                match send_heartbeat(sender, channel, heartbeat).await {
                    Ok(Some(position)) => cache.pg_heartbeat_answered(gen, position),
                    Ok(None) => {}
                    Err(why) => return Some(format!("heartbeat: {why}")),
                }
            }
        }
        // What arrived while a statement ran on the connection (a heartbeat's own return
        // included), in order.
        while let Some(notification) = listener.next_buffered() {
            if let Some(ack) = cache.on_pg_message(notification.payload()) {
                if let Err(why) = send(sender, channel, ack).await {
                    return Some(why);
                }
            }
        }
    }
}

/// A heartbeat on the bus's sending connection, reading the primary's WAL position in the
/// same statement: every write whose notice arrived before it was sent committed below that
/// position (see `cache::region`).
async fn send_heartbeat(
    sender: &mut PgConnection,
    channel: &str,
    payload: String,
) -> Result<Option<u64>, String> {
    let sent = sqlx::query_scalar!(
        "select pg_current_wal_lsn()::text from (select pg_notify($1, $2)) as sent",
        channel,
        payload,
    )
    .fetch_one(&mut *sender);
    match tokio::time::timeout(ANSWER_WITHIN, sent).await {
        Ok(Ok(position)) => Ok(position.as_deref().and_then(super::positions::parse_lsn)),
        Ok(Err(error)) => Err(format!("NOTIFY failed: {error}")),
        Err(_) => Err("NOTIFY unanswered within 1 s".to_owned()),
    }
}

/// `pg_notify` on the bus's sending connection (a heartbeat, an acknowledgement).
async fn send(sender: &mut PgConnection, channel: &str, payload: String) -> Result<(), String> {
    let sent = sqlx::query!("select pg_notify($1, $2)", channel, payload).execute(&mut *sender);
    match tokio::time::timeout(ANSWER_WITHIN, sent).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("NOTIFY failed: {error}")),
        Err(_) => Err("NOTIFY unanswered within 1 s".to_owned()),
    }
}

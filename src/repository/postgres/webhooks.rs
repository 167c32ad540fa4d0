use std::time::Duration;

use super::notify::{Notice, Notifier};
use crate::domain::webhook::{EventKind, WebhookEvent};
use crate::repository::cached::{api_key_keys, subscription_keys, workflow_keys};
use crate::repository::RepositoryError;

/// What applying an event changed, so the caller can invalidate caches after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEffect {
    /// The event id was seen before: nothing changed again.
    Duplicate,
    /// A subscription event older than the last one applied to the location: recorded as
    /// seen, nothing changed (a late delivery must not undo a newer event).
    Superseded,
    /// The location is not known here: recorded, nothing changed.
    UnknownLocation,
    Ignored,
    SubscriptionChanged,
    WorkflowChanged {
        workflow_id: String,
    },
    WorkflowDeleted {
        workflow_id: String,
    },
    /// Hashes of the keys that were revoked.
    KeysRevoked {
        key_hashes: Vec<Vec<u8>>,
    },
}

#[derive(Clone)]
pub struct PgWebhookStore {
    pool: super::Db,
    notifier: Notifier,
}

impl PgWebhookStore {
    pub fn new(pool: impl Into<super::Db>) -> Self {
        Self {
            pool: pool.into(),
            notifier: Notifier::default(),
        }
    }

    /// Sends each applied event's cache invalidation in its transaction.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The notice of what `effect` changed at `location_id` (the keys the handler then
    /// invalidates, in the same order).
    fn notice(&self, location_id: &str, effect: &WebhookEffect) -> Notice {
        self.notifier.notice_with(|cache| match effect {
            WebhookEffect::SubscriptionChanged => subscription_keys(cache, location_id),
            WebhookEffect::WorkflowChanged { workflow_id }
            | WebhookEffect::WorkflowDeleted { workflow_id } => {
                workflow_keys(cache, location_id, workflow_id)
            }
            WebhookEffect::KeysRevoked { key_hashes } => api_key_keys(cache, key_hashes),
            WebhookEffect::Duplicate
            | WebhookEffect::Superseded
            | WebhookEffect::UnknownLocation
            | WebhookEffect::Ignored => Vec::new(),
        })
    }

    /// Records the event id and applies the event in one transaction, so a replay (even a
    /// concurrent one) changes nothing and a failure leaves no half-applied event.
    pub async fn apply(&self, event: &WebhookEvent) -> Result<WebhookEffect, RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let mut tx = conn.begin().await?;
        let first_time = sqlx::query_scalar!(
            r#"insert into webhook_events (id, type, location_id) values ($1, $2, $3)
               on conflict (id) do nothing returning id"#,
            &event.id,
            &event.type_name,
            &event.location_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if first_time.is_none() {
            return Ok(WebhookEffect::Duplicate);
        }
        let known = sqlx::query_scalar!(
            r#"select exists (select 1 from locations where id = $1) as "exists!""#,
            &event.location_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        let effect = if known {
            apply_kind(&mut tx, event).await?
        } else {
            WebhookEffect::UnknownLocation
        };
        self.notice(&event.location_id, &effect)
            .send(&mut tx, None)
            .await?;
        tx.commit().await?;
        self.notifier.committed(&mut conn).await;
        Ok(effect)
    }

    /// Deletes up to `PRUNE_BATCH` idempotency records received more than `age` ago; returns
    /// how many. Called after each event, so the table stays near the window's volume
    /// without a background task (each insert removes far more than itself when behind).
    pub async fn prune_older_than(&self, age: Duration) -> Result<u64, RepositoryError> {
        let age_secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        let deleted = sqlx::query!(
            r#"delete from webhook_events where id in (
                   select id from webhook_events
                   where received_at < now() - make_interval(secs => $1)
                   order by received_at
                   limit $2
               )"#,
            age_secs as f64,
            PRUNE_BATCH,
        )
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }
}

/// Most idempotency records one prune deletes, so a backlog is worked off in short statements.
const PRUNE_BATCH: i64 = 500;

async fn apply_kind(
    tx: &mut sqlx::PgConnection,
    event: &WebhookEvent,
) -> Result<WebhookEffect, RepositoryError> {
    let location_id = &event.location_id;
    Ok(match &event.kind {
        EventKind::Subscription {
            plan,
            status,
            current_period_end,
        } => {
            // Equal timestamps apply in arrival order; only a strictly older event is ignored.
            let applied = sqlx::query_scalar!(
                r#"insert into subscriptions (location_id, plan, status, current_period_end, last_event_at)
                   values ($1, coalesce($2, 'free'), $3, $4, $5)
                   on conflict (location_id) do update
                   set plan = coalesce($2, subscriptions.plan), status = excluded.status,
                       current_period_end = coalesce(excluded.current_period_end, subscriptions.current_period_end),
                       last_event_at = excluded.last_event_at,
                       updated_at = now()
                   where subscriptions.last_event_at is null
                      or subscriptions.last_event_at <= excluded.last_event_at
                   returning location_id"#,
                location_id,
                plan.map(|p| p.as_str()),
                status.as_str(),
                *current_period_end,
                event.timestamp,
            )
            .fetch_optional(&mut *tx)
            .await?;
            if applied.is_some() {
                WebhookEffect::SubscriptionChanged
            } else {
                WebhookEffect::Superseded
            }
        }
        EventKind::WorkflowUpdated { workflow_id } => WebhookEffect::WorkflowChanged {
            workflow_id: workflow_id.clone(),
        },
        EventKind::WorkflowDeleted { workflow_id } => {
            sqlx::query!(
                r#"delete from workflows where location_id = $1 and id = $2"#,
                location_id,
                workflow_id,
            )
            .execute(&mut *tx)
            .await?;
            super::workflows::prune_tombstones(&mut *tx, location_id).await?;
            WebhookEffect::WorkflowDeleted {
                workflow_id: workflow_id.clone(),
            }
        }
        EventKind::AppUninstall => {
            sqlx::query!(
                r#"update locations set uninstalled_at = coalesce(uninstalled_at, now())
                   where id = $1"#,
                location_id,
            )
            .execute(&mut *tx)
            .await?;
            let key_hashes = sqlx::query_scalar!(
                r#"update api_keys set revoked_at = coalesce(revoked_at, now())
                   where location_id = $1 returning key_hash"#,
                location_id,
            )
            .fetch_all(&mut *tx)
            .await?;
            WebhookEffect::KeysRevoked { key_hashes }
        }
        EventKind::Unknown => WebhookEffect::Ignored,
    })
}

use sqlx::PgPool;

use crate::domain::webhook::{EventKind, WebhookEvent};
use crate::repository::RepositoryError;

/// What applying an event changed, so the caller can invalidate caches after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEffect {
    /// The event id was seen before: nothing changed again.
    Duplicate,
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
    pool: PgPool,
}

impl PgWebhookStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records the event id and applies the event in one transaction, so a replay (even a
    /// concurrent one) changes nothing and a failure leaves no half-applied event.
    pub async fn apply(&self, event: &WebhookEvent) -> Result<WebhookEffect, RepositoryError> {
        let mut conn = super::writable(&self.pool).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let first_time: Option<String> = sqlx::query_scalar(
            r#"insert into webhook_events (id, type, location_id) values ($1, $2, $3)
               on conflict (id) do nothing returning id"#,
        )
        .bind(&event.id)
        .bind(&event.type_name)
        .bind(&event.location_id)
        .fetch_optional(&mut *tx)
        .await?;
        if first_time.is_none() {
            return Ok(WebhookEffect::Duplicate);
        }
        let known: bool =
            sqlx::query_scalar(r#"select exists (select 1 from locations where id = $1)"#)
                .bind(&event.location_id)
                .fetch_one(&mut *tx)
                .await?;
        let effect = if known {
            apply_kind(&mut tx, event).await?
        } else {
            WebhookEffect::UnknownLocation
        };
        tx.commit().await?;
        Ok(effect)
    }
}

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
            sqlx::query(
                r#"insert into subscriptions (location_id, plan, status, current_period_end)
                   values ($1, coalesce($2, 'free'), $3, $4)
                   on conflict (location_id) do update
                   set plan = coalesce($2, subscriptions.plan), status = excluded.status,
                       current_period_end = coalesce(excluded.current_period_end, subscriptions.current_period_end),
                       updated_at = now()"#,
            )
            .bind(location_id)
            .bind(plan.map(|p| p.as_str()))
            .bind(status.as_str())
            .bind(current_period_end)
            .execute(&mut *tx)
            .await?;
            WebhookEffect::SubscriptionChanged
        }
        EventKind::WorkflowUpdated { workflow_id } => WebhookEffect::WorkflowChanged {
            workflow_id: workflow_id.clone(),
        },
        EventKind::WorkflowDeleted { workflow_id } => {
            sqlx::query(r#"delete from workflows where location_id = $1 and id = $2"#)
                .bind(location_id)
                .bind(workflow_id)
                .execute(&mut *tx)
                .await?;
            WebhookEffect::WorkflowDeleted {
                workflow_id: workflow_id.clone(),
            }
        }
        EventKind::AppUninstall => {
            sqlx::query(r#"update locations set uninstalled_at = coalesce(uninstalled_at, now()) where id = $1"#)
                .bind(location_id)
                .execute(&mut *tx)
                .await?;
            let key_hashes: Vec<Vec<u8>> = sqlx::query_scalar(
                r#"update api_keys set revoked_at = coalesce(revoked_at, now())
                   where location_id = $1 returning key_hash"#,
            )
            .bind(location_id)
            .fetch_all(&mut *tx)
            .await?;
            WebhookEffect::KeysRevoked { key_hashes }
        }
        EventKind::Unknown => WebhookEffect::Ignored,
    })
}

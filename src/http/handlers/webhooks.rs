//! `POST /webhooks/ghl`: signed GoHighLevel events.

use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::domain::webhook::{WebhookEvent, WebhookEventError};
use crate::http::envelope::success;
use crate::http::error::ApiError;
use crate::repository::postgres::WebhookEffect;
use crate::repository::within;
use crate::state::AppState;

const SIGNATURE_HEADER: &str = "x-ghl-signature";

pub async fn receive_ghl_event(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let secret =
        state
            .settings
            .webhook_secret
            .as_deref()
            .ok_or_else(|| ApiError::ServiceUnavailable {
                message: "Webhooks are not configured on this server".to_owned(),
                source: None,
            })?;
    verify_signature(&request, secret, &body)?;
    let tolerance = state.settings.webhook_tolerance;
    let event = WebhookEvent::parse(&body)
        .and_then(|event| {
            event
                .check_window(chrono::Utc::now(), tolerance)
                .map(|()| event)
        })
        .map_err(refused)?;
    let effect = within(state.settings.request_timeout, state.webhooks.apply(&event)).await?;
    apply_to_caches(&state, &event.location_id, &effect).await;
    log::info!(
        "webhook {} ({}) for location {}: {:?}",
        event.id,
        event.type_name,
        event.location_id,
        effect_name(&effect)
    );
    forget_old_event_ids(&state, tolerance).await;
    Ok(success(WebhookReceipt {
        received: true,
        duplicate: effect == WebhookEffect::Duplicate,
        superseded: effect == WebhookEffect::Superseded,
        event_id: event.id,
    }))
}

/// What a delivery answers, whatever its type.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceipt {
    pub received: bool,
    /// The event id was seen before: nothing changed again.
    pub duplicate: bool,
    /// An older subscription event than the last one applied to the location: nothing
    /// changed.
    pub superseded: bool,
    pub event_id: String,
}

/// Bad fields are 422 naming them; a missing or out-of-window timestamp is 400: the
/// delivery itself is unusable, whatever its fields.
fn refused(error: WebhookEventError) -> ApiError {
    match error {
        WebhookEventError::Fields(errors) => ApiError::Validation(errors),
        other => ApiError::BadRequest(other.to_string()),
    }
}

/// An id only needs remembering while a delivery carrying it could still be accepted: its
/// timestamp is within `tolerance` of the arrival of both the first delivery and the replay,
/// so replays come at most `2 × tolerance` after the first (plus a margin for clock skew
/// between this server and Postgres, whose clock stamps `received_at`). Best effort: a
/// failed prune is retried with the next event.
async fn forget_old_event_ids(state: &AppState, tolerance: std::time::Duration) {
    const SKEW_MARGIN: std::time::Duration = std::time::Duration::from_secs(600);
    let keep = tolerance * 2 + SKEW_MARGIN;
    match within(
        state.settings.request_timeout,
        state.webhooks.prune_older_than(keep),
    )
    .await
    {
        Ok(0) => {}
        Ok(pruned) => log::debug!("webhooks: forgot {pruned} event ids older than {keep:?}"),
        Err(error) => log::warn!("webhooks: pruning old event ids failed: {error}"),
    }
}

/// Constant-time check of the hex HMAC-SHA256 of the raw body.
fn verify_signature(request: &HttpRequest, secret: &str, body: &[u8]) -> Result<(), ApiError> {
    let unauthorized = || ApiError::Unauthorized("Missing or invalid X-GHL-Signature".to_owned());
    let presented = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|text| text.trim().trim_start_matches("sha256="))
        .and_then(|text| hex::decode(text).ok())
        .ok_or_else(unauthorized)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(ApiError::internal)?;
    mac.update(body);
    mac.verify_slice(&presented).map_err(|_| unauthorized())
}

/// After the commit: drop whatever the caches remember about what changed.
async fn apply_to_caches(state: &AppState, location_id: &str, effect: &WebhookEffect) {
    match effect {
        WebhookEffect::SubscriptionChanged => state.subscriptions.forget(location_id).await,
        WebhookEffect::WorkflowChanged { workflow_id }
        | WebhookEffect::WorkflowDeleted { workflow_id } => {
            state.workflows.forget(location_id, workflow_id).await
        }
        WebhookEffect::KeysRevoked { key_hashes } => state.api_keys.forget(key_hashes).await,
        WebhookEffect::Duplicate
        | WebhookEffect::Superseded
        | WebhookEffect::UnknownLocation
        | WebhookEffect::Ignored => {}
    }
}

fn effect_name(effect: &WebhookEffect) -> &'static str {
    match effect {
        WebhookEffect::Duplicate => "duplicate, ignored",
        WebhookEffect::Superseded => "older than the last applied subscription event, ignored",
        WebhookEffect::UnknownLocation => "unknown location, ignored",
        WebhookEffect::Ignored => "type not handled, ignored",
        WebhookEffect::SubscriptionChanged => "subscription changed",
        WebhookEffect::WorkflowChanged { .. } => "workflow cache invalidated",
        WebhookEffect::WorkflowDeleted { .. } => "workflow deleted",
        WebhookEffect::KeysRevoked { .. } => "keys revoked",
    }
}

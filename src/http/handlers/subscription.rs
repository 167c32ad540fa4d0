use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::plan::{Features, Limits};
use crate::http::auth::Tenant;
use crate::http::envelope::success;
use crate::http::error::ApiError;
use crate::http::responses::add_cache_headers;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Subscription)]
pub struct SubscriptionResponse {
    location_id: String,
    #[schema(value_type = crate::domain::plan::Plan)]
    plan: String,
    #[schema(value_type = crate::domain::plan::SubscriptionStatus)]
    status: String,
    /// `null` without a billing period (the free plan).
    current_period_end: Option<DateTime<Utc>>,
    features: Features,
    limits: Limits,
}

pub async fn get_subscription(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let fetched = state.subscriptions.get(&tenant.location_id).await?;
    let subscription = fetched.decode()?;
    let effective = subscription.effective_plan();
    let mut response = success(SubscriptionResponse {
        location_id: subscription.location_id,
        plan: subscription.plan,
        status: subscription.status,
        current_period_end: subscription.current_period_end,
        features: effective.features(),
        limits: effective.limits(),
    });
    add_cache_headers(&mut response, fetched.source);
    Ok(response)
}

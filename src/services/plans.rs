//! The one plan lookup: a location's effective plan, read through the cached subscriptions.

use std::sync::Arc;

use crate::domain::plan::Plan;
use crate::repository::{RepositoryError, SubscriptionRepository};

#[derive(Clone)]
pub struct Plans {
    subscriptions: Arc<dyn SubscriptionRepository>,
}

impl Plans {
    pub fn new(subscriptions: Arc<dyn SubscriptionRepository>) -> Self {
        Self { subscriptions }
    }

    /// The plan whose limits and features apply to `location_id` now. A location without a
    /// subscription is on the free plan. When the subscription cannot be read (Postgres down
    /// and nothing cached) the free plan applies too, with a warning: its limits are the
    /// strictest and its view of an analysis the smallest, so an outage never grants more
    /// than was bought, and never fails a request that could otherwise be answered.
    pub async fn effective_plan(&self, location_id: &str) -> Plan {
        let plan = match self.subscriptions.get(location_id).await {
            Ok(fetched) => fetched.effective_plan(),
            Err(error) => Err(error),
        };
        match plan {
            Ok(plan) => plan,
            Err(RepositoryError::NotFound(_)) => Plan::Free,
            Err(error) => {
                log::warn!(
                    "subscription of {location_id} unreadable, applying the free plan: {error}"
                );
                Plan::Free
            }
        }
    }
}

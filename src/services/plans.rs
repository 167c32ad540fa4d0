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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::{Fetched, ReadSource, Subscription};

    /// A subscription repository that answers every read with `answer`.
    struct Answering(fn(&str) -> Result<Fetched<Subscription>, RepositoryError>);

    #[async_trait::async_trait]
    impl SubscriptionRepository for Answering {
        async fn get(&self, location_id: &str) -> Result<Fetched<Subscription>, RepositoryError> {
            (self.0)(location_id)
        }

        async fn forget(&self, _location_id: &str) {}
    }

    fn plans(answer: fn(&str) -> Result<Fetched<Subscription>, RepositoryError>) -> Plans {
        Plans::new(Arc::new(Answering(answer)))
    }

    fn pro(location_id: &str) -> Result<Fetched<Subscription>, RepositoryError> {
        let subscription = Subscription {
            plan: "pro".to_owned(),
            ..Subscription::free(location_id)
        };
        Fetched::encode(&subscription, ReadSource::Bypass)
    }

    #[tokio::test]
    async fn the_free_plan_applies_when_the_subscription_cannot_be_read() {
        let unreadable = [
            plans(|_| Err(RepositoryError::Database(sqlx::Error::PoolTimedOut))),
            plans(|_| Err(RepositoryError::TimedOut)),
            plans(|_| {
                Ok(Fetched::from_json(
                    bytes::Bytes::from_static(b"not json"),
                    ReadSource::Bypass,
                ))
            }),
        ];
        for plans in unreadable {
            assert_eq!(plans.effective_plan("loc_1").await, Plan::Free);
        }
    }

    #[tokio::test]
    async fn a_location_without_a_subscription_is_on_the_free_plan() {
        let plans = plans(|_| Err(RepositoryError::NotFound("Subscription")));
        assert_eq!(plans.effective_plan("loc_1").await, Plan::Free);
    }

    #[tokio::test]
    async fn a_readable_subscription_gives_its_plan() {
        assert_eq!(plans(pro).effective_plan("loc_1").await, Plan::Pro);
    }
}

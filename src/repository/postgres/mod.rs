//! The only place SQL lives.

mod analyses;
mod api_keys;
mod locations;
mod subscriptions;
mod webhooks;
mod workflows;

pub use analyses::PgAnalysisRepository;
pub use api_keys::PgApiKeyRepository;
pub use locations::PgLocationRepository;
pub use subscriptions::PgSubscriptionRepository;
pub use webhooks::{PgWebhookStore, WebhookEffect};
pub use workflows::PgWorkflowRepository;

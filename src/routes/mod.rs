//! Every path of the service, in one table.

mod health;
mod internal;
mod metrics;
mod responses;
mod subscription;
mod webhooks;
mod workflows;

pub use internal::is_valid_location_id;
pub use workflows::is_valid_workflow_id;

use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, HttpResponse, Resource};

use crate::error::ApiError;
use crate::rate_limit::rate_limit_headers;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/health").get(health::health))
        .service(resource("/health/detailed").get(health::health_detailed))
        .service(resource("/ready").get(health::ready))
        .service(resource("/live").get(health::live))
        .service(resource("/metrics").get(metrics::metrics))
        .service(resource("/internal/locations").post(internal::create_location))
        .service(resource("/internal/cache-stats").get(internal::cache_stats))
        .service(resource("/internal/cache/flush").post(internal::flush_cache))
        .service(resource("/webhooks/ghl").post(webhooks::receive_ghl_event))
        .service(
            web::scope("/api")
                // Tenant data must never sit in a shared or browser cache.
                .wrap(DefaultHeaders::new().add(("Cache-Control", "private, no-store")))
                .wrap(from_fn(rate_limit_headers))
                .service(resource("/workflows").get(workflows::list_workflows))
                .service(
                    resource("/workflows/{id}")
                        .get(workflows::get_workflow)
                        .put(workflows::put_workflow)
                        .delete(workflows::delete_workflow),
                )
                .service(resource("/subscription").get(subscription::get_subscription)),
        );
}

/// A resource whose other methods answer 405 (the app's 404 would otherwise apply).
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(HttpResponse::MethodNotAllowed))
}

/// Unknown routes answer 404 in the envelope.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Route not found".to_owned()))
}

//! Every path of the service, in one table.

mod health;
mod internal;
mod metrics;

pub use internal::is_valid_location_id;

use actix_web::{web, HttpResponse, Resource};

use crate::error::ApiError;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/health").get(health::health))
        .service(resource("/health/detailed").get(health::health_detailed))
        .service(resource("/ready").get(health::ready))
        .service(resource("/live").get(health::live))
        .service(resource("/metrics").get(metrics::metrics))
        .service(resource("/internal/locations").post(internal::create_location));
}

/// A resource whose other methods answer 405 (the app's 404 would otherwise apply).
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(HttpResponse::MethodNotAllowed))
}

/// Unknown routes answer 404 in the envelope.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Route not found".to_owned()))
}

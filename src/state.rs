//! The state every handler receives through `web::Data`.

use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::repository::LocationRepository;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub metrics: Metrics,
    pub locations: Arc<dyn LocationRepository>,
    pub started_at: Instant,
}

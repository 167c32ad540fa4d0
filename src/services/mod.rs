//! What the service does between the web layer and the repositories, with no actix-web here:
//! analyses (and the threads they run on), the rate limiter, the cached list pages, cache
//! warming.

pub mod analysis;
pub mod analysis_pool;
pub mod cache_history;
pub mod cache_warming;
pub mod ghl_import;
pub mod health_probe;
mod json_scan;
pub mod overview;
pub mod plans;
pub mod rate_limiter;
pub mod summary_pages;

//! Black-box tests: the real application over HTTP, on real Postgres (and Redis).
#![allow(clippy::unwrap_used)]

mod analysis;
mod analysis_budget;
mod analysis_robustness;
mod binary;
mod cache;
mod caching;
mod cdp;
mod consistency;
mod contract;
mod dashboard;
mod dashboard_browser;
mod errors;
mod faults;
mod ghl_import;
mod health;
mod helpers;
mod http_semantics;
mod internal;
mod lifecycle;
mod location_cap;
mod migrations;
mod monitoring;
mod openapi;
mod overview;
mod overview_background;
mod rate_limits;
mod recreate;
mod region;
mod security;
mod stored_text;
mod subscription;
mod support;
mod tls;
mod topology;
pub mod webhooks;
mod workflows;

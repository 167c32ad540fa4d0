//! Black-box tests: the real application over HTTP, on real Postgres (and Redis).
#![allow(clippy::unwrap_used)]

mod analysis;
mod analysis_budget;
mod analysis_robustness;
mod binary;
mod cache;
mod caching;
mod consistency;
mod errors;
mod faults;
mod health;
mod helpers;
mod internal;
mod migrations;
mod openapi;
mod overview;
mod rate_limits;
mod recreate;
mod security;
mod stored_text;
mod subscription;
mod topology;
mod webhooks;
mod workflows;

//! Black-box tests: the real application over HTTP, on real Postgres (and Redis).
#![allow(clippy::unwrap_used)]

mod analysis;
mod analysis_robustness;
mod binary;
mod cache;
mod caching;
mod errors;
mod health;
mod helpers;
mod internal;
mod migrations;
mod security;
mod subscription;
mod webhooks;
mod workflows;

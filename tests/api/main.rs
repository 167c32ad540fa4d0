//! Black-box tests: the real application over HTTP, on real Postgres (and Redis).
#![allow(clippy::unwrap_used)]

mod binary;
mod cache;
mod caching;
mod consistency;
mod errors;
mod health;
mod helpers;
mod internal;
mod migrations;
mod openapi;
mod rate_limits;
mod subscription;
mod webhooks;
mod workflows;

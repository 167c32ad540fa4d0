//! GHL Workflow Debugger backend: stores GoHighLevel automation workflows per location,
//! finds what is wrong in them and serves it through a layered cache.

pub mod analysis_pool;
pub mod analysis_service;
pub mod auth;
pub mod cache;
pub mod cache_warming;
pub mod cli;
pub mod config;
pub mod database;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod health;
pub mod metrics;
pub mod operator_auth;
pub mod rate_limit;
pub mod repository;
pub mod request_id;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod state;
pub mod telemetry;

//! GHL Workflow Debugger backend: stores GoHighLevel automation workflows per location,
//! finds what is wrong in them and serves it through a layered cache.

pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod health;
pub mod http;
pub mod metrics;
pub mod repository;
pub mod services;
pub mod startup;
pub mod state;
pub mod telemetry;

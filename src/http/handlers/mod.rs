//! One file per resource; each handler is thin: extract, call a repository or service, answer.

pub mod analysis;
pub mod dashboard;
pub mod health;
pub mod internal;
pub mod metrics;
pub mod openapi;
pub mod subscription;
pub mod summary;
pub mod webhooks;
pub mod workflows;

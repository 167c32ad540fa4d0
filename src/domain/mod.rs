//! The product's own logic, free of I/O: workflow documents, plans, analysis.

pub mod analysis;
pub mod limits;
pub mod plan;
pub mod webhook;
pub mod workflow;

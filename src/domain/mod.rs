//! The product's own logic, free of I/O: workflow documents, plans, analysis.

pub mod analysis;
pub mod ghl;
pub mod plan;
pub mod stored_text;
pub mod webhook;
pub mod workflow;

//! The product's own logic, free of I/O: workflow documents, plans, analysis, the ids and
//! page bounds the API accepts, API-key hashing. Imports nothing else of the crate.

pub mod analysis;
pub mod api_key;
pub mod ghl;
pub mod ids;
pub mod limits;
pub mod overview;
pub mod pagination;
pub mod plan;
pub mod schema;
pub mod stored_text;
pub mod webhook;
pub mod workflow;
pub mod workflow_shape;

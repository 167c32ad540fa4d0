//! Subcommands of the binary other than `serve`.

pub mod admin;
pub mod analyze;
pub mod seed;

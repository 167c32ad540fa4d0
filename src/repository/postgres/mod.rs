//! The only place SQL lives.

mod locations;

pub use locations::PgLocationRepository;

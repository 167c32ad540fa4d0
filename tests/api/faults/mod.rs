//! Fault-tolerance and consistency suite (issue 7): Redis killed, hung, slow or lying,
//! connections cut, Postgres crashing, two instances; no 5xx from the cache, no stale reads,
//! nothing lost. Each scenario prints its RELIABILITY.md row; `CHAOS_SCALE` makes runs longer.
//!
//! Run: `cargo test --test api faults:: -- --nocapture` (`make chaos` for the long version).
//! Tests only stop processes they started themselves (own redis-servers, own Postgres
//! clusters), by PID; the machine's shared Redis and Postgres are never touched.

mod connection_cuts;
mod consistency;
pub mod harness;
mod leaks;
mod postgres_crash;
mod postgres_hung;
pub mod proxy;
mod races;
mod redis_down_auth;
mod redis_down_memory;
mod redis_hung;
mod redis_killed;
mod redis_lying;
mod secrets;

//! The service on a real local Redis Cluster (3 primaries, 3 replicas) and a real Sentinel
//! setup (1 primary, 1 replica, 3 sentinels), started by the tests on free ports: the cache
//! and API promises on each, and failover under load.

mod cluster;
pub mod common;
pub mod harness;
pub mod node;
mod sentinel;

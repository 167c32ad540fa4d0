//! Managed-service connections (issue 26): Redis over TLS on every topology, with a private
//! CA and mutual TLS, failing closed (degraded, never plaintext); Postgres over verified TLS
//! and behind a transaction-mode PgBouncer.

mod harness;
mod pgbouncer;
mod postgres_tls;
mod redis_single;
mod redis_topologies;

//! Servers the tests start for themselves (their own process, data dir and port), for the
//! areas that need more than the machine's shared Postgres and Redis.

pub mod postgres_server;

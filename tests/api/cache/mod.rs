//! The cache module on real Redis: the shared one (random key prefix per test) and, for
//! faults, redis-servers the tests start and stop themselves.
#![allow(dead_code)]

mod basic;
pub mod common;
mod faults;

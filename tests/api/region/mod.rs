//! Multi-region deployments (issue 21): one primary, a streaming replica and a Redis per
//! region, consistency tokens, invalidations across regions. Every process is the test's own.

mod consistency;
mod faults;
mod harness;
mod reads;
mod ready;
mod switch;
mod tokens;

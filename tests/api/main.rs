//! Black-box tests against real servers: PostgreSQL + Redis with several instances, and the embedded pair.
mod helpers;

mod browser;
mod cli;
mod deployment;
mod ledger;
mod login;
mod operations;
mod races;
mod redis_outage;
mod round_trips;
mod school;
mod session_store;
mod sessions;

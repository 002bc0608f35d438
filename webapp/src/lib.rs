//! `plinth-ingest`: the ingestion service clients post data to through the load balancer.
//!
//! `main.rs` only parses the command line and calls into this crate, so the integration tests
//! and the benchmark start exactly the application that runs in production
//! ([`startup::Application::build`]).

pub mod auth;
pub mod config;
pub mod database;
pub mod error;
pub mod metrics;
pub mod migrations;
pub mod records;
pub mod routes;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod worker;

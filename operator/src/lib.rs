//! The Plinth operator: the reconcile engine, its AWS components, the controller and the CLI.

pub mod aws;
pub mod cli;
pub mod components;
pub mod compute;
pub mod controller;
pub mod database;
pub mod engine;
pub mod intent;
pub mod metrics;
pub mod monitoring;
pub mod network;
pub mod platform;
pub mod rollout;
pub mod serving;
pub mod telemetry;

//! The Plinth operator: the reconcile engine, its AWS components, the controller and the CLI.

pub mod aws;
pub mod cli;
pub mod components;
pub mod controller;
pub mod engine;
pub mod intent;
pub mod metrics;
pub mod network;
pub mod platform;
pub mod telemetry;

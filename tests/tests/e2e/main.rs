//! Plinth's end-to-end tests against the local stack of real parts, as one test binary (one
//! link instead of one per suite, which dominates build time on two cores). Each module is one
//! suite; `tests/run -- controller::` runs just that one.

mod api_validation;
mod compute;
mod consistency;
mod controller;
mod database;
mod dataplane;
mod faults;
mod namespace;
mod network;
mod network_repair;
mod rollout;
mod serving;
mod smoke;

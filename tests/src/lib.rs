//! Shared helpers for the end-to-end tests: reading the local stack's endpoints.

//! Integration tests: the real application on port 0 against a fresh MariaDB database each
//! (see `helpers`). Run with the local stack up: `tests/stack/up && . .stack/env &&
//! cargo test -p plinth-ingest`.

mod helpers;

mod bad_input;
mod jobs;
mod operations;
mod processing;
mod rotation;
mod users;

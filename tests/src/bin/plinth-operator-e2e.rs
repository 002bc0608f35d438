//! The operator process exactly as it ships (`controller::process::main`), built inside the
//! test package so end-to-end tests can start it (`CARGO_BIN_EXE_plinth-operator-e2e`), kill it
//! with SIGKILL and stop it with SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    plinth_operator::controller::process::main().await
}

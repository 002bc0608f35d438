//! `plinth-operator`: the controller process; its flags and signals live in
//! [`plinth_operator::controller::process`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    plinth_operator::controller::process::main().await
}

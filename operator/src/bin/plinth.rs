//! `plinth`: plan, apply, destroy and inspect a DataPlatform from a spec file, without
//! Kubernetes. A thin wrapper over [`plinth_operator::cli`].

use std::process::ExitCode;

use clap::Parser;
use plinth_operator::cli::{self, Cli};
use plinth_operator::telemetry::{self, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    telemetry::init(LogFormat::Text, "warn");
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plinth: {e}");
            ExitCode::FAILURE
        }
    }
}

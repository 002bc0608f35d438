//! `plinth-ingest`: parses the command line, sets up logging, runs the server (or the
//! `create-admin` command), and turns SIGTERM / Ctrl-C into a graceful shutdown.

use std::process::ExitCode;

use clap::Parser;
use plinth_ingest::auth::{ensure_admin_key, generate_key};
use plinth_ingest::config::{Cli, Command};
use plinth_ingest::database::Database;
use plinth_ingest::metrics::Metrics;
use plinth_ingest::startup::Application;
use plinth_ingest::telemetry;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::CreateAdmin { name } => create_admin(cli.config, &name).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "plinth-ingest failed");
            eprintln!("plinth-ingest: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: plinth_ingest::config::Config) -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::build(config).await?;
    let token = app.shutdown_token();
    tokio::spawn(stop_on_signal(token));
    app.run_until_stopped().await?;
    Ok(())
}

async fn stop_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = ctrl_c => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested: draining");
    token.cancel();
}

async fn create_admin(
    config: plinth_ingest::config::Config,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::connect(&config.database, std::sync::Arc::new(Metrics::new())).await?;
    db.migrate().await?;
    let key = generate_key();
    let mut conn = db.acquire().await?;
    ensure_admin_key(&mut conn, name, &key.key).await?;
    drop(conn);
    db.close().await;
    println!("{}", key.key);
    eprintln!("admin key for user {name:?} created; it is shown only this once");
    Ok(())
}
